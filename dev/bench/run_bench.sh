#!/usr/bin/env bash
# `make bench`: CPU training speed next to the machine's sgemm ceiling, measured in the same run.
#   1. dev/bench/bench_matmul: our matmul kernel vs OpenBLAS (2 threads) on the model's shapes,
#      and OpenBLAS's large-sgemm ceiling
#   2. train_gpt steps of d12 at B=4 T=64 and d6 at B=8 T=256 on tiny shakespeare:
#      ms/step, tokens/s and achieved GFLOP/s, with FLOPs per token = 6N + 6*L*C*T
#      (N = parameters but wpe; the attention term counts the causal half of QK^T and att@V)
# Results go to the terminal and to dev/bench/results/cpu_train_<date>.md.
# Other bench scripts registered by dev/*/*.mk run after these (BENCH_SCRIPTS).
set -eu
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OPENBLAS_NUM_THREADS=$OMP_NUM_THREADS
STEPS=${BENCH_STEPS:-6}
date=$(date -u +%Y-%m-%d)
mkdir -p dev/bench/results
out=dev/bench/results/cpu_train_$date.md
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
{
    echo "# CPU training benchmark, $date"
    echo
    echo "- machine: $cpu, $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- command: make bench (dev/bench/run_bench.sh), $STEPS steps per config, step 1 not timed"
    echo "- FLOPs per token: 6N + 6*L*C*T (N = parameters except wpe)"
    echo
} > "$out"

if [ -x dev/bench/bench_matmul ]; then
    echo "## matmul kernel vs OpenBLAS" | tee -a "$out"
    echo '```' >> "$out"
    ./dev/bench/bench_matmul | tee -a "$out"
    echo '```' >> "$out"
fi

echo | tee -a "$out"
echo "## training steps (train_gpt)" | tee -a "$out"
echo | tee -a "$out"
echo "| model | B | T | ms/step | tokens/s | GFLOP/s |" | tee -a "$out"
echo "|---|---|---|---|---|---|" | tee -a "$out"
for cfg in "d12 4 64" "d6 8 256"; do
    set -- $cfg
    log=$(mktemp)
    ./train_gpt -e "$1" -b "$2" -t "$3" -x "$STEPS" -v 0 -s 0 > "$log" 2>&1 || { cat "$log"; exit 1; }
    line=$(grep "^average step" "$log")
    ms=$(echo "$line" | sed -E 's/average step: ([0-9.]+) ms.*/\1/')
    tps=$(echo "$line" | sed -E 's/.* ms, ([0-9]+) tok\/s.*/\1/')
    gf=$(echo "$line" | sed -E 's/.* tok\/s, ([0-9.]+) GFLOP\/s.*/\1/')
    echo "| $1 | $2 | $3 | $ms | $tps | $gf |" | tee -a "$out"
    rm -f "$log"
done
# data parallel: the same d6 step (B=8 per step in all) as 1 process x 2 threads and as
# 2 MPI processes x 1 thread, B=4 each
if ldd ./train_gpt | grep -q libmpi; then
    echo | tee -a "$out"
    echo "## processes (d6, T=256, 2048 tokens per step)" | tee -a "$out"
    echo | tee -a "$out"
    echo "| processes x threads | ms/step | tokens/s |" | tee -a "$out"
    echo "|---|---|---|" | tee -a "$out"
    for np in 1 2; do
        log=$(mktemp)
        b=$(( 8 / np )); th=$(( 2 / np ))
        OMP_NUM_THREADS=$th mpirun --allow-run-as-root --oversubscribe --bind-to none -np $np \
            ./train_gpt -e d6 -b $b -t 256 -x "$STEPS" -v 0 -s 0 > "$log" 2>&1 || { cat "$log"; exit 1; }
        line=$(grep "^average step" "$log")
        ms=$(echo "$line" | sed -E 's/average step: ([0-9.]+) ms.*/\1/')
        tps=$(echo "$line" | sed -E 's/.* ms, ([0-9]+) tok\/s.*/\1/')
        echo "| $np x $th | $ms | $tps |" | tee -a "$out"
        rm -f "$log"
    done
fi
for s in ${BENCH_SCRIPTS:-}; do
    echo; echo "=== $s"; bash "$s"
done
echo
echo "results written to $out"
