#!/usr/bin/env bash
# PyTorch references for test_gpt_cu, written to build/cuda_refs/ (small files, so a GPU
# machine without PyTorch can take them along):
#   awkward: the odd config of dev/test/test_reference.sh (C=72, NH=3: head size 24)
#   hs64:    head size 64, T=100 (several attention tiles), B=4 (gradient accumulation)
#   hs128:   head size 128
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
SEED=${SEED:-1234}
mkdir -p build/cuda_refs
$PYTHON dev/reference/gpt2_reference.py --out build/cuda_refs/awkward --seed "$SEED" \
    --L 2 --C 72 --NH 3 --V 997 --maxT 16 --B 3 --T 13
$PYTHON dev/reference/gpt2_reference.py --out build/cuda_refs/hs64 --seed "$((SEED + 1))" \
    --L 2 --C 128 --NH 2 --V 997 --maxT 128 --B 4 --T 100
$PYTHON dev/reference/gpt2_reference.py --out build/cuda_refs/hs128 --seed "$((SEED + 2))" \
    --L 1 --C 256 --NH 2 --V 509 --maxT 80 --B 2 --T 70
ls -la build/cuda_refs
