#!/usr/bin/env bash
# dev/infer/generate end to end, against transformers' generate() on the same weights exported
# with dev/infer/hf_export.py (a fresh random GPT-2-vocabulary model each run; seed printed):
# greedy, greedy with a repetition penalty, beam search with two settings; then the
# generator's own behaviour: batch = one at a time, seeded sampling, --stop, streaming, a
# quantized file = quantizing on load, and the refusals.
set -u
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
pass() { echo "PASS: $1 ($2)"; }
GEN=./dev/infer/generate
seed=$(( ($(date +%s) ^ $$) % 100000 ))
echo "test_generate: seed $seed"

# a random model on GPT-2's vocabulary (the reference's init), rescaled: at GPT-2's init the
# residual stream is the token's own embedding, and a tied LM head then repeats the input token
# forever; with the blocks' output projections 10x larger the next token depends on the
# context, and a 4x final LayerNorm gain makes the distributions peaked (near ties between two
# implementations' rounding would otherwise decide greedy choices); a 4x end-of-text embedding
# makes about half of the generations end with it, so the stopping rules are compared too
$PYTHON dev/reference/gpt2_reference.py --V 50257 --L 2 --C 64 --NH 4 --maxT 96 --steps 0 --seed "$seed" \
    --out "$work/ref" > "$work/ref.out" 2>&1 || { echo "FAIL: reference model: $(tail -2 "$work/ref.out")"; exit 1; }
$PYTHON - "$work/ref_model.bin" "$work/model.bin" <<'EOF' || { echo "FAIL: scaling the model"; exit 1; }
import sys, numpy as np
raw = open(sys.argv[1], "rb").read()
h = np.frombuffer(raw[:1024], dtype=np.int32).copy()
assert h[0] == 20240326 and h[1] == 3, "not a v3 checkpoint"
p = np.frombuffer(raw[1024:], dtype=np.float32).copy()
maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
sizes = [Vp * C, maxT * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C,
         L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]
at = np.concatenate([[0], np.cumsum(sizes)])
assert at[-1] == p.size
for t, f in ((6, 10.0), (12, 10.0), (14, 4.0)):  # attprojw, fcprojw, lnfw
    p[at[t]:at[t + 1]] *= f
p[50256 * C:50257 * C] *= 4.0  # end-of-text: likely enough that some generations end with it
open(sys.argv[2], "wb").write(h.tobytes() + p.tobytes())
EOF
MODEL=$work/model.bin
$PYTHON dev/infer/hf_export.py "$MODEL" "$work/hf" > "$work/export.out" 2>&1 ||
    { echo "FAIL: hf_export: $(tail -2 "$work/export.out")"; exit 1; }

