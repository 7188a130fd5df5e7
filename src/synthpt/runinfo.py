"""What a run records about itself: library versions and a hash of its configuration.

The hash names a stage's output by what produced it, so a rerun with the same config
finds its finished work (or its checkpoint) and a changed config never reuses stale work.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from typing import Any


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("synthpt", "torch", "transformers", "peft", "accelerate", "datasets"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def config_hash(cfg: dict[str, Any], length: int = 12) -> str:
    blob = json.dumps(cfg, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]
