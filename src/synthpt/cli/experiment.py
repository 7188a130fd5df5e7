"""``synthpt run``, ``synthpt experiment`` and ``synthpt methods``."""

from __future__ import annotations

import argparse
from typing import Any

SECTION_FLAGS = {"generator": "generator", "generation": "generation", "prompt_tuning": "pt"}


def _add_section_flags(p: argparse.ArgumentParser) -> None:
    """``--generator-<field>``, ``--generation-<field>``, ``--pt-<field>`` for every config field."""
    from synthpt.cli.main import add_dataclass_args
    from synthpt.core.errors import SynthptError
    from synthpt.experiments.config import section_class

    for section, prefix in SECTION_FLAGS.items():
        try:
            cls = section_class(section)
        except SynthptError:
            continue  # the generator stage is not installed; --set generator.KEY=V still works
        g = p.add_argument_group(f"{section} ({cls.__name__}); also settable as `{section}:` in --config")
        add_dataclass_args(g, cls, prefix=f"{prefix}-", dest_prefix=f"sec__{section}__", overrides_only=True)


def _flag_overrides(ns: argparse.Namespace) -> list[tuple[str, Any, str]]:
    """Section flags and ``--set`` as ``(key, value, flag)``, in the order they apply."""
    items = []
    for key, value in vars(ns).items():
        if key.startswith("sec__") and value is not None:
            _, section, name = key.split("__", 2)
            items.append((f"{section}.{name}", value, f"--{SECTION_FLAGS[section]}-{name.replace('_', '-')}"))
    from synthpt.core.errors import fail
    from synthpt.experiments.config import parse_value

    for item in ns.set or []:
        if "=" not in item:
            raise fail(f"--set {item}: expected KEY=VALUE, e.g. prompt_tuning.lr=0.1")
        key, value = item.split("=", 1)
        items.append((key.strip(), parse_value(value), f"--set {key.strip()}"))
    return items


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override any setting, e.g. --set prompt_tuning.lr=0.1 --set max_eval=200, or replace a grid "
                        "axis: --set seeds=[13,21,42] (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def cmd_run(ns: argparse.Namespace) -> None:
    from synthpt.api import run_with
    from synthpt.cli.main import task_from_args

    task = task_from_args(ns)
    if ns.generator_model_deprecated is not None:
        import sys

        print("synthpt: warning: `run --generator` is deprecated (it names a model here, a tuned folder in "
              "`generate`); use --generator-model", file=sys.stderr)
        if ns.generator_model is None:
            ns.generator_model = ns.generator_model_deprecated
    items = [(key, getattr(ns, key), f"--{key.replace('_', '-')}") for key in ("model", "k", "max_eval", "generator_model")
             if getattr(ns, key) is not None]
    r = run_with(task, ns.data_dir, ns.out, seed=ns.seed, method=ns.method, config=ns.config,
                 overrides=items + _flag_overrides(ns), progress=not ns.quiet)
    test = r.get("test") or {}
    line = ", ".join(f"{k} {v:.4f}" for k, v in test.items() if k != "n")
    ran = [s["stage"] for s in r["stages"] if s["status"] == "ran"]
    print(f"{task.name} seed {ns.seed} [{r['display']}] test ({test.get('n')} rows): {line}; conflict rate "
          f"{(r.get('conflict_rate') or 0):.2f}; {r['seconds_this_invocation']:.1f} s "
          f"({'ran: ' + ', '.join(ran) if ran else 'all stages cached'})")
    print(f"wrote {ns.out}/metrics.json, {ns.out}/report.md; soft prompt in {r['prompt_adapter']}")


def _csv(text: str | None, cast: Any = str) -> list[Any] | None:
    if not text:
        return None
    from synthpt.core.errors import fail

    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(cast(part))
        except ValueError:
            raise fail(f"{part!r}: expected a comma-separated list of {cast.__name__}") from None
    return out


def cmd_experiment(ns: argparse.Namespace) -> None:
    from synthpt.experiments.config import load_settings
    from synthpt.experiments.grid import run_experiment

    st = load_settings(ns.config)
    for key, value, where in _flag_overrides(ns):
        st.set(key, value, where=where)
    _apply_sweeps(st, ns.sweep or [])
    data_dir = ns.data_dir or st.data_dir or "../shared/data"
    res = run_experiment(st, data_dir, ns.out, tasks=_csv(ns.tasks), seeds=_csv(ns.seeds, int),
                         methods=_csv(ns.methods), progress=not ns.quiet, tables_only=ns.tables_only)
    if ns.tables_only:
        missing = res["missing"]
        print(f"tables from {res['cells'] - len(missing)} of {res['cells']} cells (--tables-only: nothing ran)"
              + (f"; not cached yet, left out: {_cells_text(missing)}" if missing else ""))
    print(f"{res['cells']} cells in {res['seconds']:.1f} s; wrote " + ", ".join(f"{ns.out}/{f}" for f in res["files"]))
    from pathlib import Path

    print((Path(ns.out) / ("sweep.md" if st.sweep else "table.md")).read_text())