# prompts: the first lines of tiny shakespeare, one with a newline, one with non-ASCII text
DATA=../shared/data
shakes=$(ls $DATA/tinyshakespeare/input.txt $DATA/tiny_shakespeare/input.txt $DATA/*/tinyshakespeare.txt 2>/dev/null | head -1)
{
    if [ -n "$shakes" ]; then grep -v '^$' "$shakes" | sed -n '1,6p'; else printf 'First Citizen:\nBefore we proceed any further, hear me speak.\nYou are all resolved rather to die than to famish?\n'; fi
    printf 'ROMEO:\\nBut soft, what light\n'
    printf 'Caf\xc3\xa9 na\xc3\xafve \xe2\x80\x94 r\xc3\xa9sum\xc3\xa9\n'
} > "$work/prompts.txt"

ours() {  # NAME FLAGS...: our generator on every prompt, jsonl
    local name=$1; shift
    $GEN -e "$MODEL" --prompt-file "$work/prompts.txt" --format jsonl -q "$@" > "$work/$name.jsonl" 2> "$work/$name.err" ||
        { fail "generate $name" "$(tail -2 "$work/$name.err")"; return 1; }
}
compare() {  # NAME REFERENCE-FLAGS...
    local name=$1; shift
    $PYTHON dev/infer/decode_reference.py generate "$work/hf" "$work/prompts.txt" "$work/$name.jsonl" "$@" 2>&1 | grep -E '^(PASS|FAIL)' ||
        fail "transformers generate ($name)" "no result"
}
ours greedy --greedy -n 24 && compare greedy --max-new-tokens 24
ours rep --greedy -n 24 --repetition-penalty 1.3 && compare rep --max-new-tokens 24 --repetition-penalty 1.3
ours beam4 --beams 4 -n 16 && compare beam4 --max-new-tokens 16 --beams 4 --length-penalty 1.0 --early-stopping false
ours beam3 --beams 3 -n 12 --length-penalty 0.6 --early-stopping true && \
    compare beam3 --max-new-tokens 12 --beams 3 --length-penalty 0.6 --early-stopping true
# every kept hypothesis and its score, not only the best: the bookkeeping must agree too
ours beam6 --beams 6 -n 14 --num-return-sequences 6 && \
    compare beam6 --max-new-tokens 14 --beams 6 --length-penalty 1.0 --early-stopping false --num-return 6
ours beam5 --beams 5 -n 10 --length-penalty 2.0 --early-stopping never --repetition-penalty 1.2 && \
    compare beam5 --max-new-tokens 10 --beams 5 --length-penalty 2.0 --early-stopping never --repetition-penalty 1.2

# batch of 3 decoded side by side = one at a time (greedy)
ours batch3 --greedy -n 24 --batch 3
if cmp -s <(grep -o '"tokens": \[[^]]*\]' "$work/greedy.jsonl") <(grep -o '"tokens": \[[^]]*\]' "$work/batch3.jsonl"); then
    pass "--batch 3 gives the tokens of one prompt at a time" "$(wc -l < "$work/prompts.txt") prompts, greedy"
else fail "--batch 3" "tokens differ from one prompt at a time"; fi

# sampling: the same seed twice, then another seed
ours s1 --temperature 1.5 --top-k 50 --top-p 0.95 -n 20 --seed 7
ours s2 --temperature 1.5 --top-k 50 --top-p 0.95 -n 20 --seed 7
ours s3 --temperature 1.5 --top-k 50 --top-p 0.95 -n 20 --seed 8
strip() { sed 's/"ttft_ms".*//' "$1"; }
if cmp -s <(strip "$work/s1.jsonl") <(strip "$work/s2.jsonl") && ! cmp -s <(strip "$work/s1.jsonl") <(strip "$work/s3.jsonl"); then
    pass "sampling is reproducible by --seed" "seed 7 twice the same, seed 8 different"
else fail "sampling and --seed" "seed 7 twice differs, or seed 8 gives the same"; fi

# --stop: the text ends where the stop string first occurs, stop reason "stop"
first_text=$($PYTHON -c "import json,sys; print(json.loads(open(sys.argv[1]).readline())['text'])" "$work/greedy.jsonl")
stopper=$($PYTHON -c "import sys; t=sys.argv[1]; print(t[len(t)//2:len(t)//2+3] if len(t) > 8 else '')" "$first_text")
if [ -n "$stopper" ]; then
    out=$($GEN -e "$MODEL" --prompt "$(head -1 "$work/prompts.txt")" --greedy -n 24 --stop "$stopper" --format jsonl -q)
    got=$(printf '%s' "$out" | $PYTHON -c "import json,sys; d=json.loads(sys.stdin.read()); print(d['stop'], repr(d['text']))")
    want=$($PYTHON -c "import sys; t=sys.argv[1]; s=sys.argv[2]; print('stop', repr(t[:t.index(s)]))" "$first_text" "$stopper")
    [ "$got" = "$want" ] && pass "--stop cuts the text before the stop string" "stop string $(printf '%q' "$stopper")" ||
        fail "--stop" "got $got, expected $want"
fi

# streaming (--format text, one prompt) prints the same text as the jsonl record
streamed=$($GEN -e "$MODEL" --prompt "$(head -1 "$work/prompts.txt")" --greedy -n 24 -q)
[ "$streamed" = "$first_text" ] && pass "streamed text equals the jsonl text" "${#streamed} characters" ||
    fail "streamed text" "differs from the jsonl record"
err=$($GEN -e "$MODEL" --prompt "Hello" --greedy -n 8 2>&1 >/dev/null)
echo "$err" | grep -q "time to first token" && echo "$err" | grep -q "tokens/s" &&
    pass "timing on stderr" "$(echo "$err" | tail -1)" || fail "timing on stderr" "$err"

# a quantized file generates what quantizing on load generates
if [ -x dev/infer/quantize ]; then
    for k in int8 int4; do
        dev/infer/quantize -i "$MODEL" -o "$work/model.$k" --kind $k > "$work/q.out" 2>&1 || { fail "quantize $k" "$(tail -1 "$work/q.out")"; continue; }
        a=$($GEN -e "$work/model.$k" --prompt-file "$work/prompts.txt" --greedy -n 16 --format jsonl -q | grep -o '"tokens": \[[^]]*\]')
        b=$($GEN -e "$MODEL" --quant $k --prompt-file "$work/prompts.txt" --greedy -n 16 --format jsonl -q | grep -o '"tokens": \[[^]]*\]')
        [ -n "$a" ] && [ "$a" = "$b" ] && pass "$k file = --quant $k on load" "greedy tokens of every prompt" || fail "$k file" "differs from quantizing on load"
    done
else fail "dev/infer/quantize" "not built"; fi

# refusals: one clear message naming what is wrong, exit 1
refuse() {  # NAME PATTERN ARGS...
    local name=$1 pat=$2; shift 2
    out=$($GEN "$@" 2>&1 </dev/null); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$pat"; then pass "refuses $name" "$(echo "$out" | head -1)"
    else fail "refuses $name" "exit $rc: $out"; fi
}
refuse "a missing model" "$work/nope.bin" -e "$work/nope.bin" --prompt hi
head -c 5000 "$MODEL" > "$work/model_trunc.bin"
refuse "a truncated model" "model_trunc" -e "$work/model_trunc.bin" --prompt hi
refuse "--top-p 0" "--top-p" -e "$MODEL" --top-p 0
refuse "--early-stopping maybe" "--early-stopping" -e "$MODEL" --beams 2 --early-stopping maybe
refuse "--quant int3" "--quant" -e "$MODEL" --quant int3
refuse "--prompt with --prompt-file" "give one" -e "$MODEL" --prompt a --prompt-file "$work/prompts.txt"
long=$($PYTHON -c "print('the ' * 200)")
refuse "a prompt longer than the context" "context" -e "$MODEL" --prompt "$long"
printf '\n\n' > "$work/blank.txt"
refuse "a prompt file of blank lines" "no prompt" -e "$MODEL" --prompt-file "$work/blank.txt"
[ $fails -eq 0 ]
