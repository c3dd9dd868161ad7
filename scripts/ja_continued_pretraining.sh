#!/usr/bin/env bash
# Continued pre-training in Japanese, the Swallow recipe in miniature. One command,
# deterministic (seeded), resumable (a finished stage is skipped, an interrupted training run
# resumes with -y 1):
#
#   bash scripts/ja_continued_pretraining.sh               # into runs/ja_cpt, about 50 minutes on 2 cores
#   OUT=... MODEL=d2 BASE_STEPS=300 CPT_FLOPS=2.5e13 ADD=8000 bash scripts/ja_continued_pretraining.sh
#
# 1. English corpus (Gutenberg children's books) through dev/data/pipeline --lang en -> GPT-2
#    shards, 2% of the books held out.
# 2. Japanese corpus (livedoor news, Aozora Bunko, the FineWeb-2 sample) through the pipeline
#    with Swallow's rules (>= 400 characters, >= 50% Japanese characters, exact and near dedup,
#    PII masking; the host filter has no block list here), 2% of the documents held out; the
#    characters left after each stage are printed like Swallow's 3T -> 1T -> 350B -> 310B.
# 3. GPT-2's vocabulary extended by ADD merges learned on the Japanese TRAIN split only
#    (dev/data/bpe_train --add): held-out documents are never seen by the tokenizer.
# 4. The English base model: MODEL from scratch on English, BASE_STEPS steps, GPT-2 vocabulary.
# 5. The embedding resized to the extended vocabulary, new rows initialised two ways
#    (dev/data/resize_embedding --init mean | tokens).
# 6. At the same training compute (CPT_FLOPS, counted as the trainer counts them: the larger
#    vocabulary costs more per token and gets fewer tokens), on the Japanese train split:
#      cpt_ext_mean    continued pre-training, extended vocabulary, new rows = mean of all rows
#      cpt_ext_tokens  the same, new rows = mean of the GPT-2 tokens each new token splits into
#      cpt_gpt2        continued pre-training with GPT-2's vocabulary
#      scratch_ext     the same model from scratch on the Japanese data, extended vocabulary
#      cpt_ext_tokens_hilr  cpt_ext_tokens at scratch_ext's learning rate (SCRATCH_LR instead of
#                      CPT_LR): separates the learning rate from the initialisation
# 7. Every model (and the base) on the whole held-out Japanese and English text in bits per
#    byte (the only loss comparable across vocabularies) -> OUT/RESULTS.md, OUT/curves.png
#    (dev/ja_cpt/report.py).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/ja_cpt}
DATA=${DATA:-../shared/data}
MODEL=${MODEL:-d2}
B=${B:-16}
T=${T:-256}
BASE_STEPS=${BASE_STEPS:-300}
BASE_LR=${BASE_LR:-3e-3}
CPT_FLOPS=${CPT_FLOPS:-2.5e13}
CPT_LR=${CPT_LR:-1e-3}
SCRATCH_LR=${SCRATCH_LR:-3e-3}
ADD=${ADD:-8000}
EVALS=${EVALS:-8}         # val evaluations along each run (the curves)
CURVE_M=${CURVE_M:-8}     # val batches per curve point; the final evaluation reads the whole val text
RUNS=${RUNS:-"cpt_ext_mean cpt_ext_tokens cpt_gpt2 scratch_ext cpt_ext_tokens_hilr"}
SEED=${SEED:-1337}
STOP_AFTER=${STOP_AFTER:-}  # data | base: stop after the corpora and tokenizer, or after the English base model
THREADS=${THREADS:-$(nproc --all)}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$THREADS}
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3

log() { echo "[$(date +%H:%M:%S)] $*"; }
die() { echo "error: $*" >&2; exit 1; }
for f in gutenberg_children/gutenberg_children.jsonl livedoor/livedoor_news.jsonl aozora/aozora_kenji_nankichi.jsonl \
         fineweb2_edu_ja_sample/fineweb_100_samples.json gpt2/encoder.json; do
    [ -f "$DATA/$f" ] || die "$DATA/$f is missing (DATA=... names the shared data folder)"
done
make -s train_gpt dev/data/pipeline dev/data/bpe_train dev/data/tokenize dev/data/resize_embedding
D=$OUT/data
mkdir -p "$D"
start_all=$(date +%s)

# split a pipeline's --out-jsonl by its "split" field (train / val)
split_jsonl() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
src, train, val = sys.argv[1:4]
with open(src, encoding="utf-8") as f, open(train + ".tmp", "w", encoding="utf-8") as t, open(val + ".tmp", "w", encoding="utf-8") as v:
    for line in f:
        (v if json.loads(line)["split"] == "val" else t).write(line)
import os
os.replace(train + ".tmp", train); os.replace(val + ".tmp", val)
PY
}
# ---------------------------------------------------------------- 1-2. corpora
if [ ! -f "$D/en_val.jsonl" ]; then
    log "English corpus: pipeline --lang en"
    ./dev/data/pipeline --lang en --threads "$THREADS" --val-fraction 0.02 --out-prefix "$D/en_gpt2" \
        --out-jsonl "$D/en.jsonl" --report "$D/en_report.json" "$DATA/gutenberg_children/gutenberg_children.jsonl" \
        > "$D/en_pipeline.log" 2>&1 || { tail -5 "$D/en_pipeline.log"; exit 1; }
    split_jsonl "$D/en.jsonl" "$D/en_train.jsonl" "$D/en_val.jsonl"
