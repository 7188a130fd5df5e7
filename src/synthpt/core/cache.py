"""Content-addressed stages: a stage's output is named by the hash of its configuration.

Each stage (split, generator, synthetic data, prompt tuning) has a *target* (a folder or
file) and a *marker* (a small JSON file) that records the config hash, the status
(``running`` / ``done``), the stage's result dict and how long it took.

- marker ``done`` with the same hash: the stage is skipped (nothing is loaded or redone);
- marker ``running`` with the same hash: the stage function is called again and resumes
  from its own checkpoint (all stage functions of synthpt are resumable);
- marker with another hash (a knob changed): the target is deleted and the stage reruns;
  stages after it change hash too, because their config includes this stage's hash.

:class:`StageResult` says which: ``ran`` is False when the stage was read back.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthpt.core.errors import SynthptError
from synthpt.core.io import read_json_object, write_json
from synthpt.core.runinfo import config_hash


@dataclass
class StageResult:
    name: str
    key: str
    target: Path
    result: dict[str, Any]
    seconds: float  # time the stage took when it ran (also when read back from the cache)
    ran: bool  # False: read from the cache


def _read_marker(path: Path) -> dict[str, Any] | None:
    """The marker's record; None when there is none or it is unreadable, torn or not an object
    (the stage then runs as if never run: its own checkpoint decides what is kept)."""
    try:
        return read_json_object(path, "stage marker")
    except SynthptError:
        return None


def _remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def run_stage(name: str, target: Path, marker: Path, key_cfg: dict[str, Any],
              fn: Callable[[bool], dict[str, Any] | None], extra_paths: tuple[Path, ...] = ()) -> StageResult:
    """Run ``fn(restart)`` unless ``marker`` says this exact config is done.

    ``fn`` builds ``target``; ``restart`` is True when an older run with another config was
    removed first (pass it on to the stage's own ``restart`` flag).
    """
    key = config_hash(key_cfg)
    old = _read_marker(marker)
    if old and old.get("key") == key and old.get("status") == "done":
        return StageResult(name, key, target, old.get("result") or {}, float(old.get("seconds", 0.0)), False)
    restart = False
    if old and old.get("key") != key:
        _remove([target, *extra_paths])
        restart = True
    marker.parent.mkdir(parents=True, exist_ok=True)
    write_json(marker, {"stage": name, "key": key, "status": "running", "config": key_cfg})
    t0 = time.perf_counter()
    result = fn(restart) or {}
    seconds = round(time.perf_counter() - t0, 2)
    result = json.loads(json.dumps(result, default=str))
    write_json(marker, {"stage": name, "key": key, "status": "done", "seconds": seconds, "config": key_cfg,
                        "result": result})
    return StageResult(name, key, target, result, seconds, True)
