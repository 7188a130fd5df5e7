"""Step 2's filters, in the order they run (the report counts what each dropped): ``empty``;
``length`` (words outside [min_words, max_words]); ``exact_duplicate`` (whitespace/case-normalised
fields); ``near_duplicate`` (Jaccard similarity of word n-gram sets of the generated field against
anything kept, via an inverted index); ``label_consistency`` (the row's score below the margin)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from synthpt.data.synstats import normalize as normalise
from synthpt.generator.encoding import generated_field
from synthpt.tasks import Task

DROP_REASONS = ("empty", "length", "exact_duplicate", "near_duplicate", "label_consistency")


def shingles(text: str, n: int) -> frozenset:
    words = normalise(text).split()
    if len(words) < n:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


class NearDupIndex:
    """Jaccard near-duplicate detection over n-gram sets with an inverted index."""

    def __init__(self, n: int, threshold: float) -> None:
        self.n, self.threshold = n, threshold
        self.sets: list[frozenset] = []
        self.postings: dict[tuple, list[int]] = {}

    def is_dup(self, text: str) -> bool:
        if self.threshold > 1:
            return False
        a = shingles(text, self.n)
        if not a:
            return False
        shared: Counter = Counter()
        for g in a:
            shared.update(self.postings.get(g, ()))
        for j, c in shared.items():
            if c / (len(a) + len(self.sets[j]) - c) >= self.threshold:
                return True
        return False

    def add(self, text: str) -> None:
        a = shingles(text, self.n)
        j = len(self.sets)
        self.sets.append(a)
        for g in a:
            self.postings.setdefault(g, []).append(j)


class Filters:
    """Stateful filters over the kept set; ``check`` returns the drop reason or None."""

    def __init__(self, cfg: Any, task: Task) -> None:
        self.cfg, self.task = cfg, task
        self.field = generated_field(task)
        self.exact: set[tuple[str, ...]] = set()
        self.near = NearDupIndex(cfg.dedup_ngram, cfg.near_dup_threshold)

    def _key(self, ex: dict[str, Any]) -> tuple[str, ...]:
        return tuple(normalise(str(ex[f])) for f in self.task.fields)

    def check(self, ex: dict[str, Any], score: float) -> str | None:
        reason = self.precheck(ex)
        if reason is None and not score >= self.cfg.consistency_margin:
            return "label_consistency"
        return reason

    def precheck(self, ex: dict[str, Any]) -> str | None:
        """The filters that need no score: a row they drop is never scored (scoring is most of the cost)."""
        if any(not str(ex[f]).strip() for f in self.task.fields):
            return "empty"
        words = len(str(ex[self.field]).split())
        if not self.cfg.min_words <= words <= self.cfg.max_words:
            return "length"
        if self._key(ex) in self.exact:
            return "exact_duplicate"
        if self.near.is_dup(str(ex[self.field])):
            return "near_duplicate"
        return None

    def add(self, ex: dict[str, Any]) -> None:
        self.exact.add(self._key(ex))
        self.near.add(str(ex[self.field]))
