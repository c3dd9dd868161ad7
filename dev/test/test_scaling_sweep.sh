#!/usr/bin/env bash
# scripts/scaling_sweep.sh end to end, at toy size on tiny shakespeare: the plan (DRY_RUN=1),
# an IsoFLOP sweep killed half way and run again (skips, resumes bitwise, finishes), the manifest
# against the budgets and the trainer's own counts, schedules that end with their run, a
# fixed-token sweep under mpirun, and bad settings refused.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
TRAIN=dev/data/tinyshakespeare/tiny_shakespeare_train.bin
VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
work=$(mktemp -d /tmp/test_scaling_sweep.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# a toy sweep: GPT-2's vocabulary, B=2 T=32, budgets of a few seconds each
sweep() {  # OUT, then more VAR=value settings
    local out=$1; shift
    env OUT="$out" TRAIN_DATA="$TRAIN" VAL_DATA="$VAL" VOCAB=50257 B=2 T=32 VAL_BATCHES=4 EVALS=2 CHECKPOINTS=4 \
        PRESETS="d1 d2 d3" BUDGETS="1e11 2e11" LR=1e-3 "$@" bash scripts/scaling_sweep.sh
}

# 1. the plan: every run with its steps, tokens and FLOPs; nothing started
out=$(sweep "$work/dry" DRY_RUN=1 TOKENS_PER_SEC=1000 2>&1); rc=$?
rows=$(echo "$out" | grep -c '^C[12]e11_d[123] ')
if [ $rc -eq 0 ] && [ "$rows" -eq 6 ] && echo "$out" | grep -q "estimated wall time" && [ ! -e "$work/dry" ]; then
    pass "DRY_RUN=1: the plan of 6 runs with an estimated time, nothing written"
else
    fail "DRY_RUN=1" "rc=$rc, $rows rows: $(echo "$out" | tail -3 | tr '\n' ' ')"
fi
# the plan's steps are the trainer's: budget / (FLOPs per token x 64 tokens per step), rounded
fpt=$(./train_gpt -e d2 -b 2 -t 32 -i "$TRAIN" -j "$VAL" -s 0 -x 1 --dry-run | sed -n 's/^plan: .*flops_per_token \([^ ]*\) .*/\1/p')
want=$(awk -v f="$fpt" 'BEGIN { printf "%d", 2e11 / (f * 64) + 0.5 }')
got=$(echo "$out" | awk '$1 == "C2e11_d2" { print $6 }')
if [ -n "$fpt" ] && [ "$got" = "$want" ]; then pass "the plan's steps for d2 at 2e11 FLOPs: $got"
else fail "the plan's steps" "d2 at 2e11: got '$got', want '$want' (FLOPs per token $fpt)"; fi

# 2. killed in its first run (kill -9 at step 30, after the checkpoint of step 20): the sweep stops
out=$(sweep "$work/s" LLMC_TEST_KILL_AT_STEP=30 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "error: C1e11_d1: ./train_gpt exited with 137" && [ ! -e "$work/s/C1e11_d1/FINISHED" ] &&
   grep -q "^C1e11_d1,d1,isoflop,1e+11,,.*,partial$" "$work/s/manifest.csv"; then
    pass "a run killed half way stops the sweep; the manifest says partial"
else
    fail "killed run" "rc=$rc: $(echo "$out" | grep error | head -2) $(cat "$work/s/manifest.csv" 2>&1 | tail -1)"
fi
# run again: the killed run resumes from its checkpoint, the others start; all finish
out=$(sweep "$work/s" 2>&1); rc=$?
done_rows=$(grep -c ',done$' "$work/s/manifest.csv" 2>/dev/null)
if [ $rc -eq 0 ] && echo "$out" | grep -q "resume: from step [1-9][0-9]*" && [ "$done_rows" -eq 6 ]; then
    pass "run again: the interrupted run resumes ($(echo "$out" | grep -o 'resume: from step [0-9]*' | head -1)), all 6 runs done"
else
    fail "resume the sweep" "rc=$rc, $done_rows done: $(echo "$out" | grep -E 'error|resume' | head -3 | tr '\n' ' ')"
fi
# the resumed run is bitwise the run nobody interrupted
sweep "$work/ref" PRESETS=d1 BUDGETS=1e11 > "$work/ref.out" 2>&1
if cmp -s "$work/ref/C1e11_d1/main.log" "$work/s/C1e11_d1/main.log"; then
    pass "the resumed run's main.log is byte for byte the uninterrupted run's"
else
    fail "resumed run" "$(diff "$work/ref/C1e11_d1/main.log" "$work/s/C1e11_d1/main.log" | head -4 | tr '\n' ' ')"
fi
# a third time: everything is skipped
before=$(cat "$work/s/manifest.csv")
out=$(sweep "$work/s" 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(echo "$out" | grep -c 'finished, skipped')" -eq 6 ] && ! echo "$out" | grep -q "^step " &&
   [ "$before" = "$(cat "$work/s/manifest.csv")" ]; then
    pass "run a third time: the 6 finished runs are skipped, the manifest is unchanged"
else
    fail "finished runs skipped" "rc=$rc: $(echo "$out" | tail -3 | tr '\n' ' ')"
fi

# 3. the manifest against the budgets and the trainer's counts, and schedules that end with their run
$PY - "$work/s" <<'EOF'
import csv, json, os, sys
d = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(d, "manifest.csv"))))
bad = []
for r in rows:
    run = json.loads(open(os.path.join(d, r["run"], "main.jsonl")).readline())["run"]
    fpt, tb, steps, budget = float(r["flops_per_token"]), int(r["total_batch"]), int(r["steps"]), float(r["budget_flops"])
    if abs(float(r["flops"]) - steps * tb * fpt) > 1e-5 * float(r["flops"]):
        bad.append(f"{r['run']}: flops {r['flops']} != steps x batch x FLOPs per token")
    if abs(steps * tb * fpt - budget) > 0.5 * tb * fpt * 1.0001:
        bad.append(f"{r['run']}: {steps} steps spend {steps * tb * fpt:.4g} FLOPs, more than half a step from {budget:.4g}")
    if int(r["tokens"]) != steps * tb or steps != run["max_steps"]:
        bad.append(f"{r['run']}: tokens {r['tokens']} / steps {steps} do not match the run's plan")
    C = run["C"]
    if int(r["n_params_head"]) != int(r["n_params"]) - 1024 * C or \
       int(r["n_params_nonembed"]) != int(r["n_params"]) - 1024 * C - run["Vp"] * C:
        bad.append(f"{r['run']}: parameter counts inconsistent")
    if not (float(r["best_val_loss"]) <= float(r["final_val_loss"]) < 11.0 and float(r["tokens_per_second"]) > 0
            and float(r["wall_seconds"]) > 0):
        bad.append(f"{r['run']}: losses / speed / wall time missing or wrong: {r}")
    lrs = [json.loads(l)["lr"] for l in open(os.path.join(d, r["run"], "main.jsonl")) if '"loss"' in l]
    if len(lrs) != steps or not (lrs[-1] < 0.115 * max(lrs)):
        bad.append(f"{r['run']}: the schedule does not end with the run ({len(lrs)} steps, last lr {lrs[-1]:.3g}, peak {max(lrs):.3g})")
