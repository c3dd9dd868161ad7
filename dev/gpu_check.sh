#!/usr/bin/env bash
# The one script to run on a lent GPU (about 7 minutes). From the repository root:
#     bash dev/gpu_check.sh            (output also goes to $OUT/gpu_check.log when OUT is set)
# 1. builds train_gpt_cu, test_gpt_cu (bf16 and fp32) and every dev/cuda harness for this GPU's
#    architecture (sm_90 on Hopper), unless nvcc is missing: then it uses the binaries already in
#    build/gpu_check/ (prepare them elsewhere with `bash dev/gpu_check.sh --build-only`)
# 2. test_gpt_cu in BF16 and FP32 against the PyTorch references in build/cuda_refs/ (made by
#    dev/cuda/make_refs.sh here, or earlier on a machine with PyTorch) and the CPU reference
# 3. the card's ceilings (dev/cuda/ceilings -> dev/cuda/CEILINGS.md), then every kernel
#    harness: bf16 checks + timings against those ceilings, fp32 checks
# 4. d12 (GPT-2 124M) training at T=1024 with the largest B of 64, 32, 16 that fits:
#    tokens/s, ms/step, MFU, device memory
# 5. the PyTorch baseline (dev/cuda/bench_torch.py: bf16, torch.compile, SDPA, fused AdamW) at
#    the same B and T, if this machine's python has torch with CUDA
# 6. a compact table
set -u
cd "$(dirname "$0")/.."
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; LOG="$OUT/gpu_check.log"; fi
exec > >(tee "$LOG") 2>&1
T0=$(date +%s)
elapsed() { echo $(( $(date +%s) - T0 )); }
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
BIN=build/gpu_check
mkdir -p "$BIN"
declare -A RESULT

echo "=== gpu_check $(date -u) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "(no nvidia-smi)"

