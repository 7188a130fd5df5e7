"""Data: loading benchmark and user files and few-shot splits (crash-safe writes: :mod:`synthpt.core.io`).

Everything returns canonical examples (task fields + ``label`` string), see
:mod:`synthpt.tasks`.
"""

from synthpt.data.loaders import load_file, load_hub
from synthpt.data.official import load_lmbff_kshot, load_official
from synthpt.data.sampling import (
    SEEDS,
    keep_agreeing,
    load_split,
    make_split,
    sample_heldout,
    sample_kshot,
    shuffle_labels,
    training_pool,
)

__all__ = [
    "SEEDS",
    "keep_agreeing",
    "load_file",
    "load_hub",
    "load_lmbff_kshot",
    "load_official",
    "load_split",
    "make_split",
    "sample_heldout",
    "sample_kshot",
    "shuffle_labels",
    "training_pool",
]
