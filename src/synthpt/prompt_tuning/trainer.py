"""The prompt-tuning loop, readable top to bottom.

One step:
1. the strategy's global batch for this step (a pure function of seed and step);
2. this process's slice of it, scored in ONE forward pass with two views of the prompt,
   one read by the real rows and one by the synthetic rows (on a causal LM each view is
   run once and shared as a KV-cache prefix);
3. ONE backward to those views: the first one's gradient is δ_real, the second's δ_syn
   (no second forward/backward as the naive way needs);
4. all-reduce across processes, gradient surgery on the global δ's, an AdamW step.
Dev evaluation keeps the best prompt; checkpoints make any kill resumable bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.core import distributed as dist
from synthpt.core.checkpointing import save_checkpoint
from synthpt.core.classify import evaluate
from synthpt.core.errors import fail
from synthpt.core.knobs import choose, knob
from synthpt.core.models import Backbone
from synthpt.core.scoring import Encoder, label_logprobs
from synthpt.core.soft_prompt import init_from_vocab
from synthpt.core.training import TrainResult, checkpoint_path, resume, run_steps
from synthpt.prompt_tuning.steps import data_steps_config
from synthpt.prompt_tuning.strategies import BatchPlan, Strategy
from synthpt.prompt_tuning.surgery import combine
from synthpt.tasks import Task


@dataclass
class PromptTrainerConfig:
    """Every knob of Stage 3.  Defaults follow prompt-tuning practice for T5-size models."""

    strategy: Strategy = knob("real", 'data strategy: which real and synthetic rows make each batch')
    gradient_surgery: bool = knob(
        False, 'project the synthetic gradient off the real one when they conflict (paired only)')
    epsilon: float = knob(1.0, 'weight of the synthetic gradient in paired steps')
    label_smoothing: float = knob(0.0, "label smoothing of the synthetic rows' targets (Real+Syn w/ LS)")
    prompt_length: int = knob(100, 'number of soft prompt vectors')
    lr: float = knob(0.3, 'AdamW learning rate of the prompt')
    weight_decay: float = knob(1e-5, 'AdamW weight decay')
    warmup_steps: int = knob(0, 'linear warm-up steps (then linear decay to 0)')
    batch_size: int = knob(8, 'global batch size (the real rows of a paired step)')
    syn_batch_size: int | None = knob(None, 'synthetic rows of a paired step (default: --batch-size)')
    max_steps: int = knob(500, 'training steps (with --syn-epochs and synthetic rows: replaced by what syn_epochs asks for)')
    syn_epochs: float | None = knob(
        None,
        'let the steps follow the data: passes over the synthetic rows; with synthetic rows, max_steps becomes '
        'ceil(syn_epochs * n_syn / synthetic rows per step) (paired: syn_batch_size; syn and the phased strategies: '
        'batch_size in their synthetic phase; mixed: its share of batch_size), at most --max-steps-cap. Rows '
        'counted after --max-synthetic and the zero-shot filter. Off by default: a fixed max_steps',
    )
    max_steps_cap: int | None = knob(None, 'upper bound on the steps --syn-epochs asks for (default: none)')
    eval_every: int = knob(50, 'evaluate on the few-shot dev set every N steps (the best prompt is kept)')
    checkpoint_every: int = knob(50, 'write a resumable checkpoint every N steps')
    max_length: int = knob(256, 'maximum input tokens (text fields are truncated, never the template)')
    eval_batch_size: int = knob(32, 'batch size for evaluation')
    phase_split: float = knob(0.5, 'real-then-syn / syn-then-real: fraction of steps in the first phase')
    max_synthetic: int | None = knob(None, 'use at most this many synthetic examples (balanced over labels)')
    balance_synthetic: bool = knob(
        False,
        'deal synthetic batches label by label (each batch holds every label about '
        'equally) instead of at random',
    )
    zero_shot_filter: float | None = knob(
        None,
        "drop synthetic rows whose label the backbone's zero-shot classifier "
        'contradicts, when its accuracy on the few-shot dev set is at least this (e.g. 0.75; off by default)',
    )
    seed: int = knob(42, 'seed of the prompt initialisation and the data order')
    skip_nonfinite: bool = knob(False, 'skip a batch whose loss is NaN/inf instead of stopping')

    def validate(self) -> None:
        self.strategy = choose(Strategy, self.strategy, "strategy")  # a plain string, also when given a member
        if not 0 <= self.epsilon < math.inf:  # also refuses NaN
            raise fail(f"--epsilon must be >= 0, got {self.epsilon}")
        if not 0 <= self.label_smoothing < 1:
            raise fail(f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.prompt_length < 1:
            raise fail(f"--prompt-length must be at least 1, got {self.prompt_length}")
        for name in ("batch_size", "max_steps", "eval_every", "checkpoint_every", "max_length"):
            if getattr(self, name) < 1:
                raise fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise fail(f"--lr must be a finite number > 0, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf or self.warmup_steps < 0:
            raise fail(f"--weight-decay and --warmup-steps must be >= 0, got {self.weight_decay}, {self.warmup_steps}")
        if self.syn_epochs is not None and not 0 < self.syn_epochs < math.inf:
            raise fail(f"--syn-epochs must be a finite number > 0, got {self.syn_epochs}")
        if self.max_steps_cap is not None and self.max_steps_cap < 1:
            raise fail(f"--max-steps-cap must be at least 1, got {self.max_steps_cap}")
        if self.syn_batch_size is not None and self.syn_batch_size < 1:
            raise fail(f"--syn-batch-size must be at least 1, got {self.syn_batch_size}")
        if self.eval_batch_size < 1:
            raise fail(f"--eval-batch-size must be at least 1, got {self.eval_batch_size}")
        if not 0 < self.phase_split < 1:
            raise fail(f"--phase-split must be in (0, 1), got {self.phase_split}")
        if self.max_synthetic is not None and self.max_synthetic < 1:
            raise fail(f"--max-synthetic must be at least 1, got {self.max_synthetic}")
        if self.zero_shot_filter is not None and not 0 <= self.zero_shot_filter <= 1:
            raise fail(f"--zero-shot-filter is a dev accuracy in [0, 1], got {self.zero_shot_filter}")
        if self.gradient_surgery and self.strategy != "paired":
            raise fail("--gradient-surgery needs --strategy paired (a real and a synthetic batch per step)")


def lr_lambda(cfg: PromptTrainerConfig):
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return max(0.0, (cfg.max_steps - step) / max(1, cfg.max_steps - cfg.warmup_steps))

    return f



class PromptTrainer:
    """Trains one soft prompt on real (+ synthetic) examples of a task."""

    def __init__(self, task: Task, backbone: Backbone, cfg: PromptTrainerConfig, train: list[dict],
                 dev: list[dict], synthetic: list[dict] | None = None, init_prompt: torch.Tensor | None = None,
                 out_dir: str | Path | None = None, progress: bool = True) -> None:
        cfg.validate()
        cfg = data_steps_config(cfg, len(train), len(synthetic or []))  # syn_epochs: the steps follow the data
        self.task, self.bb, self.cfg = task, backbone, cfg
        self.train, self.dev, self.syn = train, dev, synthetic or []
        self.out = Path(out_dir) if out_dir else None
        self.progress = progress
        self.encoder = Encoder(task, backbone, cfg.max_length, cfg.prompt_length)
        if init_prompt is None:
            init_prompt = init_from_vocab(backbone, cfg.prompt_length, cfg.seed)
        if init_prompt.shape[0] != cfg.prompt_length:
            raise fail(f"initial prompt has {init_prompt.shape[0]} tokens, config asks for {cfg.prompt_length}")
        self.prompt = torch.nn.Parameter(init_prompt.detach().clone().float().to(backbone.device))
        self.opt = torch.optim.AdamW([self.prompt], lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg))
        self.labels = {"real": [task.label_index(e["label"]) for e in train],
                       "syn": [task.label_index(e["label"]) for e in self.syn]}
        self.plan = BatchPlan(cfg.strategy, len(train), len(self.syn), cfg.batch_size,
                              cfg.syn_batch_size or cfg.batch_size, cfg.max_steps, cfg.seed, cfg.phase_split,
                              syn_labels=self.labels["syn"] if cfg.balance_synthetic and self.syn else None)
        self._ids: dict[tuple[str, int], list[int]] = {}
        self.global_step = 0
        self.best_score, self.best_step = -math.inf, -1
        self.best_prompt = self.prompt.detach().clone()
        self.best_dev: dict[str, float] = {}
        self.conflicts = 0
        self.paired_steps = 0

    # ---- inputs -------------------------------------------------------------------------
    def _context_ids(self, source: str, i: int) -> list[int]:
        key = (source, i)
        if key not in self._ids:  # encode lazily: a 16k synthetic set is mostly never needed whole
            self._ids[key] = self.encoder.encode((self.train if source == "real" else self.syn)[i])
        return self._ids[key]

    # ---- one step -----------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, Any]:
        cfg = self.cfg
        rows = self.plan.rows(step)
        n_real = sum(r.source == "real" for r in rows)
        n_syn = len(rows) - n_real
        mine = dist.shard(rows)
        paired = cfg.strategy == "paired"
        dev = self.bb.device
        is_syn = torch.tensor([r.source == "syn" for r in mine], device=dev)  # (B,) this process's rows
        y = torch.tensor([self.labels[r.source][r.index] for r in mine], device=dev)  # (B,) label indices
        views, scores = self.score_rows(mine)  # (V, n, d) prompt views (real, syn), (B, L) label log-probs
        ce = F.cross_entropy(scores, y, reduction="none")  # (B,)
        if cfg.label_smoothing > 0 and n_syn:
            ce_ls = F.cross_entropy(scores, y, reduction="none", label_smoothing=cfg.label_smoothing)
            ce = torch.where(is_syn, ce_ls, ce)
        if paired:
            w = torch.where(is_syn, 1.0 / max(n_syn, 1), 1.0 / max(n_real, 1))
        else:
            w = torch.full_like(ce, 1.0 / len(rows))
        loss = (ce * w).sum()
        (g_views,) = torch.autograd.grad(loss, views)  # (V, n, d): δ of each view
        # [δ_real, δ_syn] of this process's rows; float64 across processes, so the result hardly
        # depends on how rows are split among them
        parts = g_views.double()
        # masked sums, not ce * mask: a NaN in one kind of row must not leak into the other's loss
        stats = torch.stack([ce[~is_syn].sum(), ce[is_syn].sum()]).detach().double()  # (2,)
        parts = dist.all_reduce_sum(parts)
        stats = dist.all_reduce_sum(stats)
        loss_real = float(stats[0]) / max(n_real, 1)
        loss_syn = float(stats[1]) / max(n_syn, 1)
        total = loss_real + loss_syn if paired else float(stats.sum()) / len(rows)
        record: dict[str, Any] = {"step": step + 1, "loss": total, "lr": self.sched.get_last_lr()[0]}
        if n_real:
            record["loss_real"] = loss_real
        if n_syn:
            record["loss_syn"] = loss_syn
        if not math.isfinite(total) or not torch.isfinite(parts).all():
            term = "loss_syn" if not math.isfinite(loss_syn) else "loss_real" if not math.isfinite(loss_real) else "gradient"
            if cfg.skip_nonfinite:
                record["skipped"] = f"non-finite {term}"
                return record
            raise fail(f"non-finite {term} at step {step + 1} (use --skip-nonfinite to skip such batches)")
        if paired:
            res = combine(parts[0], parts[1], cfg.epsilon, cfg.gradient_surgery)
            grad = res.update
            self.paired_steps += 1
            self.conflicts += int(res.conflict)
            record.update(cosine=res.cosine, conflict=res.conflict)
        else:
            grad = parts.sum(0)
        self.prompt.grad = grad.to(self.prompt.dtype)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        return record

    def score_rows(self, rows: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompt as two views (real, synthetic) and the rows' (B, L) label log-probabilities:
        the gradient of a loss on the scores w.r.t. the views is [δ_real, δ_syn]."""
        views = self.prompt.unsqueeze(0).expand(2, -1, -1)
        which = torch.tensor([int(r.source == "syn") for r in rows], device=self.bb.device)
        return views, label_logprobs(self.encoder, [self._context_ids(r.source, r.index) for r in rows], views, which)

    # ---- dev selection, checkpoints --------------------------------------------------
    def evaluate_dev(self) -> dict[str, float]:
        return evaluate(self.task, self.bb, self.dev, self.prompt.detach(), self.cfg.eval_batch_size,
                        encoder=self.encoder)

    def _maybe_keep_best(self) -> None:
        if not self.dev:
            self.best_prompt, self.best_step = self.prompt.detach().clone(), self.global_step
            return
        m = self.evaluate_dev()
        score = m[self.task.metrics[0]]
        if score > self.best_score:
            self.best_score, self.best_step, self.best_dev = score, self.global_step, m
            self.best_prompt = self.prompt.detach().clone()

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.global_step, "prompt": self.prompt.detach().cpu(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "best_score": self.best_score, "best_step": self.best_step,
            "best_prompt": self.best_prompt.cpu(), "best_dev": self.best_dev, "conflicts": self.conflicts,
            "paired_steps": self.paired_steps, "config": asdict(self.cfg),
        }

    def load_state_dict(self, st: dict[str, Any]) -> None:
        with torch.no_grad():
            self.prompt.copy_(st["prompt"].to(self.prompt.device))
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.global_step, self.best_score, self.best_step = st["step"], st["best_score"], st["best_step"]
        self.best_prompt = st["best_prompt"].to(self.prompt.device)
        self.best_dev = dict(st["best_dev"])
        self.conflicts, self.paired_steps = st["conflicts"], st["paired_steps"]

    def save_checkpoint(self) -> None:
        save_checkpoint(checkpoint_path(self.out), self.state_dict())

    def try_resume(self) -> bool:
        return resume(self, self.out, asdict(self.cfg))

    # ---- the loop ----------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Steps to ``max_steps`` (resuming from a checkpoint), evaluating on dev every ``eval_every``."""
        cfg = self.cfg

        def on_step(rec: dict[str, Any]) -> None:
            if self.global_step % cfg.eval_every == 0 or self.global_step == cfg.max_steps:
                self._maybe_keep_best()
                rec["dev_best"] = self.best_score

        def postfix(rec: dict[str, Any]) -> dict[str, str]:
            post = {"loss": f"{rec['loss']:.3f}"}
            if self.paired_steps:
                post["conflict"] = f"{self.conflicts / self.paired_steps:.2f}"
            return post

        res = run_steps(self, max_steps=cfg.max_steps, checkpoint_every=cfg.checkpoint_every, out=self.out,
                        desc=f"prompt-tune {self.task.name} [{cfg.strategy}]", progress=self.progress,
                        on_step=on_step, postfix=postfix)
        res.best_step, res.dev_metrics = self.best_step, self.best_dev
        res.stats["conflict_rate"] = self.conflicts / self.paired_steps if self.paired_steps else 0.0
        return res
