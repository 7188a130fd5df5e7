"""The ``synthpt`` command line.

Each subcommand is a thin layer over a library function: parse flags, call, print.
User mistakes surface as ``SynthptError`` and become one line on stderr with exit code 2.
Stage modules contribute their own subcommands through ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import errno
import json
import os
import sys
import types
import typing
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthpt.core.errors import SynthptError, fail
from synthpt.core.knobs import help_of, values_of

EPILOG = "Docs: README.md.  Every run writes config.json with the resolved configuration."


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``synthpt: error: ...`` and exit code 2, like every other error."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"synthpt: error: {message} (see '{self.prog} --help')\n")


# ---- helpers shared by subcommands --------------------------------------------------------
def knob_type(typ: Any) -> Any:
    """The type a flag parses: ``int | None`` -> ``int``."""
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        return next(a for a in typing.get_args(typ) if a is not type(None))
    return typ


def add_dataclass_args(parser: Any, cls: type, skip: tuple[str, ...] = (), prefix: str = "",
                       dest_prefix: str | None = None, overrides_only: bool = False) -> None:
    """One ``--<prefix><field>`` flag per dataclass field, the one flag builder of every command.

    Default, type and help come from the field (:func:`synthpt.core.knobs.knob`); a boolean is a
    ``--flag`` / ``--no-flag`` pair; an Enum-typed field shows its values in ``--help`` (a value
    outside them fails in the config's ``validate``, one line, exit 2, as from a config file).  ``overrides_only`` (``run``'s section flags): every flag defaults to None,
    so only the flags given on the command line override the config file's values."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        typ = knob_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = default if f.default is not dataclasses.MISSING else "(computed)"
        kw: dict[str, Any] = {"default": None if overrides_only else default}
        if dest_prefix is not None:
            kw["dest"] = dest_prefix + f.name
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        if typ is bool:
            action = parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
        elif isinstance(typ, type) and issubclass(typ, enum.Enum):  # the config's validate() names a bad value
            action = parser.add_argument(flag, type=str, metavar="{" + ",".join(values_of(typ)) + "}", **kw)
        else:
            action = parser.add_argument(flag, type=typ, metavar=f.name.upper(), **kw)
        action.help = f"{help_of(f)} (default: {shown})".lstrip()  # set after: argparse may append its own


def dataclass_from_args(cls: type, ns: argparse.Namespace, **overrides: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(ns).items() if k in names}
    values.update(overrides)
    return cls(**values)


def add_task_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", help="built-in task name (see `synthpt tasks`)")
    p.add_argument("--task-spec", help="YAML/JSON spec of a user task (fields, labels, label words, template)")


def task_from_args(ns: argparse.Namespace):
    from synthpt.tasks import resolve_task

    return resolve_task(getattr(ns, "task", None), getattr(ns, "task_spec", None))


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


# ---- subcommands ----------------------------------------------------------------------------
def cmd_tasks(ns: argparse.Namespace) -> None:
    from synthpt.tasks import list_tasks

    tasks = list_tasks()
    if ns.json:
        print_json([t.to_dict() for t in tasks])
        return
    for t in tasks:
        words = ", ".join(f"{lab}->{w!r}" for lab, w in t.label_words.items())
        print(f"{t.name}: {t.description}")
        print(f"  fields:     {', '.join(f'{f} ({t.field_names.get(f, f)})' for f in t.fields)}")
        print(f"  labels:     {words}")
        print(f"  template:   {t.template!r}")
        # what Stage 2's generator reads before it writes a text (one context per label if the task has them)
        if t.gen_templates:
            for lab in t.labels:
                print(f"  generate {lab}: {t.gen_template_for(lab)!r}")
        else:
            print(f"  generate:   {t.gen_template!r}")
        print(f"  metrics:    {', '.join(t.metrics)}")


def cmd_models(ns: argparse.Namespace) -> None:
    from synthpt.core.models import BUILTIN_MODELS, cache_dir

    for m in BUILTIN_MODELS.values():
        print(f"{m.name:14s} {m.family:8s} {m.size:32s} {m.source}")
        if m.license:
            print(f"{'':14s} {'':8s} {'license: ' + m.license}")
    print(f"\ncache: {cache_dir()}  (set SYNTHPT_CACHE to move it).  Any hub id, HF folder or .gguf file "
          "works as --model / --generator-model too.")


def cmd_sample(ns: argparse.Namespace) -> None:
    from synthpt.data import make_split

    task = task_from_args(ns)
    meta = make_split(task, ns.k, ns.seed, ns.data_dir, ns.out)
    print(f"wrote {ns.out}: " + ", ".join(f"{k} {v}" for k, v in meta.get("counts", {}).items())
          + f" (source: {meta.get('source')})")


