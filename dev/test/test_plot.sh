#!/usr/bin/env bash
# dev/plot_log.py: a tiny run's main.jsonl and a hand-written llm.c main.log, with --logx,
# --smooth and --title, write PNGs; a python without matplotlib re-executes under one with it.
set -u
cd "$(dirname "$0")/../.."
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
[ -n "${KEEP_PNG:-}" ] && trap 'cp "$work"/*.png "$KEEP_PNG"/; rm -rf "$work"' EXIT
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
PY=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}

# a tiny run (main.jsonl and main.log)
OMP_NUM_THREADS=2 ./train_gpt -e d1 -b 2 -t 32 -x 6 -v 2 -m 2 -s 0 -o "$work/tiny" > "$work/tiny.out" 2>&1 ||
    fail "tiny training run for the plot" "$(tail -3 "$work/tiny.out")"
# an llm.c main.log by hand: 40 steps, val every 10, HellaSwag twice
mkdir -p "$work/llmc_run"
awk 'BEGIN { for (s = 0; s < 40; s++) {
    printf "s:%d trl:%.4f lr:0.000600 norm:1.00\n", s, 10 - s * 0.1 + (s % 3) * 0.2
    if (s % 10 == 0) printf "s:%d tel:%.4f\n", s, 10 - s * 0.09
    if (s % 20 == 0) printf "s:%d eval:%.4f\n", s, 0.25 + s * 0.001 } }' > "$work/llmc_run/main.log"

out=$($PY dev/plot_log.py "$work/tiny" "$work/llmc_run/main.log" --tokens-per-step 64 --logx --smooth 5 \
      --title "tiny runs" -o "$work/both.png" 2>&1); rc=$?
if [ $rc -eq 0 ] && is_png "$work/both.png"; then
    pass "plot_log.py: main.jsonl and an llm.c main.log, --logx --smooth 5 --title, writes a PNG"
else
    fail "plot_log.py main.jsonl + main.log" "rc=$rc: $out"
fi
out=$($PY dev/plot_log.py "$work/llmc_run" -o "$work/steps.png" 2>&1); rc=$?
if [ $rc -eq 0 ] && is_png "$work/steps.png"; then
    pass "plot_log.py: a directory holding only main.log plots against steps"
else
    fail "plot_log.py main.log directory" "rc=$rc: $out"
fi
printf 'not a log\n' > "$work/bad.log"
out=$($PY dev/plot_log.py "$work/bad.log" -o "$work/bad.png" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "bad.log: no 's:N trl:X'"; then
    pass "plot_log.py refuses a file that is not a log, naming it"
else
    fail "plot_log.py bad log" "rc=$rc: $out"
fi
# python -S: no site packages, so no matplotlib; the script re-executes under .venv / Debian's
out=$(python3 -S dev/plot_log.py "$work/tiny" -o "$work/reexec.png" 2>&1); rc=$?
if [ $rc -eq 0 ] && is_png "$work/reexec.png"; then
    pass "plot_log.py under a python without matplotlib re-executes under one that has it"
else
    fail "plot_log.py without matplotlib" "rc=$rc: $out"
fi
out=$(LLMC_PLOT_REEXEC=1 python3 -S dev/plot_log.py "$work/tiny" -o "$work/none.png" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "has no matplotlib"; then
    pass "plot_log.py says clearly when no python has matplotlib"
else
    fail "plot_log.py no matplotlib anywhere" "rc=$rc: $out"
fi
[ $fails -eq 0 ]
