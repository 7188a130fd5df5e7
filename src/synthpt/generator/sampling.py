"""Step 2's token sampling, vectorised over the rows of a batch (no Python per row per token).

- :func:`nucleus_sample`: temperature, top-k and top-p (nucleus) sampling with the semantics of
  Hugging Face's ``TopPLogitsWarper`` (a token is kept when the probability mass of the tokens
  ranked above it is below ``top_p``), without sorting the vocabulary (by rejection, see there).
- :func:`markup_token_ids`: the added tokens a generated text must not contain.
- :func:`line_end_flags`: per-token facts that decide where a text's first line ends, computed
  once per tokenizer, so a stop test is three table look-ups per step for the whole batch.
"""

from __future__ import annotations

from typing import Any

import torch

_FLAGS: dict[int, tuple[Any, torch.Tensor]] = {}


def markup_token_ids(tokenizer: Any, vocab: int) -> list[int]:
    """Ids of the tokenizer's added tokens that are not special and not whitespace: control and markup
    tokens (Gemma 3's ``<start_of_image>``, ``[multimodal]``, ``<em>``, ``<table>`` ...) that
    ``skip_special_tokens`` keeps in the decoded text, so a generated row would carry them.  Special
    tokens are left alone (decoding drops them; EOS ends a row), and so are newline and tab tokens
    (line ends are what stops a row)."""
    special = set(tokenizer.all_special_ids)
    return sorted(i for i, t in tokenizer.added_tokens_decoder.items()
                  if i < vocab and not t.special and i not in special and t.content.strip())


def line_end_flags(tokenizer: Any, vocab: int) -> torch.Tensor:
    """(3, V) bool: has non-blank text / has a line end / has a line end after non-blank text.

    A row is done at token t once ``(seen_text and has_line_end[t]) or line_end_after_text[t]``,
    the token-level form of "the text so far, left-stripped, contains a line end" (special tokens
    decode to nothing, as with ``skip_special_tokens``)."""
    hit = _FLAGS.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer and hit[1].shape[1] == vocab:
        return hit[1]
    n = min(vocab, len(tokenizer))
    texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=True)
    flags = torch.zeros(3, vocab, dtype=torch.bool)
    flags[0, :n] = torch.tensor([bool(t.strip()) for t in texts])
    flags[1, :n] = torch.tensor(["\n" in t for t in texts])
    flags[2, :n] = torch.tensor(["\n" in t.lstrip() for t in texts])
    _FLAGS[id(tokenizer)] = (tokenizer, flags)
    return flags


def _pick(probs: torch.Tensor, ids: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw in the nucleus of each row of ``probs`` (R, K), sorted descending."""
    before = probs.cumsum(1) - probs  # mass ranked above each token
    kept = probs * (before < top_p)  # (R, K); the top token is always kept
    cum = kept.cumsum(1)
    at = (cum < (u * cum[:, -1]).unsqueeze(1)).sum(1).clamp(max=probs.shape[1] - 1)
    return ids.gather(1, at.unsqueeze(1)).squeeze(1)


def nucleus_sample(logits: torch.Tensor, lse: torch.Tensor, top_p: float, top_k: int,
                   gen: torch.Generator, tries: int = 8) -> torch.Tensor:
    """Token ids (R,) drawn from ``softmax(logits)`` (already divided by the temperature; ``lse`` its
    log-sum-exp, (R,)) restricted to the top-k tokens, then to the top-p nucleus.

    Without top-k, by rejection: draw from the whole distribution (inverse CDF on its cumulative
    sum), keep the draw if it lies in the nucleus (the mass of the tokens more likely than it is
    below ``top_p``), else draw again.  The kept draws follow the distribution restricted to the
    nucleus and renormalised, which is what nucleus sampling is; a draw is kept with probability
    ≥ ``top_p``, so about one pass suffices, and nothing sorts the vocabulary (at 64 rows and 49k
    words a sort costs more than the decode step's matmuls).  Rows still rejected after ``tries``
    rounds (only when ``top_p`` is small) take the sorted path."""
    R, V = logits.shape
    if top_k > 0:  # HF renormalises over the top-k before top-p
        vals, ids = logits.topk(min(V, top_k), dim=1)  # (R, k), sorted descending
        return _pick(torch.softmax(vals, dim=1), ids, top_p, _uniform(R, gen, logits.device))
    probs = (logits - lse.unsqueeze(1)).exp_()  # (R, V), the one full-vocabulary temporary
    cum = probs.cumsum(1)
    out = torch.empty(R, dtype=torch.long, device=logits.device)
    rows = None  # every row, without an indexing copy, on the first try
    for _ in range(tries):
        p, c = (probs, cum) if rows is None else (probs[rows], cum[rows])
        u = _uniform(p.shape[0], gen, logits.device)
        tok = torch.searchsorted(c, (u * c[:, -1]).unsqueeze(1)).squeeze(1).clamp(max=V - 1)
        idx = torch.arange(R, device=logits.device) if rows is None else rows
        if top_p >= 1.0:
            out[idx] = tok
            return out
        px = p.gather(1, tok.unsqueeze(1))  # (r, 1)
        above = torch.where(p > px, p, 0.0).sum(1)  # mass of the strictly more likely tokens
        ok = above < top_p
        out[idx[ok]] = tok[ok]
        rows = idx[~ok]
        if len(rows) == 0:
            return out
    if rows is None:
        rows = torch.arange(R, device=logits.device)
    sv, si = logits[rows].sort(dim=1, descending=True)
    out[rows] = _pick(torch.exp(sv - lse[rows].unsqueeze(1)), si, top_p, _uniform(len(rows), gen, logits.device))
    return out


def _uniform(n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device).to(device)


def penalise_repeats(logits: torch.Tensor, prev: torch.Tensor, n_prev: torch.Tensor, penalty: float) -> None:
    """HF's repetition penalty in place: the logit of every token generated so far is divided by
    ``penalty`` where positive, multiplied where negative.  ``prev`` (R, T) holds each row's tokens,
    valid up to ``n_prev`` (R,)."""
    if penalty == 1.0 or prev.shape[1] == 0:
        return
    valid = torch.arange(prev.shape[1], device=prev.device).unsqueeze(0) < n_prev.unsqueeze(1)
    idx = torch.where(valid, prev, prev[:, :1])  # invalid slots repeat a valid token (same new value)
    vals = logits.gather(1, idx)
    new = torch.where(vals > 0, vals / penalty, vals * penalty)
    new = torch.where((n_prev > 0).unsqueeze(1), new, vals)
    logits.scatter_(1, idx, new)
