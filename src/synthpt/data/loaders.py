"""Read benchmark files and user data into canonical examples.

Every loader returns ``list[dict]`` with the task's fields (``text1``/``text2`` or ``text``)
as non-empty, stripped strings and ``label`` as a string in ``task.labels``.  All format
quirks (see ``shared/data/SOURCES.md``) live here and nowhere else:

* GLUE TSVs are tab-separated *without* quoting (texts contain bare ``"``), MRPC starts
  with a BOM and keeps its label in column 0 (``Quality``);
* the SNLI ``test.tsv``/``dev.tsv`` exports *are* CSV-quoted and use int labels
  0 = entailment, 1 = neutral, 2 = contradiction (the order of ``task.labels``);
* LM-BFF SNLI k-shot rows can be longer than the header: the label is the last field;
* SICK.txt has CRLF line ends, upper-case labels and its split in ``SemEval_set``;
* the MNLI/QNLI/QQP/SNLI training pools are JSON objects ``{"0": {text_a, text_b, label}}``.

Every row is validated, and any problem is one :class:`SynthptError` line naming the file
and row, because a silently dropped or mislabelled row skews few-shot results.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail
from synthpt.core.io import read_jsonl_numbered, read_text
from synthpt.tasks import BUILTIN_TASKS, Task, get_task

csv.field_size_limit(2**31 - 1)

# A record is (location for error messages, column -> raw value).
Record = tuple[str, dict[str, Any]]

# Aliases by field position: what other datasets call the first / second text.
_PAIR_ALIASES: tuple[tuple[str, ...], tuple[str, ...]] = (
    ("text_a", "sentence1", "premise", "question1", "sentence_a", "#1 string"),
    ("text_b", "sentence2", "hypothesis", "question2", "sentence_b", "#2 string"),
)
_SINGLE_ALIASES: tuple[str, ...] = ("sentence", "text_a", "text1")
_LABEL_COLUMNS: tuple[str, ...] = ("label", "gold_label", "is_duplicate", "quality", "entailment_label")


def as_task(task: Task | str) -> Task:
    """Accept a Task or a built-in task name, so callers can pass either."""
    return task if isinstance(task, Task) else get_task(task)


# ---------------------------------------------------------------------------- values


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and (not value.strip() or value.strip().lower() == "nan")


def _text(value: Any, loc: str, field: str, column: str) -> str:
    if _is_missing(value):
        raise fail(f"{loc}: field {field!r} (column {column!r}) is empty or missing")
    if isinstance(value, dict | list):
        raise fail(f"{loc}: field {field!r} (column {column!r}) must be text, got {type(value).__name__}")
    return str(value).strip()


def _label_by_index(index: int, task: Task, loc: str, raw: Any) -> str:
    if not 0 <= index < task.num_labels:
        raise fail(
            f"{loc}: numeric label {raw!r} out of range 0..{task.num_labels - 1} "
            f"(labels: {', '.join(task.labels)})"
        )
    return task.labels[index]


def normalize_label(raw: Any, task: Task, loc: str) -> str:
    """Map a raw label onto ``task.labels``.

    Accepted: a label itself (case-insensitive, so SICK's ``ENTAILMENT`` works), a label
    word of the verbalizer (``Yes``), or an integer index into ``task.labels`` (SNLI's 0/1/2,
    Hugging Face ClassLabel ints).
    """
    if _is_missing(raw):
        raise fail(f"{loc}: label is empty or missing")
    if isinstance(raw, bool) or isinstance(raw, dict | list):
        raise fail(f"{loc}: label {raw!r} is not one of {', '.join(task.labels)}")
    if isinstance(raw, int):
        return _label_by_index(raw, task, loc, raw)
    if isinstance(raw, float):
        if not raw.is_integer():
            raise fail(f"{loc}: numeric label {raw!r} is not an integer")
        return _label_by_index(int(raw), task, loc, raw)
    text = str(raw).strip()
    if text in task.labels:
        return text
    folded = text.lower()
    by_name = [lab for lab in task.labels if lab.lower() == folded]
    if len(by_name) == 1:
        return by_name[0]
    by_word = [lab for lab in task.labels if task.label_words[lab].strip().lower() == folded]
    if len(by_word) == 1:
        return by_word[0]
    if re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return _label_by_index(int(float(text)), task, loc, text)
    raise fail(f"{loc}: label {text!r} is not one of {', '.join(task.labels)}")


# ---------------------------------------------------------------------------- columns


def _lookup(columns: Sequence[str]) -> dict[str, str]:
    """Case-insensitive header lookup: folded name -> actual column name (first wins)."""
    found: dict[str, str] = {}
    for col in columns:
        found.setdefault(str(col).strip().lower(), col)
    return found


def _field_candidates(task: Task, i: int, field: str) -> list[str]:
    cands = [field]
    if task.field_names.get(field):
        cands.append(task.field_names[field])
    if len(task.fields) == 1:
        cands.extend(_SINGLE_ALIASES)
    elif len(task.fields) == 2:
        cands.extend(_PAIR_ALIASES[i])
    return cands


def infer_columns(task: Task, columns: Sequence[str], source: str,
                  need_label: bool = True) -> tuple[dict[str, str], str | None]:
    """Which column holds each task field and the label; fail listing what was looked for.

    ``need_label=False`` (rows to predict): the label column is None when there is none."""
    lookup = _lookup(columns)
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for i, field in enumerate(task.fields):
        cands = _field_candidates(task, i, field)
        hit = next((lookup[c.lower()] for c in cands if c.lower() in lookup and lookup[c.lower()] not in used),
                   None)
        if hit is None:
            raise fail(
                f"{source}: no column for field {field!r} (looked for {', '.join(dict.fromkeys(cands))}); "
                f"columns found: {', '.join(map(str, columns))}"
            )
        mapping[field] = hit
        used.add(hit)
    label = next((lookup[c] for c in _LABEL_COLUMNS if c in lookup and lookup[c] not in used), None)
    if label is None and need_label:
        raise fail(
            f"{source}: no label column (looked for {', '.join(_LABEL_COLUMNS)}); "
            f"columns found: {', '.join(map(str, columns))}"
        )
    return mapping, label


def to_examples(
    task: Task, records: Iterable[Record], columns: dict[str, str], label_column: str
) -> list[dict[str, str]]:
    """Validate records and build canonical examples (fields + label only)."""
    out: list[dict[str, str]] = []
    for loc, rec in records:
        ex = {field: _text(rec.get(col), loc, field, col) for field, col in columns.items()}
        ex["label"] = normalize_label(rec.get(label_column), task, loc)
        out.append(ex)
    return out


# ---------------------------------------------------------------------------- tables


def _parse(text: str, delimiter: str, quoting: int) -> list[tuple[int, list[str]]]:
    """Rows with the line number where each ends; blank lines dropped (may raise csv.Error)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
    return [(reader.line_num, row) for row in reader if row and any(c.strip() for c in row)]


_QUOTED = re.compile(r'^"(?:[^"]|"")*""(?:[^"]|"")*"$')


def _looks_quoted(rows: list[tuple[int, list[str]]]) -> bool:
    """A field wrapped in quotes with doubled inner quotes only comes from a CSV writer."""
    return any(_QUOTED.match(cell) for _, row in rows for cell in row)


def _consistent(rows: list[tuple[int, list[str]]]) -> bool:
    return len({len(row) for _, row in rows}) <= 1


def _parse_auto_tsv(text: str) -> list[tuple[int, list[str]]]:
    """GLUE TSVs are unquoted, Hugging Face exports are quoted: pick what the file shows."""
    bare = _parse(text, "\t", csv.QUOTE_NONE)
    if not _looks_quoted(bare) and _consistent(bare):
        return bare
    try:
        quoted = _parse(text, "\t", csv.QUOTE_MINIMAL)
    except csv.Error:
        return bare
    if _looks_quoted(bare) or _consistent(quoted):
        return quoted
    return bare


def read_table(path: Path, delimiter: str, quoting: int | None) -> tuple[list[str], list[Record]]:
    """Header and records of a CSV/TSV file; ``quoting=None`` detects TSV quoting.

    Rows longer than the header keep the last field as the last column (the LM-BFF rule for
    SNLI k-shot rows that carry extra annotator labels before ``gold_label``).
    """
    text = read_text(path)
    if not text.strip():
        raise fail(f"{path}: file is empty")
    try:
        rows = _parse_auto_tsv(text) if quoting is None else _parse(text, delimiter, quoting)
    except csv.Error as e:
        raise fail(f"{path}: malformed table: {e}") from None
    (_, header), body = rows[0], rows[1:]
    header = [h.strip() for h in header]
    sep = "tab" if delimiter == "\t" else repr(delimiter)
    if len(header) < 2:
        raise fail(f"{path}: only one column found in the header; is the file {sep}-separated?")
    if not body:
        raise fail(f"{path}: header only, no data rows")
    records: list[Record] = []
    width = len(header)
    for n, (line, row) in enumerate(body, start=1):
        loc = f"{path}: row {n} (line {line})"
        if len(row) < width:
            raise fail(f"{loc}: {len(row)} fields, header has {width} ({sep}-separated expected)")
        values = row[: width - 1] + [row[-1]]
        records.append((loc, dict(zip(header, values))))
    return header, records


# ---------------------------------------------------------------------------- generic files


def _read_json_records(path: Path) -> list[Record]:
    return json_records(read_text(path), path)


def json_records(text: str, path: Path | str) -> list[Record]:
    """Rows of a JSON list or ``{id: row}`` document (``path`` names it in messages)."""
    if not text.strip():
        raise fail(f"{path}: file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        items = [(f"{path}: row {n} (key {k!r})", v) for n, (k, v) in enumerate(data.items(), start=1)]
    elif isinstance(data, list):
        items = [(f"{path}: row {n}", v) for n, v in enumerate(data, start=1)]
    else:
        raise fail(f"{path}: expected a JSON list of rows or an object {{id: row}}")
    if not items:
        raise fail(f"{path}: no rows")
    for loc, row in items:
        if not isinstance(row, dict):
            raise fail(f"{loc}: expected a JSON object, got {type(row).__name__}")
    return items


def _jsonl_records(path: Path) -> list[Record]:
    rows = read_jsonl_numbered(path)
    return [(f"{path}: row {n} (line {line})", r) for n, (line, r) in enumerate(rows, start=1)]


def _columns_of(records: list[Record]) -> list[str]:
    cols: dict[str, None] = {}
    for _, rec in records:
        cols.update(dict.fromkeys(rec))
    return list(cols)


def _read_records(path: Path) -> tuple[list[str], list[Record]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        records = _jsonl_records(path)
        return _columns_of(records), records
    if suffix == ".json":
        records = _read_json_records(path)
        return _columns_of(records), records
    if suffix == ".csv":
        return read_table(path, ",", csv.QUOTE_MINIMAL)
    if suffix in (".tsv", ".txt", ".tab"):
        return read_table(path, "\t", None)
    raise fail(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv, .tsv, .jsonl or .json")


def load_file(path: str | Path, task: Task | str) -> list[dict[str, str]]:
    """Load user data or a synthetic set (CSV, TSV, JSONL, JSON list or ``{id: row}``).

    Columns are matched to the task's fields by canonical name, the task's ``field_names``,
    and common aliases (``text_a``/``text_b``, ``sentence1``/``sentence2``, ``premise``/
    ``hypothesis``, ``question1``/``question2``, ``sentence``); the label comes from
    ``label``/``gold_label`` (also ``is_duplicate``, ``Quality``, ``entailment_label``).
    """
    t = as_task(task)
    p = Path(path)
    if not p.is_file():
        raise fail(f"{p}: {'not a file' if p.exists() else 'file not found'}")
    columns, records = _read_records(p)
    mapping, label = infer_columns(t, columns, str(p))
    return to_examples(t, records, mapping, label)


# ---------------------------------------------------------------------------- official data


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
        records = _jsonl_records(path)
        return _columns_of(records), records
    if src.kind == "pool":
        records = _read_json_records(path)
        return _columns_of(records), records
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


def load_hub(task: Task | str, name: str, split: str, config: str | None = None) -> list[dict[str, str]]:
    """A Hugging Face dataset split (needs internet), mapped like :func:`load_file`.

    Rows with label -1 (the Hub's "no gold label", e.g. in ``snli``) are dropped.
    """
    t = as_task(task)
    try:
        import datasets
    except ImportError:
        raise fail("loading from the Hub needs the 'datasets' package (pip install datasets)") from None
    source = f"{name}{'/' + config if config else ''}[{split}]"
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as e:  # network, unknown dataset, bad config: all user-facing
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise fail(f"{source}: cannot load from the Hugging Face Hub: {first}") from None
    mapping, label = infer_columns(t, list(ds.column_names), source)
    records: list[Record] = [
        (f"{source}: row {n}", dict(row)) for n, row in enumerate(ds, start=1) if row.get(label) != -1
    ]
    if not records:
        raise fail(f"{source}: no labelled rows")
    return to_examples(t, records, mapping, label)
