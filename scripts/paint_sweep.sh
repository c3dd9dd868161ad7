#!/usr/bin/env bash
# PAINT on this machine: interpolate between a pre-trained base (theta_0) and its full
# fine-tuning on a task (theta_1), theta(alpha) = (1 - alpha) theta_0 + alpha theta_1, and
# measure, for each alpha, the fine-tuned task and the general ability the base had. One
# command, deterministic, resumable (a stage whose output exists is skipped):
#
#   bash scripts/paint_sweep.sh                       # everything, into runs/paint
#   OUT=... ALPHAS=0,0.25,0.5,0.75,1 HS_N=400 MARGIN=0.02 bash scripts/paint_sweep.sh
#
# 1. theta_0: the d4 base of scripts/sft_compare.sh (its 8192-token English+Japanese BPE, 600
#    steps on Gutenberg + Aozora), from SFT_OUT (default runs/sft_compare), made there by
#    sft_compare.sh STOP_AFTER=base when absent; the spam_cls task shards and choice files are
#    made with sft_compare.sh's own commands when absent.
# 2. theta_1: full fine-tuning of theta_0 on spam_cls with sft_compare.sh's "full" settings
#    (120 steps of 8 rows of 256 tokens, lr 3e-4 cosine to 10%, 5% warmup, wd 0, clip 1, seed
#    1337); its final checkpoint is kept in OUT/ft_spam_full.
# 3. held-out data, each in two disjoint halves fixed once: "select" (used only to pick alpha)
#    and "report" (only reported):
#      task:    spam_cls's test split (192 e-mails, never trained on), label by label every other
#               example (select 97, report 95);
#      general: the base's pre-training val shard (every 50th Gutenberg/Aozora document), its first
#               half of tokens and its second half; VAL_BATCHES batches of 16 x 256 tokens from each;
#      HellaSwag: HS_N validation examples (every 50th, from the start), tokenized with the base's
#               own BPE (dev/data/hellaswag.py only writes GPT-2 ids); reported, not used to pick.
# 4. per alpha in ALPHAS: dev/paint/interpolate writes theta(alpha); dev/eval/sft_eval scores the
#    task (log-likelihood choice between "spam" and "ham", and the mean log-probability of the
#    right label) on each half; train_gpt --eval gives the val loss of each half and HellaSwag.
# 5. the pick (dev/paint/paint_table.py, on the select halves only): the alphas whose task
#    accuracy is at least the fine-tuned model's (alpha = 1) minus MARGIN; among them the one
#    with the lowest general val loss; ties to the smaller alpha. Its report-half figures are
#    the result.
# 6. OUT/paint.csv, OUT/PAINT.md (the table, the pick), OUT/paint.png; with RESULTS=DIR also
#    copied there with the logs of the evaluations.
# Sized for a 2-core CPU: about 20 minutes with one thread (OMP_NUM_THREADS=1) when the base
# exists; dev/paint/README.md says what it can and cannot show.
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)

