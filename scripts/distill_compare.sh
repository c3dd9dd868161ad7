#!/usr/bin/env bash
# Knowledge distillation against plain training, at the same tokens. One command,
# deterministic, resumable (a run whose final checkpoint exists is skipped):
#
#   bash scripts/distill_compare.sh                  # into runs/distill
#   STUDENT=d2 STEPS=... RUNS="plain forward reverse" bash scripts/distill_compare.sh
#
# teacher: scripts/sft_compare.sh's base model (d4, 8192-token BPE, pre-trained here on the
#          Gutenberg + Aozora books of ../shared/data; STOP_AFTER=base makes it);
# students: the STUDENT preset from scratch on the same data, STEPS steps of B x T tokens, the
#          same seed (so the same batches in the same order) and schedule in every run:
#   plain     cross-entropy only
#   forward   (1 - alpha) CE + alpha tau^2 KL(teacher || student), alpha 0.5, tau 2
#   reverse   the same with KL(student || teacher)
# measured: val loss on the held-out pre-training documents (-m 20 batches), HellaSwag accuracy
# on scripts/paint_sweep.sh's subset tokenized with the same BPE (if it exists; chance 0.25),
# ms/step (the distilled runs pay the teacher's forward); the table in OUT/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/distill}
BASE_OUT=${BASE_OUT:-runs/sft_compare}
VOCAB=${VOCAB:-8192}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-600}
STUDENT=${STUDENT:-d2}
STEPS=${STEPS:-200}
B=${B:-16}
T=${T:-256}
LR=${LR:-3e-3}
ALPHA=${ALPHA:-0.5}
TAU=${TAU:-2.0}
RUNS=${RUNS:-"plain forward reverse"}
HS=${HS:-runs/paint/heldout/hellaswag_enja${VOCAB}_200.bin}
SEED=${SEED:-1337}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

log() { echo "[$(date +%H:%M:%S)] $*"; }
make -s train_gpt
TOKBIN=$BASE_OUT/tok/enja_${VOCAB}_tokenizer.bin
PT=$BASE_OUT/pretrain
TEACHER=$PT/run/model_$(printf %08d "$PRETRAIN_STEPS").bin
if [ ! -f "$TEACHER" ]; then
    log "teacher: scripts/sft_compare.sh STOP_AFTER=base"
    OUT=$BASE_OUT VOCAB=$VOCAB PRETRAIN_STEPS=$PRETRAIN_STEPS STOP_AFTER=base bash scripts/sft_compare.sh
fi
mkdir -p "$OUT"
hs_flags=""
[ -f "$HS" ] && hs_flags="--hellaswag $HS -h 1"

run_flags() {
    case $1 in
        plain)   echo "" ;;
        forward) echo "--distill $TEACHER --distill-alpha $ALPHA --distill-tau $TAU" ;;
        reverse) echo "--distill $TEACHER --distill-alpha $ALPHA --distill-tau $TAU --distill-reverse" ;;
        *) echo "unknown run $1" >&2; exit 1 ;;
    esac
}
final=$(printf %08d "$STEPS")
for r in $RUNS; do
    run=$OUT/$r
    if [ ! -f "$run/model_$final.bin" ]; then
        log "student $STUDENT: $r, $STEPS steps of $((B * T)) tokens"
        resume=""
        [ -d "$run" ] && resume="-y 1"
        # shellcheck disable=SC2046,SC2086
        ./train_gpt -e "$STUDENT" --vocab-size "$VOCAB" -i "$PT/data_train.bin" -j "$PT/data_val.bin" --tokenizer "$TOKBIN" \
            $(run_flags "$r") -b "$B" -t "$T" -x "$STEPS" -l "$LR" --warmup-frac 0.05 -c 1.0 -v 50 -m 20 -s 0 -n 0 \
            --seed "$SEED" -o "$run" $resume > "$run.log" 2>&1 || { tail -5 "$run.log"; exit 1; }
    fi
    if [ -n "$hs_flags" ] && [ ! -f "$run.eval.log" ]; then
        # shellcheck disable=SC2086
        ./train_gpt -e "$run/model_$final.bin" --eval -j "$PT/data_val.bin" -b "$B" -t "$T" -m 20 $hs_flags \
            > "$run.eval.log" 2>&1 || { tail -5 "$run.eval.log"; exit 1; }
    fi
done
if [ -n "$hs_flags" ] && [ ! -f "$OUT/teacher.eval.log" ]; then
    # shellcheck disable=SC2086
    ./train_gpt -e "$TEACHER" --eval -j "$PT/data_val.bin" -b "$B" -t "$T" -m 20 $hs_flags > "$OUT/teacher.eval.log" 2>&1
fi

# the table
{
    echo "# Distillation: $STUDENT students from the d4 teacher, $STEPS steps of $((B * T)) tokens each"
    echo
    echo "Date $(date -u +%Y-%m-%d), $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), command: bash scripts/distill_compare.sh"
    echo "(STUDENT=$STUDENT STEPS=$STEPS B=$B T=$T LR=$LR ALPHA=$ALPHA TAU=$TAU SEED=$SEED)."
    echo
    echo "| model | train loss (last step) | val loss | HellaSwag ($( [ -f "$HS" ] && echo "200 ex." || echo "not run"), chance 0.25) | ms/step |"
    echo "|---|---|---|---|---|"
    if [ -f "$OUT/teacher.eval.log" ]; then
        echo "| teacher d4 ($PRETRAIN_STEPS steps) | | $(grep -o 'val loss [0-9.]*' "$OUT/teacher.eval.log" | tail -1 | cut -d' ' -f3) | $(grep -o 'HellaSwag accuracy [0-9.]*' "$OUT/teacher.eval.log" | tail -1 | cut -d' ' -f3) | |"
    fi
    for r in $RUNS; do
        [ -f "$OUT/$r.log" ] || continue
        tl=$(grep -o "step *$STEPS/$STEPS | loss [0-9.]*" "$OUT/$r.log" | awk '{print $NF}')
        vl=$(grep -o "step $STEPS: val loss [0-9.]*" "$OUT/$r.log" | awk '{print $NF}')
        hs=""
        [ -f "$OUT/$r.eval.log" ] && hs=$(grep -o 'HellaSwag accuracy [0-9.]*' "$OUT/$r.eval.log" | tail -1 | cut -d' ' -f3)
        ms=$(grep -o 'average step: [0-9.]* ms' "$OUT/$r.log" | awk '{print $3}')
        echo "| $STUDENT $r | $tl | $vl | $hs | $ms |"
    done
    echo
    echo "Train loss is each run's own objective (the mixed loss for the distilled runs); val loss is"
    echo "the plain cross-entropy for all."
} > "$OUT/RESULTS.md"
cat "$OUT/RESULTS.md"
