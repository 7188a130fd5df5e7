#!/usr/bin/env bash
# The main job, small enough for a laptop CPU: the whole method on MRPC with tiny models
# (tune a generator with DawGen, generate label-conditioned pairs, prompt-tune with paired
# batches + gradient surgery, evaluate), then the same Stage 3 on RTE with FewGen's published
# synthetic set. Needs ../shared/data beside the repository. Rerunning it redoes nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
DATA=${DATA:-../shared/data}
synthpt sample --task rte --k 16 --seed 42 --data-dir "$DATA" --out runs/rte-16-42
synthpt prompt-tune --task rte --data runs/rte-16-42 --model tiny-t5 \
    --synthetic "$DATA/fewgen-synthetic/RTE/gen-train.json" \
    --strategy paired --gradient-surgery --epsilon 0.5 --max-steps 30 --out runs/rte-pt
synthpt evaluate --task rte --prompt runs/rte-pt --data runs/rte-16-42 --split test
if synthpt run --help >/dev/null 2>&1; then
  synthpt run --task mrpc --seed 42 --data-dir "$DATA" --model tiny-t5 --generator-model tiny-gpt2 --out runs/mrpc-run
fi
