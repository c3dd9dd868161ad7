#!/usr/bin/env bash
# Runs our CUDA code on the CPU, through the emulation in dev/cuda/emu (README.md there):
#   1. the emulation's self-test: correct kernels give the right answer, and a race, a lane that
#      returns before a shuffle and a half-warp at __syncthreads are each caught
#   2. the stubs of cuBLASLt, WMMA and NCCL against naive loops; the memory profiler
#      (include/emu_profile.h) on small kernels whose counts are known; NCCL across processes
#      (test_nccl.cpp: 1, 2, 3 and 5 ranks forked, bitwise against the rank-order reduction, and
#      a dead, hung or mismatched peer stopping the others with a clear error)
#   3. every kernel harness of dev/cuda (checks only, bf16 and fp32) against the C reference
#   4. test_gpt_cu (bf16 with our CUDA-core and tensor-core attention, and fp32) against the
#      PyTorch references in build/cuda_refs and the CPU model, including masked fine-tuning and
#      the four PEFT methods (JOBS runs at a time)
#   5. train_gpt_cu under mpirun, 2 and 3 emulated GPUs (test_gpus.sh): the gradient sums
#      overlapped with the backward against the same sums after it, bitwise
# Everything is built with AddressSanitizer (EMU_ASAN=0 to leave it out): device memory is host
# memory here, so a kernel reading or writing past a buffer is caught, as compute-sanitizer would.
# Prints PASS:/FAIL: lines (dev/test/run_tests.sh). This is not a GPU result: it checks what the
# code computes, not how fast, and not the hardware's memory model.
set -u
cd "$(dirname "$0")/../../.."
CXX=${CXX:-g++}
OUT=build/emu
mkdir -p "$OUT/bin"
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }

