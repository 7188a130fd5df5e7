"""Using a trained prompt: load its adapter and classify new, unlabelled text.

This is what ``synthpt predict`` and :func:`synthpt.load` run.  Scoring is the same batched
verbalizer pass that training and evaluation use (:func:`synthpt.core.classify.predict`), so a
prediction here is the label ``synthpt evaluate`` would count.

An adapter is a PEFT prompt-tuning folder (``adapter_config.json`` + ``adapter_model.safetensors``).
One written by synthpt names its task in ``adapter_config.json``'s ``"synthpt"`` entry (fields,
labels, label words, template), so it needs nothing else; one trained with PEFT elsewhere needs
``--task`` / ``--task-spec`` and loads when its base model is one synthpt loads (any Hugging Face
causal or seq2seq LM).  Probabilities are the label words' probabilities renormalised over the
task's labels.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch

from synthpt.core import distributed as dist
from synthpt.core.classify import predict as score_examples
from synthpt.core.errors import fail
from synthpt.core.io import atomic_writer
from synthpt.core.models import BUILTIN_MODELS, Backbone, load_backbone, parse_dtype
from synthpt.core.progress import progress_bar
from synthpt.core.saving import check_prompt_fits, load_peft_prompt
from synthpt.core.scoring import Encoder
from synthpt.data.rows import Row, example_from_record, read_rows
from synthpt.tasks import BUILTIN_TASKS, Task, get_task, resolve_task, task_from_record


def find_adapter(path: str | Path) -> Path:
    """The adapter folder of ``path``: the folder itself, or its ``prompt/`` (a ``synthpt run`` output)."""
    p = Path(path)
    for cand in (p, p / "prompt"):
        if (cand / "adapter_config.json").is_file():
            return cand
    if not p.exists():
        raise fail(f"{p}: no such folder (give a prompt adapter folder, e.g. runs/x/prompt)")
    raise fail(f"{p}: not a prompt adapter (no adapter_config.json here or in {p / 'prompt'})")


def _run_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` synthpt writes beside an adapter (empty if absent or unreadable)."""
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8")).get("config") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def adapter_task(folder: Path, adapter_cfg: dict[str, Any], task: str | None = None,
                 task_spec: str | Path | None = None, run_config: dict[str, Any] | None = None) -> Task:
    """The task a prompt was trained for: ``task`` / ``task_spec`` if given, else what the adapter says
    (its own record, else the ``config.json`` beside it: ``run_config`` when the caller has read it)."""
    if task or task_spec:
        return resolve_task(task, task_spec)
    own = adapter_cfg.get("synthpt") or {}
    spec = own.get("task_spec") or (_run_config(folder) if run_config is None else run_config).get("task")
    if isinstance(spec, dict):
        return task_from_record(spec, folder / "adapter_config.json")
    if isinstance(own.get("task"), str) and own["task"] in BUILTIN_TASKS:
        return get_task(own["task"])
    raise fail(f"{folder}: the adapter does not say which task it was trained for (trained outside synthpt?); "
               "give --task NAME or --task-spec FILE")


def adapter_base(adapter_cfg: dict[str, Any], where: Path) -> str:
    """The base model to load: the adapter's ``base_model_name_or_path``, or the built-in model it names
    when that folder is gone (a built-in is materialised under ``$SYNTHPT_CACHE/models/<name>``, a path
    that differs from machine to machine)."""
    own = adapter_cfg.get("synthpt") or {}
    base = adapter_cfg.get("base_model_name_or_path") or own.get("model")
    if not base:
        raise fail(f"{where}: adapter_config.json names no base_model_name_or_path; give --model")
    p = Path(base)
    if p.is_absolute() and not p.exists():
        name = own.get("model") if own.get("model") in BUILTIN_MODELS else p.name
        if name in BUILTIN_MODELS:
            return name
        raise fail(f"{where}: base model folder {base} does not exist here; give --model")
    return str(base)


@dataclass
class Adapter:
    """What a prompt folder says before any model is loaded: the prompt, its task, its base model."""

    folder: Path
    prompt: torch.Tensor  # (n, d)
    config: dict[str, Any]  # adapter_config.json
    task: Task
    max_length: int  # what it was trained with (256 if unknown)


