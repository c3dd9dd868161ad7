#!/usr/bin/env bash
# Benchmark of the whole corpus pipeline (all stages, GPT-2 tokenization included) on livedoor
# (Japanese news, 7,367 docs, 27.9 MB) and Gutenberg children's books (192 books, 43.3 MB),
# with 1 and 2 worker threads. Writes dev/data/results/pipeline_<date>.md with the machine,
# the commands, docs/s and MB/s (input bytes / wall time, best of REPEAT runs), and the
# per-stage report tables for livedoor and aozora.
#   bash dev/data/bench_pipeline.sh            (make dev/data/pipeline first)
#   REPEAT=3 THREADS="1 2 4" bash dev/data/bench_pipeline.sh
set -eu
cd "$(dirname "$0")/../.."
DATA=${DATA_DIR:-../shared/data}
REPEAT=${REPEAT:-2}
THREADS=${THREADS:-"1 2"}
BIN=dev/data/pipeline
[ -x $BIN ] || { echo "error: $BIN is not built (make $BIN)" >&2; exit 1; }
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DATE=$(date +%Y-%m-%d)
OUT=dev/data/results/pipeline_$DATE.md
mkdir -p dev/data/results

declare -A LANG_OF=( [livedoor]=ja [gutenberg]=en [aozora]=ja )
declare -A FILE_OF=( [livedoor]=$DATA/livedoor/livedoor_news.jsonl
                     [gutenberg]=$DATA/gutenberg_children/gutenberg_children.jsonl
                     [aozora]=$DATA/aozora/aozora_kenji_nankichi.jsonl )

rows=""
for corpus in livedoor gutenberg; do
    for t in $THREADS; do
        best=""
        for r in $(seq "$REPEAT"); do
            $BIN --quiet --lang ${LANG_OF[$corpus]} --threads "$t" --report "$TMP/r.json" \
                 --out-prefix "$TMP/$corpus" "${FILE_OF[$corpus]}"
            s=$($PY -c "import json;print(json.load(open('$TMP/r.json'))['seconds'])")
            if [ -z "$best" ] || $PY -c "import sys; sys.exit(0 if $s < $best else 1)"; then best=$s; cp "$TMP/r.json" "$TMP/best.json"; fi
        done
        line=$($PY - "$TMP/best.json" "$corpus" "$t" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1])); s = r["seconds"]; cpu = r["cpu_seconds"]
tok = r["tokens"]["train"] + r["tokens"]["val"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['records']} | {r['bytes_in']/1e6:.1f} | {s:.2f} | {cpu:.2f} | {cpu/s:.2f} | "
      f"{r['records']/s:,.0f} | {r['bytes_in']/1e6/s:.1f} | {tok/s/1e6:.2f} | {r['bytes_in']/1e6/cpu:.1f} |")
EOF
)
        echo "$line"
        rows+="$line"$'\n'
    done
done

table() {  # per-stage report table of a corpus (2 threads)
    local corpus=$1
    $BIN --lang ${LANG_OF[$corpus]} --threads 2 --report "$TMP/$corpus.json" --out-prefix "$TMP/$corpus" "${FILE_OF[$corpus]}" > "$TMP/$corpus.txt"
    $PY - "$TMP/$corpus.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print("| stage | on | docs in | docs out | chars in | chars out | chars kept |")
print("|---|---|---:|---:|---:|---:|---:|")
for s in r["stages"]:
    kept = 100.0 * s["chars_out"] / s["chars_in"] if s["chars_in"] else 0
    print(f"| {s['name']} | {'yes' if s['enabled'] else 'off'} | {s['docs_in']:,} | {s['docs_out']:,} | {s['chars_in']:,} | {s['chars_out']:,} | {kept:.1f}% |")
q = {k: v for k, v in r["quality_reasons"].items() if v}
print(f"\nquality drops by rule: {q}; PII masked: {r['pii']}; tokens: {r['tokens']}")
bad = {k: v.get('count', v.get('docs')) for k, v in r['bad_input'].items() if v.get('count', v.get('docs'))}
print(f"bad input: {bad or 'none'}")
EOF
}

{
    echo "# Corpus pipeline benchmark, $DATE"
    echo
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "- load average when the run started: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share this machine; numbers are wall-clock)"
    echo "- build: \`make dev/data/pipeline\` (top-level CFLAGS: -O3 -march=native -fno-math-errno, plus -pthread); gcc $(gcc -dumpfullversion)"
    echo "- command: \`$BIN --quiet --lang ja|en --threads T --report r.json --out-prefix P FILE\` (all stages on, GPT-2 BPE tokenization to shards), best of $REPEAT runs"
    echo "- MB/s = input bytes (JSONL) / wall time of the whole run (read, parse, filter, dedup, PII, tokenize, write shards); CPU s = user + system time of all threads (CPU/wall > 1 means the threads ran at the same time); MB per CPU-s does not depend on how busy the machine is"
    echo
    echo "| corpus | threads | docs | input MB | wall s | CPU s | CPU/wall | docs/s | MB/s | Mtokens/s | MB per CPU-s |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    printf "%s" "$rows"
    echo
    echo "## Per-stage report: livedoor (\`--lang ja\`)"
    echo
    table livedoor
    echo
    echo "## Per-stage report: aozora (\`--lang ja\`)"
    echo
    table aozora
} > "$OUT"
echo "wrote $OUT"
cat "$OUT"
