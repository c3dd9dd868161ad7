#!/usr/bin/env bash
# A scaling-law sweep over the smooth dN family (dN: N layers, 64N channels, N heads):
#   MODE=isoflop  for every FLOP budget C in BUDGETS, every preset trains on D = C / (FLOPs per
#                 token) tokens (Chinchilla's approach 2: one IsoFLOP profile per budget);
#   MODE=tokens   every preset trains on every token count in TOKENS.
# Each run's learning-rate schedule ends with the run (cosine or WSD to its own length): a
# schedule cut short biases the fit. FLOPs are counted as the trainer's log counts them:
# 6N + 6LCT per token, N = every parameter but wpe (printed with and without the embeddings).
#
#   bash scripts/scaling_sweep.sh                  # the default: the sweep of the README (CPU)
#   DRY_RUN=1 bash scripts/scaling_sweep.sh        # the plan: runs, tokens, FLOPs, estimated time
#   TRAINER=./train_gpt_cu BUDGETS="1e17 3e17 1e18" PRESETS="d6 d8 d10 d12 d14" ... (GPU)
#   LAUNCH="mpirun -np 2" OMP_NUM_THREADS=1 ...    # each run under mpirun
#
# Resumable: run it again after a kill and it skips finished runs (FINISHED in their folder),
# resumes the interrupted one from its last checkpoint (the trainer's -y 1) and starts the rest.
# OUT/manifest.csv lists every run (scripts/scaling_manifest.py); fit it with
#   python3 dev/scaling/fit.py OUT/manifest.csv --plots OUT --out OUT/fit.json --report OUT/fit.md
#
# Settings (environment variables; defaults in brackets):
#   OUT [runs/scaling]       sweep folder: one folder per run, manifest.csv
#   MODE [isoflop]           isoflop | tokens
#   BUDGETS [2.5e12 7.5e12 2.2e13]  FLOP budgets (isoflop)    TOKENS [1e6 3e6]  (tokens mode)
#   PRESETS [d1 d2 d3 d4 d5]
#   TRAINER [./train_gpt]    or ./train_gpt_cu;  LAUNCH []: a prefix such as "mpirun -np 4"
#   TRAIN_DATA, VAL_DATA     token shards (glob); default: Gutenberg children's books with a
#                            4096-token BPE trained here on the train split (made on first use)
#   VOCAB [4096]             the vocabulary size of the data (the presets' V)
#   B [4] T [256] TOTAL_BATCH [-1: B*T*processes]
#   LR [2e-3] SCHEDULE [cosine] WARMUP_FRAC [0.05] FINAL_LR_FRAC [0.1] WD [0.1]
#   EVALS [4]                val evaluations per run (and one at the end); VAL_BATCHES [48]
#   CHECKPOINTS [4]          checkpoints per run (for resume; only the newest is kept)
#   SEED [1337]  EXTRA []    more trainer flags, e.g. "--peak-tflops 989"
#   DRY_RUN [0]              1: print the plan and exit. Its time estimate comes from a 4-step
#                            speed probe per preset, or TOKENS_PER_SEC, or (for a machine you
#                            do not have) MFU and PEAK_TFLOPS: FLOPs / (MFU x peak)
set -eu
cd "$(dirname "$0")/.."
source scripts/launch_common.sh

OUT=${OUT:-runs/scaling}
MODE=${MODE:-isoflop}
BUDGETS=${BUDGETS:-2.5e12 7.5e12 2.2e13}
TOKENS=${TOKENS:-1e6 3e6}
PRESETS=${PRESETS:-d1 d2 d3 d4 d5}
TRAINER=${TRAINER:-./train_gpt}
LAUNCH=${LAUNCH:-}
VOCAB=${VOCAB:-4096}
B=${B:-4}
T=${T:-256}
TOTAL_BATCH=${TOTAL_BATCH:--1}
LR=${LR:-2e-3}
SCHEDULE=${SCHEDULE:-cosine}
WARMUP_FRAC=${WARMUP_FRAC:-0.05}
FINAL_LR_FRAC=${FINAL_LR_FRAC:-0.1}
WD=${WD:-0.1}
EVALS=${EVALS:-4}
VAL_BATCHES=${VAL_BATCHES:-48}
CHECKPOINTS=${CHECKPOINTS:-4}
SEED=${SEED:-1337}
EXTRA=${EXTRA:-}
DRY_RUN=${DRY_RUN:-0}
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

