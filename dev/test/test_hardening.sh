#!/usr/bin/env bash
# The trainer against hostile and careless use (issue 19): run directories (lock, overwrite,
# --eval, leftovers), integrity of checkpoints, output paths, shards with bad ids, inputs that
# are not files, sizes that overflow, and the messages of bad flags. Each case failed before
# its fix. TRAIN=path runs another binary (e.g. an old build, to see the cases fail).
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
TRAIN_BIN=${TRAIN:-./train_gpt}
PY=${PYTHON:-.venv/bin/python}
TD=dev/data/tinyshakespeare/tiny_shakespeare_train.bin
VD=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
work=$(mktemp -d /tmp/test_hardening.XXXXXX)
bgpid=""
trap '[ -n "$bgpid" ] && kill -9 $bgpid 2>/dev/null; rm -rf "$work"' EXIT
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; }
ARGS="-e d1 -b 2 -t 32 -v 0 -s 0 -i $TD -j $VD"
train() { timeout -s KILL 60 $TRAIN_BIN "$@"; }

# expect_refusal name text args...: non-zero exit (not a crash) and stderr containing text
expect_refusal() {
    local name=$1 text=$2; shift 2
    local out rc
    out=$(train "$@" 2>&1 >/dev/null); rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 124 ] && echo "$out" | grep -q -- "$text"; then
        pass "$name ($(echo "$out" | tail -1))"
    else
        fail "$name" "rc=$rc, stderr: $(echo "$out" | tail -2 | tr '\n' ' ')"
    fi
}

# --- 1. the output directory is locked while a run lives -----------------------------------
$TRAIN_BIN $ARGS -x 100000 -o "$work/live" > "$work/live.out" 2>&1 &
bgpid=$!
for _ in $(seq 100); do grep -q "^step" "$work/live.out" 2>/dev/null && break; sleep 0.1; done
expect_refusal "a second run into a live run's -o is refused, naming the holder's pid" "in use by another run (pid $bgpid" \
    $ARGS -x 2 -o "$work/live" --overwrite
expect_refusal "-y 1 during a live run is refused" "in use by another run (pid $bgpid" $ARGS -x 2 -o "$work/live" -y 1
if kill -0 $bgpid 2>/dev/null; then pass "the live run goes on"; else fail "the live run goes on" "it died"; fi
kill -9 $bgpid 2>/dev/null; wait $bgpid 2>/dev/null; bgpid=""
out=$(train $ARGS -x 2 -n 1 -o "$work/live" -y 1 2>&1); rc=$?
if [ $rc -eq 0 ]; then pass "a killed run's lock is gone: -y 1 continues"; else fail "lock released by kill -9" "$out"; fi

# --- 2. a fresh run never clobbers a run already in -o --------------------------------------
train $ARGS -x 4 -n 2 -o "$work/old" > /dev/null 2>&1
cp "$work/old/main.log" "$work/old.log"
expect_refusal "a fresh run into a directory that holds a run is refused" "already holds a run" $ARGS -x 2 -o "$work/old"
if cmp -s "$work/old/main.log" "$work/old.log" && [ -f "$work/old/DONE_00000004" ]; then
    pass "the old run's log and checkpoints are untouched"
else
    fail "the old run's log and checkpoints are untouched" "changed"
fi
out=$(train $ARGS -x 2 -o "$work/old" --overwrite 2>&1); rc=$?
if [ $rc -eq 0 ] && [ ! -e "$work/old/DONE_00000004" ] && [ ! -e "$work/old/model_00000004.bin" ] && [ -f "$work/old/DONE_00000002" ]; then
    pass "--overwrite replaces the old run (no stale later checkpoint left)"
else
    fail "--overwrite replaces the old run" "rc=$rc $(ls "$work/old" | tr '\n' ' ')"
fi
cp "$work/old/main.log" "$work/old.log"; cp "$work/old/main.jsonl" "$work/old.jsonl"
out=$(train $ARGS -e "$work/old/model_00000002.bin" --eval -m 2 -o "$work/old" 2>&1); rc=$?
if [ $rc -eq 0 ] && cmp -s "$work/old/main.log" "$work/old.log" && cmp -s "$work/old/main.jsonl" "$work/old.jsonl" \
   && grep -q val_loss "$work/old/eval.jsonl"; then
    pass "--eval -o RUN leaves main.log and main.jsonl alone (writes eval.jsonl)"
