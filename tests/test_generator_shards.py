"""DawGen's losses on a batch split into shards: each shard's share by hand, and the shares (and
their gradients) add up to the one-batch loss — what makes the two-process step exact."""

from __future__ import annotations

import math

import pytest
import torch

from synthpt.core import distributed as dist
from synthpt.generator.losses import (
    disc_loss,
    dist_loss,
    exp_total,
    label_token_counts,
    masked_max,
    token_weights,
    token_weights_shared,
    weighted_lm_loss,
)

SCORES = torch.tensor([[0.0, math.log(2)], [math.log(3), 5.0]])  # (B=2, T=2); 5.0 sits on padding
MASK = torch.tensor([[1, 1], [1, 0]])


def test_softmax_parts_by_hand():
    assert masked_max(SCORES, MASK).item() == pytest.approx(math.log(3))  # the padded 5.0 does not count
    assert masked_max(SCORES[1:], MASK[1:]).item() == pytest.approx(math.log(3))
    shift = torch.tensor(math.log(3))
    assert exp_total(SCORES[:1], MASK[:1], shift).item() == pytest.approx(1 / 3 + 2 / 3)
    assert exp_total(SCORES[1:], MASK[1:], shift).item() == pytest.approx(1.0)


def test_token_weights_of_two_shards_by_hand():
    # shift log 3, normaliser 1/3 + 2/3 + 1 = 2, N = 3: w = 3 · (1/3, 2/3 | 1) / 2
    shift, total, count = torch.tensor(math.log(3)), torch.tensor(2.0), torch.tensor(3.0)
    a = token_weights_shared(SCORES[:1], MASK[:1], shift, total, count)
    b = token_weights_shared(SCORES[1:], MASK[1:], shift, total, count)
    assert torch.allclose(a, torch.tensor([[0.5, 1.0]])) and torch.allclose(b, torch.tensor([[1.5, 0.0]]))
    # any shift gives the same weights; they are those of the whole batch
    other = token_weights_shared(SCORES[:1], MASK[:1], torch.tensor(0.0), torch.tensor(6.0), count)
    assert torch.allclose(other, a) and torch.allclose(torch.cat([a, b]), token_weights(SCORES, MASK))


def test_token_weights_gradient_flows_through_the_shared_normaliser():
    """With the normaliser summed differentiably, the shards' gradients are the whole batch's."""
    c = torch.tensor([[1.0, -2.0], [3.0, 7.0]])  # (B, T) whatever multiplies the weights
    s = SCORES.clone().requires_grad_(True)
    (g_whole,) = torch.autograd.grad((token_weights(s, MASK) * c).sum(), s)
    shift = torch.maximum(masked_max(s[:1], MASK[:1]), masked_max(s[1:], MASK[1:]))  # ()
    total = exp_total(s[:1], MASK[:1], shift) + exp_total(s[1:], MASK[1:], shift)  # ()
    shares = [(token_weights_shared(s[i:i + 1], MASK[i:i + 1], shift, total, torch.tensor(3.0)) * c[i:i + 1]).sum()
              for i in range(2)]
    (g_split,) = torch.autograd.grad(sum(shares), s)
    assert torch.allclose(g_split, g_whole, atol=1e-6) and float(g_whole.abs().sum()) > 0
    # a detached normaliser would give another gradient: the coupling matters
    shares_det = [(token_weights_shared(s[i:i + 1], MASK[i:i + 1], shift, total.detach(), torch.tensor(3.0))
                   * c[i:i + 1]).sum() for i in range(2)]
    (g_det,) = torch.autograd.grad(sum(shares_det), s)
    assert not torch.allclose(g_det, g_whole, atol=1e-3)


