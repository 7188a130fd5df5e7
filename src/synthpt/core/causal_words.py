"""Label words of several tokens on a causal LM: the input runs once, and its KV cache is shared
by the L label words instead of running the input once per label.

One row per (example, label) -- context + that label's word -- repeats the whole input L times
(L·B rows), and the input is almost all of each row.  Here the B inputs run once (after the
soft prompt's KV prefix, where there is one); the last input position gives every label word's
first token; the cache is then repeated L times and only the words' remaining tokens run, each
row at the positions right after its own input (explicit ``position_ids``: the inputs are
right-padded to a common width, the padding masked).  A one-time check per model compares the
result with the per-label rows and keeps those for any model whose cache or positions do not
behave.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.core.scoring import (
    Encoder,
    _agree,
    _cache_kwarg,
    _cache_of,
    _continuations,
    _per_label_causal,
    _prompt_prefix,
    pad_right,
    probing,
)

_SHARED_OK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def shared_input_scores(encoder: Encoder, context_ids: list[list[int]], copies: torch.Tensor | None,
                        index: torch.Tensor | None) -> torch.Tensor:
    """(B, L) log-probabilities of each label word (summed over its tokens) after each input.

    ``copies`` (G, n, d) soft-prompt copies and ``index`` (B,) each row's copy, or both None."""
    bb = encoder.backbone
    dev = bb.device
    base = bb.model.base_model
    kw: dict[str, Any] = {}
    B, L = len(context_ids), len(encoder.label_ids)
    ids, mask = pad_right(context_ids, bb.tokenizer.pad_token_id)  # (B, T)
    ids, mask = ids.to(dev), mask.to(dev)
    n = 0
    attn = mask
    if copies is not None:
        kw, attn = _prompt_prefix(bb, copies, index.to(dev), mask)  # the copies' keys/values; (B, n+T)
        n = copies.shape[1]
    out = base(inputs_embeds=bb.embed(ids), attention_mask=attn, use_cache=True, **kw)
    hidden = out.last_hidden_state  # (B, T, d)
    head = bb.model.get_output_embeddings()
    last = torch.tensor([len(c) - 1 for c in context_ids], device=dev)  # (B,)
    first = F.log_softmax(head(hidden[torch.arange(B, device=dev), last]).float(), dim=-1)  # (B, V)
    scores = first[:, [lab[0] for lab in encoder.label_ids]]  # (B, L): every word's first token
    width = max(len(lab) for lab in encoder.label_ids) - 1
    if width == 0:
        return scores
    cache = _cache_of(out)
    cache.batch_repeat_interleave(L)  # B -> B·L rows, row = i·L + l
    cont, tgt = _continuations(encoder, B)  # (B·L, W): word l less its last token; the tokens they predict
    valid = tgt != -100  # (B·L, W)
    start = torch.tensor([n + len(c) for c in context_ids], device=dev).repeat_interleave(L)  # (B·L,)
    pos = start.unsqueeze(1) + torch.arange(width, device=dev)  # (B·L, W): right after each input
    full = torch.cat([attn.repeat_interleave(L, dim=0), valid.to(attn.dtype)], dim=1)  # (B·L, n+T+W)
    h = base(inputs_embeds=bb.embed(cont), attention_mask=full, position_ids=pos,
             **{_cache_kwarg(type(base)): cache}).last_hidden_state  # (B·L, W, d)
    logp = F.log_softmax(head(h[valid]).float(), dim=-1)  # (K, V): K label-token positions
    tok = logp.gather(-1, tgt[valid].unsqueeze(-1)).squeeze(-1)  # (K,)
    owner = torch.arange(B * L, device=dev).unsqueeze(1).expand(-1, width)[valid]  # (K,)
    rest = torch.zeros(B * L, device=dev, dtype=tok.dtype).index_add(0, owner, tok)  # (B·L,)
    return scores + rest.view(B, L)


def shared_input_supported(encoder: Encoder, context_ids: list[list[int]], copies: torch.Tensor | None,
                           index: torch.Tensor | None) -> bool:
    """Once per model: do the shared-input scores equal the per-label rows' (first two inputs, no grad)?"""
    model = encoder.backbone.model
    ok = _SHARED_OK.get(model)
    if ok is None:
        rows = context_ids[:2]
        c = None if copies is None else copies.detach()
        i = None if index is None else index[:2]
        try:
            with probing(model):
                a = shared_input_scores(encoder, rows, c, i)
                b = _per_label_causal(encoder, rows, c, i, c is not None)
            ok = _agree(a, b)
        except Exception:  # any failure of the cache path means: keep the per-label rows
            ok = False
        _SHARED_OK[model] = ok
    return ok
