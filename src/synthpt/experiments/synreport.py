"""A report of every synthetic set: ``synthetic.report.md`` + ``synthetic.report.png`` beside it.

Why: when Ours trails PT or the oracle, the table alone cannot say whether Stages 1-2 wrote poor
rows or Stage 3 used good rows poorly.  The report measures the rows themselves:

- **label agreement with judges that did not write them**: the backbone's zero-shot classifier
  (template + verbalizer, no prompt) and, when the grid has the ``pt+gold`` cell of the same task,
  seed and point, the oracle's trained prompt (never for the gold rows it trained on).  Each
  judge's accuracy on the real few-shot dev rows says how far to trust it; a judge that is right
  on real rows but disagrees with the synthetic labels points at Stages 1-2;
- the statistics of :mod:`synthpt.data.synstats`: distinct-1/2, exact and 4-gram overlap with
  the few-shot rows, duplicates, lengths (and their histogram in the PNG);
- five random rows per label (seeded), to read.

Judges score at most ``judge_rows`` rows (balanced over labels, seeded; the statistics use all
rows).  ``synthetic.report.json`` holds the summary and the key it was computed for: a rerun
with the same rows and judges does no work.  (``synthetic.jsonl.report.json`` is Stage 2's own
filter report, a different file.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthpt.core.io import atomic_write_text, path_in_out, write_json
from synthpt.core.runinfo import config_hash
from synthpt.data.synstats import sample_per_label, synthetic_stats
from synthpt.methods.base import file_fingerprint
from synthpt.tasks import Task

REPORT_VERSION = 1


@dataclass
class Judge:
    name: str  # "zero-shot" | "oracle"
    model: str  # backbone name
    prompt_dir: Path | None = None  # PEFT prompt adapter; None: zero-shot


def report_paths(path: Path) -> dict[str, Path]:
    """``x/synthetic.jsonl`` -> ``x/synthetic.report.md`` / ``.png`` / ``.json``."""
    stem = Path(path).with_suffix("")
    return {ext: stem.with_name(f"{stem.name}.report.{ext}") for ext in ("md", "png", "json")}


def judge_encoder(task: Task, bb: Any, prompt: Any, max_length: int) -> Any:
    from synthpt.core.scoring import Encoder

    return Encoder(task, bb, max_length=max_length, prompt_length=0 if prompt is None else prompt.shape[0])


def judge_rows_of(task: Task, bb: Any, rows: list[dict[str, Any]], prompt: Any, batch_size: int,
                  max_length: int, encoder: Any = None) -> dict[str, Any]:
    """Agreement of the judge's predictions with the rows' labels, overall and per label, and how
    often it predicts each label (a judge that always says one label agrees 1/L of the time)."""
    from synthpt.core.classify import predict

    enc = encoder if encoder is not None else judge_encoder(task, bb, prompt, max_length)
    pred = predict(enc, rows, prompt, batch_size).argmax(-1).tolist()
    gold = [task.label_index(r["label"]) for r in rows]
    per = {}
    for i, lab in enumerate(task.labels):
        mine = [p for p, g in zip(pred, gold) if g == i]
        per[lab] = sum(p == i for p in mine) / len(mine) if mine else None
    return {"agreement": sum(p == g for p, g in zip(pred, gold)) / len(rows) if rows else None, "per_label": per,
            "predicted": {lab: sum(p == i for p in pred) / len(pred) if pred else 0.0
                          for i, lab in enumerate(task.labels)}, "rows": len(rows)}


def write_synthetic_report(path: str | Path, task: Task, split_dir: str | Path, judges: list[Judge],
                           judge_rows: int | None = 200, seed: int = 0, batch_size: int = 32,
                           max_length: int = 256, title: str = "",
                           dev_scores: dict[tuple, float | None] | None = None) -> dict[str, Any]:
    """Write the report files beside ``path``; returns the summary (read back when nothing changed).

    ``dev_scores`` (filled in here) keeps each judge's dev accuracy for the next set of the same
    split: the dev rows are the same, so a grid scores them once per judge, not once per set."""
    from synthpt.data import load_file, load_split

    path = Path(path)
    out = report_paths(path)
    key = config_hash({"v": REPORT_VERSION, "rows": file_fingerprint([path]), "split": str(Path(split_dir).resolve()),
                       "judges": [(j.name, j.model, file_fingerprint(sorted(j.prompt_dir.glob("adapter_*")))
                                   if j.prompt_dir else None) for j in judges],
                       "judge_rows": judge_rows, "seed": seed, "max_length": max_length})
    try:
        done = json.loads(out["json"].read_text())
        if done.get("key") == key and out["md"].is_file():
            return {**done["summary"], "file": str(path), "report": str(out["md"])}  # paths: as this caller names them
    except (OSError, ValueError):
        pass
    rows = load_file(path, task)
    split = load_split(split_dir, task)
    field = task.fields[-1]  # the generated field (generator.encoding.generated_field)
    stats = synthetic_stats(rows, split["train"], field, list(task.labels))
    verdicts = judge(task, rows, split["dev"], judges, judge_rows, seed, batch_size, max_length,
                     dev_scores, str(Path(split_dir).resolve()))
    samples = sample_per_label(rows, list(task.labels), 5, seed)
    summary = {"file": str(path), "task": task.name, "rows": stats["rows"],
               **{f"{j}_agreement": v["agreement"] for j, v in verdicts.items()},
               **{k: stats[k] for k in ("distinct_1", "distinct_2", "exact_overlap", "ngram_overlap", "duplicates")},
               "mean_words": stats["length"].get("mean"), "report": str(out["md"])}
    from synthpt.experiments.plots import plot_synthetic

    png = plot_synthetic(rows, task, field, verdicts, out["png"], title=title or path.parent.name)
    atomic_write_text(out["md"], render(title or str(path), task, stats, verdicts, samples,
                                        png.name if png else None, judge_rows))
    write_json(out["json"], {"key": key, "summary": summary, "stats": stats, "judges": verdicts})
    return summary


def judge(task: Task, rows: list[dict[str, Any]], dev: list[dict[str, Any]], judges: list[Judge],
          judge_rows: int | None, seed: int, batch_size: int, max_length: int,
          dev_scores: dict[tuple, float | None] | None = None, split_key: str = "") -> dict[str, Any]:
    """Each judge's verdict on (at most ``judge_rows`` of) ``rows`` and its accuracy on ``dev``
    (read from / written to ``dev_scores`` by judge model, prompt, ``split_key`` and eval knobs)."""
    from synthpt.core.classify import evaluate
    from synthpt.core.saving import load_peft_prompt
    from synthpt.methods.baselines.common import frozen_backbone
    from synthpt.prompt_tuning.recipe import balanced_subset

    if judge_rows == 0 or not rows:
        return {}
    judged = balanced_subset(rows, task, judge_rows, seed)
    out = {}
    dev_scores = {} if dev_scores is None else dev_scores
    for j in judges:
        bb = frozen_backbone(j.model)
        prompt = load_peft_prompt(j.prompt_dir)[0] if j.prompt_dir else None
        enc = judge_encoder(task, bb, prompt, max_length)
        res = judge_rows_of(task, bb, judged, prompt, batch_size, max_length, encoder=enc)
        prompt_name = str(j.prompt_dir) if j.prompt_dir else None
        k = (j.model, prompt_name, split_key, task.name, batch_size, max_length)
        if k not in dev_scores:
            dev_scores[k] = evaluate(task, bb, dev, prompt, batch_size, encoder=enc)["accuracy"] if dev else None
        res["dev_accuracy"] = dev_scores[k]
        res["model"], res["prompt"] = j.model, prompt_name
        out[j.name] = res
    return out


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.1f}"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")[:300]


def render(title: str, task: Task, stats: dict[str, Any], verdicts: dict[str, Any], samples: dict[str, list[dict]],
           png: str | None, judge_rows: int | None) -> str:
    lines = [f"# Synthetic set: {title}", "", f"Task `{task.name}`, {stats['rows']} rows, measured on the generated "
             f"field `{stats['field']}`.", ""]
    lines += ["## Label agreement with judges that did not write the rows", ""]
    if verdicts:
        labs = list(task.labels)
        lines += ["| judge | agreement | " + " | ".join(f"agreement on `{lab}`" for lab in labs)
                  + " | judge's accuracy on real few-shot dev | rows judged |",
                  "|:---|---:|" + "---:|" * len(labs) + "---:|---:|"]
        for name, v in verdicts.items():
            what = "backbone zero-shot" if name == "zero-shot" else "oracle's prompt (`pt+gold`)"
            lines.append(f"| {what} | {_pct(v['agreement'])} | "
                         + " | ".join(_pct(v["per_label"].get(lab)) for lab in labs)
                         + f" | {_pct(v['dev_accuracy'])} | {v['rows']} |")
        lines += ["", "A judge that is right on the real dev rows but disagrees with these labels says the "
                  "labels are noisy (Stages 1-2 fall short); if the judges agree and Ours still trails the oracle, "
                  "Stage 3 is what falls short. Predicted-label shares: "
                  + "; ".join(f"{n}: " + ", ".join(f"`{lab}` {_pct(s)}" for lab, s in v["predicted"].items())
                              for n, v in verdicts.items()) + ".", ""]
    else:
        lines += [f"No judge ran (judge_rows {judge_rows}).", ""]
    n = stats["ngram_n"]
    lines += ["## Diversity and overlap with the few-shot rows", "",
              "| | rows | distinct-1 | distinct-2 | mean words | median | min | max |", "|:---|---:|---:|---:|---:|---:|---:|---:|"]
    for lab, s in [("all", stats), *stats["per_label"].items()]:
        ln = s["length"]
        lines.append(f"| {lab} | {s['rows']} | {s['distinct_1']:.3f} | {s['distinct_2']:.3f} | "
                     + (" | ".join(f"{ln[k]:.1f}" for k in ("mean", "median", "min", "max")) if ln.get("n") else "– | – | – | –")
                     + " |")
    lines += ["", f"- exact copies of a few-shot row: {_pct(stats['exact_overlap'])}% of rows; {n}-grams found in the "
              f"few-shot rows: {_pct(stats['ngram_overlap'])}%; duplicate rows within the set: {stats['duplicates']}",
              "- distinct-n: distinct n-grams / all n-grams (words: lower-cased `\\w+` runs)", ""]
    if png:
        lines += [f"![lengths and agreement]({png})", ""]
    lines += ["## Five random rows per label (seeded)", "", "| label | text |", "|:---|:---|"]
    for lab, rows in samples.items():
        for r in rows:
            text = " / ".join(_cell(r.get(f, "")) for f in task.fields)
            lines.append(f"| {lab} | {text} |")
    return "\n".join(lines) + "\n"


# ---- in the pipeline and the grid ---------------------------------------------------------------
SUMMARY_HEAD = ["rows", "zero-shot agreement", "oracle agreement", "distinct-1", "distinct-2", "exact overlap",
                "4-gram overlap", "mean words"]


def summary_cells(s: dict[str, Any]) -> list[str]:
    return [str(s["rows"]), _pct(s.get("zero-shot_agreement")), _pct(s.get("oracle_agreement")),
            f"{s['distinct_1']:.3f}", f"{s['distinct_2']:.3f}", _pct(s["exact_overlap"]), _pct(s["ngram_overlap"]),
            "–" if s.get("mean_words") is None else f"{s['mean_words']:.1f}"]


def resolve_set(path: str, out: Path) -> Path | None:
    """A cell's synthetic file if it lies inside ``out`` or its stage cache (FewGen's published files in
    the data folder are not written next to); relative paths are relative to ``out`` (older records: to
    the cwd).  The cache counts wherever it points: runs that share one cache through a symlinked
    ``out/cache`` (several out folders over the same stages) get their sets' reports too."""
    p = Path(path)
    for cand in ([p] if p.is_absolute() else [out / p, p]):
        if cand.is_file() and path_in_out(cand, out) is not None:
            return cand
    return None


