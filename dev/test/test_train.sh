#!/usr/bin/env bash
# End-to-end checks of the train_gpt program on tiny shakespeare: flags, errors,
# reproducibility, checkpoints.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
TRAIN=dev/data/tinyshakespeare/tiny_shakespeare_train.bin
VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
work=$(mktemp -d /tmp/test_train.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }

# --help lists the flags and exits 0
out=$(./train_gpt --help 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q -- "--train-data" && echo "$out" | grep -q -- "--no-shuffle" \
   && echo "$out" | grep -q -- "--seed" && echo "$out" | grep -q -- "-x, --max-steps"; then
    pass "--help lists the flags"
else
    fail "--help lists the flags" "rc=$rc"
fi

# bad input: non-zero exit and one message naming the flag
expect_error() {  # name, expected text, args...
    local name=$1 text=$2; shift 2
    local out rc
    out=$(./train_gpt "$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$text"; then
        pass "refuses $name ($out)"
    else
        fail "refuses $name" "rc=$rc, stderr: $out"
    fi
}
expect_error "-b 0" "^error: -b" -b 0
expect_error "an unknown flag" "unknown flag '--frobnicate'" --frobnicate 1
expect_error "an unknown schedule" "^error: -k" -k triangle
expect_error "a missing model" "^error: -e" -e /nonexistent/model.bin
expect_error "T above maxT" "^error: -t" -e d1 -t 2048
expect_error "-d not a multiple of B*T" "^error: -d" -e d1 -b 2 -t 32 -d 100
expect_error "train data that does not exist" "^error: -i: no files match" -e d1 -i "/nonexistent/*.bin"
expect_error "a corrupt checkpoint" "bad magic" -e "$TRAIN"
expect_error "B*T larger than the data" "^error: -j: data .* fewer than one batch" -e d1 -b 64 -t 1024
expect_error "a missing HellaSwag file" "^error: --hellaswag: /nonexistent.bin: cannot open" -e d1 -h 1 --hellaswag /nonexistent.bin
expect_error "-y without -o" "^error: -y" -e d1 -y 1
expect_error "an unknown attention kernel" "^error: --attention: unknown kernel 'flash' (scalar, tc, cudnn)" -e d1 --attention flash
${PYTHON:-.venv/bin/python} dev/reference/gpt2_reference.py --out "$work/small" --maxT 16 --steps 0 > /dev/null
expect_error "a checkpoint smaller than -t" "^error: -t: sequence length 64 exceeds the model's maxT 16" -e "$work/small_model.bin" -t 64

# reproducibility: same seed and threads => bitwise the same log and checkpoint
run() {  # dir, extra args...
    local dir=$1; shift
    ./train_gpt -e d1 -b 2 -t 32 -x 4 -v 2 -m 3 -s 0 -i "$TRAIN" -j "$VAL" -o "$dir" "$@" > "$dir.out" 2>&1
}
run "$work/a" --seed 7 && run "$work/b" --seed 7
if cmp -s "$work/a/main.log" "$work/b/main.log" && cmp -s "$work/a/model_00000004.bin" "$work/b/model_00000004.bin"; then
    pass "same seed: identical log and checkpoint"
else
    fail "same seed: identical log and checkpoint" "$(diff "$work/a/main.log" "$work/b/main.log" | head -5)"
fi
run "$work/c" --seed 8
if ! cmp -s "$work/a/main.log" "$work/c/main.log"; then pass "another seed: another run"; else fail "another seed: another run" "logs identical"; fi
run "$work/d" --seed 7 --no-shuffle
if [ "$(grep -m1 trl "$work/a/main.log")" != "$(grep -m1 trl "$work/d/main.log")" ]; then
    pass "--no-shuffle: other batches"
else
    fail "--no-shuffle: other batches" "first losses identical"
fi
if [ "$(grep -c trl "$work/a/main.log")" -eq 4 ] && [ "$(grep -c tel "$work/a/main.log")" -eq 3 ]; then
    pass "log: 4 train lines and 3 val lines in llm.c's format"
else
    fail "log: 4 train lines and 3 val lines" "$(cat "$work/a/main.log")"
fi

# the checkpoint holds the trained weights: its val loss is the run's last val loss
last_val=$(grep "^s:4 tel:" "$work/a/main.log" | cut -d: -f3)
./train_gpt -e "$work/a/model_00000004.bin" -b 2 -t 32 -x 0 -v 1 -m 3 -s 0 -i "$TRAIN" -j "$VAL" -o "$work/e" > "$work/e.out" 2>&1
reload_val=$(grep "^s:0 tel:" "$work/e/main.log" | cut -d: -f3)
if [ -n "$last_val" ] && [ "$last_val" = "$reload_val" ]; then
    pass "checkpoint reloads to the same val loss ($last_val)"
else
    fail "checkpoint reloads to the same val loss" "run: '$last_val', reloaded: '$reload_val'"
fi

# gradient accumulation: -d = 2*B*T runs 2 micro-steps per step
if ./train_gpt -e d1 -b 2 -t 32 -d 128 -x 2 -v 0 -s 0 -i "$TRAIN" > "$work/f.out" 2>&1 && grep -q "2 accumulation steps" "$work/f.out"; then
    pass "gradient accumulation to -d 128"
else
    fail "gradient accumulation to -d 128" "$(tail -3 "$work/f.out")"
fi

# sampling decodes text with the tokenizer
if ./train_gpt -e d1 -b 2 -t 32 -x 1 -v 0 -s 1 -g 8 -i "$TRAIN" > "$work/g.out" 2>&1 && grep -q -- "^---" "$work/g.out" \
   && ! grep -q "warning" "$work/g.out"; then
    pass "sampling prints decoded text"
else
    fail "sampling prints decoded text" "$(tail -5 "$work/g.out")"
fi
# launch scripts: print the command, check inputs, refuse clearly
TS="dev/data/tinyshakespeare/tiny_shakespeare_*.bin"
out=$(DRY_RUN=1 BIN=./train_gpt TRAIN_DATA="$TS" VAL_DATA="$TS" bash scripts/train_gpt2_8gpu.sh 1558M 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "mpirun -np 8 --bind-to none ./train_gpt .*-e d48 -b 16 -t 1024 -d 1048576 -x 9536 -l 2e-4 -u 357"; then
    pass "scripts/train_gpt2_8gpu.sh prints the 1558M command with GPT-3's hyperparameters"
else
    fail "scripts/train_gpt2_8gpu.sh 1558M" "rc=$rc: $out"
fi
out=$(DRY_RUN=1 BIN=./train_gpt TRAIN_DATA="/nonexistent/*.bin" bash scripts/train_gpt2_8gpu.sh 124M 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "no train shards match '/nonexistent/\*.bin'"; then
    pass "launch script refuses missing data ($out)"
else
    fail "launch script refuses missing data" "rc=$rc: $out"
fi
printf 'node1 slots=8\nnode2 slots=8\n' > "$work/hosts"
out=$(DRY_RUN=1 BIN=./train_gpt TRAIN_DATA="$TS" VAL_DATA="$TS" HOSTFILE="$work/hosts" NODES=2 bash scripts/train_multinode.sh 350M 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "mpirun --hostfile $work/hosts --map-by ppr:8:node .* -np 16 .*-e d24"; then
    pass "scripts/train_multinode.sh prints a 16-process mpirun over the hostfile"
else
    fail "scripts/train_multinode.sh" "rc=$rc: $out"
fi
out=$(DRY_RUN=1 BIN=./train_gpt TRAIN_DATA="$TS" VAL_DATA="$TS" HOSTFILE="$work/hosts" NODES=3 bash scripts/train_multinode.sh 350M 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "lists 2 nodes, fewer than NODES=3"; then
    pass "scripts/train_multinode.sh refuses a short hostfile"
else
    fail "scripts/train_multinode.sh short hostfile" "rc=$rc: $out"
fi
out=$(DRY_RUN=1 SLURM_NNODES=4 BIN=./train_gpt TRAIN_DATA="$TS" VAL_DATA="$TS" bash scripts/train_slurm.sbatch 774M 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "srun --mpi=pmix --kill-on-bad-exit=1 ./train_gpt .*-e d36"; then
    pass "scripts/train_slurm.sbatch prints the srun command"
else
    fail "scripts/train_slurm.sbatch" "rc=$rc: $out"
fi
[ $fails -eq 0 ]
