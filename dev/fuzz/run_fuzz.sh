#!/usr/bin/env bash
# Runs each reader's fuzzer for FUZZ_SECONDS, seeded with real files (a checkpoint and state
# made by a short train_gpt run, a tiny shakespeare shard, GPT-2's tokenizer file, the head of
# three small multiple-choice task files; for the text readers: a few trainer command lines, three JSONL records
# and a two-element JSON array from /work/shared/data, a 317-token excerpt of GPT-2's
# encoder.json + vocab.bpe and the same as a tiktoken rank file; a small DPO pair file written
# by dev/data/test_dpo_prepare.sh). FUZZ_ONLY="args docs" runs
# only those targets. Prints PASS/FAIL per reader with the executions done; a crash leaves
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
    seed_dir done "$(ls "$tmp"/DONE_* | head -1)"
    head -c 3024 dev/data/tinyshakespeare/tiny_shakespeare_val.bin > "$corpus/shard_seed.bin"
    seed_dir shard "$corpus/shard_seed.bin"
    seed_dir tokenizer dev/data/gpt2_tokenizer.bin
    rm -f "$corpus/shard_seed.bin"
    rm -rf "$tmp"
    touch "$corpus/.seeded"
fi
mkdir -p "$corpus/mc_task"
if [ ! -f "$corpus/.seeded_mc_task" ]; then
    # small task files of each shape: one context and 4 choices (HellaSwag), two contexts
    # (Winogrande), several true choices (TruthfulQA MC2)
    for t in hellaswag winogrande truthfulqa_mc2; do
        ${PYTHON:-.venv/bin/python} dev/data/eval_tasks.py --tasks $t --limit 3 -o "$corpus/mc_task/$t.bin" > /dev/null
    done
    touch "$corpus/.seeded_mc_task"
fi
mkdir -p "$corpus/peft"  # libFuzzer starts from nothing when the seed is missing
if [ ! -f "$corpus/.seeded_peft" ] && [ -f build/ref_lora_peft_init.peft ]; then
    # an adapter file of the awkward reference's shape (dev/test/test_reference.sh writes it)
    seed_dir peft build/ref_lora_peft_init.peft
    touch "$corpus/.seeded_peft"
fi
mkdir -p "$corpus/pairs"
if [ ! -f "$corpus/.seeded_pairs" ] && [ -f build/dpo_pairs_seed.bin ]; then
    # a small DPO pair file with reference log-probs (dev/data/test_dpo_prepare.sh writes it)
    seed_dir pairs build/dpo_pairs_seed.bin
    touch "$corpus/.seeded_pairs"
fi
if [ ! -f "$corpus/.seeded_text" ]; then
    # the option parser: argv pieces split on NUL bytes
    mkdir -p "$corpus/args"
    printf -- '-e\0d1\0-b\0002\0-t\00032\0-x\0002\0-v\0000\0-s\0000' > "$corpus/args/plain"
    printf -- '--batch-size=4\0-l\0003e-4\0-k\0wsd\0--no-shuffle\0-b\0008\0-o\0run' > "$corpus/args/long"
    printf -- '-d\0001e6\0-q\0nan\0--seed\0-1\0-h\0-x' > "$corpus/args/bad"
    printf -- '--words\000100,50\0--max-top-ngram\0000.2,0.18,0.16\0--mean-word-len\0003,inf' > "$corpus/args/lists"
    # documents, GPT-2's encoder.json + vocab.bpe, a tiktoken rank file: small real excerpts
    python3 - "$corpus" /work/shared/data <<'PY'
import base64, json, os, sys
corpus, data = sys.argv[1], sys.argv[2]
for d in ("docs", "gpt2bpe", "tiktoken"):
    os.makedirs(os.path.join(corpus, d), exist_ok=True)
def first_records(path, k):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            r["text"] = r.get("text", "")[:300]
            out.append(r)
            if len(out) == k:
                break
    return out
