#!/usr/bin/env bash
# The DPO paper's recipe on Anthropic HH, in miniature: supervised fine-tuning on the chosen
# dialogues, then DPO on the preference pairs, measured on held-out pairs. One command,
# deterministic, resumable (a stage whose output exists is skipped):
#
#   bash scripts/dpo_hh.sh                     # everything, into runs/dpo_hh
#   OUT=... DPO_STEPS=... VARIANTS="sigmoid lora" bash scripts/dpo_hh.sh
#
# 1. base model and tokenizer: scripts/sft_compare.sh's (an 8192-token BPE and a d4 model
#    pre-trained on the Gutenberg + Aozora books of ../shared/data; STOP_AFTER=base makes them);
# 2. data: HH-RLHF helpful-base (../shared/data/hh_rlhf) through dev/data/sft_sources.py:
#    hh_chosen (the chosen dialogues, for SFT) and hh_pairs (the pairs, for DPO) with the same
#    group split, so no held-out pair's prompt was ever trained on; sft_prepare / dpo_prepare
#    at T=256 with the chat template of llmc/chat.h, too-long prompts cut from the left;
# 3. SFT: full fine-tuning of the base on the chosen dialogues (SFT_STEPS steps of B=8 rows);
# 4. DPO from the SFT model (it is also the reference: its log-probs are computed once and
#    stored in the pair files), one run per variant in VARIANTS:
#      sigmoid   DPO, beta 0.1, full fine-tuning
#      cdpo      conservative DPO: sigmoid with label smoothing 0.1
#      ipo       IPO, beta 0.1
#      hinge     SLiC's hinge, beta 0.1
#      lora      DPO (sigmoid) with LoRA rank 16 on every matrix, the base frozen
#    each DPO_STEPS steps of 4 pairs (B=8 rows), the held-out pairs scored every EVAL_EVERY;
# 5. measured: held-out DPO loss, reward accuracy (chosen reward > rejected reward, 0 before
#    training by construction), reward margin, log-prob accuracy (the model finds the chosen
#    reply likelier), the log-probs, and the general ability (val loss on the pre-training
#    data); a few held-out single-turn prompts answered greedily by the SFT and the DPO model
#    side by side (dev/eval/sft_eval --generations); the table in OUT/RESULTS.md
#    (dev/dpo/dpo_table.py).
# Sized for a 2-core CPU; dev/dpo/README.md says what a run of this size can and cannot show.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/dpo_hh}
DATA=${DATA:-../shared/data}
BASE_OUT=${BASE_OUT:-runs/sft_compare}   # where scripts/sft_compare.sh keeps its tokenizer and base
VOCAB=${VOCAB:-8192}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-600}
T=${T:-256}
B=${B:-8}
SFT_STEPS=${SFT_STEPS:-250}
SFT_LR=${SFT_LR:-3e-4}
DPO_STEPS=${DPO_STEPS:-150}
DPO_LR=${DPO_LR:-5e-5}
BETA=${BETA:-0.1}
EVAL_EVERY=${EVAL_EVERY:-50}
VARIANTS=${VARIANTS-"sigmoid cdpo ipo hinge lora"}   # VARIANTS="" stops after SFT
GEN_PROMPTS=${GEN_PROMPTS:-6}
SEED=${SEED:-1337}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

log() { echo "[$(date +%H:%M:%S)] $*"; }
make -s train_gpt dev/data/sft_prepare dev/data/dpo_prepare dev/eval/sft_eval
mkdir -p "$OUT"

# 1. the base model and its tokenizer
TOK=$BASE_OUT/tok/enja_${VOCAB}.tiktoken
TOKBIN=$BASE_OUT/tok/enja_${VOCAB}_tokenizer.bin
BASE=$BASE_OUT/pretrain/run/model_$(printf %08d "$PRETRAIN_STEPS").bin
if [ ! -f "$BASE" ]; then
    log "base model: scripts/sft_compare.sh STOP_AFTER=base"
    OUT=$BASE_OUT VOCAB=$VOCAB PRETRAIN_STEPS=$PRETRAIN_STEPS STOP_AFTER=base bash scripts/sft_compare.sh
fi
PT_VAL=$BASE_OUT/pretrain/data_val.bin

# 2. data
D=$OUT/data
if [ ! -f "$D/jsonl/hh_pairs_test.jsonl" ]; then
    log "data: sft_sources.py hh_chosen hh_pairs"
    mkdir -p "$D"
    python3 dev/data/sft_sources.py hh_chosen hh_pairs --data-dir "$DATA" --out "$D/jsonl" --seed "$SEED" > "$D/sources.log" 2>&1 ||
        { tail -5 "$D/sources.log"; exit 1; }
fi
for split in train test; do
    if [ ! -f "$D/sft_$split.bin" ]; then
        ./dev/data/sft_prepare --tiktoken "$TOK" --seq-len "$T" --truncate "$D/jsonl/hh_chosen_$split.jsonl" -o "$D/sft_$split.bin" \
            --report "$D/sft_$split.json" > "$D/sft_$split.log" 2>&1 || { tail -5 "$D/sft_$split.log"; exit 1; }
        tail -1 "$D/sft_$split.log"
    fi
    if [ ! -f "$D/pairs_$split.bin" ]; then
        ./dev/data/dpo_prepare --tiktoken "$TOK" --seq-len "$T" --truncate "$D/jsonl/hh_pairs_$split.jsonl" -o "$D/pairs_$split.bin" \
            --report "$D/pairs_$split.json" > "$D/pairs_$split.log" 2>&1 || { tail -5 "$D/pairs_$split.log"; exit 1; }
        tail -1 "$D/pairs_$split.log"
    fi