# the sources, rewritten for g++ (kernel launches, dynamic shared memory, __CUDACC__)
python3 dev/cuda/emu/emu_transform.py "$OUT/src" llmc/*.h train_gpt.c train_gpt.cu test_gpt.cu \
    dev/cuda/*.cu dev/cuda/*.h dev/test/testing.h dev/cuda/emu/*.cpp || { echo "FAIL: emu_transform.py"; exit 1; }

FLAGS="-std=c++17 -O2 -g -fopenmp -Drestrict=__restrict__ -DLLMC_EMU_CUDACC -Idev/cuda/emu/include -I$OUT/src -w"
if [ "${EMU_ASAN:-1}" = 1 ]; then FLAGS="$FLAGS -fsanitize=address -fno-omit-frame-pointer"; fi
HARNESSES="adamw attention crossentropy distill encoder gelu infer kv_cache layernorm matmul mma quant"
jobs="$OUT/jobs"
MPI_COMPILE="" MPI_LINK=""
: > "$jobs"
echo "test_emu|$OUT/src/dev/cuda/emu/test_emu.cpp|" >> "$jobs"
echo "test_stubs|$OUT/src/dev/cuda/emu/test_stubs.cpp|" >> "$jobs"
echo "test_profile|$OUT/src/dev/cuda/emu/test_profile.cpp|-DEMU_PROFILE" >> "$jobs"
echo "test_nccl|$OUT/src/dev/cuda/emu/test_nccl.cpp|" >> "$jobs"
for h in $HARNESSES; do
    echo "${h}_check|$OUT/src/dev/cuda/${h}_check.cu|" >> "$jobs"
    echo "${h}_check_fp32|$OUT/src/dev/cuda/${h}_check.cu|-DENABLE_FP32" >> "$jobs"
done
echo "test_gpt_cu|$OUT/src/test_gpt.cu|" >> "$jobs"
# the trainer itself, for several emulated GPUs under mpirun (5. below)
if command -v mpicxx > /dev/null; then
    MPI_COMPILE=$(mpicxx --showme:compile); MPI_LINK=$(mpicxx --showme:link)
    echo "train_gpt_cu|$OUT/src/train_gpt.cu|-DUSE_MPI" >> "$jobs"
fi
echo "test_gpt_cu_fp32|$OUT/src/test_gpt.cu|-DENABLE_FP32" >> "$jobs"
# The profiler's builds (include/emu_profile.h): ThreadSanitizer's instrumentation without its
# runtime (compiled with -fsanitize=thread, linked without it), no AddressSanitizer, no
# vectorization (g++ would merge a thread's scalar loads into vector ones a GPU would not make)
# and no scalar replacement of aggregates (g++ would split a 16-byte uint4 load into four 4-byte
# ones, where the GPU makes one 128-bit access)
PROFILE_FLAGS="-std=c++17 -O1 -fno-tree-vectorize -fno-tree-sra -g -fopenmp -Drestrict=__restrict__ -DLLMC_EMU_CUDACC -Idev/cuda/emu/include -I$OUT/src -w -fsanitize=thread"
build_one() {
    IFS='|' read -r name src extra <<< "$1"
    local ok=0
    case "$extra" in
        *USE_MPI*)
            $CXX $FLAGS $extra $MPI_COMPILE -x c++ "$src" -o "$OUT/bin/$name" -lm $MPI_LINK > "$OUT/bin/$name.log" 2>&1 && ok=1 ;;
        *EMU_PROFILE*)
            $CXX $PROFILE_FLAGS $extra -x c++ -c "$src" -o "$OUT/bin/$name.o" > "$OUT/bin/$name.log" 2>&1 &&
                $CXX -fopenmp "$OUT/bin/$name.o" -o "$OUT/bin/$name" -lm >> "$OUT/bin/$name.log" 2>&1 && ok=1 ;;
        *)
            $CXX $FLAGS $extra -x c++ "$src" -o "$OUT/bin/$name" -lm > "$OUT/bin/$name.log" 2>&1 && ok=1 ;;
    esac
    if [ $ok = 1 ]; then
        echo "PASS: emulation build of $name"
    else
        echo "FAIL: emulation build of $name: $(grep -m1 error "$OUT/bin/$name.log" | head -c 300)"
        head -20 "$OUT/bin/$name.log" | sed 's/^/    /'
        rm -f "$OUT/bin/$name"
    fi
}
export -f build_one
export CXX FLAGS PROFILE_FLAGS OUT MPI_COMPILE MPI_LINK
start=$(date +%s)
tr '\n' '\0' < "$jobs" | xargs -0 -P "${JOBS:-2}" -I{} bash -c 'build_one "$@"' _ {} | tee "$OUT/build.out"
fails=$((fails + $(grep -c '^FAIL' "$OUT/build.out")))
echo "emulation: $(wc -l < "$jobs") builds in $(( $(date +%s) - start ))s"

# run NAME CMD...: a program that prints PASS/FAIL lines; a crash or a non-zero exit fails
run() {
    local name=$1; shift
    [ -x "$OUT/bin/$name" ] || return 0  # its build failed (counted above)
    local log="$OUT/$name.out" rc
    "$@" > "$log" 2>&1; rc=$?
    cat "$log"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$log"; then fail "$name under emulation" "exit $rc: $(grep -m1 error "$log")"; fi
    fails=$((fails + $(grep -c '^FAIL' "$log")))
}

# 1. the emulation itself, including the bugs it must catch
run test_emu "$OUT/bin/test_emu"
if [ -x "$OUT/bin/test_emu" ]; then
    for bug in race early-return divergent stream-wait stream-reuse; do
        msg=$("$OUT/bin/test_emu" $bug 2>&1); rc=$?
        if [ $rc -ne 0 ]; then pass "emulation catches the '$bug' bug ($(echo "$msg" | tail -1 | head -c 160))"
        else fail "emulation catches the '$bug' bug" "the buggy kernel ran to the right answer"; fi
    done
fi
# 2. the library stubs, and the memory profiler on kernels whose counts are known
run test_stubs "$OUT/bin/test_stubs"
run test_profile "$OUT/bin/test_profile"
run test_nccl "$OUT/bin/test_nccl"
# 3. the kernel harnesses: checks only (timings mean nothing here)
for h in $HARNESSES; do
    run "${h}_check" env HARNESS_CHECK_ONLY=1 "$OUT/bin/${h}_check"
    run "${h}_check_fp32" env HARNESS_CHECK_ONLY=1 "$OUT/bin/${h}_check_fp32"
done
# 4. the whole GPU model against PyTorch and the CPU model: the base references, then masked
# (weighted-loss) full fine-tuning and the four PEFT methods (dev/cuda/make_refs.sh)
FT_REFS="masked peft_lora peft_lora_qf peft_bitfit peft_adapter peft_prompt dpo dpo_lora distill"
# fresh references (a new seed) every run; CUDA_REFS_KEEP=1 keeps those in build/cuda_refs
if [ "${CUDA_REFS_KEEP:-0}" != 1 ] || [ ! -f build/cuda_refs/distill_debug_state.bin ]; then
    if bash dev/cuda/make_refs.sh > "$OUT/make_refs.out" 2>&1; then pass "dev/cuda/make_refs.sh: $(head -1 "$OUT/make_refs.out")"
    else fail "dev/cuda/make_refs.sh" "$(tail -2 "$OUT/make_refs.out")"; fi
fi
# which attention on which reference: head size 24 (awkward, and the fine-tuning ones at its
# config) has no tensor-core path; T=100 (hs64) and T=70 (hs128) span several tiles of both; the
# scalar kernels' many shuffles make them the slowest to emulate, so they run on the smaller
# references (the harness covers T=200)
# hs128's tc run defers the model's stream (EMU_LAZY_STREAM=1, include/cuda_runtime.h): the
# same answers, and a host read of a result before the stream was synchronized would see stale
# memory and fail
specs="hs64:tc hs64:fp32 hs128:scalar hs128:tc-lazy hs128:fp32 awkward:scalar awkward:fp32"
# (dpo_lora in bf16 only: its fp32 twin adds nothing dpo's and peft_lora_qf's fp32 runs do not check,
# and CI's 30 minutes are near)
for ref in $FT_REFS; do
    specs="$specs $ref:scalar"
    [ "$ref" = dpo_lora ] || specs="$specs $ref:fp32"
done
# the runs are independent: JOBS at a time, each into its own log, printed in order afterwards
gpt_one() {
    local ref=${1%:*} kind=${1#*:}
    local log="$OUT/test_gpt_cu.$ref.$kind.out" bin="$OUT/bin/test_gpt_cu"
    [ "$kind" = fp32 ] && bin="$OUT/bin/test_gpt_cu_fp32"
    [ -x "$bin" ] || { rm -f "$log" "$log.rc"; return 0; }  # its build failed (counted above)
    if [ "$kind" = fp32 ]; then "$bin" "build/cuda_refs/$ref" > "$log" 2>&1
    elif [ "${kind%-lazy}" != "$kind" ]; then EMU_LAZY_STREAM=1 LLMC_ATTENTION=${kind%-lazy} "$bin" "build/cuda_refs/$ref" > "$log" 2>&1
    else LLMC_ATTENTION=$kind "$bin" "build/cuda_refs/$ref" > "$log" 2>&1; fi
    echo $? > "$log.rc"
}
export -f gpt_one
gpt_specs=""
for spec in $specs; do
    ref=${spec%:*}
    if [ -f build/cuda_refs/${ref}_model.bin ]; then gpt_specs="$gpt_specs $spec"
    else fail "test_gpt_cu $ref under emulation" "no build/cuda_refs/${ref}_model.bin"; fi
done
printf '%s\0' $gpt_specs | xargs -0 -P "${JOBS:-2}" -I{} bash -c 'gpt_one "$@"' _ {}
for spec in $gpt_specs; do
    ref=${spec%:*}; kind=${spec#*:}
    log="$OUT/test_gpt_cu.$ref.$kind.out"
    [ -f "$log.rc" ] || continue
    echo "=== test_gpt_cu under emulation: $ref, $kind"
    cat "$log"
    rc=$(cat "$log.rc")
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL' "$log"; then fail "test_gpt_cu $ref $kind under emulation" "exit $rc: $(grep -m1 error "$log")"; fi
    fails=$((fails + $(grep -c '^FAIL' "$log")))
done
# 5. several emulated GPUs: train_gpt_cu under mpirun over the emulated NCCL
if [ -x "$OUT/bin/train_gpt_cu" ]; then
    echo "=== train_gpt_cu on several emulated GPUs (dev/cuda/emu/test_gpus.sh)"
    bash dev/cuda/emu/test_gpus.sh "$OUT/bin/train_gpt_cu" > "$OUT/test_gpus.out" 2>&1; rc=$?
    cat "$OUT/test_gpus.out"
    if [ $rc -ne 0 ] && ! grep -q '^FAIL' "$OUT/test_gpus.out"; then fail "test_gpus.sh" "exit $rc"; fi
    fails=$((fails + $(grep -c '^FAIL' "$OUT/test_gpus.out")))
elif ! command -v mpicxx > /dev/null; then
    fail "several emulated GPUs" "no mpicxx (scripts/setup.sh installs libopenmpi-dev)"
fi
echo "emulation tests done in $(( $(date +%s) - start ))s"
[ $fails -eq 0 ]