def add_dtype_arg(p: argparse.ArgumentParser) -> None:
    from synthpt.core.models import DType

    p.add_argument("--dtype", choices=values_of(DType),
                   help="precision of the frozen backbone (bfloat16/float16 for GPUs; default: as saved)")


def add_model_args(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--model", default=default, required=default is None,
                   help="built-in name (`synthpt models`), HF folder, .gguf file or hub id")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow model code from the hub (off by default: it runs arbitrary code)")
    add_dtype_arg(p)


def cmd_prompt_tune(ns: argparse.Namespace) -> None:
    from synthpt.prompt_tuning.recipe import run_prompt_tuning
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    task = task_from_args(ns)
    cfg = dataclass_from_args(PromptTrainerConfig, ns)
    m = run_prompt_tuning(task, ns.data, ns.model, ns.out, cfg, synthetic=ns.synthetic, init_prompt=ns.init_prompt,
                          max_eval=ns.max_eval, restart=ns.restart, trust_remote_code=ns.trust_remote_code,
                          dtype=ns.dtype)
    from synthpt.core import distributed as dist

    if dist.is_main():
        line = ", ".join(f"{k} {v:.4f}" for k, v in m["test"].items() if k != "n")
        extra = f"; conflict rate {m['conflict_rate']:.2f}" if cfg.strategy == "paired" else ""
        print(f"{task.name} test ({m['test']['n']} rows): {line}{extra}; adapter in {ns.out}")


def cmd_evaluate(ns: argparse.Namespace) -> None:
    from synthpt.core.classify import evaluate
    from synthpt.data import load_split
    from synthpt.prompt_tuning.recipe import eval_subset

    if ns.out and Path(ns.out).is_dir():  # before any work, not after scoring the split
        raise fail(f"{ns.out}: is a directory, cannot write a file there")
    ad = None
    if ns.prompt:
        from synthpt.evaluate import adapter_base, read_adapter

        ad = read_adapter(ns.prompt, ns.task, ns.task_spec)  # the task: --task / --task-spec, else the adapter's
        task, model = ad.task, ns.model or adapter_base(ad.config, ad.folder)
    else:
        task, model = task_from_args(ns), ns.model
    if not model:
        raise fail("give --prompt DIR (a trained adapter) or --model NAME (zero-shot)")
    splits = load_split(ns.data, task)
    if ns.split not in splits:
        raise fail(f"unknown split {ns.split!r}; choose train, dev or test")
    rows = eval_subset(splits[ns.split], ns.max_eval)
    if ad is not None:
        from synthpt.evaluate import Classifier

        clf = Classifier.from_adapter(ad, model=model, dtype=ns.dtype, trust_remote_code=ns.trust_remote_code,
                                      max_length=ns.max_length, batch_size=ns.batch_size)
        m = evaluate(task, clf.backbone, rows, clf.prompt, ns.batch_size, progress=True, encoder=clf.encoder)
    else:
        from synthpt.core.models import load_backbone, parse_dtype

        bb = load_backbone(model, trust_remote_code=ns.trust_remote_code, dtype=parse_dtype(ns.dtype))
        m = evaluate(task, bb, rows, None, ns.batch_size, max_length=ns.max_length or 256, progress=True)
    kind = f"prompt {ns.prompt}" if ad is not None else "zero-shot"
    print(f"{task.name} {ns.split} ({m['n']} rows, {kind}): "
          + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if k != "n"))
    if ns.out:
        from synthpt.core.io import write_json

        write_json(ns.out, {"task": task.name, "split": ns.split, "model": model, "prompt": ns.prompt, **m})


