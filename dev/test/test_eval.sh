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
rc_hs=$?

# Bits per byte of the val loss, recomputed here from the printed loss and the val shard: the
# first -m batches' B*T targets (tokens 1..m*B*T of the shard), each decoded with GPT-2's own
# encoder.json (not our tokenizer file) to count its bytes, end-of-text counting none.
B=3; T=50; M=2
line=$(./train_gpt -e "$work/m_model.bin" -b $B -t $T --eval -m $M | grep "bits per byte")
if $PYTHON - "$line" $B $T $M dev/data/tinyshakespeare/tiny_shakespeare_val.bin <<'PY'
import json, math, re, sys
import numpy as np
line, B, T, M, shard = sys.argv[1], *map(int, sys.argv[2:5]), sys.argv[5]
m = re.search(r"val loss ([0-9.]+) .*\| ([0-9.]+) bits per byte, ([0-9.]+) bytes per token", line)
if not m:
    print(f"FAIL: bits per byte: no such line in --eval's output: '{line}'"); sys.exit(1)
loss, bpb, bpt = map(float, m.groups())
# GPT-2's byte <-> unicode map (the published construction)
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}
enc = json.load(open("../shared/data/gpt2/encoder.json", encoding="utf-8"))
length = {i: len(s) for s, i in enc.items()}  # each unicode char stands for one byte
tokens = np.fromfile(shard, dtype=np.uint16, offset=1024)
targets = tokens[1:M * B * T + 1]
nbytes = sum(0 if t == 50256 else length[int(t)] for t in targets)
want_bpb = loss * len(targets) / (nbytes * math.log(2))
want_bpt = nbytes / len(targets)
ok = abs(bpb - want_bpb) <= 1e-5 * want_bpb and abs(bpt - want_bpt) <= 1e-3
print(("PASS" if ok else "FAIL") + f": bits per byte: --eval says {bpb} ({bpt} bytes/token), from the shard and "
      f"GPT-2's encoder.json {want_bpb:.6f} ({want_bpt:.4f}) over {len(targets)} tokens, {nbytes} bytes")
sys.exit(0 if ok else 1)
PY
then rc_bpb=0; else rc_bpb=1; fi
[ $rc_hs -eq 0 ] && [ $rc_bpb -eq 0 ]
