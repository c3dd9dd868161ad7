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

# llm.c's numbering: the first step is s:0 trl, measured on the same weights as s:0 tel; a
# 4-step run ends with s:3 trl and the final s:4 tel
steps_seen=$(grep -o '^s:[0-9]* t[re]l' "$work/a/main.log" | tr '\n' ' ')
if [ "$steps_seen" = "s:0 tel s:0 trl s:1 trl s:2 tel s:2 trl s:3 trl s:4 tel " ]; then
    pass "log: llm.c's step numbering (s:0 trl first, s:N tel and s:N trl on the same weights)"
else
    fail "log: llm.c's step numbering" "got: $steps_seen"
fi
# main.jsonl: the run record first (parameter counts, FLOPs per token), steps numbered as main.log
first=$(head -1 "$work/a/main.jsonl")
if echo "$first" | grep -q '^{"step":0,"run":{"init_model":"d1","L":1,"C":64,.*"n_params_nonembed":[0-9]*,"n_params_head":[0-9]*,"flops_per_token"' &&
   [ "$(grep -c '"loss"' "$work/a/main.jsonl")" -eq 4 ] && grep -q '^{"step":0,"loss"' "$work/a/main.jsonl" &&
   grep -q '^{"step":3,"loss"' "$work/a/main.jsonl"; then
    pass "main.jsonl: a run record first, train steps 0..3"
else
    fail "main.jsonl: run record and step numbering" "$(head -3 "$work/a/main.jsonl")"
fi

# budgets: --max-tokens and --max-flops set the steps (rounded), counted as the log counts FLOPs;
# --dry-run prints the plan and writes nothing
plan=$(./train_gpt -e d1 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 --max-tokens 1000 --dry-run -o "$work/dry" 2>&1 | grep '^plan:')
fpt=$(echo "$plan" | awk '{ for (i = 2; i < NF; i++) if ($i == "flops_per_token") print $(i + 1) }')
if echo "$plan" | grep -q '^plan: steps 16 tokens 1024 ' && [ ! -e "$work/dry" ]; then
    pass "--max-tokens 1000 at 64 tokens per step: 16 steps; --dry-run writes nothing ($plan)"
else
    fail "--max-tokens / --dry-run" "plan: '$plan', $(ls "$work/dry" 2>&1 | head -2)"
fi
# the same 16 steps from a FLOP budget of 16.4 steps' worth (rounds down), and 16.6 (rounds up)
want_low=$(awk -v f="$fpt" 'BEGIN { printf "%.6e", f * 64 * 16.4 }')
want_high=$(awk -v f="$fpt" 'BEGIN { printf "%.6e", f * 64 * 16.6 }')
s_low=$(./train_gpt -e d1 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 --max-flops "$want_low" --dry-run 2>&1 | sed -n 's/^plan: steps \([0-9]*\) .*/\1/p')
s_high=$(./train_gpt -e d1 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 --max-flops "$want_high" --dry-run 2>&1 | sed -n 's/^plan: steps \([0-9]*\) .*/\1/p')
if [ "$s_low" = 16 ] && [ "$s_high" = 17 ]; then
    pass "--max-flops: steps = FLOPs / (FLOPs per token x tokens per step), rounded (16.4 -> 16, 16.6 -> 17)"
else
    fail "--max-flops rounding" "16.4 steps' FLOPs -> '$s_low', 16.6 -> '$s_high'"
fi
# the FLOPs per token the plan uses is the one the trainer's log line states: 6N + 6LCT
line=$(./train_gpt -e d1 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 -x 1 --dry-run 2>&1 | grep '^parameters:')
n_head=$(echo "$line" | sed -n 's/.* \([0-9]*\) without wpe.*/\1/p')
if [ -n "$n_head" ] && awk -v n="$n_head" -v f="$fpt" 'BEGIN { x = 6 * n + 6 * 1 * 64 * 32; d = f - x; exit !(d * d < 1e-10 * x * x) }'; then
    pass "FLOPs per token = 6N + 6LCT with N = $n_head (every parameter but wpe)"
else
    fail "FLOPs per token" "line: '$line', flops_per_token $fpt"
fi
expect_error "-x with --max-flops" "^error: -x, --max-tokens and --max-flops each set the run's length: give one" -e d1 -x 5 --max-flops 1e9
expect_error "a budget under one step" "^error: --max-tokens: 10 is less than one step of 64 tokens" -e d1 -b 2 -t 32 --max-tokens 10 -i "$TRAIN" -j "$VAL"
expect_error "--vocab-size with a checkpoint" "^error: --vocab-size sets a dN preset's vocabulary" -e "$work/small_model.bin" --vocab-size 4096
# --vocab-size: a preset with another vocabulary, padded to a multiple of 128; data outside it is refused
expect_error "GPT-2 data with --vocab-size 1000" "token id [0-9]* at position [0-9]* is out of range for a vocabulary of 1000 tokens" \
    -e d1 --vocab-size 1000 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 -x 1
out=$(./train_gpt -e d1 --vocab-size 50300 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 -x 1 --dry-run 2>&1)
if echo "$out" | grep -q "V=50300 Vp=50304"; then pass "--vocab-size 50300: V=50300, stored padded to Vp=50304"
else fail "--vocab-size" "$(echo "$out" | grep -E 'model:|error' | head -3)"; fi
# --warmup-frac: warmup as a fraction of the run's steps
out=$(./train_gpt -e d1 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 --max-tokens 1280 --warmup-frac 0.25 --dry-run 2>&1)
if echo "$out" | grep -q "warmup 5,"; then pass "--warmup-frac 0.25 of 20 steps: warmup 5"
else fail "--warmup-frac" "$(echo "$out" | grep optimizer)"; fi

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
