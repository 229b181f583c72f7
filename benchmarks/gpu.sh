#!/usr/bin/env bash
# GPU throughput table in one go (under 5 minutes on a current GPU): rnnkit vs hand-written cuDNN loops.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'benchmarks/gpu.sh needs a CUDA GPU (torch.cuda.is_available() is False)')"
"$PY" benchmarks/gpu.py --device cuda --steps 30 --rounds 5 --precisions fp32,bf16
