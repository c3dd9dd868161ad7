#!/usr/bin/env bash
# Runs each reader's fuzzer for FUZZ_SECONDS, seeded with real files (a checkpoint and state
# made by a short train_gpt run, a tiny shakespeare shard, GPT-2's tokenizer file, the head of
# the HellaSwag file). Prints PASS/FAIL per reader with the executions done; a crash leaves
# its input under build/fuzz_crashes/.
set -u
cd "$(dirname "$0")/../.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
corpus=build/fuzz_corpus
mkdir -p "$corpus" build/fuzz_crashes
seed_dir() { mkdir -p "$corpus/$1"; cp "$2" "$corpus/$1/" 2>/dev/null; }
if [ ! -f "$corpus/.seeded" ]; then
    tmp=$(mktemp -d)
    OMP_NUM_THREADS=1 ./train_gpt -e d1 -b 1 -t 8 -x 1 -v 0 -s 0 -o "$tmp" > /dev/null 2>&1
    # a smaller checkpoint than d1's 3 MB is a better seed: the reference's awkward one if present
    seed_dir checkpoint "$(ls build/ref_awkward_model.bin 2>/dev/null || ls "$tmp"/model_*.bin)"
    seed_dir state "$(ls "$tmp"/state_*.bin)"
    head -c 3024 dev/data/tinyshakespeare/tiny_shakespeare_val.bin > "$corpus/shard_seed.bin"
    seed_dir shard "$corpus/shard_seed.bin"
    seed_dir tokenizer dev/data/gpt2_tokenizer.bin
    python3 - "$corpus" <<'PY'
import struct, sys
# the first 3 HellaSwag examples as a small, valid file
src = open("dev/data/hellaswag/hellaswag_val.bin", "rb").read()
pos, body, total = 1024, b"", 0
for _ in range(3):
    meta = struct.unpack_from("<6i", src, pos)
    n = meta[1] + sum(meta[2:])
    body += src[pos:pos + 24 + 2 * n]
    pos += 24 + 2 * n
    total += n
header = [0] * 256
header[:4] = [20241127, 1, 3, total]
import os
os.makedirs(sys.argv[1] + "/hellaswag", exist_ok=True)
open(sys.argv[1] + "/hellaswag/seed.bin", "wb").write(struct.pack("<256i", *header) + body)
PY
    rm -f "$corpus/shard_seed.bin"
    rm -rf "$tmp"
    touch "$corpus/.seeded"
fi
fails=0
for r in checkpoint shard tokenizer state hellaswag; do
    log=build/fuzz_$r.log
    ./build/fuzz_$r -max_total_time="$SECONDS_EACH" -max_len=1200000 -rss_limit_mb=4096 \
        -artifact_prefix=build/fuzz_crashes/${r}_ "$corpus/$r" > "$log" 2>&1
    rc=$?
    execs=$(grep -o "stat::number_of_executed_units: [0-9]*" "$log" | grep -o "[0-9]*$")
    [ -z "$execs" ] && execs=$(grep -oE "^#[0-9]+" "$log" | tail -1 | tr -d '#')
    if [ $rc -eq 0 ]; then
        echo "PASS: fuzz $r reader: ${SECONDS_EACH}s, ${execs:-?} executions, no findings"
    else
        echo "FAIL: fuzz $r reader: exit $rc after ${execs:-?} executions, see $log and build/fuzz_crashes/"
        fails=$((fails + 1))
    fi
done
[ $fails -eq 0 ]
