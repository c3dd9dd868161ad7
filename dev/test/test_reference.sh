#!/usr/bin/env bash
# test_gpt against fresh PyTorch references: a new seed every run (printed, so a failure can
# be reproduced with SEED=...), at an awkward config and at a small one with GPT-2's vocabulary
# and real tokens from tiny shakespeare.
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
SEED=${SEED:-$(( ($(date +%s) ^ $$ ^ RANDOM) % 1000000 ))}
echo "reference seed: $SEED (rerun with SEED=$SEED)"
mkdir -p build
$PYTHON dev/reference/gpt2_reference.py --out build/ref_awkward --seed "$SEED" \
    --L 2 --C 72 --NH 3 --V 997 --maxT 16 --B 3 --T 13
./test_gpt build/ref_awkward
$PYTHON dev/reference/gpt2_reference.py --out build/ref_gpt2vocab --seed "$((SEED + 1))" \
    --L 2 --C 64 --NH 4 --V 50257 --maxT 40 --B 4 --T 37 \
    --tokens dev/data/tinyshakespeare/tiny_shakespeare_val.bin
./test_gpt build/ref_gpt2vocab
