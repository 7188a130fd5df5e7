"""OPTIMA (Guo, Li, Yu; Findings of EMNLP 2022): prompt tuning with domain adaptation.

Phase 1 (cached, shared by every seed of a target): a soft prompt is trained on the
*source* task's labelled data plus the *target* task's unlabeled texts.  The loss is

    L = CE(source rows) + λ · [ mean_i w(x_i) · KL(p(x_i) ‖ p(x_i + δ_i)) ]   over source and target rows,

where ``δ_i`` is an adversarial perturbation of the input token embeddings (one VAT/FGSM
power-iteration step in the direction that increases the KL) and ``w(x) = D(x)`` is a
domain discriminator's probability that ``x`` is a target example.  The decision boundary is
thus made smooth where source and target look alike.  Phase 2: few-shot prompt tuning on the
target (the cell's split) starting from the phase-1 prompt.

Design choices the paper leaves open, and the defaults here (``options``):

- Source task: as SPoT (:data:`DEFAULT_SOURCE`, ``options.source_task``); source rows use the
  source task's template and verbalizer, target rows the target's.  ``source_examples``
  balanced source rows (default all of the pool), ``optima_unlabeled`` target texts
  (default 2000, from the target's *training pool* with labels dropped; never test rows).
- Phases: source + unlabeled target first (``optima_steps``, default 1000), then ordinary
  few-shot prompt tuning of the result (the cell's prompt-tuning config).  Phase 1 does not
  see the few-shot labels, which makes it seed-independent and cacheable.
- Perturbation: on the input token embeddings only (the soft prompt is the trained parameter
  and is not perturbed), one power-iteration step: random direction of relative size
  ``optima_xi`` (1e-3), gradient of the KL, normalised per example over (tokens × dims) to
  radius ``optima_eps`` (default 0.05) × the example's embedding norm (relative radius, so
  one default fits backbones whose embedding scales differ).  Padding positions are masked.
- Consistency: KL(p_clean ‖ p_adv) over the label words' distribution (softmax of the
  summed label-word log-probs), with p_clean detached (VAT); weight ``optima_lambda`` (1.0).
- Discriminator: a 2-layer MLP (hidden 64) on the mean-pooled frozen token embeddings of
  each input (bag of embeddings, no prompt), trained jointly with BCE (source 0, target 1),
  AdamW lr ``optima_disc_lr`` (1e-3); its probabilities are detached when weighting, and
  the weights apply to source and target rows alike.
- Batches: ``prompt_tuning.batch_size`` source rows + as many target rows per step; the
  prompt uses the cell's lr, vocabulary initialisation (seed ``source_seed``, 42), and the
  last prompt of phase 1 is kept (there is no target dev set in phase 1).
- Trainable parameters: the prompt, n·d (the discriminator is an auxiliary of training and
  is not part of the model that predicts; its size is logged as ``discriminator_parameters``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.core.checkpointing import rng_state, save_checkpoint, set_rng_state
from synthpt.core.errors import fail
from synthpt.core.models import Backbone
from synthpt.core.scoring import Encoder, label_logprobs, pad_right
from synthpt.core.soft_prompt import init_from_vocab
from synthpt.core.training import TrainResult, checkpoint_path, resume, run_steps
from synthpt.methods import register
from synthpt.methods.base import Context
from synthpt.methods.baselines.common import (
    TransferMethod,
    frozen_backbone,
    option,
    save_source_prompt,
    source_prompt,
)

# ---------------------------------------------------------------------------- the regulariser


def kl_rows(logp_clean: torch.Tensor, logp_adv: torch.Tensor) -> torch.Tensor:
    """Per-row KL(p_clean ‖ p_adv) over the label distribution; p_clean is a fixed target."""
    lp = F.log_softmax(logp_clean.detach().float(), dim=-1)
    lq = F.log_softmax(logp_adv.float(), dim=-1)
    return (lp.exp() * (lp - lq)).sum(-1)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Each row (first dim) scaled to unit L2 norm over all its other dims."""
    norm = x.flatten(1).norm(dim=1).clamp_min(1e-12)
    return x / norm.view(-1, *([1] * (x.dim() - 1)))


