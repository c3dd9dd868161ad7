#!/usr/bin/env bash
# The one script to run on a lent GPU. From the repository root:
#     OUT=dir bash dev/gpu_check.sh     (the log also goes to dir/gpu_check.log)
# It keeps to a time budget (GPU_CHECK_BUDGET seconds, default 570): each phase gets what is
# left, and a phase that would start with too little time says SKIPPED. Phases, in order of
# what they tell us:
# 1. builds train_gpt_cu (+NCCL), test_gpt_cu (bf16, fp32), every dev/cuda harness and the
#    ceilings for this GPU's architecture; with cuDNN and its frontend headers present
#    (build/cudnn_frontend/include: carry it), the USE_CUDNN=1 trainer, test and attention harness.
#    With build/gpu_check/PREBUILT present (made by --build-only here), it uses those binaries.
# 2. test_gpt_cu against the PyTorch references in build/cuda_refs/ (carry them, or they are made
#    here with this machine's PyTorch) and the CPU model: bf16 with each attention, and fp32
#    then a GPU run killed after a checkpoint and resumed, against the uninterrupted run
# 3. the card's ceilings (dev/cuda/CEILINGS.md), then every kernel harness (bf16 checks and
#    timings, fp32 checks)
# 4. d12 (GPT-2 124M) at T=1024 with the largest B of 64, 32, 16 that fits in memory: each
#    attention, GELU fusion, recompute; one run also evaluates and samples (other shapes); with
#    several GPUs, data-parallel with the gradient sums after and overlapped with the backward
# 5. the PyTorch baseline (dev/cuda/bench_torch.py: bf16 autocast, torch.compile, SDPA, fused
#    AdamW) at the same B and T and the same peak for MFU; then, with ncu and $OUT, each kernel's
#    duration in two d12 steps ($OUT/ncu_kernels.csv) and the attention kernels' detailed
#    sections and memory tables, bank conflicts included ($OUT/ncu_attention.csv)
# 6. a compact table; the exit status is 1 when anything failed
# A follow-up run (device time is short) can narrow it: GPU_CHECK_VARIANTS (names of phase 2's
# variants: bf16 bf16_tc fp32 bf16_cudnn), GPU_CHECK_HARNESSES (binaries of phase 3), and
# GPU_CHECK_SKIP, any of: resume ceilings scalar cudnn_eval recompute multi torch ncu ncu_attention
# (skipping scalar, the d12 runs take GPU_CHECK_B, default 64; skipping ceilings, the harnesses
# read the CEILINGS.md there is); GPU_CHECK_KEEP_TESTS and GPU_CHECK_KEEP_HARNESSES, the seconds
# of the budget the tests and the harnesses leave to what follows them.
# On the device tool: OUT=$OUT GPU_CHECK_COMMIT=<sha> bash dev/gpu_check.sh, carrying
# build/cuda_refs, dev/data/tinyshakespeare and build/cudnn_frontend (results: dev/cuda/results/)
# Needs: dev/data/tinyshakespeare (carry it: it is made from ../shared, which is not there).
set -u
cd "$(dirname "$0")/.." || exit 1
LOG=/dev/null
if [ -n "${OUT:-}" ]; then mkdir -p "$OUT"; LOG="$OUT/gpu_check.log"; fi
exec > >(tee "$LOG") 2>&1
T0=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET:-570}
# what each phase leaves to the ones after it: the tests stop with 60% of the budget left, the
# kernel harnesses with 40% (the d12 benchmark and the PyTorch baseline need about that)
KEEP_AFTER_TESTS=${GPU_CHECK_KEEP_TESTS:-$((BUDGET * 60 / 100))}
KEEP_AFTER_HARNESSES=${GPU_CHECK_KEEP_HARNESSES:-$((BUDGET * 40 / 100))}
elapsed() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( T0 + BUDGET - $(date +%s) )); }
# tmo N: a timeout of N seconds, or what is left of the budget if less (at least 5)
tmo() { local n=$1 l; l=$(left); [ "$l" -lt "$n" ] && n=$l; [ "$n" -lt 5 ] && n=5; echo "$n"; }
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$NVCC" ] || NVCC=$(command -v nvcc || echo "$NVCC")
BIN=build/gpu_check
mkdir -p "$BIN"
SKIP=" ${GPU_CHECK_SKIP:-} "
skipped() { case "$SKIP" in *" $1 "*) return 0 ;; esac; return 1; }
declare -A RESULT
FAILS=0

