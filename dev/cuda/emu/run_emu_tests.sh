#!/usr/bin/env bash
# Runs our CUDA code on the CPU, through the emulation in dev/cuda/emu (README.md there):
#   1. the emulation's self-test: correct kernels give the right answer, and a race, a lane that
#      returns before a shuffle and a half-warp at __syncthreads are each caught
#   2. the stubs of cuBLASLt, WMMA and NCCL against naive loops
#   3. every kernel harness of dev/cuda (checks only, bf16 and fp32) against the C reference
#   4. test_gpt_cu (bf16 with our CUDA-core and tensor-core attention, and fp32) against the
#      PyTorch references in build/cuda_refs and the CPU model
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
HARNESSES="adamw attention crossentropy encoder gelu layernorm matmul"
jobs="$OUT/jobs"
: > "$jobs"
echo "test_emu|$OUT/src/dev/cuda/emu/test_emu.cpp|" >> "$jobs"
echo "test_stubs|$OUT/src/dev/cuda/emu/test_stubs.cpp|" >> "$jobs"
for h in $HARNESSES; do
    echo "${h}_check|$OUT/src/dev/cuda/${h}_check.cu|" >> "$jobs"
    echo "${h}_check_fp32|$OUT/src/dev/cuda/${h}_check.cu|-DENABLE_FP32" >> "$jobs"
done
echo "test_gpt_cu|$OUT/src/test_gpt.cu|" >> "$jobs"
echo "test_gpt_cu_fp32|$OUT/src/test_gpt.cu|-DENABLE_FP32" >> "$jobs"
build_one() {
    IFS='|' read -r name src extra <<< "$1"
    if $CXX $FLAGS $extra -x c++ "$src" -o "$OUT/bin/$name" -lm > "$OUT/bin/$name.log" 2>&1; then
        echo "PASS: emulation build of $name"
    else
        echo "FAIL: emulation build of $name: $(grep -m1 error "$OUT/bin/$name.log" | head -c 300)"
        head -20 "$OUT/bin/$name.log" | sed 's/^/    /'
        rm -f "$OUT/bin/$name"
    fi
}
export -f build_one
export CXX FLAGS OUT
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
    for bug in race early-return divergent; do
        msg=$("$OUT/bin/test_emu" $bug 2>&1); rc=$?
        if [ $rc -ne 0 ]; then pass "emulation catches the '$bug' bug ($(echo "$msg" | tail -1 | head -c 160))"
        else fail "emulation catches the '$bug' bug" "the buggy kernel ran to the right answer"; fi
    done
fi
# 2. the library stubs
run test_stubs "$OUT/bin/test_stubs"
# 3. the kernel harnesses: checks only (timings mean nothing here)
for h in $HARNESSES; do
    run "${h}_check" env HARNESS_CHECK_ONLY=1 "$OUT/bin/${h}_check"
    run "${h}_check_fp32" env HARNESS_CHECK_ONLY=1 "$OUT/bin/${h}_check_fp32"
done
# 4. the whole GPU model against PyTorch and the CPU model
if [ ! -f build/cuda_refs/hs64_debug_state.bin ]; then
    bash dev/cuda/make_refs.sh > "$OUT/make_refs.out" 2>&1 || fail "dev/cuda/make_refs.sh" "$(tail -2 "$OUT/make_refs.out")"
fi
# which attention on which reference: head size 24 (awkward) has no tensor-core path; T=100
# (hs64) and T=70 (hs128) span several tiles of both; the scalar kernels' many shuffles make them
# the slowest to emulate, so they run on the smaller references (the harness covers T=200)
for run_spec in awkward:scalar awkward:fp32 hs64:tc hs64:fp32 hs128:scalar hs128:tc hs128:fp32; do
    ref=${run_spec%:*}; kind=${run_spec#*:}
    [ -f build/cuda_refs/${ref}_model.bin ] || { fail "test_gpt_cu $ref under emulation" "no build/cuda_refs/${ref}_model.bin"; continue; }
    echo "=== test_gpt_cu under emulation: $ref, $kind"
    if [ "$kind" = fp32 ]; then run test_gpt_cu_fp32 "$OUT/bin/test_gpt_cu_fp32" build/cuda_refs/$ref
    else run test_gpt_cu env LLMC_ATTENTION=$kind "$OUT/bin/test_gpt_cu" build/cuda_refs/$ref; fi
done
echo "emulation tests done in $(( $(date +%s) - start ))s"
[ $fails -eq 0 ]