def read_adapter(path: str | Path, task: str | None = None, task_spec: str | Path | None = None) -> Adapter:
    """Read the adapter at ``path`` (a prompt folder or a ``synthpt run`` folder); cheap, no model."""
    folder = find_adapter(path)
    prompt, cfg = load_peft_prompt(folder)
    run = _run_config(folder)
    trained = (run.get("train") or {}).get("max_length")
    return Adapter(folder, prompt, cfg, adapter_task(folder, cfg, task, task_spec, run), int(trained or 256))


@dataclass
class Classifier:
    """A trained prompt before its frozen backbone, ready to classify (``synthpt.load`` returns one)."""

    task: Task
    backbone: Backbone
    prompt: torch.Tensor | None
    max_length: int = 256
    batch_size: int = 32

    def __post_init__(self) -> None:
        n = 0 if self.prompt is None else self.prompt.shape[0]
        self.encoder = Encoder(self.task, self.backbone, max_length=self.max_length, prompt_length=n)

    @classmethod
    def from_adapter(cls, ad: Adapter, *, model: str | None = None, dtype: str | None = None,
                     trust_remote_code: bool = False, max_length: int | None = None,
                     batch_size: int = 32) -> Classifier:
        """Load the adapter's base model (or ``model``) and check that the prompt fits it."""
        bb = load_backbone(model or adapter_base(ad.config, ad.folder), trust_remote_code=trust_remote_code,
                           dtype=parse_dtype(dtype), device=dist.device())
        check_prompt_fits(ad.prompt, bb, str(ad.folder))
        return cls(ad.task, bb, ad.prompt, max_length or ad.max_length, batch_size)

    def probabilities(self, examples: list[dict[str, str]]) -> torch.Tensor:
        """(N, L) probability of each label for canonical examples (the task's fields)."""
        if not examples:
            return torch.empty((0, self.task.num_labels))
        logp = score_examples(self.encoder, examples, self.prompt, self.batch_size)  # (N, L) label-word log-probs
        return torch.softmax(logp, dim=-1)  # (N, L), renormalised over the labels

    def label_rows(self, examples: list[dict[str, str]]) -> list[dict[str, Any]]:
        """``{"label", "probs"}`` per example, in order (the JSON ``synthpt predict`` writes, less the row)."""
        probs = self.probabilities(examples)
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": self.task.labels[best],
                        "probs": {lab: round(p, 6) for lab, p in zip(self.task.labels, row)}})
        return out

    def predict(self, rows: str | Iterable[Any]) -> list[dict[str, Any]]:
        """Classify texts: strings (one-field tasks), ``(text1, text2)`` tuples or dicts (two-field tasks).

        Returns one ``{"label": ..., "probs": {label: p, ...}}`` per row, in order.  A dict may use
        the task's field names or any column name the loaders accept (``sentence1``, ``premise`` ...);
        a bad row raises :class:`synthpt.SynthptError` naming it."""
        items = [rows] if isinstance(rows, str) else list(rows)
        examples = [example_from_record(self.task, r, f"row {i}") for i, r in enumerate(items, start=1)]
        return self.label_rows(examples)


# ---- synthpt predict: a whole input, streamed ------------------------------------------------------
@dataclass
class Source:
    """Where rows come from: a file (read twice: checked, then classified) or an interactive stdin."""

    name: str
    path: Path | None = None
    spool: IO[str] | None = None  # piped stdin, copied so it can be read twice
    interactive: bool = False

    def open(self) -> IO[str]:
        if self.spool is not None:
            self.spool.seek(0)
            return self.spool
        if self.path is not None:
            return open(self.path, encoding="utf-8", newline="")
        return sys.stdin

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()


def open_source(source: str | Path) -> Source:
    if str(source) == "-":
        if sys.stdin.isatty():
            return Source("<stdin>", interactive=True)
        spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")
        try:
            shutil.copyfileobj(sys.stdin, spool)
        except UnicodeDecodeError as e:
            spool.close()
            raise fail(f"<stdin>: not UTF-8 text ({e.reason} at byte {e.start})") from None
        return Source("<stdin>", spool=spool)
    p = Path(source)
    if not p.is_file():
        raise fail(f"{p}: {'not a file' if p.exists() else 'file not found'}")
    return Source(str(p), path=p)