case "$MODE" in
    isoflop) LIST=$BUDGETS; FLAG=--max-flops; TAG=C ;;
    tokens) LIST=$TOKENS; FLAG=--max-tokens; TAG=D ;;
    *) launch_fail "MODE=$MODE: expected isoflop or tokens" ;;
esac
for p in $PRESETS; do
    [[ $p =~ ^d[0-9]+$ ]] || launch_fail "PRESETS: '$p' is not a dN preset (d1, d2, ...)"
done
for x in $LIST; do
    [[ $x =~ ^[0-9]+(\.[0-9]+)?([eE][0-9]+)?$ ]] || launch_fail "$([ "$MODE" = isoflop ] && echo BUDGETS || echo TOKENS): '$x' is not a number (e.g. 2.5e12)"
done
[[ $EVALS =~ ^[1-9][0-9]*$ ]] || launch_fail "EVALS=$EVALS: expected a positive integer"
[[ $CHECKPOINTS =~ ^[1-9][0-9]*$ ]] || launch_fail "CHECKPOINTS=$CHECKPOINTS: expected a positive integer"

# The default data: Gutenberg children's books (../shared/data, else the public copy), every
# 20th book held out for val; a 4096-token BPE learned on the train books only (the val books
# are never seen by the tokenizer), both splits tokenized with it. Deterministic; made once.
prepare_default_data() {
    local dir=dev/data/gutenberg_4k
    TRAIN_DATA=$dir/gutenberg_4k_train.bin
    VAL_DATA=$dir/gutenberg_4k_val.bin
    TOKENIZER=$dir/gutenberg_4k_tokenizer.bin
    [ -f "$TRAIN_DATA" ] && [ -f "$VAL_DATA" ] && [ -f "$TOKENIZER" ] && return 0
    local src=../shared/data/gutenberg_children/gutenberg_children.jsonl
    [ -f "$src" ] || launch_fail "$src not found: the default sweep data comes from ../shared/data (or set TRAIN_DATA, VAL_DATA and VOCAB)"
    [ "$VOCAB" = 4096 ] || launch_fail "VOCAB=$VOCAB: the default data has a 4096-token vocabulary (set TRAIN_DATA and VAL_DATA for another)"
    make -s dev/data/bpe_train dev/data/tokenize
    mkdir -p "$dir"
    echo "preparing the sweep data in $dir (Gutenberg children's books, 4096-token BPE)"
    # book k goes to val when floor((k+1)/20) > floor(k/20): 9 of 192 books, spread evenly
    awk -v dir="$dir" '{ k = NR - 1; if (int((k + 1) / 20) > int(k / 20)) print > (dir "/val.jsonl"); else print > (dir "/train.jsonl") }' "$src"
    ./dev/data/bpe_train --vocab-size 4096 -o "$dir/gutenberg_4k.tiktoken" --write-tokenizer "$TOKENIZER.tmp" "$dir/train.jsonl"
    ./dev/data/tokenize --tiktoken "$dir/gutenberg_4k.tiktoken" -o "$dir/gutenberg_4k" --no-shard-index "$dir/train.jsonl"
    ./dev/data/tokenize --tiktoken "$dir/gutenberg_4k.tiktoken" -o "$dir/gutenberg_4k_v" --no-shard-index "$dir/val.jsonl"
    mv "$dir/gutenberg_4k_v_train.bin" "$VAL_DATA"
    rm -f "$dir/train.jsonl" "$dir/val.jsonl"
    mv "$TOKENIZER.tmp" "$TOKENIZER"  # last: its presence says the folder is complete
}

TOKENIZER=${TOKENIZER:-}
if [ -z "${TRAIN_DATA:-}" ] && [ -z "${VAL_DATA:-}" ]; then
    prepare_default_data
elif [ -z "${TRAIN_DATA:-}" ] || [ -z "${VAL_DATA:-}" ]; then
    launch_fail "set both TRAIN_DATA and VAL_DATA (or neither, for the default Gutenberg data)"
