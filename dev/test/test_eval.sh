#!/usr/bin/env bash
# train_gpt's multiple-choice evaluation (llmc/train_mc.h) against the PyTorch scorer
# (dev/eval/mc_reference.py) on a model trained here (d2, 30 steps on tiny shakespeare) and
# the first examples of every task make eval-data writes: each choice's log-likelihood, each
# example's metrics, batched against unbatched, choices permuted (dev/test/test_mc_eval.c);
# then what --eval prints and logs (-h's HellaSwag line, --tasks lines and main.jsonl), and the
# same under mpirun with 2 processes. T=47 cuts TruthfulQA's long primer from the left, as the
# harness does when a prompt is longer than the model's window.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
PYTHON=${PYTHON:-.venv/bin/python}
N=${TASK_N:-8}
T=47
TASKS="hellaswag arc_easy arc_challenge piqa winogrande truthfulqa_mc1 truthfulqa_mc2 jcommonsenseqa jtruthfulqa_mc1 jtruthfulqa_mc2"
work=$(mktemp -d /tmp/test_eval.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
# the task files decode back to the sources under the harness's templates, k-shot, refusals
$PYTHON dev/data/test_eval_tasks.py || fails=$((fails + 1))
seed=$(( ($(date +%s) ^ $$) % 100000 ))
./train_gpt -e d2 -b 4 -t 64 -x 30 -v 0 -s 0 --seed "$seed" -o "$work/run" > "$work/train.out" 2>&1 ||
    { echo "FAIL: training the model to evaluate: $(tail -2 "$work/train.out")"; exit 1; }
MODEL=$work/run/model_00000030.bin
for t in $TASKS; do
    f=dev/data/eval/$t.bin
    if ! $PYTHON dev/eval/mc_reference.py "$MODEL" "$f" "$N" $T "$work/ref_$t.bin" > "$work/ref_$t.out" 2>&1; then
        fail "PyTorch scorer on $t" "$(tail -2 "$work/ref_$t.out")"; continue
    fi
    # B=5: rows of several lengths in one forward
    ./dev/test/test_mc_eval "$MODEL" "$f" "$N" $T 5 "$work/ref_$t.bin" || fails=$((fails + 1))
done

# --eval: one line per task with the metrics PyTorch computed (equal unless the reference saw a near tie)
out=$(./train_gpt -e "$MODEL" -b 3 -t $T --eval -m 1 -o "$work/ev" -h 1 --hellaswag-examples "$N" \
      --tasks arc_easy,winogrande,truthfulqa_mc2,hellaswag --tasks-examples "$N" 2>&1)
ok=1
for t in arc_easy winogrande truthfulqa_mc2; do
    line=$(echo "$out" | grep ": $t ($N examples, 0-shot):")
    ref=$(head -1 "$work/ref_$t.out")
    ties=$(echo "$ref" | sed -E 's/.*near ties ([0-9]+).*/\1/')
    [ "$ties" = 0 ] || continue  # a near tie may go either way in fp32: the per-example test covered it
    for m in acc acc_norm mc2; do
        a=$(echo "$line" | grep -oE "(^|[ |]) ?$m [0-9.]+" | grep -oE "[0-9.]+$")
        b=$(echo "$ref" | grep -oE "(^|[ |]) ?$m [0-9.]+" | grep -oE "[0-9.]+$")
        if [ -n "$b" ] && [ "$a" != "$b" ]; then ok=0; echo "  $t $m: --eval '$a', PyTorch '$b'"; fi
    done
done
hs=$(echo "$out" | grep -c "HellaSwag accuracy")
hsref=$(head -1 "$work/ref_hellaswag.out" | grep -oE "acc_token [0-9.]+")
hsours=$(echo "$out" | grep -oE "hellaswag \($N examples.*acc_token [0-9.]+" | grep -oE "acc_token [0-9.]+")
jl=$(grep -c '"task":' "$work/ev/eval.jsonl" 2>/dev/null)
if [ $ok = 1 ] && [ "$hs" = 1 ] && [ "$jl" = 4 ] && { [ "$hsours" = "$hsref" ] || ! grep -q "near ties 0" "$work/ref_hellaswag.out"; } &&
   grep -q '"task":"truthfulqa_mc2","examples":'"$N"',"shots":0,"mc2":' "$work/ev/eval.jsonl"; then
    pass "--eval --tasks: a line per task with PyTorch's metrics, -h's HellaSwag once (its llm.c line too), 4 task records in eval.jsonl"
else
    fail "--eval --tasks" "HellaSwag lines $hs ($hsours vs PyTorch $hsref), jsonl task records ${jl:-0}: $(echo "$out" | grep -E "examples, [0-9]+-shot" | head -5 | tr '\n' ' ')"
fi
# the same under mpirun: the examples split over 2 processes, the same sums
if command -v mpirun > /dev/null; then
    out2=$(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 ./train_gpt -e "$MODEL" -b 3 -t $T --eval -m 2 \
           --tasks arc_easy,winogrande,truthfulqa_mc2 --tasks-examples 7 2>&1)
    out1=$(./train_gpt -e "$MODEL" -b 3 -t $T --eval -m 2 --tasks arc_easy,winogrande,truthfulqa_mc2 --tasks-examples 7 2>&1)
    l1=$(echo "$out1" | grep -E "^eval .*examples, 0-shot\):" | sed -E 's/ \([0-9]+ s\)$//')
    l2=$(echo "$out2" | grep -E "^eval .*examples, 0-shot\):" | sed -E 's/ \([0-9]+ s\)$//')
    if [ -n "$l1" ] && [ "$(echo "$l1" | wc -l)" = 3 ] && [ "$l1" = "$l2" ]; then
        pass "--tasks under mpirun -np 2 (7 examples each, split 4 + 3) prints what 1 process prints"
    else
        fail "--tasks under mpirun" "1 process: $(echo "$l1" | tr '\n' ' ') | 2: $(echo "$l2" | tr '\n' ' ') $(echo "$out2" | tail -2)"
    fi
fi
# during training: every --tasks-every steps and after the last, each in main.jsonl, and plotted
out=$(./train_gpt -e d1 -b 4 -t $T -x 4 -v 2 -s 0 --tasks piqa,jtruthfulqa_mc2 --tasks-every 2 --tasks-examples 6 -o "$work/tr" 2>&1)
n=$(grep -c '"task":"piqa","examples":6' "$work/tr/main.jsonl" 2>/dev/null)
panels=$($PYTHON dev/plot_log.py "$work/tr" -o "$work/tr.png" 2>&1)
if [ "$n" = 3 ] && [ "$(grep -c '"task":"jtruthfulqa_mc2"' "$work/tr/main.jsonl")" = 3 ] && echo "$panels" | grep -q "tasks)" &&
   [ -s "$work/tr.png" ]; then
    pass "--tasks-every 2 over 4 steps: each task at steps 0, 2, 4 in main.jsonl; plot_log.py draws the tasks panel"
else
    fail "--tasks during training" "piqa records ${n:-0}; $panels; $(echo "$out" | tail -2)"
fi
# an unknown task is refused naming the flag and the file it looked for
out=$(./train_gpt -e "$MODEL" -b 3 -t $T --eval --tasks nosuchtask 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "^error: --tasks: dev/data/eval/nosuchtask.bin" &&
    pass "--tasks nosuchtask is refused naming the flag and the file" || fail "--tasks nosuchtask" "rc $rc: $out"

# Bits per byte of the val loss, recomputed here from the printed loss and the val shard: the
# first -m batches' B*T targets (tokens 1..m*B*T of the shard), each decoded with GPT-2's own
# encoder.json (not our tokenizer file) to count its bytes, end-of-text counting none.
B=3; T=50; M=2
line=$(./train_gpt -e "$MODEL" -b $B -t $T --eval -m $M | grep "bits per byte")
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
then :; else fails=$((fails + 1)); fi
[ $fails -eq 0 ]
