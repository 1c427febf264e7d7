#!/usr/bin/env bash
# At-size benchmarks on a machine with an NVIDIA GPU: the shipped sparse-recovery example (n=500, m=250,
# depth 16) trained on the GPU and, for the ratio, on the same machine's CPU (JAX_PLATFORMS=cpu).
#
#   bash benchmarks/gpu.sh [--only du-ista,tista,lista]
#
# It uses $PYTHON (default python3) with its own JAX: when that JAX sees no GPU, it installs JAX with CUDA
# (pip install -U "jax[cuda13]"; set JAX_CUDA=cuda12 for an older driver) unless NO_INSTALL=1. The project
# is taken from this checkout (PYTHONPATH), its plugins registered in process: nothing else is installed.
# Writes benchmarks/results/gpu-<platform>.json. See docs/performance.md, "On a GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
sees_gpu() { "$PYTHON" -c "import jax, sys; sys.exit(0 if jax.default_backend() == 'gpu' else 1)" 2>/dev/null; }
if ! sees_gpu; then
  if [ "${NO_INSTALL:-0}" = 1 ]; then
    echo "gpu.sh: JAX in $PYTHON sees no GPU (and NO_INSTALL=1): install JAX with CUDA first" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q -U "jax[${JAX_CUDA:-cuda13}]"
  sees_gpu || { echo "gpu.sh: JAX still sees no GPU after installing jax[${JAX_CUDA:-cuda13}]" >&2; exit 2; }
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p benchmarks/results
"$PYTHON" benchmarks/at_size.py --out benchmarks/results/gpu-gpu.json "$@"
JAX_PLATFORMS=cpu "$PYTHON" benchmarks/at_size.py --out benchmarks/results/gpu-cpu.json "$@"
"$PYTHON" - <<'PY'
import json
gpu, cpu = (json.load(open(f"benchmarks/results/gpu-{name}.json")) for name in ("gpu", "cpu"))
for label, row in gpu["solvers"].items():
    other = cpu["solvers"][label]
    print(f"{label:10s} GPU {row['train_seconds']:7.2f} s, CPU {other['train_seconds']:7.2f} s: "
          f"{other['train_seconds'] / row['train_seconds']:.1f}x; NMSE {row['final_nmse_db']:.2f} dB (GPU), "
          f"{other['final_nmse_db']:.2f} dB (CPU)")
PY
