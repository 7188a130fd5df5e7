#!/usr/bin/env bash
# The test command: set up the environment, then run the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # tiny test models: threads only contend
exec python -m pytest -q -p no:cacheprovider --timeout 900 "$@"
