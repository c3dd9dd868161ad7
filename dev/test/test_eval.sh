#!/usr/bin/env bash
# train_gpt's HellaSwag evaluation against the PyTorch scorer (dev/eval/hellaswag_reference.py)
# on the same checkpoint (a fresh random reference model, GPT-2 vocabulary) and examples.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
PYTHON=${PYTHON:-.venv/bin/python}
HS=dev/data/hellaswag/hellaswag_val.bin
N=${HELLASWAG_N:-40}
work=$(mktemp -d /tmp/test_eval.XXXXXX)
trap 'rm -rf "$work"' EXIT
seed=$(( ($(date +%s) ^ $$) % 100000 ))
$PYTHON dev/reference/gpt2_reference.py --out "$work/m" --seed "$seed" --L 2 --C 64 --NH 4 --V 50257 \
    --maxT 128 --B 1 --T 8 --steps 1 > /dev/null || { echo "FAIL: reference model"; exit 1; }
ref=$($PYTHON dev/eval/hellaswag_reference.py "$work/m_model.bin" "$HS" "$N")
ours=$(./train_gpt -e "$work/m_model.bin" -b 1 -t 127 --eval -h 1 --hellaswag-examples "$N" -m 1 | grep "HellaSwag accuracy")
if [ -n "$ours" ] && [ "$ours" = "$ref" ]; then
    echo "PASS: HellaSwag accuracy equals PyTorch's on $N examples, seed $seed ($ours)"
else
    echo "FAIL: HellaSwag accuracy: ours '$ours', PyTorch '$ref' (seed $seed)"
    exit 1
fi
