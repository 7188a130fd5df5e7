"""Saving and loading a tuned generator: label prompts, weight net and ``generator.json``
(the files themselves are written and read by :mod:`synthpt.core.saving`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthpt.core.errors import fail, first_line
from synthpt.core.io import load_safetensors
from synthpt.core.saving import WEIGHT_NET, load_label_prompts, read_record, save_label_prompts
from synthpt.tasks import Task


def save_generator(out: Path, task: Task, Q: torch.Tensor, W: nn.Module | None) -> None:
    save_label_prompts(out, task.labels, Q.detach(), None if W is None else W.state_dict())


GENERATOR_META_KEYS = ("task", "model", "mode", "config", "config_hash")


def read_generator_meta(gen_dir: str | Path) -> dict[str, Any]:
    """``generator.json`` of a tuned generator, checked: one clear error for a torn or foreign file."""
    path = Path(gen_dir) / "generator.json"
    if not path.is_file():
        raise fail(f"{gen_dir}: not a tuned generator (no generator.json); run 'synthpt generator tune' first")
    what, hint = "not a valid generator description", "rerun 'synthpt generator tune' with --restart"
    meta = read_record(path, GENERATOR_META_KEYS, what, hint)
    if not isinstance(meta["task"], dict):
        raise fail(f"{path}: {what} (missing task); {hint}")
    return meta


def load_prompts(gen_dir: str | Path, task: Task) -> torch.Tensor:
    """(L, n, d) label prompts in the task's label order."""
    return load_label_prompts(gen_dir, task.labels)


def load_weight_net(gen_dir: str | Path, W: nn.Module) -> None:
    """Load ``weight_net.safetensors`` (weighted modes) into ``W``, e.g. to inspect the token weights
    a tuned DawGen generator learnt."""
    path = Path(gen_dir) / WEIGHT_NET
    if not path.is_file():
        raise fail(f"{path}: not found; only dawgen and fewgen generators have a weight net")
    try:
        W.load_state_dict(load_safetensors(path))
    except RuntimeError as e:
        raise fail(f"{path}: does not fit this weight net ({first_line(e)})") from None
