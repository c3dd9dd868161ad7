#!/usr/bin/env bash
# The CPU tests again, on binaries built with AddressSanitizer + UndefinedBehaviorSanitizer
# (dev/test/sanitize.mk): the shared-code tests, test_gpt on a fresh reference, and a short
# training run with a checkpoint, a kill and a resume. Any sanitizer report fails the run.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=99
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
PYTHON=${PYTHON:-.venv/bin/python}
work=$(mktemp -d /tmp/test_sanitize.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
run() {  # name, command...
    local name=$1; shift
    if "$@" > "$work/out" 2>&1 && ! grep -q "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$work/out"; then
        echo "PASS: sanitizers: $name"
    else
        echo "FAIL: sanitizers: $name: $(grep -m3 "ERROR\|runtime error\|FAIL" "$work/out" | tr '\n' ' ')"
        fails=$((fails + 1))
    fi
}
run "test_llmc" build/asan/test_llmc dev/data/tinyshakespeare/tiny_shakespeare_val.bin dev/data/gpt2_tokenizer.bin dev/data/eval/hellaswag.bin
$PYTHON dev/reference/gpt2_reference.py --out "$work/ref" --seed $(( $(date +%s) % 100000 )) \
    --L 2 --C 72 --NH 3 --V 997 --maxT 16 --B 4 --T 13 --steps 3 > /dev/null
run "test_gpt" build/asan/test_gpt "$work/ref"
ARGS="-e d1 -b 2 -t 16 -d 64 -x 4 -v 2 -m 2 -s 2 -g 4 -n 2 -h 2 --hellaswag-examples 2"
run "train, checkpoint, eval, sample" build/asan/train_gpt $ARGS -o "$work/run"
(LLMC_TEST_KILL_AT_STEP=3 build/asan/train_gpt $ARGS -o "$work/run2" > /dev/null 2>&1) 2>/dev/null
run "resume after kill -9" build/asan/train_gpt $ARGS -o "$work/run2" -y 1
if cmp -s "$work/run/model_00000004.bin" "$work/run2/model_00000004.bin"; then
    echo "PASS: sanitizers: resumed run equals the uninterrupted one"
else
    echo "FAIL: sanitizers: resumed run differs from the uninterrupted one"; fails=$((fails + 1))
fi
[ $fails -eq 0 ]
