"""CLI: ``synthpt generator tune`` (Stage 1) and ``synthpt generate`` (Stage 2)."""

from __future__ import annotations

import argparse
from typing import Any


def _tune_config_cls() -> type:
    from synthpt.generator.config import GeneratorConfig

    return GeneratorConfig


def _generation_config_cls() -> type:
    from synthpt.generator.generation import GenerationConfig

    return GenerationConfig


def cmd_tune(ns: argparse.Namespace) -> None:
    from synthpt.cli.main import dataclass_from_args, task_from_args
    from synthpt.core import distributed as dist
    from synthpt.generator import GeneratorConfig, run_generator_tuning
    from synthpt.generator.probe import describe

    task = task_from_args(ns)
    cfg = dataclass_from_args(GeneratorConfig, ns)
    s = run_generator_tuning(task, ns.data, ns.model, ns.out, cfg, restart=ns.restart,
                             trust_remote_code=ns.trust_remote_code)
    if dist.is_main():
        terms = ", ".join(f"{k} {v:.4f}" for k, v in s["final"].items() if v is not None)
        print(f"{task.name} generator [{s['mode']}] {s['steps']} steps: {terms}; saved in {ns.out}")
        if s.get("dev_probe"):
            print(f"  {describe(s['dev_probe'])}")


def cmd_generate(ns: argparse.Namespace) -> None:
    from synthpt.cli.main import dataclass_from_args
    from synthpt.core import distributed as dist
    from synthpt.generator.generation import GenerationConfig, run_generation

    cfg = dataclass_from_args(GenerationConfig, ns)
    rep = run_generation(ns.generator, ns.out, cfg, data=ns.data, restart=ns.restart,
                         trust_remote_code=ns.trust_remote_code)
    if dist.is_main():
        kept = ", ".join(f"{k}: {v}" for k, v in rep["kept"].items())
        dropped = ", ".join(f"{k} {v}" for k, v in rep["dropped"].items())
        print(f"wrote {rep['out']} ({kept}); dropped: {dropped}; report in {rep['out']}.report.json")


def cmd_probe(ns: argparse.Namespace) -> None:
    import json

    from synthpt.core import distributed as dist
    from synthpt.generator.probe import describe, probe_generator

    p = probe_generator(ns.generator, data=ns.data, split=ns.split, trust_remote_code=ns.trust_remote_code)
    if dist.is_main():
        print(describe(p))
        if ns.json:
            print(json.dumps(p))


def register(sub: Any) -> None:
    from synthpt.cli.main import EPILOG, add_dataclass_args, add_model_args, add_task_args

    p = sub.add_parser("generator", help="Stage 1: tune the label-conditioned generator (DawGen)",
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
    add_dataclass_args(t, _tune_config_cls())
    t.set_defaults(func=cmd_tune)

    g = sub.add_parser("generate", help="Stage 2: generate filtered, label-conditioned synthetic data",
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
    add_dataclass_args(g, _generation_config_cls())
    g.set_defaults(func=cmd_generate)

    pr = gsub.add_parser("probe", help="do the label prompts tell real rows apart? (before generating)",
                         description="Read every row of a split (default: the few-shot dev rows) under each "
                         "label's prompt and count how often its own label explains it best: the consistency "
                         "filter's test, on rows whose labels are known (and again with each label's mean "
                         "log-likelihood removed). A check of Stage 1's likelihoods, not a forecast of the "
                         "generated rows (docs/usage.md). `synthpt generator tune` prints the same line for "
                         "the dev rows.", epilog=EPILOG)
    pr.add_argument("--generator", required=True, help="folder from `synthpt generator tune`")
    pr.add_argument("--data", help="split folder (default: the one the generator was tuned on)")
    pr.add_argument("--split", default="dev", help="which split's rows to read (train | dev | test; default dev)")
    pr.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    pr.add_argument("--trust-remote-code", action="store_true",
                    help="allow the generator model's code from the hub (off by default: it runs arbitrary code)")
    pr.set_defaults(func=cmd_probe)
