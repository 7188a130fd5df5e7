"""Task registry: what a task's examples look like and how a prompt reads them.

Every example inside synthpt is a plain ``dict`` with the task's canonical text fields
(``text1``/``text2`` for sentence pairs, ``text`` for single sentences, the same names
FewGen's published synthetic sets use) and ``label``, a string from ``Task.labels``.
Loaders map each file format onto this shape, so everything downstream is format-free.

A template is a Python format string over the fields plus ``{mask}``, the place of the
label word.  Built-in templates put ``{mask}`` last so one template serves causal LMs
(label word = next token) and T5 (``{mask}`` becomes the sentinel ``<extra_id_0>``).
They are short, plain-English questions that a small instruct model understands.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail, first_line
from synthpt.core.io import read_text


@dataclass(frozen=True)
class Task:
    """A classification task: its fields, labels, template, verbalizer and metrics."""

    name: str
    fields: tuple[str, ...]
    labels: tuple[str, ...]
    label_words: dict[str, str]
    template: str
    metrics: tuple[str, ...] = ("accuracy",)
    positive_label: str | None = None
    field_names: dict[str, str] = field(default_factory=dict)
    description: str = ""
    # Hard text around the generated field for Stage 2 (label-conditioned generation).
    # For pair tasks the generator sees ``{text1}`` and writes the second text.
    gen_template: str = ""
    # Per-label replacements of ``gen_template`` (label -> template): hard text that says what the
    # label means ("...in other words:"), so a small generator is conditioned on the label from
    # step 0 instead of through a barely-trained soft prompt alone (FewGen/SuperGen-style label
    # descriptions). Labels missing here use ``gen_template``. On SmolLM2-135M they lowered dev
    # accuracy (docs/real-cpu.md), so the built-in tasks set none.
    gen_templates: dict[str, str] = field(default_factory=dict)
    # Files of a user task (paths relative to the spec file), if given in the spec.
    files: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.fields:
            raise fail(f"task {self.name!r}: no text fields")
        if len(self.labels) < 2:
            raise fail(f"task {self.name!r}: needs at least two labels, got {list(self.labels)}")
        missing = [lab for lab in self.labels if lab not in self.label_words]
        if missing:
            raise fail(f"task {self.name!r}: labels {missing} have no label word")
        names = {n for _, n, _, _ in string.Formatter().parse(self.template) if n is not None}
        if "mask" not in names:
            raise fail(f"task {self.name!r}: template must contain {{mask}}: {self.template!r}")
        unknown = names - set(self.fields) - {"mask"}
        if unknown:
            raise fail(f"task {self.name!r}: template uses unknown fields {sorted(unknown)}")
        bad = [m for m in self.metrics if m not in ("accuracy", "f1")] if self.metrics else ["(none)"]
        if bad:
            raise fail(f"task {self.name!r}: unknown metrics {bad}; choose from accuracy, f1")
        if self.positive_label is not None and self.positive_label not in self.labels:
            raise fail(f"task {self.name!r}: positive_label {self.positive_label!r} is not a label")
        stray = [lab for lab in self.gen_templates if lab not in self.labels]
        if stray:
            raise fail(f"task {self.name!r}: gen_templates has labels {stray} that the task does not have")

    @property
    def is_pair(self) -> bool:
        return len(self.fields) == 2

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def words(self) -> list[str]:
        """Label words in label order (the verbalizer)."""
        return [self.label_words[lab] for lab in self.labels]

    def gen_template_for(self, label: str | None) -> str:
        """The generator's hard context for ``label`` (``gen_template`` when it has none of its own)."""
        return self.gen_templates.get(label, self.gen_template) if label is not None else self.gen_template

    def render(self, example: dict[str, Any], mask: str = "") -> str:
        """Fill the template; ``mask`` replaces ``{mask}`` (a label word, a sentinel, or '')."""
        return self.template.format(mask=mask, **{f: example[f] for f in self.fields})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "fields": list(self.fields),
            "labels": list(self.labels),
            "label_words": dict(self.label_words),
            "template": self.template,
            "metrics": list(self.metrics),
            "positive_label": self.positive_label,
            "gen_template": self.gen_template,
            **({"gen_templates": dict(self.gen_templates)} if self.gen_templates else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        """The task of a saved spec (``to_dict``'s output, or a user's spec file once its types are
        checked): the built-in task itself when the spec is one, so its descriptions come back too."""
        builtin = BUILTIN_TASKS.get(d.get("name", ""))
        if builtin is not None and builtin.to_dict() == d:
            return builtin
        return cls(
            name=str(d["name"]),
            fields=tuple(d["fields"]),
            labels=tuple(str(x) for x in d["labels"]),
            label_words={str(k): str(v) for k, v in d["label_words"].items()},
            template=str(d["template"]),
            metrics=tuple(d.get("metrics") or ("accuracy",)),
            positive_label=None if d.get("positive_label") is None else str(d["positive_label"]),
            field_names=dict(d.get("field_names") or {}),
            description=str(d.get("description", "")),
            gen_template=str(d.get("gen_template", "")),
            gen_templates={str(k): str(v) for k, v in (d.get("gen_templates") or {}).items()},
            files=dict(d.get("files") or {}),
        )


def _nli(name: str, description: str, labels: dict[str, str], template: str, gen_template: str,
         field_names: tuple[str, str]) -> Task:
    """An entailment task over (text1, text2); ``labels`` maps each label to its word."""
    return Task(name=name, fields=("text1", "text2"), labels=tuple(labels), label_words=labels, template=template,
                field_names=dict(zip(("text1", "text2"), field_names)), description=description,
                gen_template=gen_template)


def _same_meaning(name: str, description: str, unit: str, question: str, field_names: tuple[str, str]) -> Task:
    """A paraphrase task (1 = same meaning) over two ``unit``s: "<Unit> 1: ... <Unit> 2: ... Do both ...?"."""
    lead = f"{unit} 1: {{text1}}\n{unit} 2:"
    return Task(name=name, fields=("text1", "text2"), labels=("0", "1"), label_words={"0": "No", "1": "Yes"},
                template=f"{lead} {{text2}}\nDo both {unit.lower()}s {question}? Answer:{{mask}}",
                metrics=("accuracy", "f1"), positive_label="1", field_names=dict(zip(("text1", "text2"), field_names)),
                description=description, gen_template=lead)


_YES_NO = {"entailment": "Yes", "not_entailment": "No"}
_NLI3 = {"entailment": "Yes", "neutral": "Maybe", "contradiction": "No"}
_NLI3_TEXT = ("Premise: {text1}\nHypothesis: {text2}\nDoes the premise entail the hypothesis? Answer:{mask}",
              "Premise: {text1}\nHypothesis:", ("premise", "hypothesis"))

BUILTIN_TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            name="sst-2",
            fields=("text",),
            labels=("0", "1"),
            label_words={"0": "negative", "1": "positive"},
            template="Review: {text}\nSentiment:{mask}",
            field_names={"text": "sentence"},
            description="Stanford Sentiment Treebank, binary (0 negative, 1 positive)",
            # "Movie review:" anchors the domain: with "Review:" SmolLM2's negative label prompt drifted
            # to code and maths (synthetic labels agreed with zero-shot 59% vs 75%; docs/real-cpu.md)
            gen_template="Movie review:",
        ),
        _same_meaning("mrpc", "Microsoft Research Paraphrase Corpus (1 = paraphrase)", "Sentence",
                      "mean the same thing", ("#1 String", "#2 String")),
        _same_meaning("qqp", "Quora Question Pairs (1 = duplicate); evaluated on a train-derived proxy here",
                      "Question", "ask the same thing", ("question1", "question2")),
        _nli("rte", "Recognizing Textual Entailment", _YES_NO, '{text1}\nQuestion: Is it true that "{text2}"? Answer:{mask}',
             "{text1}\nIt follows that:", ("sentence1", "sentence2")),
        _nli("qnli", "Question NLI from SQuAD (entailment = the sentence answers the question)", _YES_NO,
             "Question: {text1}\nSentence: {text2}\nDoes the sentence answer the question? Answer:{mask}",
             "Question: {text1}\nSentence:", ("question", "sentence")),
        _nli("mnli", "MultiNLI (dev-matched as test)", _NLI3, *_NLI3_TEXT),
        _nli("snli", "Stanford NLI", _NLI3, *_NLI3_TEXT),
        _nli("sick", "SICK entailment (3-way)", _NLI3, *_NLI3_TEXT),
    ]
}

