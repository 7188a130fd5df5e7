"""Shared fixtures: the benchmark data folder next to the repository (``../shared/data``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Tiny models gain nothing from intra-op threads, and on a busy 2-core machine OpenMP threads
# spinning against other processes slow a step down 20-50x. One thread, here and in the
# subprocesses the tests start.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real benchmark files; tests that need them skip where the folder is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"benchmark data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Built-in models are materialised in a per-session cache unless SYNTHPT_CACHE names one
    (set it to reuse the de-quantised SmolLM2 across runs); nothing reaches a hub."""
    if not os.environ.get("SYNTHPT_CACHE"):
        os.environ["SYNTHPT_CACHE"] = str(tmp_path_factory.mktemp("synthpt-cache"))
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
    from synthpt.core.models import load_backbone

    return load_backbone("tiny-t5")


@pytest.fixture(scope="session")
def tiny_gpt2():
    from synthpt.core.models import load_backbone

    return load_backbone("tiny-gpt2")


def _lines(path: Path) -> int:
    try:
        return len(path.read_bytes().splitlines())
    except OSError:
        return 0


def _run_and_kill(cmd: list[str], watch: Path, at_line: int) -> None:
    """Start ``cmd``, SIGKILL it once ``watch`` has ``at_line`` lines (or it exits by itself)."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    deadline = time.time() + 300
    while proc.poll() is None and _lines(watch) < at_line and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="session")
def run_and_kill():
    """The kill-at-a-random-moment helper of the resume tests."""
    return _run_and_kill


def _baseline_args(method: str, data_dir: Path, out: Path) -> list[str]:
    """``synthpt run`` arguments of a baseline with a tiny budget: 12 steps of FT / PFT (checkpoint
    every 2) or of OPTIMA's adaptation phase (checkpoint every 2), then 2 steps of prompt tuning."""
    common = ["run", "--task", "rte", "--method", method, "--data-dir", str(data_dir), "--model", "tiny-t5",
              "--k", "8", "--max-eval", "16", "--seed", "1", "--quiet", "--out", str(out)]
    knobs = {"prompt_tuning.max_length": 64, "prompt_tuning.prompt_length": 4}
    if method == "optima":
        knobs.update({"options.optima_steps": 12, "options.source_checkpoint_every": 2, "options.source_examples": 24,
                      "options.optima_unlabeled": 16, "prompt_tuning.max_steps": 2, "prompt_tuning.eval_every": 2,
                      "prompt_tuning.batch_size": 4})
    else:
        knobs.update({"options.ft_steps": 12, "options.ft_eval_every": 4, "options.ft_checkpoint_every": 2,
                      "options.ft_batch_size": 4, "options.ft_lr": 1e-3})
    return common + [arg for k, v in knobs.items() for arg in ("--set", f"{k}={v}")]


@pytest.fixture(scope="session")
def baseline_args():
    """The baselines' tiny ``synthpt run`` (resume and two-process tests)."""
    return _baseline_args


@pytest.fixture
def deterministic_kernels(monkeypatch: pytest.MonkeyPatch):
    """SYNTHPT_DETERMINISTIC=1 for the commands a test runs (in process or as subprocesses), and the
    process-wide ``torch.use_deterministic_algorithms`` switch put back afterwards."""
    monkeypatch.setenv("SYNTHPT_DETERMINISTIC", "1")
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


@pytest.fixture(scope="session")
def tiny_gemma(tiny_gpt2):
    """A random 2-layer Gemma 3: its embedding module multiplies token vectors by √d (8 at d = 64),
    as the real Gemma 3 270M does (25.3 at d = 640); the ByT5 tokenizer of the tiny built-ins."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from synthpt.core.models import Backbone

    tok = tiny_gpt2.tokenizer
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                           pad_token_id=tok.pad_token_id, sliding_window=64)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = Gemma3ForCausalLM(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Backbone(model=model, tokenizer=tok, name_or_path="tiny-gemma3 (random)", is_seq2seq=False)
