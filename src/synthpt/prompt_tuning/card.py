"""The card beside every adapter: ``README.md`` in the prompt folder, as PEFT and SetFit users expect.

A soft prompt alone is 20-100 vectors; what makes it usable is what it was trained for (task,
labels and their words, the template it must be read with), on which base model (and that
model's license), from which data (real and synthetic counts), how well it did (dev and test)
and how to make it again (the command; ``config.json`` beside it has the resolved config).
The front matter is the Hugging Face Hub's model-card metadata, so the folder can be pushed as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from synthpt.core.errors import SynthptError
from synthpt.core.io import atomic_write_text, read_json_object
from synthpt.core.models import model_license
from synthpt.core.runinfo import command, versions
from synthpt.tasks import Task


def _split_source(data: str | Path | None) -> str:
    """Where the few-shot rows came from, as ``split.json`` records it."""
    if not data:
        return "not recorded"
    try:
        meta = read_json_object(Path(data) / "split.json", "split record")
    except SynthptError:  # no record (a user's own folder) or a bad one: the card names the folder only
        return f"`{data}`"
    how = {"lmbff": "LM-BFF's published split", "sampled": "sampled by synthpt (LM-BFF procedure)"}
    src = how.get(str(meta.get("source")), str(meta.get("source", "?")))
    return f"`{data}`: {src}, K = {meta.get('k')} per class, seed {meta.get('seed')}"


def _metrics_rows(metrics: dict[str, Any] | None) -> list[str]:
    if not metrics or not any(isinstance(metrics.get(s), dict) for s in ("dev", "test")):
        return ["No evaluation was run for this prompt (an intermediate prompt, e.g. a transfer source)."]
    keys = [k for k in (metrics.get("test") or metrics.get("dev") or {}) if k != "n"]
    rows = ["| split | " + " | ".join(keys) + " | rows |", "|---|" + "---:|" * (len(keys) + 1)]
    for split in ("dev", "test"):
        m = metrics.get(split) or {}
        if m:
            rows.append(f"| {split} | " + " | ".join(f"{m[k]:.4f}" if k in m else "–" for k in keys)
                        + f" | {m.get('n', '–')} |")
    return rows


def render_card(task: Task, model: str, base_path: str, prompt_shape: tuple[int, int], *,
                metrics: dict[str, Any] | None = None, train: dict[str, Any] | None = None,
                data: str | Path | None = None, synthetic: str | None = None, counts: dict[str, int] | None = None,
                note: str | None = None) -> str:
    """The card's markdown.  The run's facts are arguments, so a test can check each; it also reads
    what only the files know: the base model's license (its README) and the split's source
    (``split.json`` in ``data``), and the command line and library versions of this process."""
    lic = model_license(model, base_path)
    n, d = prompt_shape
    counts = counts or {}
    front = ["---", "library_name: peft", f"base_model: {model}", "pipeline_tag: text-classification",
             "tags: [prompt-tuning, peft, synthpt]"] + ([f"license: {lic}"] if lic and "random" not in lic else [])
    words = ", ".join(f"`{lab}` → \"{task.label_words[lab]}\"" for lab in task.labels)
    lines = front + ["---", "", f"# Soft prompt for `{task.name}` on `{model}`", "",
                     f"A {n}-token soft prompt ({n * d:,} trainable parameters) trained by synthpt before the frozen "
                     f"`{model}`. It classifies by comparing the label words' probabilities where the template's "
                     "`{mask}` stands.", ""]
    if note:
        lines += [note, ""]
    lines += ["## Use", "", "```bash", "synthpt predict --prompt THIS_FOLDER --input texts.txt   # or --input - (stdin)",
              "```", "", "```python", "import synthpt", "", 'clf = synthpt.load("THIS_FOLDER")',
              f"clf.predict([{_example(task)}])   # -> [{{'label': ..., 'probs': {{...}}}}]", "```", "",
              "PEFT loads it too: `PeftModel.from_pretrained(base, THIS_FOLDER)`; feed it the template below.", "",
              "## Task", "", f"- {task.description or task.name}",
              f"- fields: {', '.join(f'`{f}`' for f in task.fields)}",
              f"- labels and label words: {words}", f"- template: `{task.template!r}`",
              f"- metrics: {', '.join(task.metrics)}", "",
              "## Base model", "", f"- `{model}` (loaded from `{base_path}`)",
              "- license: " + (lic or "unknown: see the base model's own card"), "",
              "## Training data", "", f"- real rows: {counts.get('train', '?')} train, {counts.get('dev', '?')} dev "
              f"(dev picks the best step); from {_split_source(data)}",
              f"- synthetic rows: {counts.get('synthetic', 0)}" + (f" from `{synthetic}`" if synthetic else ""), ""]
    if train:
        keys = ("strategy", "gradient_surgery", "epsilon", "max_steps", "lr", "batch_size", "syn_batch_size",
                "prompt_length", "max_length", "seed")
        lines += ["## Training", "", "- " + ", ".join(f"{k} {train[k]}" for k in keys if k in train)]
        if metrics and metrics.get("best_step") is not None:
            conflicts = (f"; conflict rate {metrics.get('conflict_rate') or 0:.2f} (share of paired steps where "
                         "δ_syn · δ_real < 0)") if train.get("strategy") == "paired" else ""
            lines.append(f"- best dev step {metrics['best_step']} of {metrics.get('steps')}{conflicts}")
        lines.append("")
    lines += ["## Metrics", ""] + _metrics_rows(metrics) + ["", "## How it was made", ""]
    cmd = command()
    lines += [f"- command: `{cmd}`" if cmd else "- command: not recorded (called from Python)",
              "- config: `config.json` in this folder (the resolved configuration)" if train else
              "- config: see the run that made it",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in versions().items() if v != "not installed"), ""]
    return "\n".join(lines)


def _example(task: Task) -> str:
    return '"a gripping, funny film"' if len(task.fields) == 1 else '("first text", "second text")'


def write_card(out: str | Path, task: Task, model: str, base_path: str, prompt_shape: tuple[int, int],
               **facts: Any) -> Path:
    """Write ``out/README.md`` (atomically); ``facts`` as for :func:`render_card`."""
    path = Path(out) / "README.md"
    atomic_write_text(path, render_card(task, model, base_path, prompt_shape, **facts))
    return path