_ALIASES = {"sst2": "sst-2", "sst": "sst-2"}


def list_tasks() -> list[Task]:
    return list(BUILTIN_TASKS.values())


def get_task(name: str) -> Task:
    """A built-in task by name (case-insensitive), e.g. ``get_task("RTE")``."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in BUILTIN_TASKS:
        raise fail(f"unknown task {name!r}; built-in tasks: {', '.join(BUILTIN_TASKS)} (or pass --task-spec FILE)")
    return BUILTIN_TASKS[key]


_SPEC_KEYS = {"name", "fields", "labels", "label_words", "template", "metrics", "positive_label",
              "description", "gen_template", "gen_templates", "files", "field_names"}


def load_task_spec(path: str | Path) -> Task:
    """A user task from a small YAML or JSON file.

    Required keys: ``name``, ``fields`` (list of column names), ``labels``, ``label_words``
    (label -> word), ``template`` (with ``{mask}``).  Optional: ``metrics``,
    ``positive_label``, ``gen_template``, ``files`` ({train, dev, test} -> CSV/JSONL paths,
    relative to the spec), ``gen_templates`` (label -> generator context for that label).
    """
    p = Path(path)
    if not p.is_file():
        raise fail(f"{p}: task spec file not found")
    text = read_text(p)  # a BOM is dropped; unreadable or non-UTF-8: one line
    try:
        if p.suffix.lower() == ".json":
            spec = json.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except Exception as e:  # yaml / json syntax errors carry their own position
        raise fail(f"{p}: cannot parse task spec: {first_line(e)}") from None
    return task_from_spec(spec, p, p.parent)


def task_from_spec(spec: Any, p: str | Path, base: Path | None = None) -> Task:
    """A Task from a spec mapping (a parsed spec file, or the record an adapter keeps of its task:
    :func:`task_record`); ``p`` names it in messages, ``base`` anchors relative ``files``."""
    if not isinstance(spec, dict):
        raise fail(f"{p}: task spec must be a mapping of keys to values")
    unknown = set(spec) - _SPEC_KEYS
    if unknown:
        raise fail(f"{p}: unknown keys {sorted(unknown)}; allowed: {sorted(_SPEC_KEYS)}")
    for key in ("name", "fields", "labels", "label_words", "template"):
        if key not in spec:
            raise fail(f"{p}: missing required key {key!r}")
    if not isinstance(spec["fields"], list) or not all(isinstance(f, str) for f in spec["fields"]):
        raise fail(f"{p}: 'fields' must be a list of column names")
    if not isinstance(spec["labels"], list) or not all(isinstance(x, str | int) for x in spec["labels"]):
        raise fail(f"{p}: 'labels' must be a list of label names, got {spec['labels']!r}")
    if not isinstance(spec["label_words"], dict):
        raise fail(f"{p}: 'label_words' must map each label to a word")
    if not isinstance(spec["template"], str):
        raise fail(f"{p}: 'template' must be a string with {{mask}}, got {spec['template']!r}")
    if spec.get("metrics") is not None and (
            not isinstance(spec["metrics"], list) or not all(isinstance(m, str) for m in spec["metrics"])):
        raise fail(f"{p}: 'metrics' must be a list of metric names, got {spec['metrics']!r}")
    for key in ("files", "field_names", "gen_templates"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            raise fail(f"{p}: '{key}' must map names to values (e.g. {{train: train.csv}}), got {spec[key]!r}")
    files = {k: str(((base or Path.cwd()) / v).resolve()) for k, v in (spec.get("files") or {}).items()}
    return Task.from_dict({**spec, "files": files})


def task_record(task: Task) -> dict[str, Any]:
    """Everything a trained prompt needs to know of its task, as a spec :func:`task_from_spec` reads
    back: :meth:`Task.to_dict` (which cache keys hash, so it stays as it is) plus the column names."""
    return {**task.to_dict(), "field_names": dict(task.field_names), "description": task.description}


def task_from_record(spec: dict[str, Any], where: str | Path) -> Task:
    """The task of a :func:`task_record` (an adapter's, or a run config's): the built-in task itself
    when the record is one as it still is, so its column aliases and description stay; else as
    :func:`task_from_spec` reads it.  (``Task.from_dict`` cannot tell: the record adds keys to ``to_dict``.)"""
    built_in = BUILTIN_TASKS.get(str(spec.get("name")))
    if built_in is not None and built_in.to_dict() == {k: v for k, v in spec.items()
                                                        if k not in ("field_names", "description")}:
        return built_in
    return task_from_spec(spec, where)


def resolve_task(name: str | None = None, spec: str | Path | None = None) -> Task:
    """``--task NAME`` or ``--task-spec FILE`` -> a Task."""
    if spec:
        return load_task_spec(spec)
    if not name:
        raise fail("give --task NAME or --task-spec FILE")
    return get_task(name)
