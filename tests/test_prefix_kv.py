"""The soft prompt as a shared KV-cache prefix on causal LMs: same scores and gradients as
running the prompt in front of every row, and a fallback for models whose cache misbehaves."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from synthpt.core import scoring as vb
from synthpt.core.models import Backbone
from synthpt.core.scoring import Encoder, label_logprobs
from synthpt.core.soft_prompt import init_from_vocab
from synthpt.tasks import get_task

EXAMPLES = [
    {"text1": "A man plays a guitar on stage.", "text2": "A man plays."},
    {"text1": "Short.", "text2": "Nobody is here at all, the room is empty."},
    {"text1": "The cat sat on the mat near the door.", "text2": "A cat sat."},
]


@pytest.fixture(scope="module")
def tiny_llama(tiny_gpt2):
    """A random 2-layer Llama (rotary positions, grouped KV heads: SmolLM2's architecture)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tiny_gpt2.tokenizer
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Backbone(model=model, tokenizer=tok, name_or_path="tiny-llama (random)", is_seq2seq=False)


@pytest.fixture(params=["tiny-gpt2", "tiny-llama"])
def causal(request, tiny_gpt2, tiny_llama):
    return tiny_gpt2 if request.param == "tiny-gpt2" else tiny_llama


def _plain(bb: Backbone, monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the plain path (the prompt run in front of every row) for ``bb``."""
    monkeypatch.setitem(vb._PREFIX_OK, bb.model, False)


@pytest.mark.parametrize("task_name", ["rte", "mnli"])  # single- and multi-token label words
def test_prefix_scores_equal_the_plain_forward(causal, task_name, monkeypatch):
    enc = Encoder(get_task(task_name), causal, max_length=128, prompt_length=4)
    ids = enc.encode_many(EXAMPLES)
    prompt = init_from_vocab(causal, 4, seed=1)
    with torch.no_grad():
        fast = label_logprobs(enc, ids, prompt)
        assert vb._PREFIX_OK[causal.model] is True  # the shared prefix really ran
        _plain(causal, monkeypatch)
        plain = label_logprobs(enc, ids, prompt)
    assert torch.allclose(fast, plain, atol=1e-5), (fast - plain).abs().max()


def test_prefix_views_give_real_and_synthetic_gradients(causal, monkeypatch):
    """Two views of the prompt (real rows, synthetic rows): their gradients are the per-group sums
    of the plain path's per-row gradients."""
    enc = Encoder(get_task("rte"), causal, max_length=128, prompt_length=3)
    ids = enc.encode_many(EXAMPLES + [{"text1": "Rain fell all day.", "text2": "It was dry."}])
    y = torch.tensor([0, 0, 0, 1])
    which = torch.tensor([0, 0, 1, 1])  # each group: its own rows and labels, so its own gradient
    P = torch.nn.Parameter(init_from_vocab(causal, 3, seed=2))

    views = P.unsqueeze(0).expand(2, -1, -1)
    (g_views,) = torch.autograd.grad(F.cross_entropy(label_logprobs(enc, ids, views, which), y), views)
    assert vb._PREFIX_OK[causal.model] is True
    _plain(causal, monkeypatch)
    rows = P.unsqueeze(0).expand(4, -1, -1)
    (g_rows,) = torch.autograd.grad(F.cross_entropy(label_logprobs(enc, ids, rows), y), rows)
    want = torch.stack([g_rows[which == 0].sum(0), g_rows[which == 1].sum(0)])
    assert (want[0] - want[1]).abs().max() > 100 * (1e-6 + 1e-4 * want.abs().max())  # the test can tell
    assert torch.allclose(g_views, want, atol=1e-6, rtol=1e-4), (g_views - want).abs().max()


def test_a_model_whose_cache_path_fails_takes_the_plain_path(tiny_llama, monkeypatch):
    enc = Encoder(get_task("rte"), tiny_llama, max_length=128, prompt_length=2)
    ids = enc.encode_many(EXAMPLES)
    prompt = init_from_vocab(tiny_llama, 2, seed=3)
    with torch.no_grad():
        want = label_logprobs(enc, ids, prompt)

    def broken(*a, **k):
        raise TypeError("this model's forward takes no cache")

    monkeypatch.delitem(vb._PREFIX_OK, tiny_llama.model)
    monkeypatch.setattr(vb, "_prefix_hidden", broken)
    with torch.no_grad():
        got = label_logprobs(enc, ids, prompt)
    assert vb._PREFIX_OK[tiny_llama.model] is False
    assert torch.allclose(got, want, atol=1e-5)


def test_a_cache_that_changes_the_numbers_is_not_used(tiny_llama, monkeypatch):
    """The one-time check compares numbers, not only that the call returns."""
    enc = Encoder(get_task("rte"), tiny_llama, max_length=128, prompt_length=2)
    prompt = init_from_vocab(tiny_llama, 2, seed=4)
    real = vb._prefix_hidden
    monkeypatch.delitem(vb._PREFIX_OK, tiny_llama.model, raising=False)
    monkeypatch.setattr(vb, "_prefix_hidden", lambda *a: real(*a) + 0.1)
    with torch.no_grad():
        label_logprobs(enc, enc.encode_many(EXAMPLES), prompt)
    assert vb._PREFIX_OK[tiny_llama.model] is False


def test_prompt_index_needs_copies_and_one_index_per_row(tiny_gpt2):
    enc = Encoder(get_task("rte"), tiny_gpt2, max_length=128, prompt_length=2)
    ids = enc.encode_many(EXAMPLES)
    prompt = init_from_vocab(tiny_gpt2, 2, seed=5)
    with pytest.raises(ValueError, match="prompt_index"):
        label_logprobs(enc, ids, prompt, torch.tensor([0, 0, 0]))
    with pytest.raises(ValueError, match="prompt_index"):
        label_logprobs(enc, ids, prompt.unsqueeze(0).expand(2, -1, -1))


def test_seq2seq_views_equal_per_row_prompts(tiny_t5):
    """T5 reads the prompt in a bidirectional encoder, so views are expanded per row instead."""
    enc = Encoder(get_task("rte"), tiny_t5, max_length=128, prompt_length=3)
    ids = enc.encode_many(EXAMPLES)
    P = init_from_vocab(tiny_t5, 3, seed=6)
    views = torch.stack([P, P + 0.5])
    which = torch.tensor([1, 0, 1])
    with torch.no_grad():
        got = label_logprobs(enc, ids, views, which)
        want = label_logprobs(enc, ids, views[which])
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_pass_the_check(tiny_gpt2, dtype):
    """The check allows for half precision's rounding (else fp16/bf16 users would lose the speed-up)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = tiny_gpt2.tokenizer
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         pad_token_id=tok.pad_token_id)).eval().to(dtype)
    bb = Backbone(model=model, tokenizer=tok, name_or_path="tiny-llama (random, half)", is_seq2seq=False)
    assert vb._prefix_supported(bb, init_from_vocab(bb, 5, seed=0).float().unsqueeze(0))


# ---- label words of several tokens: the input once, its cache shared by the words -----------------
@pytest.mark.parametrize("task_name", ["rte", "mnli"])  # byte-level words of several tokens, 2 and 3 labels
@pytest.mark.parametrize("with_prompt", [True, False])
def test_shared_input_scores_and_gradients_equal_one_row_per_label(causal, task_name, with_prompt):
    from synthpt.core import causal_words as cw

    enc = Encoder(get_task(task_name), causal, max_length=128, prompt_length=3 if with_prompt else 0)
    assert not enc.single_token
    ids = enc.encode_many(EXAMPLES)
    views = torch.stack([init_from_vocab(causal, 3, seed=4)] * 2).requires_grad_(True) if with_prompt else None
    which = torch.tensor([1, 0, 1]) if with_prompt else None
    copies, index = (views, which) if with_prompt else (None, None)
    got = label_logprobs(enc, ids, views, which)
    assert cw._SHARED_OK[causal.model]  # the shared path is the one in use
    want = vb._per_label_causal(enc, ids, copies, index, with_prompt)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    if with_prompt:
        y = torch.tensor([0, 1, 1])
        (g_got,) = torch.autograd.grad(F.cross_entropy(got, y), views)
        (g_want,) = torch.autograd.grad(F.cross_entropy(want, y), views)
        assert float(g_want[0].abs().max()) > 0 and float(g_want[1].abs().max()) > 0
        assert torch.allclose(g_got, g_want, atol=1e-6, rtol=1e-4)


def test_shared_input_runs_the_input_once(tiny_gpt2, monkeypatch):
    """B input rows go through the model, not B·L (the per-label rows run only in the one-time check)."""
    from synthpt.core import causal_words as cw

    enc = Encoder(get_task("mnli"), tiny_gpt2, max_length=128, prompt_length=0)
    ids = enc.encode_many(EXAMPLES)
    with torch.no_grad():
        label_logprobs(enc, ids)  # the check
    widths = []
    base = tiny_gpt2.model.base_model
    hook = base.register_forward_pre_hook(lambda m, a, kw: widths.append(kw["inputs_embeds"].shape[:2]),
                                          with_kwargs=True)
    try:
        with torch.no_grad():
            label_logprobs(enc, ids)
    finally:
        hook.remove()
    longest = max(len(x) for x in ids)
    assert widths == [(3, longest), (3 * 3, max(len(w) for w in enc.label_ids) - 1)]
    assert cw._SHARED_OK[tiny_gpt2.model]


def test_a_cache_whose_positions_misbehave_keeps_the_per_label_rows(tiny_llama, monkeypatch):
    from synthpt.core import causal_words as cw

    enc = Encoder(get_task("rte"), tiny_llama, max_length=128, prompt_length=0)
    ids = enc.encode_many(EXAMPLES)
    orig = cw.shared_input_scores
    monkeypatch.setattr(cw, "shared_input_scores", lambda *a: orig(*a) + 0.1)  # e.g. positions off by one
    monkeypatch.delitem(cw._SHARED_OK, tiny_llama.model, raising=False)
    with torch.no_grad():
        got = label_logprobs(enc, ids)
        want = vb._per_label_causal(enc, ids, None, None)
    assert not cw._SHARED_OK[tiny_llama.model]
    assert torch.equal(got, want)