fi
[ -x "$TRAINER" ] || make -s "${TRAINER#./}" || launch_fail "$TRAINER: cannot build it"
launch_check_inputs "$TRAINER" "$TRAIN_DATA" "$VAL_DATA"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

# flags shared by every run; the length (--max-flops / --max-tokens) and the evaluation and
# checkpoint intervals are per run
common=(-i "$TRAIN_DATA" -j "$VAL_DATA" --vocab-size "$VOCAB" -b "$B" -t "$T" -d "$TOTAL_BATCH"
        -l "$LR" -k "$SCHEDULE" --warmup-frac "$WARMUP_FRAC" -q "$FINAL_LR_FRAC" -c "$WD"
        -m "$VAL_BATCHES" -s 0 --seed "$SEED")
[ -n "$TOKENIZER" ] && common+=(--tokenizer "$TOKENIZER")
# shellcheck disable=SC2206
extra=($EXTRA)
# shellcheck disable=SC2206
launch=($LAUNCH)

# The trainer's --dry-run plan line of every run, and tokens/s per preset (TOKENS_PER_SEC, or a
# 4-step probe whose first step is not timed), asked once each, in this shell (not in $(...)).
declare -A PLAN SPEED
load_plan() {
    local key="$1 $2"
    [ -n "${PLAN[$key]:-}" ] && return 0
    local out
    out=$("${launch[@]}" "$TRAINER" -e "$1" "${common[@]}" "$FLAG" "$2" "${extra[@]}" --dry-run 2>&1) || true
    PLAN[$key]=$(echo "$out" | grep '^plan:') ||
        launch_fail "$1 at $FLAG $2: $(echo "$out" | grep -m1 'error' || echo "$out" | tail -1)"
}
# plan_field PRESET AMOUNT FIELD (after load_plan PRESET AMOUNT)
plan_field() { echo "${PLAN["$1 $2"]}" | awk -v k="$3" '{ for (i = 2; i < NF; i++) if ($i == k) print $(i + 1) }'; }
load_speed() {  # PRESET AMOUNT (for MFU: tokens/s from that run's FLOPs per token)
    [ -n "${SPEED[$1]:-}" ] && return 0
    if [ -n "${TOKENS_PER_SEC:-}" ]; then SPEED[$1]=$TOKENS_PER_SEC; return 0; fi
    if [ -n "${MFU:-}" ]; then
        [ -n "${PEAK_TFLOPS:-}" ] || launch_fail "MFU=$MFU needs PEAK_TFLOPS (e.g. 989 for an H100's dense bf16)"
        SPEED[$1]=$(awk -v u="$MFU" -v p="$PEAK_TFLOPS" -v f="$(plan_field "$1" "$2" flops_per_token)" \
                    'BEGIN { if (u <= 0 || u > 1 || p <= 0) exit 1; printf "%.0f", u * p * 1e12 / f }') ||
            launch_fail "MFU=$MFU PEAK_TFLOPS=$PEAK_TFLOPS: want 0 < MFU <= 1 and a positive peak"
        return 0
    fi
    SPEED[$1]=$("${launch[@]}" "$TRAINER" -e "$1" "${common[@]}" -x 4 -v 0 "${extra[@]}" 2>&1 |
                sed -n 's/^average step: .* ms, \([0-9.]*\) tok\/s.*/\1/p')
    [ -n "${SPEED[$1]}" ] || launch_fail "the speed probe of $1 failed: run $TRAINER -e $1 -x 4 by hand to see why"
}