OUT=${OUT:-runs/paint}
SFT_OUT=${SFT_OUT:-runs/sft_compare}
DATA=${DATA:-../shared/data}
PY=${PY:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
# the settings of scripts/sft_compare.sh (theta_0, the task, the "full" method): change them
# together with it
PRESET=${PRESET:-d4}
VOCAB=${VOCAB:-8192}
PRETRAIN_STEPS=${PRETRAIN_STEPS:-600}
T=${T:-256}
FT_B=${FT_B:-8}
FT_STEPS=${FT_STEPS:-120}
FT_LR=${FT_LR:-3e-4}
MAX_CHARS=${MAX_CHARS:-100}
SEED=${SEED:-1337}
TASK=${TASK:-spam_cls}
# the sweep
ALPHAS=${ALPHAS:-0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1}
VAL_BATCHES=${VAL_BATCHES:-10}   # per half, of 16 x 256 tokens (the base's own val evaluation: 10)
HS_N=${HS_N:-200}                # HellaSwag examples (chance 0.25)
MARGIN=${MARGIN:-0.03}           # task accuracy the pick may give up against alpha = 1
THREADS=${OMP_NUM_THREADS:-$(nproc)}
export OMP_NUM_THREADS=$THREADS
export LLMC_SHARED_DATA=${LLMC_SHARED_DATA:-$DATA}

log() { echo "[$(date +%H:%M:%S)] $*"; }
# Each stage that runs appends "name wall_s cpu_s" to OUT/timing.txt (CPU: user + system of its
# child processes, from bash's `times`), so a resumed sweep still accounts for every stage, and
# a machine shared with other jobs shows as wall time well above CPU time.
# (`times` must run in this shell, not in a $(...) subshell, to see the children's times)
cpu_now() { times > "$OUT/.times"; CPU_NOW=$(tail -1 "$OUT/.times" | awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); s += p[1] * 60 + p[2] } printf "%.1f", s }'); }
stage_start() { STAGE_T0=$(date +%s); cpu_now; STAGE_C0=$CPU_NOW; }
stage_done() { cpu_now; echo "$1 $(( $(date +%s) - STAGE_T0 )) $(awk -v a="$CPU_NOW" -v b="$STAGE_C0" 'BEGIN { printf "%.1f", a - b }')" >> "$OUT/timing.txt"; }
# refuse a malformed ALPHAS here, not after the training
if ! [[ $ALPHAS =~ ^[-+0-9.eE]+(,[-+0-9.eE]+)*$ ]]; then echo "error: ALPHAS=$ALPHAS: expected numbers separated by commas" >&2; exit 1; fi
make -s train_gpt dev/paint/interpolate dev/eval/sft_eval dev/data/sft_prepare
mkdir -p "$OUT"

# 1. theta_0, the tokenizer, the task (sft_compare.sh's stages 1-3)
TOK=$SFT_OUT/tok/enja_${VOCAB}.tiktoken
PT=$SFT_OUT/pretrain
BASE=$PT/run/model_$(printf %08d "$PRETRAIN_STEPS").bin
if [ ! -f "$BASE" ] || [ ! -f "$TOK" ]; then
    log "theta_0 absent: scripts/sft_compare.sh STOP_AFTER=base (about 20 minutes on 2 cores)"
    OUT=$SFT_OUT DATA=$DATA PRESET=$PRESET VOCAB=$VOCAB PRETRAIN_STEPS=$PRETRAIN_STEPS SEED=$SEED STOP_AFTER=base \
        bash scripts/sft_compare.sh
fi
SFT=$SFT_OUT/sft
if [ ! -f "$SFT/jsonl/${TASK}_test_choices.jsonl" ]; then
    log "task files: dev/data/sft_sources.py (as sft_compare.sh)"
    mkdir -p "$SFT"
    python3 dev/data/sft_sources.py livedoor_cls spam_cls --brief-instruction --max-chars "$MAX_CHARS" --data-dir "$DATA" \
        --out "$SFT/jsonl" > "$SFT.sources.log" 2>&1 || { tail -5 "$SFT.sources.log"; exit 1; }
fi
if [ ! -f "$SFT/${TASK}_train.bin" ]; then
    log "task shard: $TASK train (as sft_compare.sh)"
    ./dev/data/sft_prepare --tiktoken "$TOK" --seq-len "$T" "$SFT/jsonl/${TASK}_train.jsonl" -o "$SFT/${TASK}_train.bin" \
        --report "$SFT/${TASK}_train_report.json" > "$SFT/${TASK}_train.log" 2>&1 || { tail -5 "$SFT/${TASK}_train.log"; exit 1; }
fi

# 2. theta_1: the "full" method of sft_compare.sh, its checkpoint kept
FT=$OUT/ft_${TASK}_full
THETA1=$FT/model_$(printf %08d "$FT_STEPS").bin
if [ ! -f "$FT/DONE_$(printf %08d "$FT_STEPS")" ]; then
    log "theta_1: full fine-tuning on $TASK, $FT_STEPS steps of $FT_B x $T tokens, lr $FT_LR"
    stage_start
    resume=""
    [ -d "$FT" ] && resume="-y 1"
    ./train_gpt -e "$BASE" --peft full -l "$FT_LR" -i "$SFT/${TASK}_train.bin" --tokenizer "$SFT_OUT/tok/enja_${VOCAB}_tokenizer.bin" \
        -b "$FT_B" -t "$T" -x "$FT_STEPS" --warmup-frac 0.05 -c 0.0 -v 0 -s 0 -n 0 -h 0 --seed "$SEED" -o "$FT" $resume \
        > "$FT.log" 2>&1 || { tail -5 "$FT.log"; exit 1; }
    grep "^step *$FT_STEPS/" "$FT.log" || true
    stage_done theta1_training
