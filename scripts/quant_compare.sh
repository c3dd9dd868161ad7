#!/usr/bin/env bash
# What weight quantization costs on models trained here: fp32 against int8 (per output
# channel) and int4 (groups of 128, 64, 32), with the embedding / LM head kept in fp32 or
# quantized too, on two models of the quick-start recipe (tiny shakespeare, one epoch):
# d6 (the README's quick start, 30M parameters) and d3 (smaller, to see the trend).
# Per variant: file size, val loss / perplexity on two real English corpora (tiny shakespeare's
# val split, in domain; Project Gutenberg children's books, out of domain), HellaSwag (d6,
# the first HE examples), and decode tokens/s at batch 1 (dev/infer/generate from the
# quantized file). The perplexities are measured by train_gpt on the dequantized weights
# (dev/infer/quantize --dequantize-out): the same numbers the int8/int4 kernels multiply
# (test_infer checks that the two forwards agree to 1e-5).
#
#   bash scripts/quant_compare.sh        # ~35 minutes on 2 cores (the two trainings are most of it)
#   OUT=... RUNS=... HE=500 bash scripts/quant_compare.sh
# Trains what is missing (resumable), then writes OUT/QUANT.md with the table and the logs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/quant_compare}
OUT=${OUT:-dev/infer/results/$(date -u +%Y-%m-%d)_quant}
HE=${HE:-500}
M=${M:-20}   # val batches of 8 x 256 tokens per corpus
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
make -s data eval-data train_gpt dev/infer/quantize dev/infer/generate dev/data/tokenize
mkdir -p "$RUNS" "$OUT"
log() { echo "[$(date +%T)] $*" >&2; }

# the second corpus: Gutenberg children's books as GPT-2 token shards (every 50th book)
GUT=../shared/data/gutenberg_children/gutenberg_children.jsonl
if [ ! -f "$RUNS/gutenberg_val_000000.bin" ]; then
    log "tokenizing $GUT (every 50th document)"
    awk 'NR % 50 == 0' "$GUT" > "$RUNS/gutenberg_val.jsonl"
    ./dev/data/tokenize --threads "$OMP_NUM_THREADS" "$RUNS/gutenberg_val.jsonl" -o "$RUNS/gutenberg" --val-fraction 1 \
        > "$RUNS/gutenberg_tokenize.log" 2>&1
fi
SHAKES_VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
GUT_VAL="$RUNS/gutenberg_val_*.bin"

# the models: the quick start's recipe (scripts/train_shakespeare.sh), d6 and d3
train() {  # NAME DEPTH
    local d=$RUNS/$1
    if [ ! -f "$d/DONE" ]; then
        log "training $1 (-e $2, one epoch of tiny shakespeare)"
        ./train_gpt -e "$2" -b 8 -t 256 -x -1 -l 1e-3 -u 10 -q 0.1 -c 0.1 -v 0 -s 0 -o "$d" -y 1 > "$d.log" 2>&1
        touch "$d/DONE"
    fi
    ls "$d"/model_*.bin | sort | tail -1
}
D6=$(train d6 d6)
D3=$(train d3 d3)

# a prompt of 128 tokens for the speed column
head -c 4000 dev/data/tinyshakespeare/input.txt 2>/dev/null | tr '\n' ' ' > "$RUNS/prompt.txt" ||
    head -c 4000 ../shared/data/tinyshakespeare/input.txt | tr '\n' ' ' > "$RUNS/prompt.txt"
echo >> "$RUNS/prompt.txt"

