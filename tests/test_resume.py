"""Kill -9 at a random moment, rerun the same command: the result is bitwise the same."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

FEWGEN_RTE = "fewgen-synthetic/RTE/gen-train.json"


# bitwise claims hold on CPU as is; on CUDA they need deterministic kernels (cli.deterministic_kernels)
pytestmark = pytest.mark.usefixtures("deterministic_kernels")


def _cmd(split: Path, data_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synthpt", "prompt-tune", "--task", "rte", "--data", str(split), "--model", "tiny-t5",
            "--synthetic", str(data_dir / FEWGEN_RTE), "--strategy", "paired", "--gradient-surgery",
            "--max-steps", "60", "--checkpoint-every", "5", "--eval-every", "10", "--seed", "1",
            "--prompt-length", "10", "--max-length", "128", "--max-eval", "40", "--out", str(out)]


def test_prompt_tune_kill_and_resume_is_bitwise_identical(rte_split, data_dir, tmp_path, run_and_kill):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(_cmd(rte_split, data_dir, ref), check=True, capture_output=True, timeout=600)
    rng = random.Random(1234)
    for at in sorted(rng.sample(range(3, 58), 2)):  # two kills at random steps
        run_and_kill(_cmd(rte_split, data_dir, cut), cut / "log.jsonl", at)
        assert not (cut / "metrics.json").exists()
    r = subprocess.run(_cmd(rte_split, data_dir, cut), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    a = load_file(str(ref / "adapter_model.safetensors"))["prompt_embeddings"]
    b = load_file(str(cut / "adapter_model.safetensors"))["prompt_embeddings"]
    assert a.dtype == b.dtype and bool((a == b).all()), float((a - b).abs().max())
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, cut))
    assert mb["resumed_from_step"] > 0
    for key in ("test", "dev", "best_step", "conflict_rate"):
        assert ma[key] == mb[key], key
    steps = [json.loads(ln)["step"] for ln in (cut / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 61))  # nothing lost, nothing twice


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_is_a_clear_error(rte_split, data_dir, tmp_path, damage):
    out = tmp_path / "run"
    out.mkdir()
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(b"" if damage == "truncate" else b"\x00not a checkpoint")
    r = subprocess.run(_cmd(rte_split, data_dir, out), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "checkpoint" in r.stderr and "Traceback" not in r.stderr
