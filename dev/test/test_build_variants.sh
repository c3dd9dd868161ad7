#!/usr/bin/env bash
# Build variants rebuild: `make train_gpt NO_MPI=1` after an MPI build, and
# `make train_gpt_cu PRECISION=FP32 / USE_CUDNN=1 / CUDA_ARCHS=...` after a default one, must
# rebuild (the flags are stamped into build/flags.*), and an unchanged variant must not.
# Runs in a copy of the source tree (the checkout's binaries are not touched). The CUDA builds
# use a stand-in nvcc that writes its command line into the output, so no CUDA compile runs here
# (dev/cuda/check_compile.sh compiles every CUDA build for real).
set -u
cd "$(dirname "$0")/../.."
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git ls-files -co --exclude-standard | grep -v '^build/' | tar -cf - -T - 2>/dev/null | tar -xf - -C "$work"
cd "$work"
# -O0: this checks what make does, not the code (keeps the compiles short)
CF="-O0 -fopenmp -std=gnu11 -I. -w"

# --- CPU: MPI build, then NO_MPI=1, then NO_MPI=1 again (nothing to do)
if command -v mpicc > /dev/null 2>&1; then
    make -s train_gpt CFLAGS="$CF" > "$work/mk1.log" 2>&1 || fail "make train_gpt (MPI)" "$(tail -3 "$work/mk1.log")"
    if ldd ./train_gpt 2>/dev/null | grep -q libmpi; then
        out=$(make train_gpt CFLAGS="$CF" NO_MPI=1 2>&1)
        if ldd ./train_gpt 2>/dev/null | grep -q libmpi; then
            fail "make train_gpt NO_MPI=1 after an MPI build rebuilds without MPI" "still linked to MPI: $out"
        else
            pass "make train_gpt NO_MPI=1 after an MPI build rebuilds without MPI"
        fi
        out=$(make train_gpt CFLAGS="$CF" NO_MPI=1 2>&1)
        if echo "$out" | grep -q "train_gpt.c"; then
            fail "an unchanged variant does not rebuild" "$out"
        else
            pass "an unchanged variant does not rebuild"
        fi
        make -s train_gpt CFLAGS="$CF" > /dev/null 2>&1
        if ldd ./train_gpt 2>/dev/null | grep -q libmpi; then
            pass "make train_gpt after NO_MPI=1 rebuilds with MPI again"
        else
            fail "make train_gpt after NO_MPI=1" "not linked to MPI"
        fi
    else
        fail "make train_gpt (MPI)" "mpicc exists but train_gpt is not linked to libmpi"
    fi
else
    echo "(no mpicc: the MPI/NO_MPI variant is not checked)"
fi

# --- CUDA: a stand-in nvcc writes its arguments into the binary
cat > "$work/fake_nvcc" <<'EOF'
#!/usr/bin/env bash
out=""; prev=""
for a in "$@"; do [ "$prev" = "-o" ] && out=$a; prev=$a; done
echo "$*" > "$out"
EOF
chmod +x "$work/fake_nvcc"
mkdir -p "$work/fe" && touch "$work/fe/cudnn_frontend.h"
M="make -s NVCC=$work/fake_nvcc CUDNN_FRONTEND_PATH=$work/fe"
variant() {  # variant NAME GREP ARGS...: build with ARGS, expect GREP in the binary's command
    local name=$1 pat=$2; shift 2
    $M train_gpt_cu "$@" > "$work/v.log" 2>&1
    if [ -f train_gpt_cu ] && grep -q -e "$pat" train_gpt_cu; then
        pass "make train_gpt_cu $name rebuilds"
    else
        fail "make train_gpt_cu $name rebuilds" "binary made by: $(cat train_gpt_cu 2>/dev/null) $(cat "$work/v.log")"
    fi
}
$M train_gpt_cu > /dev/null 2>&1
variant "PRECISION=FP32 after bf16" "-DENABLE_FP32" PRECISION=FP32
variant "USE_CUDNN=1 after PRECISION=FP32" "-DENABLE_CUDNN.*build/attention_cudnn.o" USE_CUDNN=1
variant "CUDA_ARCHS=sm_90 only" "-gencode arch=compute_90,code=sm_90 -o" CUDA_ARCHS="-gencode arch=compute_90,code=sm_90"
if grep -q "sm_80" train_gpt_cu; then fail "CUDA_ARCHS=sm_90 only" "still builds sm_80"; fi
echo "not rebuilt" >> train_gpt_cu
$M train_gpt_cu CUDA_ARCHS="-gencode arch=compute_90,code=sm_90" > /dev/null 2>&1
if grep -q "not rebuilt" train_gpt_cu; then
    pass "an unchanged CUDA variant does not rebuild"
else
    fail "an unchanged CUDA variant does not rebuild" "rebuilt: $(cat train_gpt_cu)"
fi
variant "back to the default (bf16, sm_80 + sm_90)" "code=sm_80"
if grep -q -e "-DENABLE_FP32\|-DENABLE_CUDNN" train_gpt_cu; then fail "back to the default" "$(cat train_gpt_cu)"; fi

# --- make clean keeps the downloads, make distclean removes them
mkdir -p build/cudnn_frontend/include build/cuda_refs dev/data/downloads
touch build/cudnn_frontend/include/cudnn_frontend.h build/cuda_refs/ref.bin dev/data/downloads/x
make -s clean > /dev/null 2>&1
if [ -f build/cudnn_frontend/include/cudnn_frontend.h ] && [ -f build/cuda_refs/ref.bin ] && [ -f dev/data/downloads/x ] &&
   [ ! -e train_gpt ] && [ ! -e train_gpt_cu ] && [ ! -e build/flags.train_gpt_cu ]; then
    pass "make clean removes the builds and keeps the downloaded cuDNN headers and references"
else
    fail "make clean" "$(ls build dev/data 2>&1 | tr '\n' ' ')"
fi
make -s distclean > /dev/null 2>&1
if [ ! -e build ] && [ ! -e dev/data/downloads ]; then
    pass "make distclean removes the downloads too"
else
    fail "make distclean" "$(ls build dev/data 2>&1 | tr '\n' ' ')"
fi
[ $fails -eq 0 ]
