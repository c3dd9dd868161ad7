#!/usr/bin/env bash
# Command-line hardening tests of the data tools (dev/data/tokenize, pipeline, bpe_train,
# resize_embedding): strict numbers, --help, repeated and contradictory flags, outputs that
# name an input, FIFOs / directories as inputs, overflows, leftovers, empty outputs.
# Fast (a few seconds): small inputs only. Prints PASS:/FAIL: lines; exits non-zero on failure.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
DATA=${DATA_DIR:-$REPO/../shared/data}
GPT2="$DATA/gpt2"
# DATA_TOOLS_DIR: run other builds of the tools (e.g. an older commit's, to see these tests fail)
BIN=${DATA_TOOLS_DIR:-$REPO/dev/data}
TOK=$BIN/tokenize
PIPE=$BIN/pipeline
BPET=$BIN/bpe_train
RESIZE=$BIN/resize_embedding
for b in "$TOK" "$PIPE" "$BPET" "$RESIZE"; do
    if [ ! -x "$b" ]; then echo "FAIL: build: $b is not built (make dev/data/$(basename "$b"))"; exit 1; fi
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
# ok NAME CONDITION-EXIT-STATUS DETAIL
check() { if [ "$2" -eq 0 ]; then pass "$1"; else fail "$1" "$3"; fi; }
VOCAB=(--encoder "$GPT2/encoder.json" --merges "$GPT2/vocab.bpe")
PV=(--tokenizer-dir "$GPT2")

# small inputs
printf 'hello world, this is a small text.\n\nAnd a second paragraph here.\n' > "$T/small.txt"
python3 - "$T" "$DATA" <<'EOF'
import json, sys, os
t, data = sys.argv[1], sys.argv[2]
lines = open(os.path.join(data, "livedoor/livedoor_news.jsonl"), encoding="utf-8").read().splitlines()[:40]
open(os.path.join(t, "ja.jsonl"), "w", encoding="utf-8").write("\n".join(lines) + "\n")
# a BOM before the first record
open(os.path.join(t, "bom.jsonl"), "wb").write(b"\xef\xbb\xbf" + ("\n".join(lines[:3]) + "\n").encode())
# nesting deeper than any reader allows
open(os.path.join(t, "deep.jsonl"), "w").write('{"text": "a", "x": ' + "[" * 300 + "]" * 300 + "}\n" + lines[0] + "\n")
EOF

# ---------------------------------------------------------------- tokenize
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/s1" --shard-size 1e6 2>&1); rc=$?
n=$(ls "$T"/s1_* 2>/dev/null | wc -l)
check "tokenize: --shard-size 1e6 means 1000000 (one shard)" $(( rc != 0 || n != 1 )) "rc=$rc files=$n $o"
for bad in "--shard-size abc" "--shard-size 1.5" "--val-fraction nan" "--threads 0" "--val-tokens -3"; do
    o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/s2" $bad 2>&1); rc=$?
    flag=${bad%% *}
    check "tokenize: '$bad' refused naming the flag" $(( rc == 0 )) "rc=$rc $o"
    echo "$o" | grep -q -- "$flag" || fail "tokenize: '$bad' message names $flag" "$o"
