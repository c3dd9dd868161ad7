#!/usr/bin/env bash
# The launch scripts (scripts/): --allow-run-as-root for mpirun as root, no temp files left
# behind, the HellaSwag file checked when the run evaluates it. DRY_RUN=1: nothing is started.
set -u
cd "$(dirname "$0")/../.."
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TS="dev/data/tinyshakespeare/tiny_shakespeare_*.bin"
HS="$work/hs.bin"; : > "$HS"
export DRY_RUN=1 BIN=./train_gpt TRAIN_DATA="$TS" VAL_DATA="$TS"

# mpirun as root needs --allow-run-as-root (its environment equivalent, so the printed command
# stays the same): really start one process of a stand-in binary through the launcher
printf '#!/bin/sh\necho "stand-in started: $*"\n' > "$work/stub"; chmod +x "$work/stub"
out=$(DRY_RUN=0 NPROC=1 BIN="$work/stub" OUT_DIR="$work/out" timeout 60 bash scripts/train_gpt2_8gpu.sh 124M --hellaswag "$HS" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "stand-in started: .*-e d12"; then
    pass "scripts/train_gpt2_8gpu.sh starts mpirun as $(id -un)$([ "$(id -u)" -eq 0 ] && echo ' (root: allowed)')"
else
    fail "scripts/train_gpt2_8gpu.sh starts mpirun as $(id -un)" "rc=$rc: $out"
fi
if [ "$(id -u)" -eq 0 ]; then
    out=$(bash scripts/train_gpt2_8gpu.sh 124M --hellaswag "$HS" 2>&1)
    if echo "$out" | grep -q "as root: with OMPI_ALLOW_RUN_AS_ROOT=1"; then
        pass "as root, the launcher says mpirun is allowed to run as root"
    else
        fail "as root, the launcher says so" "$out"
    fi
fi
printf 'node1 slots=8\nnode2 slots=8\n' > "$work/hosts"
out=$(SLURM_NNODES=2 bash scripts/train_slurm.sbatch 124M --hellaswag "$HS" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "srun --mpi=pmix --kill-on-bad-exit=1 ./train_gpt" && ! echo "$out" | grep -q -- "--allow-run-as-root"; then
    pass "scripts/train_slurm.sbatch runs srun (no mpirun flags)"
else
    fail "scripts/train_slurm.sbatch" "rc=$rc: $out"
fi

# no temp files left, on success and on failure (missing data makes the inner dry run fail)
mkdir -p "$work/tmp"
before=$(ls /tmp/launch_cmd.* 2>/dev/null | wc -l)
TMPDIR="$work/tmp" HOSTFILE="$work/hosts" NODES=2 bash scripts/train_multinode.sh 350M --hellaswag "$HS" > /dev/null 2>&1
TMPDIR="$work/tmp" HOSTFILE="$work/hosts" NODES=2 TRAIN_DATA="/nonexistent/*.bin" bash scripts/train_multinode.sh 350M > /dev/null 2>&1
TMPDIR="$work/tmp" SLURM_NNODES=2 bash scripts/train_slurm.sbatch 124M --hellaswag "$HS" > /dev/null 2>&1
TMPDIR="$work/tmp" SLURM_NNODES=2 TRAIN_DATA="/nonexistent/*.bin" bash scripts/train_slurm.sbatch 124M > /dev/null 2>&1
after=$(ls /tmp/launch_cmd.* 2>/dev/null | wc -l)
left=$(ls -A "$work/tmp")
if [ -z "$left" ] && [ "$after" -le "$before" ]; then
    pass "train_multinode.sh and train_slurm.sbatch leave no temp files (success and failure)"
else
    fail "launchers leave temp files" "in TMPDIR: '$left'; /tmp/launch_cmd.*: $before before, $after after"
fi

# HellaSwag: checked when -h > 0, not when -h 0
out=$(bash scripts/train_gpt2_8gpu.sh 124M --hellaswag "$work/missing.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "HellaSwag file $work/missing.bin not found, and -h 2000 evaluates it (make eval-data"; then
    pass "a launcher refuses a missing HellaSwag file: $out"
else
    fail "launcher with a missing HellaSwag file" "rc=$rc: $out"
fi
out=$(bash scripts/train_gpt2_8gpu.sh 124M --hellaswag="$work/missing.bin" -h 0 2>&1); rc=$?
if [ $rc -eq 0 ]; then
    pass "with -h 0 the HellaSwag file is not needed"
else
    fail "launcher with -h 0" "rc=$rc: $out"
fi
out=$(HOSTFILE="$work/hosts" NODES=2 bash scripts/train_multinode.sh 124M --hellaswag-every=5 --hellaswag "$work/missing.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "HellaSwag file $work/missing.bin not found, and -h 5"; then
    pass "train_multinode.sh refuses a missing HellaSwag file too"
else
    fail "train_multinode.sh with a missing HellaSwag file" "rc=$rc: $out"
fi
[ $fails -eq 0 ]
