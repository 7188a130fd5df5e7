"""Full fine-tuning baselines: FT, Prompt-based FT (LM-BFF) and PFT + soft prompt.

All three update every weight of the backbone, train on the cell's few-shot train set and
keep the weights with the best few-shot dev score (the task's first metric), evaluated every
``ft_eval_every`` steps; then score the fixed test subset.

- **FT** (``ft``): ``AutoModelForSequenceClassification`` from the backbone folder (T5 gets
  ``T5ForSequenceClassification``, GPT-2 ``GPT2ForSequenceClassification``) with a new
  classification head; the input is the task's text fields as one segment, or two segments
  for pair tasks (the tokenizer's own pair format), truncated longest-first to
  ``prompt_tuning.max_length``.
- **Prompt-based FT** (``pft``): LM-BFF: the task's template and verbalizer, cross-entropy over
  the label words' summed log-probabilities (the scoring of :func:`label_logprobs`), with
  gradients into all weights.
- **PFT + soft prompt** (``pft+sp``): the same with a trainable soft prompt of
  ``prompt_tuning.prompt_length`` vectors before the input (vocabulary-initialised, its own
  learning rate ``pft_prompt_lr``, default ``prompt_tuning.lr``).

Options (LM-BFF defaults): ``ft_lr`` 1e-5, ``ft_steps`` 1000, ``ft_batch_size`` 8,
``ft_eval_every`` 100, ``ft_weight_decay`` 0.01, ``ft_checkpoint_every`` (default
``ft_eval_every``; a checkpoint holds the weights, the best weights so far and AdamW's two
moments: up to four times the model).  Tiny models need a larger ``ft_lr``.
Trainable parameters: all weights (tied embeddings once), plus the head (FT) or the prompt.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.core import distributed as dist
from synthpt.core.checkpointing import rng_state, save_checkpoint, set_rng_state
from synthpt.core.classify import compute_metrics, evaluate
from synthpt.core.errors import fail
from synthpt.core.models import load_backbone, resolve_model
from synthpt.core.scoring import Encoder, label_logprobs
from synthpt.core.soft_prompt import init_from_vocab
from synthpt.core.training import TrainResult, checkpoint_path, resume, run_steps
from synthpt.methods import register
from synthpt.methods.base import Context, Method
from synthpt.methods.baselines.common import count_trainable, option, splits


def ft_options(ctx: Context) -> dict[str, Any]:
    cfg = ctx.prompt_tuning_config()
    return {"lr": float(option(ctx, "ft_lr", 1e-5)), "steps": int(option(ctx, "ft_steps", 1000)),
            "batch_size": int(option(ctx, "ft_batch_size", 8)), "eval_every": int(option(ctx, "ft_eval_every", 100)),
            "weight_decay": float(option(ctx, "ft_weight_decay", 0.01)), "max_length": cfg.max_length,
            "eval_batch_size": cfg.eval_batch_size, "prompt_length": cfg.prompt_length,
            "prompt_lr": float(option(ctx, "pft_prompt_lr", cfg.lr)),
            "checkpoint_every": int(option(ctx, "ft_checkpoint_every", option(ctx, "ft_eval_every", 100)))}


def batches(n: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """Index batches for ``steps`` steps: epochs of seeded shuffles of range(n)."""
    rng = random.Random(seed)
    order: list[int] = []
    out = []
    for _ in range(steps):
        if len(order) < batch_size:
            perm = list(range(n))
            rng.shuffle(perm)
            order += perm
        out.append(order[:batch_size])
        order = order[batch_size:]
    return out


class FineTuneTrainer:
    """Trains every weight of ``net`` (and its soft prompt, if it has one) on ``train`` and keeps the
    weights with the best dev score, evaluated every ``eval_every`` steps.

    ``net`` is a :class:`ClassifierNet` (FT) or a :class:`PromptNet` (PFT, PFT + soft prompt): the
    model being tuned, how it scores rows (``logits``) and how it is evaluated (``evaluate``).
    Keeps the trainer contract of :mod:`synthpt.core.training`; the checkpoint holds the global
    RNG state too, since dropout draws from it.  Under several processes every process runs the
    whole batch (replicated: the same result as one process, no speed-up)."""

    def __init__(self, task: Any, net: ClassifierNet | PromptNet, opts: dict[str, Any], seed: int,
                 train: list[dict], dev: list[dict], out_dir: str | Path | None = None, progress: bool = False) -> None:
        self.task, self.net, self.opts, self.seed = task, net, opts, seed
        self.train, self.dev = train, dev
        self.out = Path(out_dir) if out_dir else None
        self.progress = progress
        self.params = [{"params": [p for p in net.model.parameters() if p.requires_grad], "lr": opts["lr"]}]
        if net.prompt is not None:
            self.params.append({"params": [net.prompt], "lr": opts["prompt_lr"], "weight_decay": 1e-5})
        self.opt = torch.optim.AdamW(self.params, lr=opts["lr"], weight_decay=opts["weight_decay"])
        steps = opts["steps"]
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: max(0.0, (steps - s) / steps))
        self.plan = batches(len(train), opts["batch_size"], steps, seed)
        self.y = torch.tensor([task.label_index(e["label"]) for e in train])
        self.global_step = 0
        self.best, self.best_step, self.best_dev = -math.inf, 0, {}
        self.best_state: dict[str, Any] | None = None
        self.losses: list[float] = []  # the last 10 (the reported final loss)

    def train_step(self, step: int) -> dict[str, Any]:
        idx = self.plan[step]
        self.net.model.train()
        logits = self.net.logits([self.train[i] for i in idx])  # (B, L)
        loss = F.cross_entropy(logits, self.y[idx].to(logits.device))
        if not torch.isfinite(loss):
            raise fail(f"{self.task.name}: non-finite loss at fine-tuning step {step + 1} (lower ft_lr)")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in self.params for p in g["params"]], 1.0)
        self.opt.step()
        self.sched.step()
        self.losses = [*self.losses, loss.item()][-10:]
        return {"step": step + 1, "loss": self.losses[-1]}

    def _maybe_keep_best(self, rec: dict[str, Any]) -> None:
        if self.global_step % self.opts["eval_every"] and self.global_step != self.opts["steps"]:
            return
        m = self.net.evaluate(self.dev)
        if m[self.task.metrics[0]] > self.best:
            self.best, self.best_step, self.best_dev = m[self.task.metrics[0]], self.global_step, m
            self.best_state = self.net.snapshot()
        rec["dev_best"] = self.best

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.global_step, "net": self.net.snapshot(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(), "best": self.best, "best_step": self.best_step,
                "best_dev": self.best_dev, "best_state": self.best_state, "losses": self.losses,
                "rng": rng_state(), "config": self._config()}

    def load_state_dict(self, st: dict[str, Any]) -> None:
        self.net.restore(st["net"])
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.global_step, self.best, self.best_step = st["step"], st["best"], st["best_step"]
        self.best_dev, self.best_state, self.losses = dict(st["best_dev"]), st["best_state"], list(st["losses"])
        set_rng_state(st["rng"])

    def _config(self) -> dict[str, Any]:
        return {"opts": self.opts, "seed": self.seed, "n_train": len(self.train), "n_dev": len(self.dev)}

    def save_checkpoint(self) -> None:
        if self.out is None or not dist.is_main():  # state_dict() copies every weight to CPU: only for the writer
            return
        save_checkpoint(checkpoint_path(self.out), self.state_dict())

    def try_resume(self) -> bool:
        return resume(self, self.out, self._config())

    def fit(self) -> TrainResult:
        """Train to ``steps`` (resuming from a checkpoint), then load the best weights back into ``net``."""
        res = run_steps(self, max_steps=self.opts["steps"], checkpoint_every=self.opts["checkpoint_every"],
                        out=self.out, desc=f"fine-tune {self.task.name}", progress=self.progress,
                        on_step=self._maybe_keep_best, postfix=lambda rec: {"loss": f"{rec['loss']:.3f}"})
        if self.best_state is not None:
            self.net.restore(self.best_state)
        res.best_step, res.dev_metrics = self.best_step, self.best_dev
        res.stats["final_loss"] = sum(self.losses) / max(1, len(self.losses))
        return res


class ClassifierNet:
    """FT: the backbone as ``AutoModelForSequenceClassification`` with a new head (seeded)."""

    def __init__(self, task: Any, model: str, seed: int, opts: dict[str, Any]) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.task, self.opts, self.prompt = task, opts, None
        path = resolve_model(model)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialised head" is expected here
        try:
            torch.manual_seed(seed)  # the head's initialisation follows the seed
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=task.num_labels)
        finally:
            hf_logging.set_verbosity(verbosity)
        self.tok = AutoTokenizer.from_pretrained(path)
        if self.tok.pad_token_id is None:
            self.tok.pad_token = self.tok.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tok.pad_token_id
        self.model.to(dist.device())
        for p in self.model.parameters():
            p.requires_grad_(True)

    def _inputs(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        f = self.task.fields
        a = [str(r[f[0]]) for r in rows]
        b = [str(r[f[1]]) for r in rows] if len(f) > 1 else None
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # slow tokenizers warn on every truncated pair batch
        try:
            enc = self.tok(a, b, padding=True, truncation="longest_first", max_length=self.opts["max_length"],
                           return_tensors="pt")
        finally:
            hf_logging.set_verbosity(verbosity)
        dev = next(self.model.parameters()).device
        return {k: v.to(dev) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def logits(self, rows: list[dict]) -> torch.Tensor:
        return self.model(**self._inputs(rows)).logits.float()  # (B, L)

    @torch.inference_mode()
    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        self.model.eval()
        preds: list[int] = []
        bs = self.opts["eval_batch_size"]
        for i in range(0, len(rows), bs):
            preds += self.logits(rows[i : i + bs]).argmax(-1).tolist()
        return compute_metrics(self.task, [self.task.label_index(r["label"]) for r in rows], preds)

    def snapshot(self) -> dict[str, Any]:
        return _snapshot(self.model, self.prompt)

    def restore(self, state: dict[str, Any]) -> None:
        _restore(self.model, self.prompt, state)


class PromptNet:
    """PFT (LM-BFF): template + verbalizer with all weights trainable (and optionally a soft prompt)."""

    def __init__(self, task: Any, model: str, seed: int, opts: dict[str, Any], soft_prompt: bool) -> None:
        self.task, self.opts = task, opts
        torch.manual_seed(seed)
        self.bb = load_backbone(model, freeze=False, device=dist.device())
        for p in self.bb.model.parameters():
            p.requires_grad_(True)
        self.model = self.bb.model
        n = opts["prompt_length"] if soft_prompt else 0
        self.prompt = None
        if soft_prompt:
            self.prompt = torch.nn.Parameter(init_from_vocab(self.bb, n, seed).to(self.bb.device))
        self.encoder = Encoder(task, self.bb, opts["max_length"], n)
        self._ids: dict[int, list[int]] = {}

    def _context_ids(self, rows: list[dict]) -> list[list[int]]:
        out = []
        for r in rows:
            if id(r) not in self._ids:
                self._ids[id(r)] = self.encoder.encode(r)
            out.append(self._ids[id(r)])
        return out

    def logits(self, rows: list[dict]) -> torch.Tensor:
        return label_logprobs(self.encoder, self._context_ids(rows), self.prompt)  # (B, L)

    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        self.model.eval()
        p = None if self.prompt is None else self.prompt.detach()
        return evaluate(self.task, self.bb, rows, p, self.opts["eval_batch_size"], encoder=self.encoder)

    def snapshot(self) -> dict[str, Any]:
        return _snapshot(self.model, self.prompt)

    def restore(self, state: dict[str, Any]) -> None:
        _restore(self.model, self.prompt, state)


def _snapshot(model: torch.nn.Module, prompt: torch.Tensor | None) -> dict[str, Any]:
    """The weights (and prompt) as CPU copies: the best-so-far kept in memory and in checkpoints."""
    return {"model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "prompt": None if prompt is None else prompt.detach().cpu().clone()}


def _restore(model: torch.nn.Module, prompt: torch.Tensor | None, state: dict[str, Any]) -> None:
    model.load_state_dict(state["model"])
    if prompt is not None:
        with torch.no_grad():
            prompt.copy_(state["prompt"].to(prompt.device))


@dataclass
class FineTuneMethod(Method):
    """``kind``: ``classifier`` (FT), ``prompt`` (LM-BFF) or ``prompt+soft`` (PFT + soft prompt).

    Training is a cached stage (``finetune``): its folder holds ``log.jsonl`` and, while it runs,
    ``checkpoint.pt``, so a killed cell resumes where it stopped."""

    kind: str = "classifier"

    def net(self, ctx: Context, opts: dict[str, Any]) -> ClassifierNet | PromptNet:
        if self.kind == "classifier":
            return ClassifierNet(ctx.task, ctx.model, ctx.seed, opts)
        return PromptNet(ctx.task, ctx.model, ctx.seed, opts, soft_prompt=self.kind == "prompt+soft")

    def run(self, ctx: Context) -> dict[str, Any]:
        opts = ft_options(ctx)
        key_cfg = {"split": ctx.split.result["fingerprint"], "task": ctx.task.to_dict(), "model": ctx.model,
                   "kind": self.kind, "options": opts, "seed": ctx.seed, "max_eval": ctx.max_eval}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            return self.train(ctx, opts, target)

        res = ctx.cached("finetune", f"{ctx.task.name}-{self.name}-s{ctx.seed}", key_cfg, build)
        return dict(res.result)

    def train(self, ctx: Context, opts: dict[str, Any], out: Path) -> dict[str, Any]:
        """Fine-tune (resuming from ``out/checkpoint.pt``), keep the best on dev, score the test subset."""
        parts = splits(ctx)
        net = self.net(ctx, opts)
        n_params = count_trainable(net.model) + (net.prompt.numel() if net.prompt is not None else 0)
        trainer = FineTuneTrainer(ctx.task, net, opts, ctx.seed, parts["train"], parts["dev"], out_dir=out,
                                  progress=ctx.progress)
        t0 = time.perf_counter()
        result = trainer.fit()
        train_s = round(time.perf_counter() - t0, 2)
        test = net.evaluate(parts["test"])
        if dist.is_main():
            (out / "checkpoint.pt").unlink(missing_ok=True)
        dist.barrier()
        return {"task": ctx.task.name, "test": test, "best_step": result.best_step, "dev": result.dev_metrics,
                "train_seconds": train_s, "steps": opts["steps"], "final_loss": result.stats["final_loss"],
                "resumed_from_step": result.resumed_from, "processes": dist.world_size(), "n_train": len(parts["train"]),
                "trainable_parameters": int(n_params), "kind": self.kind}


register(FineTuneMethod("ft", "FT", "all weights + a classification head on the few-shot data", kind="classifier"))
register(FineTuneMethod("pft", "Prompt-based FT", "LM-BFF: template + verbalizer, all weights trained", kind="prompt"))
register(FineTuneMethod("pft+sp", "PFT + soft prompt", "prompt-based FT with a trainable soft prompt",
                        kind="prompt+soft"))
