"""Generator tuning in float64 on tiny-gpt2, every mode; run by tests/test_distributed.py once alone
and once under ``torch.distributed.run`` with two processes.

``python tests/gen_worker.py SPLIT OUT STEPS BATCH[,BATCH...]`` writes (rank 0) ``OUT`` =
{(mode, batch): {"Q", "W", "log"}, "processes": N}.  float64 so that what is compared is the math, not float32 rounding amplified by
Adam where a gradient component sits near its eps.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from synthpt.core import distributed as dist
from synthpt.core.models import load_backbone
from synthpt.data import load_split
from synthpt.generator.config import GeneratorConfig
from synthpt.generator.trainer import GeneratorTrainer
from synthpt.tasks import get_task


def tune(split: Path, mode: str, steps: int, batch: int) -> dict:
    task = get_task("rte")
    bb = load_backbone("tiny-gpt2")
    bb.model.double()
    cfg = GeneratorConfig(mode=mode, prompt_length=4, batch_size=batch, max_steps=steps, max_length=96,
                          lr=0.05, meta_lr=0.05)
    tr = GeneratorTrainer(task, bb, cfg, load_split(split, task)["train"], progress=False)
    tr.Q.data = tr.Q.data.double()
    tr.W.double()
    log = [tr.train_step(step) for step in range(steps)]
    return {"Q": tr.Q.detach().clone(), "W": {k: v.clone() for k, v in tr.W.state_dict().items()}, "log": log}


def main() -> None:
    split, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    res: dict = {(mode, b): tune(split, mode, steps, b) for b in map(int, sys.argv[4].split(","))
                 for mode in ("plain", "fewgen", "dawgen")}
    res["processes"] = dist.world_size()
    if dist.is_main():
        torch.save(res, out)
    dist.shutdown()  # leave together before the interpreter tears gloo down (see its docstring)


if __name__ == "__main__":
    main()
