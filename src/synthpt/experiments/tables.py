"""Paper-style result tables: methods as rows, tasks as columns, mean ± std over seeds, AVG.

Numbers are test accuracy ×100 (MRPC and QQP too, as the paper's tables; their F1 is in
extra CSV columns).  The std is the population std over seeds (``numpy.std``); a single
seed gives ± 0.0.  AVG is the mean of the task columns and is left empty ("–") when a
task of the row is missing.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from typing import Any

TASK_DISPLAY = {"sst-2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "rte": "RTE", "qnli": "QNLI", "mnli": "MNLI",
                "snli": "SNLI", "sick": "SICK"}
DASH = "–"


def task_display(name: str) -> str:
    return TASK_DISPLAY.get(name, name.upper())


def human(n: int | None) -> str:
    """Parameter counts as the paper writes them: 6.4K, 102K, 770M."""
    if n is None:
        return DASH
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.3g}{suffix}"
    return str(int(n))


def mean_std(values: list[float]) -> tuple[float, float]:
    m = sum(values) / len(values)
    return m, math.sqrt(sum((v - m) ** 2 for v in values) / len(values))


@dataclass
class TableRow:
    name: str
    display: str
    params: int | None
    cells: dict[str, list[float]] = field(default_factory=dict)  # task -> accuracy per seed (0-1)
    f1: dict[str, list[float]] = field(default_factory=dict)

    def stat(self, task: str) -> tuple[float, float] | None:
        vals = self.cells.get(task)
        return mean_std(vals) if vals else None

    def avg(self, tasks: list[str]) -> float | None:
        stats = [self.stat(t) for t in tasks]
        if not tasks or any(s is None for s in stats):
            return None
        return sum(s[0] for s in stats if s) / len(stats)


@dataclass
class Table:
    tasks: list[str]
    rows: list[TableRow]
    seeds: list[int] = field(default_factory=list)
    backbones: list[str] = field(default_factory=list)  # display names of the models its rows used
    generators: list[str] = field(default_factory=list)


def build_table(records: list[dict[str, Any]], rows: list[tuple[str, str]], tasks: list[str]) -> Table:
    """``records``: cell results (task, seed, method, metrics.test, trainable_parameters)."""
    out = []
    seeds: set[int] = set()
    for name, display in rows:
        r = TableRow(name, display, None)
        params: list[int] = []
        for rec in sorted((x for x in records if x["method"] == name), key=lambda x: (x["task"], x["seed"])):
            if rec["task"] not in tasks:
                continue
            test = rec["metrics"].get("test") or {}
            if "accuracy" not in test:
                continue
            seeds.add(rec["seed"])
            r.cells.setdefault(rec["task"], []).append(float(test["accuracy"]))
            if "f1" in test:
                r.f1.setdefault(rec["task"], []).append(float(test["f1"]))
            if rec.get("trainable_parameters") is not None:
                params.append(int(rec["trainable_parameters"]))
        r.params = max(set(params), key=params.count) if params else None
        out.append(r)
    return Table(tasks=list(tasks), rows=out, seeds=sorted(seeds))


# Gain capture: how much of the oracle's gain over PT Ours captures (issue 23).
GAIN_ROWS = {"ours": "ours", "pt": "pt", "oracle": "pt+gold"}  # role -> row name
MIN_GAP = 0.01  # an oracle gap below 1 point (2 of 200 test rows) makes the ratio noise: n/a


def gain_capture(ours: float, pt: float, oracle: float, min_gap: float = MIN_GAP) -> float | None:
    """(Ours − PT) / (oracle − PT); None when the oracle's gap over PT is below ``min_gap``."""
    gap = oracle - pt
    if gap < min_gap:
        return None
    return (ours - pt) / gap


