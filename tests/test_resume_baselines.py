"""Kill -9 the baselines' training loops (FT / PFT + soft prompt, OPTIMA's adaptation phase) at a
random moment, rerun the same ``synthpt run``: the same numbers as an uninterrupted run, bit for bit."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

# bitwise claims hold on CPU as is; on CUDA they need deterministic kernels (cli.deterministic_kernels)
pytestmark = pytest.mark.usefixtures("deterministic_kernels")

STEPS = 12  # the baselines' step budget in baseline_args (conftest)


def run_cmd(method: str, data_dir: Path, out: Path, baseline_args) -> list[str]:
    return [sys.executable, "-m", "synthpt", *baseline_args(method, data_dir, out)]


def _kill_twice_and_finish(cmd, watch: Path, run_and_kill, seed: int) -> None:
    rng = random.Random(seed)
    for at in sorted(rng.sample(range(2, STEPS - 2), 2)):  # two kills at random steps
        run_and_kill(cmd, watch, at)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("method", ["ft", "pft+sp"])
def test_finetune_kill_and_resume_is_bitwise_identical(method, data_dir, tmp_path, run_and_kill, baseline_args):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(run_cmd(method, data_dir, ref, baseline_args), check=True, capture_output=True, timeout=600)
    _kill_twice_and_finish(run_cmd(method, data_dir, cut, baseline_args), cut / "finetune" / "log.jsonl", run_and_kill, 5)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, cut))
    assert mb["prompt_metrics"]["resumed_from_step"] > 0 == ma["prompt_metrics"]["resumed_from_step"]
    for key in ("test", "dev", "best_step", "final_loss"):
        assert ma["prompt_metrics"][key] == mb["prompt_metrics"][key], key
    log_a, log_b = ((d / "finetune" / "log.jsonl").read_text().splitlines() for d in (ref, cut))
    assert [json.loads(ln)["step"] for ln in log_b] == list(range(1, STEPS + 1))  # nothing lost, nothing twice
    assert log_a == log_b  # the same loss at every step: weights, AdamW and dropout masks all resumed
    assert not (cut / "finetune" / "checkpoint.pt").exists()


def test_optima_kill_and_resume_is_bitwise_identical(data_dir, tmp_path, run_and_kill, baseline_args):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(run_cmd("optima", data_dir, ref, baseline_args), check=True, capture_output=True, timeout=600)
    (src,) = (ref / "source").glob("optima-*")
    watch = cut / "source" / src.name / "log.jsonl"  # the stage's folder is named by its config, not by --out
    _kill_twice_and_finish(run_cmd("optima", data_dir, cut, baseline_args), watch, run_and_kill, 9)
    a = load_file(str(src / "adapter_model.safetensors"))["prompt_embeddings"]
    b = load_file(str(watch.parent / "adapter_model.safetensors"))["prompt_embeddings"]
    assert a.dtype == b.dtype and bool((a == b).all()), float((a - b).abs().max())
    lines = watch.read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == list(range(1, STEPS + 1))
    assert lines == (src / "log.jsonl").read_text().splitlines()  # same draws, same noise, same losses
    sa, sb = (json.loads((d / "stage.json").read_text())["result"] for d in (src, watch.parent))
    assert sa["last"] == sb["last"] and sa["final_loss"] == sb["final_loss"]
    assert sb["resumed_from_step"] > 0 == sa["resumed_from_step"]
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (ref, cut))
    assert ma["test"] == mb["test"] and ma["dev"] == mb["dev"]
    assert not (watch.parent / "checkpoint.pt").exists()
