"""``synthpt run``: the whole method for one task and seed, in one output folder.

Layout of ``out/``::

    split/               the K-shot split (train/dev/test.jsonl, split.json)
    generator/           Stage 1: generator prompts, weight net, generator.json, log.jsonl
    synthetic.jsonl      Stage 2: the filtered synthetic data (+ synthetic.jsonl.report.json)
    prompt/              Stage 3: the soft prompt as a PEFT adapter (adapter_config.json,
                         adapter_model.safetensors) + its metrics.json, log.jsonl, config.json
    metrics.json         test/dev metrics, conflict rate, trainable parameters, stage timings
    report.md            a readable summary
    .stages/*.json       content-addressed stage markers (config hash, status, timing)
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from synthpt.core.io import atomic_write_text, path_in_out, write_json
from synthpt.core.runinfo import versions
from synthpt.experiments.config import SECTIONS, MethodRow, Settings
from synthpt.methods.base import Context
from synthpt.tasks import Task


def make_context(st: Settings, row: MethodRow, task: Task, seed: int, data_dir: str | Path | None, cache_dir: Path,
                 layout: str = "cache", progress: bool = True) -> Context:
    return Context(
        task=task, seed=seed, k=st.k, data_dir=Path(data_dir) if data_dir else None,
        model=row.model or st.model, generator_model=row.generator_model or st.generator_model,
        cache_dir=cache_dir, generator_knobs={**st.sections["generator"], **row.sections.get("generator", {})},
        generation_knobs={**st.sections["generation"], **row.sections.get("generation", {})},
        pt_knobs={**st.sections["prompt_tuning"], **row.sections.get("prompt_tuning", {})},
        forced={s: {**st.forced.get(s, {}), **row.sections.get(s, {})} for s in SECTIONS}, options={**st.options, **row.options},
        max_eval=st.max_eval, layout=layout, progress=progress,
    )


def stage_summary(ctx: Context) -> list[dict[str, Any]]:
    return [{"stage": s.name, "status": "ran" if s.ran else "cached", "seconds": s.seconds, "path": str(s.target),
             "key": s.key} for s in ctx.stages]


def run_pipeline(task: Task, seed: int, data_dir: str | Path | None, out: str | Path, st: Settings,
                 method: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Split → generator tuning → generation → prompt tuning → evaluation, all cached by config."""
    from synthpt.methods import get_method

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = get_method(method or st.method)
    row = MethodRow(name=m.name, method=m.name)
    ctx = make_context(st, row, task, seed, data_dir, out, layout="run", progress=progress)
    t0 = time.perf_counter()
    ctx.split  # noqa: B018  (stage 0)
    metrics = m.run(ctx)
    from synthpt.experiments.synreport import run_reports

    quality = run_reports(ctx, st, out)
    total = round(time.perf_counter() - t0, 2)
    result = {
        "task": task.name, "seed": seed, "method": m.name, "display": m.display,
        "model": ctx.model, "generator_model": ctx.generator_model,
        "test": metrics.get("test"), "dev": metrics.get("dev"),
        "conflict_rate": metrics.get("conflict_rate"),
        "trainable_parameters": metrics.get("trainable_parameters") or m.trainable_parameters(ctx),
        "stages": stage_summary(ctx), "seconds_this_invocation": total,
        "prompt_adapter": str(out / "prompt") if (out / "prompt" / "adapter_config.json").is_file() else None,
        "prompt_metrics": metrics, "synthetic_quality": quality,
    }
    write_json(out / "metrics.json", result)
    write_json(out / "config.json", {"settings": _settings_dict(st, ctx), "versions": versions()})
    atomic_write_text(out / "report.md", render_report(result, ctx, st, out))
    return result


