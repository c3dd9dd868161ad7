#!/usr/bin/env bash
# Full fine-tuning against the four PEFT families, on real tasks, from a base model pre-trained
# here. One command, deterministic, resumable (a stage whose output exists is skipped):
#
#   bash scripts/sft_compare.sh                 # everything, into runs/sft_compare
#   OUT=... PRESET=d4 PRETRAIN_STEPS=... FT_STEPS=... bash scripts/sft_compare.sh
#
# 1. tokenizer: an 8192-token byte-level BPE learned (dev/data/bpe_train) on the English
#    Gutenberg books and the Japanese Aozora works of ../shared/data, so both languages
#    tokenize compactly;
# 2. base model: a dN preset pre-trained on those two corpora (PRETRAIN_STEPS steps of
#    PRETRAIN_BATCH tokens); neither task's text is in it;
# 3. tasks (dev/data/sft_sources.py --brief-instruction --max-chars MAX_CHARS, then
#    dev/data/sft_prepare into masked shards, one example per T-token row, prompt tokens weighted 0):
#      livedoor_cls  Japanese: the category (9) of a livedoor news article, from its title and start
#      spam_cls      English: spam or ham, from an e-mail's subject and start
#    each with its held-out test split (never trained on, never used to choose anything);
# 4. per task, the same token budget (FT_STEPS x FT_B rows of T tokens) for each method:
#      full, lora (rank 4 and 16, every matrix), bitfit (+ LayerNorm gains), adapter (m 16),
#      prompt (k 16)
#    with one learning rate per method (below; not tuned per task: no validation split is spent
#    on it; METHOD@LR adds a run at another rate), cosine to 10%, 5% warmup, AdamW (wd 0.0),
#    clip 1.0;
# 5. measured, for each method and for the base model without fine-tuning: trainable parameters, gradient + AdamW memory, ms/step (steps after the first),
#    the held-out masked loss (mean over the test split's response tokens), and task accuracy on
#    MAX_EVAL examples of the test split, the labels in turn (dev/eval/sft_eval: the label whose
#    tokens + end-of-text are likeliest given the prompt, and greedy generation matched exactly
#    against the label);
# 6. the table: OUT/results.csv and OUT/RESULTS.md (dev/sft/sft_table.py).
# Sized for a 2-core CPU (about 90 minutes with the default METHODS); dev/sft/README.md says
# what it can and cannot show, and the committed results are in dev/sft/results/.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/sft_compare}
DATA=${DATA:-../shared/data}
PRESET=${PRESET:-d4}
VOCAB=${VOCAB:-8192}
T=${T:-256}                       # fine-tuning rows (one example each)
PRETRAIN_T=${PRETRAIN_T:-256}
PRETRAIN_B=${PRETRAIN_B:-16}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-600}
PRETRAIN_LR=${PRETRAIN_LR:-3e-3}
FT_B=${FT_B:-8}
FT_STEPS=${FT_STEPS:-120}
TASKS=${TASKS:-"livedoor_cls spam_cls"}
METHODS=${METHODS:-"full lora4 lora16 bitfit adapter prompt"}
MAX_CHARS=${MAX_CHARS:-100}       # body characters in a task prompt (a 256-token row holds them)
MAX_EVAL=${MAX_EVAL:-144}         # test examples for the accuracies, labels in turn (the masked loss uses all)
SEED=${SEED:-1337}
THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS

# method -> flags and learning rate. METHOD@LR runs METHOD at another peak learning rate
# (e.g. lora16@1e-2): a second point of the method, reported as its own row.
method_flags() {
    local name=${1%@*} lr=""
    [ "$name" != "$1" ] && lr=${1#*@}
    local flags
    case $name in
        full)    flags="--peft full -l 3e-4" ;;
        lora4)   flags="--peft lora --lora-rank 4 --lora-alpha 8 --lora-targets all -l 2e-3" ;;
        lora16)  flags="--peft lora --lora-rank 16 --lora-alpha 32 --lora-targets all -l 2e-3" ;;
        bitfit)  flags="--peft bitfit --bitfit-ln -l 3e-3" ;;
        adapter) flags="--peft adapter --adapter-size 16 -l 2e-3" ;;
        prompt)  flags="--peft prompt --prompt-len 16 -l 3e-2" ;;
        *) echo "unknown method $1" >&2; exit 1 ;;
    esac
    [ -n "$lr" ] && flags="${flags% -l *} -l $lr"
    echo "$flags"
}

