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


def _cell(stat: tuple[float, float] | None, pm: str = " ± ") -> str:
    if stat is None:
        return DASH
    return f"{stat[0] * 100:.1f}{pm}{stat[1] * 100:.1f}"


def to_markdown(table: Table, title: str | None = None) -> str:
    head = ["Method", "Params", *(task_display(t) for t in table.tasks), "AVG"]
    lines = []
    if title:
        lines += [f"**{title}**", ""]
    lines += ["| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
    for r in table.rows:
        avg = r.avg(table.tasks)
        cells = [r.display, human(r.params), *(_cell(r.stat(t)) for t in table.tasks),
                 DASH if avg is None else f"{avg * 100:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
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
            cells.append("--" if s is None else f"{s[0] * 100:.1f}$_{{\\pm {s[1] * 100:.1f}}}$")
        cells.append("--" if avg is None else f"{avg * 100:.1f}")
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def caption(table: Table) -> str:
    seeds = ", ".join(str(s) for s in table.seeds) or "none yet"
    over = f"one seed ({seeds}), so every std is 0" if len(table.seeds) == 1 else f"mean ± std over seeds {seeds}"
    return (f"Test accuracy (%), {over}; MRPC/QQP F1 in table.csv. "
            "AVG: mean of the task columns. Params: trainable parameters.")
