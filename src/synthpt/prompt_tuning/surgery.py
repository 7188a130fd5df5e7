"""Gradient surgery between the real and the synthetic gradient (pure functions).

The method's rule: if δ_syn · δ_real < 0 the synthetic gradient fights the real one, so
remove from δ_syn its component along δ_real,

    δ_syn' = δ_syn − (δ_syn · δ_real / ‖δ_real‖²) δ_real,

then update with δ_real + ε δ_syn'.  After the projection δ_syn' · δ_real = 0, so the
synthetic data can no longer undo what the real data asks for.  A zero δ_real has no
direction to protect: δ_syn is kept as it is (and that is not counted as a conflict).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SurgeryResult:
    update: torch.Tensor  # δ_real + ε δ_syn'
    syn_projected: torch.Tensor  # δ_syn'
    conflict: bool
    cosine: float


def project_conflicting(syn: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """δ_syn' and whether the two gradients conflicted (computed in float64 for stability)."""
    s, r = syn.double().flatten(), real.double().flatten()
    dot = torch.dot(s, r)
    norm2 = torch.dot(r, r)
    if dot >= 0 or norm2 == 0:
        return syn, False
    return (s - (dot / norm2) * r).view_as(syn).to(syn.dtype), True


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    den = a.norm() * b.norm()
    return 0.0 if den == 0 else float(torch.dot(a, b) / den)


def combine(real: torch.Tensor, syn: torch.Tensor, epsilon: float, surgery: bool = True) -> SurgeryResult:
    """The update direction of one paired step."""
    projected, conflict = project_conflicting(syn, real)
    if not surgery:  # conflicts are still reported, so runs with and without surgery compare
        projected = syn
    return SurgeryResult(real + epsilon * projected, projected, conflict, cosine(syn, real))
