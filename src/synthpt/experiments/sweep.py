"""Sweeps: a grid axis over any knob (``sweep: {generation.n_per_label: [64, 256, 1024]}``).

Every *point* of a sweep (one value per swept key; several keys give their product, in the
order written) is a whole experiment grid run with that value set.  The value wins over a
method's own setting of the knob (as ``synthpt run``'s flags do), but not over a row's own
section in ``methods:``.  Points share one stage cache, so a stage whose configuration does not
hold the swept knob runs once for all points (the generator of Stage 1 is tuned once for every
``generation.n_per_label``); each point's cells are files of their own
(``cells/<point>/<task>/<method>/seed-<seed>.json``), so a rerun does no work and a killed
sweep resumes.

Sweepable: ``SECTION.KEY`` (generator, generation, prompt_tuning), ``options.KEY`` and the
scalars ``model``, ``generator_model``, ``k``, ``max_eval``.  ``tasks`` and ``seeds`` are grid
axes already.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from synthpt.core.errors import fail
from synthpt.core.runinfo import config_hash

SWEEP_SCALARS = ("model", "generator_model", "k", "max_eval")


@dataclass(frozen=True)
class Point:
    """One point of a sweep: the swept keys' values and a short, file-safe label."""

    values: tuple[tuple[str, Any], ...]
    label: str


def format_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def short_keys(keys: list[str]) -> dict[str, str]:
    """``generation.n_per_label`` -> ``n_per_label``, unless two keys share their last part."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def point_label(values: dict[str, Any]) -> str:
    """``n_per_label=64`` (``,`` between keys); characters unsafe in a file name become ``_``
    and then the label gains a short hash, so two values never share a label."""
    names = short_keys(list(values))
    text = ",".join(f"{names[k]}={format_value(v)}" for k, v in values.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", text)
    return safe if safe == text else f"{safe}-{config_hash({'p': text}, 6)}"


def check_sweep(raw: Any, where: str, base: Any) -> dict[str, list[Any]]:
    """Validate a ``sweep:`` mapping: known keys, non-empty lists of values the knob accepts."""
    if not isinstance(raw, dict):
        raise fail(f"{where}: expected a mapping KNOB: [values], e.g. sweep: {{generation.n_per_label: [64, 256]}}")
    out: dict[str, list[Any]] = {}
    for key, values in raw.items():
        w = f"{where}.{key}"
        if not isinstance(key, str) or ("." not in key and key not in SWEEP_SCALARS):
            known = ", ".join(SWEEP_SCALARS)
            extra = " (tasks and seeds are grid axes already)" if key in ("tasks", "seeds") else ""
            raise fail(f"{w}: cannot sweep this key{extra}; sweep SECTION.KEY, options.KEY or one of {known}")
        if not isinstance(values, list) or not values:
            raise fail(f"{w}: expected a non-empty list of values, e.g. [64, 256, 1024]")
        if len({format_value(v) for v in values}) != len(values):
            raise fail(f"{w}: a value is listed twice ({values})")
        trial = copy.deepcopy(base)
        for v in values:
            trial.set(key, v, where=w)  # a value the knob refuses fails here, naming it
        out[key] = list(values)
    return out


def sweep_points(sweep: dict[str, list[Any]]) -> list[Point]:
    """The product of the swept values, first key slowest (empty sweep: no points)."""
    if not sweep:
        return []
    keys = list(sweep)
    out = []
    for combo in itertools.product(*(sweep[k] for k in keys)):
        values = dict(zip(keys, combo))
        out.append(Point(tuple(values.items()), point_label(values)))
    return out


def point_settings(st: Any, point: Point) -> Any:
    """The settings of one point: ``st`` with the point's values set (and forced)."""
    out = copy.deepcopy(st)
    out.sweep = {}
    for key, value in point.values:
        out.set(key, value, where=f"sweep.{key}", force=True)
    return out


# ---- outputs: sweep.md, sweep.csv, sweep.png --------------------------------------------------
@dataclass
class SweepCell:
    """One method at one point: per task (and ``AVG``) the mean and std over seeds (0-1)."""

    stats: dict[str, tuple[float, float]]
    n_seeds: int
    notes: dict[str, str] = field(default_factory=dict)  # column -> " (n=K)" where it averages fewer seeds


