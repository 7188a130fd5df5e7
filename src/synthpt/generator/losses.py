"""DawGen's loss terms as pure functions of small tensors (unit-tested by hand computation).

Shapes: ``B`` examples, ``T`` target-token positions (padded), ``L`` labels, ``d`` width.
``mask`` is a (B, T) 0/1 tensor of valid target tokens (the generated field + its EOS).

- :func:`token_weights`: w_j = N · softmax_j(s_j) over the batch's N valid tokens, so the
  weights are positive and their mean is exactly 1.  Why: with mean 1 the weighted loss is on
  the scale of the plain token-mean NLL (same learning rate works for every mode), and a
  weight net that outputs a constant recovers plain prompt tuning exactly.
- :func:`weighted_lm_loss`: L_wGen(Q_l) = (1/N_l) Σ_{j∈label l} w_j ℓ_j, ℓ_j = −log p(x_j|x_<j;Q_l),
  then the mean over the labels present (L_DawGen's "mean_l").
- :func:`disc_loss`: L_disc = −mean_j p_y(x_j) / Σ_l p_l(x_j) — the ratio is a softmax over the
  label axis of the per-token log-likelihoods, computed stably in log space.
- :func:`dist_loss`: triplet hinge on cosine similarity D(a, b) = a·b / (|a||b|):
  mean over all (anchor i, positive j≠i same label, negative k other label) of
  max(0, 1 − D(e_i, e_j) + D(e_i, e_k)).  Cosine is bounded, so the margin 1 has a fixed meaning.

A batch split over processes (each holds some rows): every term is a sum over rows divided by
a count over the whole batch, so each process computes its *share* — its rows' sum over the
global count — and the shares sum to the global value (and their gradients to its gradient).
The optional arguments carry what couples the rows: ``tokens_per_label`` and ``n_tokens``
(global counts), :func:`token_weights_shared` (the softmax's global shift, sum and count), and
``anchors`` for :func:`dist_loss` on the gathered embeddings.  Without them each function is
the one-batch formula, computed exactly as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_weights(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T) weights: N · softmax of ``scores`` over the valid tokens; 0 at padding."""
    valid = mask.bool()  # (B, T)
    n = valid.sum()  # () N valid tokens
    s = scores.masked_fill(~valid, float("-inf"))  # (B, T)
    w = torch.softmax(s.reshape(-1), dim=0).reshape(s.shape) * n  # (B, T), over all B·T positions at once
    return torch.where(valid, w, torch.zeros_like(w))  # (B, T)


def masked_max(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """() largest score over the valid tokens (detached; −inf when there are none)."""
    return scores.detach().masked_fill(~mask.bool(), float("-inf")).max()  # ()


def exp_total(scores: torch.Tensor, mask: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """() Σ_valid exp(s_j − shift): this shard's part of the softmax's normaliser (differentiable)."""
    e = torch.exp(scores - shift)  # (B, T)
    return torch.where(mask.bool(), e, torch.zeros_like(e)).sum()  # ()


def token_weights_shared(scores: torch.Tensor, mask: torch.Tensor, shift: torch.Tensor, total: torch.Tensor,
                         count: torch.Tensor) -> torch.Tensor:
    """(B, T) :func:`token_weights` of this shard's tokens within a larger batch:
    w_j = N exp(s_j − M) / Σ_k exp(s_k − M), with the batch's shift M (any constant; its max keeps
    exp finite), normaliser Σ_k (the sum of every shard's :func:`exp_total`, kept differentiable)
    and token count N given."""
    w = count * torch.exp(scores - shift) / total  # (B, T)
    return torch.where(mask.bool(), w, torch.zeros_like(w))  # (B, T)


def label_token_counts(mask: torch.Tensor, labels: torch.Tensor, num_labels: int) -> torch.Tensor:
    """(L,) valid target tokens of each label (float)."""
    onehot = F.one_hot(labels, num_labels).to(torch.float32)  # (B, L)
    return onehot.T @ mask.to(torch.float32).sum(1)  # (L,)


def weighted_lm_loss(token_nll: torch.Tensor, weights: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                     num_labels: int, tokens_per_label: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over present labels of L_wGen(Q_l), per-label losses (L,), NaN where absent).

    ``token_nll`` (B, T) = −log p of each target token under the example's own label prompt.
    ``tokens_per_label`` (L,): the whole batch's N_l when these rows are one shard of it (then
    both results are this shard's share; a label is present when the whole batch has it).
    """
    m = mask.to(token_nll.dtype)  # (B, T)
    per_example = (weights * token_nll * m).sum(1)  # (B,)
    tokens = m.sum(1)  # (B,)
    onehot = F.one_hot(labels, num_labels).to(token_nll.dtype)  # (B, L)
    num = onehot.T @ per_example  # (L,)
    den = onehot.T @ tokens if tokens_per_label is None else tokens_per_label.to(num.dtype)  # (L,)
    present = den > 0  # (L,)
    per_label = torch.where(present, num / den.clamp(min=1), torch.full_like(num, float("nan")))  # (L,)
    loss = per_label[present].mean()  # ()
    return loss, per_label


def disc_loss(token_logp: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
              n_tokens: torch.Tensor | None = None) -> torch.Tensor:
    """L_disc from (B, L, T) log p(x_j | x_<j; Q_l) of every example under every label prompt
    (this shard's share when ``n_tokens``, the whole batch's valid token count, is given)."""
    ratio = torch.softmax(token_logp, dim=1)  # (B, L, T): p_l / Σ_l' p_l'  per token
    own = ratio.gather(1, labels.view(-1, 1, 1).expand(-1, 1, ratio.shape[2])).squeeze(1)  # (B, T)
    m = mask.to(own.dtype)  # (B, T)
    n = m.sum() if n_tokens is None else n_tokens.to(m.dtype)  # ()
    return -(own * m).sum() / n.clamp(min=1)  # ()


def dist_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float = 1.0,
              anchors: torch.Tensor | None = None) -> torch.Tensor:
    """Triplet hinge over every (anchor, positive, negative) of the batch on cosine similarity.

    ``emb`` (B, p) projected representations W·Z.  Returns 0 (with a graph) when the batch has
    no valid triplet (fewer than two examples of a label, or a single label).  ``anchors`` (B,)
    bool: the rows this shard owns, when ``emb`` is the whole batch gathered from the shards;
    the result is then the share of the triplets anchored at them (shares sum to the loss).
    """
    e = F.normalize(emb, dim=-1)  # (B, p)
    sim = e @ e.T  # (B, B) cosine
    same = labels.view(-1, 1) == labels.view(1, -1)  # (B, B)
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)  # (B, B)
    pos = same & ~eye  # (B, B): j is a positive of anchor i
    neg = ~same  # (B, B): k is a negative of anchor i
    # (i, j, k): hinge(margin - sim[i, j] + sim[i, k])
    h = F.relu(margin - sim.unsqueeze(2) + sim.unsqueeze(1))  # (B, B, B)
    valid = pos.unsqueeze(2) & neg.unsqueeze(1)  # (B, B, B)
    if not valid.any():
        return emb.sum() * 0.0
    if anchors is None:
        return h[valid].mean()  # ()
    return h[valid & anchors.view(-1, 1, 1)].sum() / valid.sum()  # ()


def pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Z: mean of (B, T, d) hidden states over the valid target tokens -> (B, d)."""
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)  # (B, d)
