#!/usr/bin/env bash
# Generation speed at batch 1 against the memory-bandwidth bound (make bench, or on its own):
#   - a GPT-2 124M model (d12, random init: the weights' values do not change the speed);
#   - STREAM-triad bandwidth measured in the same run (dev/bench/roofline's ceiling);
#   - for fp32, int8 and int4 weights (the LM head in fp32, then quantized too): time to first
#     token for a 512-token prompt, and decode tokens/s over 128 new tokens (end-of-text
#     ignored), next to the bound: bandwidth / (weight bytes + KV-cache bytes per token).
# Writes dev/infer/results/bench_generate_<date>.md (date, machine, commit, command, table).
set -eu
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
NEW=${NEW:-128}
PROMPT=${PROMPT:-512}
date=$(date -u +%Y-%m-%d)
out=${OUT:-dev/infer/results/bench_generate_$date.md}
work=build/bench_generate
mkdir -p "$work" "$(dirname "$out")"
make -s train_gpt dev/infer/generate dev/bench/roofline
if [ ! -f "$work/d12/model_00000001.bin" ]; then
    ./train_gpt -e d12 -b 1 -t 64 -x 1 -v 0 -s 0 -o "$work/d12" > "$work/d12.log" 2>&1 ||
        { echo "error: making the d12 model failed: $(tail -2 "$work/d12.log")"; exit 1; }
fi
MODEL=$work/d12/model_00000001.bin
# a long prompt (tiny shakespeare), cut to its last PROMPT tokens by the generator
DATA=../shared/data/tinyshakespeare/input.txt
[ -f "$DATA" ] || DATA=dev/data/tinyshakespeare/input.txt
head -c 20000 "$DATA" | tr '\n' ' ' > "$work/prompt.txt"
echo >> "$work/prompt.txt"

# the machine's bandwidth, now (the ceilings part of the roofline binary, at a tiny shape)
./dev/bench/roofline -b 1 -t 2 -c 64 --nh 1 -v 256 -l 1 --maxT 4 --reps 1 --peak-ms 20 --adamw-n 1000 --csv "$work/ceilings.csv" > "$work/roofline.out"
triad=$(awk -F, '$1 == "ceiling" && $2 == "dram_triad" { print $10; exit }' "$work/ceilings.csv")
[ -n "$triad" ] || { echo "error: no STREAM triad in $work/ceilings.csv"; exit 1; }
echo "STREAM triad: $triad GB/s"

row() {  # NAME FLAGS...
    local name=$1; shift
    local err
    err=$(./dev/infer/generate -e "$MODEL" --prompt-file "$work/prompt.txt" --max-prompt-tokens "$PROMPT" -n "$NEW" --greedy \
          --ignore-eot "$@" 2>&1 >/dev/null)
    local wmb kv ttft tps
    wmb=$(echo "$err" | grep -o 'weights read per token: [0-9.]*' | grep -o '[0-9.]*$')
    kv=$(echo "$err" | grep -o 'KV cache [0-9.]* MB per position' | grep -o '[0-9.]*' | head -1)
    ttft=$(echo "$err" | grep -o 'time to first token [0-9.]*' | grep -o '[0-9.]*$')
    tps=$(echo "$err" | grep -o '[0-9.]* tokens/s' | grep -o '^[0-9.]*')
    # bytes per decoded token: the weights, and the cache at the average position of decoding
    awk -v n="$name" -v w="$wmb" -v kv="$kv" -v t="$ttft" -v s="$tps" -v bw="$triad" -v p="$PROMPT" -v g="$NEW" 'BEGIN {
        bytes = w + kv * (p + g / 2); bound = bw * 1000 / bytes
        printf "| %s | %.1f | %.1f | %.0f | %.2f | %.1f | %.1f | %.0f%% |\n", n, w, kv * (p + g / 2), t, 1000 / s, s, bound, 100 * s / bound }'
}
{
    echo "# Generation at batch 1 against the bandwidth bound, $date"
    echo
    echo "- machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
    echo "- command: bash dev/infer/bench_generate.sh (NEW=$NEW PROMPT=$PROMPT)"
    echo "- model: d12 (GPT-2 124M shape), random init; a $PROMPT-token prompt, $NEW new tokens, greedy, end-of-text ignored"
    echo "- STREAM triad (dev/bench/roofline, this run): $triad GB/s"
    echo "- bound = triad / (weights read per token + the KV cache at the mean decode position); time to first token = the prompt's forward + the first token"
    echo
    echo "| weights | weights MB/token | KV cache MB/token | time to first token ms | ms/token | tokens/s | bound tokens/s | % of bound |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    row "fp32"
    row "int8 (LM head fp32)" --quant int8
    row "int8 (LM head int8)" --quant int8 --head quant
    row "int4 g32 (LM head fp32)" --quant int4 --group 32
    row "int4 g32 (LM head int4)" --quant int4 --group 32 --head quant
    echo
    echo "For scale: llama.cpp's ggml runs GPT-2 124M at about 5 ms/token on an M1 Pro (its README's example)."
} | tee "$out"