# ---------------------------------------------------------------- 1. build
if [ -x "$NVCC" ]; then
    CC_MAJOR=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    ARCH=${GPU_ARCH:-sm_${CC_MAJOR:-90}}
    echo "=== build for $ARCH ($NVCC)"
    FLAGS="-O3 -lineinfo -std=c++17 -I. -Drestrict=__restrict__ -diag-suppress 1675,550 -Xcompiler -fopenmp,-Wno-unknown-pragmas -arch=$ARCH"
    LIBS="-lcublasLt -lm"
    pids=()
    $NVCC $FLAGS -o $BIN/train_gpt_cu train_gpt.cu $LIBS > $BIN/build_train.log 2>&1 & pids+=($!)
    $NVCC $FLAGS -o $BIN/test_gpt_cu test_gpt.cu $LIBS > $BIN/build_test.log 2>&1 & pids+=($!)
    $NVCC $FLAGS -DENABLE_FP32 -o $BIN/test_gpt_cu_fp32 test_gpt.cu $LIBS > $BIN/build_test32.log 2>&1 & pids+=($!)
    $NVCC $FLAGS -o $BIN/ceilings dev/cuda/ceilings.cu $LIBS > $BIN/build_ceilings.log 2>&1 & pids+=($!)
    for f in dev/cuda/*_check.cu; do
        n=$(basename "$f" .cu)
        $NVCC $FLAGS -o $BIN/$n "$f" $LIBS > $BIN/build_$n.log 2>&1 & pids+=($!)
        $NVCC $FLAGS -DENABLE_FP32 -o $BIN/${n}_fp32 "$f" $LIBS > $BIN/build_${n}_fp32.log 2>&1 & pids+=($!)
    done
    fails=0
    for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
    if [ "$fails" -ne 0 ]; then echo "FAIL: $fails builds failed:"; grep -l -i error $BIN/build_*.log | while read -r l; do echo "--- $l"; head -20 "$l"; done; fi
    RESULT[build]="$fails failed"
    echo "build done at $(elapsed)s"
else
    echo "=== no nvcc at $NVCC: using the binaries in $BIN/"
    RESULT[build]="prebuilt"
fi
if [ "${1:-}" = "--build-only" ]; then exit 0; fi

# ---------------------------------------------------------------- 2. test_gpt_cu
PY=""
for p in .venv/bin/python python3 python; do
    if command -v $p > /dev/null 2>&1 && $p -c "import torch" > /dev/null 2>&1; then PY=$p; break; fi
done
if [ ! -f build/cuda_refs/hs64_debug_state.bin ]; then
    if [ -n "$PY" ]; then PYTHON=$PY bash dev/cuda/make_refs.sh > /dev/null; else echo "no PyTorch and no build/cuda_refs: test_gpt_cu cannot run"; fi
fi
for prec in bf16 bf16_tc fp32; do
    exe=$BIN/test_gpt_cu; [ $prec = fp32 ] && exe=$BIN/test_gpt_cu_fp32
    att=scalar; [ $prec = bf16_tc ] && att=tc   # the tensor-core attention (head sizes 64, 128)
    pass=0; fail=0
    for ref in awkward hs64 hs128; do
        [ -f build/cuda_refs/${ref}_model.bin ] || continue
        echo "=== test_gpt_cu ($prec) $ref"
        out=$(LLMC_ATTENTION=$att timeout 120 $exe build/cuda_refs/$ref 2>&1); rc=$?
        echo "$out"
        pass=$((pass + $(echo "$out" | grep -c '^PASS'))); f=$(echo "$out" | grep -c '^FAIL')
        [ $rc -ne 0 ] && [ $f -eq 0 ] && f=1
        fail=$((fail + f))
    done
    RESULT[test_$prec]="$pass passed, $fail failed"
done
echo "tests done at $(elapsed)s"

# ---------------------------------------------------------------- 3. kernel harnesses
# the card's measured ceilings first (dev/cuda/CEILINGS.md), which the harnesses print against
echo "=== ceilings"
timeout 60 $BIN/ceilings dev/cuda/CEILINGS.md && cat dev/cuda/CEILINGS.md
if [ -n "${OUT:-}" ] && [ -f dev/cuda/CEILINGS.md ]; then cp dev/cuda/CEILINGS.md "$OUT/"; fi
hpass=0; hfail=0; ATT=""
for f in dev/cuda/*_check.cu; do
    n=$(basename "$f" .cu)
    for v in "" _fp32; do
        echo "=== $n$v"
        if [ "$v" = _fp32 ]; then out=$(HARNESS_CHECK_ONLY=1 timeout 120 $BIN/$n$v 2>&1); rc=$?
        else out=$(timeout 120 $BIN/$n$v 2>&1); rc=$?; fi
        echo "$out"
        if [ "$n$v" = attention_check ]; then ATT=$(echo "$out" | grep "attention fwd+bwd .* B=8 T=1024 NH=12" | sed 's/^ *attention fwd+bwd //' | tr '\n' ';'); fi
        hpass=$((hpass + $(echo "$out" | grep -c '^PASS'))); f2=$(echo "$out" | grep -c '^FAIL')
        [ $rc -ne 0 ] && [ $f2 -eq 0 ] && f2=1
        hfail=$((hfail + f2))
    done
done
RESULT[harness]="$hpass passed, $hfail failed"
echo "harnesses done at $(elapsed)s"

# ---------------------------------------------------------------- 4. d12 training benchmark
DATA=dev/data/tinyshakespeare/tiny_shakespeare_train.bin
if [ ! -f $DATA ] && [ -n "$PY" ]; then $PY dev/data/tinyshakespeare.py > /dev/null 2>&1; fi
TRAIN_B=""; TRAIN_LINE=""
for B in 64 32 16; do
    echo "=== train_gpt_cu d12 B=$B T=1024"
    out=$(timeout 150 $BIN/train_gpt_cu -e d12 -b $B -t 1024 -x 12 -v 0 -s 0 -l 3e-4 -i $DATA -j $DATA 2>&1); rc=$?
    echo "$out" | grep -v "^step .*ETA" | tail -8
    echo "$out" | grep "^step" | tail -3
    if [ $rc -eq 0 ] && echo "$out" | grep -q "average step"; then
        TRAIN_B=$B; TRAIN_LINE=$(echo "$out" | grep "average step" | tail -1); break
    fi
    echo "(B=$B did not run: exit $rc; trying a smaller B)"
done
TRAIN_TC=""; TRAIN_TC_ALL=""
if [ -n "$TRAIN_B" ]; then
    echo "=== train_gpt_cu d12 B=$TRAIN_B with --attention tc (tensor-core attention)"
    out=$(timeout 150 $BIN/train_gpt_cu --attention tc -e d12 -b $TRAIN_B -t 1024 -x 12 -v 0 -s 0 -l 3e-4 -i $DATA -j $DATA 2>&1)
    echo "$out" | grep "^step" | tail -3; echo "$out" | grep -E "error" | head -3
    TRAIN_TC=$(echo "$out" | grep "average step" | tail -1)
    echo "$TRAIN_TC"
    echo "=== train_gpt_cu d12 B=$TRAIN_B with --attention tc --gelu-fusion 1"
    out=$(timeout 150 $BIN/train_gpt_cu --attention tc --gelu-fusion 1 -e d12 -b $TRAIN_B -t 1024 -x 12 -v 0 -s 0 -l 3e-4 -i $DATA -j $DATA 2>&1)
    echo "$out" | grep "^step" | tail -3; echo "$out" | grep -E "error" | head -3
    TRAIN_TC_ALL=$(echo "$out" | grep "average step" | tail -1)
    echo "$TRAIN_TC_ALL"
    echo "=== train_gpt_cu d12 B=$TRAIN_B with -r 1 (recompute: memory option; speed cost)"
    timeout 150 $BIN/train_gpt_cu --attention tc -r 1 -e d12 -b $TRAIN_B -t 1024 -x 6 -v 0 -s 0 -l 3e-4 -i $DATA -j $DATA 2>&1 | grep -E "average step|error|memory"
fi
echo "training benchmark done at $(elapsed)s"

# ---------------------------------------------------------------- 5. PyTorch baseline
TORCH_LINE="skipped (no python with torch + CUDA)"
if [ -n "$PY" ] && [ -n "$TRAIN_B" ] && $PY -c "import torch; assert torch.cuda.is_available()" > /dev/null 2>&1; then
    echo "=== PyTorch baseline B=$TRAIN_B T=1024"
    TORCH_LINE=$(timeout 240 $PY dev/cuda/bench_torch.py --B $TRAIN_B --T 1024 --steps 15 2>&1 | tail -1)
    echo "$TORCH_LINE"
fi

# ---------------------------------------------------------------- 6. table
ours_tok=0
for l in "$TRAIN_LINE" "$TRAIN_TC" "$TRAIN_TC_ALL"; do
    t=$(echo "$l" | sed -n 's/.* \([0-9]*\) tok\/s.*/\1/p')
    if [ -n "$t" ] && [ "$t" -gt "$ours_tok" ]; then ours_tok=$t; fi
