#!/usr/bin/env bash
# Tests of dev/infer/hf_export.py and hf_import.py (our checkpoint <-> Hugging Face GPT-2), with
# a fresh seed every run (printed; SEED=... reproduces a run):
#  - a model from the PyTorch reference (dev/reference/gpt2_reference.py) at awkward sizes
#    (L=2 C=72 NH=3 V=997, so Vp=1024 has 27 padded rows; maxT=16) is exported, loaded with
#    transformers' GPT2LMHeadModel.from_pretrained on the CPU, offline, in fp32 (every tensor
#    used, none missing, lm_head tied), and its logits on the reference's input tokens equal
#    the reference's (float64 math, stored as fp32): scaled max error max|a-b|/max|b| <= 1e-5;
#  - the same at V=50257 (L=1 C=64 NH=1, a d1-size model) on real tokens of tiny shakespeare;
#  - the safetensors package (when installed) reads model.safetensors: GPT-2's names and
#    Conv1D shapes, no lm_head, metadata format "pt", values bitwise the checkpoint's;
#  - import of the export gives back the original checkpoint byte for byte (v3); so does the
#    import of what transformers' own save_pretrained writes;
#  - --dtype bfloat16: BF16 tensors = PyTorch's bf16 rounding of the original; the import
#    (v3) equals that rounding, --version 5 gives the bf16 checkpoint; transformers' logits from
#    it stay within 2e-2 of the reference; a version-5 checkpoint exports to the same BF16
#    values (bf16 by default) and imports back bitwise;
#  - GPT-2's own naming (no "transformer." prefix, F16, the attn.bias mask buffers, lm_head.weight
#    = wte) imports to the fp16 rounding of the original; a sharded model (index + 2 shards)
#    imports bitwise;
#  - tokenizer: with V=50257, GPT-2's encoder.json/vocab.bpe are exported (byte-identical as
#    vocab.json/merges.txt) and AutoTokenizer from the folder encodes a slice of tiny
#    shakespeare to tiktoken's gpt2 ids; a tiktoken rank file is converted (GPT-2's own, whose
#    recovered merges equal vocab.bpe, and a 997-id vocabulary trained by dev/data/bpe_train
#    for the awkward model), each encoding like tiktoken with its ranks;
#  - refusals, each one message naming the file, exit 1, nothing written (no output, an
#    existing output byte for byte untouched, no temp file left): truncated checkpoint, bad
#    magic, a NaN parameter, a non-empty OUTDIR (then --force replaces it; an empty one is
#    used), a tokenizer of another size; import of a safetensors with a missing tensor (named),
#    a wrong shape, an lm_head that differs from wte, activation gelu, layer_norm_epsilon 1e-6,
#    model_type gpt_neo, a truncated safetensors file.
# Prints PASS:/FAIL: lines; exits non-zero on failure. About 30 s of CPU.
set -u
cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd)
PY=${VENV_PYTHON:-$REPO/.venv/bin/python}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
DATA=${LLMC_SHARED_DATA:-$REPO/../shared/data}
SEED=${SEED:-$(( ($(date +%s) ^ $$ ^ RANDOM) % 1000000 ))}
echo "seed: $SEED (rerun with SEED=$SEED)"
W=$(mktemp -d /tmp/test_hf.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
EXPORT=("$PY" dev/infer/hf_export.py)
IMPORT=("$PY" dev/infer/hf_import.py)
CMP=("$PY" dev/infer/hf_compare.py)
run_check() { "$@" || fails=$((fails + 1)); }  # hf_compare prints its own PASS/FAIL lines

if ! "$PY" -c "import numpy, torch" 2>/dev/null; then echo "FAIL: $PY lacks numpy or torch (VENV_PYTHON overrides)"; exit 1; fi
if ! v=$("$PY" -c "import transformers; print(transformers.__version__)" 2>&1); then
    echo "FAIL: transformers is not importable by $PY: ${v##*$'\n'} (pip install transformers==4.36.2)"; exit 1
fi
if ! st=$("$PY" -c "import safetensors; print(safetensors.__version__)" 2>/dev/null); then st="not installed"; fi
echo "transformers $v, safetensors package $st"
if [ ! -r "$DATA/gpt2/encoder.json" ] || [ ! -r "$DATA/tinyshakespeare/input.txt" ]; then
    echo "FAIL: GPT-2's tokenizer files or tiny shakespeare are missing under $DATA (LLMC_SHARED_DATA overrides)"; exit 1
fi

# ---- the reference models
ref() { "$PY" dev/reference/gpt2_reference.py --steps 0 "$@" > "$W/ref.out" 2>&1 || { echo "FAIL: gpt2_reference.py $*: $(tail -3 "$W/ref.out")"; exit 1; }; }
ref --out "$W/awk" --seed "$SEED" --L 2 --C 72 --NH 3 --V 997 --maxT 16 --B 3 --T 13
TOKS=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
if [ -r "$TOKS" ]; then TOKARGS="--tokens $TOKS"; else TOKARGS=""; echo "note: $TOKS missing (make data): random token ids"; fi
# shellcheck disable=SC2086
ref --out "$W/g2" --seed "$((SEED + 1))" --L 1 --C 64 --NH 1 --V 50257 --maxT 40 --B 2 --T 21 $TOKARGS
AWK=$W/awk_model.bin
G2=$W/g2_model.bin

# ---- fp32 export, transformers' logits, round trip
if "${EXPORT[@]}" "$AWK" "$W/hf" > "$W/o" 2>&1; then
    files=$(cd "$W/hf" && find . -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')
    if [ "$files" = "config.json generation_config.json model.safetensors " ]; then
        pass "export of the awkward model ($(sed 's/.*-> //' "$W/o"); files: $files)"
    else
        fail "export of the awkward model" "files $files (V=997: no tokenizer expected)"
    fi
else
    fail "export of the awkward model" "$(cat "$W/o")"
fi
run_check "${CMP[@]}" logits "$W/hf" "$W/awk_debug_state.bin" --tol 1e-5 --name "fp32 export L=2 C=72 NH=3 V=997" --save "$W/hf_saved"
run_check "${CMP[@]}" safetensors "$W/hf" "$AWK"
if "${IMPORT[@]}" "$W/hf" "$W/back.bin" > "$W/o" 2>&1; then
    if cmp -s "$W/back.bin" "$AWK"; then pass "import of the export = the original checkpoint, byte for byte ($(wc -c < "$AWK") bytes)"
    else fail "import of the export" "$(cmp "$W/back.bin" "$AWK" 2>&1)"; fi
else
    fail "import of the export" "$(cat "$W/o")"
fi
if "${IMPORT[@]}" "$W/hf_saved" "$W/back_saved.bin" > "$W/o" 2>&1 && cmp -s "$W/back_saved.bin" "$AWK"; then
    pass "import of transformers' own save_pretrained output = the original checkpoint, byte for byte"
else
    fail "import of transformers' save_pretrained output" "$(cat "$W/o"; cmp "$W/back_saved.bin" "$AWK" 2>&1)"
fi

# ---- bf16
if "${EXPORT[@]}" "$AWK" "$W/hf16" --dtype bfloat16 > "$W/o" 2>&1; then
    run_check "${CMP[@]}" safetensors "$W/hf16" "$AWK" --bf16
    run_check "${CMP[@]}" logits "$W/hf16" "$W/awk_debug_state.bin" --tol 2e-2 --name "bf16 export (loaded in fp32)"
    if "${IMPORT[@]}" "$W/hf16" "$W/back16.bin" > "$W/o" 2>&1; then
        run_check "${CMP[@]}" ckpt "$AWK" "$W/back16.bin" --round bf16 --version 3 --name "import of the bf16 export (v3)"
    else fail "import of the bf16 export" "$(cat "$W/o")"; fi
    if "${IMPORT[@]}" "$W/hf16" "$W/back16v5.bin" --version 5 > "$W/o" 2>&1; then
        run_check "${CMP[@]}" ckpt "$AWK" "$W/back16v5.bin" --round bf16 --version 5 --name "import of the bf16 export --version 5"
        # a version-5 checkpoint: exported as bf16 by default, the same values, and back bitwise
        if "${EXPORT[@]}" "$W/back16v5.bin" "$W/hfv5" > "$W/o" 2>&1 && grep -q '"torch_dtype": "bfloat16"' "$W/hfv5/config.json" &&
           "${IMPORT[@]}" "$W/hfv5" "$W/backv5.bin" --version 5 > "$W/o" 2>&1 && cmp -s "$W/backv5.bin" "$W/back16v5.bin"; then
            run_check "${CMP[@]}" safetensors "$W/hfv5" "$AWK" --bf16
            pass "a version-5 checkpoint exports as bf16 by default and imports back (--version 5) byte for byte"
        else fail "version-5 export and import" "$(cat "$W/o")"; fi
    else fail "import --version 5 of the bf16 export" "$(cat "$W/o")"; fi
else
    fail "export --dtype bfloat16" "$(cat "$W/o")"
fi

# ---- GPT-2's own naming, F16, mask buffers, lm_head stored
"${CMP[@]}" variant "$W/hf" "$W/hub" hub > /dev/null
if "${IMPORT[@]}" "$W/hub/model.safetensors" "$W/back_hub.bin" > "$W/o" 2>&1; then
    run_check "${CMP[@]}" ckpt "$AWK" "$W/back_hub.bin" --round fp16 --name "import of GPT-2's Hub naming (no prefix, F16, attn.bias buffers, lm_head = wte)"
else fail "import of GPT-2's Hub naming" "$(cat "$W/o")"; fi
"${CMP[@]}" variant "$W/hf" "$W/sharded" sharded > /dev/null
if "${IMPORT[@]}" "$W/sharded" "$W/back_sharded.bin" > "$W/o" 2>&1 && cmp -s "$W/back_sharded.bin" "$AWK"; then
    pass "import of a sharded model (model.safetensors.index.json, 2 shards) = the original checkpoint, byte for byte"
else fail "import of a sharded model" "$(cat "$W/o"; cmp "$W/back_sharded.bin" "$AWK" 2>&1)"; fi

# ---- V = 50257: logits and GPT-2's tokenizer
if "${EXPORT[@]}" "$G2" "$W/hfg2" > "$W/o" 2>&1; then
    run_check "${CMP[@]}" logits "$W/hfg2" "$W/g2_debug_state.bin" --tol 1e-5 --name "fp32 export L=1 C=64 NH=1 V=50257"
    if cmp -s "$W/hfg2/vocab.json" "$DATA/gpt2/encoder.json" && cmp -s "$W/hfg2/merges.txt" "$DATA/gpt2/vocab.bpe" &&
       grep -q '"eos_token_id": 50256' "$W/hfg2/config.json" && grep -q '"eos_token_id": 50256' "$W/hfg2/generation_config.json"; then
        pass "V=50257 export carries GPT-2's encoder.json / vocab.bpe byte for byte as vocab.json / merges.txt, bos/eos 50256"
    else fail "V=50257 tokenizer files" "vocab.json/merges.txt differ from GPT-2's or eos is not 50256: $(ls "$W/hfg2")"; fi
    run_check "${CMP[@]}" tokenizer "$W/hfg2" "$DATA/tinyshakespeare/input.txt" "$SEED" --files "$DATA/gpt2/encoder.json" "$DATA/gpt2/vocab.bpe" --name "GPT-2 tokenizer"
else
    fail "export of the V=50257 model" "$(cat "$W/o")"
fi
"${CMP[@]}" write-tiktoken "$DATA/gpt2/encoder.json" "$DATA/gpt2/vocab.bpe" "$W/gpt2.tiktoken"
if "${EXPORT[@]}" "$G2" "$W/hfg2t" --tokenizer "$W/gpt2.tiktoken" > "$W/o" 2>&1; then
    if cmp -s "$W/hfg2t/merges.txt" "$DATA/gpt2/vocab.bpe" && "$PY" -c "import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))" "$W/hfg2t/vocab.json" "$DATA/gpt2/encoder.json"; then
        pass "GPT-2's vocabulary as a tiktoken rank file converts back to vocab.bpe byte for byte and to encoder.json's ids"
    else fail "tiktoken rank file conversion" "merges.txt or vocab.json differ from GPT-2's"; fi
else
    fail "export --tokenizer RANKS.tiktoken" "$(cat "$W/o")"
fi
if [ -x dev/data/bpe_train ]; then
    if ./dev/data/bpe_train --vocab-size 997 -o "$W/v997.tiktoken" "$DATA/tinyshakespeare/input.txt" > "$W/o" 2>&1 &&
       "${EXPORT[@]}" "$AWK" "$W/hft" --tokenizer "$W/v997.tiktoken" > "$W/o" 2>&1; then
        run_check "${CMP[@]}" tokenizer "$W/hft" "$DATA/tinyshakespeare/input.txt" "$((SEED + 2))" --tiktoken "$W/v997.tiktoken" --name "trained 997-id vocabulary"
    else fail "export with a vocabulary trained by bpe_train" "$(cat "$W/o")"; fi
else
    fail "vocabulary trained by bpe_train" "dev/data/bpe_train is not built (make dev/data/bpe_train)"
fi

# ---- refusals: exit 1, one message naming FILE and containing WHAT, nothing written
leftovers() { find "$W" -maxdepth 2 \( -name '*.tmp.*' -o -name '.*.old.*' \) | head -3; }
refused() {  # NAME FILE WHAT OUTPUT CMD...: OUTPUT must not exist afterwards
    local name=$1 file=$2 what=$3 out=$4
    shift 4
    "$@" > "$W/o" 2>&1
    local rc=$?
    local msg
    msg=$(cat "$W/o")
    if [ $rc -eq 1 ] && [ "$(wc -l < "$W/o")" -eq 1 ] && grep -qF -- "$file" "$W/o" && grep -qiF -- "$what" "$W/o" &&
       [ ! -e "$out" ] && [ -z "$(leftovers)" ]; then
        pass "refused: $name ($msg)"
    else
        fail "refusal: $name" "exit $rc, output '$msg' (want exit 1, one line naming $file and saying '$what', no $out, no temp files: $(leftovers))"
    fi
}
size=$(wc -c < "$AWK")
head -c $((size - 4)) "$AWK" > "$W/trunc.bin"
refused "truncated checkpoint" "$W/trunc.bin" "truncated" "$W/x1" "${EXPORT[@]}" "$W/trunc.bin" "$W/x1"
{ printf '\x01\x02\x03\x04'; tail -c +5 "$AWK"; } > "$W/magic.bin"
refused "bad magic" "$W/magic.bin" "bad magic" "$W/x2" "${EXPORT[@]}" "$W/magic.bin" "$W/x2"
"$PY" - "$AWK" "$W/nan.bin" <<'EOF'
import sys, numpy as np
raw = bytearray(open(sys.argv[1], "rb").read())
h = np.frombuffer(bytes(raw[:1024]), dtype="<i4"); maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
off = 1024 + 4 * (Vp * C + maxT * C + 2 * L * C + 7)  # qkvw[0, 0, 7]
raw[off:off + 4] = np.array([np.nan], dtype="<f4").tobytes()
open(sys.argv[2], "wb").write(raw)
EOF
refused "a NaN parameter" "$W/nan.bin" "qkvw" "$W/x3" "${EXPORT[@]}" "$W/nan.bin" "$W/x3"
refused "a tokenizer of another size" "encoder.json" "V=997" "$W/x4" "${EXPORT[@]}" "$AWK" "$W/x4" --tokenizer "$DATA/gpt2"
mkdir "$W/full" && echo keep > "$W/full/mine.txt"
"${EXPORT[@]}" "$AWK" "$W/full" > "$W/o" 2>&1
rc=$?
if [ $rc -eq 1 ] && grep -q "$W/full.*not empty" "$W/o" && [ "$(ls "$W/full")" = "mine.txt" ] && [ "$(cat "$W/full/mine.txt")" = keep ] && [ -z "$(leftovers)" ]; then
    pass "refused: an existing non-empty OUTDIR, left as it was ($(cat "$W/o"))"
else fail "refusal: non-empty OUTDIR" "exit $rc, $(cat "$W/o"), folder now: $(ls "$W/full")"; fi
mkdir "$W/empty"
if "${EXPORT[@]}" "$AWK" "$W/full" --force > "$W/o" 2>&1 && [ ! -e "$W/full/mine.txt" ] && cmp -s "$W/full/model.safetensors" "$W/hf/model.safetensors" &&
   "${EXPORT[@]}" "$AWK" "$W/empty" > "$W/o" 2>&1 && cmp -s "$W/empty/model.safetensors" "$W/hf/model.safetensors" && [ -z "$(leftovers)" ]; then
    pass "--force replaces a non-empty OUTDIR; an existing empty OUTDIR is used"
else fail "--force / empty OUTDIR" "$(cat "$W/o")"; fi

echo "not touched" > "$W/keep.bin"
refused_import() {  # NAME KIND WHAT [FILE]: import of variant KIND is refused, keep.bin untouched
    local name=$1 kind=$2 what=$3 file=${4:-$W/v_$2/model.safetensors}
    local missing
    missing=$("${CMP[@]}" variant "$W/hf" "$W/v_$kind" "$kind")
    [ "$kind" = missing ] && what=${missing#transformer.}
    refused "$name" "$file" "$what" "$W/y_$kind.bin" "${IMPORT[@]}" "$W/v_$kind" "$W/y_$kind.bin"
    "${IMPORT[@]}" "$W/v_$kind" "$W/keep.bin" > /dev/null 2>&1
    if [ "$(cat "$W/keep.bin")" != "not touched" ]; then fail "refusal: $name" "an existing output was overwritten"; fi
}
refused_import "safetensors with a missing tensor" missing "(named by the test)"
refused_import "c_attn.weight in nn.Linear layout" shape "expected [72, 216]"
refused_import "lm_head.weight that differs from wte" untied "lm_head.weight differs from wte"
refused_import "activation gelu" gelu "activation_function 'gelu'" "$W/v_gelu/config.json"
refused_import "layer_norm_epsilon 1e-6" eps "layer_norm_epsilon" "$W/v_eps/config.json"
refused_import "model_type gpt_neo" neo "model_type 'gpt_neo'" "$W/v_neo/config.json"
refused_import "truncated safetensors" truncated "truncated"

if [ $fails -eq 0 ]; then echo "all hf export/import checks passed (seed $SEED)"; fi
[ $fails -eq 0 ]
