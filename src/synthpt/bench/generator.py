"""The generator figures of ``synthpt bench`` (measurements, not timed tests).

- :func:`dawgen_step_ratio` (tiny byte-level GPT-2, MRPC) and :func:`dawgen_step_ratio_real`
  (SmolLM2-135M, real-cpu.yaml's generator settings): median time of one DawGen bi-level step
  over one plain generator prompt-tuning step, same model and batches, interleaved (target
  ≤ 3.5).  Both run with the model's default attention (SDPA); DawGen puts the one forward it
  differentiates twice on SDPA's math backend.

The generation (Stage 2) figures are in :mod:`synthpt.bench.generation`.
"""

from __future__ import annotations

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


def _dawgen_sides(task, train: list[dict], model: str, reps: int, **cfg_kw: Any) -> dict[str, float]:
    """Median seconds of a DawGen step and of a plain step (own backbone each, default attention
    kernels: the weighted trainer picks SDPA's math backend itself where it differentiates twice),
    interleaved after a warm-up; the steps cycle over three batches."""
    from synthpt.bench.common import interleaved
    from synthpt.generator import GeneratorConfig, GeneratorTrainer

    sides = {}
    for mode in ("dawgen", "plain"):
        bb = load_backbone(model, device=dist.device())
        tr = GeneratorTrainer(task, bb, GeneratorConfig(mode=mode, max_steps=10 ** 6, **cfg_kw), train, progress=False)
        steps = iter(range(10 ** 9))
        sides[mode] = lambda tr=tr, steps=steps: tr.train_step(next(steps) % 3)
    return interleaved(sides, reps)


def _dawgen_line(t: dict[str, float], model: str, **details: Any) -> dict[str, Any]:
    ratio = t["dawgen"] / t["plain"]
    return {"name": "dawgen_step_vs_plain_step", "value": round(ratio, 3), "target": 3.5, "holds": ratio <= 3.5,
            "dawgen_step_s": round(t["dawgen"], 4), "plain_step_s": round(t["plain"], 4), "model": model,
            **details, "device": str(dist.device()), "threads": torch.get_num_threads()}


def dawgen_step_ratio(model: str = "tiny-gpt2", batch_size: int = 8, reps: int = 7, max_length: int = 128,
                      data_dir: str | Path | None = None) -> dict[str, Any]:
    """The tiny byte-level generator on MRPC (pairs: a long context, the second text as target)."""
    t = _dawgen_sides(get_task("mrpc"), _mrpc_train(data_dir), model, reps, batch_size=batch_size,
                      max_length=max_length)
    return _dawgen_line(t, model, task="mrpc", batch_size=batch_size, max_length=max_length, prompt_tokens=20,
                        reps=reps)


def dawgen_step_ratio_real(reps: int = 3, data_dir: str | Path | None = None) -> dict[str, Any]:
    """SmolLM2-135M and its tokenizer on the same MRPC rows, with configs/real-cpu.yaml's generator
    settings (batch 4, 8 prompt tokens, max length 96); skipped where the model is missing."""
    from synthpt.bench.common import REAL_MODEL, real_model_missing, skipped

    why = real_model_missing()
    if why:
        return skipped("dawgen_step_vs_plain_step", REAL_MODEL, why, 3.5)
    cfg = dict(batch_size=4, max_length=96, prompt_length=8)
    t = _dawgen_sides(get_task("mrpc"), _mrpc_train(data_dir), REAL_MODEL, reps, **cfg)
    return _dawgen_line(t, REAL_MODEL, task="mrpc", **cfg, reps=reps)
