#!/usr/bin/env bash
# Fine-tuning end to end with the CPU trainer, on tiny shakespeare's tokens: loss masks in
# version-2 shards (a mask of all ones is bitwise plain training; a partial mask changes the
# loss; an all-masked step is skipped), the four PEFT methods (train, .peft checkpoints, the
# base left untouched, bitwise exact resume), --merge-out (the merged checkpoint evaluates like
# base + adapter), --eval with --peft-init, MPI data parallel with PEFT, and the errors a user
# meets (wrong base, wrong flags, corrupt adapter, a soft prompt that does not fit).
# The math of each method is checked against PyTorch in test_reference.sh (test_gpt).
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=2
work=$(mktemp -d /tmp/test_sft.XXXXXX)
trap 'rm -rf "$work"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin

# shards: the first 20000 val tokens, as version-2 files with a mask (all ones / every other
# target masked / all zero) and as a plain version-1 file
python3 - "$VAL" "$work" <<'EOF' || { echo "FAIL: making shards"; exit 1; }
import sys, struct
src, out = sys.argv[1], sys.argv[2]
with open(src, "rb") as f:
    f.read(1024)
    toks = f.read(2 * 20000)
n = len(toks) // 2
def write(name, mask):
    header = [0] * 256
    header[0], header[2] = 20240520, n
    if mask is None:
        header[1] = 1
    else:
        header[1], header[3], header[4] = 2, 2, 1
    with open(f"{out}/{name}.bin", "wb") as f:
        f.write(struct.pack("<256i", *header)); f.write(toks)
        if mask is not None: f.write(bytes(mask(i) for i in range(n)))
write("plain", None)
write("ones", lambda i: 1)
write("half", lambda i: 1 if i % 2 == 0 else 0)
write("zeros", lambda i: 0)
EOF

ARGS="-b 2 -t 32 -x 6 -v 3 -m 2 -s 0 -n 3 -l 3e-3 --seed 5"
./train_gpt -e d1 -b 2 -t 32 -x 4 -i "$work/plain.bin" -j "$work/plain.bin" -v 0 -s 0 -o "$work/base" > "$work/base.out" 2>&1 ||
    fail "base model" "$(tail -2 "$work/base.out")"
BASE="$work/base/model_00000004.bin"
cp "$BASE" "$work/base_copy.bin"

# 1. loss masks
./train_gpt -e "$BASE" $ARGS -i "$work/plain.bin" -j "$work/plain.bin" -o "$work/m_plain" > "$work/m_plain.out" 2>&1
./train_gpt -e "$BASE" $ARGS -i "$work/ones.bin" -j "$work/ones.bin" -o "$work/m_ones" > "$work/m_ones.out" 2>&1
if cmp -s "$work/m_plain/main.log" "$work/m_ones/main.log" && cmp -s "$work/m_plain/model_00000006.bin" "$work/m_ones/model_00000006.bin"; then
    pass "a version-2 shard whose mask is all ones trains bitwise like the version-1 shard"
else
    fail "mask of all ones" "$(diff "$work/m_plain/main.log" "$work/m_ones/main.log" | head -3 | tr '\n' ' ')"
fi
./train_gpt -e "$BASE" $ARGS -i "$work/half.bin" -j "$work/half.bin" -o "$work/m_half" > "$work/m_half.out" 2>&1
l_plain=$(grep -m1 "^s:0 trl" "$work/m_plain/main.log"); l_half=$(grep -m1 "^s:0 trl" "$work/m_half/main.log")
if [ -n "$l_half" ] && [ "$l_plain" != "$l_half" ]; then
    pass "a mask on every other target changes the loss ($l_plain vs $l_half)"
else
    fail "partial mask" "same first loss or none: '$l_plain' '$l_half'"
fi
./train_gpt -e "$BASE" $ARGS -x 2 -i "$work/zeros.bin" -j "$work/plain.bin" -v 0 > "$work/m_zeros.out" 2>&1
if [ "$(grep -c "update skipped: no target in the step has a nonzero loss weight" "$work/m_zeros.out")" = 2 ]; then
    pass "an all-masked step updates nothing and says why"
else
    fail "all-masked step" "$(grep -m2 step "$work/m_zeros.out" | tr '\n' ' ')"
fi