def eval_knobs(sections: dict[str, Any]) -> tuple[int, int]:
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    cfg = PromptTrainerConfig(**sections.get("prompt_tuning", {}))
    return cfg.eval_batch_size, cfg.max_length


def grid_reports(settings: list[tuple[Any, Any]], records: list[dict[str, Any]], tasks: list[Task],
                 data_dir: Any, out: Path) -> list[str]:
    """A report beside every synthetic set the grid's cells trained on, and ``synthetic.md``: one row per set."""
    from synthpt.experiments.config import MethodRow
    from synthpt.experiments.pipeline import make_context

    by_task = {t.name: t for t in tasks}
    by_point = {p.label if p else None: st for p, st in settings}
    groups: dict[tuple[Any, str, int], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec.get("point"), rec["task"], rec["seed"]), []).append(rec)
    rows = []
    dev_scores: dict[tuple, float | None] = {}  # a judge's dev accuracy: once per (model, prompt, split)
    for (point, tname, seed), recs in groups.items():
        st = by_point[point]
        sets: dict[Path, list[str]] = {}
        oracle, gold = None, None
        for rec in recs:
            for run in rec.get("runs", []):
                p = resolve_set(run["synthetic"], out) if run.get("synthetic") else None
                if p is not None:
                    sets.setdefault(p, []).append(rec["method"])
                d = out / run["dir"]
                if rec.get("registry_method") == "pt+gold" and (d / "adapter_config.json").is_file():
                    oracle, gold = d, p
        if not sets:
            continue
        task = by_task[tname]
        split_dir = make_context(st, MethodRow("report", "pt"), task, seed, data_dir, out / "cache", progress=False).split_dir
        bs, max_length = eval_knobs(st.sections)
        for p, methods in sets.items():
            judges = [Judge("zero-shot", st.model)] + ([Judge("oracle", st.model, oracle)] if oracle and p != gold else [])
            where = f"{tname}, seed {seed}" + (f", {point}" if point else "")
            s = write_synthetic_report(p, task, split_dir, judges, st.judge_rows, seed, bs, max_length,
                                       title=f"{where}; used by {', '.join(methods)}", dev_scores=dev_scores)
            rows.append([point or "", tname, str(seed), ", ".join(methods), *summary_cells(s),
                         f"[md]({path_in_out(s['report'], out)})"])
    if not rows:
        return []
    head = ["point", "task", "seed", "used by", *SUMMARY_HEAD, "report"]
    if not any(r[0] for r in rows):
        head, rows = head[1:], [r[1:] for r in rows]
    text = ["# Synthetic sets of this experiment", "", "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head), *("| " + " | ".join(r) + " |" for r in rows), "",
            "Agreement: share of the rows (at most judge_rows per set, balanced) whose label the judge predicts: the "
            "backbone zero-shot, and the `pt+gold` oracle's prompt of the same task, seed and point (not on its own "
            "gold rows). Overlap: with the few-shot train rows. Each report (md + png) lies beside its set.", ""]
    atomic_write_text(out / "synthetic.md", "\n".join(text))
    return ["synthetic.md"]


def run_reports(ctx: Any, st: Any, out: Path) -> list[dict[str, Any]]:
    """``synthpt run``: a report beside each synthetic set of the run (zero-shot judge; the oracle's
    prompt is a judge only in experiments, where its cell exists beside Ours')."""
    summaries = []
    seen: set[Path] = set()
    bs, max_length = eval_knobs({"prompt_tuning": ctx.pt_knobs})
    for run in ctx.runs:
        p = resolve_set(run["synthetic"], out) if run.get("synthetic") else None
        if p is None or p in seen:
            continue
        seen.add(p)
        summaries.append(write_synthetic_report(p, ctx.task, ctx.split_dir, [Judge("zero-shot", ctx.model)],
                                                st.judge_rows, ctx.seed, bs, max_length,
                                                title=f"{ctx.task.name}, seed {ctx.seed}"))
    return summaries
