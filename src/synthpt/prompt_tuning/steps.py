"""Stage 3's step budget when it follows the data (``syn_epochs``).

Why: a fixed ``max_steps`` silently truncates a larger synthetic set.  At 30 paired steps with
4 synthetic rows each, 64 rows per label are seen about once, 1,024 per label a sixteenth of a
time, so a data-scale curve would measure the step budget, not the data.  With ``syn_epochs``
set, the number of steps is what it takes to pass over the synthetic rows that many times:

    steps = ceil(syn_epochs * n_syn / synthetic rows per step),  at most ``max_steps_cap``

where the synthetic rows per step depend on the strategy: ``paired`` draws ``syn_batch_size``
(default ``batch_size``) in every step; ``syn`` draws ``batch_size``; ``real-then-syn`` and
``syn-then-real`` draw ``batch_size`` in their synthetic phase only (the phase's share of the
steps is ``1 - phase_split`` or ``phase_split``); ``mixed`` draws ``batch_size`` from the pool of
real and synthetic rows, so a pass over the synthetic rows is a pass over that pool.  Runs with
no synthetic rows (``real``: PT) keep ``max_steps``.  The oracle ``pt+gold`` and Ours both get
``generation.n_per_label`` rows per label, so they get the same budget by the same rule.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction
from typing import Any

# knobs added after many caches were written: left out of cache keys while unset, so those stay valid
LATE_KNOBS = ("syn_epochs", "max_steps_cap")


def data_steps(strategy: str, n_real: int, n_syn: int, batch_size: int, syn_batch_size: int | None,
               syn_epochs: float, phase_split: float = 0.5, cap: int | None = None) -> int | None:
    """Steps for ``syn_epochs`` passes over ``n_syn`` synthetic rows; None when no synthetic row is read."""
    if strategy == "real" or n_syn <= 0:
        return None
    epochs = Fraction(str(syn_epochs))  # exact decimals: 0.1 * 40 / 4 is 1 step, never 2 from rounding
    if strategy == "paired":
        steps = epochs * n_syn / (syn_batch_size or batch_size)
    elif strategy == "syn":
        steps = epochs * n_syn / batch_size
    elif strategy == "mixed":
        steps = epochs * (n_real + n_syn) / batch_size
    else:  # real-then-syn / syn-then-real: the synthetic phase is a share of the steps
        share = 1 - Fraction(str(phase_split)) if strategy == "real-then-syn" else Fraction(str(phase_split))
        steps = epochs * n_syn / batch_size / share
    out = max(1, math.ceil(steps))
    return min(out, cap) if cap is not None else out


def data_steps_config(cfg: Any, n_real: int, n_syn: int) -> Any:
    """``cfg`` with ``max_steps`` resolved from ``syn_epochs`` (unchanged when it is unset or no
    synthetic row is read)."""
    if getattr(cfg, "syn_epochs", None) is None:
        return cfg
    steps = data_steps(cfg.strategy, n_real, n_syn, cfg.batch_size, cfg.syn_batch_size, cfg.syn_epochs,
                       cfg.phase_split, cfg.max_steps_cap)
    return cfg if steps is None else dataclasses.replace(cfg, max_steps=steps)


def config_key(cfg: Any) -> dict[str, Any]:
    """``dataclasses.asdict(cfg)`` for cache keys, without the late knobs while they are unset."""
    out = dataclasses.asdict(cfg)
    for name in LATE_KNOBS:
        if out.get(name) is None:
            out.pop(name, None)
    return out
