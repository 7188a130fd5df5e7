"""The generator figures of ``synthpt bench`` (measurements, not timed tests).

- :func:`dawgen_step_ratio`: median time of one DawGen bi-level step over one plain
  generator prompt-tuning step, same model and batch (target ≤ 3.5).  The plain step runs
  with the model's default attention kernels (its natural best); DawGen needs the eager ones
  (double backward), and the ratio against an eager plain step is reported too.
- :func:`generation_speedup`: examples/s of batched, KV-cached sampling (one ``generate``
  call for a batch of ``[Q_l ; context]`` rows) over a per-example ``generate`` loop
  (target ≥ 3), with tokens/s of both.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch

from synthpt.core import distributed as dist
from synthpt.core.models import load_backbone
from synthpt.tasks import get_task

DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _mrpc_train(data_dir: str | Path | None) -> list[dict[str, Any]]:
    """The LM-BFF MRPC 16-shot train set where the data is present, else a small stand-in."""
    from synthpt.data import load_lmbff_kshot

    d = Path(data_dir) if data_dir else DATA_DIR
    if d.is_dir():
        try:
            got = load_lmbff_kshot(get_task("mrpc"), 16, 42, d)
            if got is not None:
                return got[0]
        except Exception:  # fall back to the stand-in below
            pass
    words = "the company said on friday that its shares rose sharply after the report".split()
    return [{"text1": " ".join(words[i % 5:]), "text2": " ".join(words[: 8 + i % 5]), "label": str(i % 2)}
            for i in range(32)]


def _median_time(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def dawgen_step_ratio(model: str = "tiny-gpt2", batch_size: int = 8, reps: int = 7, max_length: int = 128,
                      data_dir: str | Path | None = None) -> dict[str, Any]:
    from synthpt.generator import GeneratorConfig, GeneratorTrainer

    task = get_task("mrpc")
    train = _mrpc_train(data_dir)
    times = {}
    for mode, eager in (("dawgen", True), ("plain", False), ("plain", True)):
        bb = load_backbone(model, device=dist.device())
        if eager and hasattr(bb.model, "set_attn_implementation"):
            bb.model.set_attn_implementation("eager")
        cfg = GeneratorConfig(mode=mode, batch_size=batch_size, max_length=max_length, max_steps=10 ** 6)
        tr = GeneratorTrainer(task, bb, cfg, train, progress=False)
        times[(mode, eager)] = _median_time(lambda tr=tr: tr.train_step(0), reps)
    ratio = times[("dawgen", True)] / times[("plain", False)]
    return {"name": "dawgen_step_vs_plain_step", "value": round(ratio, 3), "target": 3.5, "holds": ratio <= 3.5,
            "dawgen_step_s": round(times[("dawgen", True)], 4), "plain_step_s": round(times[("plain", False)], 4),
            "ratio_vs_eager_plain": round(times[("dawgen", True)] / times[("plain", True)], 3),
            "model": model, "batch_size": batch_size, "max_length": max_length, "reps": reps,
            "device": str(bb.device)}


def generation_speedup(model: str = "tiny-gpt2", n: int = 32, max_new_tokens: int = 32,
                       data_dir: str | Path | None = None) -> dict[str, Any]:
    from synthpt.generator.generation import GenerationConfig, Sampler
    from synthpt.generator.trainer import init_label_prompts

    task = get_task("mrpc")
    train = _mrpc_train(data_dir)
    bb = load_backbone(model, device=dist.device())
    prompts = init_label_prompts(bb, task, 20, 0, True)
    # multi_line: rows run to EOS / max_new_tokens in both modes (no early line-end stop in the loop only)
    cfg = GenerationConfig(batch_size=n, max_new_tokens=max_new_tokens, multi_line=True)
    s = Sampler(bb, task, prompts, cfg, 128)
    context_ids = [s.enc.context(train[i % len(train)], max_new_tokens + 1) for i in range(n)]
    eos = s.enc.eos

    def count(texts_ids: torch.Tensor) -> int:
        return int(sum(min(int((row == eos).nonzero()[0]) + 1 if (row == eos).any() else len(row), len(row))
                       for row in texts_ids))

    tokens = {"batched": 0, "loop": 0}
    orig = bb.model.generate

    def counting(*a, **k):
        out = orig(*a, **k)
        tokens[mode] += count(out)
        return out

    bb.model.generate = counting
    try:
        mode = "batched"
        s._generate(0, context_ids[:2], 0)  # warm-up
        tokens["batched"] = 0
        t = time.perf_counter()
        s._generate(0, context_ids, 1)
        t_batched = time.perf_counter() - t
        mode = "loop"
        t = time.perf_counter()
        for i, c in enumerate(context_ids):
            s._generate(0, [c], 100 + i)  # the same rows, one generate call each
        t_loop = time.perf_counter() - t
    finally:
        bb.model.generate = orig
    speed = (n / t_batched) / (n / t_loop)
    return {"name": "generation_speedup_vs_loop", "value": round(speed, 2), "target": 3.0, "holds": speed >= 3.0,
            "batched_examples_per_s": round(n / t_batched, 2), "loop_examples_per_s": round(n / t_loop, 2),
            "batched_tokens_per_s": round(tokens["batched"] / t_batched, 1),
            "loop_tokens_per_s": round(tokens["loop"] / t_loop, 1), "n": n, "max_new_tokens": max_new_tokens,
            "model": model, "device": str(bb.device)}
