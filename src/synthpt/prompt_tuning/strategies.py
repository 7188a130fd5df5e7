"""Data strategies: which real and synthetic rows go into training step ``s``.

Every batch is a pure function of (seed, step), so a resumed run sees exactly the batches
an uninterrupted run would, and every process of a data-parallel run can compute the same
global batch and take its own slice.  Each source is read as an endless stream of
epochs, each epoch a fresh seeded permutation.

Strategies (the paper's Table of data strategies):
- ``real``:          real batches only (plain prompt tuning, the baseline);
- ``syn``:           synthetic batches only;
- ``mixed``:         Real+Syn as one shuffled pool (``--label-smoothing`` smooths the
                     synthetic rows' targets: Real+Syn w/ LS);
- ``real-then-syn``: real batches for the first ``phase_split`` of the steps, then synthetic;
- ``syn-then-real``: the reverse;
- ``paired``:        a real batch and a synthetic batch in every step, combined as
                     δ_real + ε δ_syn (with ``--gradient-surgery``, δ_syn is projected first).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from synthpt.core.batches import BalancedStream, Stream
from synthpt.core.errors import fail
from synthpt.core.knobs import choose, values_of


class Strategy(enum.StrEnum):
    """The data strategies (values of ``--strategy``)."""

    REAL = "real"
    SYN = "syn"
    MIXED = "mixed"
    REAL_THEN_SYN = "real-then-syn"
    SYN_THEN_REAL = "syn-then-real"
    PAIRED = "paired"


STRATEGIES = tuple(values_of(Strategy))
NEEDS_SYNTHETIC = set(STRATEGIES) - {Strategy.REAL}


@dataclass(frozen=True)
class ExampleRef:
    source: str  # "real" | "syn"
    index: int


class BatchPlan:
    """The global batch of each step for one strategy."""

    def __init__(self, strategy: str, n_real: int, n_syn: int, batch_size: int, syn_batch_size: int,
                 max_steps: int, seed: int, phase_split: float = 0.5, syn_labels: list[int] | None = None) -> None:
        """``syn_labels`` (the synthetic rows' label indices): deal synthetic batches label by label
        (:class:`BalancedStream`) instead of at random."""
        strategy = choose(Strategy, strategy, "strategy")
        if strategy in NEEDS_SYNTHETIC and n_syn == 0:
            raise fail(f"strategy {strategy!r} needs synthetic data (--synthetic FILE)")
        if strategy != "syn" and n_real == 0:
            raise fail(f"strategy {strategy!r} needs real training data, but the train split is empty")
        if batch_size < 1:
            raise fail(f"batch size must be at least 1, got {batch_size}")
        if not 0.0 < phase_split < 1.0 and strategy in ("real-then-syn", "syn-then-real"):
            raise fail(f"phase split must be in (0, 1), got {phase_split}")
        self.strategy, self.bs, self.sbs = strategy, batch_size, syn_batch_size
        self.n_real, self.n_syn = n_real, n_syn
        self.switch = max(1, round(max_steps * phase_split))
        self.real = Stream(n_real, seed, 1) if n_real else None
        if syn_labels is not None and len(syn_labels) != n_syn:
            raise fail(f"{len(syn_labels)} synthetic labels for {n_syn} synthetic rows")
        self.syn = (None if not n_syn else BalancedStream(syn_labels, seed, 2) if syn_labels is not None
                    else Stream(n_syn, seed, 2))
        self.mixed = Stream(n_real + n_syn, seed, 3) if strategy == "mixed" else None

    def rows(self, step: int) -> list[ExampleRef]:
        s = self.strategy
        if s == "real":
            return [ExampleRef("real", i) for i in self.real.batch(step, self.bs)]
        if s == "syn":
            return [ExampleRef("syn", i) for i in self.syn.batch(step, self.bs)]
        if s == "mixed":
            return [ExampleRef("real", i) if i < self.n_real else ExampleRef("syn", i - self.n_real)
                    for i in self.mixed.batch(step, self.bs)]
        if s in ("real-then-syn", "syn-then-real"):
            first, second = ("real", "syn") if s == "real-then-syn" else ("syn", "real")
            src, idx = (first, step) if step < self.switch else (second, step - self.switch)
            stream = self.real if src == "real" else self.syn
            return [ExampleRef(src, i) for i in stream.batch(idx, self.bs)]
        # paired
        return [ExampleRef("real", i) for i in self.real.batch(step, self.bs)] + [
            ExampleRef("syn", i) for i in self.syn.batch(step, self.sbs)
        ]
