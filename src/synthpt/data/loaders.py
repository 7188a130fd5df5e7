"""Read benchmark files and user data into canonical examples.

Every loader returns ``list[dict]`` with the task's fields (``text1``/``text2`` or ``text``)
as non-empty, stripped strings and ``label`` as a string in ``task.labels``.  All format
quirks (see ``shared/data/SOURCES.md``) live here and in :mod:`synthpt.data.official` (where each
benchmark's files are), nowhere else:

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
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail
from synthpt.core.io import read_jsonl_numbered, read_text
from synthpt.tasks import Task, get_task

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


def _auto_tsv(text: str) -> tuple[int, list[tuple[int, list[str]]] | None]:
    """GLUE TSVs are unquoted, Hugging Face exports are quoted: pick what the file shows (the
    quoting, and the rows it gives: None where the bare parse raises csv.Error)."""
    try:
        bare = _parse(text, "\t", csv.QUOTE_NONE)
    except csv.Error:
        return csv.QUOTE_NONE, None
    if not _looks_quoted(bare) and _consistent(bare):
        return csv.QUOTE_NONE, bare
    try:
        quoted = _parse(text, "\t", csv.QUOTE_MINIMAL)
    except csv.Error:
        return csv.QUOTE_NONE, bare
    if _looks_quoted(bare) or _consistent(quoted):
        return csv.QUOTE_MINIMAL, quoted
    return csv.QUOTE_NONE, bare


def tsv_quoting(text: str) -> int:
    """``csv.QUOTE_MINIMAL`` or ``csv.QUOTE_NONE`` for a TSV starting with ``text``: one decision for
    :func:`load_file` and ``synthpt predict``'s row reader, so both read a file the same."""
    return _auto_tsv(text)[0]


def read_table(path: Path, delimiter: str, quoting: int | None) -> tuple[list[str], list[Record]]:
    """Header and records of a CSV/TSV file; ``quoting=None`` detects TSV quoting.

    Rows longer than the header keep the last field as the last column (the LM-BFF rule for
    SNLI k-shot rows that carry extra annotator labels before ``gold_label``).
    """
    text = read_text(path)
    if not text.strip():
        raise fail(f"{path}: file is empty")
    try:
        if quoting is None:
            quoting, auto = _auto_tsv(text)
            rows = _parse(text, delimiter, quoting) if auto is None else auto  # None: raise that csv.Error here
        else:
            rows = _parse(text, delimiter, quoting)
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


def json_records(path: Path) -> list[Record]:
    return json_text_records(read_text(path), path)


def json_text_records(text: str, path: Path | str) -> list[Record]:
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


def jsonl_records(path: Path) -> list[Record]:
    rows = read_jsonl_numbered(path)
    return [(f"{path}: row {n} (line {line})", r) for n, (line, r) in enumerate(rows, start=1)]


def columns_of(records: list[Record]) -> list[str]:
    cols: dict[str, None] = {}
    for _, rec in records:
        cols.update(dict.fromkeys(rec))
    return list(cols)


# File suffix -> format, for load_file and predict's row reader alike.  ``.txt`` differs, so it is
# not here: training data in .txt is a TSV (SICK.txt is one), rows to predict in .txt are told by
# their first line (plain lines for a one-field task).
SUFFIX_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
                  ".tab": "tsv"}


def _read_records(path: Path) -> tuple[list[str], list[Record]]:
    suffix = path.suffix.lower()
    fmt = "tsv" if suffix == ".txt" else SUFFIX_FORMATS.get(suffix)
    if fmt in ("jsonl", "json"):
        records = jsonl_records(path) if fmt == "jsonl" else json_records(path)
        return columns_of(records), records
    if fmt == "csv":
        return read_table(path, ",", csv.QUOTE_MINIMAL)
    if fmt == "tsv":
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
