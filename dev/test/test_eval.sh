#!/usr/bin/env bash
# train_gpt's HellaSwag evaluation against the PyTorch scorer (dev/eval/hellaswag_reference.py)
# on the same checkpoint (a fresh random reference model, GPT-2 vocabulary) and examples: the
# accuracy, and each ending's score.
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
out=$($PYTHON dev/eval/hellaswag_reference.py "$work/m_model.bin" "$HS" "$N" "$work/scores.bin")
ref=$(echo "$out" | grep "HellaSwag accuracy")
ties=$(echo "$out" | sed -n 's/^near ties: //p')
ours=$(./train_gpt -e "$work/m_model.bin" -b 1 -t 127 --eval -h 1 --hellaswag-examples "$N" -m 1 | grep "HellaSwag accuracy")
# equal, except that each near tie (float64 scores within 1e-4) may go either way in fp32
acc() { echo "$1" | sed -E 's/.*accuracy ([0-9.]+).*/\1/'; }
if [ -n "$ours" ] && [ -n "$ref" ] && awk -v a="$(acc "$ours")" -v b="$(acc "$ref")" -v n="$N" -v t="${ties:-0}" \
        'BEGIN { d = (a - b) * n; if (d < 0) d = -d; exit !(d <= t + 1e-6) }'; then
    echo "PASS: HellaSwag accuracy equals PyTorch's on $N examples, seed $seed ($ours; $ties near ties)"
else
    echo "FAIL: HellaSwag accuracy: ours '$ours', PyTorch '$ref' ($ties near ties, seed $seed)"
    exit 1
fi
# and every ending's score, the quantity the accuracy is decided on
./dev/test/test_hellaswag "$work/m_model.bin" "$HS" "$N" "$work/scores.bin"