done
# the generation prompts: held-out single-turn pairs, as sft_eval task lines (chosen = label 0)
GEN=$D/gen_prompts.jsonl
if [ ! -f "$GEN" ]; then
    python3 dev/dpo/hh_gen_prompts.py "$D/jsonl/hh_pairs_test.jsonl" --n "$GEN_PROMPTS" -o "$GEN"
fi

# 3. SFT on the chosen dialogues
SFT_MODEL=$OUT/sft/model_$(printf %08d "$SFT_STEPS").bin
if [ ! -f "$SFT_MODEL" ]; then
    log "SFT: $SFT_STEPS steps on the chosen dialogues"
    resume=""
    [ -d "$OUT/sft" ] && resume="-y 1"
    # shellcheck disable=SC2086
    ./train_gpt -e "$BASE" -i "$D/sft_train.bin" -j "$D/sft_test.bin" --tokenizer "$TOKBIN" -b "$B" -t "$T" -x "$SFT_STEPS" \
        -l "$SFT_LR" --warmup-frac 0.05 -c 1.0 -v "$EVAL_EVERY" -m 30 -s 0 -n 0 --seed "$SEED" -o "$OUT/sft" $resume \
        > "$OUT/sft.log" 2>&1 || { tail -5 "$OUT/sft.log"; exit 1; }
    grep "val loss" "$OUT/sft.log" | tail -1
fi

variant_flags() {
    case $1 in
        sigmoid) echo "--dpo-loss sigmoid --dpo-beta $BETA" ;;
        cdpo)    echo "--dpo-loss sigmoid --dpo-beta $BETA --dpo-label-smoothing 0.1" ;;
        ipo)     echo "--dpo-loss ipo --dpo-beta $BETA" ;;
        hinge)   echo "--dpo-loss hinge --dpo-beta $BETA" ;;
        lora)    echo "--dpo-loss sigmoid --dpo-beta $BETA --peft lora --lora-rank 16 --lora-alpha 32 --lora-targets all" ;;
        *) echo "unknown variant $1" >&2; exit 1 ;;
    esac
}

# 4. DPO, one run per variant; each run gets its own copy of the pair files, into which its
# reference pass writes. The SFT model is the reference of every full fine-tuning run: the first
# one's scored copies are reused (the trainer finds its model's hash in them and skips the pass);
# LoRA's reference (base + a fresh adapter) has another hash and is scored again.
for v in $VARIANTS; do
    run=$OUT/dpo_$v
    [ -f "$run/DONE_$(printf %08d "$DPO_STEPS")" ] && continue
    log "DPO: $v, $DPO_STEPS steps"
    mkdir -p "$run.pairs"
    for split in train test; do
        src=$D/pairs_$split.bin
        [ -f "$OUT/scored/$split.bin" ] && [ "$v" != lora ] && src=$OUT/scored/$split.bin
        [ -f "$run.pairs/$split.bin" ] || cp "$src" "$run.pairs/$split.bin"
    done
    lr=$DPO_LR
    [ "$v" = lora ] && lr=$(python3 -c "print($DPO_LR * 10)")  # adapters take a larger rate (as in sft_compare)
    resume=""
    [ -d "$run" ] && resume="-y 1"
    # shellcheck disable=SC2046,SC2086
    ./train_gpt -e "$SFT_MODEL" --dpo "$run.pairs/train.bin" --dpo-val "$run.pairs/test.bin" -j "$PT_VAL" --tokenizer "$TOKBIN" \
        $(variant_flags "$v") -b "$B" -t "$T" -x "$DPO_STEPS" -l "$lr" --warmup-frac 0.1 -k constant -c 1.0 \
        -v "$EVAL_EVERY" -m 30 -s 0 -n 0 --seed "$SEED" -o "$run" $resume > "$run.log" 2>&1 || { tail -5 "$run.log"; exit 1; }
    grep "dpo held-out" "$run.log" | tail -1
    if [ "$v" != lora ] && [ ! -d "$OUT/scored" ]; then
        mkdir -p "$OUT/scored.tmp" && cp "$run.pairs/train.bin" "$run.pairs/test.bin" "$OUT/scored.tmp/" && mv "$OUT/scored.tmp" "$OUT/scored"
    fi
done

# 5. generations side by side, and the table
if [ ! -f "$OUT/gen_sft.jsonl" ]; then
    ./dev/eval/sft_eval -e "$SFT_MODEL" --tiktoken "$TOK" --task "$GEN" --gen-tokens 60 --generations "$OUT/gen_sft.jsonl" \
        > "$OUT/gen_sft.log" 2>&1 || { tail -5 "$OUT/gen_sft.log"; exit 1; }
fi
step=$(printf %08d "$DPO_STEPS")
for v in $VARIANTS; do
    [ -f "$OUT/gen_$v.jsonl" ] && continue
    peft=""
    model=$OUT/dpo_$v/model_$step.bin
    if [ -f "$OUT/dpo_$v/model_$step.peft" ]; then model=$SFT_MODEL; peft="--peft-init $OUT/dpo_$v/model_$step.peft"; fi
    # shellcheck disable=SC2086
    ./dev/eval/sft_eval -e "$model" $peft --tiktoken "$TOK" --task "$GEN" --gen-tokens 60 --generations "$OUT/gen_$v.jsonl" \
        > "$OUT/gen_$v.log" 2>&1 || { tail -5 "$OUT/gen_$v.log"; exit 1; }
done
python3 dev/dpo/dpo_table.py "$OUT" --variants $VARIANTS --sft-log "$OUT/sft.log" > "$OUT/RESULTS.md"
log "done: $OUT/RESULTS.md"
cat "$OUT/RESULTS.md"
