#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh: packages, python env, data), builds train_gpt and
# trains a small GPT-2 (d6: 6 layers, 384 channels, GPT-2's vocabulary) on tiny shakespeare,
# on the CPU. Prints val loss and samples as it goes; log and checkpoint in log_shakespeare_d6/.
# Extra arguments are passed to train_gpt (e.g. -x 300 for a longer run).
set -eu
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s train_gpt
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
# Run again, it continues an interrupted run (-y 1; a finished one says so); to train again
# from scratch, delete log_shakespeare_d6 or pass --overwrite.
RESUME="-y 1"
for a in "$@"; do [ "$a" = "--overwrite" ] && RESUME=""; done
set -x
./train_gpt -e d6 -b 8 -t 256 -x -1 -l 1e-3 -u 10 -q 0.1 -c 0.1 -v 25 -m 8 -s 50 -g 64 \
    -o log_shakespeare_d6 $RESUME "$@"
