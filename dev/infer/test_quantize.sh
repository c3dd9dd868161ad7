#!/usr/bin/env bash
# Tests of dev/infer/quantize end to end, on a tiny d1 model made here by train_gpt (a few steps
# on tiny shakespeare's val tokens; C = 64, GPT-2's vocabulary) and on an awkward one written by
# numpy (L=2 C=72 NH=3 V=997 Vp=1024 maxT=16: int4 rows end in a partial 32-value block, groups of
# 64 and 128 end short or span the whole row; an all-zero weight row):
#  - int8 and int4 (groups 32, 64, 128; head fp32 and quantized) files equal, byte for byte, the
#    file numpy builds independently from the format in llmc/quant.h (header, scales = max|w|/127
#    or /7 in fp32, values rounded to nearest even, nibble packing, padding);
#  - --dequantize-out is byte for byte numpy's dequantization (scale * v in fp32) as a v3
#    checkpoint, and train_gpt loads it: --eval's val loss next to the fp32 model's (printed);
#  - --kind fp32: the payload is the checkpoint's, byte for byte; a bf16 (v5) input is widened;
#  - the printout: per-kind file sizes (equal to the written files' sizes) and per-tensor errors;
#  - refusals, each naming the flag or file, exit 1, nothing written (an existing output byte for
#    byte untouched, no temp file left): a missing input, a non-checkpoint, a truncated one, a
#    NaN weight, an already quantized input, --kind int3, --group 48, --group with int8,
#    --head bogus, no output, -o a directory, -o the input, -o equal to --dequantize-out, an
#    unknown flag; killed while writing, the existing output is untouched.
# Prints PASS:/FAIL: lines; exits non-zero on failure. A few seconds.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PY=${VENV_PYTHON:-$REPO/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
W=$(mktemp -d /tmp/test_quantize.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
Q=${QUANTIZE:-./dev/infer/quantize}  # QUANTIZE: another build

for f in "$Q" ./train_gpt; do
    if [ ! -x "$f" ]; then echo "FAIL: $f is not built (make ${f#./})"; exit 1; fi
done
if [ ! -r "$VAL" ]; then echo "FAIL: $VAL is missing (make data)"; exit 1; fi
if ! "$PY" -c "import numpy" 2>/dev/null; then echo "FAIL: $PY lacks numpy (VENV_PYTHON overrides)"; exit 1; fi

# the models: D1 (and its bf16 twin) by train_gpt, AWK by numpy
./train_gpt -b 2 -t 32 -i "$VAL" -j "$VAL" -v 0 -s 0 -e d1 -x 2 --write-bf16 -o "$W/run" > "$W/train.out" 2>&1 ||
    { echo "FAIL: train_gpt: $(tail -2 "$W/train.out")"; exit 1; }
D1=$W/run/model_00000002.bin; D1H=$W/run/model_00000002_bf16.bin

# numpy's side, written from the format's description in llmc/quant.h (not from the C code)
cat > "$W/qref.py" <<'EOF'
import numpy as np
NAMES = "wte wpe ln1w ln1b qkvw qkvb attprojw attprojb ln2w ln2b fcw fcb fcprojw fcprojb lnfw lnfb".split()
KINDS = {"fp32": 0, "int8": 1, "int4": 2}
def read_ck(path):
    raw = open(path, "rb").read()
    h = np.frombuffer(raw[:1024], dtype="<i4").copy()
    if h[1] == 3:
        p = np.frombuffer(raw[1024:], dtype="<f4").copy()
    else:
        p = (np.frombuffer(raw[1024:], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return h, p
def tensors(h, p):
    maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    sizes = [Vp*C, maxT*C, L*C, L*C, L*3*C*C, L*3*C, L*C*C, L*C, L*C, L*C, L*4*C*C, L*4*C, L*C*4*C, L*C, C, C]
    shapes = {"wte": (1, Vp, C), "qkvw": (L, 3*C, C), "attprojw": (L, C, C), "fcw": (L, 4*C, C), "fcprojw": (L, C, 4*C)}
    out, off = [], 0
    for n, s in zip(NAMES, sizes):
        out.append((n, p[off:off+s], shapes.get(n)))
        off += s
    return out
def quant_rows(W, qmax, group):
    # W (rows, cols) float32 -> scales (rows, ngroups) float32, values (rows, cols) int
    rows, cols = W.shape
    ng = -(-cols // group)
    scales = np.zeros((rows, ng), np.float32)
    v = np.zeros((rows, cols), np.int64)
    for g in range(ng):
        blk = W[:, g*group:(g+1)*group].astype(np.float64)
        s = (np.abs(blk).max(axis=1) / qmax).astype(np.float32)   # max|w| / qmax, rounded to fp32
        scales[:, g] = s
        sd = s.astype(np.float64)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.rint(blk / np.where(sd > 0, sd, 1.0))            # nearest, ties to even
        v[:, g*group:(g+1)*group] = np.where(sd > 0, np.clip(t, -qmax, qmax), 0)
    return scales, v
def pack4(v):
    rows, cols = v.shape
    nb = -(-cols // 32)
    n = np.full((rows, nb * 32), 8, np.uint8)                   # padding: v = 0, stored as 8
    n[:, :cols] = (v + 8).astype(np.uint8)
    n = n.reshape(rows, nb, 32)
    return (n[:, :, :16] | (n[:, :, 16:] << 4)).astype(np.uint8).tobytes()
def quantize(h, p, kind, group, head):
    """the expected quantized file's bytes, and the dequantized parameters"""
    hk = KINDS[kind] if head == "quant" else 0
    body, deq = [], []
    for name, t, shape in tensors(h, p):
        k = (hk if name == "wte" else KINDS[kind]) if shape else 0
        if k == 0:
            body.append(t.astype("<f4").tobytes()); deq.append(t); continue
        L, rows, cols = shape
        for l, W in enumerate(t.reshape(L, rows, cols)):
            qmax, g = (127, cols) if k == 1 else (7, group)
            s, v = quant_rows(W, qmax, g)
            body.append(s.astype("<f4").tobytes())
            body.append(v.astype(np.int8).tobytes() if k == 1 else pack4(v))
            deq.append((np.repeat(s, g, axis=1)[:, :cols] * v.astype(np.float32)).astype(np.float32).ravel())
    payload = b"".join(body)
    hdr = np.zeros(256, "<i4")
    hdr[0], hdr[1] = 20261204, 1
    hdr[2:8] = h[2:8]
    hdr[8], hdr[9], hdr[10] = KINDS[kind], group if kind == "int4" else 0, hk
    total = 1024 + len(payload)
    hdr[11], hdr[12] = total & 0xffffffff, total >> 32
    return hdr.tobytes() + payload, np.concatenate(deq).astype(np.float32)
EOF

# the awkward model, and a copy with a NaN weight
"$PY" - "$W" <<'EOF'
import sys, numpy as np
W = sys.argv[1]
rng = np.random.default_rng()
maxT, V, L, NH, C, Vp = 16, 997, 2, 3, 72, 1024
sizes = [Vp*C, maxT*C, L*C, L*C, L*3*C*C, L*3*C, L*C*C, L*C, L*C, L*C, L*4*C*C, L*4*C, L*C*4*C, L*C, C, C]
p = np.concatenate([rng.normal(0, 0.02, s) for s in sizes]).astype(np.float32)
p[(V*C):(Vp*C)] = 0                              # wte's padded rows
off = sum(sizes[:4])
p[off + 5*C: off + 6*C] = 0                      # qkvw layer 0, row 5: all zeros
h = np.zeros(256, "<i4"); h[0], h[1] = 20240326, 3; h[2:8] = [maxT, V, L, NH, C, Vp]
open(f"{W}/awk.bin", "wb").write(h.tobytes() + p.tobytes())
p[off + 7] = np.nan                              # qkvw[0][0, 7]
open(f"{W}/nan.bin", "wb").write(h.tobytes() + p.tobytes())
EOF

# 1. files against numpy, byte for byte
check_file() {  # name, model, kind, group (0: none), head, extra quantize flags...
    local name=$1 model=$2 kind=$3 group=$4 head=$5; shift 5
    local gflag=""
    [ "$group" != 0 ] && gflag="--group $group"
    if ! $Q -i "$model" -o "$W/out.q" --kind "$kind" $gflag --head "$head" --dequantize-out "$W/out_deq.bin" > "$W/q.out" 2>&1; then
        fail "$name" "quantize failed: $(tail -2 "$W/q.out" | tr '\n' ' ')"; return
    fi
    local r
    r=$("$PY" - "$W" "$model" "$kind" "$group" "$head" <<'EOF'
import sys; sys.path.insert(0, sys.argv[1]); import qref, numpy as np, re
W, model, kind, group, head = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
h, p = qref.read_ck(model)
want, deq = qref.quantize(h, p, kind, group, head)
got = open(f"{W}/out.q", "rb").read()
hd, pd = qref.read_ck(f"{W}/out_deq.bin")
problems = []
if got != want:
    n = min(len(got), len(want)); first = next((i for i in range(n) if got[i] != want[i]), n)
    problems.append(f"the file differs from numpy's ({len(got)} vs {len(want)} bytes, first difference at byte {first})")
if hd[1] != 3 or not (hd[2:8] == h[2:8]).all(): problems.append("the dequantized checkpoint's header is wrong")
if not np.array_equal(pd.view(np.uint32), deq.view(np.uint32)): problems.append(f"dequantized: {np.sum(pd != deq)} values differ from numpy's")
# the printed size of this kind is the file's size
out = open(f"{W}/q.out").read()
m = re.search(r"([0-9.]+) MB .*<- this run", out)
if not m or abs(float(m.group(1)) - len(got) / 1e6) > 0.006: problems.append("the printed size of this kind is not the file's")
rel = float(np.linalg.norm((p - pd).astype(np.float64)) / np.linalg.norm(p.astype(np.float64)))
print("bad " + "; ".join(problems) if problems else f"ok {len(got)} bytes, ||W - deq|| / ||W|| = {rel:.2e} over the whole model")
EOF
)
    case $r in ok*) pass "$name: the file and the dequantized checkpoint equal numpy's byte for byte (${r#ok })" ;; *) fail "$name" "$r" ;; esac
}
check_file "d1 int8, head fp32" "$D1" int8 0 fp32
cp "$W/out_deq.bin" "$W/d1_int8_deq.bin"
check_file "d1 int4 group 32, head fp32" "$D1" int4 32 fp32
cp "$W/out_deq.bin" "$W/d1_int4_deq.bin"
check_file "d1 int8, head int8" "$D1" int8 0 quant
check_file "d1 int4 group 128 (> C = 64: one group per row), head int4" "$D1" int4 128 quant
cp "$W/out_deq.bin" "$W/d1_int4h_deq.bin"
check_file "awkward C=72 int8, head int8" "$W/awk.bin" int8 0 quant
check_file "awkward C=72 int4 group 32, head int4" "$W/awk.bin" int4 32 quant
check_file "awkward C=72 int4 group 64 (last group 8 wide)" "$W/awk.bin" int4 64 quant
check_file "awkward C=72 int4 group 128 (one short group per row)" "$W/awk.bin" int4 128 fp32
check_file "bf16 (v5) input, int4 group 64" "$D1H" int4 64 fp32

# the printout: the five sizes and the four weight tensors' errors
$Q -i "$D1" -o "$W/p.q" --kind int4 > "$W/p.out" 2>&1
if [ "$(grep -c ' MB ' "$W/p.out")" -ge 5 ] && grep -Eq "^  qkvw +int4 +[0-9.]+e-0[1-3]" "$W/p.out" && grep -Eq "^  fcprojw +int4" "$W/p.out" &&
   grep -Eq "^  wte +fp32 +0.000e\+00" "$W/p.out"; then
    pass "the printout: file size per kind, relative error per tensor ($(grep -E '^  qkvw' "$W/p.out" | tr -s ' ' | head -c 80))"
else
    fail "printout" "$(cat "$W/p.out" | head -20)"
fi

# 2. --kind fp32: the payload is the checkpoint's
if $Q -i "$D1" -o "$W/f.q" --kind fp32 > "$W/o" 2>&1 && cmp -s <(tail -c +1025 "$W/f.q") <(tail -c +1025 "$D1"); then
    pass "--kind fp32: the quantized file's payload is the v3 checkpoint's, byte for byte"
else
    fail "--kind fp32" "$(tail -1 "$W/o")"
fi

# 3. train_gpt loads the dequantized checkpoints; the val loss beside the fp32 model's
evl() { ./train_gpt -e "$1" --eval -j "$VAL" -b 4 -t 64 -m 4 2>&1 | grep -o "val loss [0-9.naif-]*" | head -1 | cut -d' ' -f3; }
l0=$(evl "$D1"); l8=$(evl "$W/d1_int8_deq.bin"); l4=$(evl "$W/d1_int4_deq.bin"); l4h=$(evl "$W/d1_int4h_deq.bin")
r=$("$PY" -c "
import math, sys
l0, l8, l4, l4h = (float(x) if x else float('nan') for x in sys.argv[1:5])
ok = all(map(math.isfinite, (l0, l8, l4, l4h))) and abs(l8 - l0) < 0.01 and abs(l4 - l0) < 0.1 and abs(l4h - l0) < 0.2
print(('ok' if ok else 'bad') + f' fp32 {l0:.5f}, int8 {l8:.5f} ({l8 - l0:+.5f}), int4 g32 {l4:.5f} ({l4 - l0:+.5f}), int4 g128 with an int4 head {l4h:.5f} ({l4h - l0:+.5f})')
" "$l0" "$l8" "$l4" "$l4h")
case $r in ok*) pass "train_gpt --eval loads the --dequantize-out checkpoints: val loss ${r#ok }" ;; *) fail "train_gpt --eval on --dequantize-out" "$r" ;; esac

# 4. refusals: exit 1, one message naming the flag or file, nothing written
printf 'an existing output\n' > "$W/keep.q"
cp "$W/keep.q" "$W/keep_copy.q"
expect_refusal() {  # name, pattern (grep -E), quantize arguments... (outputs: keep.q, new.q, new_deq.bin)
    local name=$1 pattern=$2; shift 2
    local out rc
    out=$($Q "$@" 2>&1); rc=$?
    if [ $rc -eq 1 ] && echo "$out" | grep -Eq -- "$pattern" && [ ! -e "$W/new.q" ] && [ ! -e "$W/new_deq.bin" ] &&
       cmp -s "$W/keep.q" "$W/keep_copy.q" && [ -z "$(ls "$W" | grep '\.tmp\.')" ]; then
        pass "refuses $name, nothing written ($(echo "$out" | grep -m1 error | head -c 200))"
    else
        fail "refuses $name" "rc=$rc: $(echo "$out" | tail -1 | head -c 250); new.q $([ -e "$W/new.q" ] && echo exists || echo absent)"
    fi
    rm -f "$W/new.q" "$W/new_deq.bin" "$W"/*.tmp.*; cp "$W/keep_copy.q" "$W/keep.q"
}
head -c $(( $(stat -c %s "$D1") - 100 )) "$D1" > "$W/trunc.bin"
head -c 4096 /dev/zero > "$W/zeros.bin"
expect_refusal "a missing input" "error: -i: .*nope.bin: cannot open" -i "$W/nope.bin" -o "$W/new.q" --kind int8
expect_refusal "a file that is not a checkpoint" "error: -i: .*zeros.bin: bad magic 0" -i "$W/zeros.bin" -o "$W/keep.q" --kind int8
expect_refusal "a truncated checkpoint" "error: -i: .*trunc.bin: file is truncated" -i "$W/trunc.bin" -o "$W/keep.q" --kind int4
expect_refusal "a NaN weight (tensor and index named)" "error: -i .*nan.bin: .*parameter qkvw\[7\] is nan" \
    -i "$W/nan.bin" -o "$W/new.q" --kind int8 --dequantize-out "$W/new_deq.bin"
expect_refusal "an already quantized input" "error: -i .*p.q: is already a quantized checkpoint" -i "$W/p.q" -o "$W/new.q" --kind int8
expect_refusal "--kind int3" "error: --kind int3: expected int8, int4 or fp32" -i "$D1" -o "$W/new.q" --kind int3
expect_refusal "no --kind" "error: --kind is required" -i "$D1" -o "$W/new.q"
expect_refusal "--group 48" "error: --group 48: must be a multiple of 32" -i "$D1" -o "$W/new.q" --kind int4 --group 48
expect_refusal "--group 0" "error: --group: 0 is out of range" -i "$D1" -o "$W/new.q" --kind int4 --group 0
expect_refusal "--group with int8" "error: --group 64: only int4 has groups" -i "$D1" -o "$W/new.q" --kind int8 --group 64
expect_refusal "--head bogus" "error: --head bogus: expected fp32 or quant" -i "$D1" -o "$W/new.q" --kind int8 --head bogus
expect_refusal "no output" "error: give -o MODEL.q, --dequantize-out PLAIN.bin or both" -i "$D1" --kind int8
expect_refusal "-o a directory" "error: -o: .*: is a directory" -i "$D1" -o "$W/run" --kind int8
expect_refusal "-o the input" "error: -o .*model_00000002.bin: is the input checkpoint" -i "$D1" -o "$D1" --kind int8
expect_refusal "-o equal to --dequantize-out" "error: -o and --dequantize-out name the same file" \
    -i "$D1" -o "$W/new.q" --kind int8 --dequantize-out "$W/new.q"
expect_refusal "an unknown flag" "error: unknown flag '--bits'" -i "$D1" -o "$W/new.q" --kind int8 --bits 4
if cmp -s "$D1" "$W/run/model_00000002.bin" && [ -s "$D1" ]; then pass "the input named as output is untouched"; else fail "input as output" "changed"; fi

# killed while writing (SIGKILL before the rename, llmc/utils.h's test hook): the old file stays
rc=$( { LLMC_TEST_KILL_IN_WRITE=keep.q $Q -i "$D1" -o "$W/keep.q" --kind int8 > /dev/null 2>&1; echo $?; } 2> /dev/null)
if [ "$rc" -eq 137 ] && cmp -s "$W/keep.q" "$W/keep_copy.q"; then
    pass "killed while writing -o: the existing file untouched (temp file, fsync, rename)"
else
    fail "kill in write" "rc=$rc, $(cmp "$W/keep.q" "$W/keep_copy.q" 2>&1)"
fi

if [ $fails -ne 0 ]; then echo "test_quantize: $fails failed"; exit 1; fi
exit 0