# 2. the PEFT methods: train, checkpoint as .peft, leave the base alone, resume exactly
for m in lora bitfit adapter prompt; do
    extra=""
    [ $m = lora ] && extra="--lora-rank 3 --lora-targets qkv,fc"
    [ $m = bitfit ] && extra="--bitfit-ln"
    [ $m = adapter ] && extra="--adapter-size 7"
    [ $m = prompt ] && extra="--prompt-len 5"
    run() { ./train_gpt -e "$BASE" $ARGS --peft $m $extra -i "$work/half.bin" -j "$work/half.bin" "$@"; }
    run -o "$work/p_$m" > "$work/p_$m.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && [ -f "$work/p_$m/model_00000006.peft" ] && ! ls "$work/p_$m" | grep -q 'model_.*\.bin' &&
       grep -q "^peft: $m" "$work/p_$m.out" && grep -q "trainable parameters" "$work/p_$m.out"; then
        pass "$m: trains and checkpoints an adapter file, no model file ($(grep -o '[0-9]* trainable parameters = [0-9.]*%' "$work/p_$m.out"))"
    else
        fail "$m" "rc=$rc: $(tail -2 "$work/p_$m.out" | tr '\n' ' ')"
    fi
    first=$(grep -m1 "^s:0 trl" "$work/p_$m/main.log"); last=$(grep "trl" "$work/p_$m/main.log" | tail -1)
    if [ "${first#*trl:}" != "${last#*trl:}" ]; then pass "$m: the loss moves ($first -> $last)"; else fail "$m: loss" "did not change: $first"; fi
    LLMC_TEST_KILL_AT_STEP=4 run -o "$work/k_$m" > /dev/null 2>&1
    run -o "$work/k_$m" -y 1 > "$work/k_$m.out" 2>&1
    if grep -q "resume: from step 3" "$work/k_$m.out" && cmp -s "$work/p_$m/main.log" "$work/k_$m/main.log" &&
       cmp -s "$work/p_$m/model_00000006.peft" "$work/k_$m/model_00000006.peft" &&
       cmp -s "$work/p_$m/state_00000006_00000.bin" "$work/k_$m/state_00000006_00000.bin"; then
        pass "$m: killed at step 4 and resumed: bitwise the uninterrupted run"
    else
        fail "$m: resume" "$(grep -m1 -E 'resume|error' "$work/k_$m.out"); $(diff "$work/p_$m/main.log" "$work/k_$m/main.log" | head -2 | tr '\n' ' ')"
    fi
done
if cmp -s "$BASE" "$work/base_copy.bin"; then pass "the base checkpoint is untouched"; else fail "base" "changed"; fi
if [ "$(stat -c %s "$work/p_lora/model_00000006.peft")" -lt "$(( $(stat -c %s "$BASE") / 10 ))" ]; then
    pass "the LoRA adapter file is under a tenth of the model file ($(stat -c %s "$work/p_lora/model_00000006.peft") bytes)"
else
    fail "adapter size" "$(stat -c %s "$work/p_lora/model_00000006.peft") bytes"
fi

# 3. --merge-out, and --eval with --peft-init: the same val loss both ways
evalloss() { grep -o "val loss [0-9.]*" "$1" | head -1 | awk '{print $3}'; }
for m in lora bitfit; do
    extra=""
    [ $m = lora ] && extra="--lora-rank 3 --lora-targets qkv,fc"
    [ $m = bitfit ] && extra="--bitfit-ln"
    ./train_gpt -e "$BASE" --peft $m $extra --peft-init "$work/p_$m/model_00000006.peft" --merge-out "$work/merged_$m.bin" \
        --eval -b 2 -t 32 -m 4 -j "$work/half.bin" > "$work/e_$m.out" 2>&1
    ./train_gpt -e "$work/merged_$m.bin" --eval -b 2 -t 32 -m 4 -j "$work/half.bin" > "$work/em_$m.out" 2>&1
    a=$(evalloss "$work/e_$m.out"); b=$(evalloss "$work/em_$m.out"); c=$(evalloss "$work/m_half.out")
    if [ -n "$a" ] && [ -n "$b" ] && awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * a) }'; then
        pass "$m: the merged checkpoint's val loss equals base + adapter ($a vs $b)"
    else
        fail "$m: merge" "base+adapter '$a', merged '$b': $(tail -1 "$work/e_$m.out")"
    fi
done
b0=$(./train_gpt -e "$BASE" --eval -b 2 -t 32 -m 4 -j "$work/half.bin" 2>&1 | grep -o "val loss [0-9.]*" | awk '{print $3}')
a=$(evalloss "$work/e_lora.out")
if [ -n "$b0" ] && [ "$a" != "$b0" ]; then pass "--eval --peft-init evaluates the adapter, not the bare base ($a vs $b0)"; else fail "--peft-init eval" "'$a' vs '$b0'"; fi
./train_gpt -e "$BASE" --peft-init "$work/p_adapter/model_00000006.peft" --eval -b 2 -t 32 -m 4 -j "$work/half.bin" > "$work/e_ad.out" 2>&1
if grep -q "^peft: adapter" "$work/e_ad.out" && [ -n "$(evalloss "$work/e_ad.out")" ]; then
    pass "--peft-init alone takes the method from the file"
else
    fail "--peft-init alone" "$(tail -1 "$work/e_ad.out")"
fi