src = os.path.join(data, "livedoor/livedoor_news.jsonl")
recs = first_records(src, 3) if os.path.exists(src) else [{"text": "hello\nworld"}, {"id": 2}]
with open(os.path.join(corpus, "docs/seed.jsonl"), "w", encoding="utf-8") as f:
    for i, r in enumerate(recs):
        f.write(json.dumps(r, ensure_ascii=(i == 1)) + "\n")
    f.write("not json\n\n{\"text\": \"\\ud800 lone surrogate\"}\n")
src = os.path.join(data, "fineweb2_edu_ja_sample/fineweb_100_samples.json")
arr = json.load(open(src, encoding="utf-8"))[:2] if os.path.exists(src) else [{"text": "a"}]
for r in arr:
    r["text"] = r.get("text", "")[:300]
open(os.path.join(corpus, "docs/seed.json"), "w", encoding="utf-8").write(json.dumps(arr, ensure_ascii=False, indent=1))
# GPT-2's first 256 + K tokens (the 256 bytes, then one token per merge in merge order) and
# <|endoftext|>: a small tokenizer that loads
enc = json.load(open(os.path.join(data, "gpt2/encoder.json"), encoding="utf-8"))
merges = open(os.path.join(data, "gpt2/vocab.bpe"), encoding="utf-8").read().split("\n")
K = 60
small = {t: i for t, i in enc.items() if i < 256 + K}
small["<|endoftext|>"] = 256 + K
vocab = "\n".join(merges[:1 + K]) + "\n"
with open(os.path.join(corpus, "gpt2bpe/seed"), "wb") as f:
    f.write(json.dumps(small).encode() + b"\0" + vocab.encode())
bs = [b for b in range(ord("!"), ord("~") + 1)] + [b for b in range(0xA1, 0xAD)] + [b for b in range(0xAE, 0x100)]
cs = bs[:] + []
n = 0
for b in range(256):
    if b not in bs:
        bs.append(b); cs.append(256 + n); n += 1
u2b = {chr(c): b for b, c in zip(bs, cs)}
with open(os.path.join(corpus, "tiktoken/seed"), "wb") as f:
    for t, i in sorted(small.items(), key=lambda x: x[1]):
        if t == "<|endoftext|>":
            continue
        f.write(base64.b64encode(bytes(u2b[ch] for ch in t)) + b" %d\n" % i)
PY
    touch "$corpus/.seeded_text"
fi
# quantized checkpoints (dev/infer/quantize) of the reference model
mkdir -p "$corpus/quant"
if [ ! -f "$corpus/.seeded_quant" ] && [ -x dev/infer/quantize ] && [ -f build/ref_awkward_model.bin ]; then
    dev/infer/quantize -i build/ref_awkward_model.bin -o "$corpus/quant/int4.q" --kind int4 --head quant > /dev/null
    dev/infer/quantize -i build/ref_awkward_model.bin -o "$corpus/quant/int8.q" --kind int8 > /dev/null
    touch "$corpus/.seeded_quant"
fi
fails=0
for r in ${FUZZ_ONLY:-checkpoint shard tokenizer state mc_task args docs gpt2bpe tiktoken peft pairs quant}; do
    # the option parser prints a note per repeated flag and the document reader one per
    extra=""
    # skipped line: their stderr is closed (libFuzzer still reports findings). The document
    # reader die()s on a malformed JSON array, which the target turns into a longjmp: what it
    # had allocated is left behind as the real program would leave it at exit, so leak
    # detection is off for that target.
    asan="${ASAN_OPTIONS:-}"
    case $r in args) extra="-close_fd_mask=2" ;; docs) extra="-close_fd_mask=2 -detect_leaks=0"; asan="detect_leaks=0" ;; esac
    if [ ! -d "$corpus/$r" ]; then echo "FAIL: fuzz $r: no seed corpus in $corpus/$r (rm $corpus/.seeded and rerun)"; fails=$((fails + 1)); continue; fi
    log=build/fuzz_$r.log
    ASAN_OPTIONS="$asan" ./build/fuzz_$r -max_total_time="$SECONDS_EACH" -max_len=1200000 -rss_limit_mb=4096 $extra \
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
