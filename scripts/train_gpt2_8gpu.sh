#!/usr/bin/env bash
# GPT-2 on one node of 8 GPUs, with the GPT-3 paper's hyperparameters for each size
# (Brown et al. 2020, table 2.1: batch and learning rate; warmup over 375M tokens, cosine decay
# to 10%, weight decay 0.1, grad clip 1.0; betas 0.9/0.95), ZeRO-1, 10B tokens by default.
#
#   scripts/train_gpt2_8gpu.sh 124M|350M|774M|1558M [extra train_gpt_cu flags]
#
# Environment: BIN (default ./train_gpt_cu), TRAIN_DATA, VAL_DATA (glob patterns of token shards; default FineWeb 10B shards
# as llm.c names them), TOKENS (training tokens, default 10e9), OUT_DIR, NPROC (default 8),
# DRY_RUN=1 to print the command and check the inputs without starting. HellaSwag runs every
# 2000 steps: it needs dev/data/eval/hellaswag.bin (make eval-data), or pass -h 0.
# As root, mpirun is allowed to run (scripts/launch_common.sh).
set -eu
cd "$(dirname "$0")/.."
. scripts/launch_common.sh
size=${1:-}
[ $# -gt 0 ] && shift
case "$size" in
    124M)  preset=d12; batch=524288;  lr=6e-4;   micro=64 ;;
    350M)  preset=d24; batch=524288;  lr=3e-4;   micro=32 ;;
    774M)  preset=d36; batch=524288;  lr=2.5e-4; micro=16 ;;
    1558M) preset=d48; batch=1048576; lr=2e-4;   micro=16 ;;
    *) launch_fail "usage: $0 124M|350M|774M|1558M [flags]" ;;
esac
NPROC=${NPROC:-8}
TRAIN_DATA=${TRAIN_DATA:-dev/data/fineweb10B/fineweb_train_*.bin}
VAL_DATA=${VAL_DATA:-dev/data/fineweb10B/fineweb_val_*.bin}
TOKENS=${TOKENS:-10000000000}
OUT_DIR=${OUT_DIR:-log_gpt2_$size}
T=1024
steps=$(python3 -c "print(int(float('$TOKENS')) // $batch)")
warmup=$(( 375000000 / batch ))
BIN=${BIN:-./train_gpt_cu}
launch_check_inputs "$BIN" "$TRAIN_DATA" "$VAL_DATA"
launch_run mpirun -np "$NPROC" --bind-to none "$BIN" \
    -i "$TRAIN_DATA" -j "$VAL_DATA" -o "$OUT_DIR" -e "$preset" \
    -b "$micro" -t "$T" -d "$batch" -x "$steps" \
    -l "$lr" -u "$warmup" -q 0.1 -c 0.1 -k cosine \
    -z 1 -v 250 -m 20 -s 5000 -h 2000 -n 5000 -nk 2 -nm 20000 -y 1 \
    "$@"
