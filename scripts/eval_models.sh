#!/usr/bin/env bash
# Scores the models trained here on every multiple-choice task (llmc/train_mc.h) and writes
# the table the README shows: OUT/RESULTS.md, each task's metrics per model with the chance
# level and the published GPT-2 124M figures beside them (dev/eval/report.py).
#
#   bash scripts/eval_models.sh                 # into runs/eval_models, about 30 minutes on 2 cores
#   OUT=... JA=runs/ja_cpt EXAMPLES=1000 B=8 bash scripts/eval_models.sh
#
# The models are those of scripts/ja_continued_pretraining.sh (run it first, or set JA to its
# OUT): the English base (d2 on Gutenberg, GPT-2's vocabulary), its continued pre-training on
# Japanese with GPT-2's vocabulary and with the vocabulary extended by 8000 Japanese merges,
# and the same model trained from scratch on Japanese. Models of the extended vocabulary read
# the tasks tokenized with it (dev/data/eval_tasks.py --tiktoken). EXAMPLES caps each task at
# its first N examples (HellaSwag has 10,042; the others 582 to 2,376), for time.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-runs/eval_models}
JA=${JA:-runs/ja_cpt}
EXAMPLES=${EXAMPLES:-1000}
B=${B:-8}
T=${T:-256}
PYTHON=${PYTHON:-.venv/bin/python}
TASKS="hellaswag arc_easy arc_challenge piqa winogrande truthfulqa_mc1 truthfulqa_mc2 jcommonsenseqa jtruthfulqa_mc1 jtruthfulqa_mc2"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}

last_model() { ls "$1"/model_*.bin 2>/dev/null | sort | tail -1; }
for d in base_en cpt_gpt2 cpt_ext_tokens scratch_ext; do
    [ -n "$(last_model "$JA/$d")" ] || { echo "error: no model in $JA/$d: run scripts/ja_continued_pretraining.sh first (or set JA)"; exit 1; }
done
[ -f "$JA/data/gpt2ja.tiktoken" ] || { echo "error: $JA/data/gpt2ja.tiktoken missing"; exit 1; }
make -s train_gpt
[ -f dev/data/eval/hellaswag.bin ] || make -s eval-data
mkdir -p "$OUT"
# the tasks in the extended vocabulary
if [ ! -f "$OUT/tasks_ext/jtruthfulqa_mc2.bin" ]; then
    $PYTHON dev/data/eval_tasks.py --tiktoken "$JA/data/gpt2ja.tiktoken" --out-dir "$OUT/tasks_ext" > "$OUT/tasks_ext.log"
fi

# evaluate NAME MODEL TASK_DIR
evaluate() {
    local name=$1 model=$2 dir=$3 list=""
    if [ -f "$OUT/$name/eval.jsonl" ] && [ "$(grep -c '"task":' "$OUT/$name/eval.jsonl")" = 10 ]; then
        echo "$name: done before"; return
    fi
    for t in $TASKS; do list="$list${list:+,}$dir/$t.bin"; done
    rm -rf "${OUT:?}/$name"
    echo "[$(date +%T)] $name: $model"
    ./train_gpt -e "$model" -b "$B" -t "$T" --eval -m 1 --tasks "$list" --tasks-examples "$EXAMPLES" \
        -o "$OUT/$name" > "$OUT/$name.log" 2>&1
    grep -E "examples, [0-9]+-shot\):" "$OUT/$name.log" | sed 's/^/  /'
}
evaluate base_en "$(last_model "$JA/base_en")" dev/data/eval
evaluate cpt_gpt2 "$(last_model "$JA/cpt_gpt2")" dev/data/eval
evaluate cpt_ext_tokens "$(last_model "$JA/cpt_ext_tokens")" "$OUT/tasks_ext"
evaluate scratch_ext "$(last_model "$JA/scratch_ext")" "$OUT/tasks_ext"
$PYTHON dev/eval/report.py "$OUT" base_en cpt_gpt2 cpt_ext_tokens scratch_ext \
    --command "bash scripts/eval_models.sh (EXAMPLES=$EXAMPLES B=$B T=$T)"
