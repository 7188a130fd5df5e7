"""The official benchmark data under ``--data-dir``: where each task's splits live and how to read them.

``load_official`` reads a task's evaluation split or training pool, ``load_lmbff_kshot`` the
published LM-BFF few-shot splits; both map rows with :mod:`synthpt.data.loaders`, so the same
validation (one :class:`SynthptError` line naming the file and row) covers them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from synthpt.core.errors import fail
from synthpt.data.loaders import (
    Record,
    as_task,
    columns_of,
    infer_columns,
    json_records,
    jsonl_records,
    read_table,
    to_examples,
)
from synthpt.tasks import BUILTIN_TASKS, Task


@dataclass(frozen=True)
class _Source:
    """Where one official split lives and how to read it."""

    files: tuple[str, ...]
    kind: str  # "glue" (unquoted TSV), "quoted" (CSV-quoted TSV), "jsonl", "pool" ({id: row})
    columns: tuple[str, ...]
    label: str
    where: tuple[str, str] | None = None  # keep rows whose column equals the value


_POOL = ("text_a", "text_b")


def _pool(task_dir: str) -> _Source:
    files = (f"{task_dir}/train_subset_9k.json", f"{task_dir}/train_subset_1k.json")
    return _Source(files, "pool", _POOL, "label")


def _sick(split: str) -> _Source:
    return _Source(("SICK/SICK.txt",), "glue", ("sentence_A", "sentence_B"), "entailment_label",
                   ("SemEval_set", split))


_OFFICIAL: dict[str, dict[str, _Source]] = {
    "sst-2": {
        "train": _Source(("SST-2/train.tsv",), "glue", ("sentence",), "label"),
        "test": _Source(("SST-2/dev.tsv",), "glue", ("sentence",), "label"),
    },
    "mrpc": {
        "train": _Source(("MRPC/train.tsv",), "glue", ("#1 String", "#2 String"), "Quality"),
        "test": _Source(("MRPC/dev.tsv",), "glue", ("#1 String", "#2 String"), "Quality"),
    },
    "rte": {
        "train": _Source(("RTE/train.tsv",), "glue", ("sentence1", "sentence2"), "label"),
        "test": _Source(("RTE/dev.tsv",), "glue", ("sentence1", "sentence2"), "label"),
    },
    "qnli": {
        "train": _pool("QNLI"),
        "test": _Source(("QNLI/dev.tsv",), "glue", ("question", "sentence"), "label"),
    },
    "mnli": {
        "train": _pool("MNLI"),
        "test": _Source(("MNLI/dev_matched.jsonl",), "jsonl", ("premise", "hypothesis"), "label"),
    },
    "snli": {
        "train": _pool("SNLI"),
        "test": _Source(("SNLI/test.tsv",), "quoted", ("premise", "hypothesis"), "label"),
        "dev": _Source(("SNLI/dev.tsv",), "quoted", ("premise", "hypothesis"), "label"),
    },
    "qqp": {
        "train": _pool("QQP"),
        "test": _Source(("QQP/heldout_from_train.tsv",), "glue", ("question1", "question2"), "is_duplicate"),
    },
    "sick": {"train": _sick("TRAIN"), "dev": _sick("TRIAL"), "test": _sick("TEST")},
}


def _source_records(path: Path, src: _Source) -> tuple[list[str], list[Record]]:
    if src.kind == "jsonl":
        records = jsonl_records(path)
        return columns_of(records), records
    if src.kind == "pool":
        records = json_records(path)
        return columns_of(records), records
    quoting = csv.QUOTE_NONE if src.kind == "glue" else csv.QUOTE_MINIMAL
    return read_table(path, "\t", quoting)


def _check_data_dir(data_dir: str | Path | None) -> Path:
    if data_dir is None:
        raise fail("no data directory given (pass --data-dir, e.g. shared/data)")
    d = Path(data_dir)
    if not d.is_dir():
        raise fail(f"{d}: data directory not found")
    return d


def official_files(task: Task | str, split: str, data_dir: str | Path) -> list[Path]:
    """The files :func:`load_official` reads (for provenance in split metadata)."""
    t = as_task(task)
    return [Path(data_dir) / f for f in _official_source(t, split).files]


def _official_source(task: Task, split: str) -> _Source:
    if task.name not in _OFFICIAL:
        raise fail(
            f"task {task.name!r} has no official data; built-in tasks: {', '.join(BUILTIN_TASKS)} "
            "(user tasks load their own files)"
        )
    splits = _OFFICIAL[task.name]
    if split not in splits:
        raise fail(f"task {task.name!r} has no {split!r} split; available: {', '.join(splits)}")
    return splits[split]


def load_official(task: Task | str, split: str, data_dir: str | Path) -> list[dict[str, str]]:
    """The official evaluation split (``"test"``) or training pool (``"train"``) of a task.

    ``"dev"`` exists for SICK (TRIAL rows) and SNLI (``dev.tsv``).  ``"test"`` is what the
    few-shot literature evaluates on (GLUE dev sets, MNLI dev-matched, SNLI test, SICK TEST,
    and a train-derived proxy for QQP).
    """
    t = as_task(task)
    src = _official_source(t, split)
    root = _check_data_dir(data_dir)
    out: list[dict[str, str]] = []
    for rel in src.files:
        path = root / rel
        if not path.is_file():
            raise fail(f"{path}: file not found (needed for {t.name} {split}; see shared/data/SOURCES.md)")
        _, records = _source_records(path, src)
        if src.where is not None:
            col, value = src.where
            records = [(loc, rec) for loc, rec in records if rec.get(col) == value]
        out.extend(to_examples(t, records, dict(zip(t.fields, src.columns)), src.label))
    return out


def lmbff_dir(task: Task | str, k: int, seed: int, data_dir: str | Path) -> Path:
    """``<data_dir>/k-shot/<TASK>/<k>-<seed>``, the LM-BFF layout (upper-case task names)."""
    return Path(data_dir) / "k-shot" / as_task(task).name.upper() / f"{k}-{seed}"


def load_lmbff_kshot(
    task: Task | str, k: int, seed: int, data_dir: str | Path
) -> tuple[list[dict[str, str]], list[dict[str, str]]] | None:
    """The published LM-BFF (train, dev) split for this task, k and seed, or None if absent.

    Using the published files instead of re-sampling makes results comparable to papers
    that report on exactly these splits.
    """
    t = as_task(task)
    d = lmbff_dir(t, k, seed, data_dir)
    if not d.is_dir():
        return None
    dev_name = "dev_matched.tsv" if t.name == "mnli" else "dev.tsv"
    parts = []
    for name in ("train.tsv", dev_name):
        path = d / name
        if not path.is_file():
            raise fail(f"{path}: file not found (LM-BFF split directory {d} is incomplete)")
        columns, records = read_table(path, "\t", csv.QUOTE_NONE)
        mapping, label = infer_columns(t, columns, str(path))
        parts.append(to_examples(t, records, mapping, label))
    return parts[0], parts[1]
