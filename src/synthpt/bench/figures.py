"""``synthpt bench``: performance figures, one JSON line each, measured side by side.

Every figure is a function returning ``{"name", "value", "target", "holds", ...details}``.
Ratios compare two ways of doing the same work *in one process*, with the two sides
interleaved (A B A B ...) after a warm-up of each, and medians taken: on a shared, noisy
machine only such ratios mean something.  Nothing here is a test.

Memory on CPU: PyTorch allocations are invisible to ``tracemalloc``, so the CPU proxy for
the peak memory of a training step is the bytes of the tensors autograd saves for the
backward pass (``torch.autograd.graph.saved_tensors_hooks``, distinct storages, the
frozen weights excluded since they exist anyway) -- that is what grows with batch, length
and prompt.  On CUDA it is ``torch.cuda.max_memory_allocated`` above the memory in use
before the step.  Each figure says which in ``memory_method``.

See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from synthpt.core.models import Backbone
from synthpt.tasks import Task

# The same shapes as the issue fixes them (quick runs use fewer repetitions, not other shapes).
T5_SMALL = dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
                vocab_size=32128)
BATCH, INPUT_TOKENS, PROMPT_TOKENS = 8, 128, 100

# A two-label task whose label words are one token under the byte-level tokenizer, so both
# synthpt and PEFT read one decoder position after the sentinel (the same decoder length).
BENCH_TASK = Task(name="bench", fields=("text",), labels=("0", "1"), label_words={"0": "n", "1": "y"},
                  template="{text} Answer: {mask}", description="synthetic benchmark task")

_WORDS = ("the film was a quiet and moving story about two friends who lose their way in a city "
          "that never sleeps while the music keeps playing and nobody seems to care").split()


# ---- helpers -------------------------------------------------------------------------------
def default_threads() -> int:
    """Physical cores available to this process (hyper-threads add little to GEMMs), fewer
    when other processes already keep the cores busy."""
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        avail = os.cpu_count() or 1
    try:
        per_core = 1
        with open("/proc/cpuinfo") as f:
            info = f.read()
        siblings = [int(ln.split(":")[1]) for ln in info.splitlines() if ln.startswith("siblings")]
        cores = [int(ln.split(":")[1]) for ln in info.splitlines() if ln.startswith("cpu cores")]
        if siblings and cores and cores[0] > 0:
            per_core = max(1, siblings[0] // cores[0])
        phys = max(1, avail // per_core)
    except (OSError, ValueError, IndexError):
        phys = max(1, avail)
    # on a shared machine, more threads than idle cores makes OpenMP spin against the other
    # processes: 2 threads on 2 busy cores measured 16x slower than 1 thread here
    try:
        idle = avail - os.getloadavg()[0]
    except OSError:
        idle = phys
    return max(1, min(phys, int(idle)))


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def interleaved(sides: dict[str, Callable[[], Any]], reps: int, warmup: int = 1) -> dict[str, float]:
    """Median seconds of each side, the sides run in turn (A B A B ...) after a warm-up."""
    for fn in sides.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in sides}
    for _ in range(reps):
        for k, fn in sides.items():
            _sync()
            t = time.perf_counter()
            fn()
            _sync()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def saved_bytes(fn: Callable[[], Any], exclude: list[torch.Tensor] | tuple = ()) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn`` runs."""
    skip = {p.untyped_storage().data_ptr() for p in exclude}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        try:
            st = t.untyped_storage()
            ptr = st.data_ptr()
            if ptr not in skip and ptr != 0:
                seen[ptr] = max(seen.get(ptr, 0), st.nbytes())
        except (RuntimeError, NotImplementedError):  # tensors without storage (e.g. sparse)
            pass
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def peak_step_memory(fn: Callable[[], Any], exclude: list[torch.Tensor] | tuple = (),
                     forward: Callable[[], Any] | None = None) -> tuple[int, str]:
    """(bytes, method): CUDA peak of the step ``fn`` above the pre-step level; on CPU the bytes
    saved for backward, for which running the step's ``forward`` alone is enough (where given).

    On CUDA the step runs once unmeasured first: a cold step also allocates what later steps
    reuse (optimizer moments, and cuBLAS workspaces for the forward thread and for autograd's
    backward thread, 32 MiB each on Hopper), and which side of a comparison ran first then
    decides the ratio.  Measured cold, figure 1 read 1.18 on an H200; warm, 0.995."""
    if torch.cuda.is_available():
        fn()
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base, "cuda max_memory_allocated above pre-step level"
    return saved_bytes(forward or fn, exclude), "bytes of tensors saved for backward (saved_tensors_hooks, distinct storages, frozen weights excluded)"


