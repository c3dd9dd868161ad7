#!/usr/bin/env bash
# CI without a GPU: every .cu file in the repository compiles and links for sm_80 and sm_90,
# in bf16 and in fp32; train_gpt.cu, test_gpt.cu and the attention harness also with cuDNN's
# attention (USE_CUDNN=1: needs cuDNN's frontend headers, fetched by get_cudnn_frontend.sh).
# Prints PASS:/FAIL: lines. Without nvcc it says so and checks nothing (cuda.mk only
# registers this test when nvcc exists). Builds go to a temporary directory, two at a time.
set -u
cd "$(dirname "$0")/../.."
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
if [ ! -x "$NVCC" ]; then
    echo "check_compile: skipped: no nvcc at $NVCC (set NVCC=...)"
    exit 0
fi
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ARCHS="-gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90"
# -O1: this checks that the code compiles and links; optimization level does not change that
FLAGS="-O1 -std=c++17 -I. -Drestrict=__restrict__ -diag-suppress 1675,550,177 -Xcompiler -fopenmp,-Wno-unknown-pragmas"
LIBS="-lcublasLt -lnccl -lm"
# the trainer as it is built for several GPUs (MPI + NCCL), when OpenMPI is installed
if command -v mpicc > /dev/null 2>&1; then
    MPI_FLAGS="-DUSE_MPI $(mpicc -showme:compile)"
    MPI_LIBS="$(mpicc -showme:link)"
fi

# cuDNN's C++ frontend headers (from PyPI, into build/): a failure to fetch them is a FAIL of
# the cuDNN builds, not a silent skip
CUDNN_FE=${CUDNN_FRONTEND_PATH:-build/cudnn_frontend/include}
if [ ! -f "$CUDNN_FE/cudnn_frontend.h" ]; then
    bash dev/cuda/get_cudnn_frontend.sh || echo "FAIL: cuDNN frontend headers: dev/cuda/get_cudnn_frontend.sh failed"
fi

# cuDNN's attention is host C++ in its own translation unit (llmc/attention_cudnn.h says why):
# compiled once here, linked into each cuDNN build
CUDNN_OBJ="$tmp/attention_cudnn.o"
if $NVCC -O1 -std=c++17 -isystem "$CUDNN_FE" -c -o "$CUDNN_OBJ" llmc/attention_cudnn.cpp > "$tmp/attention_cudnn.log" 2>&1; then
    echo "PASS: compile llmc/attention_cudnn.cpp (host C++, cuDNN frontend)"
else
    echo "FAIL: compile llmc/attention_cudnn.cpp: $(grep -m1 error "$tmp/attention_cudnn.log" | head -c 300)"
fi

# one line per build: name|extra flags|extra libs|file
jobs_file="$tmp/jobs"
: > "$jobs_file"
# CHECK_COMPILE_FILES="a.cu b.cu" checks only those (a quick look at one change)
files=${CHECK_COMPILE_FILES:-$(git ls-files --cached --others --exclude-standard '*.cu' 2>/dev/null || find . -name '*.cu' -not -path './build/*')}
for f in $files; do
    [ -f "$f" ] || continue
    base=$(echo "$f" | tr '/.' '__')
    echo "$f bf16|||$f|$base.bf16" >> "$jobs_file"
    echo "$f fp32|-DENABLE_FP32||$f|$base.fp32" >> "$jobs_file"
    case "$f" in
        train_gpt.cu|test_gpt.cu|dev/cuda/attention_check.cu)
            echo "$f bf16 cuDNN|-DENABLE_CUDNN|$CUDNN_OBJ -lcudnn -lnvrtc|$f|$base.cudnn" >> "$jobs_file" ;;
    esac
    if [ "$f" = "train_gpt.cu" ] && [ -n "${MPI_FLAGS:-}" ]; then
        echo "$f bf16 MPI+NCCL|$MPI_FLAGS|$MPI_LIBS|$f|$base.mpi" >> "$jobs_file"
    fi
done

build_one() {
    IFS='|' read -r name extra extralibs file out <<< "$1"
    log="$tmp/$out.log"
    if $NVCC $FLAGS $ARCHS $extra -o "$tmp/$out" "$file" $LIBS $extralibs > "$log" 2>&1; then
        echo "PASS: compile+link $name (sm_80, sm_90)"
    else
        why=$(grep -m1 -E "error" "$log" | head -c 300)
        echo "FAIL: compile+link $name (sm_80, sm_90): ${why:-see nvcc output}"
        sed 's/^/    /' "$log" | head -20
    fi
}
export -f build_one
export NVCC FLAGS ARCHS LIBS tmp
start=$(date +%s)
tr '\n' '\0' < "$jobs_file" | xargs -0 -P "$JOBS" -I{} bash -c 'build_one "$@"' _ {}
echo "check_compile: $(wc -l < "$jobs_file") builds in $(( $(date +%s) - start ))s"

# Without a GPU, the trainer and the harnesses must say so plainly (llmc/cuda_common.h), not
# "CUDA driver version is insufficient". Only where this machine has no GPU.
if ! nvidia-smi -L > /dev/null 2>&1 && [ ! -e /dev/nvidia0 ]; then
    for b in train_gpt_cu.bf16 dev_cuda_matmul_check_cu.bf16; do
        [ -x "$tmp/$b" ] || continue
        out=$(cd "$tmp" && timeout 60 "./$b" 2>&1); rc=$?
        if [ $rc -ne 0 ] && echo "$out" | grep -q "^error: no CUDA GPU found ("; then
            echo "PASS: without a GPU, $b says: $(echo "$out" | head -1)"
        else
            echo "FAIL: without a GPU, $b should say 'no CUDA GPU found': rc=$rc: $(echo "$out" | head -3)"
        fi
    done
fi
if ! nvidia-smi -L > /dev/null 2>&1 && [ ! -e /dev/nvidia0 ]; then
    out=$(timeout 120 bash dev/gpu_check.sh 2>&1); rc=$?
    nf=$(echo "$out" | grep -c '^FAIL')
    if [ $rc -ne 0 ] && [ "$nf" -eq 1 ] && echo "$out" | grep -q "^FAIL: no CUDA GPU found (" && ! echo "$out" | grep -q "=== build"; then
        echo "PASS: without a GPU, dev/gpu_check.sh stops at once: $(echo "$out" | grep '^FAIL')"
    else
        echo "FAIL: without a GPU, dev/gpu_check.sh should stop once with 'no CUDA GPU found': rc=$rc, $nf FAIL lines: $(echo "$out" | head -5)"
    fi
fi
