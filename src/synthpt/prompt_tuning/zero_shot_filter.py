"""Drop synthetic rows whose label the backbone's own zero-shot classifier contradicts.

A small generator writes rows whose text does not always carry their label (on SST-2 with
SmolLM2-135M, 66-78% of the rows agree with the zero-shot classifier; FewGen's published set
91%).  Where the backbone already classifies the task well *without* a prompt, its zero-shot
prediction is a cheap check of each synthetic row's label.  Where it does not (a 135M model is
near chance on MRPC, RTE and QNLI) the check would only add noise, so the filter is gated: it
runs only when the zero-shot accuracy on the few-shot **dev** set reaches ``min_dev_accuracy``.
The test set is never read.
"""

from __future__ import annotations

from typing import Any

from synthpt.core.classify import evaluate, predict
from synthpt.core.models import Backbone
from synthpt.core.scoring import Encoder
from synthpt.tasks import Task


def zero_shot_filter(task: Task, backbone: Backbone, dev: list[dict[str, Any]], synthetic: list[dict[str, Any]],
                     min_dev_accuracy: float, max_length: int, batch_size: int = 32, progress: bool = False
                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(kept rows in their order, report).  Rows are kept when the zero-shot prediction (template
    + verbalizer, no soft prompt) is their label; all are kept when the gate stays shut."""
    encoder = Encoder(task, backbone, max_length=max_length)
    dev_acc = evaluate(task, backbone, dev, None, batch_size, encoder=encoder)["accuracy"] if dev else 0.0
    report: dict[str, Any] = {"min_dev_accuracy": min_dev_accuracy, "zero_shot_dev_accuracy": round(dev_acc, 4),
                              "applied": dev_acc >= min_dev_accuracy, "before": len(synthetic)}
    kept = synthetic
    if report["applied"] and synthetic:
        # every process scores all rows (forward only, no sharding), so each holds the same kept list
        pred = predict(encoder, synthetic, None, batch_size, progress, desc="zero-shot filter").argmax(-1).tolist()
        kept = [ex for ex, p in zip(synthetic, pred) if p == task.label_index(ex["label"])]
        report["kept_per_label"] = {lab: sum(ex["label"] == lab for ex in kept) for lab in task.labels}
    report["after"] = len(kept)
    return kept, report
