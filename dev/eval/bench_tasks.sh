#!/usr/bin/env bash
# How much batching buys the multiple-choice scoring (llmc/train_mc.h): train_gpt --eval
# --tasks on the same examples at -b 1 (one choice per forward, as the HellaSwag scorer before
# it) and at larger B (rows of similar length, padded), alternated ROUNDS times, best of each.
# The model is a fresh d6 (the quick start's size; scoring speed does not depend on the
# weights). Writes dev/eval/results/bench_tasks_<date>.md.
#   bash dev/eval/bench_tasks.sh              (make train_gpt eval-data first)
#   TASK=hellaswag EXAMPLES=200 BS="1 4 16" ROUNDS=3 bash dev/eval/bench_tasks.sh
set -eu
cd "$(dirname "$0")/../.."
TASK=${TASK:-arc_easy}
EXAMPLES=${EXAMPLES:-300}
BS=${BS:-"1 4 8 16"}
ROUNDS=${ROUNDS:-2}
T=${T:-256}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
[ -x ./train_gpt ] && [ -f dev/data/eval/$TASK.bin ] || { echo "error: make train_gpt eval-data first" >&2; exit 1; }
declare -A best
line=""
for r in $(seq 1 "$ROUNDS"); do
    for b in $BS; do
        # the run with the task less the same run without it (model set-up, one val batch)
        t0=$(date +%s.%N)
        out=$(./train_gpt -e d6 -b "$b" -t "$T" --eval -m 1 --tasks "$TASK" --tasks-examples "$EXAMPLES" 2>&1)
        t1=$(date +%s.%N)
        ./train_gpt -e d6 -b "$b" -t "$T" --eval -m 1 > /dev/null 2>&1
        t2=$(date +%s.%N)
        s=$(awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "%.2f", (b - a) - (c - b) }')
        if [ -z "${best[$b]:-}" ] || awk -v x="$s" -v y="${best[$b]}" 'BEGIN { exit !(x < y) }'; then best[$b]=$s; fi
        line=$(echo "$out" | grep -E "^eval .*: $TASK \(" | sed -E 's/^[^:]*: //; s/ \([0-9]+ s\)$//')
    done
done
date=$(date -u +%Y-%m-%d)
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
res=dev/eval/results/bench_tasks_$date.md
mkdir -p dev/eval/results
{
    echo "# Multiple-choice scoring speed, $date"
    echo
    echo "- machine: $cpu, $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- command: TASK=$TASK EXAMPLES=$EXAMPLES BS=\"$BS\" ROUNDS=$ROUNDS T=$T bash dev/eval/bench_tasks.sh"
    echo "- model: d6 (fresh), \`train_gpt --eval --tasks $TASK --tasks-examples $EXAMPLES -t $T\`; seconds = the run"
    echo "  with the task less the same run without it, best of $ROUNDS rounds (B values alternated)"
    echo "- scores at every B: $line"
    echo
    echo "| B | seconds | speed-up over B=1 |"
    echo "|---:|---:|---:|"
    for b in $BS; do
        echo "| $b | ${best[$b]} | $(awk -v a="${best[1]:-0}" -v b="${best[$b]}" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }') |"
    done
} > "$res"
cat "$res"
