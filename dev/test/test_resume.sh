#!/usr/bin/env bash
# Long-run safety, end to end on tiny shakespeare: exact resume after kill -9 at two points
# (gradient accumulation and shuffling on), kill -9 in the middle of a checkpoint write,
# SIGTERM, checkpoint retention, the spike/NaN guard, and the logs of a resumed run.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
work=$(mktemp -d /tmp/test_resume.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
ARGS="-e d1 -b 2 -t 32 -d 128 -x 8 -v 3 -m 2 -s 4 -g 4 -n 3 -l 3e-3 -c 0.1 --seed 11"
train() { ./train_gpt $ARGS "$@"; }

same_run() {  # name, dir: compares a run's final state with the uninterrupted reference
    local name=$1 dir=$2
    if cmp -s "$work/ref/model_00000008.bin" "$dir/model_00000008.bin" &&
       cmp -s "$work/ref/state_00000008_00000.bin" "$dir/state_00000008_00000.bin" &&
       cmp -s "$work/ref/main.log" "$dir/main.log" &&
       diff -q <(sed 's/,"ms".*//' "$work/ref/main.jsonl") <(sed 's/,"ms".*//' "$dir/main.jsonl") >/dev/null; then
        pass "$name: bitwise the same weights, optimizer state and logs as the uninterrupted run"
    else
        fail "$name" "differs from the uninterrupted run: $(diff "$work/ref/main.log" "$dir/main.log" | head -4 | tr '\n' ' ')"
    fi
}

train -o "$work/ref" > "$work/ref.out" 2>&1 || fail "reference run" "$(tail -3 "$work/ref.out")"

# 1. kill -9 at step 4 (after the step-3 checkpoint) and at step 7 (after step 6), resume twice
LLMC_TEST_KILL_AT_STEP=4 train -o "$work/k" > "$work/k1.out" 2>&1
rc1=$?
LLMC_TEST_KILL_AT_STEP=7 train -o "$work/k" -y 1 > "$work/k2.out" 2>&1
rc2=$?
train -o "$work/k" -y 1 > "$work/k3.out" 2>&1
rc3=$?
if [ $rc1 -eq 137 ] && [ $rc2 -eq 137 ] && [ $rc3 -eq 0 ] && grep -q "resume: from step 3" "$work/k2.out" &&
   grep -q "resume: from step 6" "$work/k3.out"; then
    pass "killed at steps 4 and 7, resumed from 3 and 6"
else
    fail "killed at steps 4 and 7, resumed from 3 and 6" "rc=$rc1,$rc2,$rc3"
fi
same_run "resume after two kills" "$work/k"

# 2. kill -9 in the middle of each file of the step-6 checkpoint: the step-3 one stays loadable
n=0
for victim in model_00000006 state_00000006 DONE_00000006; do
    n=$((n + 1))
    d="$work/w$n"  # the kill hook matches the path: keep the victim's name out of the directory
    LLMC_TEST_KILL_IN_WRITE=$victim train -o "$d" > "$d.out" 2>&1
    rc=$?
    stale=$(ls "$d" | grep -c '\.tmp\.')
    train -o "$d" -y 1 > "$d.resume.out" 2>&1
    if [ $rc -eq 137 ] && [ "$stale" -ge 1 ] && grep -q "resume: from step 3" "$d.resume.out" &&
       grep -q "removed .*tmp" "$d.resume.out"; then
        pass "kill -9 while writing $victim: step 3 remains the latest complete checkpoint"
    else
        fail "kill -9 while writing $victim" "rc=$rc stale=$stale: $(grep -m1 resume "$d.resume.out")"
    fi
    same_run "resume after a kill inside $victim" "$d"
done

# 3. SIGTERM: finish the step, checkpoint, exit 0; the resumed run ends where the reference does
./train_gpt $ARGS -o "$work/t" -x 8 -n 0 > "$work/t.out" 2>&1 &
pid=$!
for i in $(seq 1 200); do grep -q "^step    2/8" "$work/t.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid
wait $pid
rc=$?
if [ $rc -eq 0 ] && grep -q "stopped by signal 15" "$work/t.out" && ls "$work/t" | grep -q '^DONE_'; then
    pass "SIGTERM: checkpoint written, exit 0 ($(grep -o 'stopped by signal 15 at step [0-9]*' "$work/t.out"))"
else
    fail "SIGTERM: checkpoint written, exit 0" "rc=$rc: $(tail -2 "$work/t.out" | tr '\n' ' ')"
fi
train -o "$work/t" -y 1 -n 0 > "$work/t2.out" 2>&1
if cmp -s "$work/ref/model_00000008.bin" "$work/t/model_00000008.bin"; then
    pass "resume after SIGTERM: bitwise the same final weights"
else
    fail "resume after SIGTERM" "final weights differ"
fi

# a second signal exits at once, without a checkpoint
./train_gpt $ARGS -o "$work/t3" -x 8 -n 0 > "$work/t3.out" 2>&1 &
pid=$!
for i in $(seq 1 200); do grep -q "^step    1/8" "$work/t3.out" 2>/dev/null && break; sleep 0.05; done
kill -TERM $pid; kill -INT $pid
wait $pid
rc=$?
# (pending signals are delivered lowest number first, so the exit is 128+INT or 128+TERM)
if { [ $rc -eq 130 ] || [ $rc -eq 143 ]; } && ! ls "$work/t3" | grep -q '^DONE_'; then
    pass "a second signal exits at once (exit $rc, no checkpoint)"
else
    fail "a second signal exits at once" "rc=$rc: $(ls "$work/t3" | tr '\n' ' ')"
fi

# 4. retention: checkpoint every step, keep the newest 2 and every multiple of 4
train -o "$work/keep" -n 1 -nk 2 -nm 4 > "$work/keep.out" 2>&1
kept=$(ls "$work/keep" | grep '^DONE_' | tr '\n' ' ')
models=$(ls "$work/keep" | grep -c '^model_')
if [ "$kept" = "DONE_00000004 DONE_00000007 DONE_00000008 " ] && [ "$models" -eq 3 ]; then
    pass "retention -nk 2 -nm 4 keeps steps 4, 7, 8"
else
    fail "retention -nk 2 -nm 4" "kept: $kept ($models models)"
fi

# 5. the guard: a learning rate of 10 blows the loss up; bad steps are skipped, then the run
#    stops with an error and a checkpoint of the last accepted state (no update of a bad step
#    in it), which loads
./train_gpt -e d1 -b 2 -t 32 -x 30 -v 0 -s 0 -l 10 -sl 3 -sg 3 --guard-max-bad 3 -o "$work/g" > "$work/g.out" 2>&1
rc=$?
if [ $rc -eq 2 ] && grep -q "update skipped" "$work/g.out" && grep -q "3 bad steps in a row" "$work/g.out" &&
   grep -q '"skipped":1' "$work/g/main.jsonl"; then
    pass "guard: skipped bad steps, stopped after 3 in a row (exit 2)"
else
    fail "guard: skipped bad steps, stopped after 3 in a row" "rc=$rc: $(tail -2 "$work/g.out" | tr '\n' ' ')"
fi
last=$(ls "$work/g" | grep '^model_' | tail -1)
if [ "$last" = "model_00000004.bin" ] && ./train_gpt -e "$work/g/$last" -b 2 -t 32 --eval -m 2 -s 0 > "$work/g2.out" 2>&1 &&
   grep -q "val loss" "$work/g2.out"; then
    pass "guard: the checkpoint written at the stop (step 4) loads and evaluates"
else
    fail "guard: the checkpoint written at the stop" "$last: $(tail -2 "$work/g2.out" | tr '\n' ' ')"
fi

# 6. a state file that does not fit is refused with a message naming it
train -o "$work/bad" -x 3 > /dev/null 2>&1
out=$(./train_gpt $ARGS -d 256 -o "$work/bad" -y 1 2>&1 >/dev/null)
if [ $? -ne 0 ] && echo "$out" | grep -q "state_00000003_00000.bin: state was written with -t 32 -d 128"; then
    pass "resume with another total batch size refused ($out)"
else
    fail "resume with other batch flags refused" "$out"
fi
# a legacy DONE marker (no integrity record) lets the state reader's own checks speak
printf 'done\n' > "$work/bad/DONE_00000003"
printf 'garbage' > "$work/bad/state_00000003_00000.bin"
out=$(./train_gpt $ARGS -x 3 -o "$work/bad" -y 1 2>&1 >/dev/null)
if [ $? -ne 0 ] && echo "$out" | grep -q "state_00000003_00000.bin: file is truncated"; then
    pass "corrupt state file refused ($out)"
else
    fail "corrupt state file refused" "$out"
fi
# 7. the logs plot: two runs, train and val loss against tokens and FLOPs, val bits per byte
plot=$(${PYTHON:-.venv/bin/python} dev/plot_log.py "$work/ref" "$work/k" -o "$work/runs.png" 2>&1)
if [ "$(head -c 8 "$work/runs.png" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ] &&
   [ "$(stat -c %s "$work/runs.png")" -gt 10000 ] &&
   echo "$plot" | grep -q "panels: loss vs tokens, loss vs training FLOPs, val bits per byte"; then
    pass "dev/plot_log.py draws the runs' logs as a PNG ($plot)"
else
    fail "dev/plot_log.py" "no PNG, or not the panels expected: $plot"
fi
[ $fails -eq 0 ]