fi
if [ ! -f "$D/ja_val.jsonl" ]; then
    log "Japanese corpus: pipeline --lang ja (Swallow's rules)"
    ./dev/data/pipeline --lang ja --threads "$THREADS" --val-fraction 0.02 --out-prefix "$D/ja_gpt2" \
        --out-jsonl "$D/ja.jsonl" --report "$D/ja_report.json" "$DATA/livedoor/livedoor_news.jsonl" \
        "$DATA/aozora/aozora_kenji_nankichi.jsonl" "$DATA/fineweb2_edu_ja_sample/fineweb_100_samples.json" \
        > "$D/ja_pipeline.log" 2>&1 || { tail -5 "$D/ja_pipeline.log"; exit 1; }
    split_jsonl "$D/ja.jsonl" "$D/ja_train.jsonl" "$D/ja_val.jsonl"
fi
grep -A9 "^stage" "$D/ja_pipeline.log" | head -8
# Swallow's funnel: characters left after each stage
echo "Japanese characters: $("$PY" dev/ja_cpt/report.py - --funnel "$D/ja_report.json")"
echo "English characters:  $("$PY" dev/ja_cpt/report.py - --funnel "$D/en_report.json")"

# ---------------------------------------------------------------- 3. vocabulary extension
TIK=$D/gpt2ja.tiktoken
TOK_EXT=$D/gpt2ja_tokenizer.bin
TOK_GPT2=dev/data/gpt2_tokenizer.bin
[ -f "$TOK_GPT2" ] || make -s data
if [ ! -f "$TOK_EXT" ]; then
    log "GPT-2 + $ADD merges learned on the Japanese train split"
    ./dev/data/bpe_train --add "$ADD" -o "$TIK" --write-tokenizer "$TOK_EXT" "$D/ja_train.jsonl" \
        > "$D/bpe_train.log" 2>&1 || { tail -5 "$D/bpe_train.log"; exit 1; }
fi
if [ ! -f "$D/en_val_ext_val.bin" ]; then
    log "tokenizing with the extended vocabulary"
    ./dev/data/tokenize --tiktoken "$TIK" --threads "$THREADS" "$D/ja_train.jsonl" -o "$D/ja_ext" > "$D/tok_ext.log" 2>&1
    ./dev/data/tokenize --tiktoken "$TIK" --threads "$THREADS" "$D/ja_val.jsonl" -o "$D/ja_val_ext" --val-fraction 1 \
        --no-shard-index >> "$D/tok_ext.log" 2>&1
    ./dev/data/tokenize --tiktoken "$TIK" --threads "$THREADS" "$D/en_val.jsonl" -o "$D/en_val_ext" --val-fraction 1 \
        --no-shard-index >> "$D/tok_ext.log" 2>&1
fi
[ "$STOP_AFTER" = data ] && { log "stopping after the data (STOP_AFTER=data)"; exit 0; }
V_EXT=$(od -An -t d4 -j 8 -N 4 "$TOK_EXT" | tr -d ' ')
# each model's data, by vocabulary: train shards, Japanese val, English val, tokenizer
JA_TRAIN_GPT2="$D/ja_gpt2_train_*.bin"; JA_VAL_GPT2="$D/ja_gpt2_val_*.bin"; EN_VAL_GPT2="$D/en_gpt2_val_*.bin"
JA_TRAIN_EXT="$D/ja_ext_train_*.bin"; JA_VAL_EXT="$D/ja_val_ext_val.bin"; EN_VAL_EXT="$D/en_val_ext_val.bin"

# plan_steps MODEL_FLAGS...: the steps --max-flops CPT_FLOPS gives (the trainer's own plan)
plan_steps() {
    ./train_gpt "$@" --max-flops "$CPT_FLOPS" -b "$B" -t "$T" --dry-run | sed -n 's/^plan: steps \([0-9]*\) .*/\1/p'
}
# train NAME STEPS FLAGS...: one training run into OUT/NAME, resumed if it was interrupted;
# done when its DONE marker exists (a run stopped by a signal exits 0 without it)
train() {
    local name=$1 steps=$2; shift 2
    local dir=$OUT/$name
    if [ -f "$dir/DONE_$(printf %08d "$steps")" ]; then return 0; fi
    local resume=""
    [ -d "$dir" ] && resume="-y 1"
    log "$name: $steps steps of $((B * T)) tokens"
    # shellcheck disable=SC2086
    ./train_gpt "$@" -b "$B" -t "$T" -x "$steps" --warmup-frac 0.05 -c 0.1 -v $(( (steps + EVALS - 1) / EVALS )) \
        -m "$CURVE_M" -s 0 -n $(( (steps + 3) / 4 )) -nk 1 --seed "$SEED" -o "$dir" $resume > "$dir.log" 2>&1 \
        || { tail -5 "$dir.log"; die "$name failed (log $dir.log); run the script again to resume"; }
    [ -f "$dir/DONE_$(printf %08d "$steps")" ] || die "$name stopped before step $steps; run the script again to resume"
}

