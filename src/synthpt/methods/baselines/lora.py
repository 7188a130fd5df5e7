"""LoRA (Hu et al., 2022) through PEFT: the row a user would pick instead of prompt tuning.

Everything but *what is trained* is prompt tuning's (``pt``): the same backbone, few-shot
split, template and verbalizer (the label words' log-probabilities of
:func:`synthpt.core.scoring.label_logprobs`, cross-entropy over them), the same batches
(``BatchPlan("real")``: PT's data order for the seed), batch size (``prompt_tuning.batch_size``),
step budget (``prompt_tuning.max_steps``), linear schedule (``prompt_tuning.warmup_steps``),
dev selection (every ``prompt_tuning.eval_every`` steps, the best weights on the task's first
metric kept) and test subset.  Instead of a soft prompt, rank-``r`` updates ``B·A`` of the
attention projections PEFT targets for the model type (``q_proj``/``v_proj`` on Llama and
Gemma, ``c_attn`` on GPT-2, ``q``/``v`` on T5) are trained; ``B`` starts at zero, so step 0 is
the zero-shot model.  The backbone stays in eval mode (no dropout), as it does for PT.

Options (``options:`` of a config, ``--set options.KEY=V``): ``lora_r`` 8, ``lora_alpha`` 16,
``lora_lr`` 1e-3 (AdamW, no weight decay, gradients clipped at norm 1; PT's learning rate is
tuned for prompt vectors, not for weights), ``lora_targets`` (list of module names; default
PEFT's for the model type).  Trainable parameters: the LoRA matrices only.

The run is a stage ``lora`` (cached by split, backbone, PT knobs and these options, under
``cache/lora/``): it holds the PEFT adapter of the best weights (``PeftModel.from_pretrained(
base, dir)`` loads it), ``metrics.json`` and ``log.jsonl``; a checkpoint every
``prompt_tuning.checkpoint_every`` steps lets a killed run resume.  ``LoraTrainer`` keeps the
trainer contract of :mod:`synthpt.core.training` (its ``fit`` is the shared ``run_steps`` loop).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.core import distributed as dist
from synthpt.core.checkpointing import save_checkpoint
from synthpt.core.classify import evaluate
from synthpt.core.errors import fail
from synthpt.core.io import write_json
from synthpt.core.models import Backbone
from synthpt.core.scoring import Encoder, label_logprobs
from synthpt.core.training import TrainResult, checkpoint_path, resume, run_steps
from synthpt.methods import register
from synthpt.methods.base import Context, Method
from synthpt.methods.baselines.common import count_trainable, option
from synthpt.prompt_tuning.strategies import BatchPlan
from synthpt.prompt_tuning.trainer import lr_lambda
from synthpt.tasks import Task


@dataclass(frozen=True)
class LoraOptions:
    r: int = 8
    alpha: float = 16.0
    lr: float = 1e-3
    targets: tuple[str, ...] | None = None  # None: PEFT's default modules for the model type

    def validate(self) -> None:
        if self.r < 1:
            raise fail(f"options.lora_r must be at least 1, got {self.r}")
        if not 0 < self.lr < math.inf or not 0 < self.alpha < math.inf:
            raise fail(f"options.lora_lr and options.lora_alpha must be finite numbers > 0, got {self.lr}, {self.alpha}")


def lora_options(ctx: Context) -> LoraOptions:
    targets = option(ctx, "lora_targets", None)
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    opts = LoraOptions(r=int(option(ctx, "lora_r", 8)), alpha=float(option(ctx, "lora_alpha", 16.0)),
                       lr=float(option(ctx, "lora_lr", 1e-3)), targets=tuple(targets) if targets else None)
    opts.validate()
    return opts


class LoraTrainer:
    """LoRA weights injected into ``bb.model`` (in place), trained on PT's batches and scoring."""

    def __init__(self, task: Task, bb: Backbone, pt: Any, opts: LoraOptions, train: list[dict], dev: list[dict],
                 out: Path | None = None, progress: bool = True) -> None:
        from peft import LoraConfig, TaskType, get_peft_model

        pt.validate()
        self.task, self.bb, self.pt, self.opts = task, bb, pt, opts
        self.train, self.dev, self.out, self.progress = train, dev, out, progress
        self.encoder = Encoder(task, bb, pt.max_length)
        cfg = LoraConfig(r=opts.r, lora_alpha=opts.alpha, lora_dropout=0.0, bias="none",
                         target_modules=list(opts.targets) if opts.targets else None,
                         fan_in_fan_out=getattr(bb.model.config, "model_type", "") == "gpt2",  # Conv1D: (in, out)
                         task_type=TaskType.SEQ_2_SEQ_LM if bb.is_seq2seq else TaskType.CAUSAL_LM)
        with torch.random.fork_rng(devices=[]):  # A's initialisation follows the seed, not the caller's RNG
            torch.manual_seed(pt.seed)
            try:
                self.peft = get_peft_model(bb.model, cfg)  # injects into bb.model; the wrapper saves adapters
            except ValueError as e:
                raise fail(f"LoRA on {bb.name_or_path}: {e} (set options.lora_targets)") from None
        self.bb.model.eval()
        self.params = [p for p in bb.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=opts.lr, weight_decay=0.0)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(pt))  # PT's linear warm-up and decay
        self.plan = BatchPlan("real", len(train), 0, pt.batch_size, pt.batch_size, pt.max_steps, pt.seed)
        self.labels = [task.label_index(e["label"]) for e in train]
        self._ids: dict[int, list[int]] = {}
        self.global_step = 0
        self.best_score, self.best_step, self.best_dev = -math.inf, -1, {}
        self.best_state = self.lora_state()

    @property
    def trainable_parameters(self) -> int:
        return count_trainable(self.bb.model)

    def lora_state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(self.peft).items()}

    def load_lora_state(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.peft, state)

    def _context_ids(self, i: int) -> list[int]:
        if i not in self._ids:
            self._ids[i] = self.encoder.encode(self.train[i])
        return self._ids[i]

    # ---- the contract ---------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, Any]:
        rows = [r.index for r in self.plan.rows(step)]
        scores = label_logprobs(self.encoder, [self._context_ids(i) for i in rows])  # (B, L)
        y = torch.tensor([self.labels[i] for i in rows], device=scores.device)
        loss = F.cross_entropy(scores, y)
        if not torch.isfinite(loss):
            raise fail(f"{self.task.name}: non-finite LoRA loss at step {step + 1} (lower options.lora_lr)")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        lr = self.sched.get_last_lr()[0]
        self.opt.step()
        self.sched.step()
        return {"step": step + 1, "loss": loss.item(), "lr": lr}

    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        return evaluate(self.task, self.bb, rows, None, self.pt.eval_batch_size, encoder=self.encoder)

    def _maybe_keep_best(self) -> None:
        if not self.dev:
            self.best_state, self.best_step = self.lora_state(), self.global_step
            return
        m = self.evaluate(self.dev)
        if m[self.task.metrics[0]] > self.best_score:
            self.best_score, self.best_step, self.best_dev = m[self.task.metrics[0]], self.global_step, m
            self.best_state = self.lora_state()

    def _config(self) -> dict[str, Any]:
        return {"prompt_tuning": asdict(self.pt), "lora": asdict(self.opts)}

    def state_dict(self) -> dict[str, Any]:
        return {"global_step": self.global_step, "lora": self.lora_state(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "best_score": self.best_score, "best_step": self.best_step,
                "best_dev": self.best_dev, "best_state": self.best_state, "config": self._config()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.load_lora_state(st["lora"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.global_step, self.best_score, self.best_step = st["global_step"], st["best_score"], st["best_step"]
        self.best_dev, self.best_state = dict(st["best_dev"]), st["best_state"]

    def save_checkpoint(self) -> None:
        if self.out is None or not dist.is_main():  # state_dict() copies tensors to CPU: only for the writer
            return
        save_checkpoint(checkpoint_path(self.out), self.state_dict())

    def try_resume(self) -> bool:
        return resume(self, self.out, self._config())

    def _after_step(self, rec: dict[str, Any]) -> None:
        """Dev selection every ``eval_every`` steps and at the last (``run_steps``' ``on_step``)."""
        if self.global_step % self.pt.eval_every == 0 or self.global_step == self.pt.max_steps:
            self._maybe_keep_best()
            rec["dev_best"] = self.best_score

    def fit(self) -> TrainResult:
        """Train to ``max_steps`` (resuming a checkpoint), then load the best weights on dev."""
        res = run_steps(self, max_steps=self.pt.max_steps, checkpoint_every=self.pt.checkpoint_every, out=self.out,
                        desc=f"lora {self.task.name}", progress=self.progress, on_step=self._after_step,
                        postfix=lambda rec: {"loss": f"{rec['loss']:.3f}"})
        self.load_lora_state(self.best_state)
        res.best_step, res.dev_metrics = self.best_step, self.best_dev
        return res


def run_lora(ctx: Context, target: Path, pt: Any, opts: LoraOptions) -> dict[str, Any]:
    """Train (or resume) LoRA on the cell's split, evaluate the best weights on the test subset, save."""
    from synthpt.core.models import load_backbone
    from synthpt.methods.baselines.common import splits

    parts = splits(ctx)
    target.mkdir(parents=True, exist_ok=True)
    bb = load_backbone(ctx.model, device=dist.device())  # its own copy: LoRA layers go into it
    t0 = time.perf_counter()
    trainer = LoraTrainer(ctx.task, bb, pt, opts, parts["train"], parts["dev"], out=target, progress=ctx.progress)
    result = trainer.fit()
    train_s = time.perf_counter() - t0
    test = evaluate(ctx.task, bb, parts["test"], None, pt.eval_batch_size, progress=ctx.progress, desc="test",
                    encoder=trainer.encoder)
    metrics = {"task": ctx.task.name, "test": test, "dev": result.dev_metrics, "best_step": result.best_step,
               "steps": pt.max_steps, "n_train": len(parts["train"]),
               "trainable_parameters": trainer.trainable_parameters, "train_seconds": round(train_s, 2),
               "resumed_from_step": result.resumed_from, "lora": asdict(opts)}
    if dist.is_main():
        trainer.peft.save_pretrained(str(target))
        write_json(target / "metrics.json", metrics)
        (target / "checkpoint.pt").unlink(missing_ok=True)
    dist.barrier()
    return metrics


@dataclass
class LoraMethod(Method):
    def run(self, ctx: Context) -> dict[str, Any]:
        pt = ctx.prompt_tuning_config(strategy="real", gradient_surgery=False)
        opts = lora_options(ctx)
        key_cfg = {"split": ctx.split.result["fingerprint"], "task": ctx.task.to_dict(), "model": ctx.model,
                   "prompt_tuning": asdict(pt), "lora": asdict(opts), "max_eval": ctx.max_eval}
        res = ctx.cached("lora", f"{ctx.task.name}-lora-s{ctx.seed}", key_cfg,
                         lambda target, restart: run_lora(ctx, target, pt, opts))
        return dict(res.result)


register(LoraMethod("lora", "LoRA", "PEFT's LoRA (rank options.lora_r on the attention projections) with PT's "
                                    "data, verbalizer, steps and dev selection"))