def _text(i: int, n_words: int) -> str:
    return " ".join(_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(n_words))


def bench_examples(n: int, n_words: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` examples of the bench task (long enough to be truncated to the input budget)."""
    return [{"text": _text(i + seed, n_words + i % 5), "label": str(i % 2)} for i in range(n)]


def t5_small_backbone(dtype: torch.dtype | None = None, seed: int = 0) -> Backbone:
    """A frozen random T5-small-shaped model with the byte-level ByT5 tokenizer."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    tok = ByT5Tokenizer()
    cfg = T5Config(**T5_SMALL, feed_forward_proj="relu", decoder_start_token_id=tok.pad_token_id,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return _frozen_random(T5ForConditionalGeneration, cfg, tok, "t5-small-shaped (random)", seed, dtype)


def _frozen_random(cls: Any, cfg: Any, tok: Any, name: str, seed: int, dtype: torch.dtype | None = None) -> Backbone:
    """``cls(cfg)`` with seeded random weights, frozen, on the bench device (and dtype)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(_device())
    if dtype is not None:
        model.to(dtype)
    return Backbone(model=model, tokenizer=tok, name_or_path=name, is_seq2seq=bool(cfg.is_encoder_decoder))


def _prompt_trainer(bb: Backbone, task: Task, train: list[dict], syn: list[dict] | None = None, **cfg_kw: Any):
    from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTuningConfig

    kw = dict(prompt_length=PROMPT_TOKENS, batch_size=BATCH, max_length=PROMPT_TOKENS + INPUT_TOKENS,
              max_steps=10 ** 6, eval_every=10 ** 6, checkpoint_every=10 ** 6)
    kw.update(cfg_kw)
    return PromptTrainer(task, bb, PromptTuningConfig(**kw), train, [], synthetic=syn, progress=False)


def _result(name: str, value: float, target: float | None, holds: bool, **details: Any) -> dict[str, Any]:
    return {"name": name, "value": round(value, 4) if math.isfinite(value) else value, "target": target,
            "holds": bool(holds), **details, "device": str(_device()), "threads": torch.get_num_threads()}


# ---- 1. prompt-tuning step vs PEFT ---------------------------------------------------------
class _PeftSide:
    """PEFT's prompt tuning on the same frozen backbone, batch and prompt length."""

    def __init__(self, bb: Backbone, trainer: Any) -> None:
        from peft import PromptTuningConfig as PeftPTConfig
        from peft import TaskType, get_peft_model

        cfg = PeftPTConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=PROMPT_TOKENS,
                           num_transformer_submodules=1, token_dim=bb.hidden_size)
        self.model = get_peft_model(bb.model, cfg)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=trainer.cfg.lr, weight_decay=trainer.cfg.weight_decay)
        enc = trainer.encoder
        dev = bb.device
        # the same rows synthpt's trainer sees, as ids; the labels are [sentinel, label word]
        # so PEFT's decoder reads exactly the positions synthpt's verbalizer scoring reads
        self.batches = []
        for step in range(4):
            rows = trainer.plan.rows(step)
            ids = [trainer._ctx(r.source, r.index) for r in rows]
            width = max(len(x) for x in ids)
            inp = torch.full((len(ids), width), bb.tokenizer.pad_token_id, dtype=torch.long)
            att = torch.zeros_like(inp)
            for i, x in enumerate(ids):
                inp[i, : len(x)] = torch.tensor(x)
                att[i, : len(x)] = 1
            lab = torch.tensor([enc.sentinel + enc.label_ids[trainer.labels[r.source][r.index]] for r in rows])
            self.batches.append((inp.to(dev), att.to(dev), lab.to(dev)))
        self.i = 0

    def forward(self) -> torch.Tensor:
        inp, att, lab = self.batches[self.i % len(self.batches)]
        return self.model(input_ids=inp, attention_mask=att, labels=lab).loss

    def step(self) -> None:
        loss = self.forward()
        self.i += 1
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def _trainer_forward(tr: Any, step: int) -> torch.Tensor:
    """The forward half of ``PromptTrainer.train_step`` (what autograd saves for its backward)."""
    import torch.nn.functional as F

    rows = tr.plan.rows(step)
    y = torch.tensor([tr.labels[r.source][r.index] for r in rows], device=tr.bb.device)
    _, scores = tr.score_rows(rows)
    return F.cross_entropy(scores, y)


def pt_step_vs_peft(reps: int = 5, dtype: torch.dtype | None = None, warmup: int = 1) -> list[dict[str, Any]]:
    bb = t5_small_backbone(dtype)
    tr = _prompt_trainer(bb, BENCH_TASK, bench_examples(64))
    lens = {len(tr._ctx("real", r.index)) for s in range(4) for r in tr.plan.rows(s)}
    peft_side = _PeftSide(bb, tr)
    counter = iter(range(10 ** 9))

    def ours() -> None:
        tr.train_step(next(counter))

    frozen = list(bb.model.parameters())
    # memory first (on CPU: the forward of each step; on CUDA a warm step, which also warms both sides up)
    m_ours, method = peak_step_memory(ours, frozen, lambda: _trainer_forward(tr, 0))
    m_peft, _ = peak_step_memory(peft_side.step, frozen, peft_side.forward)
    t = interleaved({"synthpt": ours, "peft": peft_side.step}, reps, warmup=warmup)
    n_trainable_peft = sum(p.numel() for p in peft_side.model.parameters() if p.requires_grad)
    common = dict(model="t5-small-shaped random (d_model 512, 6+6 layers, 8 heads, d_ff 2048, vocab 32128)",
                  batch_size=BATCH, input_tokens=sorted(lens), prompt_tokens=PROMPT_TOKENS, decoder_tokens=2,
                  frozen_requires_grad=any(p.requires_grad for p in frozen),
                  trainable_params={"synthpt": tr.prompt.numel(), "peft": n_trainable_peft},
                  dtype=str(dtype or torch.float32))
    r_t = t["synthpt"] / t["peft"]
    r_m = m_ours / m_peft
    return [
        _result("pt_step_time_vs_peft", r_t, 1.0, r_t <= 1.0, synthpt_step_s=round(t["synthpt"], 4),
                peft_step_s=round(t["peft"], 4), reps=reps, **common),
        _result("pt_step_memory_vs_peft", r_m, 1.0, r_m <= 1.0, synthpt_bytes=m_ours, peft_bytes=m_peft,
                memory_method=method, **common),
    ]


# ---- 1b. causal LMs: the prompt as a shared KV prefix vs in front of every row ---------------
def llama_small_backbone(seed: int = 0) -> Backbone:
    """A frozen random Llama-shaped causal LM (SmolLM2's architecture: rotary positions, grouped KV
    heads; d 256, 4 layers, 4 heads, 2 KV heads) with the byte-level ByT5 tokenizer."""
    from transformers import ByT5Tokenizer, LlamaConfig, LlamaForCausalLM

    tok = ByT5Tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return _frozen_random(LlamaForCausalLM, cfg, tok, "llama-shaped (random)", seed)


def causal_prefix_step_vs_plain_step(reps: int = 5) -> dict[str, Any]:
    """A paired prompt-tuning step on a causal LM with the prompt run once per view and shared as a
    KV-cache prefix, over the same step with the prompt run in front of every row (what PEFT's
    causal prompt tuning does).  Same trainer, batches and model; only the scoring path differs."""
    from synthpt.core import verbalizer

    bb = llama_small_backbone()
    real, syn = bench_examples(64), bench_examples(64, seed=3)
    half = BATCH // 2
    tr = _prompt_trainer(bb, BENCH_TASK, real, syn, strategy="paired", gradient_surgery=True,
                         batch_size=half, syn_batch_size=BATCH - half)
    lens = {len(tr._ctx(r.source, r.index)) for s in range(4) for r in tr.plan.rows(s)}
    steps = iter(range(10 ** 9))

    def side(prefix: bool) -> Callable[[], None]:
        def step() -> None:
            verbalizer._PREFIX_OK[bb.model] = prefix  # set, not checked: this model passes the check
            tr.train_step(next(steps))

        return step

    assert verbalizer._prefix_supported(bb, tr.prompt.detach().unsqueeze(0))
    t = interleaved({"prefix": side(True), "plain": side(False)}, reps)
    verbalizer._PREFIX_OK.pop(bb.model, None)
    r = t["prefix"] / t["plain"]
    return _result("causal_prefix_step_vs_plain_step", r, 1.0, r <= 1.0, prefix_step_s=round(t["prefix"], 4),
                   plain_step_s=round(t["plain"], 4), model="llama-shaped random (d 256, 4 layers, 4 heads, "
                   "2 KV heads, d_ff 768, byte-level vocab 384)", batch_size=BATCH,
                   paired_rows={"real": half, "syn": BATCH - half}, input_tokens=sorted(lens),
                   prompt_tokens=PROMPT_TOKENS, reps=reps,
                   how="label words of 2 byte tokens: 2 scored rows per example on both sides")


# ---- 2. gradient surgery: paired step vs one mixed batch --------------------------------------
def gs_paired_step_vs_mixed_step(reps: int = 5, dtype: torch.dtype | None = None, input_tokens: int = 64,
                                 prompt_tokens: int = 20) -> dict[str, Any]:
    """Same model as figure 1, shorter rows (the ratio is about the step's overhead, not its size)."""
    bb = t5_small_backbone(dtype)
    real, syn = bench_examples(64), bench_examples(64, seed=3)
    half = BATCH // 2
    paired = _prompt_trainer(bb, BENCH_TASK, real, syn, strategy="paired", gradient_surgery=True,
                             batch_size=half, syn_batch_size=BATCH - half, prompt_length=prompt_tokens,
                             max_length=prompt_tokens + input_tokens)
    mixed = _prompt_trainer(bb, BENCH_TASK, real, syn, strategy="mixed", batch_size=BATCH,
                            prompt_length=prompt_tokens, max_length=prompt_tokens + input_tokens)
    steps = {"paired": iter(range(10 ** 9)), "mixed": iter(range(10 ** 9))}
    t = interleaved({"paired": lambda: paired.train_step(next(steps["paired"])),
                     "mixed": lambda: mixed.train_step(next(steps["mixed"]))}, reps)
    r = t["paired"] / t["mixed"]
    return _result("gs_paired_step_vs_mixed_step", r, 1.15, r <= 1.15, paired_step_s=round(t["paired"], 4),
                   mixed_step_s=round(t["mixed"], 4), rows_per_step=BATCH,
                   paired_rows={"real": half, "syn": BATCH - half}, model="t5-small-shaped random",
                   input_tokens=input_tokens, prompt_tokens=prompt_tokens, reps=reps,
                   how="one forward + one backward to the prompt views in both; surgery on δ_real, δ_syn")


# ---- 3, 4. generator (reuses synthpt.bench.generator) ------------------------------------------
def dawgen_step_vs_plain_step(reps: int = 7) -> dict[str, Any]:
    from synthpt.bench.generator import dawgen_step_ratio

    r = dawgen_step_ratio("tiny-gpt2", reps=reps)
    r.update(threads=torch.get_num_threads())
    return r


def generation_speedup_vs_loop(n: int = 32) -> dict[str, Any]:
    from synthpt.bench.generation import generation_speedup

    r = generation_speedup("tiny-gpt2", n=n)
    r.update(threads=torch.get_num_threads())
    return r


# ---- 5. evaluation: verbalizer scoring vs generate-then-parse ----------------------------------
def eval_speedup_vs_generate(n: int = 64, batch_size: int = 32, dtype: torch.dtype | None = None,
                             reps: int = 3) -> dict[str, Any]:
    from synthpt.core.classify import predict
    from synthpt.core.scoring import Encoder, _with_prompt, pad_right
    from synthpt.core.soft_prompt import init_from_vocab
    from synthpt.tasks import get_task

    task = get_task("sst2")  # real label words ("negative"/"positive"): several tokens each
    bb = t5_small_backbone(dtype)
    plen = 20
    prompt = init_from_vocab(bb, plen, 0).to(bb.device)
    enc = Encoder(task, bb, max_length=plen + INPUT_TOKENS, prompt_length=plen)
    examples = bench_examples(n, n_words=20)
    words = task.words()
    max_new = 1 + max(len(x) for x in enc.label_ids) + 1  # sentinel + longest word + EOS

    @torch.inference_mode()
    def generate_then_parse() -> list[int]:
        ids = enc.encode_many(examples)
        preds = []
        for s in range(0, len(ids), batch_size):
            chunk = ids[s : s + batch_size]
            x, m = pad_right(chunk, bb.tokenizer.pad_token_id)
            emb, att = _with_prompt(bb, x.to(bb.device), m.to(bb.device), prompt)
            out = bb.model.generate(inputs_embeds=emb, attention_mask=att, max_new_tokens=max_new, do_sample=False,
                                    num_beams=1)
            for text in bb.tokenizer.batch_decode(out, skip_special_tokens=True):
                hits = [(text.find(w), li) for li, w in enumerate(words) if w in text]
                preds.append(min(hits)[1] if hits else -1)
        return preds

    def score() -> torch.Tensor:
        return predict(enc, examples, prompt, batch_size).argmax(-1)

    t = interleaved({"score": score, "generate": generate_then_parse}, reps)
    speed = t["generate"] / t["score"]
    return _result("eval_speedup_vs_generate", speed, 2.0, speed >= 2.0,
                   scoring_examples_per_s=round(n / t["score"], 2), generate_examples_per_s=round(n / t["generate"], 2),
                   n=n, batch_size=batch_size, reps=reps, max_new_tokens=max_new, task="sst2 (label words of several tokens)",
                   model="t5-small-shaped random", prompt_tokens=plen, inference_mode=True)


# ---- 6. scaling --------------------------------------------------------------------------------
def _slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = statistics.fmean(lx), statistics.fmean(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def epoch_time_scaling_exponent(sizes: tuple[int, ...] = (1000, 4000, 16000), batch_size: int = 32,
                                small_reps: int = 2) -> dict[str, Any]:
    """Full epochs (every synthetic example once, ``syn`` strategy) on the tiny T5; no extrapolation."""
    from synthpt.core.models import load_backbone

    bb = load_backbone("tiny-t5", device=_device())
    real = bench_examples(16)
    times: dict[int, list[float]] = {n: [] for n in sizes}
    order = [n for _ in range(small_reps) for n in sizes[:-1]] + [sizes[-1]]
    for n in order:
        syn = bench_examples(n, n_words=8, seed=n)
        tr = _prompt_trainer(bb, BENCH_TASK, real, syn, strategy="syn", batch_size=batch_size, prompt_length=20,
                             max_length=20 + 64)
        steps = math.ceil(n / batch_size)
        _sync()
        t = time.perf_counter()
        for s in range(steps):
            tr.train_step(s)
        _sync()
        times[n].append(time.perf_counter() - t)
    med = [statistics.median(times[n]) for n in sizes]
    k = _slope(list(sizes), med)
    return _result("epoch_time_scaling_exponent", k, 1.1, k <= 1.1, sizes=list(sizes),
                   epoch_s=[round(x, 3) for x in med], batch_size=batch_size, model="tiny-t5",
                   prompt_tokens=20, how="full epochs timed (encoding included), no extrapolation; "
                   f"smaller sizes timed {small_reps}x (median)")


def memory_vs_prompt_length(lengths: tuple[int, ...] = (20, 100, 400), dtype: torch.dtype | None = None) -> dict[str, Any]:
    bb = t5_small_backbone(dtype)
    train = bench_examples(64, n_words=80)
    mem, method = [], ""
    for n in lengths:
        tr = _prompt_trainer(bb, BENCH_TASK, train, prompt_length=n, max_length=n + INPUT_TOKENS)
        b, method = peak_step_memory(lambda tr=tr: tr.train_step(0), list(bb.model.parameters()),
                                     lambda tr=tr: _trainer_forward(tr, 0))
        mem.append(b)
    k = _slope(list(lengths), mem)
    seq = [n + INPUT_TOKENS for n in lengths]
    return _result("memory_vs_prompt_length", k, None, True, prompt_tokens=list(lengths),
                   step_bytes=mem, step_mib=[round(b / 2 ** 20, 1) for b in mem],
                   slope_vs_total_length=round(_slope(seq, mem), 3), memory_method=method,
                   model="t5-small-shaped random", batch_size=BATCH, input_tokens=INPUT_TOKENS,
                   note="value: log-log slope of step memory vs prompt length (reported, no target); "
                        "encoder attention is quadratic in prompt+input length")


# ---- registry, CLI -------------------------------------------------------------------------------
def _figures(quick: bool, dtype: torch.dtype | None) -> dict[str, Callable[[], list[dict[str, Any]]]]:
    reps = 3 if quick else 7
    pt_cache: dict[str, list[dict[str, Any]]] = {}

    def pt(which: int) -> Callable[[], list[dict[str, Any]]]:
        def run() -> list[dict[str, Any]]:
            if "r" not in pt_cache:
                pt_cache["r"] = pt_step_vs_peft(reps=2 if quick else 5, dtype=dtype, warmup=0 if quick else 1)
            return [pt_cache["r"][which]]

        return run

    gen_cache: dict[str, list[dict[str, Any]]] = {}

    def gen(name: str) -> Callable[[], list[dict[str, Any]]]:
        """The real-model Step 2 figures (synthpt.bench.generation), measured once for all four names."""
        def run() -> list[dict[str, Any]]:
            from synthpt.bench.generation import real_model_figures

            if "r" not in gen_cache:
                gen_cache["r"] = real_model_figures(quick=quick)
                if gen_cache["r"][0].get("skipped"):
                    return gen_cache["r"]  # one skipped line, under the first name asked for
            return [r for r in gen_cache["r"] if r["name"] == name]

        return run

    return {
        "pt_step_time_vs_peft": pt(0),
        "pt_step_memory_vs_peft": pt(1),
        "gs_paired_step_vs_mixed_step": lambda: [gs_paired_step_vs_mixed_step(reps=reps, dtype=dtype)],
        "causal_prefix_step_vs_plain_step": lambda: [causal_prefix_step_vs_plain_step(reps=reps)],
        "dawgen_step_vs_plain_step": lambda: [dawgen_step_vs_plain_step(reps=5 if quick else 9)],
        "generation_speedup_vs_loop": lambda: [generation_speedup_vs_loop()],
        "eval_speedup_vs_generate": lambda: [eval_speedup_vs_generate(n=32 if quick else 128, dtype=dtype,
                                                                     reps=2 if quick else 5)],
        "epoch_time_scaling_exponent": lambda: [epoch_time_scaling_exponent(batch_size=32 if quick else 8,
                                                                            small_reps=1 if quick else 3)],
        "memory_vs_prompt_length": lambda: [memory_vs_prompt_length(dtype=dtype)],
        **{name: gen(name) for name in ("generation_rows_per_s", "generation_s_per_kept_row",
                                        "generation_vs_compute_limit", "generation_vs_hf_generate")},
    }


FIGURES = tuple(_figures(True, None))


def run(only: list[str] | None = None, quick: bool = False, dtype: torch.dtype | None = None,
        threads: int | None = None, out: Any = None) -> list[dict[str, Any]]:
    """Run the figures (all, or ``only``), print each as a JSON line as soon as it is ready."""
    from synthpt.core.errors import fail

    out = out or sys.stdout
    unknown = [n for n in only or [] if n not in FIGURES]
    if unknown:
        raise fail(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    if dtype is not None and not torch.cuda.is_available():
        raise fail("--bf16 / --fp16 need a CUDA GPU (half precision on CPU is slower, not faster)")
    torch.set_num_threads(threads or default_threads())
    figs = _figures(quick, dtype)
    results = []
    for name in FIGURES:
        if only and name not in only:
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for r in figs[name]():
                r["quick"] = quick
                results.append(r)
                print(json.dumps(r), file=out, flush=True)
    return results


def cmd_bench(ns: argparse.Namespace) -> None:
    import warnings

    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    dtype = torch.bfloat16 if ns.bf16 else torch.float16 if ns.fp16 else None
    run(ns.only, ns.quick, dtype, ns.threads)


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="performance figures vs PEFT and each step's cost limit (JSON lines)",
                       description=__doc__.split("\n\n")[0] + " Figures: " + ", ".join(FIGURES) + ".")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller counts (same shapes)")
    p.add_argument("--only", action="append", metavar="NAME", choices=FIGURES,
                   help="run only this figure (repeatable)")
    p.add_argument("--threads", type=int, default=None,
                   help=f"CPU threads (default: physical cores available, here {default_threads()})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bf16", action="store_true", help="bfloat16 backbones (CUDA only; figures 1, 2, 5, 6b)")
    g.add_argument("--fp16", action="store_true", help="float16 backbones (CUDA only; figures 1, 2, 5, 6b)")
    p.set_defaults(func=cmd_bench)