def _settings_dict(st: Settings, ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"source": st.source, "model": ctx.model, "generator_model": ctx.generator_model,
                           "k": st.k, "max_eval": st.max_eval, "seed": ctx.seed, "options": ctx.options}
    pt = ctx.prompt_tuning_config()
    out["prompt_tuning"] = dataclasses.asdict(pt)
    try:
        out["generator"] = dataclasses.asdict(ctx.generator_config(ctx.generator_knobs.get("mode", "dawgen")))
        out["generation"] = dataclasses.asdict(ctx.generation_config())
    except Exception:  # generator stage not installed: a pt-only run
        out["generator"], out["generation"] = dict(ctx.generator_knobs), dict(ctx.generation_knobs)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def render_report(result: dict[str, Any], ctx: Context, st: Settings, out: Path) -> str:
    """report.md: what ran, how long each stage took, the metrics and the synthetic data's filter report."""
    lines = [f"# synthpt run: {result['task']} (seed {result['seed']}), method {result['display']} (`{result['method']}`)",
             "", f"- backbone: `{result['model']}`; generator LM: `{result['generator_model']}`",
             f"- config: {st.source}; K = {st.k} per class; test rows evaluated: "
             f"{(result.get('test') or {}).get('n', '?')} (max_eval {st.max_eval})",
             f"- soft prompt (PEFT adapter): `{result['prompt_adapter']}`", "", "## Metrics", ""]
    keys = [k for k in (result.get("test") or {}) if k != "n"]
    lines += ["| split | " + " | ".join(keys) + " | rows |", "|---|" + "---:|" * (len(keys) + 1)]
    for split in ("test", "dev"):
        mm = result.get(split) or {}
        lines.append(f"| {split} | " + " | ".join(_fmt(mm[k]) if k in mm else "–" for k in keys)
                     + f" | {mm.get('n', '–')} |")
    lines += ["", f"- gradient-conflict rate (share of paired steps with cos(δ_real, δ_syn) < 0): "
              f"{_fmt(result.get('conflict_rate'))}",
              f"- trainable parameters: {result.get('trainable_parameters')}",
              f"- best dev step: {result['prompt_metrics'].get('best_step')} of {result['prompt_metrics'].get('steps')}",
              "", "## Stages", "", "| stage | status | seconds | output |", "|---|---|---:|---|"]
    for s in result["stages"]:
        lines.append(f"| {s['stage']} | {s['status']} | {s['seconds']:.1f} | `{Path(s['path']).relative_to(out)}` |"
                     if Path(s["path"]).is_relative_to(out) else
                     f"| {s['stage']} | {s['status']} | {s['seconds']:.1f} | `{s['path']}` |")
    lines.append(f"\nThis invocation took {result['seconds_this_invocation']:.1f} s "
                 "(cached stages are read back, not redone; the seconds above are from when they ran).")
    lines += _quality_lines(result.get("synthetic_quality") or [], out)
    rep = out / "synthetic.jsonl.report.json"
    lines += ["", "## Synthetic data (filter report)", ""]
    if rep.is_file():
        try:
            report = json.loads(rep.read_text())
            lines += ["```json", json.dumps(report, indent=2)[:4000], "```"]
        except ValueError:
            lines.append(f"(unreadable: {rep})")
    else:
        lines.append("No synthetic data in this run (the method uses real data only, or published data).")
    lines += ["", "## Configuration", "", "```json", json.dumps(_settings_dict(st, ctx), indent=2, default=str), "```",
              ""]
    return "\n".join(lines)


def _quality_lines(quality: list[dict[str, Any]], out: Path) -> list[str]:
    """The summary row of each synthetic set's report (synthetic.report.md beside it)."""
    from synthpt.experiments.synreport import SUMMARY_HEAD, summary_cells

    if not quality:
        return []
    head = ["set", *SUMMARY_HEAD]
    lines = ["", "## Synthetic data (quality report)", "", "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for q in quality:
        rel = path_in_out(q["report"], out)
        lines.append(f"| [{Path(q['file']).name}]({rel}) | " + " | ".join(summary_cells(q)) + " |")
    return lines + ["", "Agreement: share of the rows whose label the backbone's zero-shot classifier predicts "
                    "(the judge did not write them); overlap: with the few-shot train rows."]