# the commit: GPU_CHECK_COMMIT when the caller knows it (a copied tree's .git can be stale)
echo "=== gpu_check $(date -u) commit ${GPU_CHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')} budget ${BUDGET}s"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "(no nvidia-smi)"

# A GPU first: without one every phase would fail the same way, so stop once, saying why
# (--build-only needs none). nvidia-smi answers when it is installed; otherwise a tiny CUDA
# probe asks the runtime (llmc/cuda_common.h's message).
if [ "${1:-}" != "--build-only" ] && ! nvidia-smi -L 2>/dev/null | grep -q "^GPU "; then
    why="(nvidia-smi: $(nvidia-smi -L 2>&1 | head -1))"
    if [ -x "$NVCC" ]; then
        printf '#include "llmc/cuda_common.h"\nint main(void) { printf("%%d\\n", cuda_device_count_or_die()); return 0; }\n' > "$BIN/gpu_probe.cu"
        if "$NVCC" -std=c++17 -I. -Drestrict=__restrict__ -diag-suppress 1675,550,177 -o "$BIN/gpu_probe" "$BIN/gpu_probe.cu" -lcublasLt > "$BIN/gpu_probe.log" 2>&1; then
            probe=$("$BIN/gpu_probe" 2>&1) && why="" || why=$(echo "$probe" | head -1 | sed 's/^error: no CUDA GPU found //; s/ at [^ ]*$//')
        else
            why="$why (the CUDA probe did not build: $BIN/gpu_probe.log)"
        fi
    fi
    if [ -n "$why" ]; then
        echo "FAIL: no CUDA GPU found $why"
        echo "gpu_check stops here: every phase needs a GPU (GPU_ARCH=sm_90 bash dev/gpu_check.sh --build-only builds without one)"
        exit 1
    fi
fi

# python with torch (references, baseline), and the pip-installed NVIDIA libraries it brings
PY=""
for p in .venv/bin/python python3 python; do
    if command -v $p > /dev/null 2>&1 && $p -c "import torch" > /dev/null 2>&1; then PY=$p; break; fi
