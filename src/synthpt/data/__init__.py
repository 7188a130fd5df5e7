"""Data: loading benchmark and user files, few-shot splits, crash-safe writes.

Everything returns canonical examples (task fields + ``label`` string), see
:mod:`synthpt.tasks`.
"""

from synthpt.data.io import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_text,
    read_jsonl,
    write_json,
    write_jsonl,
)
from synthpt.data.loaders import load_file, load_hub, load_lmbff_kshot, load_official
from synthpt.data.sampling import SEEDS, load_split, make_split, sample_heldout, sample_kshot, training_pool

__all__ = [
    "SEEDS",
    "append_jsonl",
    "atomic_write_bytes",
    "atomic_write_text",
    "load_file",
    "load_hub",
    "load_lmbff_kshot",
    "load_official",
    "load_split",
    "make_split",
    "read_jsonl",
    "sample_heldout",
    "sample_kshot",
    "training_pool",
    "write_json",
    "write_jsonl",
]
