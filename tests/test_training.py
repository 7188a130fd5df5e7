"""The trainer contract (synthpt.core.training): every loop has its verbs and no base class, and the
shared step loop resumes from the last checkpoint with every step logged exactly once."""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path

import pytest

from synthpt.core.checkpointing import save_checkpoint
from synthpt.core.training import Trainer, TrainResult, checkpoint_path, resume, run_steps

VERBS = ("train_step", "state_dict", "load_state_dict", "save_checkpoint", "try_resume", "fit")


class Toy:
    """The contract and nothing else: one number, x += step."""

    def __init__(self, out: Path, max_steps: int = 7, die_at: int | None = None) -> None:
        self.out, self.max_steps, self.die_at = out, max_steps, die_at
        self.x, self.global_step = 0, 0

    def train_step(self, step: int) -> dict:
        if step == self.die_at:
            raise KeyboardInterrupt("killed")
        self.x += step
        return {"step": step + 1, "x": self.x}

    def state_dict(self) -> dict:
        return {"step": self.global_step, "x": self.x, "config": {"max_steps": self.max_steps}}

    def load_state_dict(self, st: dict) -> None:
        self.global_step, self.x = st["step"], st["x"]

    def save_checkpoint(self) -> None:
        save_checkpoint(checkpoint_path(self.out), self.state_dict())

    def try_resume(self) -> bool:
        return resume(self, self.out, {"max_steps": self.max_steps})

    def fit(self) -> TrainResult:
        return run_steps(self, max_steps=self.max_steps, checkpoint_every=2, out=self.out, desc="toy", progress=False)


def test_run_steps_resumes_from_the_last_checkpoint(tmp_path):
    assert isinstance(Toy(tmp_path), Trainer)
    ref = Toy(tmp_path / "ref").fit()
    assert (ref.global_step, ref.steps_run, ref.resumed_from) == (7, 7, 0) and ref.history[-1]["x"] == 21
    with pytest.raises(KeyboardInterrupt):
        Toy(tmp_path / "cut", die_at=5).fit()  # steps 1-5 done, checkpoints after steps 2 and 4
    res = Toy(tmp_path / "cut").fit()
    assert (res.global_step, res.steps_run, res.resumed_from) == (7, 3, 4)
    assert [r["step"] for r in res.history] == [5, 6, 7] and res.history[-1]["x"] == 21
    logged = [json.loads(ln)["step"] for ln in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 8))  # the 5th step of the killed run is dropped, not listed twice
    done = Toy(tmp_path / "cut")  # the checkpoint of step 6 is still there (the caller deletes it)
    assert done.try_resume() and done.global_step == 6


def test_every_training_loop_keeps_the_contract_without_a_base_class():
    from synthpt.generator.trainer import GeneratorTrainer
    from synthpt.methods.baselines.finetune import FineTuneTrainer
    from synthpt.methods.baselines.lora import LoraTrainer
    from synthpt.methods.baselines.optima import OptimaTrainer
    from synthpt.prompt_tuning.trainer import PromptTrainer

    for cls in (PromptTrainer, GeneratorTrainer, FineTuneTrainer, OptimaTrainer, LoraTrainer):
        assert cls.__bases__ == (object,), cls  # fixed verbs, no implementation inherited
        assert all(callable(getattr(cls, v, None)) for v in VERBS), cls
        assert typing.get_type_hints(cls.fit)["return"] is TrainResult, cls
        assert "self.global_step = 0" in inspect.getsource(cls.__init__), cls



def test_resume_drops_a_torn_last_log_line_and_names_a_bad_one(tmp_path):
    """A kill mid-write tears the last line, always of a step after the checkpoint: dropped.  A bad
    line elsewhere is not what a kill leaves: one clear error naming it."""
    from synthpt.core.errors import SynthptError

    with pytest.raises(KeyboardInterrupt):
        Toy(tmp_path / "cut", die_at=5).fit()  # checkpoint after step 4, steps 1-5 logged
    log = tmp_path / "cut" / "log.jsonl"
    with log.open("a") as fh:
        fh.write('{"step": 6, "x')  # torn by the kill
    res = Toy(tmp_path / "cut").fit()
    assert res.resumed_from == 4
    assert [json.loads(ln)["step"] for ln in log.read_text().splitlines()] == list(range(1, 8))
    (tmp_path / "cut" / "checkpoint.pt").unlink()
    with pytest.raises(KeyboardInterrupt):
        Toy(tmp_path / "bad", die_at=5).fit()
    lines = (tmp_path / "bad" / "log.jsonl").read_text().splitlines()
    (tmp_path / "bad" / "log.jsonl").write_text("\n".join([lines[0], "[1, 2]", *lines[1:]]) + "\n")
    with pytest.raises(SynthptError, match=r"log\.jsonl: line 2: not a step record; rerun with --restart"):
        Toy(tmp_path / "bad").fit()
