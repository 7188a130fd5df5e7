"""In-Context learning: K labelled demonstrations before the query, frozen backbone, no training.

Design (options, all optional):

- ``icl_k`` (default 8): demonstrations per query, drawn from the cell's few-shot *train*
  set, balanced over labels (round robin over the labels in task order, each label's rows
  shuffled with the cell seed), so the same seed gives the same demonstrations.  A training
  row whose text fields equal the query's is never used for that query.
- Each demonstration is ``task.render(demo, mask=" " + label_word)`` (the template with the
  label word in place of ``{mask}``), demonstrations are joined by a blank line and placed
  before the query, which is encoded exactly as in zero-shot scoring.
- ``icl_max_length`` (default: the larger of the prompt-tuning ``max_length`` and 512,
  capped at the model's positions): the query is never cut (beyond what zero-shot does);
  the demonstrations share what is left equally, each keeping its *end* (the label cue)
  when shortened, and demonstrations are dropped from the end while the share would fall
  under ``icl_min_tokens`` (default 32).
- Scoring is the zero-shot scoring (highest summed label-word log-probability).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from synthpt.core.scoring import Encoder
from synthpt.methods import register
from synthpt.methods.base import Context, Method
from synthpt.methods.baselines.common import frozen_backbone, option, splits
from synthpt.prompt_tuning.recipe import balanced_subset
from synthpt.tasks import Task


def _same_text(a: dict[str, Any], b: dict[str, Any], task: Task) -> bool:
    return all(str(a.get(f)) == str(b.get(f)) for f in task.fields)


def select_demos(train: list[dict[str, Any]], task: Task, k: int, seed: int,
                 query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``k`` demonstrations balanced over labels (seeded); never the query itself."""
    pool = [ex for ex in train if query is None or not _same_text(ex, query, task)]
    out = list(balanced_subset(pool, task, k, seed))
    random.Random(seed).shuffle(out)  # labels interleaved, not in a fixed label order
    return out


@dataclass
class ICLEncoder(Encoder):
    """An :class:`Encoder` that puts rendered demonstrations before the query's tokens."""

    train: list[dict[str, Any]] = field(default_factory=list)
    k: int = 8
    seed: int = 0
    min_tokens: int = 32
    separator: str = "\n\n"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._demo_cache: dict[int, list[int]] = {}
        self._sep = self.backbone.tokenizer(self.separator, add_special_tokens=False)["input_ids"]
        self.last_demos: list[dict[str, Any]] = []

    def _demo_ids(self, ex: dict[str, Any]) -> list[int]:
        key = id(ex)
        if key not in self._demo_cache:
            word = self.task.label_words[ex["label"]]
            text = self.task.render(ex, mask=" " + word)
            self._demo_cache[key] = self.backbone.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._demo_cache[key]

    def encode(self, example: dict[str, Any]) -> list[int]:
        query = super().encode(example)  # prefix + query + suffix, already within max_length
        limit = self.max_length - self.prompt_length
        if not self.backbone.is_seq2seq:
            limit -= max(len(ids) for ids in self.label_ids) - 1
        room = limit - len(query)
        demos = select_demos(self.train, self.task, self.k, self.seed, example)
        pieces = [self._demo_ids(d) for d in demos]
        while pieces:
            share = room // len(pieces) - len(self._sep)
            if share >= self.min_tokens or len(pieces) == 1 and share > 0:
                break
            pieces.pop()
            demos = demos[: len(pieces)]
        body: list[int] = []
        if pieces:
            share = room // len(pieces) - len(self._sep)
            if share <= 0:
                pieces, demos = [], []
            for p in pieces:
                body += p[-share:] + self._sep if len(p) > share else p + self._sep
        self.last_demos = demos
        n_pre = len(self.prefix)
        return query[:n_pre] + body + query[n_pre:]


class InContextMethod(Method):
    def encoder(self, ctx: Context, backbone: Any, train: list[dict[str, Any]]) -> ICLEncoder:
        cfg = ctx.prompt_tuning_config()
        max_len = int(option(ctx, "icl_max_length", max(cfg.max_length, 512)))
        return ICLEncoder(ctx.task, backbone, max_len, 0, train=train, k=int(option(ctx, "icl_k", 8)),
                          seed=ctx.seed, min_tokens=int(option(ctx, "icl_min_tokens", 32)))

    def run(self, ctx: Context) -> dict[str, Any]:
        from synthpt.core.classify import evaluate

        cfg = ctx.prompt_tuning_config()
        parts = splits(ctx)
        bb = frozen_backbone(ctx.model)
        enc = self.encoder(ctx, bb, parts["train"])
        test = evaluate(ctx.task, bb, parts["test"], None, cfg.eval_batch_size, encoder=enc)
        dev = evaluate(ctx.task, bb, parts["dev"], None, cfg.eval_batch_size, encoder=enc)
        return {"task": ctx.task.name, "test": test, "dev": dev, "trainable_parameters": 0,
                "icl": {"k": enc.k, "max_length": enc.max_length}}

    def trainable_parameters(self, ctx: Context) -> int:
        return 0


register(InContextMethod("icl", "In-Context", "K balanced demonstrations before the query, no training"))
