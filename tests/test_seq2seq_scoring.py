"""Encoder-decoder verbalizer scoring: label words of several tokens share the decoder's head and
its cross-attention keys and values; the same scores and gradients as one decoder row per label,
and a fallback for models whose decoder cache misbehaves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthpt.core import seq2seq_scoring as s2s
from synthpt.core.scoring import Encoder, label_logprobs
from synthpt.core.soft_prompt import init_from_vocab
from synthpt.tasks import get_task

EXAMPLES = [
    {"text1": "A man plays a guitar on stage.", "text2": "A man plays.", "text": "A fine film."},
    {"text1": "Short.", "text2": "Nobody is here at all, the room is empty.", "text": "Dull, long and loud."},
    {"text1": "The cat sat on the mat near the door.", "text2": "A cat sat.", "text": "Yes."},
]


def _per_label(enc: Encoder, ids: list[list[int]], prompt: torch.Tensor) -> torch.Tensor:
    """The reference: one decoder row per (example, label), the encoder output repeated."""
    bb = enc.backbone
    from synthpt.core.scoring import _with_prompt, pad_right

    x, m = pad_right(ids, bb.tokenizer.pad_token_id)
    embeds, attn = _with_prompt(bb, x, m, prompt)
    out = bb.model.get_encoder()(inputs_embeds=embeds, attention_mask=attn)
    return s2s._seq2seq_per_label(enc, out, attn)


@pytest.mark.parametrize("task_name", ["sst2", "rte"])  # words of 8 + 8 tokens; of 3 + 2 tokens (padding)
def test_shared_head_scores_and_gradients_equal_one_row_per_label(tiny_t5, task_name):
    enc = Encoder(get_task(task_name), tiny_t5, max_length=128, prompt_length=4)
    assert not enc.single_token
    ids = enc.encode_many(EXAMPLES)
    P = init_from_vocab(tiny_t5, 4, seed=3).requires_grad_(True)
    y = torch.tensor([0, 1, 1])
    got = label_logprobs(enc, ids, P)
    assert s2s._SHARED_OK[tiny_t5.model]  # the shared path is the one in use
    want = _per_label(enc, ids, P)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    (g_got,) = torch.autograd.grad(F.cross_entropy(got, y), P)
    (g_want,) = torch.autograd.grad(F.cross_entropy(want, y), P)
    assert float(g_want.abs().max()) > 0
    assert torch.allclose(g_got, g_want, atol=1e-6, rtol=1e-4)


def test_the_shared_path_runs_the_per_label_decoder_only_in_its_check(tiny_t5, monkeypatch):
    enc = Encoder(get_task("sst2"), tiny_t5, max_length=128, prompt_length=2)
    ids = enc.encode_many(EXAMPLES)
    P = init_from_vocab(tiny_t5, 2, seed=1)
    monkeypatch.setitem(s2s._SHARED_OK, tiny_t5.model, True)
    calls = []
    orig = s2s._seq2seq_per_label
    monkeypatch.setattr(s2s, "_seq2seq_per_label", lambda *a: calls.append(1) or orig(*a))
    with torch.no_grad():
        label_logprobs(enc, ids, P)
    assert calls == []


def test_a_decoder_cache_that_changes_the_numbers_is_not_used(tiny_t5, monkeypatch):
    enc = Encoder(get_task("sst2"), tiny_t5, max_length=128, prompt_length=2)
    ids = enc.encode_many(EXAMPLES)
    P = init_from_vocab(tiny_t5, 2, seed=2)
    orig = s2s._seq2seq_shared
    monkeypatch.setattr(s2s, "_seq2seq_shared", lambda *a: orig(*a) + 0.1)  # a cache that misbehaves
    monkeypatch.delitem(s2s._SHARED_OK, tiny_t5.model, raising=False)
    with torch.no_grad():
        got = label_logprobs(enc, ids, P)
        want = _per_label(enc, ids, P)
    assert not s2s._SHARED_OK[tiny_t5.model]
    assert torch.equal(got, want)


def test_path_checks_leave_training_state_and_rng_alone():
    """The one-time path checks may first run mid-training (dropout on): they run in eval mode
    without drawing from the RNG, so a resumed run (which checks at another step) draws the same
    dropout masks as an uninterrupted one."""
    from synthpt.core.scoring import probing

    net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Dropout(0.5))
    net.train()
    before = torch.random.get_rng_state()
    with probing(net):
        assert not net.training and not torch.is_grad_enabled()
        a, b = net(torch.ones(2, 4)), net(torch.ones(2, 4))
        torch.rand(3)  # a draw inside does not leak out
        assert torch.equal(a, b)  # eval mode: no dropout, so the comparison is deterministic
    assert net.training and torch.equal(torch.random.get_rng_state(), before)