done
o=$("$TOK" --help 2>/dev/null); rc=$?
echo "$o" | grep -q -- "--shard-tokens"; check "tokenize: --help exits 0 and lists the flags" $(( rc != 0 || $? != 0 )) "rc=$rc"
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/s3" --threads=1 --shard-tokens=1000 2>&1); rc=$?
check "tokenize: --name=value works" $rc "$o"
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/s4" --threads 1 --threads 2 2>&1); rc=$?
check "tokenize: a repeated flag is refused" $(( rc == 0 )) "$o"
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/s4" --shard-size 10 --shard-tokens 10 2>&1); rc=$?
check "tokenize: --shard-size and its new name --shard-tokens together are refused" $(( rc == 0 )) "$o"
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/s5" --val-tokens 10 --val-fraction 0.5 2>&1); rc=$?
check "tokenize: --val-tokens with --val-fraction refused" $(( rc == 0 )) "$o"
# an input named like an output shard
cp "$T/small.txt" "$T/in_train_000000.bin"
o=$("$TOK" "${VOCAB[@]}" --format text "$T/in_train_000000.bin" -o "$T/in" 2>&1); rc=$?
cmp -s "$T/small.txt" "$T/in_train_000000.bin"; same=$?
check "tokenize: an output that is an input is refused, input untouched" $(( rc == 0 || same != 0 )) "rc=$rc $o"
cp "$T/small.txt" "$T/x.bin"
o=$("$TOK" "${VOCAB[@]}" --format text "$T/x.bin" --write-tokenizer "$T/x.bin" 2>&1); rc=$?
cmp -s "$T/small.txt" "$T/x.bin"; same=$?
check "tokenize: --write-tokenizer naming an input is refused" $(( rc == 0 || same != 0 )) "rc=$rc $o"
mkfifo "$T/fifo"
o=$(timeout 10 "$TOK" "${VOCAB[@]}" "$T/fifo" -o "$T/f" 2>&1); rc=$?
check "tokenize: a FIFO input is refused (no hang)" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
echo "$o" | grep -q "FIFO" || fail "tokenize: the FIFO message says FIFO" "$o"
o=$(timeout 10 "$TOK" "${VOCAB[@]}" "$T" -o "$T/f" 2>&1); rc=$?
check "tokenize: a directory input is refused clearly" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
echo "$o" | grep -q "directory" || fail "tokenize: directory message" "$o"
o=$(timeout 10 "$TOK" --encoder "$T" --merges "$GPT2/vocab.bpe" --write-tokenizer "$T/t.bin" 2>&1); rc=$?
echo "$o" | grep -q "directory"; check "tokenize: --encoder DIR refused clearly" $(( rc == 0 || $? != 0 )) "rc=$rc $o"
o=$(timeout 10 "$TOK" --tiktoken "$T/fifo" --write-tokenizer "$T/t.bin" 2>&1); rc=$?
check "tokenize: --tiktoken FIFO refused" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
# BOM, deep nesting
o=$("$TOK" "${VOCAB[@]}" "$T/bom.jsonl" -o "$T/bom" 2>&1); rc=$?
echo "$o" | grep -q "^3 documents"; check "tokenize: a UTF-8 BOM before the first JSONL record is accepted" $(( rc != 0 || $? != 0 )) "$o"
o=$("$TOK" "${VOCAB[@]}" "$T/deep.jsonl" -o "$T/deep" 2>&1); rc=$?
echo "$o" | grep -q "nesting deeper than"; check "tokenize: too deep JSON says 'nesting deeper than'" $? "$o"
# --no-shard-index overflow leaves nothing behind
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/ni" --doc-sep '\n\n' --shard-size 5 --no-shard-index 2>&1); rc=$?
left=$(ls "$T"/ni* 2>/dev/null | wc -l)
check "tokenize: --no-shard-index overflow fails and leaves no file" $(( rc == 0 || left != 0 )) "rc=$rc left=$left $o"
# honest val counts
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/vt" --doc-sep '\n\n' --val-tokens 3 2>&1); rc=$?
echo "$o" | grep -q "(0 to val)"; check "tokenize: --val-tokens counts the documents that reached val" $(( rc != 0 || $? == 0 )) "$o"
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/vf" --doc-sep '\n\n' --val-fraction 0.01 2>&1); rc=$?
echo "$o" | grep -qi "warning.*val"; check "tokenize: a val fraction that sends no document to val warns" $(( rc != 0 || $? != 0 )) "$o"
# default vocabulary found from another directory
o=$(cd "$T" && "$TOK" --write-tokenizer "$T/def.bin" 2>&1); rc=$?
check "tokenize: default vocabulary found relative to the program, from any cwd" $rc "$o"
# the output folder is created
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$T/newdir/sub/p" 2>&1); rc=$?
[ -f "$T/newdir/sub/p_train_000000.bin" ]; made=$?
check "tokenize: the output prefix's folder is created" $(( rc != 0 || made != 0 )) "$o"
# the fineweb2 JSON array
o=$("$TOK" "${VOCAB[@]}" "$DATA/fineweb2_edu_ja_sample/fineweb_100_samples.json" -o "$T/fw" 2>&1); rc=$?
echo "$o" | grep -q "^100 documents"; check "tokenize: the .json array gives 100 documents" $(( rc != 0 || $? != 0 )) "$o"

