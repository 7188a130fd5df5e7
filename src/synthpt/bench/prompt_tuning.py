"""Prompt-tuning figures of ``synthpt bench`` other than the PEFT comparison: the causal KV
prefix, gradient surgery's overhead, epoch-time scaling and memory against prompt length."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from synthpt.bench.common import (
    BATCH,
    BENCH_TASK,
    INPUT_TOKENS,
    PROMPT_TOKENS,
    bench_examples,
    device,
    frozen_random,
    interleaved,
    peak_step_memory,
    prompt_trainer,
    result,
    sync,
    t5_small_backbone,
    trainer_forward,
)
from synthpt.core.models import Backbone


# ---- 1b. causal LMs: the prompt as a shared KV prefix vs in front of every row ---------------
def llama_small_backbone(seed: int = 0) -> Backbone:
    """A frozen random Llama-shaped causal LM (SmolLM2's architecture: rotary positions, grouped KV
    heads; d 256, 4 layers, 4 heads, 2 KV heads) with the byte-level ByT5 tokenizer."""
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tok = ByT5Tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return frozen_random(LlamaForCausalLM, cfg, tok, "llama-shaped (random)", seed)


def causal_prefix_step_vs_plain_step(reps: int = 5) -> dict[str, Any]:
    """A paired prompt-tuning step on a causal LM with the prompt run once per view and shared as a
    KV-cache prefix, over the same step with the prompt run in front of every row (what PEFT's
    causal prompt tuning does).  Same trainer, batches and model; only the scoring path differs."""
    from synthpt.core import scoring

    bb = llama_small_backbone()
    real, syn = bench_examples(64), bench_examples(64, seed=3)
    half = BATCH // 2
    tr = prompt_trainer(bb, BENCH_TASK, real, syn, strategy="paired", gradient_surgery=True,
                         batch_size=half, syn_batch_size=BATCH - half)
    lens = {len(tr._context_ids(r.source, r.index)) for s in range(4) for r in tr.plan.rows(s)}
    steps = iter(range(10 ** 9))

    def side(prefix: bool) -> Callable[[], None]:
        def step() -> None:
            scoring._PREFIX_OK[bb.model] = prefix  # set, not checked: this model passes the check
            tr.train_step(next(steps))

        return step

    assert scoring._prefix_supported(bb, tr.prompt.detach().unsqueeze(0))
    t = interleaved({"prefix": side(True), "plain": side(False)}, reps)
    scoring._PREFIX_OK.pop(bb.model, None)
    r = t["prefix"] / t["plain"]
    return result("causal_prefix_step_vs_plain_step", r, 1.0, r <= 1.0, prefix_step_s=round(t["prefix"], 4),
                   plain_step_s=round(t["plain"], 4), model="llama-shaped random (d 256, 4 layers, 4 heads, "
                   "2 KV heads, d_ff 768, byte-level vocab 384)", batch_size=BATCH,
                   paired_rows={"real": half, "syn": BATCH - half}, input_tokens=sorted(lens),
                   prompt_tokens=PROMPT_TOKENS, reps=reps,
                   how="label words of 2 byte tokens: the prefix side runs each input once and shares its cache with both words (synthpt.core.causal_words), the plain side runs one row per (example, word)")


# ---- 2. gradient surgery: paired step vs one mixed batch --------------------------------------
def gs_paired_step_vs_mixed_step(reps: int = 5, dtype: torch.dtype | None = None, input_tokens: int = 64,
                                 prompt_tokens: int = 20) -> dict[str, Any]:
    """Same model as figure 1, shorter rows (the ratio is about the step's overhead, not its size)."""
    bb = t5_small_backbone(dtype)
    real, syn = bench_examples(64), bench_examples(64, seed=3)
    half = BATCH // 2
    paired = prompt_trainer(bb, BENCH_TASK, real, syn, strategy="paired", gradient_surgery=True,
                             batch_size=half, syn_batch_size=BATCH - half, prompt_length=prompt_tokens,
                             max_length=prompt_tokens + input_tokens)
    mixed = prompt_trainer(bb, BENCH_TASK, real, syn, strategy="mixed", batch_size=BATCH,
                            prompt_length=prompt_tokens, max_length=prompt_tokens + input_tokens)
    steps = {"paired": iter(range(10 ** 9)), "mixed": iter(range(10 ** 9))}
    t = interleaved({"paired": lambda: paired.train_step(next(steps["paired"])),
                     "mixed": lambda: mixed.train_step(next(steps["mixed"]))}, reps)
    r = t["paired"] / t["mixed"]
    return result("gs_paired_step_vs_mixed_step", r, 1.15, r <= 1.15, paired_step_s=round(t["paired"], 4),
                   mixed_step_s=round(t["mixed"], 4), rows_per_step=BATCH,
                   paired_rows={"real": half, "syn": BATCH - half}, model="t5-small-shaped random",
                   input_tokens=input_tokens, prompt_tokens=prompt_tokens, reps=reps,
                   how="one forward + one backward to the prompt views in both; surgery on δ_real, δ_syn")


# ---- 6. scaling --------------------------------------------------------------------------------
def _slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def epoch_time_scaling_exponent(sizes: tuple[int, ...] = (1000, 4000, 16000), batch_size: int = 32,
                                small_reps: int = 2) -> dict[str, Any]:
    """Full epochs (every synthetic example once, ``syn`` strategy) on the tiny T5; no extrapolation."""
    from synthpt.core.models import load_backbone

    bb = load_backbone("tiny-t5", device=device())
    real = bench_examples(16)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    order = [n for _ in range(small_reps) for n in sizes[:-1]] + [sizes[-1]]
    for n in order:
        syn = bench_examples(n, n_words=8, seed=n)
        tr = prompt_trainer(bb, BENCH_TASK, real, syn, strategy="syn", batch_size=batch_size, prompt_length=20,
                             max_length=20 + 64)
        steps = math.ceil(n / batch_size)
        sync()
        t = time.perf_counter()
        for s in range(steps):
            tr.train_step(s)
        sync()
        times[n].append(time.perf_counter() - t)
    med = [statistics.median(times[n]) for n in sizes]
    k = _slope(list(sizes), med)
    return result("epoch_time_scaling_exponent", k, 1.1, k <= 1.1, sizes=list(sizes),
                   epoch_s=[round(x, 3) for x in med], batch_size=batch_size, model="tiny-t5",
                   prompt_tokens=20, how="full epochs timed (encoding included), no extrapolation; "
                   f"smaller sizes timed {small_reps}x (median)")


def memory_vs_prompt_length(lengths: tuple[int, ...] = (20, 100, 400), dtype: torch.dtype | None = None) -> dict[str, Any]:
    bb = t5_small_backbone(dtype)
    train = bench_examples(64, n_words=80)
    mem, method = [], ""
    for n in lengths:
        tr = prompt_trainer(bb, BENCH_TASK, train, prompt_length=n, max_length=n + INPUT_TOKENS)
        b, method = peak_step_memory(lambda tr=tr: tr.train_step(0), list(bb.model.parameters()),
                                     lambda tr=tr: trainer_forward(tr, 0))
        mem.append(b)
    k = _slope(list(lengths), mem)
    seq = [n + INPUT_TOKENS for n in lengths]
    return result("memory_vs_prompt_length", k, None, True, prompt_tokens=list(lengths),
                   step_bytes=mem, step_mib=[round(b / 2 ** 20, 1) for b in mem],
                   slope_vs_total_length=round(_slope(seq, mem), 3), memory_method=method,
                   model="t5-small-shaped random", batch_size=BATCH, input_tokens=INPUT_TOKENS,
                   note="value: log-log slope of step memory vs prompt length (reported, no target); "
                        "encoder attention is quadratic in prompt+input length")
