"""Probe: is a task's accuracy label bias or discrimination?  Post-hoc, on saved adapters.

Scores the fixed test subset of a split with each adapter (or zero-shot), three ways:
``raw`` (as `synthpt evaluate`), ``cf`` (contextual calibration: label distribution divided by
the one on content-free inputs, "N/A" and ""), ``devmean`` (divided by the mean label
distribution on the dev inputs, which are class-balanced).  Used for the MRPC analysis in
docs/real-cpu.md; not part of the library.

    python scripts/calibration_probe.py --task mrpc --split runs/real/cache/split/mrpc-k16-s42-* \
        zs=none pt=runs/real/cache/prompt/mrpc-real-s42-* ...
"""

from __future__ import annotations

import argparse

import torch

from synthpt.core.classify import compute_metrics, predict
from synthpt.core.models import load_backbone
from synthpt.core.saving import load_peft_prompt
from synthpt.core.scoring import Encoder
from synthpt.data import load_split
from synthpt.prompt_tuning.recipe import eval_subset
from synthpt.tasks import get_task


def label_prior(enc: Encoder, rows: list[dict], prompt: torch.Tensor | None) -> torch.Tensor:
    """log of the mean label distribution the (prompted) model gives ``rows``."""
    return torch.softmax(predict(enc, rows, prompt), -1).mean(0).log()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", required=True)
    ap.add_argument("--split", required=True, help="a split folder (train/dev/test.jsonl)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-eval", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("adapters", nargs="+", metavar="NAME=DIR", help="DIR 'none' is zero-shot")
    ns = ap.parse_args()
    task = get_task(ns.task)
    sp = load_split(ns.split, task)
    test, dev = eval_subset(sp["test"], ns.max_eval), sp["dev"]
    gold = [task.label_index(r["label"]) for r in test]
    content_free = [{**{f: v for f in task.fields}, "label": task.labels[0]} for v in ("N/A", "")]
    bb = load_backbone(ns.model)
    for item in ns.adapters:
        name, path = item.split("=", 1)
        prompt = None if path == "none" else load_peft_prompt(path)[0]
        enc = Encoder(task, bb, max_length=ns.max_length, prompt_length=0 if prompt is None else prompt.shape[0])
        s = torch.log_softmax(predict(enc, test, prompt), -1)
        for how, p in (("raw", torch.zeros(len(task.labels))), ("cf", label_prior(enc, content_free, prompt)),
                       ("devmean", label_prior(enc, dev, prompt))):
            m = compute_metrics(task, gold, (s - p).argmax(-1).tolist())
            print(f"{name:10s} {how:8s} " + " ".join(f"{k} {v:.3f}" for k, v in m.items() if k != "n")
                  + "  prior " + " ".join(f"{v:.2f}" for v in p.exp().tolist()), flush=True)


if __name__ == "__main__":
    main()