done
# pip_nvidia NAME HEADER: a folder holding include/HEADER and lib/ of an NVIDIA wheel (the ones
# PyTorch brings): nvidia.NAME's folder, else any nvidia/*/ of the site-packages that has the header
pip_nvidia() {
    [ -n "$PY" ] || return 0
    local d
    d=$($PY -c "import nvidia.$1 as m, os; print(os.path.dirname(m.__file__) if m.__file__ else list(m.__path__)[0])" 2>/dev/null)
    if [ -n "$d" ] && [ -f "$d/include/$2" ]; then echo "$d"; return 0; fi
    for s in $($PY -c "import site; print(' '.join(site.getsitepackages()))" 2>/dev/null); do
        for d in "$s"/nvidia/*/; do
            if [ -f "$d/include/$2" ] && [ -d "$d/lib" ]; then echo "${d%/}"; return 0; fi
        done
    done
}
# NCCL and cuDNN: the CUDA toolkit's folders first, else the wheels that came with PyTorch
EXTRA_INC=""; EXTRA_LIB=""; NCCL_LIB="-lnccl"; CUDNN_LIB="-lcudnn"
CUDA_HOME_DIR=$(dirname "$(dirname "$NVCC")")
if ! [ -f "$CUDA_HOME_DIR/include/nccl.h" ] && ! [ -f /usr/include/nccl.h ]; then
    d=$(pip_nvidia nccl nccl.h)
    if [ -n "$d" ]; then
        lib=$(ls "$d"/lib/libnccl.so* 2>/dev/null | head -1)
        EXTRA_INC="$EXTRA_INC -I$d/include"; EXTRA_LIB="$EXTRA_LIB $d/lib"; NCCL_LIB="-L$d/lib -l:$(basename "$lib")"
    else
        echo "(no nccl.h in $CUDA_HOME_DIR/include, /usr/include or the python wheels: train_gpt_cu will not build)"
    fi
fi
HAVE_CUDNN=0
if [ -f "$CUDA_HOME_DIR/include/cudnn.h" ] && ls "$CUDA_HOME_DIR"/lib64/libcudnn.so* > /dev/null 2>&1; then
    HAVE_CUDNN=1
else
    d=$(pip_nvidia cudnn cudnn.h)
    if [ -n "$d" ]; then
        lib=$(ls "$d"/lib/libcudnn.so.* 2>/dev/null | head -1)
        HAVE_CUDNN=1; EXTRA_INC="$EXTRA_INC -I$d/include"; EXTRA_LIB="$EXTRA_LIB $d/lib"; CUDNN_LIB="-L$d/lib -l:$(basename "$lib")"
    fi
fi
CUDNN_FE=${CUDNN_FRONTEND_PATH:-build/cudnn_frontend/include}
if [ ! -f "$CUDNN_FE/cudnn_frontend.h" ]; then
    bash dev/cuda/get_cudnn_frontend.sh > /dev/null 2>&1 || true   # no network on a lent GPU: carry it
fi
[ -f "$CUDNN_FE/cudnn_frontend.h" ] || HAVE_CUDNN=0
for d in $EXTRA_LIB; do export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
echo "libraries: nvcc $NVCC; extra include:${EXTRA_INC:- none}; extra lib:${EXTRA_LIB:- none}"
echo "python with torch: ${PY:-none}; cuDNN attention: $([ $HAVE_CUDNN = 1 ] && echo yes || echo 'no (no cuDNN or no frontend headers)')"

# ---------------------------------------------------------------- 1. build
if [ -f "$BIN/PREBUILT" ]; then
    echo "=== using the prebuilt binaries in $BIN ($(cat "$BIN/PREBUILT"))"
    RESULT[build]="prebuilt"
    [ -x "$BIN/test_gpt_cu_cudnn" ] || HAVE_CUDNN=0
elif [ -x "$NVCC" ]; then
    CC_MAJOR=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')
    ARCH=${GPU_ARCH:-sm_${CC_MAJOR:-90}}
    echo "=== build for $ARCH ($NVCC)"
    rm -f "$BIN"/*  # never run a stale binary after a failed build
    FLAGS="-O3 -lineinfo -std=c++17 -I. $EXTRA_INC -Drestrict=__restrict__ -diag-suppress 1675,550,177 -Xcompiler -fopenmp,-Wno-unknown-pragmas -arch=$ARCH"
    CUDNN_FLAGS="-DENABLE_CUDNN"
    LIBS="-lcublasLt -lm"
    pids=()
    build() { local out=$1; shift; $NVCC $FLAGS -o "$BIN/$out" "$@" > "$BIN/build_$out.log" 2>&1 & pids+=($!); }
    build train_gpt_cu train_gpt.cu $LIBS $NCCL_LIB
    build test_gpt_cu test_gpt.cu $LIBS
    build test_gpt_cu_fp32 -DENABLE_FP32 test_gpt.cu $LIBS
    build ceilings dev/cuda/ceilings.cu $LIBS
    for f in dev/cuda/*_check.cu; do
        n=$(basename "$f" .cu)
        build "$n" "$f" $LIBS
        build "${n}_fp32" -DENABLE_FP32 "$f" $LIBS
    done
    # cuDNN's attention: host C++ compiled once (llmc/attention_cudnn.h says why), then linked
    if [ $HAVE_CUDNN = 1 ] && ! $NVCC -O2 -std=c++17 $EXTRA_INC -isystem "$CUDNN_FE" -c -o "$BIN/attention_cudnn.o" \
            llmc/attention_cudnn.cpp > "$BIN/build_attention_cudnn.log" 2>&1; then
        echo "FAIL: llmc/attention_cudnn.cpp did not compile: $(grep -m1 error "$BIN/build_attention_cudnn.log")"
        FAILS=$((FAILS + 1)); HAVE_CUDNN=0
    fi
    if [ $HAVE_CUDNN = 1 ]; then
        build train_gpt_cu_cudnn $CUDNN_FLAGS train_gpt.cu "$BIN/attention_cudnn.o" $LIBS $NCCL_LIB $CUDNN_LIB -lnvrtc
        build test_gpt_cu_cudnn $CUDNN_FLAGS test_gpt.cu "$BIN/attention_cudnn.o" $LIBS $CUDNN_LIB -lnvrtc
        build attention_check_cudnn $CUDNN_FLAGS dev/cuda/attention_check.cu "$BIN/attention_cudnn.o" $LIBS $CUDNN_LIB -lnvrtc
    fi
    nb=0
    for p in "${pids[@]}"; do wait "$p" || nb=$((nb + 1)); done
    if [ "$nb" -ne 0 ]; then
        echo "FAIL: $nb builds failed:"
        for l in "$BIN"/build_*.log; do
            if grep -q -i "error" "$l"; then echo "--- $l"; grep -i -m5 -B2 "error" "$l"; fi
        done
        FAILS=$((FAILS + nb))
    fi
    RESULT[build]="${#pids[@]} builds, $nb failed ($(elapsed)s)"
    echo "build done at $(elapsed)s"
    if [ "${1:-}" = "--build-only" ]; then
        echo "$ARCH, commit $(git rev-parse --short HEAD 2>/dev/null), $(date -u +%F)" > "$BIN/PREBUILT"
        rm -f "$BIN"/build_*.log
        exit $((nb > 0))
    fi
else
    echo "FAIL: no nvcc at $NVCC and no prebuilt binaries in $BIN (GPU_ARCH=sm_90 bash dev/gpu_check.sh --build-only)"
    exit 1
fi

# run_counted NAME TIMEOUT CMD...: runs, prints the output (also left in RUN_OUT), counts
# PASS/FAIL lines into RESULT[NAME] (a non-zero exit without a FAIL line counts as one failure)
run_counted() {
    local name=$1 t=$2; shift 2
    local rc p f
    RUN_OUT=$(timeout -k 5 "$(tmo "$t")" "$@" 2>&1); rc=$?
    echo "$RUN_OUT"
    p=$(echo "$RUN_OUT" | grep -c '^PASS'); f=$(echo "$RUN_OUT" | grep -c '^FAIL')
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL: $* exited $rc"; fi
    local prev=${RESULT[$name]:-0 0}
    RESULT[$name]="$(( ${prev% *} + p )) $(( ${prev#* } + f ))"
    FAILS=$((FAILS + f))
}
counted() { local v=${RESULT[$1]:-}; [ -n "$v" ] && echo "${v% *} passed, ${v#* } failed" || echo "not run"; }

# ---------------------------------------------------------------- 2. test_gpt_cu
if [ ! -f build/cuda_refs/hs64_debug_state.bin ] && [ -n "$PY" ]; then
    PYTHON=$PY timeout 120 bash dev/cuda/make_refs.sh > /dev/null || echo "FAIL: dev/cuda/make_refs.sh"
fi
VARIANTS="bf16:scalar:test_gpt_cu bf16_tc:tc:test_gpt_cu fp32:scalar:test_gpt_cu_fp32"
[ $HAVE_CUDNN = 1 ] && VARIANTS="$VARIANTS bf16_cudnn:cudnn:test_gpt_cu_cudnn"
if [ -n "${GPU_CHECK_VARIANTS:-}" ]; then
    keep=""
    for v in $VARIANTS; do case " $GPU_CHECK_VARIANTS " in *" ${v%%:*} "*) keep="$keep $v" ;; esac; done
    VARIANTS=$keep
fi
for v in $VARIANTS; do
    IFS=: read -r prec att exe <<< "$v"
    # the base references, then masked fine-tuning and the four PEFT methods (make_refs.sh)
    for ref in awkward hs64 hs128 masked peft_lora peft_lora_qf peft_bitfit peft_adapter peft_prompt dpo dpo_lora distill; do
        if [ "$(left)" -lt $KEEP_AFTER_TESTS ]; then echo "SKIPPED: test_gpt_cu $prec $ref (out of time)"; continue; fi
        if [ ! -f build/cuda_refs/${ref}_model.bin ]; then
            echo "FAIL: no build/cuda_refs/${ref}_model.bin (make cuda-refs, and carry build/cuda_refs)"
            RESULT[test_$prec]="0 1"; FAILS=$((FAILS + 1)); continue
        fi
        echo "=== test_gpt_cu ($prec, attention $att) $ref"
        run_counted "test_$prec" 20 env LLMC_ATTENTION=$att "$BIN/$exe" build/cuda_refs/$ref
    done
done
echo "tests done at $(elapsed)s"

# ---------------------------------------------------------------- 2b. exact resume on the GPU
# the trainer's checkpoint path (params and AdamW moments down, then up again): a run killed
# after its step-3 checkpoint and resumed must end bitwise where the uninterrupted run ends
DATA=dev/data/tinyshakespeare/tiny_shakespeare_train.bin
VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
[ -f $VAL ] || VAL=$DATA
if skipped resume; then
    RESULT[resume]="skipped (GPU_CHECK_SKIP)"
elif [ -f $DATA ] && [ "$(left)" -gt $((KEEP_AFTER_HARNESSES + 60)) ]; then
    echo "=== resume: kill at step 4, resume from the step-3 checkpoint (d4, B=4, T=256)"
    rdir=$(mktemp -d /tmp/gpu_resume.XXXXXX)
    RARGS="-e d4 -b 4 -t 256 -x 6 -n 3 -v 0 -s 0 --seed 11 -i $DATA -j $VAL"
    timeout -k 5 "$(tmo 40)" $BIN/train_gpt_cu $RARGS -o $rdir/ref > $rdir/ref.out 2>&1; r1=$?
    LLMC_TEST_KILL_AT_STEP=4 timeout -k 5 "$(tmo 40)" $BIN/train_gpt_cu $RARGS -o $rdir/k > $rdir/k1.out 2>&1; r2=$?
    timeout -k 5 "$(tmo 40)" $BIN/train_gpt_cu $RARGS -o $rdir/k -y 1 > $rdir/k2.out 2>&1; r3=$?
    if [ $r1 -eq 0 ] && [ $r2 -eq 137 ] && [ $r3 -eq 0 ] && grep -q "resume: from step 3" $rdir/k2.out &&
       cmp -s $rdir/ref/model_00000006.bin $rdir/k/model_00000006.bin &&
       cmp -s $rdir/ref/state_00000006_00000.bin $rdir/k/state_00000006_00000.bin; then
        echo "PASS: GPU resume: bitwise the same weights and optimizer state as the uninterrupted run"
        RESULT[resume]="PASS"
    else
        echo "FAIL: GPU resume (exits $r1 $r2 $r3)"; tail -n 3 $rdir/ref.out $rdir/k1.out $rdir/k2.out
        RESULT[resume]="FAIL (exits $r1 $r2 $r3)"; FAILS=$((FAILS + 1))
    fi
    rm -rf "$rdir"
fi

# ---------------------------------------------------------------- 3. kernel harnesses
echo "=== ceilings"
if skipped ceilings; then
    echo "(skipped: the harnesses read the dev/cuda/CEILINGS.md there is)"
    cat dev/cuda/CEILINGS.md 2>/dev/null
elif timeout -k 5 "$(tmo 60)" "$BIN/ceilings" dev/cuda/CEILINGS.md; then
    cat dev/cuda/CEILINGS.md
    if [ -n "${OUT:-}" ]; then cp dev/cuda/CEILINGS.md "$OUT/"; fi
else
    echo "FAIL: ceilings"; FAILS=$((FAILS + 1))
fi
ATT=""
HARNESSES=""
# attention first (its speed against cuDNN's is the open question), then the rest
HARNESSES="attention_check"
[ $HAVE_CUDNN = 1 ] && HARNESSES="$HARNESSES attention_check_cudnn"
for f in dev/cuda/*_check.cu; do
    n=$(basename "$f" .cu)
    [ "$n" = attention_check ] || HARNESSES="$HARNESSES $n"
done
for f in dev/cuda/*_check.cu; do HARNESSES="$HARNESSES $(basename "$f" .cu)_fp32"; done
[ -n "${GPU_CHECK_HARNESSES:-}" ] && HARNESSES=$GPU_CHECK_HARNESSES
for n in $HARNESSES; do
    if [ "$(left)" -lt $KEEP_AFTER_HARNESSES ]; then echo "SKIPPED: $n (out of time; the training benchmark goes first)"; continue; fi
    echo "=== $n"
    case $n in
        *_fp32) run_counted harness 60 env HARNESS_CHECK_ONLY=1 "$BIN/$n" ;;  # fp32: checks only
        *) run_counted harness 60 "$BIN/$n" ;;
    esac
    case $n in attention_check|attention_check_cudnn)
        ATT="$ATT$(echo "$RUN_OUT" | grep -E "attention fwd\+bwd .*B=8 T=1024 NH=12" | sed 's/^ *attention fwd+bwd //' | tr '\n' ';')" ;;
    esac
done
echo "harnesses done at $(elapsed)s"

# ---------------------------------------------------------------- 4. d12 training benchmark
if [ ! -f $DATA ]; then echo "FAIL: no $DATA (carry dev/data/tinyshakespeare)"; FAILS=$((FAILS + 1)); fi
COMMON="-e d12 -t 1024 -l 3e-4 -i $DATA -j $VAL"
declare -A TRAIN
# train NAME TIMEOUT flags...: one run, its "average step" line into TRAIN[NAME]
train() {
    local name=$1 t=$2; shift 2
    if [ "$(left)" -lt 25 ]; then echo "SKIPPED: train $name (out of time)"; return 1; fi
    echo "=== train_gpt_cu $name: $*"
    local out rc
    out=$(timeout -k 5 "$(tmo "$t")" "$@" 2>&1); rc=$?
    echo "$out" | grep -v "^step" | grep -v "^ *$" | tail -12
    echo "$out" | grep "^step" | tail -3
    TRAIN[$name]=$(echo "$out" | grep "average step" | tail -1)
    LAST_OUT=$out
    if [ $rc -ne 0 ] || [ -z "${TRAIN[$name]}" ]; then TRAIN[$name]="failed (exit $rc)"; return 1; fi
    return 0
}
TRAIN_B=""
if [ -f $DATA ] && skipped scalar; then
    TRAIN_B=${GPU_CHECK_B:-64}
elif [ -f $DATA ]; then
    for B in 64 32 16; do
        if train "scalar B=$B" 90 $BIN/train_gpt_cu $COMMON -b $B -x 10 -v 0 -s 0 --attention scalar --gelu-fusion 0; then TRAIN_B=$B; break; fi
        if ! echo "$LAST_OUT" | grep -q -i "out of memory\|cudaMalloc"; then
            echo "FAIL: train_gpt_cu B=$B failed, and not for memory"; FAILS=$((FAILS + 1)); break
        fi
        echo "(B=$B does not fit; trying a smaller B)"
    done
fi
if [ -n "$TRAIN_B" ]; then
    B=$TRAIN_B
    train "tc" 90 $BIN/train_gpt_cu $COMMON -b $B -x 10 -v 0 -s 0 --attention tc --gelu-fusion 0 || FAILS=$((FAILS + 1))
    BEST=tc
    if [ $HAVE_CUDNN = 1 ] && skipped cudnn_eval; then
        BEST=cudnn
    elif [ $HAVE_CUDNN = 1 ]; then
        # also the shapes cuDNN's graphs do not cover: val batches (same shape) and sampling (B=1, T growing)
        # (validation on the train shard: tiny shakespeare's val split is 31 sequences, under B=64)
        train "cudnn" 90 $BIN/train_gpt_cu_cudnn -e d12 -t 1024 -l 3e-4 -i $DATA -j $DATA -b $B -x 10 -v 10 -m 2 -s 10 -g 16 --attention cudnn --gelu-fusion 0 || FAILS=$((FAILS + 1))
        BEST=cudnn
    fi
    exe=$BIN/train_gpt_cu; [ $BEST = cudnn ] && exe=$BIN/train_gpt_cu_cudnn
    [ $BEST = tc ] || train "tc + GELU fusion" 90 $BIN/train_gpt_cu $COMMON -b $B -x 10 -v 0 -s 0 --attention tc --gelu-fusion 1 || FAILS=$((FAILS + 1))
    train "$BEST + GELU fusion" 90 $exe $COMMON -b $B -x 10 -v 0 -s 0 --attention $BEST --gelu-fusion 1 || FAILS=$((FAILS + 1))
    if ! skipped recompute; then
        train "$BEST + recompute" 90 $exe $COMMON -b $B -x 6 -v 0 -s 0 --attention $BEST -r 1 --gelu-fusion 0 || FAILS=$((FAILS + 1))
    fi
    echo "$LAST_OUT" | grep -i "allocated\|memory" | head -3
fi
echo "training benchmark done at $(elapsed)s"

# ---------------------------------------------------------------- 4b. several GPUs
# With two or more GPUs: d12 data-parallel, one process a GPU (-pm fs, no MPI needed), the
# gradient sums after the backward (--overlap-reduce 0) and overlapped with it (1): the step
# times, and the two final models, which must be the same bits (the same NCCL calls).
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
MULTI_LINE="not run ($NGPU GPU)"
declare -A MULTI
if skipped multi; then
    MULTI_LINE="skipped (GPU_CHECK_SKIP)"
elif [ "$NGPU" -ge 2 ] && [ -n "$TRAIN_B" ] && [ -x "$BIN/train_gpt_cu" ]; then
    for ov in 0 1; do
        if [ "$(left)" -lt 60 ]; then echo "SKIPPED: several GPUs, --overlap-reduce $ov (out of time)"; break; fi
        d="$BIN/multi_ov$ov"; rm -rf "$d"; mkdir -p "$d/rendezvous"
        echo "=== train_gpt_cu on $NGPU GPUs, --overlap-reduce $ov"
        pids=()
        for r in $(seq 0 $((NGPU - 1))); do
            LOCAL_RANK=$r timeout -k 5 "$(tmo 120)" "$BIN/train_gpt_cu" $COMMON -b $TRAIN_B -x 10 -v 0 -s 0 -pn $NGPU -pr $r \
                -pm fs -pp "$d/rendezvous" --overlap-reduce $ov -o "$d/run" > "$d/rank$r.out" 2>&1 & pids+=($!)
        done
        rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done
        grep -v "^step" "$d/rank0.out" | grep -v "^ *$" | tail -6
        MULTI[$ov]=$(grep "^average step" "$d/rank0.out" | sed 's/^average step: //')
        if [ $rc -ne 0 ] || [ -z "${MULTI[$ov]}" ]; then
            echo "FAIL: train_gpt_cu on $NGPU GPUs, --overlap-reduce $ov: $(grep -m1 -i error "$d"/rank*.out)"; FAILS=$((FAILS + 1))
        fi
    done
    same="not compared"
    if [ -f "$BIN/multi_ov0/run/model_00000010.bin" ] && [ -f "$BIN/multi_ov1/run/model_00000010.bin" ]; then
        if cmp -s "$BIN/multi_ov0/run/model_00000010.bin" "$BIN/multi_ov1/run/model_00000010.bin"; then same="bitwise equal"
        else same="DIFFERENT"; echo "FAIL: overlapped and after-backward gradient sums gave different models"; FAILS=$((FAILS + 1)); fi
    fi
    MULTI_LINE="after backward: ${MULTI[0]:-n/a}; overlapped: ${MULTI[1]:-n/a}; models $same"
fi

# ---------------------------------------------------------------- 5. PyTorch baseline
TORCH_LINE="skipped (no python with torch + CUDA)"
PEAK=$(echo "${TRAIN[scalar B=$TRAIN_B]:-}" | sed -n 's/.* of \([0-9]*\) TFLOP\/s.*/\1/p')
if skipped torch; then
    TORCH_LINE="skipped (GPU_CHECK_SKIP)"
elif [ -n "$PY" ] && [ -n "$TRAIN_B" ] && $PY -c "import torch; assert torch.cuda.is_available()" > /dev/null 2>&1; then
    if [ "$(left)" -lt 60 ]; then
        TORCH_LINE="SKIPPED (out of time)"
    else
        echo "=== PyTorch baseline B=$TRAIN_B T=1024"
        TORCH_OUT=$(timeout -k 5 "$(tmo 200)" $PY dev/cuda/bench_torch.py --B $TRAIN_B --T 1024 --steps 15 ${PEAK:+--peak-tflops $PEAK} 2>&1); rc=$?
        echo "$TORCH_OUT" | tail -5
        TORCH_LINE=$(echo "$TORCH_OUT" | grep "^torch:" | tail -1)
        [ $rc -eq 0 ] && [ -n "$TORCH_LINE" ] || { TORCH_LINE="failed (exit $rc)"; FAILS=$((FAILS + 1)); }
    fi
fi

# ---------------------------------------------------------------- 5b. per-kernel times (ncu)
# Two d12 steps under Nsight Compute with one metric (the kernel's duration: one pass, no
# replay), for dev/cuda/predict_step.py's per-kernel predictions to be set against. Last,
# because it is the least needed; the CSV goes to $OUT/ncu_kernels.csv.
NCU_LINE="not run"
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
if skipped ncu; then
    NCU_LINE="skipped (GPU_CHECK_SKIP)"
elif [ -n "$NCU" ] && [ -n "$TRAIN_B" ] && [ -n "${OUT:-}" ]; then
    if [ "$(left)" -lt 50 ]; then
        NCU_LINE="SKIPPED (out of time)"
    else
        echo "=== ncu: kernel durations of 2 d12 steps, B=$TRAIN_B, attention tc"
        # --log-file takes ncu's own output (the CSV); the trainer's goes to ncu_train.log
        timeout -k 5 "$(tmo 120)" "$NCU" --clock-control none --metrics gpu__time_duration.sum --csv \
            --log-file "$OUT/ncu_kernels.csv" $BIN/train_gpt_cu $COMMON -b $TRAIN_B -x 2 -v 0 -s 0 --attention tc \
            > "$OUT/ncu_train.log" 2>&1; rc=$?
        n=$(grep -c gpu__time_duration "$OUT/ncu_kernels.csv" 2>/dev/null)
        NCU_LINE="exit $rc, $n kernel launches timed ($OUT/ncu_kernels.csv)"
        tail -n 3 "$OUT/ncu_train.log" 2>/dev/null
    fi
fi

# ---------------------------------------------------------------- 5c. attention under ncu
# One forward and backward of each attention at d12's shape (attention_check's
# ATTENTION_PROFILE), every kernel with ncu's detailed set (speed of light, occupancy, warp
# stalls, memory): where our tensor-core kernels lose time against cuDNN's.
NCU_ATT_LINE="not run"
att_exe=$BIN/attention_check_cudnn; [ -x "$att_exe" ] || att_exe=$BIN/attention_check
if skipped ncu_attention; then
    NCU_ATT_LINE="skipped (GPU_CHECK_SKIP)"
elif [ -n "$NCU" ] && [ -n "${OUT:-}" ] && [ -x "$att_exe" ]; then
    if [ "$(left)" -lt 40 ]; then
        NCU_ATT_LINE="SKIPPED (out of time)"
    else
        echo "=== ncu: attention kernels, detailed set ($att_exe, B=8 T=1024 NH=12 hs=64)"
        ATTENTION_PROFILE=1 timeout -k 5 "$(tmo 90)" "$NCU" --clock-control none --set detailed \
            --section MemoryWorkloadAnalysis_Tables --csv --page details \
            --log-file "$OUT/ncu_attention.csv" "$att_exe" > "$OUT/ncu_attention_run.log" 2>&1; rc=$?
        n=$(grep -c '"Duration"' "$OUT/ncu_attention.csv" 2>/dev/null)
        NCU_ATT_LINE="exit $rc, $n kernels profiled ($OUT/ncu_attention.csv)"
        tail -n 2 "$OUT/ncu_attention_run.log" 2>/dev/null
    fi
fi

# ---------------------------------------------------------------- 6. table
tok_of() { echo "$1" | sed -n 's/.* \([0-9]*\) tok\/s.*/\1/p'; }
ours_tok=0; ours_name=""
for k in "${!TRAIN[@]}"; do
    case $k in *recompute*) continue ;; esac
    t=$(tok_of "${TRAIN[$k]}")
    if [ -n "$t" ] && [ "$t" -gt "$ours_tok" ]; then ours_tok=$t; ours_name=$k; fi
