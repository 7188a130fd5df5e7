"""Checkpoints and step logs shared by every resumable training loop.

A loop saves its whole state (trainable tensors, optimizer, step, best-so-far) with
:func:`save_checkpoint` every N steps and calls :func:`load_checkpoint` at start.  The
configuration is stored inside the checkpoint, so a rerun with a changed config refuses to
mix the two instead of silently continuing.  :func:`open_step_log` reopens ``log.jsonl``
with the lines written after the checkpoint dropped, so a resumed run's log lists every
step exactly once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import torch

from synthpt.core import distributed as dist
from synthpt.core.errors import fail, first_line
from synthpt.core.io import atomic_torch_save, atomic_write_text, read_text


def save_checkpoint(path: Path | None, state: dict[str, Any]) -> None:
    """Atomically write ``state`` (main process only)."""
    if path is None or not dist.is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, path)


def load_checkpoint(path: Path | None, config: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state if ``path`` exists and was made with ``config``; None if absent."""
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torn or foreign files raise several error types
        raise fail(f"{path}: unreadable checkpoint ({first_line(e)}); rerun with --restart") from None
    if not isinstance(state, dict) or state.get("config") != config:
        raise fail(f"{path}: checkpoint was made with another configuration; rerun with --restart "
                   "or choose another --out")
    return state


def _committed_lines(path: Path, lines: list[str], resumed_at: int) -> list[str]:
    """The lines of ``path`` for steps up to ``resumed_at`` (the checkpoint's step).

    A kill mid-write leaves a torn last line.  A step's line is flushed before that step's
    checkpoint is saved, so a torn last line is always of a step after the checkpoint: it is
    dropped like the other uncommitted steps.  A bad line anywhere else is not something a
    kill leaves, so it is one clear error rather than a guess."""
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    kept: list[str] = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        try:
            committed = json.loads(ln)["step"] <= resumed_at
        except (ValueError, TypeError, KeyError):
            if i == last:
                break
            raise fail(f"{path}: line {i + 1}: not a step record; rerun with --restart") from None
        if committed:
            kept.append(ln)
    return kept


def open_step_log(out: Path | None, resumed_at: int | None) -> IO[str] | None:
    """``out/log.jsonl`` for appending (main process only), cut back to ``resumed_at`` steps.

    A fresh run starts an empty log.  On resume the cut is one atomic rewrite, made only when
    there is something to cut, so a kill during it leaves the old log, never an empty one."""
    if out is None or not dist.is_main():
        return None
    out.mkdir(parents=True, exist_ok=True)
    path = out / "log.jsonl"
    if resumed_at is None or not path.is_file():
        return open(path, "w")
    lines = read_text(path).splitlines()
    kept = _committed_lines(path, lines, resumed_at)
    if kept != lines:
        atomic_write_text(path, "".join(ln + "\n" for ln in kept))
    return open(path, "a")


def rng_state() -> dict[str, Any]:
    """The global torch RNG states.  Dropout draws from them, so a loop that trains with dropout
    keeps them in its checkpoint and a resumed run draws the masks an uninterrupted one draws."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
