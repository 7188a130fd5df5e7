"""Stage 1: tune one soft prompt Q_l per label on a frozen generator LM (DawGen / FewGen / plain).

One bi-level step on a balanced batch (``mode="dawgen"``; Algorithm 1):

1. forward every example under its own label's prompt: per-token NLL ℓ_j, hidden states h_j;
   L_DawGen(Q; W) = mean_l L_wGen(Q_l) + λ L_dist, with w_j = Φ_W(h_j) (h detached: the weights
   are importance weights, Q cannot lower its loss by moving weight off hard tokens);
2. lookahead Q' = Q − α ∇_Q L_DawGen(Q; W), kept differentiable in W (``create_graph=True``);
3. L_disc(Q'(W)): every example under every label's lookahead prompt (and that label's context,
   if the task gives one per label) in ONE forward (B·L rows);
   its gradient w.r.t. W flows back through the lookahead — the meta-gradient; Adam step on W;
4. the real step of Q on L_DawGen(Q; W_new).  No new forward: the weights enter the loss
   linearly, so recomputing them from the kept (detached) hidden states with W_new and
   back-propagating through the kept graph of ℓ_j and Z is exact.

``fewgen`` drops L_dist (W is the token scorer only); ``plain`` is unweighted prompt tuning of
the label prompts (no W, no lookahead).  The double backward of step 3 goes through the
forward of step 1 only, which therefore runs on SDPA's math backend (PyTorch's fused SDPA
kernels have no second derivative); the B·L-row forward of L_disc is differentiated once and
keeps the fused kernels.

Batches are a pure function of (seed, step): each label contributes ⌈B/L⌉ examples from
its own seeded stream, so every label's L_wGen and every triplet of L_dist exist in every
step, and a resumed run sees exactly the batches of an uninterrupted one.  Under
``accelerate launch`` each process takes a slice of the global batch and computes its *share*
of every loss (its rows' sum over the whole batch's counts, see :mod:`.losses`): the softmax
normaliser of the token weights is summed over processes, L_dist runs on the gathered
embeddings, the lookahead uses the global gradient of Q (a differentiable all-reduce, so the
meta-gradient flows back to every process's rows), and the gradients of W and Q are summed —
the global batch's step, to float rounding.  In one process none of this runs.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from synthpt.core import distributed as dist
from synthpt.core.batches import Stream
from synthpt.core.checkpointing import save_checkpoint
from synthpt.core.errors import fail
from synthpt.core.models import Backbone
from synthpt.core.soft_prompt import embed_tokens, embedding_scale, init_from_vocab
from synthpt.core.training import TrainResult, checkpoint_path, resume, run_steps
from synthpt.generator.config import GeneratorConfig
from synthpt.generator.encoding import GenEncoder, Scored, score_targets, upcast
from synthpt.generator.losses import (
    disc_loss,
    dist_loss,
    exp_total,
    label_token_counts,
    masked_max,
    pooled,
    token_weights,
    token_weights_shared,
    weighted_lm_loss,
)
from synthpt.tasks import Task


class WeightNet(nn.Module):
    """Φ_W: a token scorer R^d → R (weights via :func:`token_weights`) and a projection head.

    The scorer's last layer starts at zero, so every token starts with weight exactly 1 and
    training begins as plain prompt tuning; the meta-gradient moves it from there.
    """

    def __init__(self, d: int, hidden: int = 64, proj_dim: int = 64, seed: int = 0) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.score1 = nn.Linear(d, hidden)
            self.score2 = nn.Linear(hidden, 1)
            self.proj = nn.Linear(d, proj_dim, bias=False)
        nn.init.zeros_(self.score2.weight)
        nn.init.zeros_(self.score2.bias)

    def scores(self, h: torch.Tensor) -> torch.Tensor:
        """(..., d) hidden states -> (...) unnormalised token scores."""
        return self.score2(torch.tanh(self.score1(h))).squeeze(-1)

    def project(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(z)


def init_label_prompts(bb: Backbone, task: Task, length: int, seed: int, from_words: bool) -> torch.Tensor:
    """(L, n, d): random vocabulary embeddings (Lester et al.), the label word's tokens last."""
    base = init_from_vocab(bb, length, seed)
    out = base.unsqueeze(0).repeat(task.num_labels, 1, 1)
    if from_words:
        for li, word in enumerate(task.words()):
            lead = "" if bb.is_seq2seq else " "
            ids = bb.tokenizer(lead + word, add_special_tokens=False)["input_ids"][-length:]
            if ids:  # the embedding module's output, not the table's rows (Gemma scales them by √d)
                out[li, length - len(ids):] = embed_tokens(bb, ids).to(out.device)
    return out