log() { echo "[$(date +%H:%M:%S)] $*"; }
make -s train_gpt dev/data/bpe_train dev/data/tokenize dev/data/sft_prepare
mkdir -p "$OUT"

# 1. tokenizer
TOK=$OUT/tok/enja_${VOCAB}.tiktoken
TOKBIN=$OUT/tok/enja_${VOCAB}_tokenizer.bin
if [ ! -f "$TOKBIN" ]; then
    log "tokenizer: $VOCAB-token BPE on Gutenberg + Aozora"
    mkdir -p "$OUT/tok"
    ./dev/data/bpe_train --vocab-size "$VOCAB" -o "$TOK" --write-tokenizer "$TOKBIN.tmp" \
        "$DATA/gutenberg_children/gutenberg_children.jsonl" "$DATA/aozora/aozora_kenji_nankichi.jsonl"
    mv "$TOKBIN.tmp" "$TOKBIN"
fi

# 2. base model
PT=$OUT/pretrain
if [ ! -f "$PT/data_train.bin" ]; then
    log "pre-training data: Gutenberg + Aozora, every 50th document held out"
    mkdir -p "$PT"
    ./dev/data/tokenize --tiktoken "$TOK" -o "$PT/data" --no-shard-index --val-fraction 0.02 \
        "$DATA/gutenberg_children/gutenberg_children.jsonl" "$DATA/aozora/aozora_kenji_nankichi.jsonl"
fi
BASE=$PT/run/model_$(printf %08d "$PRETRAIN_STEPS").bin
if [ ! -f "$BASE" ]; then
    log "base model: $PRESET, $PRETRAIN_STEPS steps of $((PRETRAIN_B * PRETRAIN_T)) tokens"
    resume=""
    [ -d "$PT/run" ] && resume="-y 1"
    ./train_gpt -e "$PRESET" --vocab-size "$VOCAB" -i "$PT/data_train.bin" -j "$PT/data_val.bin" --tokenizer "$TOKBIN" \
        -b "$PRETRAIN_B" -t "$PRETRAIN_T" -x "$PRETRAIN_STEPS" -l "$PRETRAIN_LR" --warmup-frac 0.05 -c 0.1 \
        -v 100 -m 10 -s 200 -g 48 -n 100 -nk 1 --seed "$SEED" -o "$PT/run" $resume > "$PT/train.log" 2>&1 ||
        { tail -5 "$PT/train.log"; exit 1; }
    grep "val loss" "$PT/train.log" | tail -1
fi
if [ "${STOP_AFTER:-}" = base ]; then log "STOP_AFTER=base: $BASE"; exit 0; fi

# 3. tasks
SFT=$OUT/sft
if [ ! -f "$SFT/jsonl/spam_cls_test_choices.jsonl" ]; then
    log "tasks: dev/data/sft_sources.py"
    python3 dev/data/sft_sources.py livedoor_cls spam_cls --brief-instruction --max-chars "$MAX_CHARS" --data-dir "$DATA" --out "$SFT/jsonl" > "$SFT.sources.log" 2>&1 ||
        { tail -5 "$SFT.sources.log"; exit 1; }
fi
for task in $TASKS; do
    for split in train test; do
        shard=$SFT/${task}_${split}.bin
        [ -f "$shard" ] && continue
        log "shards: $task $split"
        ./dev/data/sft_prepare --tiktoken "$TOK" --seq-len "$T" "$SFT/jsonl/${task}_${split}.jsonl" -o "$shard" \
            --report "$SFT/${task}_${split}_report.json" > "$SFT/${task}_${split}.log" 2>&1 ||
            { tail -5 "$SFT/${task}_${split}.log"; exit 1; }
        tail -1 "$SFT/${task}_${split}.log"
    done
done