else
    fail "--eval -o RUN leaves the run's logs alone" "rc=$rc $(diff "$work/old/main.log" "$work/old.log" | head -3)"
fi

# --- 3. -y 1 removes only its own leftovers ---------------------------------------------------
echo keep > "$work/old/notes.tmp.123"
echo junk > "$work/old/model_00000009.bin.tmp.4242"
train $ARGS -x 2 -o "$work/old" -y 1 > /dev/null 2>&1
if [ -f "$work/old/notes.tmp.123" ] && [ ! -e "$work/old/model_00000009.bin.tmp.4242" ]; then
    pass "-y 1 removes its own interrupted writes, not another program's .tmp. files"
else
    fail "-y 1 removes only its own leftovers" "$(ls "$work/old" | tr '\n' ' ')"
fi

# --- 4. integrity: a changed state or model file is refused on resume ------------------------
train $ARGS -x 3 -n 3 -o "$work/tamper" > /dev/null 2>&1
grep -q "^file state_00000003_00000.bin [0-9a-f]\{16\}$" "$work/tamper/DONE_00000003" \
    && pass "DONE marker records each file's checksum" || fail "DONE marker records checksums" "$(cat "$work/tamper/DONE_00000003")"
cp -r "$work/tamper" "$work/tamper2"
# the data-loader position (a field of the state header) changed by one
$PY - "$work/tamper/state_00000003_00000.bin" <<'EOF'
import struct, sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
off = 8 * 13  # loader_seq_pos: the 14th int64 of the header
struct.pack_into('<q', b, off, struct.unpack_from('<q', b, off)[0] + 1)
open(p, 'wb').write(bytes(b))
EOF
expect_refusal "a tampered data-loader position is refused, naming the file" "state_00000003_00000.bin: does not match the checksum" \
    $ARGS -x 4 -o "$work/tamper" -y 1
# NaN moments behind a legacy marker (no checksums): refused by the finiteness check
printf 'done\n' > "$work/tamper2/DONE_00000003"
$PY - "$work/tamper2/state_00000003_00000.bin" <<'EOF'
import struct, sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read())
struct.pack_into('<f', b, len(b) - 8, float('nan'))
open(p, 'wb').write(bytes(b))
EOF
expect_refusal "NaN AdamW moments are refused on resume" "non-finite AdamW moments" $ARGS -x 4 -o "$work/tamper2" -y 1
$PY - "$work/tamper2/model_00000003.bin" "$work/nan_model.bin" <<'EOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
struct.pack_into('<f', b, 1024 + 40, float('inf'))
open(sys.argv[2], 'wb').write(bytes(b))
EOF
expect_refusal "a checkpoint with Inf weights is refused by -e" "non-finite weights" $ARGS -x 1 -e "$work/nan_model.bin"

# --- 5. retention never deletes the last good checkpoint during a streak of bad steps --------
train -e d1 -b 2 -t 32 -v 0 -s 0 -i $TD -x 40 -l 10 -sl 3 -sg 3 --guard-max-bad 12 -n 1 -nk 2 -o "$work/streak" > "$work/streak.out" 2>&1
good=$(grep -l "^good 1" "$work"/streak/DONE_* 2>/dev/null | wc -l)
bad=$(grep -l "^good 0" "$work"/streak/DONE_* 2>/dev/null | wc -l)
if [ "$good" -ge 1 ] && [ "$bad" -ge 2 ]; then
    pass "a 12-step streak with -n 1 -nk 2 keeps the newest good checkpoint ($good good, $bad during the streak)"
else
    fail "retention keeps the newest good checkpoint" "good=$good bad=$bad: $(ls "$work/streak" | tr '\n' ' ')"
fi