: > "$T/empty.txt"
o=$("$TOK" "${VOCAB[@]}" "$T/empty.txt" -o "$T/em" 2>&1); rc=$?
echo "$o" | grep -q "$T/empty.txt"; check "tokenize: an empty input is named, and an empty output is an error" $(( rc == 0 || $? != 0 )) "rc=$rc $o"
long="$T/$(printf 'd%.0s' $(seq 1 1010))"
o=$("$TOK" "${VOCAB[@]}" "$T/small.txt" -o "$long" 2>&1); rc=$?
check "tokenize: an output prefix too long for a shard name is refused" $(( rc == 0 )) "$o"

# ---------------------------------------------------------------- pipeline
PQ=(--quiet "${PV[@]}")
o=$("$PIPE" "${PQ[@]}" --lang ja --out-prefix "$T/p1" --shard-tokens 1e6 "$T/ja.jsonl" 2>&1); rc=$?
n=$(ls "$T"/p1_train_* 2>/dev/null | wc -l)
check "pipeline: --shard-tokens 1e6 means 1000000 (one train shard)" $(( rc != 0 || n != 1 )) "rc=$rc n=$n $o"
for bad in "--jaccard nan" "--jaccard 0" "--shard-tokens abc" "--threads 1.5" "--min-chars x" "--val-fraction 2"; do
    o=$("$PIPE" "${PQ[@]}" --out-prefix "$T/p2" $bad "$T/ja.jsonl" 2>&1); rc=$?
    flag=${bad%% *}
    check "pipeline: '$bad' refused" $(( rc == 0 )) "$o"
    echo "$o" | grep -q -- "$flag" || fail "pipeline: '$bad' message names $flag" "$o"