def _cells_text(cells: list[tuple[Any, ...]], most: int = 8) -> str:
    """``mrpc seed 13 ours, ...`` (the first ``most``, then how many more)."""
    text = ", ".join(" ".join([*map(str, c[:-2]), f"seed {c[-2]}", str(c[-1])]) for c in cells[:most])
    return text + (f" and {len(cells) - most} more" if len(cells) > most else "")


def _apply_sweeps(st: Any, items: list[str]) -> None:
    """``--sweep KEY=[v1,v2]``: sets (or replaces) that key's axis of the config's ``sweep:``."""
    from synthpt.core.errors import fail
    from synthpt.experiments.config import parse_value
    from synthpt.experiments.sweep import check_sweep

    for item in items:
        if "=" not in item:
            raise fail(f"--sweep {item}: expected KEY=[VALUES], e.g. --sweep generation.n_per_label=[64,256,1024]")
        key, text = (x.strip() for x in item.split("=", 1))
        value = parse_value(text)
        values = value if isinstance(value, list) else [value]  # --sweep k=64: a sweep of one point
        st.sweep = {**st.sweep, **check_sweep({key: values}, "--sweep", st)}


def cmd_methods(ns: argparse.Namespace) -> None:
    from synthpt.methods import list_methods

    for m in list_methods():
        print(f"{m.name:22s} {m.display:30s} {m.description}")


def register(sub: Any) -> None:
    from synthpt.cli.main import add_task_args

    p = sub.add_parser("run", help="the whole method: generator tuning, generation, prompt tuning, evaluation",
                       description="Few-shot data to a deployable soft prompt: sample the K-shot split, tune the "
                       "generator (Stage 1), generate and filter synthetic data (Stage 2), prompt-tune with paired "
                       "batches and gradient surgery (Stage 3) and evaluate.  Every stage is cached by its config: "
                       "rerunning the same command redoes nothing, a changed knob reruns that stage and the later "
                       "ones.  Precedence: built-in run defaults < --config < flags.",
                       epilog="Outputs: split/, generator/, synthetic.jsonl, prompt/ (PEFT adapter), metrics.json, "
                       "report.md.")
    add_task_args(p)
    p.add_argument("--seed", type=int, default=42, help="seed of the split and of every stage (default 42)")
    p.add_argument("--data-dir", help="benchmark folder (default: config data_dir or ../shared/data)")
    p.add_argument("--model", help="backbone to prompt-tune (default tiny-t5)")
    p.add_argument("--generator-model", help="frozen LM under the generator of Stages 1-2 (default tiny-gpt2)")
    p.add_argument("--generator", dest="generator_model_deprecated", metavar="GENERATOR_MODEL",
                   help="deprecated alias of --generator-model")
    p.add_argument("--k", type=int, help="shots per class (default 16)")
    p.add_argument("--max-eval", type=int, help="evaluate on a fixed subset of at most N test rows (run default 500)")
    p.add_argument("--method", help="method from `synthpt methods` (default: config `method:` or ours)")
    p.add_argument("--config", help="YAML with model, generator_model, k, max_eval, generator:, generation:, "
                   "prompt_tuning: sections")
    p.add_argument("--out", required=True, help="output folder")
    _common(p)
    _add_section_flags(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("experiment", help="a grid of tasks x seeds x methods, paper-style tables and plots",
                       description="Run every (task, seed, method) cell of a config, caching every stage and cell; "
                       "rerun to resume.  Writes table.md/.csv/.tex (methods as rows, tasks as columns, mean ± std "
                       "over seeds ×100, AVG), one table per `tables:` entry, and methods.png / conflicts.png.  With a "
                       "`sweep:` (or --sweep) the grid runs once per point, sharing every stage that does not read "
                       "the swept knob, and writes those files per point plus sweep.md/.csv/.png.  Every synthetic "
                       "set gets synthetic.report.md/.png beside it; synthetic.md lists them.")
    p.add_argument("--config", required=True, help="experiment YAML (see configs/smoke.yaml)")
    p.add_argument("--data-dir", help="benchmark folder (default: config data_dir or ../shared/data)")
    p.add_argument("--out", required=True, help="output folder (its cache makes reruns resume)")
    p.add_argument("--tasks", help="only these tasks of the config, e.g. rte,mrpc")
    p.add_argument("--seeds", help="only these seeds of the config, e.g. 13,42")
    p.add_argument("--methods", help="only these method rows of the config; a registered method the config "
                   "lacks (`synthpt methods`) is added as a row, e.g. pt,pt+gold")
    p.add_argument("--tables-only", action="store_true",
                   help="run nothing: write the tables and plots from the cells already cached (e.g. while the "
                        "grid still runs in another process) and list the cells left out; synthetic-set reports "
                        "are not remade")
    p.add_argument("--sweep", action="append", metavar="KEY=[VALUES]",
                   help="run the grid once per value of a knob, e.g. --sweep generation.n_per_label=[64,256,1024] "
                   "(repeatable: the product of the axes; replaces the config's `sweep:` axis of that key). Writes "
                   "table-<point>.md/.csv/.tex per point, sweep.md/.csv and sweep.png")
    _common(p)
    p.set_defaults(func=cmd_experiment)

    p = sub.add_parser("methods", help="list the registered methods", description="Methods for run / experiment.")
    p.set_defaults(func=cmd_methods)
