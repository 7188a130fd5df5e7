"""Scoring a (prompted) LM on a split and computing the task's metrics.

Prediction is batched verbalizer scoring: one forward pass per batch, the label whose
word has the highest log-probability wins.  No generation, no parsing (``synthpt bench``
measures how much faster that is than generate-then-parse).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from synthpt.core import distributed as dist
from synthpt.core.models import Backbone
from synthpt.core.progress import progress_bar
from synthpt.core.scoring import Encoder, label_logprobs

if TYPE_CHECKING:  # type-only: tasks sit above the core floor
    from synthpt.tasks import Task


def compute_metrics(task: Task, gold: list[int], pred: list[int]) -> dict[str, float]:
    """Accuracy, and F1 of the positive label where the task reports it (MRPC, QQP)."""
    n = len(gold)
    out: dict[str, float] = {"accuracy": sum(g == p for g, p in zip(gold, pred)) / n if n else 0.0}
    if "f1" in task.metrics and task.positive_label is not None:
        pos = task.label_index(task.positive_label)
        tp = sum(g == pos and p == pos for g, p in zip(gold, pred))
        fp = sum(g != pos and p == pos for g, p in zip(gold, pred))
        fn = sum(g == pos and p != pos for g, p in zip(gold, pred))
        out["f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    out["n"] = n
    return out


@torch.inference_mode()
def predict(
    encoder: Encoder, examples: list[dict[str, Any]], prompt: torch.Tensor | None = None,
    batch_size: int = 32, progress: bool = False, desc: str = "eval",
) -> torch.Tensor:
    """(N, L) label log-probabilities, in the order of ``examples``.

    Batches are formed from length-sorted inputs so padding stays small."""
    ids = encoder.encode_many(examples)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out = torch.empty((len(ids), len(encoder.label_ids)))
    p = None if prompt is None else prompt.to(encoder.backbone.device)
    bar = progress_bar(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False)
    for start in bar:
        idx = order[start : start + batch_size]
        out[idx] = label_logprobs(encoder, [ids[i] for i in idx], p).float().cpu()
    return out


def evaluate(
    task: Task, backbone: Backbone, examples: list[dict[str, Any]], prompt: torch.Tensor | None = None,
    batch_size: int = 32, max_length: int = 256, progress: bool = False, desc: str = "eval",
    encoder: Encoder | None = None,
) -> dict[str, float]:
    """Metrics of ``backbone`` (+ ``prompt``) on ``examples``; sharded across processes."""
    if encoder is None:
        n = 0 if prompt is None else prompt.shape[0]
        encoder = Encoder(task, backbone, max_length=max_length, prompt_length=n)
    indexed = list(enumerate(examples))
    mine = dist.shard(indexed)
    scores = predict(encoder, [ex for _, ex in mine], prompt, batch_size, progress, desc)
    local = [(i, int(s.argmax())) for (i, _), s in zip(mine, scores)]
    preds = dict(pair for part in dist.gather_objects(local) for pair in part)
    gold = [task.label_index(ex["label"]) for ex in examples]
    return compute_metrics(task, gold, [preds[i] for i in range(len(examples))])