def _rows(src: Source, task: Task, fmt: str) -> Iterator[Row]:
    stream = src.open()
    try:
        yield from read_rows(task, stream, src.name, fmt, sniff=1 if src.interactive else 200)
    except UnicodeDecodeError as e:
        raise fail(f"{src.name}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    finally:
        if src.path is not None:
            stream.close()


def check_rows(src: Source, task: Task, fmt: str, skip_bad: bool) -> tuple[int, int, str | None]:
    """Pass 1: read every row without scoring; the first bad one fails unless ``skip_bad``.

    Returns (good rows, bad rows, the first bad row's message)."""
    good, n_bad, first_bad = 0, 0, None
    for row in _rows(src, task, fmt):
        if row.error is None:
            good += 1
        elif not skip_bad:
            raise fail(row.error + " (--skip-bad skips such rows)")
        else:
            n_bad += 1
            first_bad = first_bad or row.error
    if good == 0:
        raise fail(f"{src.name}: no rows to classify" + (f" ({n_bad} bad; first: {first_bad})" if n_bad else ""))
    return good, n_bad, first_bad


def _line(row: Row, pred: dict[str, Any]) -> str:
    return json.dumps({"row": row.n, **(row.example or {}), **pred}, ensure_ascii=False) + "\n"


def write_predictions(clf: Classifier, rows: Iterable[Row], out: IO[str], chunk_size: int,
                      checked: bool = False, skip_bad: bool = False, bar: Any = None) -> int:
    """Pass 2: classify ``chunk_size`` rows at a time and write one JSON line each; returns rows written.

    ``checked``: pass 1 read these rows already, so a bad one here is one it counted (and skipped)."""
    written, chunk = 0, []

    def flush() -> None:
        nonlocal written
        for row, pred in zip(chunk, clf.label_rows([r.example for r in chunk])):
            out.write(_line(row, pred))
        out.flush()
        written += len(chunk)
        if bar is not None:
            bar.update(len(chunk))
        chunk.clear()

    for row in rows:
        if row.error is not None and checked:
            continue
        if row.error is not None:  # only an interactive stdin gets here: nothing was checked ahead
            if skip_bad:
                print(f"synthpt: skipped {row.error}", file=sys.stderr)
                continue
            raise fail(row.error)
        chunk.append(row)
        if len(chunk) >= chunk_size:
            flush()
    if chunk:
        flush()
    return written


def predict_file(load: Callable[[], Classifier], task: Task, source: str | Path, out: str | Path | None = None,
                 fmt: str = "auto", skip_bad: bool = False, chunk_size: int = 256,
                 progress: bool = True) -> dict[str, Any]:
    """Classify every row of ``source`` (a path, or ``-`` for stdin) into JSON lines at ``out`` (stdout
    if None).  Every row is checked before the model is loaded (``load``), so a bad row fails in
    seconds with nothing written; ``out`` appears whole or not at all (:func:`~synthpt.core.io.atomic_writer`)."""
    if chunk_size < 1:
        raise fail(f"--chunk-size must be at least 1, got {chunk_size}")
    if out is not None and Path(out).is_dir():
        raise fail(f"{out}: is a directory, cannot write a file there")
    t0 = time.perf_counter()
    src = open_source(source)
    n_bad, first_bad = 0, None
    try:
        if not src.interactive:  # checked and loaded before ``out`` is opened
            good, n_bad, first_bad = check_rows(src, task, fmt, skip_bad)
            clf = load()
        with contextlib.nullcontext(sys.stdout) if out is None else atomic_writer(out) as sink:
            if src.interactive:  # typed lines: answer each as it comes (nothing to check ahead)
                n = write_predictions(load(), _rows(src, task, fmt), sink, 1, skip_bad=skip_bad)
            else:
                bar = progress_bar(total=good, desc="predict", unit="row", disable=not progress)
                try:
                    n = write_predictions(clf, _rows(src, task, fmt), sink, chunk_size, checked=True, bar=bar)
                finally:
                    bar.close()
    finally:
        src.close()
    return {"rows": n, "skipped": n_bad, "first_bad": first_bad,
            "out": None if out is None else str(out), "seconds": round(time.perf_counter() - t0, 2)}


__all__ = ["Adapter", "Classifier", "adapter_base", "adapter_task", "find_adapter", "predict_file",
           "read_adapter"]