def test_weighted_lm_loss_shares_by_hand():
    nll = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    w = torch.tensor([[1.0, 0.5], [2.0, 1.0], [1.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])
    y = torch.tensor([0, 1, 0])
    counts = label_token_counts(mask, y, 3)
    assert counts.tolist() == [3.0, 2.0, 0.0]
    # shard A (rows 0, 1): label 0: 2 / 3, label 1: 10 / 2 ; shard B (row 2): label 0: 5 / 3, label 1: 0
    a, per_a = weighted_lm_loss(nll[:2], w[:2], mask[:2], y[:2], 3, counts)
    b, per_b = weighted_lm_loss(nll[2:], w[2:], mask[2:], y[2:], 3, counts)
    assert per_a[:2].tolist() == pytest.approx([2 / 3, 5.0]) and per_b[:2].tolist() == pytest.approx([5 / 3, 0.0])
    assert math.isnan(per_a[2].item()) and math.isnan(per_b[2].item())  # absent from the whole batch
    assert a.item() == pytest.approx((2 / 3 + 5) / 2) and b.item() == pytest.approx((5 / 3) / 2)
    assert (a + b).item() == pytest.approx(weighted_lm_loss(nll, w, mask, y, 3)[0].item())


def test_disc_loss_shares_by_hand():
    p = torch.tensor([[[0.2, 0.5], [0.6, 0.5]], [[0.1, 0.3], [0.3, 0.1]]])  # (B=2, L=2, T=2)
    y, mask = torch.tensor([0, 1]), torch.tensor([[1, 1], [1, 0]])
    n = torch.tensor(3.0)  # valid tokens of the whole batch
    a = disc_loss(p[:1].log(), y[:1], mask[:1], n)  # 0.2/0.8 + 0.5/1.0 = 0.75
    b = disc_loss(p[1:].log(), y[1:], mask[1:], n)  # 0.3/0.4 = 0.75 (its second token is padding)
    assert a.item() == pytest.approx(-0.75 / 3) and b.item() == pytest.approx(-0.75 / 3)
    assert (a + b).item() == pytest.approx(disc_loss(p.log(), y, mask).item())


def test_dist_loss_shares_by_hand():
    y = torch.tensor([0, 0, 1])
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], requires_grad=True)
    # triplets (0,1,2): 2 and (1,0,2): 1 of 2 in all; row 2 anchors none (no positive)
    a = dist_loss(e, y, anchors=torch.tensor([True, False, True]))
    b = dist_loss(e, y, anchors=torch.tensor([False, True, False]))
    assert a.item() == pytest.approx(1.0) and b.item() == pytest.approx(0.5)
    (g_split,) = torch.autograd.grad(a + b, e)
    (g_whole,) = torch.autograd.grad(dist_loss(e, y), e)
    assert torch.allclose(g_split, g_whole) and float(g_whole.abs().sum()) > 0
    none = dist_loss(e, torch.tensor([0, 1, 2]), anchors=torch.tensor([True, True, False]))
    assert none.item() == 0.0 and none.requires_grad  # no triplet anywhere: 0, still on the graph


def test_process_group_helpers_in_one_process():
    t = torch.arange(6.0).view(3, 2)
    assert dist.world_size() == 1
    assert dist.gather_rows(t, 3) is t and dist.all_reduce_sum_grad(t) is t and dist.all_reduce_max(t) is t
    assert dist.shard_mask(3).tolist() == [True, True, True]


def test_a_batch_smaller_than_the_process_count_is_refused(tiny_gpt2, monkeypatch):
    from synthpt.core.errors import SynthptError
    from synthpt.generator.config import GeneratorConfig
    from synthpt.generator.trainer import GeneratorTrainer
    from synthpt.tasks import get_task

    train = [{"text1": f"a {i}", "text2": f"b {i}", "label": str(i % 2)} for i in range(4)]
    cfg = GeneratorConfig(mode="plain", batch_size=2, prompt_length=2, max_length=32)
    GeneratorTrainer(get_task("mrpc"), tiny_gpt2, cfg, train, progress=False)  # 2 rows, 1 process: fine
    monkeypatch.setattr(dist, "world_size", lambda: 3)
    with pytest.raises(SynthptError, match="2 rows cannot be split over 3 processes"):
        GeneratorTrainer(get_task("mrpc"), tiny_gpt2, cfg, train, progress=False)
