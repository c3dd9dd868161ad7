#!/usr/bin/env bash
# make bench: quant_matmul_forward's speed at BT = 1 (dev/infer/bench_quant.c): GB/s of weight
# bytes read, fp32 / int8 / int4 on GPT-2 124M's shapes, with OMP_NUM_THREADS threads (run_bench.sh
# sets 2) and with 1; the tables also go to dev/infer/results/bench_quant_<date>.md.
set -eu
cd "$(dirname "$0")/../.."
if [ ! -x dev/infer/bench_quant ]; then echo "dev/infer/bench_quant is not built (make dev/infer/bench_quant)"; exit 1; fi
mkdir -p dev/infer/results
out=dev/infer/results/bench_quant_$(date -u +%Y-%m-%d).md
{
    echo "# quant_matmul_forward at BT = 1, $(date -u +%Y-%m-%d)"
    echo
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo '```'
    ./dev/infer/bench_quant
    echo
    OMP_NUM_THREADS=1 ./dev/infer/bench_quant
    echo '```'
} | tee "$out"
echo "results written to $out"
