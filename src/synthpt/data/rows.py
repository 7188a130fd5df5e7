"""Rows to classify, read one at a time: JSONL, CSV, TSV, a JSON list, or plain lines.

``synthpt predict`` reads files of any size and stdin, so unlike :func:`synthpt.data.load_file`
this never holds the file in memory and never needs a label (a label column is ignored).
Columns map onto the task's fields exactly as for training data (canonical names, the task's
``field_names``, the usual aliases; :func:`~synthpt.data.loaders.infer_columns`).  A bad row is
not raised here: it comes back as a :class:`Row` with ``error`` set, so the caller chooses
between stopping at it and skipping it.
"""

from __future__ import annotations

import csv
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from synthpt.core.errors import SynthptError, fail
from synthpt.data.loaders import SUFFIX_FORMATS, _text, infer_columns, json_text_records, tsv_quoting
from synthpt.tasks import Task

FORMATS = ("auto", "jsonl", "csv", "tsv", "lines", "json")


@dataclass
class Row:
    """One input row: its number (1-based, blank lines not counted), where it is, and either the
    example (the task's fields) or the one-line reason it cannot be classified."""

    n: int
    loc: str
    example: dict[str, str] | None = None
    error: str | None = None


def example_from_record(task: Task, record: Any, loc: str, mapping: dict[str, str] | None = None) -> dict[str, str]:
    """The task's fields of one record (a dict with any column names, a string for a one-field task,
    a list / tuple of the fields in order); raises one line naming ``loc``.  ``mapping`` (field ->
    column) is given for a table's rows, whose columns were matched once, on the header."""
    if isinstance(record, str):
        record = [record]
    if isinstance(record, list | tuple):
        if len(record) != len(task.fields):
            want = " and ".join(task.fields)
            raise fail(f"{loc}: expected {len(task.fields)} text(s) ({want}), got {len(record)}")
        record = dict(zip(task.fields, record))
    if not isinstance(record, dict):
        raise fail(f"{loc}: expected an object with the fields {', '.join(task.fields)}, "
                   f"got {type(record).__name__}")
    if mapping is None:
        mapping, _ = infer_columns(task, list(record), loc, need_label=False)
    return {field: _text(record.get(col), loc, field, col) for field, col in mapping.items()}


def choose_format(task: Task, name: str, fmt: str, first: str | None) -> str:
    """The reader for ``name`` (a path or ``-``): ``fmt`` if given, else the suffix, else the first line."""
    if fmt not in FORMATS:
        raise fail(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt != "auto":
        chosen = fmt
    elif Path(name).suffix.lower() in SUFFIX_FORMATS:  # .txt is not: told by its first line, below
        chosen = SUFFIX_FORMATS[Path(name).suffix.lower()]
    elif first is None:
        chosen = "lines"
    elif first.lstrip().startswith("{"):
        chosen = "jsonl"
    elif len(task.fields) == 1:
        chosen = "lines"
    elif "\t" in first:
        chosen = "tsv"
    elif "," in first:
        chosen = "csv"
    else:
        raise fail(f"{name}: cannot tell the format from its first line; task {task.name} has two fields "
                   f"({', '.join(task.fields)}): give JSONL, or CSV / TSV with a header (--format csv|tsv)")
    if chosen == "lines" and len(task.fields) != 1:
        raise fail(f"{name}: plain lines need a one-field task; {task.name} has two fields "
                   f"({', '.join(task.fields)}): give JSONL, CSV or TSV with a header row")
    return chosen


def _checked(task: Task, n: int, loc: str, record: Any, mapping: dict[str, str] | None = None) -> Row:
    try:
        return Row(n, loc, example=example_from_record(task, record, loc, mapping))
    except SynthptError as e:
        return Row(n, loc, error=str(e))


def _nonblank(name: str, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str, str]]:
    """(row number, location, line) of every line with text: blank lines are no rows."""
    n = 0
    for line_no, line in lines:
        if line.strip():
            n += 1
            yield n, f"{name}: row {n} (line {line_no})", line


def _jsonl_rows(task: Task, name: str, lines: Iterator[tuple[int, str]]) -> Iterator[Row]:
    for n, loc, line in _nonblank(name, lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield Row(n, loc, error=f"{loc}: invalid JSON: {e.msg} (column {e.colno})")
            continue
        yield _checked(task, n, loc, record)


def _table_rows(task: Task, name: str, lines: Iterator[tuple[int, str]], delimiter: str,
                quoting: int) -> Iterator[Row]:
    numbers: list[int] = []

    def text() -> Iterator[str]:
        for line_no, line in lines:
            numbers.append(line_no)
            yield line

    reader = csv.reader(text(), delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    mapping: dict[str, str] = {}
    n = 0
    try:
        for cells in reader:
            if not cells or not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
                if len(header) < len(task.fields):
                    sep = "tab" if delimiter == "\t" else repr(delimiter)
                    raise fail(f"{name}: header has {len(header)} column(s), task {task.name} needs "
                               f"{', '.join(task.fields)} ({sep}-separated, with a header row)")
                mapping, _ = infer_columns(task, header, f"{name}: header", need_label=False)  # once, before any row
                continue
            n += 1
            loc = f"{name}: row {n} (line {numbers[-1]})"
            if len(cells) < len(header):
                yield Row(n, loc, error=f"{loc}: {len(cells)} fields, header has {len(header)}")
                continue
            yield _checked(task, n, loc, dict(zip(header, cells[: len(header) - 1] + [cells[-1]])), mapping)
    except csv.Error as e:
        raise fail(f"{name}: malformed table near line {numbers[-1] if numbers else 1}: {e}") from None


def _plain_rows(task: Task, name: str, lines: Iterator[tuple[int, str]]) -> Iterator[Row]:
    for n, loc, line in _nonblank(name, lines):
        yield Row(n, loc, example={task.fields[0]: line.strip()})


def read_rows(task: Task, stream: IO[str], name: str, fmt: str = "auto", sniff: int = 200) -> Iterator[Row]:
    """Every row of ``stream`` (named ``name`` in messages), read lazily; see the module docstring.

    The format is told from the first ``sniff`` lines (1 for a person typing: nothing waits)."""
    numbered = ((i, line) for i, line in enumerate(stream, start=1))
    head = list(itertools.islice(numbered, max(1, sniff)))
    first = next((line for _, line in head if line.strip()), None)
    chosen = choose_format(task, name, fmt, first)
    lines = itertools.chain(head, numbered)
    if chosen == "json":  # a JSON list (or {id: row}) is one document: read whole, like the loaders
        text = "".join(line for _, line in lines)
        for n, (loc, record) in enumerate(json_text_records(text, name), start=1):
            yield _checked(task, n, loc, record)
    elif chosen == "jsonl":
        yield from _jsonl_rows(task, name, lines)
    elif chosen == "lines":
        yield from _plain_rows(task, name, lines)
    elif chosen == "csv":
        yield from _table_rows(task, name, lines, ",", csv.QUOTE_MINIMAL)
    else:
        yield from _table_rows(task, name, lines, "\t", tsv_quoting("".join(line for _, line in head)))
