"""Generator benchmarks: DawGen step cost vs a plain step, batched generation vs a loop.

    SYNTHPT_CACHE=/tmp/sc python benchmarks/bench_generator.py [--model tiny-gpt2] [--threads 1]

Prints one JSON line per measurement (see synthpt.generator.bench for what each measures).
"""

from __future__ import annotations

import argparse
import json

import torch

from synthpt.generator.bench import dawgen_step_ratio, generation_speedup


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="tiny-gpt2")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1 = stable numbers on a shared machine)")
    p.add_argument("--reps", type=int, default=7)
    ns = p.parse_args()
    torch.set_num_threads(ns.threads)
    print(json.dumps(dawgen_step_ratio(ns.model, reps=ns.reps)), flush=True)
    print(json.dumps(generation_speedup(ns.model)), flush=True)


if __name__ == "__main__":
    main()
