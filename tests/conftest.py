"""Shared fixtures: the benchmark data folder next to the repository (``../shared/data``)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark files; tests that need them skip where the folder is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Built-in tiny models are materialised in a per-session cache, never the user's.

    The real SmolLM2 model is expensive to de-quantise, so its cache folder is reused from
    ``SYNTHPT_TEST_MODEL_CACHE`` when CI provides one (see .ci/run)."""
    import os

    os.environ.setdefault("SYNTHPT_CACHE", str(tmp_path_factory.mktemp("synthpt-cache")))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="session")
def rte_split(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The LM-BFF RTE 16-shot seed-42 split, written once per session."""
    from synthpt.data import make_split
    from synthpt.tasks import get_task

    out = tmp_path_factory.mktemp("splits") / "rte-16-42"
    make_split(get_task("rte"), 16, 42, data_dir, out)
    return out


@pytest.fixture(scope="session")
def tiny_t5():
    from synthpt.models import load_backbone

    return load_backbone("tiny-t5")


@pytest.fixture(scope="session")
def tiny_gpt2():
    from synthpt.models import load_backbone

    return load_backbone("tiny-gpt2")
