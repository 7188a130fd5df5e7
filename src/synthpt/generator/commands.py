"""CLI: ``synthpt generator tune`` (Step 1) and ``synthpt generate`` (Step 2)."""

from __future__ import annotations

import argparse
from typing import Any

GEN_HELP = {
    "mode": "dawgen (weighted + discriminative + distribution loss) | fewgen (no L_dist) | plain (unweighted)",
    "prompt_length": "soft prompt tokens per label",
    "init_from_label_words": "start each label prompt's last tokens at its label word (on by default)",
    "lr": "Adam learning rate of the label prompts Q",
    "meta_lr": "Adam learning rate of the weight net W",
    "inner_lr": "step size alpha of the differentiable lookahead Q' = Q - alpha grad",
    "dist_weight": "lambda, weight of L_dist in L_DawGen",
    "dist_margin": "hinge margin of L_dist (cosine similarity)",
    "weight_hidden": "hidden width of the weight net's token scorer",
    "proj_dim": "output width of the weight net's projection (L_dist)",
    "batch_size": "global batch, balanced over labels",
    "max_steps": "training steps",
    "checkpoint_every": "write a resumable checkpoint every N steps",
    "max_length": "maximum tokens of prompt + context + target",
    "seed": "seed of the prompt initialisation and the batch order",
    "skip_nonfinite": "skip a batch whose loss is NaN/inf instead of stopping",
}

GENERATE_HELP = {
    "multi_line": "keep generated texts past their first line (default: each text ends at its first line end)",
    "n_per_label": "examples to keep per label (after filtering)",
    "batch_size": "candidates sampled per generate call",
    "max_new_tokens": "maximum tokens of a generated text",
    "temperature": "sampling temperature",
    "top_p": "nucleus sampling mass",
    "top_k": "top-k sampling (0 = off)",
    "repetition_penalty": "HF repetition penalty (1 = off)",
    "min_words": "drop texts with fewer words",
    "max_words": "drop texts with more words",
    "dedup_ngram": "word n-gram size of the near-duplicate filter",
    "near_dup_threshold": "Jaccard similarity at which a text counts as a near duplicate (>1 = off)",
    "consistency_margin": "keep a text only if its own label's prompt beats the others by this mean token log-lik",
    "max_attempts_factor": "stop a label after n_per_label x this many candidates (then warn)",
    "seed": "sampling seed",
    "first_texts": "pair tasks: where the first text comes from: data (few-shot train split) | generator | FILE",
}


def _tune_config_cls() -> type:
    from synthpt.generator.tuning import GeneratorConfig

    return GeneratorConfig


def _generation_config_cls() -> type:
    from synthpt.generator.generation import GenerationConfig

    return GenerationConfig


def cmd_tune(ns: argparse.Namespace) -> None:
    from synthpt import distributed as dist
    from synthpt.cli import dataclass_from_args, task_from_args
    from synthpt.generator.tuning import GeneratorConfig, run_generator_tuning

    task = task_from_args(ns)
    cfg = dataclass_from_args(GeneratorConfig, ns, init_from_label_words=not ns.no_init_from_label_words)
    s = run_generator_tuning(task, ns.data, ns.model, ns.out, cfg, restart=ns.restart,
                             trust_remote_code=ns.trust_remote_code)
    if dist.is_main():
        terms = ", ".join(f"{k} {v:.4f}" for k, v in s["final"].items() if v is not None)
        print(f"{task.name} generator [{s['mode']}] {s['steps']} steps: {terms}; saved in {ns.out}")


def cmd_generate(ns: argparse.Namespace) -> None:
    from synthpt import distributed as dist
    from synthpt.cli import dataclass_from_args
    from synthpt.generator.generation import GenerationConfig, run_generation

    cfg = dataclass_from_args(GenerationConfig, ns)
    rep = run_generation(ns.generator, ns.out, cfg, data=ns.data, restart=ns.restart,
                         trust_remote_code=ns.trust_remote_code)
    if dist.is_main():
        kept = ", ".join(f"{k}: {v}" for k, v in rep["kept"].items())
        dropped = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items())
        print(f"wrote {rep['out']} ({kept}); dropped: {dropped}; report in {rep['out']}.report.json")


def register(sub: Any) -> None:
    from synthpt.cli import EPILOG, add_dataclass_args, add_model_args, add_task_args

    p = sub.add_parser("generator", help="Step 1: tune the label-conditioned generator (DawGen)",
                       description="Tune the generator LM's per-label soft prompts.")
    gsub = p.add_subparsers(dest="generator_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda ns: p.print_help())
    t = gsub.add_parser("tune", help="tune one soft prompt per label (dawgen | fewgen | plain)",
                        description="Tune one soft prompt per label on a frozen generator LM with DawGen's "
                        "weighted, discriminative (meta-learned) and distribution-aligned losses. Writes "
                        "prompts.safetensors, weight_net.safetensors, generator.json and log.jsonl. Rerun the "
                        "same command to resume after an interruption.", epilog=EPILOG)
    add_task_args(t)
    t.add_argument("--data", required=True, help="split folder from `synthpt sample` (its train set is used)")
    add_model_args(t)
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    t.add_argument("--out", required=True, help="output folder")
    t.add_argument("--no-init-from-label-words", action="store_true",
                   help="initialise the label prompts from random vocabulary embeddings only")
    add_dataclass_args(t, _tune_config_cls(), GEN_HELP, skip=("init_from_label_words",))
    t.set_defaults(func=cmd_tune)

    g = sub.add_parser("generate", help="Step 2: generate filtered, label-conditioned synthetic data",
                       description="Sample N examples per label with a tuned generator; drop duplicates, "
                       "near duplicates, out-of-bounds lengths and label-inconsistent texts. Output is JSONL "
                       "(task fields, label, score, provenance) plus OUT.report.json. Rerun to resume.",
                       epilog=EPILOG)
    g.add_argument("--generator", required=True, help="folder from `synthpt generator tune`")
    g.add_argument("--out", required=True, help="output JSONL file")
    g.add_argument("--data", help="split folder for first texts (default: the one the generator was tuned on)")
    g.add_argument("--restart", action="store_true", help="discard a partial output and start over")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow the generator model's code from the hub (off by default: it runs arbitrary code)")
    add_dataclass_args(g, _generation_config_cls(), GENERATE_HELP)
    g.set_defaults(func=cmd_generate)