def _register_core(sub: Any) -> None:
    p = sub.add_parser("tasks", help="list the built-in tasks", description="List built-in tasks with their fields, "
                       "labels, template, verbalizer and metrics.")
    p.add_argument("--json", action="store_true", help="print as JSON")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("models", help="list the built-in models", description="List built-in model names.")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("sample", help="write a K-shot split (LM-BFF protocol)",
                       description="Write train.jsonl / dev.jsonl (K per class each) and test.jsonl (the official "
                       "evaluation split). LM-BFF's published splits are used where present.")
    add_task_args(p)
    p.add_argument("--k", type=int, default=16, help="examples per class in train and in dev (default 16)")
    p.add_argument("--seed", type=int, default=42, help="LM-BFF seeds: 13 21 42 87 100 (default 42)")
    p.add_argument("--data-dir", default="../shared/data", help="folder of the benchmark files")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("prompt-tune", help="train a soft prompt (Stage 3, strategies, gradient surgery)",
                       description="Train a soft prompt before a frozen LM on real (+ synthetic) data; keep the best "
                       "prompt on the dev split; write a PEFT adapter and metrics.json. Rerun the same command to "
                       "resume after an interruption.", epilog=EPILOG)
    add_task_args(p)
    p.add_argument("--data", required=True, help="split folder from `synthpt sample`")
    add_model_args(p)
    p.add_argument("--synthetic", help="synthetic examples (JSONL / JSON list with the task's fields and label)")
    p.add_argument("--init-prompt", help="initialise from a saved prompt adapter (e.g. SPoT transfer)")
    p.add_argument("--max-eval", type=int, help="evaluate on a fixed random subset of at most N test rows")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint and start over")
    p.add_argument("--out", required=True, help="output folder (adapter, metrics.json, log.jsonl)")
    add_dataclass_args(p, _pt_config_cls())
    p.set_defaults(func=cmd_prompt_tune)

    p = sub.add_parser("evaluate", help="metrics of a saved prompt (or zero-shot) on a split",
                       description="Score a split with a saved prompt adapter, or zero-shot with --model only.")
    add_task_args(p)
    p.add_argument("--data", required=True, help="split folder from `synthpt sample`")
    p.add_argument("--prompt", help="prompt adapter folder (from prompt-tune); omit for zero-shot")
    p.add_argument("--model", help="backbone (default: the adapter's base model)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    add_dtype_arg(p)
    p.add_argument("--split", default="test", help="train | dev | test (default test)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int,
                   help="truncate inputs to N tokens (default: as trained with --prompt; 256 zero-shot)")
    p.add_argument("--max-eval", type=int, help="evaluate on a fixed random subset of at most N rows")
    p.add_argument("--out", help="also write the metrics to this JSON file")
    p.set_defaults(func=cmd_evaluate)


def _pt_config_cls() -> type:
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    return PromptTrainerConfig


# Stage modules that add subcommands; each has ``register(subparsers)``.
COMMAND_MODULES = (
    "synthpt.cli.predict",
    "synthpt.cli.generator",
    "synthpt.cli.experiment",
    "synthpt.bench.figures",
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="synthpt",
        description="Few-shot prompt tuning with synthetic data from a tuned generator LM: tune a generator "
        "(DawGen), generate label-conditioned data, prompt-tune with gradient surgery.",
        epilog=EPILOG,
    )
    from synthpt import __version__

    parser.add_argument("--version", action="version", version=f"synthpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_core(sub)
    import importlib

    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.register(sub)
    return parser


def run(func: Callable[[argparse.Namespace], Any], ns: argparse.Namespace) -> int:
    try:
        func(ns)
        from synthpt.core.distributed import shutdown

        shutdown()  # every rank finished: leave the process group together (a no-op in one process)
    except SynthptError as e:
        print(f"synthpt: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("synthpt: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `synthpt tasks | head`: the reader left; say nothing, as `ls | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the flush at exit must not fail again
        return 0
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(f"synthpt: error: no space left on device writing {e.filename or 'output'}", file=sys.stderr)
            return 2
        if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError | NotADirectoryError):
            print(f"synthpt: error: {e.strerror}: {e.filename}", file=sys.stderr)
            return 2
        raise
    return 0


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*TRANSFORMERS_CACHE.*")
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not getattr(ns, "func", None):
        parser.print_help()
        return 0
    deterministic_kernels()
    import shlex

    from synthpt.core.runinfo import set_command

    set_command(shlex.join(["synthpt", *(sys.argv[1:] if argv is None else argv)]))
    return run(ns.func, ns)


def deterministic_kernels() -> None:
    """With SYNTHPT_DETERMINISTIC=1, only deterministic kernels run (``torch.use_deterministic_algorithms``).

    On a CPU synthpt is bitwise reproducible as it is: same command, same bits, and a run killed and
    resumed ends bitwise equal to an uninterrupted one.  On CUDA, cuBLAS split reductions and the
    fused attention backward add in a varying order, so two runs drift apart by rounding; this switch
    (slower) makes them bitwise equal there too.  Set before the first CUDA call, as here."""
    from synthpt.core.distributed import env_flag

    if not env_flag("SYNTHPT_DETERMINISTIC"):
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    torch.use_deterministic_algorithms(True)


if __name__ == "__main__":
    sys.exit(main())
