#!/usr/bin/env bash
# Hostile-input sweep (issue 19): runs train_gpt and the data tools (tokenize, pipeline,
# bpe_train, resize_embedding) on bad flags, bad inputs, bad outputs and broken run
# directories, each under a timeout, and classifies every case:
#   crash    killed by a signal (other than our timeout), exit code >= 128, or a sanitizer report
#   hang     ran past the timeout (SWEEP_TIMEOUT seconds, default 10; 5 for FIFO inputs)
#   silent   exit 0 where an error was expected, or a post-condition failed (an input changed,
#            a device node replaced, a live run disturbed, ...)
#   unclear  failed as expected, but stderr does not name the flag or file the case names
#   refused  failed where success was expected (a valid input, --help, --name=value, 1e6)
# One "PASS: <case>" or "FAIL: <case>: <class>: <detail>" line per case, a summary table at
# the end, exit 1 on any FAIL. See dev/hostile/README.md (how to add a case).
#
#   bash dev/hostile/sweep.sh                  build, run everything
#   SWEEP_ONLY=pipeline bash dev/hostile/sweep.sh   only cases whose name matches (grep -E)
#   SWEEP_KEEP=1 ...                          keep the work directory (printed) to rerun a case
#   SWEEP_NO_BUILD=1 ...                      skip `make`
#   SWEEP_VERBOSE=1 ...                       print each FAIL's command and stderr
set -u
cd "$(dirname "$0")/../.."
ROOT=$PWD
TIMEOUT=${SWEEP_TIMEOUT:-10}
ONLY=${SWEEP_ONLY:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

if [ "${SWEEP_NO_BUILD:-0}" != 1 ]; then
    make -s train_gpt dev/data/tokenize dev/data/pipeline dev/data/bpe_train dev/data/resize_embedding >/dev/null ||
        { echo "FAIL: build: make train_gpt dev/data/{tokenize,pipeline,bpe_train,resize_embedding} failed"; exit 1; }
fi
for f in dev/data/tinyshakespeare/tiny_shakespeare_train.bin dev/data/tinyshakespeare/tiny_shakespeare_val.bin \
         dev/data/gpt2_tokenizer.bin ../shared/data/gpt2/encoder.json ../shared/data/gpt2/vocab.bpe; do
    [ -f "$f" ] || { echo "FAIL: setup: $f is missing (make data)"; exit 1; }
done
HS=dev/data/eval/hellaswag.bin

TG=$ROOT/train_gpt
TOK=$ROOT/dev/data/tokenize
PIPE=$ROOT/dev/data/pipeline
BPE=$ROOT/dev/data/bpe_train
RES=$ROOT/dev/data/resize_embedding
ENC=$ROOT/../shared/data/gpt2/encoder.json
MER=$ROOT/../shared/data/gpt2/vocab.bpe
TRAIN=$ROOT/dev/data/tinyshakespeare/tiny_shakespeare_train.bin
VAL=$ROOT/dev/data/tinyshakespeare/tiny_shakespeare_val.bin
TOKBIN=$ROOT/dev/data/gpt2_tokenizer.bin

W=$(mktemp -d /tmp/hostile.XXXXXX)
BG_PIDS=""
RO_MOUNTED=0
cleanup() {
    for p in $BG_PIDS; do kill -9 "$p" 2>/dev/null; done
    [ $RO_MOUNTED = 1 ] && umount "$W/ro" 2>/dev/null
    if [ "${SWEEP_KEEP:-0}" = 1 ]; then echo "work directory kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
echo "hostile-input sweep: work directory $W, timeout ${TIMEOUT}s per case"

# ----------------------------------------------------------------------------
# the case runner
#
#   t NAME EXPECT NEEDLE POST CMD...
#     EXPECT  err: must fail, and stderr must name NEEDLE
#             ok: must succeed
#             warn: stderr must name NEEDLE, whatever the exit code (a warning is enough)
#             any: may succeed; if it fails, stderr must name NEEDLE
#     NEEDLE  what the message must name: a flag, a path; alternatives split by '|'; '-' none
#     POST    a bash condition that must hold afterwards ('-' for none); $E is the stderr
#             file, $O the stdout file, $RC the exit code
#   Commands run from the repository root, stdin from /dev/null.

declare -A COUNT=([ok]=0 [crash]=0 [hang]=0 [silent]=0 [unclear]=0 [refused]=0)
NCASE=0
FAILS=()
E=""; O=""

needle_found() {  # needle_found NEEDLE FILE
    local n=$1 f=$2 alt
    [ "$n" = - ] && return 0
    IFS='|' read -r -a alts <<< "$n"
    for alt in "${alts[@]}"; do grep -qF -- "$alt" "$f" && return 0; done
    return 1
}

t() {
    local name=$1 expect=$2 needle=$3 post=$4
    shift 4
    if [ -n "$ONLY" ] && ! grep -qE -- "$ONLY" <<< "$name"; then return 0; fi
    NCASE=$((NCASE + 1))
    E=$W/case$NCASE.err
    O=$W/case$NCASE.out
    local t0=$SECONDS to=${TO:-$TIMEOUT}
    # 16 GB of address space: a tool that tries a 17 GB allocation fails instead of swapping
    ( ulimit -v 16000000 2>/dev/null; exec timeout -s KILL "$to" "$@" ) < /dev/null > "$O" 2> "$E"
    local rc=$? dt=$((SECONDS - t0))
    local class=ok detail=""
    local first
    first=$(grep -v '^note:' "$E" | head -1 | cut -c1-160)
    if [ $rc -eq 137 ] && [ $dt -ge $((to - 1)) ]; then
        class=hang; detail="no exit after ${to}s"
    elif [ $rc -ge 128 ] || grep -qE "AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault|stack smashing|double free|Floating point exception|Assertion .* failed" "$E"; then
        class=crash; detail="exit $rc${first:+: $first}"
    elif [ "$post" != - ] && ! (RC=$rc; eval "$post") >/dev/null 2>&1; then
        class=silent; detail="post-condition failed: $post (exit $rc${first:+: $first})"
    elif [ $expect = err ] && [ $rc -eq 0 ]; then
        class=silent; detail="exit 0, an error was expected (naming $needle)"
    elif [ $expect = err ] && ! needle_found "$needle" "$E"; then
        class=unclear; detail="exit $rc, stderr does not name '$needle': ${first:-<empty>}"
    elif [ $expect = warn ] && ! needle_found "$needle" "$E"; then
        if [ $rc -eq 0 ]; then class=silent; else class=unclear; fi
        detail="exit $rc, stderr does not name '$needle': ${first:-<empty>}"
    elif [ $expect = any ] && [ $rc -ne 0 ] && ! needle_found "$needle" "$E"; then
        class=unclear; detail="exit $rc, stderr does not name '$needle': ${first:-<empty>}"
    elif [ $expect = ok ] && [ $rc -ne 0 ]; then
        class=refused; detail="exit $rc: ${first:-<empty>}"
    fi
    COUNT[$class]=$((${COUNT[$class]} + 1))
    if [ $class = ok ]; then
        echo "PASS: $name"
    else
        echo "FAIL: $name: $class: $detail"
        local cmd
        cmd=$(printf '%q ' "$@")
        FAILS+=("$class | $name | ${cmd% }")
        if [ "${SWEEP_VERBOSE:-0}" = 1 ]; then
            echo "    command: ${cmd% }"
            sed 's/^/    stderr: /' "$E" | head -5
        fi
    fi
}

# every numeric flag gets these values; `skip` lists the ones that are valid for it
BAD_VALUES=(abc nan inf -1 1e99 "")
numeric_flag() {  # numeric_flag TOOLNAME NEEDLE "skip values" CMD... (the flag and value go last)
    local tool=$1 flag=$2 skip=$3
    shift 3
    local v
    for v in "${BAD_VALUES[@]}"; do
        case " $skip " in *" ${v:-EMPTY} "*) continue ;; esac
        t "$tool $flag '${v}'" err "$flag" - "$@" "$flag" "$v"
    done
    t "$tool $flag (missing value)" err "$flag" - "$@" "$flag"
}
# the same, for flags that take a list (A,B or A,B,C)
list_flag() {  # list_flag TOOLNAME FLAG "bad values..." CMD...
    local tool=$1 flag=$2 vals=$3
    shift 3
    local v
    for v in $vals; do
        [ "$v" = EMPTY ] && v=""
        t "$tool $flag '${v}'" err "$flag" - "$@" "$flag" "$v"
    done
    t "$tool $flag (missing value)" err "$flag" - "$@" "$flag"
}

unchanged() { cmp -s "$1" "$2"; }  # unchanged FILE COPY
# two_docs FILE: FILE is JSONL with exactly the two test documents' texts (not their JSON)
two_docs() {
    python3 -c '
import json, sys
t = [json.loads(l)["text"] for l in open(sys.argv[1])]
sys.exit(not (len(t) == 2 and t[0].startswith("First document.") and t[1].startswith("Second document")))' "$1"
}
md5() { md5sum "$1" 2>/dev/null | cut -d' ' -f1; }

# ----------------------------------------------------------------------------
# fixtures

mkdir -p "$W/dir" "$W/out"
mkfifo "$W/fifo"
: > "$W/empty"
ln -s "$W/loop2" "$W/loop1"
ln -s "$W/loop1" "$W/loop2"
MISSING=$W/no/such/file
python3 - "$W" <<'PY'
import json, random, struct, sys
w = sys.argv[1]
rnd = random.Random(19)
open(w + "/garbage", "wb").write(bytes(rnd.randrange(256) for _ in range(4096)))
open(w + "/garbage.jsonl", "wb").write(bytes(rnd.randrange(256) for _ in range(4096)))
# small real documents: the first lines of tiny shakespeare, split into 8 JSONL records with urls
text = open("../shared/data/tinyshakespeare/input.txt", encoding="utf-8").read()[:24000]
recs = [{"id": "d%d" % i, "url": "https://h%d.example.com/p" % (i % 3), "text": text[i * 3000:(i + 1) * 3000]} for i in range(8)]
with open(w + "/docs.jsonl", "w") as f:
    for r in recs:
        f.write(json.dumps(r) + "\n")
open(w + "/small.txt", "w").write(text[:5000])
# BOM + JSONL, and a JSON array, two documents each
two = [{"id": "a", "text": "First document. " * 40}, {"id": "b", "text": "Second document here. " * 40}]
open(w + "/bom.jsonl", "wb").write(b"\xef\xbb\xbf" + "".join(json.dumps(r) + "\n" for r in two).encode())
open(w + "/nobom.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in two))
open(w + "/docs.json", "w").write(json.dumps(two, indent=1))
open(w + "/trunc.jsonl", "w").write(json.dumps(recs[0]) + "\n" + json.dumps(recs[1])[:500])
PY
head -c 1500 "$TRAIN" > "$W/trunc_shard.bin"
head -c 20000 "$TOKBIN" > "$W/trunc_tok.bin"
head -c 3000 "$HS" > "$W/trunc_hs.bin" 2>/dev/null || cp "$W/empty" "$W/trunc_hs.bin"
head -c 30000 "$ENC" > "$W/trunc_encoder.json"
head -c 30000 "$MER" > "$W/trunc_vocab.bpe"
mknod "$W/devnull" c 1 3 2>/dev/null && HAVE_MKNOD=1 || HAVE_MKNOD=0
mknod "$W/devfull" c 1 7 2>/dev/null || true
# a reference run: a checkpoint + state to resume, resize and tamper with
"$TG" -e d1 -b 2 -t 32 -x 2 -v 0 -s 0 -o "$W/ref" > /dev/null 2>&1 ||
    { echo "FAIL: setup: the reference run (train_gpt -e d1 -b 2 -t 32 -x 2 -v 0 -s 0) failed"; exit 1; }
CKPT=$(ls "$W"/ref/model_*.bin | head -1)
STATE=$(ls "$W"/ref/state_*.bin | head -1)
head -c 100000 "$CKPT" > "$W/trunc_ckpt.bin"
# a tiktoken file and a truncated one
"$TOK" --save-tiktoken "$W/gpt2.tiktoken" > /dev/null 2>&1 || python3 - "$W" <<'PY'
import sys; open(sys.argv[1] + "/gpt2.tiktoken", "w").write("")
PY
head -c 30000 "$W/gpt2.tiktoken" > "$W/trunc.tiktoken"

# the hostile input kinds, and what each must be named by: "kind path"
# (a FIFO with no writer blocks open(): those cases get 5 s, through to_for)
to_for() { if [ "$1" = fifo ]; then echo 5; else echo "$TIMEOUT"; fi; }
inputs_of() {  # inputs_of TRUNCATED_FILE  ->  lines "kind path"
    echo "directory $W/dir"
    echo "fifo $W/fifo"
    echo "devnull /dev/null"
    echo "empty $W/empty"
    echo "truncated $1"
    echo "garbage $W/garbage"
    echo "symlink-loop $W/loop1"
    echo "missing $MISSING"
}

TINY=(-e d1 -b 2 -t 32 -x 2 -v 0 -s 0)

# ----------------------------------------------------------------------------
# 1. flags

# train_gpt: every numeric flag; values valid for a flag are skipped
TG_NUMERIC="-b:. -t:. -d:-1 -l:. -u:. -q:. --wsd-decay-frac:. -c:. --grad-clip:. --beta1:. --beta2:. --eps:.
 -x:-1 -v:. -m:. -s:. -g:. --temperature:. -n:. -a:. --seed:. -y:. -nk:. -nm:. -sl:. -sg:. --guard-window:.
 --guard-max-bad:. -h:. --hellaswag-examples:-1 --tasks-every:. --tasks-examples:-1 --peak-tflops:. -z:. --timeout:. -pn:-1 -pr:-1 -pg:. -r:. --gelu-fusion:."
for spec in $TG_NUMERIC; do
    numeric_flag train_gpt "${spec%%:*}" "${spec#*:}" "$TG" "${TINY[@]}"
done
t "train_gpt --seed 1e6 (a whole number in e-notation)" ok - - "$TG" "${TINY[@]}" --seed 1e6
t "train_gpt -k bogus" err "-k" - "$TG" "${TINY[@]}" -k bogus
t "train_gpt -pm bogus" err "-pm" - "$TG" "${TINY[@]}" -pm bogus
t "train_gpt --attention bogus" err "--attention" - "$TG" "${TINY[@]}" --attention bogus
t "train_gpt --tasks with no task in it" err "--tasks" - "$TG" "${TINY[@]}" --tasks ,,
t "train_gpt -d 48 (not a multiple of B*T)" err "-d" - "$TG" "${TINY[@]}" -d 48
t "train_gpt -t 2048 (above the model's maxT)" err "-t" - "$TG" "${TINY[@]}" -t 2048
t "train_gpt unknown flag --bogus" err "--bogus" - "$TG" "${TINY[@]}" --bogus 1
t "train_gpt unknown flag -Z" err "-Z" - "$TG" "${TINY[@]}" -Z
t "train_gpt stray argument" err "stray" - "$TG" "${TINY[@]}" stray
t "train_gpt -b twice: last wins, with a note" ok - 'grep -q -- "-b" "$E" && grep -qi twice "$E"' "$TG" "${TINY[@]}" -b 1
t "train_gpt --help" ok - '[ -s "$O" ]' "$TG" --help
t "train_gpt --name=value" ok - - "$TG" --init-model=d1 --batch-size=2 --seq-len=32 --max-steps=2 --val-every=0 --sample-every=0
t "train_gpt -e dX (bad preset)" err "dX" - "$TG" -e dX -b 2 -t 32 -x 2 -v 0 -s 0
t "train_gpt -e d0" err "d0" - "$TG" -e d0 -b 2 -t 32 -x 2 -v 0 -s 0
t "train_gpt -e d99999999999" err "d99999999999" - "$TG" -e d99999999999 -b 2 -t 32 -x 2 -v 0 -s 0

# tokenize
TOKCMD=("$TOK" -o "$W/out/tk" "$W/small.txt")
for f in --val-fraction --val-tokens --shard-size --threads --repeat; do numeric_flag tokenize "$f" . "${TOKCMD[@]}"; done
t "tokenize --val-fraction 2" err "--val-fraction" - "${TOKCMD[@]}" --val-fraction 2
rm -rf "$W/t1e6"; mkdir -p "$W/t1e6"
t "tokenize --shard-size 1e6 (one shard, not thousands)" ok - '[ "$(ls $W/t1e6 | wc -l)" = 1 ]' "$TOK" -o "$W/t1e6/p" "$W/small.txt" --shard-size 1e6
t "tokenize --val-tokens 1e3" ok - - "$TOK" -o "$W/out/tv" "$W/small.txt" --val-tokens 1e3
t "tokenize --val-tokens with --val-fraction" err "--val-tokens|--val-fraction" - "${TOKCMD[@]}" --val-tokens 100 --val-fraction 0.1
t "tokenize unknown flag --bogus" err "--bogus" - "${TOKCMD[@]}" --bogus
t "tokenize --threads twice" err "--threads" - "${TOKCMD[@]}" --threads 1 --threads 2
t "tokenize -o twice" err "-o|--out" - "${TOKCMD[@]}" -o "$W/out/tk2"
t "tokenize --format bogus" err "--format|bogus" - "${TOKCMD[@]}" --format bogus
t "tokenize no input" err "input|INPUT" - "$TOK" -o "$W/out/tk"
t "tokenize no -o" err "-o|--out" - "$TOK" "$W/small.txt"
t "tokenize --help" ok - '[ -s "$O" ]' "$TOK" --help
t "tokenize --name=value" ok - '[ -f $W/out/eq_train_000000.bin ]' "$TOK" --out="$W/out/eq" --threads=1 "$W/small.txt"

# pipeline
PIPECMD=("$PIPE" --quiet --out-prefix "$W/out/pp" "$W/docs.jsonl")
for f in --threads --batch-docs --min-chars --shingle --bands --rows --near-max-docs --shard-tokens \
         --max-symbol-ratio --max-ellipsis-lines --max-bullet-lines --min-alpha-words --jaccard --val-fraction; do
    numeric_flag pipeline "$f" . "${PIPECMD[@]}"
done
numeric_flag pipeline --min-ja-frac -1 "${PIPECMD[@]}"
list_flag pipeline --mean-word-len "abc 3 nan,10 3,inf -1,5 10,3 1,2,3 EMPTY" "${PIPECMD[@]}"
list_flag pipeline --max-dup-lines "abc 0.3 nan,0.2 0.3,inf -1,0.2 2,0.2 0.3,0.2,0.1 EMPTY" "${PIPECMD[@]}"
list_flag pipeline --max-dup-paras "abc 0.3 nan,0.2 0.3,inf -1,0.2 2,0.2 EMPTY" "${PIPECMD[@]}"
list_flag pipeline --words "abc 50 100,50 -1,100 1e99,1e99 nan,5 50,100,3 EMPTY" "${PIPECMD[@]}"
list_flag pipeline --max-top-ngram "abc 0.2,0.18 nan,0.1,0.1 -1,0.1,0.1 2,0.1,0.1 0.2,0.18,0.16,0.1 EMPTY" "${PIPECMD[@]}"
t "pipeline --bands 641 --rows 6700417 (no 17 GB allocation)" err "--bands|--rows" - "${PIPECMD[@]}" --bands 641 --rows 6700417
t "pipeline --jaccard nan" err "--jaccard" - "${PIPECMD[@]}" --jaccard nan
t "pipeline --lang ja --lang en" err "--lang" - "${PIPECMD[@]}" --lang ja --lang en
t "pipeline --lang xx" err "--lang" - "${PIPECMD[@]}" --lang xx
t "pipeline --format bogus" err "--format|bogus" - "${PIPECMD[@]}" --format bogus
t "pipeline --threads twice" err "--threads" - "${PIPECMD[@]}" --threads 1 --threads 2
t "pipeline unknown flag --bogus" err "--bogus" - "${PIPECMD[@]}" --bogus
t "pipeline no input" err "input|INPUT" - "$PIPE" --quiet --out-prefix "$W/out/pp"
t "pipeline --shard-tokens 1e6" ok - - "${PIPECMD[@]}" --shard-tokens 1e6
t "pipeline --help" ok - '[ -s "$O" ]' "$PIPE" --help
t "pipeline --name=value" ok - '[ -s $W/out/eqrep.json ]' "$PIPE" --quiet --out-prefix="$W/out/eqp" --report="$W/out/eqrep.json" --threads=1 "$W/docs.jsonl"

# bpe_train
BPEBASE=("$BPE" --base none "$W/small.txt")
BPECMD=("${BPEBASE[@]}" -o "$W/out/bt.tiktoken")
numeric_flag bpe_train --vocab-size . "${BPECMD[@]}"
numeric_flag bpe_train --max-token-bytes . "${BPECMD[@]}" --vocab-size 300
numeric_flag bpe_train --add . "$BPE" -o "$W/out/bt.tiktoken" "$W/small.txt"
t "bpe_train --max-token-bytes 256" err "--max-token-bytes" - "${BPECMD[@]}" --vocab-size 300 --max-token-bytes 256
t "bpe_train --vocab-size 100 (below 257)" err "--vocab-size" - "${BPECMD[@]}" --vocab-size 100
t "bpe_train --vocab-size with --add" err "--add|--vocab-size" - "$BPE" -o "$W/out/bt.tiktoken" "$W/small.txt" --vocab-size 300 --add 10
t "bpe_train neither --vocab-size nor --add" err "--vocab-size|--add" - "${BPECMD[@]}"
t "bpe_train --base bogus" err "--base" - "${BPECMD[@]}" --vocab-size 300 --base bogus
t "bpe_train --vocab-size twice" err "--vocab-size" - "${BPECMD[@]}" --vocab-size 300 --vocab-size 301
t "bpe_train unknown flag --bogus" err "--bogus" - "${BPECMD[@]}" --vocab-size 300 --bogus
t "bpe_train --vocab-size 1e3" ok - - "${BPECMD[@]}" --vocab-size 1e3
t "bpe_train --help" ok - '[ -s "$O" ]' "$BPE" --help
t "bpe_train --name=value" ok - '[ -s $W/out/eqbt.tiktoken ]' "$BPE" --out="$W/out/eqbt.tiktoken" --base=none --vocab-size=300 "$W/small.txt"

# resize_embedding
RESCMD=("$RES" "$CKPT" "$W/out/resized.bin")
numeric_flag resize_embedding --vocab-size . "${RESCMD[@]}"
t "resize_embedding --vocab-size 100 (below the model's)" any "--vocab-size" - "${RESCMD[@]}" --vocab-size 100
t "resize_embedding --vocab-size twice" err "--vocab-size" - "${RESCMD[@]}" --vocab-size 50304 --vocab-size 50400
t "resize_embedding --vocab-size and --tokenizer" err "--vocab-size|--tokenizer" - "${RESCMD[@]}" --vocab-size 50304 --tokenizer "$TOKBIN"
t "resize_embedding unknown flag --bogus" err "--bogus" - "${RESCMD[@]}" --vocab-size 50304 --bogus
t "resize_embedding third positional" err "extra|stray|too many" - "${RESCMD[@]}" extra --vocab-size 50304
t "resize_embedding --help" ok - '[ -s "$O" ]' "$RES" --help
t "resize_embedding --vocab-size=1e5 (name=value, e-notation)" ok - - "${RESCMD[@]}" --vocab-size=1e5

# ----------------------------------------------------------------------------
# 2. hostile inputs

while read -r kind path; do
    TO=$(to_for $kind) t "train_gpt -i $kind" err "$path" - "$TG" "${TINY[@]}" -i "$path"
done < <(inputs_of "$W/trunc_shard.bin")
while read -r kind path; do
    TO=$(to_for $kind) t "train_gpt -j $kind" err "$path" - "$TG" "${TINY[@]}" -v 1 -j "$path"
done < <(inputs_of "$W/trunc_shard.bin")
while read -r kind path; do
    TO=$(to_for $kind) t "train_gpt -e $kind" err "$path" - "$TG" -e "$path" -b 2 -t 32 -x 2 -v 0 -s 0
done < <(inputs_of "$W/trunc_ckpt.bin")
while read -r kind path; do
    # the tokenizer only decodes samples: a warning that names it is enough
    TO=$(to_for $kind) t "train_gpt --tokenizer $kind" warn "$path" - "$TG" -e d1 -b 2 -t 32 -x 1 -v 0 -s 1 -g 4 --tokenizer "$path"
done < <(inputs_of "$W/trunc_tok.bin")
while read -r kind path; do
    TO=$(to_for $kind) t "train_gpt --hellaswag $kind" err "$path" - "$TG" -e d1 -b 2 -t 32 -x 1 -v 0 -s 0 -h 1 --hellaswag-examples 2 --hellaswag "$path"
done < <(inputs_of "$W/trunc_hs.bin")
while read -r kind path; do
    TO=$(to_for $kind) t "train_gpt --tasks $kind" err "$path" - "$TG" -e d1 -b 2 -t 32 -x 1 -v 0 -s 0 --tasks "$path" --tasks-examples 2
done < <(inputs_of "$W/trunc_hs.bin")
# glob patterns that match nothing, or a directory's contents
t "train_gpt -i glob matching nothing" err "$W/nothing_*.bin" - "$TG" "${TINY[@]}" -i "$W/nothing_*.bin"

while read -r kind path; do
    case $kind in truncated|garbage) continue ;; esac  # any bytes are text to a byte-level BPE
    ex=err; [ $kind = empty ] && ex=warn  # an empty text file is 0 documents: say so, naming it
    TO=$(to_for $kind) t "tokenize input $kind" $ex "$path" - "$TOK" -o "$W/out/ti" "$path"
done < <(inputs_of -)
t "tokenize input garbage as JSONL" warn "$W/garbage.jsonl" - "$TOK" -o "$W/out/ti" "$W/garbage.jsonl"
t "tokenize input truncated JSONL (last line cut)" warn "$W/trunc.jsonl" - "$TOK" -o "$W/out/ti" "$W/trunc.jsonl"
while read -r kind path; do
    TO=$(to_for $kind) t "tokenize --encoder $kind" err "$path" - "$TOK" --encoder "$path" --merges "$MER" -o "$W/out/te" "$W/small.txt"
done < <(inputs_of "$W/trunc_encoder.json")
while read -r kind path; do
    TO=$(to_for $kind) t "tokenize --merges $kind" err "$path" - "$TOK" --encoder "$ENC" --merges "$path" -o "$W/out/tm" "$W/small.txt"
done < <(inputs_of "$W/trunc_vocab.bpe")
while read -r kind path; do
    TO=$(to_for $kind) t "tokenize --tiktoken $kind" err "$path" - "$TOK" --tiktoken "$path" -o "$W/out/tt" "$W/small.txt"
done < <(inputs_of "$W/trunc.tiktoken")
while read -r kind path; do
    TO=$(to_for $kind) t "tokenize --decode $kind" err "$path" - "$TOK" --decode "$path"
done < <(inputs_of "$W/trunc_shard.bin")

while read -r kind path; do
    [ $kind = garbage ] && path=$W/garbage.jsonl
    [ $kind = truncated ] && { t "pipeline input truncated JSONL" warn "$W/trunc.jsonl" - "$PIPE" --quiet --out-prefix "$W/out/pi" "$W/trunc.jsonl"; continue; }
    ex=err; [ $kind = empty ] && ex=warn
    TO=$(to_for $kind) t "pipeline input $kind" $ex "$path" - "$PIPE" --quiet --out-prefix "$W/out/pi" "$path"
done < <(inputs_of -)
t "pipeline --tokenizer-dir missing" err "$MISSING" - "$PIPE" --quiet --out-prefix "$W/out/pt" --tokenizer-dir "$MISSING" "$W/docs.jsonl"
t "pipeline --tokenizer-dir without the files" err "$W/dir" - "$PIPE" --quiet --out-prefix "$W/out/pt" --tokenizer-dir "$W/dir" "$W/docs.jsonl"
t "pipeline --block-hosts a directory" err "$W/dir" - "${PIPECMD[@]}" --block-hosts "$W/dir"
t "pipeline --block-hosts an empty file" warn "$W/empty" - "${PIPECMD[@]}" --block-hosts "$W/empty"
TO=5 t "pipeline --block-hosts a FIFO" err "$W/fifo" - "${PIPECMD[@]}" --block-hosts "$W/fifo"
t "pipeline --allow-hosts missing" err "$MISSING" - "${PIPECMD[@]}" --allow-hosts "$MISSING"
t "pipeline --allow-only without --allow-hosts" err "--allow-only|--allow-hosts" - "${PIPECMD[@]}" --allow-only

while read -r kind path; do
    TO=$(to_for $kind) t "resize_embedding checkpoint $kind" err "$path" - "$RES" "$path" "$W/out/r.bin" --vocab-size 50304
done < <(inputs_of "$W/trunc_ckpt.bin")
while read -r kind path; do
    TO=$(to_for $kind) t "resize_embedding --tokenizer $kind" err "$path" - "$RES" "$CKPT" "$W/out/r.bin" --tokenizer "$path" --base-tokenizer "$TOKBIN"
done < <(inputs_of "$W/trunc_tok.bin")
while read -r kind path; do
    TO=$(to_for $kind) t "resize_embedding --base-tokenizer $kind" err "$path" - "$RES" "$CKPT" "$W/out/r.bin" --tokenizer "$TOKBIN" --base-tokenizer "$path"
done < <(inputs_of "$W/trunc_tok.bin")
t "resize_embedding --tokenizer without --base-tokenizer" err "--base-tokenizer" - "$RES" "$CKPT" "$W/out/r.bin" --tokenizer "$TOKBIN"
t "resize_embedding --tokenizer = --base-tokenizer (nothing to grow)" any "--tokenizer|--base-tokenizer|$TOKBIN" - "$RES" "$CKPT" "$W/out/r.bin" --tokenizer "$TOKBIN" --base-tokenizer "$TOKBIN"
# files of the wrong kind: each reader must say which file is not what it expected
t "resize_embedding IN is a token shard" err "$VAL" - "$RES" "$VAL" "$W/out/r.bin" --vocab-size 50304
t "train_gpt -i is a model checkpoint" err "$CKPT" - "$TG" "${TINY[@]}" -i "$CKPT"
t "train_gpt -e is a token shard" err "$VAL" - "$TG" -e "$VAL" -b 2 -t 32 -x 1 -v 0 -s 0
t "train_gpt --tokenizer is a model checkpoint" warn "$CKPT" - "$TG" -e d1 -b 2 -t 32 -x 1 -v 0 -s 1 -g 4 --tokenizer "$CKPT"
t "train_gpt --hellaswag is a token shard" err "$VAL" - "$TG" -e d1 -b 2 -t 32 -x 1 -v 0 -s 0 -h 1 --hellaswag "$VAL"
t "train_gpt --tasks is a model checkpoint" err "$CKPT" - "$TG" -e d1 -b 2 -t 32 -x 1 -v 0 -s 0 --tasks "$CKPT"
t "tokenize --decode a model checkpoint" err "$CKPT" - "$TOK" --decode "$CKPT"
t "tokenize --tiktoken is GPT-2's encoder.json" err "$ENC" - "$TOK" --tiktoken "$ENC" -o "$W/out/tw" "$W/small.txt"
t "train_gpt -i glob matching a directory and a FIFO" err "$W/fifo|$W/dir|-i" - "$TG" "${TINY[@]}" -i "$W/[df]i*"
t "pipeline: a good input then a missing one" err "$MISSING" - "${PIPECMD[@]}" "$MISSING"
t "tokenize: a good input then a directory" err "$W/dir" - "${TOKCMD[@]}" "$W/dir"
t "bpe_train: a good input then a FIFO" err "$W/fifo" - "${BPECMD[@]}" --vocab-size 300 "$W/fifo"
# crafted headers: the model file's header with one field made absurd
python3 - "$CKPT" "$W" <<'PY'
import struct, sys
src, w = sys.argv[1], sys.argv[2]
data = bytearray(open(src, "rb").read())
for name, idx, val in [("V0", 3, 0), ("Vhuge", 3, 2**31 - 1), ("Vp_lt_V", 7, 100), ("Cneg", 6, -64),
                       ("Lhuge", 4, 1 << 30), ("maxT0", 2, 0), ("NH0", 5, 0), ("version9", 1, 9)]:
    d = bytearray(data)
    struct.pack_into("<i", d, 4 * idx, val)
    open("%s/hdr_%s.bin" % (w, name), "wb").write(d)
PY
for h in V0 Vhuge Vp_lt_V Cneg Lhuge maxT0 NH0 version9; do
    t "resize_embedding crafted header $h" err "$W/hdr_$h.bin" - "$RES" "$W/hdr_$h.bin" "$W/out/r.bin" --vocab-size 50304
done
t "train_gpt -e crafted header Vhuge" err "$W/hdr_Vhuge.bin" - "$TG" -e "$W/hdr_Vhuge.bin" -b 2 -t 32 -x 1 -v 0 -s 0

while read -r kind path; do
    [ $kind = garbage ] && path=$W/garbage.jsonl
    [ $kind = truncated ] && continue
    ex=err; [ $kind = empty ] && ex=warn
    TO=$(to_for $kind) t "bpe_train input $kind" $ex "$path" - "$BPE" -o "$W/out/bi.tiktoken" --base none --vocab-size 300 "$path"
done < <(inputs_of -)
while read -r kind path; do
    TO=$(to_for $kind) t "bpe_train --base-tiktoken $kind" err "$path" - "$BPE" -o "$W/out/bb.tiktoken" --base-tiktoken "$path" --add 10 "$W/small.txt"
done < <(inputs_of "$W/trunc.tiktoken")

# documents: a UTF-8 BOM does not lose the first document; a .json array is read as documents
t "tokenize JSONL with a UTF-8 BOM keeps the first document" ok - 'grep -q "^2 documents" "$O"' "$TOK" -o "$W/out/bom" "$W/bom.jsonl"
t "pipeline JSONL with a UTF-8 BOM keeps the first document" ok - 'two_docs $W/out/bom_pipe.jsonl' \
    "$PIPE" --quiet --no-quality --no-near-dedup --no-tokenize --out-jsonl "$W/out/bom_pipe.jsonl" "$W/bom.jsonl"
t "pipeline .json array: documents, not JSON syntax" ok - 'two_docs $W/out/json_pipe.jsonl' \
    "$PIPE" --quiet --no-quality --no-near-dedup --no-tokenize --out-jsonl "$W/out/json_pipe.jsonl" "$W/docs.json"
t "tokenize .json array" ok - 'grep -q "^2 documents" "$O"' "$TOK" -o "$W/out/jarr" "$W/docs.json"

# ----------------------------------------------------------------------------
# 3. hostile outputs

echo "precious" > "$W/target1"
ln -s "$W/target1" "$W/link_report.json"
t "pipeline --report symlink to a file: target written, link kept" ok - '[ -L $W/link_report.json ] && grep -q "{" $W/target1' \
    "${PIPECMD[@]}" --report "$W/link_report.json"
echo "precious" > "$W/target2"
ln -s "$W/target2" "$W/link_bt.tiktoken"
t "bpe_train -o symlink to a file: target written, link kept" ok - '[ -L $W/link_bt.tiktoken ] && [ "$(wc -l < $W/target2)" -gt 100 ]' \
    "${BPEBASE[@]}" --vocab-size 300 -o "$W/link_bt.tiktoken"
echo "precious" > "$W/target3"
ln -s "$W/target3" "$W/link_resized.bin"
t "resize_embedding OUT symlink to a file: target written, link kept" ok - '[ -L $W/link_resized.bin ] && [ "$(stat -c %s $W/target3)" -gt 1000000 ]' \
    "$RES" "$CKPT" "$W/link_resized.bin" --vocab-size 50304
mkdir -p "$W/tl"; echo "precious" > "$W/target4"
ln -s "$W/target4" "$W/tl/p_train_000000.bin"
t "tokenize shard symlink to a file: target written, link kept" ok - '[ -L $W/tl/p_train_000000.bin ] && [ "$(stat -c %s $W/target4)" -gt 1024 ]' \
    "$TOK" -o "$W/tl/p" "$W/small.txt"
if [ $HAVE_MKNOD = 1 ]; then DEV=$W/devnull; else DEV=/dev/null; fi
ln -s "$DEV" "$W/link_dev.json"
t "pipeline --report symlink to a device: device kept" any "$W/link_dev.json|$DEV" '[ -c '"$DEV"' ] && [ -L $W/link_dev.json ]' "${PIPECMD[@]}" --report "$W/link_dev.json"
t "pipeline --out-jsonl is a device node" any "$DEV" '[ -c '"$DEV"' ]' "${PIPECMD[@]}" --out-jsonl "$DEV"
t "pipeline --rejects /dev/null" any "/dev/null" '[ -c /dev/null ]' "${PIPECMD[@]}" --rejects /dev/null
t "bpe_train -o is a device node" any "$DEV" '[ -c '"$DEV"' ]' "${BPEBASE[@]}" --vocab-size 300 -o "$DEV"
t "resize_embedding OUT is a device node" any "$DEV" '[ -c '"$DEV"' ]' "$RES" "$CKPT" "$DEV" --vocab-size 50304
t "tokenize --write-tokenizer is a device node" any "$DEV" '[ -c '"$DEV"' ]' "$TOK" --write-tokenizer "$DEV"
t "tokenize --save-tiktoken /dev/null" any "/dev/null" '[ -c /dev/null ]' "$TOK" --save-tiktoken /dev/null
mkdir -p "$W/td"; ln -s "$DEV" "$W/td/p_train_000000.bin"
t "tokenize shard symlink to a device: device kept" any "$W/td/p_train_000000.bin|$DEV" '[ -c '"$DEV"' ]' "$TOK" -o "$W/td/p" "$W/small.txt"

# an output that is one of the inputs: refused, the input unchanged
cp "$W/docs.jsonl" "$W/in.jsonl"; cp "$W/docs.jsonl" "$W/in.copy"
for f in --out-jsonl --rejects --report; do
    t "pipeline $f names its input" err "$W/in.jsonl" 'unchanged $W/in.jsonl $W/in.copy' "$PIPE" --quiet --out-prefix "$W/out/same" "$f" "$W/in.jsonl" "$W/in.jsonl"
    cp "$W/in.copy" "$W/in.jsonl"
done
ln -s "$W/in.jsonl" "$W/in_link.jsonl"
t "pipeline --out-jsonl is a symlink to its input" err "$W/in_link.jsonl|$W/in.jsonl" 'unchanged $W/in.jsonl $W/in.copy' "$PIPE" --quiet --out-prefix "$W/out/same" --out-jsonl "$W/in_link.jsonl" "$W/in.jsonl"
cp "$W/in.copy" "$W/in.jsonl"
t "pipeline --report X --out-jsonl X" err "$W/out/x.json|--report|--out-jsonl" - "${PIPECMD[@]}" --report "$W/out/x.json" --out-jsonl "$W/out/x.json"
t "pipeline --rejects X --out-jsonl X" err "$W/out/y.json|--rejects|--out-jsonl" - "${PIPECMD[@]}" --rejects "$W/out/y.json" --out-jsonl "$W/out/y.json"
mkdir -p "$W/ts"; cp "$W/small.txt" "$W/ts/p_train_000000.bin"; cp "$W/small.txt" "$W/ts/copy"
t "tokenize output prefix names its input" err "$W/ts/p_train_000000.bin" 'unchanged $W/ts/p_train_000000.bin $W/ts/copy' "$TOK" -o "$W/ts/p" "$W/ts/p_train_000000.bin"
cp "$W/small.txt" "$W/ts/q_train.bin"
t "tokenize --no-shard-index output names its input" err "$W/ts/q_train.bin" 'unchanged $W/ts/q_train.bin $W/ts/copy' "$TOK" -o "$W/ts/q" --no-shard-index "$W/ts/q_train.bin"
cp "$W/small.txt" "$W/bin_in.txt"
t "bpe_train -o names its input" err "$W/bin_in.txt" 'unchanged $W/bin_in.txt $W/small.txt' "$BPE" -o "$W/bin_in.txt" --base none --vocab-size 300 "$W/bin_in.txt"
cp "$CKPT" "$W/res_in.bin"
t "resize_embedding OUT is IN" err "$W/res_in.bin" 'unchanged $W/res_in.bin '"$CKPT" "$RES" "$W/res_in.bin" "$W/res_in.bin" --vocab-size 50304
cp "$TRAIN" "$W/shard_in.bin"
t "tokenize --batch-encode OUT is IN" err "$W/shard_in.bin" 'unchanged $W/shard_in.bin '"$TRAIN" "$TOK" --batch-encode "$W/shard_in.bin" "$W/shard_in.bin"

# outputs that are another input of the same run, or each other
mkdir -p "$W/enc"; cp "$ENC" "$W/enc/encoder.json"; cp "$ENC" "$W/enc/copy.json"
t "tokenize --write-tokenizer names --encoder" err "$W/enc/encoder.json" 'unchanged $W/enc/encoder.json $W/enc/copy.json' "$TOK" --encoder "$W/enc/encoder.json" --merges "$MER" --write-tokenizer "$W/enc/encoder.json"
cp "$W/gpt2.tiktoken" "$W/tk_in.tiktoken"
t "tokenize --save-tiktoken names --tiktoken" err "$W/tk_in.tiktoken" 'unchanged $W/tk_in.tiktoken $W/gpt2.tiktoken' "$TOK" --tiktoken "$W/tk_in.tiktoken" --save-tiktoken "$W/tk_in.tiktoken"
t "bpe_train -o X --write-tokenizer X" err "$W/out/both|-o|--write-tokenizer" - "${BPEBASE[@]}" --vocab-size 300 -o "$W/out/both" --write-tokenizer "$W/out/both"
cp "$W/gpt2.tiktoken" "$W/base_in.tiktoken"
t "bpe_train -o names --base-tiktoken" err "$W/base_in.tiktoken" 'unchanged $W/base_in.tiktoken $W/gpt2.tiktoken' "$BPE" --base-tiktoken "$W/base_in.tiktoken" --add 10 -o "$W/base_in.tiktoken" "$W/small.txt"
cp "$TOKBIN" "$W/tok_in.bin"
t "resize_embedding OUT names --tokenizer" err "$W/tok_in.bin" 'unchanged $W/tok_in.bin '"$TOKBIN" "$RES" "$CKPT" "$W/tok_in.bin" --tokenizer "$W/tok_in.bin" --base-tokenizer "$TOKBIN"
mkdir -p "$W/ps"; cp "$W/docs.jsonl" "$W/ps/p_train_000000.bin"; cp "$W/docs.jsonl" "$W/ps/copy"
t "pipeline --out-prefix shard names its input" err "$W/ps/p_train_000000.bin" 'unchanged $W/ps/p_train_000000.bin $W/ps/copy' "$PIPE" --quiet --format jsonl --out-prefix "$W/ps/p" "$W/ps/p_train_000000.bin"
t "pipeline --report X --rejects X" err "$W/out/z.json|--report|--rejects" - "${PIPECMD[@]}" --report "$W/out/z.json" --rejects "$W/out/z.json"

# outputs in a nonexistent directory: refused naming it, or the directories are made
made() { [ "$RC" != 0 ] || [ -e "$1" ]; }
t "tokenize -o in a nonexistent directory" any "$W/nodir" 'made $W/nodir/sub/p_train_000000.bin' "$TOK" -o "$W/nodir/sub/p" "$W/small.txt"
t "pipeline --report in a nonexistent directory" any "$W/nodir" 'made $W/nodir/r.json' "${PIPECMD[@]}" --report "$W/nodir/r.json"
t "pipeline --out-prefix in a nonexistent directory" any "$W/nodir" 'made $W/nodir/x/p_train_000000.bin' "$PIPE" --quiet --out-prefix "$W/nodir/x/p" "$W/docs.jsonl"
t "bpe_train -o in a nonexistent directory" any "$W/nodir" 'made $W/nodir/t.tiktoken' "${BPEBASE[@]}" --vocab-size 300 -o "$W/nodir/t.tiktoken"
t "resize_embedding OUT in a nonexistent directory" any "$W/nodir" 'made $W/nodir/r.bin' "$RES" "$CKPT" "$W/nodir/r.bin" --vocab-size 50304
t "train_gpt -o under a file" err "$W/small.txt" - "$TG" "${TINY[@]}" -o "$W/small.txt/run"

# an unwritable directory: root ignores chmod 555, so a read-only bind mount
mkdir -p "$W/ro"
if mount --bind "$W/ro" "$W/ro" 2>/dev/null && mount -o remount,ro,bind "$W/ro" 2>/dev/null; then
    RO_MOUNTED=1
    t "tokenize -o in a read-only directory" err "$W/ro" - "$TOK" -o "$W/ro/p" "$W/small.txt"
    t "pipeline --report in a read-only directory" err "$W/ro" - "${PIPECMD[@]}" --report "$W/ro/r.json"
    t "bpe_train -o in a read-only directory" err "$W/ro" - "${BPEBASE[@]}" --vocab-size 300 -o "$W/ro/t.tiktoken"
    t "resize_embedding OUT in a read-only directory" err "$W/ro" - "$RES" "$CKPT" "$W/ro/r.bin" --vocab-size 50304
    t "train_gpt -o in a read-only directory" err "$W/ro" - "$TG" "${TINY[@]}" -o "$W/ro/run"
else
    echo "note: no read-only bind mount here (not root, or no mount permission): unwritable-directory cases skipped"
fi

# an over-long output path: 1016 characters, in directories that exist
LONG=$W/long
while [ ${#LONG} -lt 900 ]; do LONG=$LONG/$(printf 'd%.0s' $(seq 1 150)); done
mkdir -p "$LONG"
pad=$((1016 - ${#LONG} - 1))
LONGF=$LONG/$(printf 'f%.0s' $(seq 1 $pad))
# no file may appear anywhere but at the path asked for (a truncated path writes elsewhere)
strays='[ -z "$(find '"$W"'/long -type f ! -path "'"$LONGF"'*")" ]'
long_case() { find "$W/long" -type f -delete; t "$@"; }
long_case "tokenize -o over-long path (1016 chars)" any "-o|--out|File name too long|too long" "$strays" "$TOK" -o "$LONGF" "$W/small.txt"
long_case "pipeline --report over-long path (1016 chars)" any "--report|File name too long|too long" "$strays" "${PIPECMD[@]}" --report "$LONGF"
long_case "bpe_train -o over-long path (1016 chars)" any "-o|--out|File name too long|too long" "$strays" "${BPEBASE[@]}" --vocab-size 300 -o "$LONGF"
long_case "pipeline --out-prefix over-long path (1016 chars)" any "--out-prefix|File name too long|too long" "$strays" "$PIPE" --quiet --out-prefix "$LONGF" "$W/docs.jsonl"
long_case "pipeline --out-jsonl over-long path (1016 chars)" any "--out-jsonl|File name too long|too long" "$strays" "${PIPECMD[@]}" --out-jsonl "$LONGF"
long_case "tokenize --write-tokenizer over-long path (1016 chars)" any "--write-tokenizer|File name too long|too long" "$strays" "$TOK" --write-tokenizer "$LONGF"
long_case "tokenize --no-shard-index over-long path (1016 chars)" any "-o|--out|File name too long|too long" "$strays" "$TOK" --no-shard-index -o "$LONGF" "$W/small.txt"
long_case "resize_embedding OUT over-long path (1016 chars)" any "File name too long|too long|OUT" "$strays" "$RES" "$CKPT" "$LONGF" --vocab-size 50304
long_case "train_gpt -o over-long path (1016 chars): refused before training" err "-o" '! grep -q "^step" "$O"' "$TG" "${TINY[@]}" -o "$LONGF"

# ----------------------------------------------------------------------------
# 4. train_gpt run directories

# two runs sharing -o: the second is refused, naming the first one's pid
"$TG" -e d1 -b 2 -t 32 -x 400 -v 0 -s 0 -o "$W/live" > "$W/live.out" 2>&1 &
LIVE=$!
BG_PIDS="$BG_PIDS $LIVE"
for _ in $(seq 1 100); do grep -q "^step" "$W/live.out" 2>/dev/null && break; sleep 0.1; done
alive='kill -0 '"$LIVE"
t "train_gpt run: second run sharing -o refused, naming the holder's pid" err "$LIVE" "$alive" "$TG" "${TINY[@]}" -o "$W/live"
t "train_gpt run: --overwrite during a live run refused" err "$LIVE" "$alive" "$TG" "${TINY[@]}" -o "$W/live" --overwrite
t "train_gpt run: -y 1 during a live run refused, the live run keeps going" err "$LIVE" "$alive" "$TG" "${TINY[@]}" -o "$W/live" -y 1
kill -9 "$LIVE" 2>/dev/null; wait "$LIVE" 2>/dev/null
t "train_gpt run: a dead holder's lock is taken over (--overwrite)" ok - - "$TG" "${TINY[@]}" -o "$W/live" --overwrite

# a fresh run into a directory holding a run: refused unless --overwrite
cp -r "$W/ref" "$W/held"
sum=$(md5 "$W/held/$(basename "$CKPT")")
t "train_gpt run: fresh run into a directory holding a run refused" err "$W/held|--overwrite|-y" '[ "$(md5 $W/held/'"$(basename "$CKPT")"')" = '"$sum"' ]' "$TG" "${TINY[@]}" -o "$W/held"
t "train_gpt run: ... and allowed with --overwrite" ok - - "$TG" "${TINY[@]}" -o "$W/held" --overwrite

# --eval must not touch the run's logs
cp -r "$W/ref" "$W/ev"
logsum="$(md5 "$W/ev/main.log") $(md5 "$W/ev/main.jsonl")"
t "train_gpt run: --eval -o RUN leaves main.log and main.jsonl alone" any "-o|--eval" \
    '[ "$(md5 $W/ev/main.log) $(md5 $W/ev/main.jsonl)" = "'"$logsum"'" ]' \
    "$TG" --eval -e "$W/ev/$(basename "$CKPT")" -b 2 -t 32 -m 1 -o "$W/ev"

# (resumes below extend the run to -x 3 or 4: --accept-changes, so the check under test is the one that fires)
# resume must not delete someone else's temp-looking file
cp -r "$W/ref" "$W/tmpf"
echo "mine" > "$W/tmpf/foo.tmp.123"
t "train_gpt run: -y 1 keeps someone else's foo.tmp.123" ok - '[ -f $W/tmpf/foo.tmp.123 ]' "$TG" "${TINY[@]}" -x 3 -o "$W/tmpf" -y 1 --accept-changes

# a tampered state file, a tampered model file
flip() { python3 -c "import sys; f=open(sys.argv[1],'r+b'); f.seek(int(sys.argv[2])); b=f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0]^0x40]))" "$1" "$2"; }
cp -r "$W/ref" "$W/tamper"
ST=$W/tamper/$(basename "$STATE")
flip "$ST" $(( $(stat -c %s "$ST") / 2 ))
t "train_gpt run: resume with a tampered state file refused, naming it" err "$(basename "$STATE")" - "$TG" "${TINY[@]}" -x 4 -o "$W/tamper" -y 1 --accept-changes
cp -r "$W/ref" "$W/tamper2"
ST=$W/tamper2/$(basename "$STATE")
flip "$ST" 1100
t "train_gpt run: resume with a state file tampered near its header refused" err "$(basename "$STATE")" - "$TG" "${TINY[@]}" -x 4 -o "$W/tamper2" -y 1 --accept-changes
cp -r "$W/ref" "$W/tamper3"
MD=$W/tamper3/$(basename "$CKPT")
flip "$MD" $(( $(stat -c %s "$MD") / 2 ))
t "train_gpt run: resume with a tampered model file refused, naming it" err "$(basename "$CKPT")" - "$TG" "${TINY[@]}" -x 4 -o "$W/tamper3" -y 1 --accept-changes
cp -r "$W/ref" "$W/splice"
cp "$W/ref/$(basename "$STATE")" "$W/splice/"
# a checkpoint spliced from another run: the model of a different seed with this run's state
"$TG" -e d1 -b 2 -t 32 -x 2 -v 0 -s 0 --seed 7 -o "$W/other" > /dev/null 2>&1
cp "$W/other/$(basename "$CKPT")" "$W/splice/$(basename "$CKPT")"
t "train_gpt run: resume from a spliced checkpoint (model of another run) refused" err "$(basename "$CKPT")|$(basename "$STATE")|splice" - "$TG" "${TINY[@]}" -x 4 -o "$W/splice" -y 1 --accept-changes

# a bad token id deep in a shard: refused at start-up, naming the shard
python3 - "$TRAIN" "$W/badtok.bin" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[-100:-98] = (60000).to_bytes(2, "little")
open(sys.argv[2], "wb").write(d)
PY
t "train_gpt: a token >= 50257 near the end of a train shard" err "$W/badtok.bin" '! grep -q "^step" "$O"' "$TG" "${TINY[@]}" -i "$W/badtok.bin"
t "train_gpt: a token >= 50257 near the end of a val shard" err "$W/badtok.bin" '! grep -q "^step" "$O"' "$TG" "${TINY[@]}" -v 1 -j "$W/badtok.bin"

# -b 4096 -t 1048576 against a checkpoint with a long context: a clear error, no SIGFPE
python3 - "$CKPT" "$W/longctx.bin" <<'PY'
import os, struct, sys
src, dst = sys.argv[1], sys.argv[2]
h = list(struct.unpack("<256i", open(src, "rb").read(1024)))
n_params = (os.path.getsize(src) - 1024) // (2 if h[1] == 5 else 4)
maxT, C = h[2], h[6]
newT = 1048576
h[2] = newT
with open(dst, "wb") as f:
    f.write(struct.pack("<256i", *h))
    f.truncate(1024 + 4 * (n_params + (newT - maxT) * C))  # sparse: all-zero parameters
PY
t "train_gpt -b 4096 -t 1048576 on a long-context checkpoint" err "-b|-t|--batch-size|--seq-len|memory" - "$TG" -e "$W/longctx.bin" -b 4096 -t 1048576 -x 1 -v 0 -s 0
t "train_gpt -b 65536 -t 65536 -d -1 (B*T overflows int)" err "-b|-t|--batch-size|--seq-len|memory" - "$TG" -e "$W/longctx.bin" -b 65536 -t 65536 -x 1 -v 0 -s 0

# logs to a full device (a resumed run appends to them; --overwrite would just delete the links)
if [ -c "$W/devfull" ]; then FULL=$W/devfull; else FULL=/dev/full; fi
for lg in main.log main.jsonl; do
    cp -r "$W/ref" "$W/full_$lg"
    rm -f "$W/full_$lg/$lg"
    ln -s "$FULL" "$W/full_$lg/$lg"
    t "train_gpt run: $lg on a full device (-y 1)" err "$lg|No space" '[ -c '"$FULL"' ]' "$TG" "${TINY[@]}" -x 3 -o "$W/full_$lg" -y 1 --accept-changes
done
t "train_gpt run: -y 1 with no checkpoint in -o" any "$W/dir|-y|-o" - "$TG" "${TINY[@]}" -o "$W/dir" -y 1
cp -r "$W/ref" "$W/splice2"
cp "$W/other/$(basename "$CKPT")" "$W/other/DONE_"* "$W/splice2/"
t "train_gpt run: resume from a model + DONE of another run with this run's state" err "$(basename "$STATE")|$(basename "$CKPT")|DONE" - "$TG" "${TINY[@]}" -x 4 -o "$W/splice2" -y 1 --accept-changes

# ----------------------------------------------------------------------------
# summary

echo
echo "hostile-input sweep: $NCASE cases"
printf "  %-8s %5s\n" class cases
for c in ok crash hang silent unclear refused; do printf "  %-8s %5d\n" "$c" "${COUNT[$c]}"; done
if [ ${#FAILS[@]} -gt 0 ]; then
    echo
    echo "FAILs by class (class | case | command):"
    printf '%s\n' "${FAILS[@]}" | sort
    exit 1
fi
exit 0
