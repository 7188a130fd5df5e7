"""Few-shot splits: k examples per class for training, k more for development.

This follows LM-BFF (Gao et al., 2021): for each seed, per label, shuffle deterministically,
take k for train and the next k for dev, so train and dev are disjoint and balanced and the
dev set is as small as a real few-shot user would have.  Where LM-BFF published its k=16
splits (``k-shot/<TASK>/16-<seed>``) they are used as is, so results are comparable to
papers reporting on the same splits.  The official evaluation split goes to ``test.jsonl``.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail
from synthpt.core.io import write_json, write_jsonl
from synthpt.data.loaders import as_task, load_file
from synthpt.data.official import load_lmbff_kshot, load_official, official_files
from synthpt.tasks import Task

SEEDS: tuple[int, ...] = (13, 21, 42, 87, 100)
"""The five seeds of LM-BFF and the few-shot prompt-tuning literature."""

SPLIT_FILES = ("train.jsonl", "dev.jsonl", "test.jsonl")


def _check_k(k: Any, source: str) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise fail(f"{source}: k must be a positive integer (examples per class), got {k!r}")
    return k


def sample_kshot(
    pool: list[dict[str, Any]], task: Task | str, k: int, seed: int, source: str = "training pool"
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Balanced, disjoint (train, dev) with k examples per label each, deterministic per seed.

    ``source`` names the pool (e.g. its file) in error messages.  Each class needs at least
    2k examples; otherwise the error names the label and the counts of every label.
    """
    t = as_task(task)
    _check_k(k, source)
    by_label: dict[str, list[dict[str, Any]]] = {lab: [] for lab in t.labels}
    for i, ex in enumerate(pool):
        lab = ex.get("label")
        if lab not in by_label:
            raise fail(f"{source}: example {i + 1} has label {lab!r}, not one of {', '.join(t.labels)}")
        by_label[lab].append(ex)
    counts = {lab: len(rows) for lab, rows in by_label.items()}
    short = [lab for lab, n in counts.items() if n < 2 * k]
    if short:
        have = ", ".join(f"{lab}: {n}" for lab, n in counts.items())
        raise fail(
            f"{source}: label {short[0]!r} has only {counts[short[0]]} examples, need {2 * k} "
            f"(k={k} for train + k for dev); counts: {have}"
        )
    rng = random.Random(seed)
    train: list[dict[str, Any]] = []
    dev: list[dict[str, Any]] = []
    for lab in t.labels:
        rows = list(by_label[lab])
        rng.shuffle(rows)
        train.extend(rows[:k])
        dev.extend(rows[k : 2 * k])
    rng.shuffle(train)  # interleave labels, as in the published splits
    rng.shuffle(dev)
    return train, dev


def _row_key(task: Task, ex: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(ex.get(f, "")).strip() for f in task.fields)


def sample_heldout(
    pool: list[dict[str, Any]], task: Task | str, n_per_label: int, seed: int,
    exclude: list[dict[str, Any]], source: str = "training pool",
) -> list[dict[str, Any]]:
    """``n_per_label`` gold rows per label from ``pool``, none of whose texts is in ``exclude``.

    Why: a few-shot split leaves most of a task's training pool unused, and its held-out rows are
    what a perfect generator would write (in domain, correctly labelled).  Training on them in
    place of synthetic data measures how much synthetic data *could* add at best.  Rows whose
    texts equal a row of ``exclude`` (the split's train and dev) are skipped, so the few-shot
    data is never seen twice; a label with fewer than ``n_per_label`` such rows is an error.
    """
    t = as_task(task)
    if isinstance(n_per_label, bool) or not isinstance(n_per_label, int) or n_per_label <= 0:
        raise fail(f"{source}: rows per label must be a positive integer, got {n_per_label!r}")
    seen = {_row_key(t, ex) for ex in exclude}
    by_label: dict[str, list[dict[str, Any]]] = {lab: [] for lab in t.labels}
    for ex in pool:
        key = _row_key(t, ex)
        if key in seen or ex.get("label") not in by_label:
            continue
        seen.add(key)  # the pool's own duplicates count once
        by_label[ex["label"]].append(ex)
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for lab, rows in by_label.items():
        if len(rows) < n_per_label:
            raise fail(f"{source}: label {lab!r} has {len(rows)} rows outside the split, need {n_per_label}")
        out.extend(rng.sample(rows, n_per_label))
    rng.shuffle(out)
    return out


