"""``synthpt experiment``: a grid of tasks × seeds × methods with caching and resume.

Layout of ``out/``::

    cache/split|generator|synthetic|prompt/<name>-<hash>/   content-addressed stages, shared by
                                                            every cell and method with that config
    cells/<task>/<method>/seed-<seed>.json                  one finished cell (metrics + provenance)
    cells/<point>/<task>/<method>/seed-<seed>.json          ... of a sweep's point (e.g. n_per_label=64)
    table.md, table.csv, table.tex                          every method row (config order)
    table-<name>.md/.csv/.tex                               each entry of `tables:`
    methods.png, conflicts.png                              plots
    table-<point>.md/.csv/.tex, methods-<point>.png ...     with a `sweep:`, the same per point (no table.md)
    sweep.md, sweep.csv, sweep.png                          the sweep: every method at every point
    synthetic.md                                            one row per synthetic set (its report,
                                                            synthetic.report.md/.png, lies beside it)
    experiment.json                                         the resolved grid

A cell is skipped when its JSON exists with the same key (method, knobs, task, seed,
models); a cell killed midway resumes from its stages' checkpoints.  Cells run in order
(sweep points, then tasks, then seeds, then methods), so a killed grid rerun with the same
command completes and yields the same tables.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail
from synthpt.core.io import atomic_write_text, path_in_out, write_json
from synthpt.core.progress import progress_bar
from synthpt.core.runinfo import config_hash, versions
from synthpt.experiments import tables as tb
from synthpt.experiments.config import SECTIONS, MethodRow, Settings
from synthpt.experiments.pipeline import make_context, stage_summary
from synthpt.experiments.sweep import point_settings, sweep_points


def slug(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._@-]+", "_", name).strip("_") or "x"
    return s if s == name else f"{s}-{config_hash({'n': name}, 6)}"


def narrow(values: list[Any], wanted: list[Any] | None, what: str) -> list[Any]:
    if not wanted:
        return values
    unknown = [w for w in wanted if w not in values]
    if unknown and values:
        raise fail(f"--{what} {','.join(map(str, unknown))}: not in the config's {what} "
                   f"({', '.join(map(str, values))}); to run others, replace the list: --set {what}=[...]")
    return [w for w in wanted if w in values] if values else list(wanted)


def cell_key(row: MethodRow, method: Any, st: Settings, task: Any, seed: int) -> dict[str, Any]:
    key = {"row": row.name, "method": method.fingerprint(), "model": row.model or st.model,
           "generator_model": row.generator_model or st.generator_model, "k": st.k, "max_eval": st.max_eval,
           "sections": {s: {**st.sections[s], **row.sections.get(s, {})} for s in SECTIONS},
           "options": {**st.options, **row.options}, "task": task.to_dict(), "seed": seed}
    forced = {s: v for s, v in st.forced.items() if v}
    if forced:  # a sweep's values win over a method's own knobs (only then: older cells keep their key)
        key["forced"] = forced
    return key


def _cached_cell(path: Path, key: str) -> dict[str, Any] | None:
    """The record at ``path`` when it exists and was computed with ``key``."""
    if path.is_file():
        try:
            rec = json.loads(path.read_text())
            if rec.get("key") == key:
                return rec
        except ValueError:
            pass
    return None


def run_cell(st: Settings, row: MethodRow, task: Any, seed: int, data_dir: str | Path | None, out: Path,
             progress: bool = True, point: str | None = None,
             compute: bool = True) -> tuple[dict[str, Any] | None, bool]:
    """The cell's record, and whether this call computed it (False: read back from its JSON).

    With ``compute=False`` a cell that is not cached yet gives ``(None, False)``: nothing runs."""
    from synthpt.methods import get_method

    method = get_method(row.method)
    cells = out / "cells" / point if point else out / "cells"
    path = cells / slug(task.name) / slug(row.name) / f"seed-{seed}.json"
    key = config_hash(cell_key(row, method, st, task, seed))
    rec = _cached_cell(path, key)
    if rec is not None or not compute:
        return rec, False
    ctx = make_context(st, row, task, seed, data_dir, out / "cache", layout="cache", progress=progress)
    t0 = time.perf_counter()
    metrics = method.run(ctx)
    params = metrics.get("trainable_parameters")
    if params is None:
        params = method.trainable_parameters(ctx)
    runs = [{**r, "dir": os.path.relpath(r["dir"], out), "synthetic": _inside(r.get("synthetic"), out)}
            for r in ctx.runs]  # relative: the folder can move
    rec = {"task": task.name, "seed": seed, "method": row.name, "registry_method": method.name, "point": point,
           "display": row.display or method.display, "key": key, "metrics": metrics,
           "trainable_parameters": params, "runs": runs, "stages": stage_summary(ctx),
           "seconds": round(time.perf_counter() - t0, 2)}
    write_json(path, rec)
    return rec, True


def _inside(path: str | None, out: Path) -> str | None:
    """``path`` as seen from ``out`` when it lies in it or its cache (a cached set), else absolute (a published file)."""
    if not path:
        return path
    return path_in_out(path, out) or str(Path(path).resolve())


def select_rows(rows: list[MethodRow], methods: list[str]) -> list[MethodRow]:
    """The rows ``--methods`` names: the config's, in config order, then any registered methods.

    Why the registry too: a user comparing one more method (say the ``pt+gold`` oracle) with a
    config's rows should not have to copy the config; the extra row shares the config's settings
    and its cached stages.
    """
    from synthpt.methods import list_methods

    registered = {m.name for m in list_methods()}
    by = {r.name: r for r in rows}
    unknown = [m for m in methods if m not in by and m not in registered]
    if unknown:
        raise fail(f"--methods {','.join(unknown)}: neither rows of the config ({', '.join(by)}) "
                   "nor registered methods (`synthpt methods` lists them)")
    extra = [MethodRow(name=m, method=m) for m in dict.fromkeys(methods) if m not in by]
    return [r for r in rows if r.name in methods] + extra


def run_experiment(st: Settings, data_dir: str | Path | None, out: str | Path, tasks: list[str] | None = None,
                   seeds: list[int] | None = None, methods: list[str] | None = None,
                   progress: bool = True, tables_only: bool = False) -> dict[str, Any]:
    """Run (or resume) the grid, then write tables and plots.

    ``tables_only``: run nothing; the tables and plots come from the cells already cached (say, while
    another process is still running the grid), and the synthetic-set reports are left as they are.

    Returns a summary: ``cells`` (how many the grid has), ``computed`` (the ``(task, seed, method)``
    cells this call computed, in order, led by the point's label in a sweep; the others were read back),
    ``missing`` (with ``tables_only``: the cells not cached yet, in the same form), ``seconds``, ``files``,
    ``records``."""
    from synthpt.tasks import resolve_task

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise fail(f"{out}: exists and is a file; give a folder for the experiment")
    out.mkdir(parents=True, exist_ok=True)
    if not st.rows:
        raise fail(f"{st.source}: no `methods:` to run")
    task_names = narrow(st.tasks, tasks, "tasks")
    seed_list = narrow(st.seeds, seeds, "seeds")
    if not task_names:
        raise fail(f"{st.source}: no tasks (set `tasks:` or --tasks)")
    if not seed_list:
        raise fail(f"{st.source}: no seeds (set `seeds:` or --seeds)")
    rows = st.rows
    if methods:
        rows = select_rows(rows, methods)
    task_objs = [resolve_task(spec=t) if t.endswith((".yaml", ".yml", ".json")) else resolve_task(t)
                 for t in task_names]
    points = sweep_points(st.sweep)
    if not tables_only:  # the grid's description: left as the grid that runs (maybe in another process) wrote it
        write_json(out / "experiment.json", {
            "config": st.source, "name": st.name, "tasks": [t.name for t in task_objs], "seeds": seed_list,
            "methods": [r.name for r in rows], "model": st.model, "generator_model": st.generator_model, "k": st.k,
            "max_eval": st.max_eval, "sections": st.sections, "versions": versions(),
            **({"sweep": st.sweep, "points": [p.label for p in points]} if points else {})})
    # points outermost: the cheap end of a data-scale curve has its tables first
    settings = [(p, point_settings(st, p)) for p in points] or [(None, st)]
    cells = [(p, pst, t, s, r) for p, pst in settings for t in task_objs for s in seed_list for r in rows]
    records, computed, missing = [], [], []
    t0 = time.perf_counter()
    bar = progress_bar(cells, desc="grid", unit="cell", disable=not progress or tables_only, dynamic_ncols=True,
                       position=0)
    for p, pst, t, s, r in bar:
        bar.set_postfix_str(f"{p.label + ' ' if p else ''}{t.name} seed {s} {r.name}")
        rec, ran = run_cell(pst, r, t, s, data_dir, out, progress=progress, point=p.label if p else None,
                            compute=not tables_only)
        where = (t.name, s, r.name) if p is None else (p.label, t.name, s, r.name)
        if rec is None:
            missing.append(where)
            continue
        records.append(rec)
        if ran:
            computed.append(where)
    bar.close()
    tasks_done = [t.name for t in task_objs]
    written = []
    for p, pst in settings:
        mine = [rec for rec in records if rec.get("point") == (p.label if p else None)]
        written += write_outputs(pst, mine, tasks_done, rows, out, suffix=f"-{p.label}" if p else "")
    if not tables_only:  # the reports score every set with judges: work, which tables_only does not do
        from synthpt.experiments.synreport import grid_reports

        written += grid_reports(settings, records, task_objs, data_dir, out)
    if points:
        from synthpt.experiments.sweep import write_sweep_outputs

        written += write_sweep_outputs(st, points, records, tasks_done, rows, out)
    return {"cells": len(cells), "computed": computed, "missing": missing, "seconds": round(time.perf_counter() - t0, 2),
            "files": written, "records": records}


def row_displays(rows: list[MethodRow]) -> dict[str, str]:
    from synthpt.methods import get_method

    return {r.name: r.display or get_method(r.method).display for r in rows}


def fill_title(title: str, st: Settings) -> str:
    """A table title with its placeholders (config.TITLE_FIELDS) filled from the resolved settings."""
    from synthpt.core.models import model_display

    return title.format(model=model_display(st.model), generator=model_display(st.generator_model), k=st.k,
                        max_eval=st.max_eval if st.max_eval is not None else "all",
                        seeds=", ".join(map(str, st.seeds)))


def models_used(st: Settings, rows: list[MethodRow]) -> tuple[list[str], list[str]]:
    """Display names of the backbones ``rows`` run with and of the generators of those rows that
    tune one (synthetic data from Stages 1-2, not a published or gold set), in row order, once each."""
    from synthpt.core.models import model_display
    from synthpt.methods import get_method

    backbones = dict.fromkeys(model_display(r.model or st.model) for r in rows)
    generators = dict.fromkeys(model_display(r.generator_model or st.generator_model) for r in rows
                               if getattr(get_method(r.method), "tunes_generator", False))
    return list(backbones), list(generators)


def write_outputs(st: Settings, records: list[dict[str, Any]], tasks: list[str], rows: list[MethodRow],
                  out: Path, suffix: str = "") -> list[str]:
    """table.md/.csv/.tex, one table per ``tables:`` entry and the plots; ``suffix`` names a sweep's point.
    Titles are filled from ``st`` (config.TITLE_FIELDS); captions name the models the rows used."""
    displays = row_displays(rows)
    by_name = {r.name: r for r in rows}
    where = f" ({suffix[1:]})" if suffix else ""
    specs = [(f"table{suffix}", fill_title(st.name or "All methods", st) + where, [r.name for r in rows])]
    specs += [(f"table-{t.name}{suffix}", fill_title(t.title, st) + where, [m for m in t.methods if m in displays])
              for t in st.tables]
    written, built = [], []
    for stem, title, names in specs:
        table = tb.build_table(records, [(n, displays[n]) for n in names], tasks)
        table.backbones, table.generators = models_used(st, [by_name[n] for n in names])
        built.append(table)
        atomic_write_text(out / f"{stem}.md", tb.to_markdown(table, title) + "\n" + tb.caption(table) + "\n")
        atomic_write_text(out / f"{stem}.csv", tb.to_csv(table))
        atomic_write_text(out / f"{stem}.tex", tb.to_latex(table, f"{title}. {tb.caption(table)}"))
        written += [f"{stem}.md", f"{stem}.csv", f"{stem}.tex"]
    if st.plots:
        from synthpt.experiments.plots import plot_conflicts, plot_methods

        table = built[0]  # specs[0]: every row
        seed_list = ", ".join(map(str, table.seeds))
        if plot_methods(table, out / f"methods{suffix}.png",
                        f"Methods per task on {', '.join(table.backbones)}{where} (mean ± std over seeds {seed_list})"):
            written.append(f"methods{suffix}.png")
        if plot_conflicts(records, tasks, out / f"conflicts{suffix}.png", base=out):
            written.append(f"conflicts{suffix}.png")
    return written
