"""Two CPU processes under ``accelerate launch`` give the single-process result."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

pytestmark = pytest.mark.skipif(shutil.which("accelerate") is None and not Path(sys.executable).with_name(
    "accelerate").exists(), reason="accelerate CLI not installed")

FEWGEN_RTE = "fewgen-synthetic/RTE/gen-train.json"


def _accelerate() -> str:
    local = Path(sys.executable).with_name("accelerate")
    return str(local) if local.exists() else "accelerate"


def _free_port() -> int:
    """A port of its own for each launch (tests may run side by side)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(*args: str) -> list[str]:
    """``accelerate launch --cpu`` with 2 processes."""
    return [_accelerate(), "launch", "--cpu", "--num_processes", "2", "--main_process_port", str(_free_port()),
            "-m", "synthpt", *args]


def _run(cmd: list[str], timeout: int = 600, **env_extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env_extra}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    # On failure show the workers' own errors too: the launcher's traceback alone fills the tail.
    assert r.returncode == 0, _worker_errors(r.stderr) + "\n...\n" + r.stderr[-3000:]
    return r


def _worker_errors(stderr: str) -> str:
    """The lines of a failed launch that name a cause (a worker's exception, a fatal signal)."""
    keys = ("Error", "error:", "Exception", "terminate called", "what():", "Signal", "[rank")
    return "\n".join(ln for ln in stderr.splitlines() if any(k in ln for k in keys))[-4000:]


def test_prompt_tune_two_processes_equals_one(rte_split, data_dir, tmp_path):
    args = ["prompt-tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-t5",
            "--synthetic", str(data_dir / FEWGEN_RTE), "--strategy", "paired", "--gradient-surgery",
            "--max-steps", "6", "--batch-size", "8", "--seed", "1", "--prompt-length", "10",
            "--max-length", "128", "--max-eval", "40", "--eval-every", "3"]
    _run([sys.executable, "-m", "synthpt", *args, "--out", str(tmp_path / "one")])
    _run(_launch(*args, "--out", str(tmp_path / "two")))
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert one["processes"] == 1 and two["processes"] == 2
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))["prompt_embeddings"]
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))["prompt_embeddings"]
    assert float((a - b).abs().max()) <= 1e-5
    assert one["test"] == two["test"] and one["conflict_rate"] == two["conflict_rate"]


def test_zero_shot_filter_two_processes_equals_one(rte_split, tmp_path):
    """Every process keeps the same synthetic rows (the dev accuracy is gathered, the rows scored
    whole), so two processes train what one does."""
    from synthpt.core.io import write_jsonl

    syn = tmp_path / "syn.jsonl"
    write_jsonl(syn, [{"text1": f"premise {i}", "text2": f"hypothesis {i}", "label": ["entailment", "not_entailment"][i % 2]}
                      for i in range(40)])
    args = ["prompt-tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-t5", "--synthetic", str(syn),
            "--strategy", "paired", "--zero-shot-filter", "0", "--max-steps", "2", "--batch-size", "4",
            "--prompt-length", "4", "--max-length", "64", "--max-eval", "8", "--eval-every", "2"]
    _run([sys.executable, "-m", "synthpt", *args, "--out", str(tmp_path / "one")])
    _run(_launch(*args, "--out", str(tmp_path / "two")))
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("one", "two"))
    assert two["processes"] == 2 and one["zero_shot_filter"] == two["zero_shot_filter"]
    assert one["zero_shot_filter"]["applied"] and one["n_synthetic"] == two["n_synthetic"]
    a = load_file(str(tmp_path / "one" / "adapter_model.safetensors"))["prompt_embeddings"]
    b = load_file(str(tmp_path / "two" / "adapter_model.safetensors"))["prompt_embeddings"]
    assert float((a - b).abs().max()) <= 1e-5


def test_generate_two_processes_distinct_examples(data_dir, tmp_path):
    from synthpt.data import load_file, make_split
    from synthpt.generator import GeneratorConfig, run_generator_tuning
    from synthpt.tasks import get_task

    task = get_task("mrpc")
    split = tmp_path / "mrpc"
    make_split(task, 16, 42, data_dir, split)
    gen = tmp_path / "gen"
    run_generator_tuning(task, split, "tiny-gpt2", gen, GeneratorConfig(mode="plain", max_steps=2, max_length=64),
                         progress=False)
    out = tmp_path / "syn.jsonl"
    _run(_launch("generate", "--generator", str(gen), "--n-per-label", "20", "--max-new-tokens", "24",
                 "--batch-size", "8", "--out", str(out)))
    rows = load_file(out, task)
    by_label = {lab: [r for r in rows if r["label"] == lab] for lab in task.labels}
    assert {lab: len(v) for lab, v in by_label.items()} == {"0": 20, "1": 20}
    keys = [(r["text1"], r["text2"], r["label"]) for r in rows]
    assert len(set(keys)) == len(keys)