def sweep_cells(points: list[Point], records: list[dict[str, Any]], tasks: list[str], rows: list[tuple[str, str]],
                ) -> tuple[dict[tuple[str, str], SweepCell], dict[str, dict[str, tuple[float | None, float]]]]:
    """(row name, point label) -> its statistics (AVG's std is over seeds of the per-seed task mean),
    and point label -> its gain-capture row where its table has one: one table per point for both."""
    from synthpt.experiments import tables as tb

    cells, gains = {}, {}
    for p in points:
        mine = [r for r in records if r.get("point") == p.label]
        table = tb.build_table(mine, rows, tasks)
        for r in table.rows:
            stats = {t: s for t in tasks if (s := r.stat(t)) is not None}
            notes = {t: n for t in tasks if (n := tb.seeds_note(table, r, t))}
            avgs = tb.seed_averages(mine, r.name, tasks)
            if avgs:
                stats["AVG"] = tb.mean_std(avgs)
                if note := tb.n_note(len(avgs), len(table.seeds)):
                    notes["AVG"] = note
            cells[(r.name, p.label)] = SweepCell(stats, len(avgs), notes)
        if (gc := tb.gain_capture_row(table)) is not None:
            gains[p.label] = gc
    return cells, gains


def sweep_markdown(title: str, points: list[Point], cells: dict[tuple[str, str], SweepCell], tasks: list[str],
                   rows: list[tuple[str, str]], gains: dict[str, dict[str, tuple[float | None, float]]],
                   seeds: list[int]) -> str:
    from synthpt.experiments import tables as tb

    keys = [k for k, _ in points[0].values]
    names = short_keys(keys)
    head = ["Method", *(names[k] for k in keys), *(tb.task_display(t) for t in tasks), "AVG"]
    lines = [f"**{title}**", "", "| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
    for name, display in rows:
        for i, p in enumerate(points):
            c = cells.get((name, p.label)) or SweepCell({}, 0)
            lines.append("| " + " | ".join([display if i == 0 else "", *(format_value(v) for _, v in p.values),
                                            *(tb._cell(c.stats.get(t)) + c.notes.get(t, "")
                                              for t in [*tasks, "AVG"])]) + " |")
    for i, p in enumerate(points):
        if p.label in gains:
            gc = gains[p.label]
            lines.append("| " + " | ".join([tb.GC_LABEL if i == 0 else "", *(format_value(v) for _, v in p.values),
                                            *(tb._gc(gc.get(t)) for t in [*tasks, "AVG"])]) + " |")
    lines += ["", f"Test accuracy (%), {tb.seed_phrase(seeds, empty='')}; AVG: "
              "mean ± std over seeds of each seed's mean over the tasks (– where a task is missing). "
              f"Per point: table-<point>.md. {tb.gain_capture_note(sweep=True)}"
              + (" (n=K): over K of the seeds only." if any(c.notes for c in cells.values()) else ""), ""]
    return "\n".join(lines)


def sweep_csv(points: list[Point], cells: dict[tuple[str, str], SweepCell], tasks: list[str],
              rows: list[tuple[str, str]], gains: dict[str, dict[str, tuple[float | None, float]]]) -> str:
    import csv
    import io

    keys = [k for k, _ in points[0].values]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "display", "point", *keys, *(c for t in [*tasks, "avg"] for c in (t, f"{t}_std")), "n_seeds"])
    for name, display in rows:
        for p in points:
            c = cells.get((name, p.label))
            vals = []
            for t in [*tasks, "AVG"]:
                s = c.stats.get(t) if c else None
                vals += ["", ""] if s is None else [f"{s[0] * 100:.2f}", f"{s[1] * 100:.2f}"]
            w.writerow([name, display, p.label, *(format_value(v) for _, v in p.values), *vals, c.n_seeds if c else 0])
    for p in points:  # ratios (not ×100) in the task columns, empty where n/a
        if p.label in gains:
            gc = gains[p.label]
            vals = [x for t in [*tasks, "AVG"] for x in
                    ("" if gc.get(t) is None or gc[t][0] is None else f"{gc[t][0]:.4f}", "")]
            w.writerow(["gain_capture", "Gain capture", p.label, *(format_value(v) for _, v in p.values), *vals, ""])
    return buf.getvalue()


def write_sweep_outputs(st: Any, points: list[Point], records: list[dict[str, Any]], tasks: list[str],
                        rows: list[Any], out: Any) -> list[str]:
    from synthpt.core.io import atomic_write_text
    from synthpt.experiments.grid import fill_title, row_displays

    displays = row_displays(rows)
    name = fill_title(st.name, st) if st.name else ""
    pairs = [(r.name, displays[r.name]) for r in rows]
    cells, gains = sweep_cells(points, records, tasks, pairs)
    keys = ", ".join(st.sweep)
    seeds = sorted({r["seed"] for r in records})
    atomic_write_text(out / "sweep.md", sweep_markdown(f"{name or 'Sweep'}: sweep over {keys}", points, cells,
                                                       tasks, pairs, gains, seeds))
    atomic_write_text(out / "sweep.csv", sweep_csv(points, cells, tasks, pairs, gains))
    written = ["sweep.md", "sweep.csv"]
    if st.plots:
        from synthpt.experiments.plots import plot_sweep

        if plot_sweep(points, cells, tasks, pairs, out / "sweep.png", title=f"{name}: test accuracy against {keys}"):
            written.append("sweep.png")
    return written