fi

# 3. held-out halves
H=$OUT/heldout
mkdir -p "$H"
if [ ! -f "$H/task_report.jsonl" ]; then
    log "task halves: $TASK test split, every other example of each label"
    python3 - "$SFT/jsonl/${TASK}_test_choices.jsonl" "$H" <<'EOF'
import json, os, sys
lines = [l for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
by_label = {}
for l in lines:
    by_label.setdefault(json.loads(l)["label"], []).append(l)
halves = {"select": [], "report": []}
for k in sorted(by_label):                      # within a label, file order: 0, 2, 4... select
    for i, l in enumerate(by_label[k]):
        halves["select" if i % 2 == 0 else "report"].append((i, k, l))
for name, rows in halves.items():               # the labels in turn, as sft_compare's subsets
    rows.sort(key=lambda r: (r[0], r[1]))
    path = os.path.join(sys.argv[2], f"task_{name}.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.writelines(r[2] for r in rows)
    os.replace(path + ".tmp", path)
    counts = {k: sum(1 for r in rows if r[1] == k) for k in sorted(by_label)}
    print(f"{path}: {len(rows)} examples, per label {counts}")
EOF
fi
if [ ! -f "$H/val_report.bin" ]; then
    log "general halves: the pre-training val shard, first and second half of its tokens"
    python3 - "$PT/data_val.bin" "$H" <<'EOF'
import os, struct, sys
raw = open(sys.argv[1], "rb").read()
h = list(struct.unpack("<256i", raw[:1024]))
if h[0] != 20240520 or h[1] != 1 or len(raw) != 1024 + 2 * h[2]:
    sys.exit(f"error: {sys.argv[1]}: not a version-1 token shard of {h[2]} tokens")
n = h[2]
for name, lo, hi in (("select", 0, n // 2), ("report", n // 2, n)):
    h[2] = hi - lo
    path = os.path.join(sys.argv[2], f"val_{name}.bin")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<256i", *h))
        f.write(raw[1024 + 2 * lo: 1024 + 2 * hi])
        f.flush(); os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    print(f"{path}: tokens {lo}..{hi} of {n}")
EOF
fi
HS=$H/hellaswag_enja${VOCAB}_${HS_N}.bin
if [ ! -f "$HS" ]; then
    log "HellaSwag: $HS_N examples, tokenized with $TOK"
    "$PY" - "$(pwd)" "$TOK" "$HS_N" "$HS" <<'EOF'
# the file format of dev/data/hellaswag.py (llmc/hellaswag.h), with the base's BPE: tiktoken on
# the rank file and GPT-2's pre-tokenization pattern, which is how llmc/bpe.h reads a
# .tiktoken vocabulary (dev/data/test_bpe_train.py checks that the two encode alike)
import os, struct, sys
repo, tok, n_want, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, os.path.join(repo, "dev", "data"))
import tiktoken
from tiktoken.load import load_tiktoken_bpe
from hellaswag import find_hellaswag
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ranks = load_tiktoken_bpe(tok)
enc = tiktoken.Encoding("base", pat_str=PAT, mergeable_ranks=ranks, special_tokens={})
lines = open(find_hellaswag(), encoding="utf-8").read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
n_all = len(lines) // 6
stride = max(1, n_all // n_want)  # spread over the whole set: it is ordered by activity
body, total, labels = [], 0, []
for i in range(0, n_all, stride)[:n_want]:
    ctx, label, *endings = lines[6 * i: 6 * i + 6]
    c = enc.encode_ordinary(ctx)
    e = [enc.encode_ordinary(" " + x) for x in endings]
    toks = c + [t for x in e for t in x]
    body.append(struct.pack("<6i", int(label), len(c), *[len(x) for x in e]))
    body.append(struct.pack(f"<{len(toks)}H", *toks))
    total += len(toks)
    labels.append(int(label))
h = [0] * 256
h[:4] = [20241127, 1, len(labels), total]
with open(out + ".tmp", "wb") as f:
    f.write(struct.pack("<256i", *h))
    f.writelines(body)
    f.flush(); os.fsync(f.fileno())
os.replace(out + ".tmp", out)
print(f"{out}: {len(labels)} of {n_all} examples (every {stride}th), {total} tokens; labels {[labels.count(k) for k in range(4)]}")
EOF
fi

# 4. the sweep
for a in ${ALPHAS//,/ }; do
    d=$OUT/alpha_$a
    mkdir -p "$d"
    theta=$d/model.bin
    need=0
    for f in task_select.json task_report.json general.txt; do [ -f "$d/$f" ] || need=1; done
    [ $need = 0 ] && continue
    log "alpha $a"
    stage_start
    if [ ! -f "$theta" ]; then
        ./dev/paint/interpolate "$BASE" "$THETA1" -o "$theta" --alpha "$a" > "$d/interpolate.log" 2>&1 ||
            { tail -3 "$d/interpolate.log"; exit 1; }
    fi
    for half in select report; do
        [ -f "$d/task_$half.json" ] && continue
        ./dev/eval/sft_eval -e "$theta" --tiktoken "$TOK" --task "$H/task_$half.jsonl" --report "$d/task_$half.json" \
            > "$d/task_$half.log" 2>&1 || { tail -3 "$d/task_$half.log"; exit 1; }
    done
    if [ ! -f "$d/general.txt" ]; then
        # HellaSwag rides along with the select half's val loss (one model load)
        ./train_gpt -e "$theta" --eval -j "$H/val_select.bin" -b 16 -t "$T" -m "$VAL_BATCHES" -h 1 --hellaswag "$HS" \
            > "$d/general_select.log" 2>&1 || { tail -3 "$d/general_select.log"; exit 1; }
        ./train_gpt -e "$theta" --eval -j "$H/val_report.bin" -b 16 -t "$T" -m "$VAL_BATCHES" -h 0 \
            > "$d/general_report.log" 2>&1 || { tail -3 "$d/general_report.log"; exit 1; }
        vs=$(grep -o "val loss [0-9.]*" "$d/general_select.log" | awk '{print $3}')
        vr=$(grep -o "val loss [0-9.]*" "$d/general_report.log" | awk '{print $3}')
        hs=$(grep -o "HellaSwag accuracy [0-9.]*" "$d/general_select.log" | awk '{print $3}')
        if [ -z "$vs" ] || [ -z "$vr" ] || [ -z "$hs" ]; then echo "error: $d: no val loss or HellaSwag line in the eval logs" >&2; exit 1; fi
        printf 'val_loss_select %s\nval_loss_report %s\nhellaswag %s\n' "$vs" "$vr" "$hs" > "$d/general.txt.tmp"
        mv "$d/general.txt.tmp" "$d/general.txt"
    fi
    echo "  task acc select $(grep -o '"accuracy_ll": [0-9.]*' "$d/task_select.json" | awk '{print $2}')," \
         "report $(grep -o '"accuracy_ll": [0-9.]*' "$d/task_report.json" | awk '{print $2}');" \
         "$(tr '\n' ' ' < "$d/general.txt")"
    stage_done "alpha_$a"
done

# 5-6. the pick, the table, the plot
WALL=$(( $(date +%s) - START ))
"$PY" dev/paint/paint_table.py --out "$OUT" --alphas "$ALPHAS" --margin "$MARGIN" --task "$TASK" \
    --base "$BASE" --theta1 "$THETA1" --heldout "$H" --hellaswag "$HS" --val-batches "$VAL_BATCHES" \
    --threads "$THREADS" --wall-seconds "$WALL" --timing "$OUT/timing.txt" --command "${PAINT_COMMAND:-bash scripts/paint_sweep.sh}"
if [ -n "${RESULTS:-}" ]; then
    mkdir -p "$RESULTS/logs"
    cp "$OUT/paint.csv" "$OUT/PAINT.md" "$OUT/paint.png" "$RESULTS/"
    [ -f "$OUT/timing.txt" ] && cp "$OUT/timing.txt" "$RESULTS/"
    cp "$FT.log" "$RESULTS/logs/theta1_train.log"
    for a in ${ALPHAS//,/ }; do
        for f in task_select.json task_report.json general_select.log general_report.log interpolate.log; do
            [ -f "$OUT/alpha_$a/$f" ] && cp "$OUT/alpha_$a/$f" "$RESULTS/logs/alpha_${a}_$f"
        done
    done
    log "copied to $RESULTS"
fi
log "done in ${WALL}s: $OUT/PAINT.md"
