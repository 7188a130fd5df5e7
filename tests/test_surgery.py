"""Gradient surgery: the projection against hand computation and as a property."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthpt.prompt_tuning.surgery import combine, cosine, project_conflicting


def test_projection_by_hand():
    real = torch.tensor([1.0, 0.0])
    syn = torch.tensor([-1.0, 1.0])  # dot = -1 < 0: conflict
    proj, conflict = project_conflicting(syn, real)
    # syn - (syn.real / |real|^2) real = (-1, 1) - (-1)(1, 0) = (0, 1)
    assert conflict
    assert torch.allclose(proj, torch.tensor([0.0, 1.0]))
    res = combine(real, syn, epsilon=0.5)
    assert torch.allclose(res.update, torch.tensor([1.0, 0.5]))
    assert abs(res.cosine - (-1 / 2**0.5)) < 1e-6


def test_no_conflict_leaves_syn_unchanged():
    real = torch.tensor([1.0, 2.0, 0.0])
    syn = torch.tensor([0.5, 0.1, -3.0])  # dot = 0.7 > 0
    proj, conflict = project_conflicting(syn, real)
    assert not conflict and torch.equal(proj, syn)


def test_zero_real_gradient_keeps_syn():
    proj, conflict = project_conflicting(torch.tensor([1.0, -2.0]), torch.zeros(2))
    assert not conflict and torch.equal(proj, torch.tensor([1.0, -2.0]))
    assert cosine(torch.zeros(2), torch.ones(2)) == 0.0


def test_without_surgery_update_is_plain_sum():
    real, syn = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    res = combine(real, syn, epsilon=2.0, surgery=False)
    assert res.conflict  # reported, but not acted on
    assert torch.allclose(res.update, real + 2.0 * syn)


vectors = st.lists(st.floats(-100, 100, allow_nan=False, allow_infinity=False), min_size=6, max_size=6)


@settings(max_examples=200, deadline=None)
@given(vectors, vectors)
def test_projection_property(a, b):
    syn, real = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    proj, conflict = project_conflicting(syn, real)
    if float(syn @ real) < 0 and float(real @ real) > 0:
        assert conflict
        scale = max(1.0, float(syn.norm() * real.norm()))
        assert float(proj @ real) >= -1e-6 * scale
    else:
        assert not conflict and torch.equal(proj, syn)
