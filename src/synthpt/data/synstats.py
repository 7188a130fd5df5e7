"""Statistics of a synthetic set, pure functions on its rows (no model).

They answer "did Stages 1-2 write usable rows?" before any prompt is trained on them:

- **distinct-n** (Li et al., 2016): distinct n-grams / all n-grams over the set's texts; a
  generator that repeats itself scores near 0, one that never repeats an n-gram scores 1.
- **overlap with the few-shot rows**: *exact*, the share of rows whose text (lower-cased,
  whitespace collapsed) equals a few-shot row's text; *n-gram*, the share of the set's n-grams
  (counted with repetition) that occur anywhere in the few-shot rows (n = 4 by default): a
  generator that copies its 16 shots has high overlap and teaches nothing new.
- **lengths** in words, per label, and a seeded sample of rows per label to read.

Words are ``\\w+`` runs of the lower-cased text (punctuation is not a word).  Only the
*generated* field is measured (the last text field: for pair tasks, the first field is copied
from real rows and would look like perfect overlap).
"""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter
from typing import Any

WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    return WORD.findall(str(text).lower())


def normalize(text: str) -> str:
    return " ".join(str(text).lower().split())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: list[str], n: int) -> float:
    """Distinct n-grams / all n-grams over ``texts`` (0.0 when there is no n-gram)."""
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def exact_overlap(texts: list[str], refs: list[str]) -> float:
    """Share of ``texts`` equal to some reference after :func:`normalize`."""
    ref = {normalize(r) for r in refs}
    return sum(normalize(t) in ref for t in texts) / len(texts) if texts else 0.0


def ngram_overlap(texts: list[str], refs: list[str], n: int = 4) -> float:
    """Share of the n-grams of ``texts`` (with repetition) that occur in ``refs``."""
    ref = {g for r in refs for g in ngrams(words(r), n)}
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return sum(g in ref for g in grams) / len(grams) if grams else 0.0


def length_summary(lengths: list[int]) -> dict[str, float]:
    if not lengths:
        return {"n": 0}
    return {"n": len(lengths), "mean": sum(lengths) / len(lengths), "median": float(statistics.median(lengths)),
            "min": min(lengths), "max": max(lengths)}


def histogram(values: list[int], bins: int = 10) -> tuple[list[int], list[float]]:
    """Counts in ``bins`` equal-width bins over [min, max] (the last bin closed) and the bin edges."""
    if not values:
        return [], []
    lo, hi = min(values), max(values)
    if lo == hi:
        return [len(values)], [float(lo), float(hi)]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    return counts, [lo + i * width for i in range(bins + 1)]


def sample_per_label(rows: list[dict[str, Any]], labels: list[str], k: int = 5, seed: int = 0) -> dict[str, list[dict]]:
    """Up to ``k`` rows per label, drawn with ``random.Random(seed)``, in file order."""
    rng = random.Random(seed)
    out = {}
    for lab in labels:
        idx = [i for i, r in enumerate(rows) if r.get("label") == lab]
        out[lab] = [rows[i] for i in sorted(rng.sample(idx, min(k, len(idx))))]
    return out


def synthetic_stats(rows: list[dict[str, Any]], fewshot: list[dict[str, Any]], field: str, labels: list[str],
                    n: int = 4) -> dict[str, Any]:
    """Everything above for ``rows`` against the ``fewshot`` rows (their ``field`` text)."""
    texts = [str(r.get(field, "")) for r in rows]
    refs = [str(r.get(field, "")) for r in fewshot]
    per_label: dict[str, Any] = {}
    for lab in labels:
        mine = [str(r.get(field, "")) for r in rows if r.get("label") == lab]
        per_label[lab] = {"rows": len(mine), "distinct_1": distinct_n(mine, 1), "distinct_2": distinct_n(mine, 2),
                          "length": length_summary([len(words(t)) for t in mine])}
    counts = Counter(normalize(t) for t in texts)
    return {"rows": len(rows), "field": field, "distinct_1": distinct_n(texts, 1), "distinct_2": distinct_n(texts, 2),
            "duplicates": sum(c - 1 for c in counts.values()), "exact_overlap": exact_overlap(texts, refs),
            "ngram_overlap": ngram_overlap(texts, refs, n), "ngram_n": n,
            "length": length_summary([len(words(t)) for t in texts]), "per_label": per_label}
