"""Verbalizer scoring on encoder-decoder models (T5): the input runs through the encoder once,
the decoder reads each label word after the sentinel ``<extra_id_0>``.

Label words of one token need one decoder position per example.  Label words of several tokens
(byte-level tokenizers: "negative" is 8 tokens) share the decoder's head ``[start, sentinel]`` and
its KV cache, above all the cross-attention keys and values over the encoder output: computed
once per example, not once per (example, label) as a decoder row per label word would.  A
one-time check per model compares the shared path with the per-label one and keeps the latter
for any model whose decoder cache does not behave.
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
    _with_prompt,
    pad_right,
    probing,
)


def seq2seq_scores(encoder: Encoder, context_ids: list[list[int]], prompt: torch.Tensor | None) -> torch.Tensor:
    """(B, L) log-probabilities of each label word after each input (summed over its tokens)."""
    bb = encoder.backbone
    dev = bb.device
    ids, mask = pad_right(context_ids, bb.tokenizer.pad_token_id)  # (B, T)
    ids, mask = ids.to(dev), mask.to(dev)
    embeds, attn = _with_prompt(bb, ids, mask, prompt)  # (B, n+T, d), (B, n+T)
    enc = bb.model.get_encoder()(inputs_embeds=embeds, attention_mask=attn)  # last_hidden_state (B, n+T, d)
    if encoder.single_token:
        return _head_logp(encoder, enc, attn)[0][:, [ids_[0] for ids_ in encoder.label_ids]]  # (B, L)
    if _SHARED_OK.get(bb.model) is None:
        _SHARED_OK[bb.model] = _shared_head_supported(encoder, enc, attn)
    if _SHARED_OK[bb.model]:
        return _seq2seq_shared(encoder, enc, attn)
    return _seq2seq_per_label(encoder, enc, attn)


def _head_logp(encoder: Encoder, enc: Any, attn: torch.Tensor, cache: bool = False) -> tuple[torch.Tensor, Any]:
    """(B, V) log-probabilities after the decoder's head ``[start, sentinel]`` (the first token of every
    label word), and the decoder's KV cache (self- and cross-attention) when asked."""
    bb = encoder.backbone
    head = [bb.model.config.decoder_start_token_id] + encoder.sentinel
    dec = torch.tensor([head] * attn.shape[0], device=bb.device)  # (B, H): decoder start + sentinel
    out = bb.model(encoder_outputs=enc, attention_mask=attn, decoder_input_ids=dec, use_cache=cache)
    kv = _cache_of(out) if cache else None
    return F.log_softmax(out.logits[:, -1].float(), dim=-1), kv


def _seq2seq_shared(encoder: Encoder, enc: Any, attn: torch.Tensor) -> torch.Tensor:
    """Multi-token label words on an encoder-decoder: the head ``[start, sentinel]`` runs once per
    example, and its KV cache -- the cross-attention keys and values of the encoder output above all,
    the costliest part of the decoder -- is shared by the example's L label words instead of being
    recomputed for each (``synthpt bench``: ``eval_speedup_vs_generate``, ``pt_step_time_vs_peft``)."""
    bb = encoder.backbone
    B, L = attn.shape[0], len(encoder.label_ids)
    first, cache = _head_logp(encoder, enc, attn, cache=True)  # (B, V); cache of B rows
    cache.batch_repeat_interleave(L)  # now B·L rows, row = i·L + l
    dec, tgt = _continuations(encoder, B)
    hidden = enc.last_hidden_state.repeat_interleave(L, dim=0)  # (B·L, S, d): only names the layers' inputs
    out = bb.model(encoder_outputs=type(enc)(last_hidden_state=hidden), attention_mask=attn.repeat_interleave(L, dim=0),
                   decoder_input_ids=dec, **{_cache_kwarg(type(bb.model)): cache})
    logp = F.log_softmax(out.logits.float(), dim=-1)  # (B·L, width, V)
    valid = tgt != -100  # (B·L, W-1)
    rest = (logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid).sum(-1).view(B, L)  # (B, L)
    return first[:, [lab[0] for lab in encoder.label_ids]] + rest  # (B, L)


def _seq2seq_per_label(encoder: Encoder, enc: Any, attn: torch.Tensor) -> torch.Tensor:
    """The plain way: one decoder row per (example, label), the encoder output repeated L times."""
    bb = encoder.backbone
    dev = bb.device
    head = [bb.model.config.decoder_start_token_id] + encoder.sentinel
    B, L = attn.shape[0], len(encoder.label_ids)
    width = max(len(lab) for lab in encoder.label_ids)
    pad = bb.tokenizer.pad_token_id
    dec = torch.full((L, len(head) + width - 1), pad, dtype=torch.long)
    tgt = torch.full((L, width), -100, dtype=torch.long)
    for li, lab in enumerate(encoder.label_ids):
        seq = head + lab[:-1]
        dec[li, : len(seq)] = torch.tensor(seq)
        tgt[li, : len(lab)] = torch.tensor(lab)
    dec, tgt = dec.to(dev).repeat(B, 1), tgt.to(dev).repeat(B, 1)
    hidden = enc.last_hidden_state.repeat_interleave(L, dim=0)
    enc_rep = type(enc)(last_hidden_state=hidden)
    out = bb.model(encoder_outputs=enc_rep, attention_mask=attn.repeat_interleave(L, dim=0), decoder_input_ids=dec)
    logits = out.logits[:, len(head) - 1 :].float()
    logp = F.log_softmax(logits, dim=-1)
    valid = tgt != -100
    tok_lp = logp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1) * valid
    return tok_lp.sum(-1).view(B, L)


_SHARED_OK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _shared_head_supported(encoder: Encoder, enc: Any, attn: torch.Tensor) -> bool:
    """Once per model: do the shared-head scores equal the per-label ones (first two rows, no grad)?
    A model whose decoder cache does not behave (no ``batch_repeat_interleave``, cross-attention
    recomputed or mis-positioned) fails the comparison or raises, and keeps the plain path."""
    probe = type(enc)(last_hidden_state=enc.last_hidden_state[:2].detach())
    try:
        with probing(encoder.backbone.model):
            a = _seq2seq_shared(encoder, probe, attn[:2])
            b = _seq2seq_per_label(encoder, probe, attn[:2])
        return _agree(a, b)
    except Exception:  # any failure of the cache path means: use the plain one
        return False
