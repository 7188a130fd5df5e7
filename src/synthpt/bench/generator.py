"""The generator figures of ``synthpt bench`` (measurements, not timed tests).

- :func:`dawgen_step_ratio`: median time of one DawGen bi-level step over one plain
  generator prompt-tuning step, same model and batch (target ≤ 3.5).  The plain step runs
  with the model's default attention kernels (its natural best); DawGen needs the eager ones
  (double backward), and the ratio against an eager plain step is reported too.

The generation (Step 2) figures are in :mod:`synthpt.bench.generation`.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

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
    from synthpt.generator.tuning import GeneratorConfig, GeneratorTrainer

    task = get_task("mrpc")
    train = _mrpc_train(data_dir)
    times = {}
    for mode, eager in (("dawgen", True), ("plain", False), ("plain", True)):
        bb = load_backbone(model, device=dist.device())
        if eager and hasattr(bb.model, "set_attn_implementation"):
            bb.model.set_attn_implementation("eager")
        cfg = GeneratorConfig(mode=mode, batch_size=batch_size, max_length=max_length, max_steps=10 ** 6)
        tr = GeneratorTrainer(task, bb, cfg, train, progress=False)
        times[(mode, eager)] = _median_time(lambda tr=tr: tr.step(0), reps)
    ratio = times[("dawgen", True)] / times[("plain", False)]
    return {"name": "dawgen_step_vs_plain_step", "value": round(ratio, 3), "target": 3.5, "holds": ratio <= 3.5,
            "dawgen_step_s": round(times[("dawgen", True)], 4), "plain_step_s": round(times[("plain", False)], 4),
            "ratio_vs_eager_plain": round(times[("dawgen", True)] / times[("plain", True)], 3),
            "model": model, "batch_size": batch_size, "max_length": max_length, "reps": reps,
            "device": str(bb.device)}