done
torch_tok=$(echo "$TORCH_LINE" | sed -n 's/.* tok\/s \([0-9]*\) .*/\1/p')
ratio="n/a"
if [ "$ours_tok" -gt 0 ] && [ -n "$torch_tok" ] && [ "$torch_tok" -gt 0 ]; then ratio=$(awk "BEGIN{printf \"%.2fx\", $ours_tok/$torch_tok}"); fi
echo
echo "================ gpu_check summary ($(elapsed)s, $FAILS failures) ================"
printf "%-24s %s\n" "GPU" "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
printf "%-24s %s\n" "build" "${RESULT[build]}"
for v in $VARIANTS; do
    IFS=: read -r prec att exe <<< "$v"
    printf "%-24s %s\n" "test_gpt_cu $prec" "$(counted "test_$prec")"
done
printf "%-24s %s\n" "resume (kill -9, -y 1)" "${RESULT[resume]:-not run}"
CEIL=$(grep -E '=' dev/cuda/CEILINGS.md 2>/dev/null | tr -s ' \n' ' ')
printf "%-24s %s\n" "ceilings" "${CEIL:-not measured}"
printf "%-24s %s\n" "kernel harnesses" "$(counted harness)"
printf "%-24s %s\n" "attention d12 shape" "${ATT:-n/a}"
for k in "scalar B=$TRAIN_B" tc cudnn "tc + GELU fusion" "cudnn + GELU fusion" "tc + recompute" "cudnn + recompute"; do
    [ -n "${TRAIN[$k]:-}" ] && printf "%-24s %s\n" "d12 $k" "${TRAIN[$k]}"
done
printf "%-24s %s\n" "d12 on several GPUs" "$MULTI_LINE"
printf "%-24s %s\n" "PyTorch d12" "$TORCH_LINE"
printf "%-24s %s\n" "ncu per-kernel times" "$NCU_LINE"
printf "%-24s %s\n" "ncu attention kernels" "$NCU_ATT_LINE"
printf "%-24s %s\n" "ours (best) / PyTorch" "$ratio tokens/s (best: ${ours_name:-none})"
[ "$FAILS" -eq 0 ]