def math_attention() -> contextlib.AbstractContextManager:
    """SDPA restricted to its math backend, which is built from differentiable ops and so has the
    second derivative that the fused flash / memory-efficient kernels lack (CUDA and CPU alike)."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: fused kernels are picked only when no grad-of-grad is asked
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


class GeneratorTrainer:
    """Holds Q (L label prompts), W and their optimizers; ``train_step`` is one (bi-level) update.

    Keeps the trainer contract of :mod:`synthpt.core.training`."""

    def __init__(self, task: Task, bb: Backbone, cfg: GeneratorConfig, train: list[dict],
                 out_dir: str | Path | None = None, progress: bool = True) -> None:
        cfg.validate()
        self.task, self.bb, self.cfg, self.train = task, bb, cfg, train
        self.out = Path(out_dir) if out_dir else None
        self.progress = progress
        self.L = task.num_labels
        self.enc = GenEncoder(task, bb, cfg.max_length, cfg.prompt_length)
        self.by_label = [[i for i, ex in enumerate(train) if ex["label"] == lab] for lab in task.labels]
        empty = [lab for lab, rows in zip(task.labels, self.by_label) if not rows]
        if empty:
            raise fail(f"generator tuning needs training examples of every label; none for {empty}")
        self.streams = [Stream(len(rows), cfg.seed, 100 + li) for li, rows in enumerate(self.by_label)]
        self.per_label = max(1, math.ceil(cfg.batch_size / self.L))
        if self.per_label * self.L < dist.world_size():  # a process without rows has no share to give
            raise fail(f"a generator batch of {self.per_label * self.L} rows cannot be split over "
                       f"{dist.world_size()} processes; raise --batch-size")
        self.weighted = cfg.mode != "plain"
        if self.weighted and hasattr(bb.model, "set_attn_implementation"):
            if getattr(bb.model.config, "_attn_implementation", "eager") not in ("eager", "sdpa"):
                bb.model.set_attn_implementation("eager")  # fused kernels have no double backward
        # only the forward under the examples' own prompts is differentiated twice (the lookahead's
        # create_graph); it runs on SDPA's math backend (``math_attention``), every other forward
        # keeps the fused kernels (seen without it: T5 on CUDA, "derivative for
        # aten::_scaled_dot_product_efficient_attention_backward is not implemented")
        dev = bb.device
        self.Q = nn.Parameter(init_label_prompts(bb, task, cfg.prompt_length, cfg.seed,
                                                 cfg.init_from_label_words).to(dev))
        self.opt_q = torch.optim.Adam([self.Q], lr=cfg.lr * (embedding_scale(bb) if cfg.lr_relative else 1.0))
        self.W = WeightNet(bb.hidden_size, cfg.weight_hidden, cfg.proj_dim, seed=cfg.seed).to(dev)
        self.opt_w = torch.optim.Adam(self.W.parameters(), lr=cfg.meta_lr)
        self._ids: dict[tuple[int, str], tuple[list[int], list[int]]] = {}
        self.global_step = 0

    # ---- batches ------------------------------------------------------------------------
    def batch_rows(self, step: int) -> list[int]:
        """Global batch of ``step``: ⌈B/L⌉ examples of each label, label-major order."""
        return [self.by_label[li][j] for li in range(self.L) for j in self.streams[li].batch(step, self.per_label)]

    def _encoded(self, i: int, label: str | None = None) -> tuple[list[int], list[int]]:
        """Ids of training row ``i`` read as ``label`` (default: its own), cached."""
        key = (i, self.train[i]["label"] if label is None else label)
        if key not in self._ids:
            self._ids[key] = self.enc.encode(self.train[i], key[1])
        return self._ids[key]

    # ---- the losses ---------------------------------------------------------------------
    def dawgen_loss(self, nll: torch.Tensor, hidden: torch.Tensor, mask: torch.Tensor, y: torch.Tensor,
                    W: WeightNet | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """(L_DawGen, mean_l L_wGen, L_dist or None) from the kept per-token graph (this process's
        share of each under several processes; the shares sum to the global batch's values)."""
        sharded = dist.world_size() > 1
        if W is None:
            w = mask.to(nll.dtype)  # (b, T)
        else:
            w = self._token_weights(W.scores(upcast(hidden.detach())), mask)  # (b, T)
        counts = dist.all_reduce_sum(label_token_counts(mask, y, self.L)) if sharded else None  # (L,) N_l
        l_wgen, _ = weighted_lm_loss(nll, w, mask, y, self.L, counts)  # ()
        if W is None or self.cfg.mode != "dawgen":
            return l_wgen, l_wgen, None
        emb = W.project(pooled(upcast(hidden), mask))  # (b, p)
        if sharded:  # every triplet of the global batch; this process owns those anchored at its rows
            B = self.per_label * self.L
            l_dist = dist_loss(dist.gather_rows(emb, B), dist.gather_rows(y, B), self.cfg.dist_margin,
                               anchors=dist.shard_mask(B, emb.device))  # ()
        else:
            l_dist = dist_loss(emb, y, self.cfg.dist_margin)  # ()
        return l_wgen + self.cfg.dist_weight * l_dist, l_wgen, l_dist

    @staticmethod
    def _token_weights(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b, T) w_j = N · softmax_j(s_j) over the *global* batch's tokens: the shift, normaliser and
        count are summed over processes (the normaliser differentiably: w depends on W through it)."""
        if dist.world_size() == 1:
            return token_weights(scores, mask)  # (b, T)
        shift = dist.all_reduce_max(masked_max(scores, mask))  # ()
        total = dist.all_reduce_sum_grad(exp_total(scores, mask, shift))  # ()
        count = dist.all_reduce_sum(mask.to(scores.dtype).sum())  # ()
        return token_weights_shared(scores, mask, shift, total, count)  # (b, T)

    def _reduce(self, grads: list[torch.Tensor]) -> list[torch.Tensor]:
        """Sum of every process's gradients: each is the gradient of its share of the loss."""
        if dist.world_size() == 1:
            return grads
        flat = dist.all_reduce_sum(torch.cat([g.reshape(-1) for g in grads]))  # (Σ numel,)
        out, o = [], 0
        for g in grads:
            out.append(flat[o:o + g.numel()].view_as(g))
            o += g.numel()
        return out

    def forward_own(self, step: int) -> tuple[list[int], list[list[int]], torch.Tensor, Scored]:
        """This process's rows of ``step`` (indices, targets, labels) scored under their own label
        prompts and contexts (graph to Q)."""
        mine = dist.shard(self.batch_rows(step))
        context_ids = [self._encoded(i)[0] for i in mine]
        tgt = [self._encoded(i)[1] for i in mine]
        y = torch.tensor([self.task.label_index(self.train[i]["label"]) for i in mine], device=self.bb.device)
        with math_attention() if self.weighted else contextlib.nullcontext():
            return mine, tgt, y, score_targets(self.bb, context_ids, tgt, self.Q[y])

    def lookahead_disc(self, mine: list[int], tgt: list[list[int]], y: torch.Tensor, s: Scored) -> torch.Tensor:
        """L_disc(Q'(W)) with Q' = Q − α ∇Q L_DawGen(Q; W): differentiable in W (the meta-objective)."""
        loss0, _, _ = self.dawgen_loss(-s.token_logp, s.hidden, s.mask, y, self.W)
        (g,) = torch.autograd.grad(loss0, self.Q, create_graph=True)  # (L, n, d) this process's share
        g = dist.all_reduce_sum_grad(g)  # (L, n, d) the global batch's gradient, still a function of W
        q_look = self.Q - self.cfg.inner_lr * g  # (L, n, d)
        # every example under every label's lookahead prompt and context, one forward of B·L rows
        # (row = i·L + l); the target ids do not depend on the label, only the context does
        B = len(mine)
        rows_p = q_look.unsqueeze(0).expand(B, -1, -1, -1).reshape(B * self.L, *q_look.shape[1:])
        context_ids_all = [self._encoded(i, lab)[0] for i in mine for lab in self.task.labels]
        sd = score_targets(self.bb, context_ids_all, [t for t in tgt for _ in range(self.L)], rows_p)
        T = sd.token_logp.shape[1]
        mask = sd.mask.view(B, self.L, T)[:, 0]  # (B, T) targets do not depend on the label
        n_tokens = dist.all_reduce_sum(mask.to(torch.float32).sum()) if dist.world_size() > 1 else None  # ()
        return disc_loss(sd.token_logp.view(B, self.L, T), y, mask, n_tokens)  # () this process's share

    @torch.no_grad()
    def loss_at(self, step: int) -> float:
        """L_DawGen(Q; W) on the batch of ``step`` with the current Q and W (for checks)."""
        _, _, y, s = self.forward_own(step)
        return float(dist.all_reduce_sum(self.dawgen_loss(-s.token_logp, s.hidden, s.mask, y,
                                                          self.W if self.weighted else None)[0]))

    def train_step(self, step: int) -> dict[str, Any]:
        """One update of Q (and, in weighted modes, W) on the batch of ``step``."""
        cfg = self.cfg
        dev = self.bb.device
        mine, tgt, y, s = self.forward_own(step)  # y (B,); s.token_logp, s.mask (B, T); s.hidden (B, T, d)
        nll, mask = -s.token_logp, s.mask  # (B, T) each
        rec: dict[str, Any] = {"step": step + 1}
        l_disc_val = None
        saved_w = None
        if not self.weighted:
            loss, l_wgen, l_dist = self.dawgen_loss(nll, s.hidden, mask, y, None)
        else:
            # (1)+(2) lookahead Q'(W) and the meta-gradient of L_disc(Q'(W)) w.r.t. W
            l_disc = self.lookahead_disc(mine, tgt, y, s)  # () L_disc(Q'(W)), graph to W
            gw = torch.autograd.grad(l_disc, list(self.W.parameters()), allow_unused=True, retain_graph=True)
            gw = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(gw, self.W.parameters())]
            gw = self._reduce(gw)
            l_disc_val = float(dist.all_reduce_sum(l_disc.detach()))  # the same on every process
            # a batch skipped below must leave W as it found it: keep W and Adam's moments to put back
            saved_w = copy.deepcopy((self.W.state_dict(), self.opt_w.state_dict())) if cfg.skip_nonfinite else None
            if all(torch.isfinite(gi).all() for gi in gw) and math.isfinite(l_disc_val):
                for p, gi in zip(self.W.parameters(), gw):
                    p.grad = gi.detach()
                self.opt_w.step()
                self.opt_w.zero_grad(set_to_none=True)
            # (3) the real Q step on L_DawGen(Q; W_new): new weights, kept graph, no new forward
            loss, l_wgen, l_dist = self.dawgen_loss(nll, s.hidden, mask, y, self.W)
        (gq,) = torch.autograd.grad(loss, self.Q)  # (L, n, d)
        (gq,) = self._reduce([gq])
        vals = torch.stack([loss.detach(), l_wgen.detach(),
                            l_dist.detach() if l_dist is not None else torch.zeros((), device=dev)])
        vals = dist.all_reduce_sum(vals)  # (3,) shares -> global values
        rec.update(L_wGen=float(vals[1]), L_disc=l_disc_val,
                   L_dist=float(vals[2]) if l_dist is not None else None, L_DawGen=float(vals[0]))
        bad = [k for k in ("L_wGen", "L_disc", "L_dist", "L_DawGen") if rec[k] is not None and not math.isfinite(rec[k])]
        if bad or not torch.isfinite(gq).all():
            term = bad[0] if bad else "gradient of Q"
            if cfg.skip_nonfinite:
                rec["skipped"] = f"non-finite {term}"
                if saved_w is not None:  # W stepped on this batch: undo it
                    self.W.load_state_dict(saved_w[0])
                    self.opt_w.load_state_dict(saved_w[1])
                return rec
            raise fail(f"non-finite {term} at step {step + 1} (use --skip-nonfinite to skip such batches)")
        self.Q.grad = gq.detach()
        self.opt_q.step()
        self.opt_q.zero_grad(set_to_none=True)
        return rec

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"step": self.global_step, "Q": self.Q.detach().cpu(), "W": {k: v.cpu() for k, v in self.W.state_dict().items()},
                "opt_q": self.opt_q.state_dict(), "opt_w": self.opt_w.state_dict(), "config": asdict(self.cfg)}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        with torch.no_grad():
            self.Q.copy_(st["Q"].to(self.Q.device))
        for part, key in ((self.W, "W"), (self.opt_q, "opt_q"), (self.opt_w, "opt_w")):
            part.load_state_dict(st[key])
        self.global_step = int(st["step"])

    def try_resume(self) -> bool:
        return resume(self, self.out, asdict(self.cfg))

    def save_checkpoint(self) -> None:
        save_checkpoint(checkpoint_path(self.out), self.state_dict())

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Steps to ``max_steps``, resuming from a checkpoint; the last Q and W are the result."""
        return run_steps(self, max_steps=self.cfg.max_steps, checkpoint_every=self.cfg.checkpoint_every,
                         out=self.out, desc=f"generator {self.task.name} [{self.cfg.mode}]", progress=self.progress,
                         postfix=lambda rec: {"L_DawGen": f"{rec['L_DawGen']:.3f}"})