done
torch_tok=$(echo "$TORCH_LINE" | sed -n 's/.* tok\/s \([0-9]*\) .*/\1/p')
ratio="n/a"
if [ "$ours_tok" -gt 0 ] && [ -n "$torch_tok" ] && [ "$torch_tok" -gt 0 ]; then ratio=$(awk "BEGIN{printf \"%.2fx\", $ours_tok/$torch_tok}"); fi
echo
echo "================ gpu_check summary ($(elapsed)s) ================"
printf "%-22s %s\n" "GPU" "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
printf "%-22s %s\n" "build" "${RESULT[build]}"
printf "%-22s %s\n" "test_gpt_cu bf16" "${RESULT[test_bf16]:-not run}"
printf "%-22s %s\n" "test_gpt_cu bf16 tc" "${RESULT[test_bf16_tc]:-not run}"
printf "%-22s %s\n" "test_gpt_cu fp32" "${RESULT[test_fp32]:-not run}"
printf "%-22s %s\n" "ceilings" "$(grep -E '=' dev/cuda/CEILINGS.md 2>/dev/null | tr -s ' \n' ' ')"
printf "%-22s %s\n" "kernel harnesses" "${RESULT[harness]}"
printf "%-22s %s\n" "attention d12 shape" "${ATT:-n/a}"
printf "%-22s %s\n" "ours d12 B=${TRAIN_B:-?}" "${TRAIN_LINE:-did not run}"
printf "%-22s %s\n" "  + tc attention" "${TRAIN_TC:-did not run}"
printf "%-22s %s\n" "  + tc + GELU fusion" "${TRAIN_TC_ALL:-did not run}"
printf "%-22s %s\n" "PyTorch d12" "$TORCH_LINE"
printf "%-22s %s\n" "ours (best) / PyTorch" "$ratio tokens/s"
