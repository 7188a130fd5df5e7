"""What a run records about itself: library versions and a hash of its configuration.

The hash names a stage's output by what produced it, so a rerun with the same config
finds its finished work (or its checkpoint) and a changed config never reuses stale work.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata
from typing import Any

_COMMAND: list[str | None] = [None]


def set_command(text: str | None) -> None:
    """Record how this process was started (the CLI line, or the Python call) for the adapter cards."""
    _COMMAND[0] = text


def command() -> str | None:
    """What :func:`set_command` recorded (None in code that called the library directly)."""
    return _COMMAND[0]


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on, for the run's config.json."""
    out = {"python": platform.python_version()}
    for pkg in ("synthpt", "torch", "transformers", "peft", "accelerate", "datasets"):
        out[pkg] = _version(pkg)
    return out


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        # imported without install metadata (a source tree on PYTHONPATH, as on a GPU box
        # that cannot pip install): the module still says what it is
        v = getattr(sys.modules.get(pkg), "__version__", None)
        return f"{v} (no install metadata)" if v else "not installed"


def config_hash(cfg: dict[str, Any], length: int = 12) -> str:
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
