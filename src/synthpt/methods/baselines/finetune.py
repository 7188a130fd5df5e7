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
``ft_eval_every`` 100, ``ft_weight_decay`` 0.01.  Tiny models need a larger ``ft_lr``.
Trainable parameters: all weights (tied embeddings once), plus the head (FT) or the prompt.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.methods import register
from synthpt.methods.base import Context, Method
from synthpt.methods.baselines.common import count_trainable, option, splits


def ft_options(ctx: Context) -> dict[str, Any]:
    cfg = ctx.prompt_tuning_config()
    return {"lr": float(option(ctx, "ft_lr", 1e-5)), "steps": int(option(ctx, "ft_steps", 1000)),
            "batch_size": int(option(ctx, "ft_batch_size", 8)), "eval_every": int(option(ctx, "ft_eval_every", 100)),
            "weight_decay": float(option(ctx, "ft_weight_decay", 0.01)), "max_length": cfg.max_length,
            "eval_batch_size": cfg.eval_batch_size, "prompt_length": cfg.prompt_length,
            "prompt_lr": float(option(ctx, "pft_prompt_lr", cfg.lr))}


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


def _metric(task: Any, m: dict[str, float]) -> float:
    return m[task.metrics[0]]


class _Loop:
    """Shared train/select loop: subclasses give ``loss(idx)`` and ``evaluate(rows)``."""

    def __init__(self, ctx: Context, opts: dict[str, Any]) -> None:
        self.ctx, self.opts, self.task = ctx, opts, ctx.task

    def fit(self, model: torch.nn.Module, params: list[dict[str, Any]], train: list[dict], dev: list[dict]) -> dict:
        o = self.opts
        opt = torch.optim.AdamW(params, lr=o["lr"], weight_decay=o["weight_decay"])
        steps = o["steps"]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (steps - s) / steps))
        best, best_step, best_dev, best_state = -math.inf, 0, {}, None
        y = torch.tensor([self.task.label_index(e["label"]) for e in train])
        t0 = time.perf_counter()
        losses = []
        for step, idx in enumerate(batches(len(train), o["batch_size"], steps, self.ctx.seed), start=1):
            model.train()
            logits = self.logits([train[i] for i in idx])
            loss = F.cross_entropy(logits, y[idx].to(logits.device))
            if not torch.isfinite(loss):
                from synthpt.core.errors import fail

                raise fail(f"{self.task.name}: non-finite loss at fine-tuning step {step} (lower ft_lr)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for g in params for p in g["params"]], 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if step % o["eval_every"] == 0 or step == steps:
                m = self.evaluate(dev)
                if _metric(self.task, m) > best:
                    best, best_step, best_dev = _metric(self.task, m), step, m
                    best_state = self.snapshot()
        if best_state is not None:
            self.restore(best_state)
        return {"best_step": best_step, "dev": best_dev, "train_seconds": round(time.perf_counter() - t0, 2),
                "steps": steps, "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:]))}


class _ClassifierLoop(_Loop):
    def __init__(self, ctx: Context, opts: dict[str, Any]) -> None:
        super().__init__(ctx, opts)
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from synthpt.core import distributed as dist
        from synthpt.core.models import resolve_model

        path = resolve_model(ctx.model)
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "newly initialised head" is expected here
        try:
            torch.manual_seed(ctx.seed)  # the head's initialisation follows the seed
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=ctx.task.num_labels)
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
        return self.model(**self._inputs(rows)).logits.float()

    @torch.inference_mode()
    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        from synthpt.core.classify import compute_metrics

        self.model.eval()
        preds: list[int] = []
        bs = self.opts["eval_batch_size"]
        for i in range(0, len(rows), bs):
            preds += self.logits(rows[i : i + bs]).argmax(-1).tolist()
        return compute_metrics(self.task, [self.task.label_index(r["label"]) for r in rows], preds)

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def restore(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)


class _PromptLoop(_Loop):
    """LM-BFF: template + verbalizer with all weights trainable (and optionally a soft prompt)."""

    def __init__(self, ctx: Context, opts: dict[str, Any], soft_prompt: bool) -> None:
        super().__init__(ctx, opts)
        from synthpt.core import distributed as dist
        from synthpt.core.models import load_backbone
        from synthpt.core.scoring import Encoder

        torch.manual_seed(ctx.seed)
        self.bb = load_backbone(ctx.model, freeze=False, device=dist.device())
        for p in self.bb.model.parameters():
            p.requires_grad_(True)
        self.model = self.bb.model
        n = opts["prompt_length"] if soft_prompt else 0
        self.prompt = None
        if soft_prompt:
            from synthpt.core.soft_prompt import init_from_vocab

            self.prompt = torch.nn.Parameter(init_from_vocab(self.bb, n, ctx.seed).to(self.bb.device))
        self.encoder = Encoder(ctx.task, self.bb, opts["max_length"], n)
        self._ids: dict[int, list[int]] = {}

    def _ctx(self, rows: list[dict]) -> list[list[int]]:
        out = []
        for r in rows:
            if id(r) not in self._ids:
                self._ids[id(r)] = self.encoder.encode(r)
            out.append(self._ids[id(r)])
        return out

    def logits(self, rows: list[dict]) -> torch.Tensor:
        from synthpt.core.scoring import label_logprobs

        return label_logprobs(self.encoder, self._ctx(rows), self.prompt)

    def evaluate(self, rows: list[dict]) -> dict[str, float]:
        from synthpt.core.classify import evaluate

        self.model.eval()
        p = None if self.prompt is None else self.prompt.detach()
        return evaluate(self.task, self.bb, rows, p, self.opts["eval_batch_size"], encoder=self.encoder)

    def snapshot(self) -> dict[str, Any]:
        return {"model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "prompt": None if self.prompt is None else self.prompt.detach().cpu().clone()}

    def restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.prompt is not None:
            with torch.no_grad():
                self.prompt.copy_(state["prompt"].to(self.prompt.device))


@dataclass
class FineTuneMethod(Method):
    """``kind``: ``classifier`` (FT), ``prompt`` (LM-BFF) or ``prompt+soft`` (PFT + soft prompt)."""

    kind: str = "classifier"

    def loop(self, ctx: Context) -> _Loop:
        opts = ft_options(ctx)
        if self.kind == "classifier":
            return _ClassifierLoop(ctx, opts)
        return _PromptLoop(ctx, opts, soft_prompt=self.kind == "prompt+soft")

    def run(self, ctx: Context) -> dict[str, Any]:
        parts = splits(ctx)
        loop = self.loop(ctx)
        params = [{"params": [p for p in loop.model.parameters() if p.requires_grad], "lr": loop.opts["lr"]}]
        prompt = getattr(loop, "prompt", None)
        if prompt is not None:
            params.append({"params": [prompt], "lr": loop.opts["prompt_lr"], "weight_decay": 1e-5})
        n_params = count_trainable(loop.model) + (prompt.numel() if prompt is not None else 0)
        info = loop.fit(loop.model, params, parts["train"], parts["dev"])
        test = loop.evaluate(parts["test"])
        return {"task": ctx.task.name, "test": test, **info, "n_train": len(parts["train"]),
                "trainable_parameters": int(n_params), "kind": self.kind}


register(FineTuneMethod("ft", "FT", "all weights + a classification head on the few-shot data", kind="classifier"))
register(FineTuneMethod("pft", "Prompt-based FT", "LM-BFF: template + verbalizer, all weights trained", kind="prompt"))
register(FineTuneMethod("pft+sp", "PFT + soft prompt", "prompt-based FT with a trainable soft prompt",
                        kind="prompt+soft"))