# --- 6. a bad token id deep in a shard stops the run before its first step --------------------
$PY - "$TD" "$work/badtok.bin" <<'EOF'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[-200:-198] = (60000).to_bytes(2, 'little')  # near the end of the shard
open(sys.argv[2], 'wb').write(bytes(b))
EOF
out=$(train $ARGS -x 2 -i "$work/badtok.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "badtok.bin: token id 60000" && ! echo "$out" | grep -q "^step"; then
    pass "a bad token id near the end of a shard is refused at start-up, naming the shard"
else
    fail "bad token id refused at start-up" "rc=$rc $(echo "$out" | tail -2 | tr '\n' ' ')"
fi

# --- 7. output paths: logs through symlinks, never over devices, path length up front --------
mkdir -p "$work/links"
touch "$work/real.log"
ln -s "$work/real.log" "$work/links/main.log"
train $ARGS -x 2 -o "$work/links" --overwrite > /dev/null 2>&1
mkdir -p "$work/links2"; ln -s "$work/real2.log" "$work/links2/main.log"; touch "$work/real2.log"
out=$(train $ARGS -x 2 -n 1 -o "$work/links2" -y 1 2>&1)  # resume rewrites the log atomically
if [ -L "$work/links2/main.log" ] && grep -q "trl" "$work/real2.log"; then
    pass "a log that is a symlink is written through (the link stays a link)"
else
    fail "log symlink written through" "$(ls -l "$work/links2" | tr '\n' ' ')"
fi
mkdir -p "$work/full"; ln -s /dev/full "$work/full/main.log"
expect_refusal "a log symlinked to /dev/full is refused, naming it" "main.log: is a character device" $ARGS -x 2 -o "$work/full" -y 1
[ -c /dev/full ] && pass "/dev/full is still a device" || fail "/dev/full is still a device" "replaced"
long="$work/$(printf 'x%.0s' $(seq 1000))"
expect_refusal "an -o path too long for the checkpoint names is refused before training" "-o: the output directory path is" \
    $ARGS -x 2 -o "$long"
out=$(train $ARGS -x 2 2>&1 > /dev/full); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "standard output"; then pass "stdout on a full device: non-zero exit, said on stderr"
else fail "stdout on a full device" "rc=$rc $out"; fi

# --- 8. a run killed before its first checkpoint does not duplicate s:0 on resume -------------
LLMC_TEST_KILL_AT_STEP=2 train $ARGS -x 4 -v 2 -m 1 -o "$work/early" > /dev/null 2>&1
train $ARGS -x 4 -v 2 -m 1 -o "$work/early" -y 1 > /dev/null 2>&1
n0=$(grep -c "^s:0 tel" "$work/early/main.log")
[ "$n0" = 1 ] && pass "resume without a checkpoint: one s:0 tel line" || fail "one s:0 tel line after an early kill" "$n0 lines"

# --- 9. inputs that are not regular files never hang ------------------------------------------
mkfifo "$work/fifo"
expect_refusal "a FIFO as -i is refused" "is a FIFO" $ARGS -x 1 -i "$work/fifo"
expect_refusal "a FIFO as -e is refused" "is a FIFO" $ARGS -x 1 -e "$work/fifo"
expect_refusal "a FIFO as --tokenizer is refused" "is a FIFO" $ARGS -x 1 -s 1 --tokenizer "$work/fifo"
expect_refusal "a FIFO as --hellaswag is refused" "is a FIFO" $ARGS -x 1 -h 1 --hellaswag "$work/fifo"
expect_refusal "a directory as -e is refused" "is a directory" $ARGS -x 1 -e "$work/"
expect_refusal "a directory as -i is refused" "is a directory" $ARGS -x 1 -i "$work"

# --- 10. sizes that overflow an int are refused, not crashed on -------------------------------
$PY - "$work/longctx.bin" <<'EOF'
import struct, sys
L, NH, C, V, Vp, maxT = 1, 1, 8, 50257, 50304, 1 << 20
n = Vp * C + maxT * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C
header = [20240326, 3, maxT, V, L, NH, C, Vp] + [0] * 248
with open(sys.argv[1], 'wb') as f:
    f.write(struct.pack('<256i', *header))
    f.write(b'\0' * (4 * n))
EOF
expect_refusal "-b 4096 -t 1048576 on a long-context checkpoint: a clear error" "B\*T\*processes = 4096\*1048576" \
    -e "$work/longctx.bin" -b 4096 -t 1048576 -x 1 -v 0 -s 0 -i $TD

# --- 11. messages of bad flags ----------------------------------------------------------------
expect_refusal "-l 1e-50 says too small, not 'not a number'" "too small for a 32-bit float" -l 1e-50
expect_refusal "-e d1000 says the preset range" "depth must be 1..256" -e d1000
expect_refusal "-h without a value points to --help" "for help use --help" -h
expect_refusal "-pn/-pr are printed in their order" "-pn 3 -pr 5" -pn 3 -pr 5
expect_refusal "GPU-only flags are refused by the CPU trainer" "GPU option" $ARGS -r 1
expect_refusal "--gelu-fusion refused by the CPU trainer" "GPU option" $ARGS --gelu-fusion 1
expect_refusal "--gelu-fusion 0 refused by the CPU trainer too" "GPU option" $ARGS --gelu-fusion 0
expect_refusal "--overlap-reduce refused by the CPU trainer" "GPU option" $ARGS --overlap-reduce 1
mkdir -p "$work/cwd"; cp "$TD" "$work/cwd/d1"
out=$(cd "$work/cwd" && timeout 20 "$OLDPWD/$TRAIN_BIN" -e d1 -x 1 -v 0 -s 0 -i "$OLDPWD/$TD" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "both a model preset and a file"; then pass "a preset name shadowed by a file is refused"
else fail "preset shadowed by a file" "rc=$rc $(echo "$out" | tail -1)"; fi
out=$(train $ARGS -x 1 -b 2 -b 3 -o "$work/rep" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "note: -b (--batch-size) is given twice ('2', then '3'): using '3'"; then
    pass "a repeated trainer flag: the last wins, said on stderr"
else
    fail "a repeated trainer flag is named" "rc=$rc $(echo "$out" | grep -i note)"
fi

# --- 12. issue 20: resume with changed flags, --eval lines, signals within an evaluation -------
train $ARGS -x 3 -n 3 -o "$work/chg" > /dev/null 2>&1
expect_refusal "-y 1 with a changed -l is refused, naming the change" "-l 0.001 -> 0.002" $ARGS -x 3 -l 0.002 -o "$work/chg" -y 1
out=$(train $ARGS -x 6 -o "$work/chg" -y 1 --accept-changes 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "changed flags (--accept-changes): -x 3 -> 6" && [ -f "$work/chg/DONE_00000006" ]; then
    pass "--accept-changes extends a finished run to a larger -x, naming the change"
else
    fail "--accept-changes extends a run" "rc=$rc $(echo "$out" | tail -2 | tr '\n' ' ')"
fi
out=$(train $ARGS -e "$work/chg/model_00000006.bin" --eval -m 1 2>&1)
if echo "$out" | grep -q "^eval .*model_00000006.bin: val loss" && ! echo "$out" | grep -q "^optimizer:" \
   && echo "$out" | grep -q "accumulation" ; then
    fail "--eval prints eval lines only" "$(echo "$out" | head -8 | tr '\n' ' ')"
elif echo "$out" | grep -q "^eval .*model_00000006.bin: val loss" && ! echo "$out" | grep -q "^optimizer:"; then
    pass "--eval names the model, prints no optimizer or step-0 lines"
else
    fail "--eval names the model" "$(echo "$out" | tail -3 | tr '\n' ' ')"
fi
out=$(train $ARGS -x 1 2>&1)
echo "$out" | grep -q "(1 accumulation step)" && pass "'1 accumulation step', singular" || fail "singular accumulation step" "$(echo "$out" | grep batch:)"
if [ -f dev/data/eval/hellaswag.bin ]; then
    # -m 1: the val loss is one batch; the signal goes 2 s after the start-up lines are out
    # (flushed at once), so it lands in the HellaSwag pass however slow the machine is today
    $TRAIN_BIN $ARGS --eval -m 1 -h 1 -e d2 > "$work/hs.out" 2>&1 &
    hs=$!
    for _ in $(seq 1 600); do grep -q "^eval: B=" "$work/hs.out" && break; sleep 0.1; done
    sleep 2; kill -TERM $hs
    t0=$(date +%s); wait $hs; rc=$?; t1=$(date +%s)
    if [ $((t1 - t0)) -le 10 ] && grep -q "hellaswag evaluation interrupted" "$work/hs.out"; then
        pass "a signal stops a HellaSwag evaluation of 10,042 examples within seconds ($((t1 - t0)) s, rc $rc)"
    else
        fail "a signal within a HellaSwag evaluation" "$((t1 - t0)) s: $(tail -2 "$work/hs.out" | tr '\n' ' ')"
    fi
fi
