"""``synthpt bench``: performance figures, one JSON line each, measured side by side.

Every figure is a function returning ``{"name", "value", "target", "holds", ...details}``; a
figure measured on two models (the tiny byte-level one and SmolLM2-135M's shapes and tokenizer)
prints one line per model under the same name, ``model`` telling them apart, and a line with
``"skipped"`` where the real model is not installed.  How each is measured: ``synthpt.bench.common``
and benchmarks/README.md.

The registry is :data:`REGISTRY`, name -> function of the run's :class:`Settings` returning its
lines; a new figure is one entry there (in the order ``synthpt bench`` prints them).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from synthpt.bench.common import default_threads


@dataclass(frozen=True)
class Settings:
    """What a run asks of every figure: ``quick`` (fewer repetitions and counts, same shapes) and
    the backbones' half-precision dtype (None: fp32); ``memo`` holds what one measurement gives
    several figures (figure 1's time and memory), for this run only."""

    quick: bool = False
    dtype: torch.dtype | None = None
    memo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def reps(self, quick: int, full: int) -> int:
        return quick if self.quick else full


Lines = list[dict[str, Any]]


def _pt_vs_peft(s: Settings, which: int) -> Lines:
    """Figure 1's time (0) or memory (1) lines, per model; one measurement gives both."""
    from synthpt.bench.peft import pt_step_vs_peft, pt_step_vs_peft_real

    if "pt_vs_peft" not in s.memo:
        s.memo["pt_vs_peft"] = (pt_step_vs_peft(reps=s.reps(3, 5), dtype=s.dtype),
                                pt_step_vs_peft_real(reps=s.reps(2, 3)))
    return [lines[which] for lines in s.memo["pt_vs_peft"]]


def _gs(s: Settings) -> Lines:
    from synthpt.bench.prompt_tuning import gs_paired_step_vs_mixed_step

    return [gs_paired_step_vs_mixed_step(reps=s.reps(3, 7), dtype=s.dtype)]


def _causal_prefix(s: Settings) -> Lines:
    from synthpt.bench.prompt_tuning import causal_prefix_step_vs_plain_step

    return [causal_prefix_step_vs_plain_step(reps=s.reps(3, 7))]


def _dawgen(s: Settings) -> Lines:
    from synthpt.bench.generator import dawgen_step_ratio, dawgen_step_ratio_real

    return [dawgen_step_ratio(reps=s.reps(5, 9)), dawgen_step_ratio_real(reps=s.reps(3, 5))]


def _generation_speedup(s: Settings) -> Lines:
    from synthpt.bench.generation import generation_speedup

    r = generation_speedup("tiny-gpt2", n=32)
    r.update(threads=torch.get_num_threads())
    return [r]


def _generation(name: str) -> Callable[[Settings], Lines]:
    """The real-model Stage 2 figures (synthpt.bench.generation): one measurement gives all four
    names; where the model is missing, one skipped line under the first name asked for."""
    def run(s: Settings) -> Lines:
        from synthpt.bench.generation import real_model_figures

        if "generation" not in s.memo:
            s.memo["generation"] = real_model_figures(quick=s.quick)
            if s.memo["generation"][0].get("skipped"):
                return s.memo["generation"]
        return [r for r in s.memo["generation"] if r["name"] == name]

    return run


def _eval(s: Settings) -> Lines:
    from synthpt.bench.evaluation import PROMPT, eval_speedup_vs_generate, eval_speedup_vs_generate_real
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    default = PromptTrainerConfig().prompt_length  # what `synthpt train` uses untold (100, the paper's)
    real = [eval_speedup_vs_generate_real(n=s.reps(32, 128), reps=s.reps(2, 5), prompt_tokens=p)
            for p in (PROMPT, default)]
    return [eval_speedup_vs_generate(n=s.reps(32, 128), dtype=s.dtype, reps=s.reps(2, 5)),
            *(real[:1] if real[0].get("skipped") else real)]


def _epoch_scaling(s: Settings) -> Lines:
    from synthpt.bench.prompt_tuning import epoch_time_scaling_exponent

    return [epoch_time_scaling_exponent(batch_size=s.reps(32, 8), small_reps=s.reps(1, 3))]


def _memory_vs_prompt(s: Settings) -> Lines:
    from synthpt.bench.prompt_tuning import memory_vs_prompt_length

    return [memory_vs_prompt_length(dtype=s.dtype)]


REGISTRY: dict[str, Callable[[Settings], Lines]] = {
    "pt_step_time_vs_peft": lambda s: _pt_vs_peft(s, 0),
    "pt_step_memory_vs_peft": lambda s: _pt_vs_peft(s, 1),
    "gs_paired_step_vs_mixed_step": _gs,
    "causal_prefix_step_vs_plain_step": _causal_prefix,
    "dawgen_step_vs_plain_step": _dawgen,
    "generation_speedup_vs_loop": _generation_speedup,
    **{name: _generation(name) for name in ("generation_rows_per_s", "generation_s_per_kept_row",
                                            "generation_vs_compute_limit", "generation_vs_hf_generate")},
    "eval_speedup_vs_generate": _eval,
    "epoch_time_scaling_exponent": _epoch_scaling,
    "memory_vs_prompt_length": _memory_vs_prompt,
}
FIGURES = tuple(REGISTRY)


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
    settings = Settings(quick, dtype)
    results = []
    for name in FIGURES:
        if only and name not in only:
            continue
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            for r in REGISTRY[name](settings):
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
