#!/usr/bin/env bash
# Runs each test given on the command line and counts results.
# A test prints "PASS: name" / "FAIL: name: why" lines; a test that exits non-zero
# without printing FAIL counts as one failure, so a crash is never silent.
set -u
pass=0
fail=0
times=$(mktemp)
failed=$(mktemp)
for t in "$@"; do
    echo "=== $t"
    t0=$(date +%s)
    out=$(mktemp)
    bash -c "$t" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(grep -c '^PASS: ' "$out")
    f=$(grep -c '^FAIL: ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL: $t exited with status $rc" | tee -a "$out"
        f=1
    fi
    if [ "$rc" -eq 0 ] && [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "FAIL: $t checked nothing" | tee -a "$out"
        f=1
    fi
    # the failures again at the end, with their test: CI shows only the tail of the output
    grep '^FAIL: ' "$out" | sed "s|^|[$t] |" >> "$failed"
    pass=$((pass + p))
    fail=$((fail + f))
    rm -f "$out"
    echo "$(( $(date +%s) - t0 )) $t" >> "$times"
done
# where CI's time goes (the budget is 30 minutes on 2 cores)
echo
echo "slowest tests (seconds):"
sort -rn "$times" | head -8 | sed 's/^/  /'
rm -f "$times"
if [ -s "$failed" ]; then
    echo
    echo "failed:"
    cut -c1-400 "$failed" | sed 's/^/  /'
fi
rm -f "$failed"
echo
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
