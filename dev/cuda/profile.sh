#!/usr/bin/env bash
# The emulated memory profile of one training step (dev/cuda/PROFILE.md):
#   builds dev/cuda/profile_step.cu against the CUDA emulation with its profiler
#   (dev/cuda/emu/include/emu_profile.h), runs one step of a GPT-2 124M layer (C 768, NH 12) with
#   each attention kernel at L and L + 1 layers, and writes
#   build/profile/step_<precision>_<attention>_L<layers>.csv (a row per kernel launch, and .json
#   with the shape). dev/cuda/predict_step.py reads them.
# usage: bash dev/cuda/profile.sh [B T L Vp]   (default 1 256 1 2048: about 40 minutes in all on 2
#        cores; the report scales to GPT-2 124M by formulas)
# This is not a GPU measurement: it counts what each thread asks of memory.
set -eu
cd "$(dirname "$0")/../.."
CXX=${CXX:-g++}
OUT=build/profile
mkdir -p "$OUT"
python3 dev/cuda/emu/emu_transform.py build/emu/src llmc/*.h train_gpt.c train_gpt.cu dev/cuda/profile_step.cu
# as dev/cuda/emu/run_emu_tests.sh builds test_profile: ThreadSanitizer's instrumentation without
# its runtime, no vectorization, no scalar replacement of aggregates
FLAGS="-std=c++17 -O1 -fno-tree-vectorize -fno-tree-sra -g -fopenmp -Drestrict=__restrict__ -DLLMC_EMU_CUDACC -DEMU_PROFILE \
 -Idev/cuda/emu/include -Ibuild/emu/src -w -fsanitize=thread"
for prec in bf16 fp32; do
    extra=""
    [ $prec = fp32 ] && extra="-DENABLE_FP32"
    $CXX $FLAGS $extra -x c++ -c build/emu/src/dev/cuda/profile_step.cu -o "$OUT/profile_step_$prec.o"
    $CXX -fopenmp "$OUT/profile_step_$prec.o" -o "$OUT/profile_step_$prec" -lm
done
# bf16 with both of our attention kernels, fp32 with the scalar one (tc is bf16 only); each at L
# and L + 1 layers: the difference is one layer, the rest what a model has once
B=${1:-1} T=${2:-256} L=${3:-1} VP=${4:-2048}
for run in bf16:scalar bf16:tc fp32:scalar; do
    prec=${run%:*} att=${run#*:}
    for l in $L $((L + 1)); do
        LLMC_ATTENTION=$att "$OUT/profile_step_$prec" "$OUT/step_${prec}_${att}_L$l.csv" $B $T $l $VP
    done
done