def shuffle_labels(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """``rows`` with their label column permuted (seeded): every label keeps its count, texts keep
    their order, but a row's label no longer depends on its text.

    Why: the control of the ``pt+gold`` oracle.  Gold rows with shuffled labels bring everything
    the oracle's rows bring (in-domain, diverse text; the same number of rows and steps) except
    correct labels, so oracle − control is what the labels are worth and control − PT what the text
    alone is worth: the two halves of what a generator must get right.
    """
    labels = [r["label"] for r in rows]
    random.Random(f"shuffle-labels/{seed}").shuffle(labels)
    return [{**r, "label": lab} for r, lab in zip(rows, labels, strict=True)]


def keep_agreeing(rows: list[dict[str, Any]], predicted: list[str], seed: int) -> list[dict[str, Any]]:
    """The rows a judge labels as their own label, subsampled (seeded, order kept) to the same count
    per label: the smallest label's count of agreeing rows.

    Why: a generator asked for label l writes many rows that read as another label (on Gemma 3
    270M a judge agrees with 47-80% of them), and those rows teach Stage 3 the wrong label.  A
    classifier the user already has (prompt tuning on the few-shot rows) can drop them; keeping
    the labels balanced stops the filter from teaching its own bias toward the label it prefers.
    """
    if len(predicted) != len(rows):
        raise ValueError(f"{len(predicted)} predictions for {len(rows)} rows")
    by_label: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(r["label"], [])
        if predicted[i] == r["label"]:
            by_label[r["label"]].append(i)
    n = min((len(ix) for ix in by_label.values()), default=0)
    rng = random.Random(f"keep-agreeing/{seed}")
    keep = sorted(i for lab in sorted(by_label) for i in rng.sample(by_label[lab], n))
    return [rows[i] for i in keep]


def training_pool(task: Task | str, data_dir: str | Path | None) -> list[dict[str, Any]]:
    """The pool few-shot splits are drawn from: the user task's train file or the official one."""
    t = as_task(task)
    if t.files:
        if "train" not in t.files:
            raise fail(f"task {t.name!r}: spec 'files' needs a 'train' file")
        return load_file(t.files["train"], t)
    if data_dir is None:
        raise fail(f"task {t.name!r}: no data directory given (pass --data-dir, e.g. shared/data)")
    return load_official(t, "train", data_dir)


def _official_parts(task: Task, k: int, seed: int, data_dir: str | Path | None) -> tuple[list, list, list, dict]:
    """(train, dev, test, provenance) for a built-in task."""
    if data_dir is None:
        raise fail(f"task {task.name!r}: no data directory given (pass --data-dir, e.g. shared/data)")
    test = load_official(task, "test", data_dir)
    prov: dict[str, Any] = {"test_files": [str(p) for p in official_files(task, "test", data_dir)]}
    published = load_lmbff_kshot(task, k, seed, data_dir) if k == 16 else None
    if published is not None:
        prov["source"] = "lmbff"
        return published[0], published[1], test, prov
    pool_files = official_files(task, "train", data_dir)
    pool = training_pool(task, data_dir)
    train, dev = sample_kshot(pool, task, k, seed, source=", ".join(map(str, pool_files)))
    prov.update(source="sampled", pool_files=[str(p) for p in pool_files])
    return train, dev, test, prov


def _user_parts(task: Task, k: int, seed: int) -> tuple[list, list, list, dict]:
    """(train, dev, test, provenance) for a user task whose spec lists its files."""
    for key in ("train", "test"):
        if key not in task.files:
            raise fail(f"task {task.name!r}: spec 'files' needs a {key!r} file to build a split")
    pool = training_pool(task, None)
    test = load_file(task.files["test"], task)
    train, dev = sample_kshot(pool, task, k, seed, source=task.files["train"])
    prov = {"source": "sampled", "pool_files": [task.files["train"]], "test_files": [task.files["test"]]}
    return train, dev, test, prov


def make_split(
    task: Task | str, k: int, seed: int, data_dir: str | Path | None, out_dir: str | Path
) -> dict[str, Any]:
    """Build and write one few-shot split; returns the ``split.json`` metadata.

    Writes ``train.jsonl``, ``dev.jsonl``, ``test.jsonl`` and then ``split.json`` (last, so
    its presence marks a complete split), each atomically.
    """
    t = as_task(task)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise fail(f"{out}: exists and is a file; give a directory for the split")
    _check_k(k, str(out))
    if t.files:
        train, dev, test, prov = _user_parts(t, k, seed)
    else:
        train, dev, test, prov = _official_parts(t, k, seed, data_dir)
    meta: dict[str, Any] = {
        "task": t.name,
        "k": k,
        "seed": seed,
        "source": prov.pop("source"),
        "counts": {"train": len(train), "dev": len(dev), "test": len(test)},
        "train_labels": dict(sorted(Counter(ex["label"] for ex in train).items())),
        **prov,
    }
    for name, rows in zip(SPLIT_FILES, (train, dev, test)):
        write_jsonl(out / name, rows)
    write_json(out / "split.json", meta)
    return meta


def load_split(split_dir: str | Path, task: Task | str) -> dict[str, list[dict[str, Any]]]:
    """Read a split written by :func:`make_split` back, validating every row for the task."""
    t = as_task(task)
    d = Path(split_dir)
    if not d.is_dir():
        raise fail(f"{d}: split directory not found (create it with make_split / 'synthpt split')")
    out: dict[str, list[dict[str, Any]]] = {}
    for name in SPLIT_FILES:
        path = d / name
        if not path.is_file():
            raise fail(f"{path}: file not found; the split in {d} is incomplete")
        out[name.removesuffix(".jsonl")] = load_file(path, t)
    return out