def _row_norm(base: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (base * mask.unsqueeze(-1)).flatten(1).norm(dim=1).view(-1, *([1] * (base.dim() - 1)))


def adversarial_delta(score: Callable[[torch.Tensor], torch.Tensor], base: torch.Tensor, mask: torch.Tensor,
                      eps: float, xi: float = 1e-3, generator: torch.Generator | None = None,
                      clean: torch.Tensor | None = None) -> torch.Tensor:
    """One power-iteration step: the perturbation of ``base`` (R, T, d) that increases the KL
    between ``score(0)`` and ``score(δ)`` most, with per-row norm ``eps`` × the row's norm.

    ``score(delta)`` returns the (B, L) label log-probabilities for ``base + delta``."""
    m = mask.unsqueeze(-1).to(base.dtype)
    scale = _row_norm(base.detach(), mask.to(base.dtype))
    if eps == 0:
        return torch.zeros_like(base)
    if clean is None:
        with torch.no_grad():
            clean = score(torch.zeros_like(base))
    noise = torch.randn(base.shape, generator=generator).to(base.device, base.dtype) * m
    d = (xi * scale * _unit(noise)).detach().requires_grad_(True)
    kl = kl_rows(clean, score(d)).sum()
    (g,) = torch.autograd.grad(kl, d)
    g = g * m
    if not torch.isfinite(g).all() or float(g.abs().sum()) == 0.0:
        g = noise  # flat spot (e.g. an untrained toy): fall back to the random direction
    return (eps * scale * _unit(g)).detach()


def consistency(score: Callable[[torch.Tensor], torch.Tensor], clean: torch.Tensor, delta: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """mean_i w_i · KL(p_clean_i ‖ p(x_i + δ_i)); exactly 0 when δ = 0."""
    kl = kl_rows(clean, score(delta))
    if weights is not None:
        kl = kl * weights.to(kl.dtype)
    return kl.mean()


# ---------------------------------------------------------------------------- model plumbing


@dataclass
class PerturbableBackbone(Backbone):
    """A view of a backbone whose input embeddings get ``delta`` added (and can be recorded)."""

    delta: torch.Tensor | None = None
    record: list[Any] | None = field(default=None)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.model.get_input_embeddings()(ids)
        if self.record is not None:
            self.record.append((ids, e.detach()))
        if self.delta is not None:
            e = e + self.delta.to(e.dtype)
        return e


class Discriminator(torch.nn.Module):
    def __init__(self, d: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


@dataclass
class OptimaConfig:
    steps: int = 1000
    eps: float = 0.05
    xi: float = 1e-3
    lam: float = 1.0
    disc_lr: float = 1e-3
    unlabeled: int = 2000
    source_examples: int | None = None
    seed: int = 42


def optima_config(ctx: Context) -> OptimaConfig:
    lim = option(ctx, "source_examples", None)
    return OptimaConfig(steps=int(option(ctx, "optima_steps", 1000)), eps=float(option(ctx, "optima_eps", 0.05)),
                        xi=float(option(ctx, "optima_xi", 1e-3)), lam=float(option(ctx, "optima_lambda", 1.0)),
                        disc_lr=float(option(ctx, "optima_disc_lr", 1e-3)),
                        unlabeled=int(option(ctx, "optima_unlabeled", 2000)),
                        source_examples=int(lim) if lim else None, seed=int(option(ctx, "source_seed", 42)))


class OptimaTrainer:
    """Phase 1: source CE + discriminator-weighted adversarial consistency on source and target.

    Keeps the trainer contract of :mod:`synthpt.core.training`.  Rows are drawn from one seeded
    stream (``random.Random``) and the perturbations' noise from one ``torch.Generator``; both
    states are in the checkpoint, so a resumed run draws what an uninterrupted one draws.  Under
    several processes every process runs the whole batch (replicated: one process's result)."""

    def __init__(self, bb: Backbone, src_task: Any, tgt_task: Any, src_rows: list[dict], tgt_rows: list[dict],
                 pt_cfg: Any, oc: OptimaConfig, out_dir: str | Path | None = None, progress: bool = False) -> None:
        self.out = Path(out_dir) if out_dir else None
        self.progress = progress
        self.bb = PerturbableBackbone(bb.model, bb.tokenizer, bb.name_or_path, bb.is_seq2seq)
        self.pt, self.oc = pt_cfg, oc
        self.src_enc = Encoder(src_task, self.bb, pt_cfg.max_length, pt_cfg.prompt_length)
        self.tgt_enc = Encoder(tgt_task, self.bb, pt_cfg.max_length, pt_cfg.prompt_length)
        self.src_rows, self.tgt_rows = src_rows, tgt_rows
        self._ids: dict[tuple[str, int], list[int]] = {}  # encoded lazily: most pool rows are never drawn
        self.y = torch.tensor([src_task.label_index(r["label"]) for r in src_rows])
        torch.manual_seed(oc.seed)
        self.prompt = torch.nn.Parameter(init_from_vocab(bb, pt_cfg.prompt_length, oc.seed).to(bb.device))
        self.disc = Discriminator(bb.hidden_size).to(bb.device)
        self.opt = torch.optim.AdamW([self.prompt], lr=pt_cfg.lr, weight_decay=pt_cfg.weight_decay)
        self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=oc.disc_lr)
        self.gen = torch.Generator().manual_seed(oc.seed)
        self.rng = random.Random(oc.seed)
        self.global_step = 0
        self.tail: list[dict[str, float]] = []  # the last 10 records (the stage reports their mean)

    def ids(self, side: str, i: int) -> list[int]:
        if (side, i) not in self._ids:
            enc, rows = (self.src_enc, self.src_rows) if side == "src" else (self.tgt_enc, self.tgt_rows)
            self._ids[(side, i)] = enc.encode(rows[i])
        return self._ids[(side, i)]

    def features(self, ids: list[list[int]]) -> torch.Tensor:
        x, m = pad_right(ids, self.bb.tokenizer.pad_token_id)
        x, m = x.to(self.bb.device), m.to(self.bb.device).float()
        with torch.no_grad():
            e = self.bb.model.get_input_embeddings()(x).float()
            return (e * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True).clamp_min(1)

    def regulariser(self, enc: Any, ids: list[list[int]], clean: torch.Tensor, base: torch.Tensor,
                    mask: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        def score(d: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
            self.bb.delta = d
            try:
                return label_logprobs(enc, ids, prompt)
            finally:
                self.bb.delta = None

        delta = adversarial_delta(lambda d: score(d, self.prompt.detach()), base, mask, self.oc.eps, self.oc.xi,
                                  self.gen, clean=clean.detach())
        return consistency(lambda d: score(d, self.prompt), clean, delta, weights)

    def clean_pass(self, enc: Any, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.bb.record = []
        try:
            logp = label_logprobs(enc, ids, self.prompt)
            padded, base = self.bb.record[0]
        finally:
            self.bb.record = None
        return logp, base, padded != self.bb.tokenizer.pad_token_id

    def train_step(self, step: int) -> dict[str, Any]:
        """One update of the discriminator and the prompt; the rows come from the seeded stream
        (``step`` only labels the record)."""
        bs = self.pt.batch_size
        si = [self.rng.randrange(len(self.src_rows)) for _ in range(bs)]
        ti = [self.rng.randrange(len(self.tgt_rows)) for _ in range(bs)]
        s_ids, t_ids = [self.ids("src", i) for i in si], [self.ids("tgt", i) for i in ti]
        # discriminator: source 0, target 1
        f_s, f_t = self.features(s_ids), self.features(t_ids)
        logits = self.disc(torch.cat([f_s, f_t]))
        target = torch.cat([torch.zeros(len(si)), torch.ones(len(ti))]).to(logits.device)
        loss_d = F.binary_cross_entropy_with_logits(logits, target)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        with torch.no_grad():
            w = torch.sigmoid(self.disc(torch.cat([f_s, f_t])))
        w_s, w_t = w[: len(si)], w[len(si) :]
        # prompt: source CE + weighted adversarial consistency on both domains
        logp_s, base_s, mask_s = self.clean_pass(self.src_enc, s_ids)
        ce = F.cross_entropy(logp_s.float(), self.y[si].to(logp_s.device))
        reg = ce.new_zeros(())
        if self.oc.lam > 0 and self.oc.eps > 0:
            logp_t, base_t, mask_t = self.clean_pass(self.tgt_enc, t_ids)
            reg = (self.regulariser(self.src_enc, s_ids, logp_s, base_s, mask_s, w_s)
                   + self.regulariser(self.tgt_enc, t_ids, logp_t, base_t, mask_t, w_t))
        loss = ce + self.oc.lam * reg
        if not torch.isfinite(loss):
            raise fail("OPTIMA: non-finite loss (lower the lr or optima_eps)")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        rec = {"loss": loss.item(), "ce": ce.item(), "reg": reg.item(), "disc": loss_d.item(),
               "w_src": float(w_s.mean()), "w_tgt": float(w_t.mean())}
        self.tail = [*self.tail, rec][-10:]
        return {"step": step + 1, **rec}

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.global_step, "prompt": self.prompt.detach().cpu(),
                "disc": {k: v.cpu() for k, v in self.disc.state_dict().items()}, "opt": self.opt.state_dict(),
                "opt_d": self.opt_d.state_dict(), "gen": self.gen.get_state(), "rng": self.rng.getstate(),
                "torch_rng": rng_state(), "tail": self.tail, "config": self._config()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        with torch.no_grad():
            self.prompt.copy_(st["prompt"].to(self.prompt.device))
        self.disc.load_state_dict(st["disc"])
        self.opt.load_state_dict(st["opt"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.gen.set_state(st["gen"])
        self.rng.setstate(st["rng"])
        set_rng_state(st["torch_rng"])
        self.global_step, self.tail = int(st["step"]), [dict(r) for r in st["tail"]]

    def _config(self) -> dict[str, Any]:
        return {"optima": asdict(self.oc), "prompt_tuning": asdict(self.pt), "n_source": len(self.src_rows),
                "n_target": len(self.tgt_rows)}

    def save_checkpoint(self) -> None:
        save_checkpoint(checkpoint_path(self.out), self.state_dict())

    def try_resume(self) -> bool:
        return resume(self, self.out, self._config())

    def fit(self) -> TrainResult:
        """Phase 1 to ``optima_steps`` (resuming from a checkpoint); the last prompt is the result."""
        res = run_steps(self, max_steps=self.oc.steps, checkpoint_every=self.pt.checkpoint_every, out=self.out,
                        desc="optima", progress=self.progress, postfix=lambda rec: {"loss": f"{rec['loss']:.3f}"})
        res.stats.update({k: sum(r[k] for r in self.tail) / len(self.tail) for k in self.tail[0]} if self.tail else {})
        return res


def optima_source(ctx: Context) -> Any:
    from synthpt.data import load_official
    from synthpt.tasks import task_record

    oc = optima_config(ctx)

    def build(src: Any, rows: list[dict[str, Any]], pt_cfg: Any, target: Path) -> dict[str, Any]:
        pool = load_official(ctx.task, "train", ctx.data_dir)
        rng = random.Random(oc.seed)
        unl = rng.sample(pool, min(oc.unlabeled, len(pool)))
        bb = frozen_backbone(ctx.model)
        tr = OptimaTrainer(bb, src, ctx.task, rows, unl, pt_cfg, oc, out_dir=target, progress=ctx.progress)
        res = tr.fit()
        mean = res.stats
        save_source_prompt(ctx, target, tr.prompt, bb, src, len(rows),
                           {"source_task": src.name, "target_task": ctx.task.name, "task_spec": task_record(src),
                            "model": ctx.model},
                           note=f"An OPTIMA transfer source: {oc.steps} steps on {len(rows)} rows of `{src.name}` "
                           f"and {len(unl)} unlabelled `{ctx.task.name}` texts; few-shot prompt tuning on "
                           f"`{ctx.task.name}` starts from it.")
        return {"steps": oc.steps, "n_examples": len(rows), "n_unlabeled": len(unl), "source_task": src.name,
                "final_loss": mean.get("loss"), "last": mean,
                "discriminator_parameters": sum(p.numel() for p in tr.disc.parameters()),
                "resumed_from_step": res.resumed_from}

    return source_prompt(ctx, "optima-adapt", "optima-{src}-{target}-{model}", oc.steps, oc.seed, oc.source_examples,
                         build, target_task=ctx.task.to_dict(), optima=oc.__dict__)


register(TransferMethod("optima", "OPTIMA", "prompt adapted from source data + target unlabeled texts with "
                        "discriminator-weighted adversarial consistency, then few-shot PT", source=optima_source))

__all__ = ["adversarial_delta", "consistency", "kl_rows"]