def test_generator_tune_two_processes(rte_split, tmp_path):
    """DawGen's bi-level step under two processes: each takes half of every balanced batch, the
    gradients of its shares of the losses are summed, only the main process writes (one log line per step)."""
    from synthpt.generator.saving import read_generator_meta

    out = tmp_path / "gen2"
    _run(_launch("generator", "tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-gpt2",
                 "--mode", "dawgen", "--max-steps", "3", "--batch-size", "4", "--prompt-length", "4",
                 "--max-length", "48", "--out", str(out)))
    log = [json.loads(ln) for ln in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(r["L_disc"] is not None and r["L_dist"] is not None for r in log)
    q = load_file(str(out / "prompts.safetensors"))
    w = load_file(str(out / "weight_net.safetensors"))
    assert all(bool(t.isfinite().all()) for t in [*q.values(), *w.values()])
    assert read_generator_meta(out)["task"]["name"] == "rte"


@pytest.mark.parametrize("method", ["pft+sp", "optima"])
def test_baseline_two_processes_equals_one(method, data_dir, tmp_path, baseline_args):
    """FT / PFT and OPTIMA's adaptation phase run replicated: two processes give the one-process
    numbers at every step, write their log once, and the prompt tuning after OPTIMA is sharded."""
    _run([sys.executable, "-m", "synthpt", *baseline_args(method, data_dir, tmp_path / "one")])
    _run(_launch(*baseline_args(method, data_dir, tmp_path / "two")))
    one, two = (json.loads((tmp_path / d / "metrics.json").read_text())["prompt_metrics"] for d in ("one", "two"))
    assert one["processes"] == 1 and two["processes"] == 2
    assert one["test"] == two["test"] and one["dev"] == two["dev"]
    if method == "optima":
        (a_dir,), (b_dir,) = ((tmp_path / d / "source").glob("optima-*") for d in ("one", "two"))
        a, b = (load_file(str(d / "adapter_model.safetensors"))["prompt_embeddings"] for d in (a_dir, b_dir))
        assert float((a - b).abs().max()) <= 1e-5
    else:
        a_dir, b_dir = tmp_path / "one" / "finetune", tmp_path / "two" / "finetune"
    log_a, log_b = ((d / "log.jsonl").read_text().splitlines() for d in (a_dir, b_dir))
    assert len(log_b) == 12 and log_a == log_b


def _same_record(a: dict, b: dict, rel: float) -> bool:
    """Two log records with the same keys and values equal to ``rel`` (None where a term is absent)."""
    return a.keys() == b.keys() and all(a[k] == b[k] if a[k] is None or b[k] is None else a[k] == pytest.approx(b[k], rel=rel)
                                        for k in a)


def test_generator_tune_two_processes_equals_one(rte_split, tmp_path):
    """The CLI in float32: two processes log the losses and save the prompts one process does.  The
    weight net gets a looser bound: Adam divides by |g| + eps, so on gradient components near its
    eps (W's projection, moved only through the meta-gradient) float32 rounding in the sums over
    processes comes out as ~1e-5 in the parameter; the float64 test below checks the math tightly."""
    args = ["generator", "tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-gpt2", "--mode", "dawgen",
            "--max-steps", "2", "--batch-size", "4", "--prompt-length", "4", "--max-length", "96"]
    _run([sys.executable, "-m", "synthpt", *args, "--out", str(tmp_path / "one")])
    _run(_launch(*args, "--out", str(tmp_path / "two")))
    for name, tol in (("prompts.safetensors", 1e-5), ("weight_net.safetensors", 1e-4)):
        a, b = (load_file(str(tmp_path / d / name)) for d in ("one", "two"))
        assert a.keys() == b.keys()
        assert max(float((a[k] - b[k]).abs().max()) for k in a) <= tol, name
    log_a, log_b = ([json.loads(ln) for ln in (tmp_path / d / "log.jsonl").read_text().splitlines()] for d in ("one", "two"))
    assert len(log_a) == len(log_b) == 2
    assert all(_same_record(ra, rb, 1e-5) for ra, rb in zip(log_a, log_b))


def test_generator_step_two_processes_equals_one_in_float64(rte_split, tmp_path):
    """Every mode, in float64: Q, W and the logged losses of two processes are one process's to
    1e-10 — with one row of each label per process (batch 4: L_dist's triplets all cross processes)
    and with shards holding unequal label counts (batch 6)."""
    worker = str(Path(__file__).with_name("gen_worker.py"))
    _run([sys.executable, worker, str(rte_split), str(tmp_path / "one.pt"), "2", "4,6"])
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
          worker, str(rte_split), str(tmp_path / "two.pt"), "2", "4,6"], ACCELERATE_USE_CPU="true")
    import torch

    one, two = (torch.load(tmp_path / f, weights_only=False) for f in ("one.pt", "two.pt"))
    assert (one.pop("processes"), two.pop("processes")) == (1, 2)
    assert sorted(one) == sorted(two) and len(one) == 6
    for key, a in one.items():
        b = two[key]
        assert float((a["Q"] - b["Q"]).abs().max()) <= 1e-10, key
        assert max(float((a["W"][n] - b["W"][n]).abs().max()) for n in a["W"]) <= 1e-10, key
        assert all(_same_record(ra, rb, 1e-10) for ra, rb in zip(a["log"], b["log"], strict=True)), key
        if key[0] == "dawgen":
            assert all(r["L_dist"] > 0 for r in b["log"]), key  # triplets across processes count


def test_commands_leave_the_process_group_they_ran_in(tmp_path):
    """A rank that exits with its gloo group alive can abort at exit (SIGABRT after the work is done,
    seen in fresh-clone runs of the launches above): every command tears the group down on return."""
    import argparse

    import torch.distributed as torch_dist

    from synthpt.cli.main import run
    from synthpt.core import distributed as dist

    dist.shutdown()  # no process group: nothing to do
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert torch_dist.is_initialized()
        assert run(lambda ns: None, argparse.Namespace()) == 0
        assert not torch_dist.is_initialized()
    finally:  # a failure here must not leave a group behind for the tests that follow in this process
        if torch_dist.is_initialized():
            torch_dist.destroy_process_group()