# 4. fine-tuning: every run first (they need only train_gpt), then the evaluations
shard_rows() { python3 -c "import struct,sys; h=struct.unpack('<256i', open(sys.argv[1],'rb').read(1024)); print((h[2]-1)//int(sys.argv[2]))" "$1" "$2"; }
FT=$OUT/ft
mkdir -p "$FT"
step=$(printf %08d "$FT_STEPS")
for task in $TASKS; do
    for method in $METHODS; do
        run=$FT/${task}_${method}
        [ -f "$run/DONE_$step" ] && continue
        log "fine-tune: $task $method"
        resume=""
        [ -d "$run" ] && resume="-y 1"
        # shellcheck disable=SC2046
        ./train_gpt -e "$BASE" $(method_flags "$method") -i "$SFT/${task}_train.bin" -j "$SFT/${task}_test.bin" \
            --tokenizer "$TOKBIN" -b "$FT_B" -t "$T" -x "$FT_STEPS" --warmup-frac 0.05 -c 0.0 -v 0 -s 0 -n 0 -h 0 \
            --seed "$SEED" -o "$run" $resume > "$run.log" 2>&1 || { tail -5 "$run.log"; exit 1; }
    done
done
if [ "${STOP_AFTER:-}" = train ]; then log "STOP_AFTER=train"; exit 0; fi

# 5. evaluation on each task's test split: the masked loss over the response tokens (train_gpt
# --eval: all rows), then the accuracies (sft_eval: MAX_EVAL examples, the labels in turn). "base" is the
# pre-trained model itself, without fine-tuning.
make -s dev/eval/sft_eval
for task in $TASKS; do
    # the accuracies' examples: MAX_EVAL of the test split, the labels taken in turn (the split
    # is in label order, so its first examples would hold two or three labels only)
    subset=$SFT/jsonl/${task}_test_choices_eval.jsonl
    if [ ! -f "$subset" ]; then
        python3 - "$SFT/jsonl/${task}_test_choices.jsonl" "$MAX_EVAL" "$subset" <<'EOF'
import json, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
by_label = {}
for l in lines:
    by_label.setdefault(json.loads(l)["label"], []).append(l)
queues = [by_label[k] for k in sorted(by_label)]
out, i = [], 0
while len(out) < min(int(sys.argv[2]), len(lines)):
    q = queues[i % len(queues)]
    if q:
        out.append(q.pop(0))
    i += 1
with open(sys.argv[3] + ".tmp", "w", encoding="utf-8") as f:
    f.writelines(out)
EOF
        mv "$subset.tmp" "$subset"
    fi
done
for task in $TASKS; do
    test_rows=$(shard_rows "$SFT/${task}_test.bin" "$T")
    eval_batches=$(( test_rows / FT_B ))
    for method in base $METHODS; do
        run=$FT/${task}_${method}
        mkdir -p "$run"
        if [ "$method" = base ]; then model=(-e "$BASE")
        elif [ "${method%@*}" = full ]; then model=(-e "$run/model_$step.bin")
        else model=(-e "$BASE" --peft-init "$run/model_$step.peft"); fi
        if [ ! -f "$run/heldout.txt" ]; then
            ./train_gpt "${model[@]}" --eval -j "$SFT/${task}_test.bin" -b "$FT_B" -t "$T" -m "$eval_batches" -h 0 \
                > "$run/heldout.log" 2>&1 || { tail -5 "$run/heldout.log"; exit 1; }
            grep -o "val loss [0-9.]*" "$run/heldout.log" | awk '{print $3}' > "$run/heldout.txt"
        fi
        if [ ! -f "$run/task_eval.json" ]; then
            log "evaluate: $task $method"
            ./dev/eval/sft_eval "${model[@]}" --tiktoken "$TOK" --task "$SFT/jsonl/${task}_test_choices_eval.jsonl" \
                --report "$run/task_eval.json" > "$run/task_eval.log" 2>&1 ||
                { tail -5 "$run/task_eval.log"; exit 1; }
        fi
    done
done

# 6. the table
python3 dev/sft/sft_table.py --out "$OUT" --tasks $TASKS --methods base $METHODS --preset "$PRESET" --base "$BASE" \
    --pretrain-run "$PT/run"
log "done: $OUT/RESULTS.md"