if [ "$DRY_RUN" = "1" ]; then
    echo "plan: $MODE sweep into $OUT, presets: $PRESETS; $(echo "$LIST" | wc -w) $( [ "$MODE" = isoflop ] && echo budgets || echo token counts): $LIST"
    printf "%-14s %7s %12s %12s %12s %8s %11s %11s %10s %10s\n" run preset N_total N_nonembed N_head steps tokens FLOPs tok/s est_time
    total=0
    for x in $LIST; do
        for p in $PRESETS; do
            load_plan "$p" "$x"
            load_speed "$p" "$x"
            steps=$(plan_field "$p" "$x" steps)
            tokens=$(plan_field "$p" "$x" tokens)
            speed=${SPEED[$p]}
            secs=$(awk -v t="$tokens" -v s="$speed" -v e="$EVALS" -v m="$VAL_BATCHES" -v b="$B" \
                   'BEGIN { printf "%.0f", (t + (e + 1) * m * b * '"$T"' / 3) / s }')  # an evaluation's forward: ~1/3 of a step
            total=$((total + secs))
            printf "%-14s %7s %12s %12s %12s %8s %11s %11s %10s %9ss\n" "$TAG${x}_$p" "$p" "$(plan_field "$p" "$x" n_params)" \
                "$(plan_field "$p" "$x" n_params_nonembed)" "$(plan_field "$p" "$x" n_params_head)" "$steps" "$tokens" \
                "$(plan_field "$p" "$x" flops)" "$speed" "$secs"
        done
    done
    how="the measured tokens/s"
    [ -n "${TOKENS_PER_SEC:-}" ] && how="TOKENS_PER_SEC=$TOKENS_PER_SEC"
    [ -z "${TOKENS_PER_SEC:-}" ] && [ -n "${MFU:-}" ] && how="MFU $MFU of $PEAK_TFLOPS TFLOP/s"
    printf "estimated wall time: %dh %02dm %02ds (from %s; evaluations included)\n" $((total / 3600)) $((total % 3600 / 60)) $((total % 60)) "$how"
    echo "(DRY_RUN=1: nothing started)"
    exit 0
fi

# every run's plan first: a bad budget stops the sweep before anything starts
for x in $LIST; do for p in $PRESETS; do load_plan "$p" "$x"; done; done
mkdir -p "$OUT"
n_runs=0
for x in $LIST; do
    for p in $PRESETS; do
        n_runs=$((n_runs + 1))
        name="$TAG${x}_$p"
        dir="$OUT/$name"
        if [ -f "$dir/FINISHED" ]; then
            echo "== $name: finished, skipped"
            continue
        fi
        load_plan "$p" "$x"
        steps=$(plan_field "$p" "$x" steps)
        val_every=$(( (steps + EVALS - 1) / EVALS ))
        ckpt_every=$(( (steps + CHECKPOINTS - 1) / CHECKPOINTS ))
        mkdir -p "$dir"
        if [ "$MODE" = isoflop ]; then meta="\"budget_flops\": $x, \"target_tokens\": null"
        else meta="\"budget_flops\": null, \"target_tokens\": $x"; fi
        printf '{"preset": "%s", "mode": "%s", %s, "steps": %s}\n' "$p" "$MODE" "$meta" "$steps" > "$dir/sweep.json"
        echo "== $name: $steps steps, $(plan_field "$p" "$x" tokens) tokens, $(plan_field "$p" "$x" flops) FLOPs"
        start=$(date +%s.%N)
        rc=0
        "${launch[@]}" "$TRAINER" -e "$p" "${common[@]}" "$FLAG" "$x" -v "$val_every" -n "$ckpt_every" -nk 1 \
            -o "$dir" -y 1 "${extra[@]}" > >(tee -a "$dir/train.out") 2>&1 || rc=$?
        echo "$(date +%s.%N) $start" | awk '{ printf "%.1f\n", $1 - $2 }' >> "$dir/wall_seconds"
        if [ $rc -ne 0 ]; then
            "$PY" scripts/scaling_manifest.py "$OUT" > /dev/null || true
            launch_fail "$name: $TRAINER exited with $rc (log: $dir/train.out); run the sweep again to resume it"
        fi
        # a run stopped by a signal exits 0 after its checkpoint: only the last step's counts
        if [ ! -f "$dir/DONE_$(printf %08d "$steps")" ]; then
            "$PY" scripts/scaling_manifest.py "$OUT" > /dev/null || true
            launch_fail "$name stopped before its last step $steps (log: $dir/train.out); run the sweep again to resume it"
        fi
        touch "$dir/FINISHED"
        "$PY" scripts/scaling_manifest.py "$OUT"
    done
done
"$PY" scripts/scaling_manifest.py "$OUT"
echo "sweep done: $n_runs runs in $OUT; fit: python3 dev/scaling/fit.py $OUT/manifest.csv --plots $OUT --out $OUT/fit.json --report $OUT/fit.md"
