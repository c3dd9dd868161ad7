#!/usr/bin/env bash
# Data preparation without ../shared/data: the training data (`make data`) does not need
# HellaSwag, and HellaSwag falls back to a checked download. There is no network here, so the
# "download" is a file:// URL to a .bz2 made from the shared copy (same content, same sha256).
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
SHARED=${LLMC_SHARED_DATA:-../shared/data}

# `make data` is the training data only (-B: as if nothing were built yet)
out=$(make -n -B data 2>&1)
if ! echo "$out" | grep -q "eval_tasks.py\|hellaswag.py" && echo "$out" | grep -q "tinyshakespeare.py" &&
   make -n -B eval-data 2>&1 | grep -q "eval_tasks.py"; then
    pass "make data prepares the training data only; make eval-data prepares the evaluation tasks"
else
    fail "make data without HellaSwag" "$out"
fi

if [ ! -f "$SHARED/hellaswag/hellaswag_val_full.txt" ]; then
    echo "(no $SHARED/hellaswag: the download fallback is not checked)"
    [ $fails -eq 0 ]; exit
fi
mkdir -p "$work/shared" "$work/cache"
ln -s "$(cd "$SHARED" && pwd)/gpt2" "$work/shared/gpt2"   # the tokenizer stays; HellaSwag is missing
bzip2 -c "$SHARED/hellaswag/hellaswag_val_full.txt" > "$work/hs.bz2"
out=$(LLMC_SHARED_DATA="$work/shared" LLMC_DATA_CACHE="$work/cache" LLMC_HELLASWAG_URL="file://$work/hs.bz2" \
      $PYTHON dev/data/hellaswag.py -o "$work/hs.bin" 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$out" | grep -q "not found, downloading file://" && [ -f "$work/cache/hellaswag/hellaswag_val_full.txt" ] &&
   [ -f dev/data/eval/hellaswag.bin ] && cmp -s "$work/hs.bin" dev/data/eval/hellaswag.bin; then
    pass "without ../shared/data/hellaswag, dev/data/hellaswag.py downloads, checks and writes the same file"
elif [ $rc -eq 0 ] && [ ! -f dev/data/eval/hellaswag.bin ]; then
    pass "without ../shared/data/hellaswag, dev/data/hellaswag.py downloads and writes $work/hs.bin (no make eval-data copy to compare)"
else
    fail "dev/data/hellaswag.py download fallback" "rc=$rc: $out"
fi
# a corrupted download is refused by its sha256, with a message
printf 'not hellaswag\n' | bzip2 -c > "$work/bad.bz2"
rm -rf "$work/cache"
out=$(LLMC_SHARED_DATA="$work/shared" LLMC_DATA_CACHE="$work/cache" LLMC_HELLASWAG_URL="file://$work/bad.bz2" \
      $PYTHON dev/data/hellaswag.py -o "$work/hs2.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "sha256 mismatch" && [ ! -e "$work/hs2.bin" ]; then
    pass "a HellaSwag download with the wrong content is refused ($(echo "$out" | tail -1 | cut -c1-100))"
else
    fail "a corrupted HellaSwag download" "rc=$rc: $out"
fi
# no network: a clear message that says training does not need it
out=$(LLMC_SHARED_DATA="$work/shared" LLMC_DATA_CACHE="$work/cache" LLMC_HELLASWAG_URL="file://$work/nonexistent.bz2" \
      $PYTHON dev/data/hellaswag.py -o "$work/hs3.bin" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "download of .* failed" && echo "$out" | grep -q "training do not need it"; then
    pass "a failed HellaSwag download says so, and that training does not need it"
else
    fail "a failed HellaSwag download" "rc=$rc: $out"
fi
[ $fails -eq 0 ]
