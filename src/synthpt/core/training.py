"""The one contract every training loop of synthpt keeps, and the step loop they share.

Five loops train something: prompt tuning (``PromptTrainer``), generator tuning
(``GeneratorTrainer``), full fine-tuning (``FineTuneTrainer``: FT, PFT, PFT + soft prompt),
OPTIMA's adaptation phase (``OptimaTrainer``) and LoRA (``LoraTrainer``).  They differ in what a
step computes and agree on everything around it, so each has the same fixed verbs (torchtune's
recipe interface, as a :class:`typing.Protocol`: a shape to keep, no implementation to inherit):

- ``global_step``: optimizer steps done so far (what a checkpoint resumes from);
- ``train_step(step)``: one update on the batch of ``step``, returns that step's log record;
- ``state_dict()`` / ``load_state_dict(state)``: everything a bitwise-equal resume needs;
- ``save_checkpoint()`` / ``try_resume()``: through :mod:`synthpt.core.checkpointing`;
- ``fit() -> TrainResult``: the whole run, resumed from a checkpoint if there is one.

:func:`run_steps` is the loop between resume and the last step (step log, progress bar,
periodic checkpoints); a trainer's ``fit`` calls it and adds what only it knows (dev
selection, its own statistics) to the :class:`TrainResult`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, overload, runtime_checkable

from synthpt.core.checkpointing import load_checkpoint, open_step_log
from synthpt.core.progress import progress_bar


@dataclass
class TrainResult:
    """What ``fit`` did: how far training got, what this call ran, what it resumed from.

    ``history`` holds the records of the steps *this call* ran (steps ``resumed_from + 1`` ..
    ``global_step``); ``log.jsonl`` in the run's folder holds every step's.  ``best_step`` is
    the step whose weights the trainer keeps (dev selection; the last step when there is none).
    ``stats``: the loop's own summary numbers (prompt tuning: ``conflict_rate``)."""

    global_step: int
    steps_run: int
    resumed_from: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_step: int = -1
    dev_metrics: dict[str, float] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Trainer(Protocol):
    """The verbs of every training loop (see the module docstring)."""

    global_step: int

    def train_step(self, step: int) -> dict[str, Any]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def save_checkpoint(self) -> None: ...

    def try_resume(self) -> bool: ...

    def fit(self) -> TrainResult: ...


@overload
def checkpoint_path(out: Path) -> Path: ...


@overload
def checkpoint_path(out: None) -> None: ...


def checkpoint_path(out: Path | None) -> Path | None:
    """Where a loop writing into ``out`` keeps its checkpoint (None: the loop does not checkpoint)."""
    return None if out is None else out / "checkpoint.pt"


def resume(trainer: Trainer, out: Path | None, config: dict[str, Any]) -> bool:
    """Load ``out``'s checkpoint into ``trainer`` if there is one made with ``config``."""
    state = load_checkpoint(checkpoint_path(out), config)
    if state is None:
        return False
    trainer.load_state_dict(state)
    return True


def run_steps(trainer: Trainer, *, max_steps: int, checkpoint_every: int, out: Path | None, desc: str,
              progress: bool = True, on_step: Callable[[dict[str, Any]], None] | None = None,
              postfix: Callable[[dict[str, Any]], dict[str, str]] | None = None) -> TrainResult:
    """Resume ``trainer`` if it has a checkpoint, then step it to ``max_steps``.

    After each step the counter moves on, ``on_step(record)`` runs (dev evaluation may add to
    the record), the record goes to ``out/log.jsonl`` (cut back to the checkpoint's step on a
    resume, so every step is listed exactly once) and every ``checkpoint_every`` steps a
    checkpoint is written (not after the last step: the caller saves the result instead)."""
    resumed = trainer.try_resume()
    start = trainer.global_step
    history: list[dict[str, Any]] = []
    log = open_step_log(out, start if resumed else None)
    bar = progress_bar(total=max_steps, initial=start, desc=desc, disable=not progress, dynamic_ncols=True)
    try:
        while trainer.global_step < max_steps:
            rec = trainer.train_step(trainer.global_step)
            trainer.global_step += 1
            if on_step is not None:
                on_step(rec)
            history.append(rec)
            if log is not None:
                log.write(json.dumps(rec) + "\n")
                log.flush()
            if postfix is not None:
                bar.set_postfix(postfix(rec))
            bar.update(1)
            if trainer.global_step % checkpoint_every == 0 and trainer.global_step < max_steps:
                trainer.save_checkpoint()
    finally:
        bar.close()
        if log is not None:
            log.close()
    return TrainResult(global_step=trainer.global_step, steps_run=trainer.global_step - start,
                       resumed_from=start if resumed else 0, history=history, best_step=trainer.global_step)
