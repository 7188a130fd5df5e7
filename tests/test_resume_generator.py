"""Kill -9 the generator stages at a random moment, rerun the same command: nothing lost, nothing twice.

``synthpt generator tune`` resumed after two SIGKILLs writes prompts and weight net bitwise equal
to an uninterrupted run, with log steps 1..N exactly once; ``synthpt generate`` resumed after a
SIGKILL writes exactly the JSONL of an uninterrupted run (same rows, same order, no duplicates).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

STEPS = 12


# bitwise claims hold on CPU as is; on CUDA they need deterministic kernels (cli.deterministic_kernels)
pytestmark = pytest.mark.usefixtures("deterministic_kernels")


@pytest.fixture(scope="module")
def mrpc_split(data_dir, tmp_path_factory) -> Path:
    from synthpt.data import make_split
    from synthpt.tasks import get_task

    out = tmp_path_factory.mktemp("splits") / "mrpc-16-42"
    make_split(get_task("mrpc"), 16, 42, data_dir, out)
    return out


def _tune_cmd(split: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synthpt", "generator", "tune", "--task", "mrpc", "--data", str(split),
            "--model", "tiny-gpt2", "--mode", "dawgen", "--max-steps", str(STEPS), "--checkpoint-every", "3",
            "--batch-size", "2", "--prompt-length", "4", "--max-length", "32", "--seed", "3", "--out", str(out)]


def test_generator_tune_kill_and_resume_is_bitwise_identical(mrpc_split, tmp_path, run_and_kill):
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    subprocess.run(_tune_cmd(mrpc_split, ref), check=True, capture_output=True, timeout=600)
    rng = random.Random(7)
    for at in sorted(rng.sample(range(2, STEPS - 2), 2)):  # two kills at random steps
        run_and_kill(_tune_cmd(mrpc_split, cut), cut / "log.jsonl", at)
        assert not (cut / "generator.json").exists()
    r = subprocess.run(_tune_cmd(mrpc_split, cut), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((cut / "generator.json").read_text())
    assert meta["summary"]["resumed_from_step"] > 0
    for name in ("prompts.safetensors", "weight_net.safetensors"):
        a, b = load_file(str(ref / name)), load_file(str(cut / name))
        assert a.keys() == b.keys()
        for k in a:
            assert a[k].dtype == b[k].dtype and bool((a[k] == b[k]).all()), (name, k, float((a[k] - b[k]).abs().max()))
    steps = [json.loads(ln)["step"] for ln in (cut / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))  # nothing lost, nothing twice
    ref_log = (ref / "log.jsonl").read_text().splitlines()
    assert (cut / "log.jsonl").read_text().splitlines() == ref_log  # the same losses at every step
    assert not (cut / "checkpoint.pt").exists()


@pytest.fixture(scope="module")
def tuned(mrpc_split, tmp_path_factory) -> Path:
    from synthpt.generator import GeneratorConfig, run_generator_tuning
    from synthpt.tasks import get_task

    out = tmp_path_factory.mktemp("gen")
    cfg = GeneratorConfig(mode="plain", max_steps=2, prompt_length=4, max_length=48, batch_size=4)
    run_generator_tuning(get_task("mrpc"), mrpc_split, "tiny-gpt2", out, cfg, progress=False)
    return out


def _gen_cmd(gen: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "synthpt", "generate", "--generator", str(gen), "--out", str(out),
            "--n-per-label", "40", "--batch-size", "10", "--max-new-tokens", "8", "--seed", "5",
            "--consistency-margin=-inf", "--near-dup-threshold", "2"]


def test_generate_kill_and_resume_writes_the_same_jsonl(tuned, tmp_path, run_and_kill):
    ref, cut = tmp_path / "ref.jsonl", tmp_path / "cut.jsonl"
    subprocess.run(_gen_cmd(tuned, ref), check=True, capture_output=True, timeout=600)
    ref_rows = ref.read_text().splitlines()
    assert len(ref_rows) == 80
    at = random.Random(11).randrange(10, 60)
    run_and_kill(_gen_cmd(tuned, cut), cut, at)
    assert not cut.with_name(cut.name + ".report.json").exists(), "killed too late to test resuming"
    r = subprocess.run(_gen_cmd(tuned, cut), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = cut.read_text().splitlines()
    assert rows == ref_rows  # same examples, same order: none lost, none twice
    keys = [tuple(json.loads(x)[f] for f in ("text1", "text2", "label")) for x in rows]
    assert len(set(keys)) == len(keys)
    rep_a, rep_b = (json.loads(p.with_name(p.name + ".report.json").read_text()) for p in (ref, cut))
    for key in ("kept", "attempts", "dropped"):
        assert rep_a[key] == rep_b[key], key
    assert not cut.with_name(cut.name + ".state.json").exists()