# ---------------------------------------------------------------- 4. English base model
train base_en "$BASE_STEPS" -e "$MODEL" -i "$D/en_gpt2_train_*.bin" -j "$EN_VAL_GPT2" --tokenizer "$TOK_GPT2" -l "$BASE_LR"
BASE=$OUT/base_en/model_$(printf %08d "$BASE_STEPS").bin
[ "$STOP_AFTER" = base ] && { log "stopping after the base model (STOP_AFTER=base)"; exit 0; }

# ---------------------------------------------------------------- 5. embedding resize
for init in mean tokens; do
    if [ ! -f "$OUT/base_ext_$init.bin" ]; then
        ./dev/data/resize_embedding "$BASE" "$OUT/base_ext_$init.bin" --tokenizer "$TOK_EXT" --base-tokenizer "$TOK_GPT2" \
            --init "$init" | tee "$OUT/resize_$init.log"
    fi
done

# ---------------------------------------------------------------- 6. the runs, same compute
run_init() {  # the -e, tokenizer and data of a run
    case $1 in
        cpt_ext_mean)   echo "$OUT/base_ext_mean.bin ext" ;;
        cpt_ext_tokens|cpt_ext_tokens_hilr) echo "$OUT/base_ext_tokens.bin ext" ;;
        cpt_gpt2)       echo "$BASE gpt2" ;;
        scratch_ext)    echo "$MODEL ext" ;;
        *) die "unknown run $1 (RUNS: cpt_ext_mean cpt_ext_tokens cpt_gpt2 scratch_ext cpt_ext_tokens_hilr)" ;;
    esac
}
vocab_flags() {  # tokenizer, Japanese train and val of a vocabulary
    if [ "$1" = ext ]; then echo "--tokenizer $TOK_EXT -i $JA_TRAIN_EXT -j $JA_VAL_EXT"
    else echo "--tokenizer $TOK_GPT2 -i $JA_TRAIN_GPT2 -j $JA_VAL_GPT2"; fi
}
for r in $RUNS; do
    read -r init voc <<< "$(run_init "$r")"
    model_flags="-e $init"
    [ "$r" = scratch_ext ] && model_flags="$model_flags --vocab-size $V_EXT"
    lr=$CPT_LR
    [ "$r" = scratch_ext ] || [ "$r" = cpt_ext_tokens_hilr ] && lr=$SCRATCH_LR
    # shellcheck disable=SC2086
    steps=$(plan_steps $model_flags $(vocab_flags "$voc"))
    [ -n "$steps" ] || die "$r: no plan from train_gpt --dry-run"
    # shellcheck disable=SC2086
    train "$r" "$steps" $model_flags $(vocab_flags "$voc") -l "$lr"
    echo "$steps" > "$OUT/$r.steps"
done

# ---------------------------------------------------------------- 7. held-out evaluation
# evaluate NAME CHECKPOINT VOCAB: the whole Japanese and English val text, bits per byte
evaluate() {
    local name=$1 ckpt=$2 voc=$3 tok ja en
    if [ "$voc" = ext ]; then tok=$TOK_EXT; ja=$JA_VAL_EXT; en=$EN_VAL_EXT; else tok=$TOK_GPT2; ja=$JA_VAL_GPT2; en=$EN_VAL_GPT2; fi
    for lang in ja en; do
        local f=$OUT/eval/$name.$lang.log
        [ -f "$f" ] && continue
        local data=$ja
        [ $lang = en ] && data=$en
        # shellcheck disable=SC2086
        ./train_gpt -e "$ckpt" --eval -j "$data" --tokenizer "$tok" -b "$B" -t "$T" -m 1000000 > "$f.tmp" 2>&1 \
            || { tail -3 "$f.tmp"; die "evaluating $name on $lang"; }
        mv "$f.tmp" "$f"
    done
}
mkdir -p "$OUT/eval"
log "held-out evaluation (whole val texts)"
evaluate base_en "$BASE" gpt2
evaluate base_ext_mean "$OUT/base_ext_mean.bin" ext
evaluate base_ext_tokens "$OUT/base_ext_tokens.bin" ext
for r in $RUNS; do
    read -r init voc <<< "$(run_init "$r")"
    evaluate "$r" "$OUT/$r/model_$(printf %08d "$(cat "$OUT/$r.steps")").bin" "$voc"
done
echo "$(( $(date +%s) - start_all ))" > "$OUT/seconds_this_invocation"
"$PY" dev/ja_cpt/report.py "$OUT" --runs "$RUNS" --command "$0 (MODEL=$MODEL B=$B T=$T BASE_STEPS=$BASE_STEPS CPT_FLOPS=$CPT_FLOPS ADD=$ADD SEED=$SEED)"
log "done: $OUT/RESULTS.md, $OUT/curves.png"
