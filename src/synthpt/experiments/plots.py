"""PNG plots of an experiment (matplotlib, Agg backend, no display needed).

- ``methods.png``: test accuracy per task (and AVG) with error bars (std over seeds), one
  bar per method, grouped by task.
- ``conflicts.png``: the gradient-conflict rate over training of the paired runs, with or
  without surgery (a conflict is a step whose logged ``cos(δ_real, δ_syn)`` is negative), as
  a moving average over steps, mean over seeds, one panel per task and one line per method.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synthpt.experiments.tables import Table, task_display


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_methods(table: Table, path: Path, title: str = "") -> Path | None:
    rows = [r for r in table.rows if r.cells]
    if not rows:
        return None
    plt = _plt()
    groups = [*table.tasks, "AVG"]
    n = len(rows)
    width = 0.8 / n
    fig_w = max(7.0, 0.9 + len(groups) * (0.35 * n + 0.5))
    fig, ax = plt.subplots(figsize=(fig_w, 4.8))
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    for i, r in enumerate(rows):
        means, errs = [], []
        for t in table.tasks:
            s = r.stat(t)
            means.append(s[0] * 100 if s else float("nan"))
            errs.append(s[1] * 100 if s else 0.0)
        avg = r.avg(table.tasks)
        means.append(avg * 100 if avg is not None else float("nan"))
        errs.append(0.0)
        xs = [g + (i - (n - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, means, width * 0.95, yerr=errs, capsize=3, label=r.display, color=cmap(i % cmap.N),
               error_kw={"elinewidth": 1})
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([task_display(g) if g != "AVG" else "AVG" for g in groups], fontsize=11)
    ax.set_ylabel("test accuracy (%)", fontsize=11)
    seeds = ", ".join(map(str, table.seeds))
    ax.set_title(title or f"Methods per task (mean ± std over seeds {seeds})", fontsize=12)
    vals = [r.stat(t) for r in rows for t in table.tasks if r.stat(t)]
    lo = min(s[0] - s[1] for s in vals) * 100 if vals else 0
    hi = max(s[0] + s[1] for s in vals) * 100 if vals else 100
    ax.set_ylim(max(0.0, lo - 10), min(100.0, hi + 5))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def conflict_curves(records: list[dict[str, Any]], base: Path | None = None) -> dict[tuple[str, str], list[list[bool]]]:
    """(task, method display) -> per-seed lists of per-step conflict flags from log.jsonl."""
    out: dict[tuple[str, str], list[list[bool]]] = {}
    for rec in records:
        for run in rec.get("runs", []):
            if run.get("strategy") != "paired":
                continue
            log = (Path(base) / run["dir"] if base else Path(run["dir"])) / "log.jsonl"
            if not log.is_file():
                continue
            flags = []
            for line in log.read_text().splitlines():
                if line.strip():
                    row = json.loads(line)
                    if row.get("cosine") is not None:  # also for paired runs without surgery
                        flags.append(float(row["cosine"]) < 0)
                    elif "conflict" in row:
                        flags.append(bool(row["conflict"]))
            if flags:
                out.setdefault((rec["task"], rec["display"]), []).append(flags)
    return out


def moving_average(flags: list[bool], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, f in enumerate(flags):
        acc += float(f)
        if i >= window:
            acc -= float(flags[i - window])
        out.append(acc / min(i + 1, window))
    return out


def legend_handles(axes: Any) -> dict[str, Any]:
    """label -> handle over a grid of axes, each label once (for one legend under all panels)."""
    out: dict[str, Any] = {}
    for row in axes:
        for ax in row:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                out.setdefault(lab, h)
    return out


def plot_conflicts(records: list[dict[str, Any]], tasks: list[str], path: Path, base: Path | None = None) -> Path | None:
    curves = conflict_curves(records, base)
    if not curves:
        return None
    plt = _plt()
    tasks = [t for t in tasks if any(k[0] == t for k in curves)]
    ncol = min(3, len(tasks))
    nrow = (len(tasks) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(7.0, 4.6 * ncol), 3.6 * nrow + 0.8), squeeze=False, sharey=True)
    methods = sorted({k[1] for k in curves})
    cmap = plt.get_cmap("tab10")
    window_note = ""
    for idx, t in enumerate(tasks):
        ax = axes[idx // ncol][idx % ncol]
        for j, m in enumerate(methods):
            runs = curves.get((t, m))
            if not runs:
                continue
            steps = min(len(r) for r in runs)
            window = min(steps, max(3, steps // 10))
            window_note = f"moving average over {window} step{'s' * (window > 1)}" if idx == 0 else window_note
            smoothed = [moving_average(r[:steps], window) for r in runs]
            mean = [sum(col) / len(col) for col in zip(*smoothed)]
            ax.plot(range(1, steps + 1), mean, label=m, color=cmap(j % 10), linewidth=1.8)
        ax.set_title(task_display(t), fontsize=12)
        ax.set_xlabel("training step")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        if idx % ncol == 0:
            ax.set_ylabel("conflict rate")
    for idx in range(len(tasks), nrow * ncol):
        axes[idx // ncol][idx % ncol].axis("off")
    fig.suptitle("Gradient-conflict rate over training\n(share of paired steps with cos(δ_real, δ_syn) < 0"
                 + (f"; {window_note}, mean over seeds)" if window_note else ")"), fontsize=11)
    legend = legend_handles(axes)
    fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(4, len(legend)), fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def sweep_axis(values: list[Any]) -> tuple[list[float], list[str], bool]:
    """x positions, tick labels and whether to use a log2 axis for a swept key's values:
    numbers are placed by value (log2 when positive and spanning 8x or more), anything else in order."""
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    labels = [str(v) for v in values]
    if not numeric:
        return [float(i) for i in range(len(values))], labels, False
    xs = [float(v) for v in values]
    log = min(xs) > 0 and max(xs) / min(xs) >= 8
    return xs, labels, log


def plot_sweep(points: list[Any], cells: dict[tuple[str, str], Any], tasks: list[str], rows: list[tuple[str, str]],
               path: Path, title: str = "") -> Path | None:
    """``sweep.png``: test accuracy against the first swept key, one panel per task and AVG, one line
    per method (per method and value of the other keys when several are swept), error bars = std over seeds."""
    if not cells:
        return None
    plt = _plt()
    first = points[0].values[0][0]
    xvals = list(dict.fromkeys(p.values[0][1] for p in points))
    xs, labels, log = sweep_axis(xvals)
    xpos = {str(v): x for v, x in zip(xvals, xs)}
    panels = [*tasks, "AVG"]
    ncol = min(3, len(panels))
    nrow = (len(panels) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(max(7.0, 4.4 * ncol), 3.4 * nrow + 0.9), squeeze=False)
    lines: dict[str, list[tuple[str, Any]]] = {}
    for name, display in rows:
        for p in points:
            rest = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in p.values[1:])
            lines.setdefault(display + (f" ({rest})" if rest else ""), []).append((name, p))
    cmap = plt.get_cmap("tab10" if len(lines) <= 10 else "tab20")
    for idx, panel in enumerate(panels):
        ax = axes[idx // ncol][idx % ncol]
        for j, (label, members) in enumerate(lines.items()):
            pts = [(xpos[str(p.values[0][1])], cells[(n, p.label)].stats[panel]) for n, p in members
                   if (n, p.label) in cells and panel in cells[(n, p.label)].stats]
            if not pts:
                continue
            ax.errorbar([x for x, _ in pts], [s[0] * 100 for _, s in pts], yerr=[s[1] * 100 for _, s in pts],
                        label=label, color=cmap(j % cmap.N), marker="o", capsize=3, linewidth=1.6)
        if log:
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.minorticks_off()
        ax.set_title(task_display(panel) if panel != "AVG" else "AVG (mean over tasks)", fontsize=11)
        ax.set_xlabel(first)
        ax.grid(alpha=0.3)
        if idx % ncol == 0:
            ax.set_ylabel("test accuracy (%)")
    for idx in range(len(panels), nrow * ncol):
        axes[idx // ncol][idx % ncol].axis("off")
    fig.suptitle((title or "Sweep") + "\n(mean ± std over seeds)", fontsize=11)
    handles = legend_handles(axes)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(4, max(1, len(handles))),
               fontsize=9, frameon=False)
    nleg = (len(handles) + 3) // 4
    fig.tight_layout(rect=(0, 0.05 + 0.035 * nleg, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_synthetic(rows: list[dict[str, Any]], task: Any, field: str, verdicts: dict[str, Any], path: Path,
                   title: str = "") -> Path | None:
    """``synthetic.report.png``: the length histogram per label (words of the generated field) and
    each judge's label agreement (overall and per label)."""
    from synthpt.data.synstats import words

    if not rows:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    lengths = {lab: [len(words(r.get(field, ""))) for r in rows if r.get("label") == lab] for lab in task.labels}
    top = max((max(v) for v in lengths.values() if v), default=1)
    bins = list(range(0, top + 2, max(1, (top + 1) // 20)))
    for lab, vals in lengths.items():
        if vals:
            axes[0].hist(vals, bins=bins, histtype="step", linewidth=1.6, label=f"{lab} ({len(vals)})")
    axes[0].set_xlabel(f"words in `{field}`")
    axes[0].set_ylabel("rows")
    axes[0].set_title("Length per label")
    axes[0].legend(fontsize=9, frameon=False)
    ax = axes[1]
    groups = ["all", *task.labels]
    if verdicts:
        width = 0.8 / len(verdicts)
        for i, (name, v) in enumerate(verdicts.items()):
            vals = [v["agreement"], *(v["per_label"].get(lab) for lab in task.labels)]
            xs = [g + (i - (len(verdicts) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, [100 * (x or 0) for x in vals], width * 0.95, label=f"{name} (dev acc {100 * (v['dev_accuracy'] or 0):.0f})")
        ax.axhline(100 / len(task.labels), color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups)
        ax.set_ylim(0, 105)
        ax.legend(fontsize=9, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    else:
        ax.text(0.5, 0.5, "no judge ran", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("agreement with the rows' labels (%)")
    ax.set_title("Judges' label agreement")
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