if len(rows) != 6:
    bad.append(f"{len(rows)} rows, want 6")
print("\n".join(bad) if bad else "ok")
sys.exit(1 if bad else 0)
EOF
if [ $? -eq 0 ]; then
    pass "manifest: FLOPs within half a step of each budget, counts as the trainer's, cosine ends with each run"
else
    fail "manifest" "see above"
fi

# 4. a fixed-token sweep, each run under mpirun (2 processes, 1 thread each)
if command -v mpirun > /dev/null; then
    out=$(OMP_NUM_THREADS=1 sweep "$work/tok" MODE=tokens TOKENS=2048 PRESETS=d1 LAUNCH="mpirun -np 2 --oversubscribe" 2>&1); rc=$?
    if [ $rc -eq 0 ] && grep -q "^D2048_d1,d1,tokens,,2048,.*,2048,.*,done$" "$work/tok/manifest.csv" &&
       grep -q '"processes":2' "$work/tok/D2048_d1/main.jsonl"; then
        pass "MODE=tokens under LAUNCH=\"mpirun -np 2\": 2048 tokens, 2 processes, done"
    else
        fail "MODE=tokens under mpirun" "rc=$rc: $(echo "$out" | tail -3 | tr '\n' ' ') $(tail -1 "$work/tok/manifest.csv" 2>&1)"
    fi
else
    fail "MODE=tokens under mpirun" "mpirun not found (scripts/setup.sh installs openmpi-bin)"
fi

# 5. bad settings: one clear error each, nothing started
expect_error() {  # name, expected text, settings...
    local name=$1 text=$2; shift 2
    local out rc
    out=$(sweep "$work/bad" "$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$text" && [ ! -e "$work/bad" ]; then pass "refuses $name ($out)"
    else fail "refuses $name" "rc=$rc: $out"; fi
}
expect_error "an unknown MODE" "error: MODE=grid: expected isoflop or tokens" MODE=grid
expect_error "a budget that is not a number" "error: BUDGETS: '1e1x' is not a number" BUDGETS="1e11 1e1x"
expect_error "a preset that is not dN" "error: PRESETS: 'gpt2' is not a dN preset" PRESETS="d1 gpt2"
expect_error "missing val data" "error: set both TRAIN_DATA and VAL_DATA" VAL_DATA=
expect_error "a budget under one step" "less than one step" BUDGETS=1e3

echo "$([ $fails -eq 0 ] && echo "all passed" || echo "$fails failed")"
[ $fails -eq 0 ]
