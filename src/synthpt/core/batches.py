"""Seeded batch streams: every batch is a pure function of (seed, salt, index).

A resumed run therefore sees exactly the batches an uninterrupted run would, and every
process of a data-parallel run computes the same global batch and takes its own slice.
Prompt tuning (Stage 3) and generator tuning (Stage 1) both draw their rows from these.
"""

from __future__ import annotations

import torch

from synthpt.core.errors import fail


class Stream:
    """Batches over ``n`` items, epoch after epoch, each epoch a seeded permutation."""

    def __init__(self, n: int, seed: int, salt: int) -> None:
        if n <= 0:
            raise fail("cannot draw batches from an empty dataset")
        self.n, self.seed, self.salt = n, seed, salt
        self._perms: dict[int, list[int]] = {}

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.salt * 7919 + epoch)
            self._perms = {epoch: torch.randperm(self.n, generator=g).tolist()}
        return self._perms[epoch]

    def batch(self, index: int, size: int) -> list[int]:
        out = []
        for pos in range(index * size, (index + 1) * size):
            out.append(self._perm(pos // self.n)[pos % self.n])
        return out


class BalancedStream(Stream):
    """A :class:`Stream` whose epochs deal the labels in turn (label 0, 1, ..., 0, 1, ...; each
    label's rows in a seeded random order), so every batch holds each label about equally often.

    With 4 synthetic rows per paired step, random batches are often 3:1 or 4:0, and each such
    step pushes the prompt towards one label word; on a few-shot task that lean is what decides
    accuracy (MRPC in docs/real-cpu.md). A label that runs out first leaves the others to finish
    the epoch."""

    def __init__(self, labels: list[int], seed: int, salt: int) -> None:
        super().__init__(len(labels), seed, salt)
        self.groups = [[i for i, y in enumerate(labels) if y == lab] for lab in sorted(set(labels))]

    def _perm(self, epoch: int) -> list[int]:
        if epoch not in self._perms:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.salt * 7919 + epoch)
            orders = [[grp[j] for j in torch.randperm(len(grp), generator=g).tolist()] for grp in self.groups]
            longest = max(len(o) for o in orders)
            self._perms = {epoch: [o[k] for k in range(longest) for o in orders if k < len(o)]}
        return self._perms[epoch]