done
o=$(timeout 20 "$PIPE" "${PQ[@]}" --out-prefix "$T/p3" --bands 641 --rows 6700417 "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --bands x --rows overflow refused" $(( rc == 0 || rc == 124 || rc > 128 )) "rc=$rc $o"
o=$("$PIPE" --help 2>/dev/null); rc=$?
echo "$o" | grep -q -- "--shard-tokens"; check "pipeline: --help exits 0 and lists the flags" $(( rc != 0 || $? != 0 )) "rc=$rc"
o=$("$PIPE" "${PQ[@]}" --lang ja --lang en --out-prefix "$T/p4" "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --lang ja --lang en refused" $(( rc == 0 )) "$o"
o=$("$PIPE" "${PQ[@]}" --lang=ja --threads=1 --out-prefix "$T/p5" "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --name=value works" $rc "$o"
o=$("$PIPE" "${PQ[@]}" --lang ja --out-prefix "$T/p5b" --shard-size 1e6 "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --shard-size is accepted as the other tool's name for --shard-tokens" $rc "$o"
cp "$T/ja.jsonl" "$T/keep.jsonl"
for outflag in --out-jsonl --rejects --report; do
    o=$("$PIPE" "${PQ[@]}" --lang ja --out-prefix "$T/p6" $outflag "$T/keep.jsonl" "$T/keep.jsonl" 2>&1); rc=$?
    cmp -s "$T/ja.jsonl" "$T/keep.jsonl"; same=$?
    check "pipeline: $outflag naming the input is refused, input untouched" $(( rc == 0 || same != 0 )) "rc=$rc $o"
    cp "$T/ja.jsonl" "$T/keep.jsonl"
done
ln -s "$T/keep.jsonl" "$T/link.jsonl"
o=$("$PIPE" "${PQ[@]}" --lang ja --out-prefix "$T/p6" --out-jsonl "$T/link.jsonl" "$T/keep.jsonl" 2>&1); rc=$?
cmp -s "$T/ja.jsonl" "$T/keep.jsonl"; same=$?
check "pipeline: an output that is a symlink to the input is refused" $(( rc == 0 || same != 0 )) "rc=$rc $o"
o=$("$PIPE" "${PQ[@]}" --lang ja --out-prefix "$T/p7" --report "$T/r.json" --out-jsonl "$T/./r.json" "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: two outputs naming one file are refused" $(( rc == 0 )) "$o"
o=$(timeout 10 "$PIPE" "${PQ[@]}" --out-prefix "$T/p8" "$T/fifo" 2>&1); rc=$?
check "pipeline: a FIFO input is refused (no hang)" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
o=$(timeout 10 "$PIPE" "${PQ[@]}" --out-prefix "$T/p8" "$T" 2>&1); rc=$?
check "pipeline: a directory input is refused" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
o=$("$PIPE" "${PQ[@]}" --out-prefix "$T/p9" --words 100,50 "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --words 100,50 (min > max) refused" $(( rc == 0 )) "$o"
o=$("$PIPE" "${PQ[@]}" --out-prefix "$T/p9" --words 10,abc "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --words 10,abc refused" $(( rc == 0 )) "$o"
o=$("$PIPE" "${PQ[@]}" --out-prefix "$T/p10" --block-hosts "$T" "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: --block-hosts DIR refused" $(( rc == 0 )) "$o"
: > "$T/empty_hosts.txt"
o=$("$PIPE" "${PQ[@]}" --out-prefix "$T/p10" --block-hosts "$T/empty_hosts.txt" "$T/ja.jsonl" 2>&1); rc=$?
echo "$o" | grep -q "has no hosts"; check "pipeline: an empty host list is refused ('has no hosts')" $(( rc == 0 || $? != 0 )) "$o"
o=$("$PIPE" "${PV[@]}" --out-prefix "$T/p11" "$T/ja.jsonl" 2>&1); rc=$?
echo "$o" | grep -qi "warning"; w=$?
check "pipeline: --lang en on Japanese warns and exits non-zero (empty output)" $(( rc == 0 || w != 0 )) "rc=$rc $o"
o=$("$PIPE" "${PQ[@]}" --lang ja --min-chars 0 --no-gopher --no-tokenize --out-jsonl "$T/bom_out.jsonl" "$T/bom.jsonl" 2>&1); rc=$?
n=$(wc -l < "$T/bom_out.jsonl" 2>/dev/null || echo 0)
check "pipeline: a UTF-8 BOM before the first JSONL record is accepted" $(( rc != 0 || n != 3 )) "rc=$rc n=$n $o"
o=$("$PIPE" "${PQ[@]}" --lang ja --min-chars 0 --no-gopher --no-tokenize --report "$T/deep.json" --out-jsonl "$T/deep_out.jsonl" "$T/deep.jsonl" 2>&1); rc=$?
grep -q "nesting deeper than" "$T/deep.json" 2>/dev/null; check "pipeline: too deep JSON is reported as 'nesting deeper than N'" $(( rc != 0 || $? != 0 )) "rc=$rc $(cat "$T/deep.json" 2>/dev/null | grep -A2 malformed)"
o=$("$PIPE" "${PQ[@]}" --lang ja --no-tokenize --report "$T/fw.json" "$DATA/fineweb2_edu_ja_sample/fineweb_100_samples.json" 2>&1); rc=$?
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r['records']==100 and r['stages'][0]['docs_out']==100 else 1)" "$T/fw.json" 2>/dev/null
check "pipeline: the fineweb2 .json array is read as 100 documents" $(( rc != 0 || $? != 0 )) "rc=$rc $o"
{ head -3 "$T/ja.jsonl"; head -1 "$T/ja.jsonl" | cut -c1-200; } > "$T/cut.jsonl"
o=$("$PIPE" "${PQ[@]}" --lang ja --no-tokenize "$T/cut.jsonl" 2>&1); rc=$?
echo "$o" | grep -q "malformed_json.*$T/cut.jsonl:4"; check "pipeline: bad records are reported on stderr with --quiet" $(( rc != 0 || $? != 0 )) "rc=$rc $o"
python3 -c '
import json, sys
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for d in json.load(open(sys.argv[1], encoding="utf-8")):
        f.write(json.dumps(d, ensure_ascii=False) + "\n")' "$DATA/fineweb2_edu_ja_sample/fineweb_100_samples.json" "$T/fw.jsonl"
"$PIPE" "${PQ[@]}" --lang ja --no-tokenize --out-jsonl "$T/fw_a.jsonl" "$DATA/fineweb2_edu_ja_sample/fineweb_100_samples.json" >/dev/null 2>&1
"$PIPE" "${PQ[@]}" --lang ja --no-tokenize --out-jsonl "$T/fw_b.jsonl" "$T/fw.jsonl" >/dev/null 2>&1
cmp -s "$T/fw_a.jsonl" "$T/fw_b.jsonl" && [ -s "$T/fw_a.jsonl" ]
check "pipeline: the .json array gives the same kept documents as its JSONL conversion" $? "$(wc -l "$T/fw_a.jsonl" "$T/fw_b.jsonl" 2>&1)"
# killed pipeline: no temp files left behind
big="$DATA/livedoor/livedoor_news.jsonl"
mkdir -p "$T/kill"
"$PIPE" "${PQ[@]}" --lang ja --threads 1 --out-prefix "$T/kill/k" --out-jsonl "$T/kill/k.jsonl" --rejects "$T/kill/r.jsonl" "$big" >/dev/null 2>&1 &
pid=$!
for i in $(seq 1 100); do  # wait until the run is under way (its temp files exist), then stop it
    ls "$T/kill" 2>/dev/null | grep -q 'tmp\.' && break
    sleep 0.1
done
sleep 0.3
kill -TERM $pid 2>/dev/null
wait $pid; rc=$?
left=$(ls "$T/kill" | grep -c 'tmp\.' )
check "pipeline: SIGTERM leaves no *.tmp.PID files" $(( rc == 0 || left != 0 )) "rc=$rc left=$(ls "$T/kill")"
o=$("$PIPE" "${PQ[@]}" --lang ja --val-fraction 0.001 --out-prefix "$T/p12" "$T/ja.jsonl" 2>&1); rc=$?
echo "$o" | grep -qi "warning.*val"; check "pipeline: a val fraction that sends no document to val warns" $(( rc != 0 || $? != 0 )) "$o"
o=$(cd "$T" && "$PIPE" --quiet --lang ja --no-tokenize --out-jsonl "$T/cwd.jsonl" "$T/ja.jsonl" 2>&1 && "$PIPE" --quiet --lang ja --out-prefix "$T/cwd" "$T/ja.jsonl" 2>&1); rc=$?
check "pipeline: default vocabulary found relative to the program, from any cwd" $rc "$o"

# ---------------------------------------------------------------- bpe_train
o=$("$BPET" --vocab-size 300 --add 10 -o "$T/b.tiktoken" "$T/small.txt" 2>&1); rc=$?
check "bpe_train: --vocab-size with --add refused" $(( rc == 0 )) "$o"
o=$("$BPET" --add abc -o "$T/b.tiktoken" "$T/small.txt" 2>&1); rc=$?
echo "$o" | grep -q -- "--add"; check "bpe_train: --add abc refused naming --add" $(( rc == 0 || $? != 0 )) "$o"
o=$("$BPET" --vocab-size 1e3 --base none -o "$T/b.tiktoken" "$T/small.txt" 2>&1); rc=$?
check "bpe_train: --vocab-size 1e3 accepted" $rc "$o"
o=$("$BPET" --help 2>/dev/null); rc=$?
echo "$o" | grep -q -- "--vocab-size"; check "bpe_train: --help exits 0" $(( rc != 0 || $? != 0 )) "rc=$rc"
o=$("$BPET" --vocab-size 300 --base none -o "$T/b.tiktoken" 2>&1); rc=$?
echo "$o" | grep -qi "input"; check "bpe_train: no input says so (not just usage)" $(( rc == 0 || $? != 0 )) "$o"
o=$(timeout 10 "$BPET" --vocab-size 300 --base none -o "$T/b.tiktoken" "$T/fifo" 2>&1); rc=$?
check "bpe_train: a FIFO input is refused" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
cp "$T/small.txt" "$T/bt.txt"
o=$("$BPET" --vocab-size 300 --base none -o "$T/bt.txt" "$T/bt.txt" 2>&1); rc=$?
cmp -s "$T/small.txt" "$T/bt.txt"; same=$?
check "bpe_train: -o naming the input refused" $(( rc == 0 || same != 0 )) "$o"

o=$("$BPET" --vocab-size 300 --base none -o "$T/b2.tiktoken" "$T/empty.txt" 2>&1); rc=$?
echo "$o" | grep -q "$T/empty.txt"; check "bpe_train: no documents is an error naming the input" $(( rc == 0 || $? != 0 )) "$o"

# ---------------------------------------------------------------- resize_embedding
python3 - "$T" <<'EOF'
import struct, sys, os
t = sys.argv[1]
def write(path, maxT, V, L, NH, C, Vp, nfloats=None):
    h = [20240326, 3, maxT, V, L, NH, C, Vp] + [0] * 248
    if nfloats is None:
        nfloats = Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *h))
        f.write(b"\0" * (4 * nfloats))
write(os.path.join(t, "m.bin"), 8, 300, 1, 1, 4, 384)
write(os.path.join(t, "overflow.bin"), 1 << 30, 300, 1 << 30, 1, 1 << 20, 384, nfloats=16)
def tok(path, toks, eot):
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *([20240328, 2, len(toks), eot] + [0] * 252)))
        for s in toks:
            f.write(bytes([len(s)]) + s)
base = [bytes([i]) for i in range(256)] + [b"ab%d" % i for i in range(43)] + [b"<|endoftext|>"]
tok(os.path.join(t, "base.tok"), base, 299)
tok(os.path.join(t, "ext.tok"), base + [b"new%d" % i for i in range(100)], 299)
tok(os.path.join(t, "other.tok"), [b"zz%d" % i for i in range(400)], 399)
EOF
o=$("$RESIZE" "$T/overflow.bin" "$T/o.bin" --vocab-size 600 2>&1); rc=$?
[ -e "$T/o.bin" ]; made=$?
check "resize_embedding: a crafted header is refused (no overflow)" $(( rc == 0 || rc > 128 || made == 0 )) "rc=$rc $o"
o=$("$RESIZE" "$T/m.bin" "$T/o.bin" --vocab-size abc 2>&1); rc=$?
echo "$o" | grep -q -- "--vocab-size"; check "resize_embedding: --vocab-size abc refused naming the flag" $(( rc == 0 || $? != 0 )) "$o"
o=$("$RESIZE" "$T/m.bin" "$T/o.bin" --vocab-size=1e3 2>&1); rc=$?
check "resize_embedding: --vocab-size=1e3 works" $rc "$o"
o=$("$RESIZE" --help 2>/dev/null); rc=$?
echo "$o" | grep -q -- "--tokenizer"; check "resize_embedding: --help exits 0" $(( rc != 0 || $? != 0 )) "rc=$rc"
o=$(timeout 10 "$RESIZE" "$T/fifo" "$T/o2.bin" --vocab-size 600 2>&1); rc=$?
check "resize_embedding: a FIFO checkpoint is refused" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
o=$(timeout 10 "$RESIZE" "$T/m.bin" "$T/o2.bin" --tokenizer "$T" --base-tokenizer "$T/base.tok" 2>&1); rc=$?
check "resize_embedding: a directory --tokenizer is refused" $(( rc == 0 || rc == 124 )) "rc=$rc $o"
cp "$T/m.bin" "$T/m2.bin"
o=$("$RESIZE" "$T/m2.bin" "$T/m2.bin" --vocab-size 600 2>&1); rc=$?
cmp -s "$T/m.bin" "$T/m2.bin"; same=$?
check "resize_embedding: output = input refused" $(( rc == 0 || same != 0 )) "$o"
o=$("$RESIZE" "$T/m.bin" "$T/o3.bin" --tokenizer "$T/ext.tok" --base-tokenizer "$T/base.tok" 2>&1); rc=$?
check "resize_embedding: an extension of the base tokenizer is accepted" $rc "$o"
o=$("$RESIZE" "$T/m.bin" "$T/o4.bin" --tokenizer "$T/other.tok" --base-tokenizer "$T/base.tok" 2>&1); rc=$?
[ -e "$T/o4.bin" ]; made=$?
check "resize_embedding: an unrelated tokenizer is refused" $(( rc == 0 || made == 0 )) "$o"
o=$("$RESIZE" "$T/m.bin" "$T/o5.bin" --tokenizer "$T/ext.tok" 2>&1); rc=$?
check "resize_embedding: --tokenizer without --base-tokenizer refused" $(( rc == 0 )) "$o"
o=$("$RESIZE" "$T/m.bin" "$T/o5.bin" --vocab-size 600 --vocab-size 700 2>&1); rc=$?
check "resize_embedding: a repeated flag is refused" $(( rc == 0 )) "$o"

# every error message above is one line "error: ..."
exit $(( fails > 0 ))
