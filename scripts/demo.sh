#!/usr/bin/env bash
# The main job: the whole method on a real pretrained LM in under 10 minutes on a 2-core laptop CPU.
# SST-2's LM-BFF 16-shot split (seed 42) goes through Stage 1 (DawGen generator tuning), Stage 2 (synthetic
# rows) and Stage 3 (paired prompt tuning with gradient surgery) on smollm2-135m (SmolLM2-135M-Instruct),
# and a table puts Ours beside zero-shot prompting and plain prompt tuning on 200 test rows
# (configs/demo.yaml: configs/real-cpu.yaml's code and knobs with a smaller budget). Then Ours' prompt
# classifies two sentences. Needs ../shared/data beside the repository; rerunning it redoes nothing.
#   DATA=... OUT=... bash scripts/demo.sh    # other data / output folders
# On a machine shared with other jobs, OMP_NUM_THREADS=1 avoids threads spinning against them.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
DATA=${DATA:-../shared/data}
OUT=${OUT:-runs/demo}
start=$(date +%s)
synthpt experiment --config configs/demo.yaml --data-dir "$DATA" --out "$OUT"
# Ours' adapter lives in the content-addressed cache; copy it (with its card) to a stable place.
python - "$OUT" <<'PY'
import json, shutil, sys
from pathlib import Path

out = Path(sys.argv[1])
cell = json.loads((out / "cells" / "sst-2" / "ours" / "seed-42.json").read_text())
shutil.copytree(out / cell["runs"][-1]["dir"], out / "prompt", dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("checkpoint.pt", "log.jsonl", "stage.json"))
PY
echo
echo "Ours' soft prompt: $OUT/prompt (its card: $OUT/prompt/README.md). Classify your own text:"
echo "  echo 'a gripping, funny film' | synthpt predict --prompt $OUT/prompt --input -"
printf 'a gripping, funny film\ntwo hours I will never get back\n' | synthpt predict --prompt "$OUT/prompt" --input - --quiet
echo "demo: $(( $(date +%s) - start )) s (without set-up)"