def gain_capture_row(table: Table, min_gap: float = MIN_GAP) -> dict[str, tuple[float | None, float]] | None:
    """task (and ``AVG``) -> (gain capture or None, oracle gap), from the rows' means; None when
    the table lacks one of the Ours, PT and oracle rows.  AVG is the ratio of the AVG column's
    gains (not a mean of per-task ratios, which a tiny gap on one task would dominate)."""
    by = {r.name: r for r in table.rows}
    if not all(name in by for name in GAIN_ROWS.values()):
        return None
    ours, pt, oracle = (by[GAIN_ROWS[k]] for k in ("ours", "pt", "oracle"))
    out: dict[str, tuple[float | None, float]] = {}
    for t in table.tasks:
        s = [r.stat(t) for r in (ours, pt, oracle)]
        if all(s):
            out[t] = (gain_capture(s[0][0], s[1][0], s[2][0], min_gap), s[2][0] - s[1][0])
    avgs = [r.avg(table.tasks) for r in (ours, pt, oracle)]
    if all(a is not None for a in avgs):
        out["AVG"] = (gain_capture(avgs[0], avgs[1], avgs[2], min_gap), avgs[2] - avgs[1])
    return out


def _gc(entry: tuple[float | None, float] | None) -> str:
    if entry is None:
        return DASH
    value, gap = entry
    return f"n/a (gap {gap * 100:+.1f})" if value is None else f"{value:.2f}"


GC_LABEL = "Gain capture (Ours − PT) / (oracle − PT)"


def _cell(stat: tuple[float, float] | None, pm: str = " ± ") -> str:
    if stat is None:
        return DASH
    return f"{stat[0] * 100:.1f}{pm}{stat[1] * 100:.1f}"


def n_note(k: int, total: int) -> str:
    """`` (n=K)`` when a cell averages K > 0 seeds of the table's ``total`` (a grid still running, or rows
    run on fewer seeds): its mean ± std is then not comparable with its neighbours' as it stands."""
    return f" (n={k})" if 0 < k < total else ""


def seeds_note(table: Table, row: TableRow, task: str) -> str:
    return n_note(len(row.cells.get(task, [])), len(table.seeds))


def partial_cells(table: Table) -> bool:
    return any(seeds_note(table, r, t) for r in table.rows for t in table.tasks)