# 4. errors: one clear message, non-zero exit
expect_error() {  # name, pattern, command...
    local name=$1 pattern=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$pattern"; then pass "refuses $name ($(echo "$out" | grep -m1 error | head -c 150))"
    else fail "refuses $name" "rc=$rc: $(echo "$out" | tail -1 | head -c 200)"; fi
}
./train_gpt -e d1 -b 2 -t 32 -x 1 -i "$work/plain.bin" -v 0 -s 0 --seed 9 -o "$work/other" > /dev/null 2>&1
expect_error "an adapter on another base" "another base model" \
    ./train_gpt -e "$work/other/model_00000001.bin" --peft-init "$work/p_lora/model_00000006.peft" --eval -b 2 -t 32 -m 1 -j "$work/half.bin"
expect_error "an adapter whose settings differ from the flags" "differs from the flags" \
    ./train_gpt -e "$BASE" --peft lora --lora-rank 4 --peft-init "$work/p_lora/model_00000006.peft" --eval -b 2 -t 32 -m 1 -j "$work/half.bin"
cp "$work/p_lora/model_00000006.peft" "$work/corrupt.peft"
printf '\x01' | dd of="$work/corrupt.peft" bs=1 seek=2000 conv=notrunc 2>/dev/null
expect_error "a corrupt adapter file" "checksum mismatch" \
    ./train_gpt -e "$BASE" --peft-init "$work/corrupt.peft" --eval -b 2 -t 32 -m 1 -j "$work/half.bin"
head -c 3000 "$work/p_lora/model_00000006.peft" > "$work/short.peft"
expect_error "a truncated adapter file" "truncated" \
    ./train_gpt -e "$BASE" --peft-init "$work/short.peft" --eval -b 2 -t 32 -m 1 -j "$work/half.bin"
expect_error "a model file as --peft-init" "is a model checkpoint, not a PEFT adapter" \
    ./train_gpt -e "$BASE" --peft-init "$BASE" --eval -b 2 -t 32 -m 1 -j "$work/half.bin"
expect_error "--merge-out for adapters" "cannot be merged" \
    ./train_gpt -e "$BASE" --peft adapter --merge-out "$work/x.bin" -x 1 -b 2 -t 32 -i "$work/half.bin" -v 0 -s 0
expect_error "--merge-out without PEFT" "this run has none" \
    ./train_gpt -e "$BASE" --merge-out "$work/x.bin" -x 1 -b 2 -t 32 -i "$work/half.bin" -v 0 -s 0
expect_error "a soft prompt that does not fit maxT" "exceed the model's maxT" \
    ./train_gpt -e "$BASE" --peft prompt --prompt-len 1000 -x 1 -b 2 -t 32 -i "$work/half.bin" -v 0 -s 0
expect_error "an unknown method" "unknown method" \
    ./train_gpt -e "$BASE" --peft qlora -x 1 -b 2 -t 32 -i "$work/half.bin" -v 0 -s 0
expect_error "an unknown LoRA target" "unknown target 'mlp'" \
    ./train_gpt -e "$BASE" --peft lora --lora-targets qkv,mlp -x 1 -b 2 -t 32 -i "$work/half.bin" -v 0 -s 0
expect_error "resuming a LoRA run as adapters" "differs from the flags" \
    ./train_gpt -e "$BASE" $ARGS --peft adapter -i "$work/half.bin" -j "$work/half.bin" -o "$work/p_lora" -y 1

# 5. MPI: two processes (ZeRO-0 and ZeRO-1) see what one does with the batch split
if command -v mpirun > /dev/null; then
    MPIRUN="mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2"
    one() { OMP_NUM_THREADS=1 ./train_gpt -e "$BASE" -t 32 -x 4 -v 0 -s 0 -l 3e-3 --peft lora --lora-rank 3 -i "$work/half.bin" --no-shuffle "$@"; }
    one -b 4 > "$work/mpi1.out" 2>&1
    for z in 0 1; do
        $MPIRUN env OMP_NUM_THREADS=1 ./train_gpt -e "$BASE" -t 32 -x 4 -v 0 -s 0 -l 3e-3 --peft lora --lora-rank 3 \
            -i "$work/half.bin" --no-shuffle -b 2 -z $z > "$work/mpi2_$z.out" 2>&1
        l1=$(grep "step    4/4" "$work/mpi1.out" | grep -o "loss [0-9.]*" | awk '{print $2}')
        l2=$(grep "step    4/4" "$work/mpi2_$z.out" | grep -o "loss [0-9.]*" | awk '{print $2}')
        if [ -n "$l1" ] && [ -n "$l2" ] && awk -v a="$l1" -v b="$l2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * a) }'; then
            pass "LoRA on 2 MPI processes (ZeRO-$z) = 1 process with the whole batch (step-4 loss $l1 vs $l2)"
        else
            fail "LoRA on 2 MPI processes (ZeRO-$z)" "'$l1' vs '$l2': $(tail -1 "$work/mpi2_$z.out")"
        fi
    done
fi

[ $fails -eq 0 ]