VARIANTS="fp32 int8 int8_head int4_g128 int4_g64 int4_g32 int4_g32_head"
flags() {
    case $1 in
        int8) echo "--kind int8" ;;  int8_head) echo "--kind int8 --head quant" ;;
        int4_g128) echo "--kind int4 --group 128" ;;  int4_g64) echo "--kind int4 --group 64" ;;
        int4_g32) echo "--kind int4 --group 32" ;;  int4_g32_head) echo "--kind int4 --group 32 --head quant" ;;
    esac
}
# evaluate MODEL_NAME CHECKPOINT HE: one TSV line per variant in $OUT/MODEL_NAME.tsv
evaluate() {
    local name=$1 ckpt=$2 he=$3 tsv=$OUT/$1.tsv
    : > "$tsv"
    for v in $VARIANTS; do
        local plain=$ckpt file=$ckpt
        if [ "$v" != fp32 ]; then
            file=$RUNS/${name}_$v.q
            plain=$RUNS/${name}_${v}_deq.bin
            # shellcheck disable=SC2046
            ./dev/infer/quantize -i "$ckpt" -o "$file" $(flags "$v") --dequantize-out "$plain" > "$OUT/${name}_$v.quantize.log"
        fi
        local size; size=$(stat -c %s "$file")
        local a b h tps
        a=$(./train_gpt -e "$plain" -b 8 -t 256 --eval -m "$M" -j "$SHAKES_VAL" 2>&1 | grep -o 'val loss [0-9.]*' | grep -o '[0-9.]*$')
        b=$(./train_gpt -e "$plain" -b 8 -t 256 --eval -m "$M" -j "$GUT_VAL" 2>&1 | grep -o 'val loss [0-9.]*' | grep -o '[0-9.]*$')
        h=-
        if [ "$he" -gt 0 ]; then
            h=$(./train_gpt -e "$plain" -b 8 -t 256 --eval -m 1 -h 1 --hellaswag-examples "$he" 2>&1 |
                grep -o 'hellaswag ([0-9]* examples, 0-shot): acc [0-9.]* | acc_norm [0-9.]*' | grep -o '[0-9.]*$')
        fi
        tps=$(./dev/infer/generate -e "$file" --prompt-file "$RUNS/prompt.txt" --max-prompt-tokens 128 -n 64 --greedy --ignore-eot 2>&1 >/dev/null |
              grep -o '[0-9.]* tokens/s' | grep -o '^[0-9.]*')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$size" "$a" "$b" "$h" "$tps" | tee -a "$tsv"
        [ "$v" = fp32 ] || rm -f "$plain"
    done
}
log "d6: $D6"
evaluate d6 "$D6" "$HE"
log "d3: $D3"
evaluate d3 "$D3" 0

# the table
{
    echo "# Weight quantization on models trained here, $(date -u +%Y-%m-%d)"
    echo
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
    echo "- commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)')"
    echo "- command: bash scripts/quant_compare.sh (HE=$HE M=$M)"
    echo "- models: the quick start's recipe (tiny shakespeare, one epoch, GPT-2 vocabulary, seed 1337): d6 ($D6), d3 ($D3)"
    echo "- val: $M batches of 8 x 256 tokens of tiny shakespeare's val split (in domain) and of Project Gutenberg children's books (every 50th book, out of domain); perplexity = exp(loss)"
    echo "- HellaSwag: the first $HE validation examples, acc_norm (chance 0.25); d6 only"
    echo "- tokens/s: dev/infer/generate on the quantized file, a 128-token prompt, 64 new tokens, batch 1"
    echo "- quantization (llmc/quant.h): int8 symmetric per output row; int4 symmetric per group of g values of a row, levels -7..7; 'head' = the tied embedding / LM head quantized too (else fp32)"
    echo
    for m in d6 d3; do
        echo "## $m"
        echo
        echo "| weights | file MB | shakespeare val loss | ppl | change | gutenberg val loss | ppl | change | HellaSwag acc_norm | tokens/s |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        awk -F'\t' 'NR == 1 { a0 = $3; b0 = $4 }
            { printf "| %s | %.1f | %.4f | %.2f | %+.2f%% | %.4f | %.2f | %+.2f%% | %s | %.0f |\n",
              $1, $2 / 1e6, $3, exp($3), 100 * (exp($3 - a0) - 1), $4, exp($4), 100 * (exp($4 - b0) - 1), $5, $6 }' "$OUT/$m.tsv"
        echo
    done
    echo "For comparison, llama.cpp's published figures on LLaMA-7B: Q8_0 +0.0004 perplexity, Q4_0 about +4% (wikitext-2)."
} > "$OUT/QUANT.md"
cat "$OUT/QUANT.md"