def to_markdown(table: Table, title: str | None = None) -> str:
    head = ["Method", "Params", *(task_display(t) for t in table.tasks), "AVG"]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += ["| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
    for r in table.rows:
        avg = r.avg(table.tasks)
        cells = [r.display, human(r.params), *(_cell(r.stat(t)) + seeds_note(table, r, t) for t in table.tasks),
                 DASH if avg is None else f"{avg * 100:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    gc = gain_capture_row(table)
    if gc is not None:
        lines.append("| " + " | ".join([GC_LABEL, "", *(_gc(gc.get(t)) for t in table.tasks), _gc(gc.get("AVG"))]) + " |")
    return "\n".join(lines) + "\n"


def to_csv(table: Table) -> str:
    f1_tasks = [t for t in table.tasks if any(r.f1.get(t) for r in table.rows)]
    head = ["method", "display", "trainable_parameters"]
    for t in table.tasks:
        head += [t, f"{t}_std"]
    head += ["avg"] + [c for t in f1_tasks for c in (f"{t}_f1", f"{t}_f1_std")] + ["n_seeds"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(head)
    for r in table.rows:
        row: list[Any] = [r.name, r.display, "" if r.params is None else r.params]
        for t in table.tasks:
            s = r.stat(t)
            row += ["", ""] if s is None else [f"{s[0] * 100:.2f}", f"{s[1] * 100:.2f}"]
        avg = r.avg(table.tasks)
        row.append("" if avg is None else f"{avg * 100:.2f}")
        for t in f1_tasks:
            v = r.f1.get(t)
            if v:
                m, sd = mean_std(v)
                row += [f"{m * 100:.2f}", f"{sd * 100:.2f}"]
            else:
                row += ["", ""]
        counts = [len(r.cells.get(t, [])) for t in table.tasks]
        row.append(min(counts) if counts else 0)
        w.writerow(row)
    gc = gain_capture_row(table)
    if gc is not None:  # one more row: the ratios (not ×100) in the task columns, empty where n/a
        ratio = {k: "" if v[0] is None else f"{v[0]:.4f}" for k, v in gc.items()}
        w.writerow(["gain_capture", GC_LABEL, "", *(c for t in table.tasks for c in (ratio.get(t, ""), "")),
                    ratio.get("AVG", ""), *([""] * (2 * len(f1_tasks))), ""])
    return buf.getvalue()


_TEX = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}", "\\": r"\textbackslash{}", "→": r"$\rightarrow$", "±": r"$\pm$"}


def tex_escape(text: str) -> str:
    return "".join(_TEX.get(c, c) for c in text)


def to_latex(table: Table, title: str | None = None) -> str:
    n = len(table.tasks)
    lines = [r"% needs \usepackage{booktabs}", r"\begin{table}[t]", r"\centering"]
    if title:
        lines.append(r"\caption{" + tex_escape(title) + "}")
    lines += [r"\begin{tabular}{lr" + "c" * n + "c}", r"\toprule",
              " & ".join(["Method", "Params", *(tex_escape(task_display(t)) for t in table.tasks), "AVG"]) + r" \\",
              r"\midrule"]
    for r in table.rows:
        avg = r.avg(table.tasks)
        cells = [tex_escape(r.display), tex_escape(human(r.params))]
        for t in table.tasks:
            s = r.stat(t)
            cells.append("--" if s is None else f"{s[0] * 100:.1f}$_{{\\pm {s[1] * 100:.1f}}}$" + seeds_note(table, r, t))
        cells.append("--" if avg is None else f"{avg * 100:.1f}")
        lines.append(" & ".join(cells) + r" \\")
    gc = gain_capture_row(table)
    if gc is not None:
        lines += [r"\midrule", " & ".join([tex_escape(GC_LABEL.replace("−", "-")), "", *(tex_escape(_gc(gc.get(t))) for t in table.tasks),
                                            tex_escape(_gc(gc.get("AVG")))]) + r" \\"]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def seed_phrase(seeds: list[int], empty: str = "none yet") -> str:
    """How a caption says what the ± is over (``empty`` stands in for a list without seeds)."""
    text = ", ".join(str(s) for s in seeds) or empty
    return f"one seed ({text}), so every std is 0" if len(seeds) == 1 else f"mean ± std over seeds {text}"


def gain_capture_note(sweep: bool = False) -> str:
    """A caption's definition of gain capture: a table's, or a sweep's (which points at the tables)."""
    formula, oracle = "(Ours − PT) / (oracle − PT)", "oracle = PT + held-out gold rows"
    na = f"n/a where the oracle gains less than {MIN_GAP * 100:.0f} point"
    if sweep:
        return f"Gain capture as in the tables: {formula}, {oracle}, {na}."
    return f"Gain capture: {formula} on the means, {oracle}; AVG from the AVG column; {na} over PT."


def caption(table: Table) -> str:
    text = (f"Test accuracy (%), {seed_phrase(table.seeds)}; MRPC/QQP F1 in table.csv. "
            "AVG: mean of the task columns. Params: trainable parameters.")
    if partial_cells(table):
        text += " (n=K): a cell over K of the seeds only."
    if gain_capture_row(table) is not None:
        text += " " + gain_capture_note()
    if table.backbones:
        text += f" Backbone{'s' if len(table.backbones) > 1 else ''}: {', '.join(table.backbones)}"
        if table.generators:
            text += f"; generator LM of Stages 1-2: {', '.join(table.generators)}"
        text += "."
    return text


def seed_averages(records: list[dict[str, Any]], name: str, tasks: list[str]) -> list[float]:
    """Per seed, the mean test accuracy over ``tasks`` of row ``name`` (seeds lacking a task are left out):
    the AVG's spread over seeds, which the per-task stds cannot give."""
    by_seed: dict[int, dict[str, float]] = {}
    for rec in records:
        test = (rec.get("metrics") or {}).get("test") or {}
        if rec["method"] == name and rec["task"] in tasks and "accuracy" in test:
            by_seed.setdefault(rec["seed"], {})[rec["task"]] = float(test["accuracy"])
    return [sum(v.values()) / len(tasks) for _, v in sorted(by_seed.items()) if len(v) == len(tasks)]
