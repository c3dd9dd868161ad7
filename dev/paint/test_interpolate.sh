#!/usr/bin/env bash
# Tests of dev/paint/interpolate (theta(alpha) = (1 - alpha) theta_0 + alpha theta_1) on tiny d1
# models made here by train_gpt (tiny shakespeare's val tokens, a few steps each):
#  - alpha 0 and 1 give THETA0 and THETA1 back bitwise (fp32 files, header included);
#  - alpha 0.37 equals an independent numpy computation (float64, rounded once to float32):
#    every value within 1 fp32 ulp of numpy's plus 2^-50 of |(1 - a) x0| + |a x1| (double's
#    rounding where the two terms cancel; the C build may fuse a multiply-add, numpy does not):
#    in practice all but a few hundred of 3.3M values are identical (those lie within 1e-9 ulp
#    of a rounding tie, where one double rounding more or less decides); the count is printed;
#  - --alphas with an {alpha} pattern gives the same bytes as one --alpha at a time;
#  - bf16 (version 5) inputs are widened and mixed like fp32 ones; --out-version 5 rounds the
#    fp32 result to bf16 (nearest even), checked against numpy's rounding;
#  - refusals, each naming the file or flag, exit 1 and nothing written (an existing output
#    byte for byte untouched, no temp file left): two models of different shapes (both files
#    and the differing fields named), a truncated file, a non-checkpoint, a NaN in a
#    parameter, a non-finite alpha, an output that is an input, an extrapolation that
#    overflows fp32; killed while writing, the existing output is still untouched; an alpha
#    outside [0, 1] is allowed with a warning;
#  - a LoRA adapter merged into THETA0 (train_gpt --merge-out) as THETA1: the tensors LoRA did
#    not touch stay THETA0's bitwise, the adapted ones move by alpha times the adapter's update.
# Prints PASS:/FAIL: lines; exits non-zero on failure. A few seconds.
set -u
cd "$(dirname "$0")/../.."
REPO=$(pwd)
PY=${VENV_PYTHON:-$REPO/.venv/bin/python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
W=$(mktemp -d /tmp/test_interpolate.XXXXXX)
trap 'rm -rf "$W"' EXIT
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
VAL=dev/data/tinyshakespeare/tiny_shakespeare_val.bin
TOOL=${INTERPOLATE:-./dev/paint/interpolate}  # INTERPOLATE: another build, e.g. to check that the checks fail

for f in "$TOOL" ./train_gpt; do
    if [ ! -x "$f" ]; then echo "FAIL: $f is not built (make ${f#./})"; exit 1; fi
done
if [ ! -r "$VAL" ]; then echo "FAIL: $VAL is missing (make data)"; exit 1; fi
if ! "$PY" -c "import numpy" 2>/dev/null; then echo "FAIL: $PY lacks numpy (VENV_PYTHON overrides)"; exit 1; fi

# the models: THETA0 = d1 after 2 steps, THETA1 = THETA0 fine-tuned 3 more steps at a high rate
# (so theta_1 - theta_0 is large and touches every tensor), OTHER = a d2 (another shape)
tiny() { ./train_gpt -b 2 -t 32 -i "$VAL" -j "$VAL" -v 0 -s 0 "$@" > "$W/train.out" 2>&1 || { echo "FAIL: train_gpt $*: $(tail -2 "$W/train.out")"; exit 1; }; }
tiny -e d1 -x 2 --write-bf16 -o "$W/a"
T0=$W/a/model_00000002.bin; T0H=$W/a/model_00000002_bf16.bin
tiny -e "$T0" -x 3 -l 1e-2 --write-bf16 -o "$W/b"
T1=$W/b/model_00000003.bin; T1H=$W/b/model_00000003_bf16.bin
tiny -e d2 -x 1 -o "$W/c"
OTHER=$W/c/model_00000001.bin

# numpy side: reads a checkpoint (v3 or v5) as float32, independently of llmc/checkpoint.h
cat > "$W/ck.py" <<'EOF'
import numpy as np
def read(path):
    raw = open(path, "rb").read()
    h = np.frombuffer(raw[:1024], dtype="<i4")
    if h[1] == 3:
        p = np.frombuffer(raw[1024:], dtype="<f4")
    else:
        p = (np.frombuffer(raw[1024:], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    return h, p
def mix(p0, p1, a):  # float64, rounded once
    return ((1.0 - a) * p0.astype(np.float64) + a * p1.astype(np.float64)).astype(np.float32)
def err(x, p0, p1, a):
    # |x - ref| in units of: ref's fp32 spacing (one final rounding) plus double's rounding of
    # the two terms (where they cancel, e.g. to 1e-19 from inputs of 1e-3, the C compiler's
    # fused multiply-add and numpy's two roundings leave different residues of that size)
    ref = mix(p0, p1, a)
    terms = np.abs((1.0 - a) * p0.astype(np.float64)) + np.abs(a * p1.astype(np.float64))
    tol = np.spacing(np.abs(ref)).astype(np.float64) + 2.0**-50 * terms
    return (np.abs(x.astype(np.float64) - ref.astype(np.float64)) / tol).max()
def to_bf16_bits(f):  # round to nearest even, as the C code documents
    b = f.view(np.uint32).astype(np.uint64)
    return ((b + 0x7fff + ((b >> 16) & 1)) >> 16).astype(np.uint16)
EOF

# 1. the endpoints, bitwise
if $TOOL "$T0" "$T1" -o "$W/e0.bin" --alpha 0 > "$W/o" 2>&1 && $TOOL "$T0" "$T1" -o "$W/e1.bin" --alpha 1 >> "$W/o" 2>&1 &&
   cmp -s "$W/e0.bin" "$T0" && cmp -s "$W/e1.bin" "$T1"; then
    pass "alpha 0 and alpha 1 give THETA0 and THETA1 back bitwise (fp32)"
else
    fail "endpoints" "$(tail -2 "$W/o" | tr '\n' ' '); cmp: $(cmp "$W/e0.bin" "$T0" 2>&1) $(cmp "$W/e1.bin" "$T1" 2>&1)"
fi

# 2. a mid alpha against numpy
$TOOL "$T0" "$T1" -o "$W/m.bin" --alpha 0.37 > "$W/o" 2>&1 || fail "alpha 0.37" "$(tail -1 "$W/o")"
r=$("$PY" - "$W" "$T0" "$T1" "$W/m.bin" <<'EOF'
import sys; sys.path.insert(0, sys.argv[1]); import ck, numpy as np
h0, p0 = ck.read(sys.argv[2]); _, p1 = ck.read(sys.argv[3]); h, p = ck.read(sys.argv[4])
ref = ck.mix(p0, p1, 0.37)
e = ck.err(p, p0, p1, 0.37) if p.shape == ref.shape else 9e9
moved = np.mean(p != p0)
ok = (h == h0).all() and e <= 1.0 and moved > 0.5
print(f"{'ok' if ok else 'bad'} {np.sum(p == ref)}/{p.size} identical, max error {e:.2f} of the tolerance, {moved:.0%} differ from THETA0")
EOF
)
case $r in ok*) pass "alpha 0.37 equals numpy's float64 mix rounded to fp32 within the tolerance (${r#ok })" ;; *) fail "alpha 0.37 vs numpy" "$r" ;; esac

# 3. several alphas in one run, the same bytes as one at a time
if $TOOL "$T0" "$T1" -o "$W/s_{alpha}.bin" --alphas 0,0.37,1 > "$W/o" 2>&1 &&
   cmp -s "$W/s_0.bin" "$T0" && cmp -s "$W/s_0.37.bin" "$W/m.bin" && cmp -s "$W/s_1.bin" "$T1"; then
    pass "--alphas 0,0.37,1 -o 's_{alpha}.bin' writes s_0.bin s_0.37.bin s_1.bin, bitwise the single-alpha outputs"
else
    fail "--alphas" "$(tail -1 "$W/o"); $(ls "$W" | grep '^s_' | tr '\n' ' ')"
fi

# 4. bf16: inputs widened, output rounded
$TOOL "$T0H" "$T1H" -o "$W/h3.bin" --alpha 0.37 > "$W/o" 2>&1 || fail "bf16 inputs" "$(tail -1 "$W/o")"
$TOOL "$T0H" "$T1" -o "$W/h5.bin" --alpha 0.37 --out-version 5 > "$W/o5" 2>&1 || fail "--out-version 5" "$(tail -1 "$W/o5")"
$TOOL "$T0H" "$T1H" -o "$W/h0.bin" --alpha 0 --out-version 5 > /dev/null 2>&1
r=$("$PY" - "$W" "$T0H" "$T1H" "$T1" "$W/h3.bin" "$W/h5.bin" <<'EOF'
import sys; sys.path.insert(0, sys.argv[1]); import ck, numpy as np
_, q0 = ck.read(sys.argv[2]); _, q1 = ck.read(sys.argv[3]); _, p1 = ck.read(sys.argv[4])
h3, o3 = ck.read(sys.argv[5]); h5, _ = ck.read(sys.argv[6])
bits5 = np.frombuffer(open(sys.argv[6], "rb").read()[1024:], dtype="<u2")
u3 = ck.err(o3, q0, q1, 0.37)
want5 = ck.to_bf16_bits(ck.mix(q0, p1, 0.37))  # a bf16 THETA0 with an fp32 THETA1, rounded to bf16
ok = h3[1] == 3 and h5[1] == 5 and u3 <= 1.0 and np.array_equal(bits5, want5)
print(f"{'ok' if ok else 'bad'} v5 inputs -> v3: max error {u3:.2f} of the tolerance; mixed v5+v3 -> v5: {np.sum(bits5 == want5)}/{want5.size} bf16 values as numpy rounds them; versions {h3[1]} {h5[1]}")
EOF
)
case $r in ok*) pass "bf16: ${r#ok }" ;; *) fail "bf16" "$r" ;; esac
if cmp -s "$W/h0.bin" "$T0H"; then pass "bf16 inputs, alpha 0, --out-version 5: THETA0's bf16 file back bitwise"; else fail "bf16 alpha 0" "$(cmp "$W/h0.bin" "$T0H" 2>&1)"; fi

# 5. refusals: exit 1, one message naming the file or flag, nothing written
printf 'an existing output\n' > "$W/keep.bin"
cp "$W/keep.bin" "$W/keep_copy.bin"
expect_refusal() {  # name, pattern (grep -E), interpolate arguments... (the output is always keep.bin or new.bin)
    local name=$1 pattern=$2; shift 2
    local out rc
    out=$($TOOL "$@" 2>&1); rc=$?
    if [ $rc -eq 1 ] && echo "$out" | grep -Eq -- "$pattern" && [ ! -e "$W/new.bin" ] && cmp -s "$W/keep.bin" "$W/keep_copy.bin" &&
       [ -z "$(ls "$W" | grep '\.tmp\.')" ]; then
        pass "refuses $name, nothing written ($(echo "$out" | grep -m1 error | head -c 230))"
    else
        fail "refuses $name" "rc=$rc: $(echo "$out" | tail -1 | head -c 250); new.bin $([ -e "$W/new.bin" ] && echo exists || echo absent); $(ls "$W" | grep '\.tmp\.')"
    fi
    rm -f "$W/new.bin" "$W"/*.tmp.*; cp "$W/keep_copy.bin" "$W/keep.bin"  # one failure does not fail the next checks
}
expect_refusal "two models of different shapes (both files and the fields named)" \
    "error: .*a/model_00000002.bin and .*c/model_00000001.bin are checkpoints of different models \(L 1 vs 2, C 64 vs 128, NH 1 vs 2\)" \
    "$T0" "$OTHER" -o "$W/keep.bin" --alpha 0.5
expect_refusal "shapes, into a new output" "different models" "$OTHER" "$T1" -o "$W/new.bin" --alpha 0.5
head -c $(( $(stat -c %s "$T1") - 100 )) "$T1" > "$W/trunc.bin"
expect_refusal "a truncated checkpoint (checkpoint_read's message)" "error: THETA1: .*trunc.bin: file is truncated" \
    "$T0" "$W/trunc.bin" -o "$W/keep.bin" --alpha 0.5
head -c 4096 /dev/zero > "$W/zeros.bin"
expect_refusal "a file that is not a checkpoint" "error: THETA0: .*zeros.bin: bad magic 0" "$W/zeros.bin" "$T1" -o "$W/new.bin" --alpha 0.5
expect_refusal "a missing file" "error: THETA1: .*nope.bin: cannot open" "$T0" "$W/nope.bin" -o "$W/new.bin" --alpha 0.5
cp "$T1" "$W/nan.bin"
printf '\x00\x00\xc0\x7f' | dd of="$W/nan.bin" bs=1 seek=$((1024 + 4 * 777)) conv=notrunc status=none  # wte[777] = NaN
expect_refusal "a NaN parameter (tensor and index named)" "error: THETA1: .*nan.bin: parameter wte\[777\] is nan" \
    "$T0" "$W/nan.bin" -o "$W/keep.bin" --alpha 0.5
expect_refusal "alpha nan" "error: --alpha: expected a number, got 'nan' \(not finite\)" "$T0" "$T1" -o "$W/new.bin" --alpha nan
expect_refusal "alpha inf in a list" "error: --alphas: expected a number, got 'inf'" "$T0" "$T1" -o "$W/new{alpha}.bin" --alphas 0,inf
expect_refusal "an alpha that is not a number" "error: --alpha: expected a number, got '0.5x'" "$T0" "$T1" -o "$W/new.bin" --alpha 0.5x
expect_refusal "several alphas without {alpha} in -o" "must contain \{alpha\}" "$T0" "$T1" -o "$W/new.bin" --alphas 0,1
expect_refusal "an alpha given twice" "both name the output" "$T0" "$T1" -o "$W/new{alpha}.bin" --alphas 0.5,0.5
expect_refusal "--alpha and --alphas together" "exactly one of them" "$T0" "$T1" -o "$W/new.bin" --alpha 0 --alphas 1
expect_refusal "--out-version 4" "--out-version 4: must be 3" "$T0" "$T1" -o "$W/new.bin" --alpha 0 --out-version 4
expect_refusal "an extrapolation that overflows fp32" "alpha 1e\+300: the result overflows fp32" "$T0" "$T1" -o "$W/keep.bin" --alpha 1e300
cp "$T1" "$W/t1_copy.bin"
expect_refusal "an output that is an input" "same file as the input THETA1" "$T0" "$W/t1_copy.bin" -o "$W/t1_copy.bin" --alpha 0.5
if cmp -s "$W/t1_copy.bin" "$T1"; then pass "the input named as output is untouched"; else fail "input as output" "changed"; fi

# killed while writing (SIGKILL before the rename, llmc/utils.h's test hook): the existing
# output is untouched; only the temp file is left, as a crash leaves it
rc=$( { LLMC_TEST_KILL_IN_WRITE=keep.bin $TOOL "$T0" "$T1" -o "$W/keep.bin" --alpha 0.5 > /dev/null 2>&1; echo $?; } 2> /dev/null)
if [ $rc -eq 137 ] && cmp -s "$W/keep.bin" "$W/keep_copy.bin" && ls "$W" | grep -q '^keep.bin.tmp.'; then
    pass "killed while writing its output: the existing output untouched (written to a temp file, renamed at the end)"
else
    fail "kill in write" "rc=$rc, $(cmp "$W/keep.bin" "$W/keep_copy.bin" 2>&1), temp files: $(ls "$W" | grep '\.tmp\.' | tr '\n' ' ')"
fi
rm -f "$W"/*.tmp.*; cp "$W/keep_copy.bin" "$W/keep.bin"

# extrapolation is allowed, with a warning
out=$($TOOL "$T0" "$T1" -o "$W/x.bin" --alpha -0.5 2>&1); rc=$?
r=$("$PY" - "$W" "$T0" "$T1" "$W/x.bin" <<'EOF'
import sys; sys.path.insert(0, sys.argv[1]); import ck
_, p0 = ck.read(sys.argv[2]); _, p1 = ck.read(sys.argv[3]); _, p = ck.read(sys.argv[4])
print("ok" if ck.err(p, p0, p1, -0.5) <= 1.0 else "bad")
EOF
)
if [ $rc -eq 0 ] && echo "$out" | grep -q "warning: alpha -0.5 is outside \[0, 1\]: this extrapolates" && [ "$r" = ok ]; then
    pass "alpha -0.5 extrapolates (numpy agrees) with a warning, exit 0"
else
    fail "extrapolation" "rc=$rc numpy=$r: $(echo "$out" | grep -m1 -E 'warning|error')"
fi

# 6. a merged LoRA adapter as THETA1: only the adapted matrices move, by alpha times the update
./train_gpt -e "$T0" --peft lora --lora-rank 2 --lora-targets qkv,fc -l 3e-2 -x 3 -b 2 -t 32 -i "$VAL" -v 0 -s 0 \
    -o "$W/lora" --merge-out "$W/merged.bin" > "$W/lora.out" 2>&1 || fail "LoRA run" "$(tail -2 "$W/lora.out")"
$TOOL "$T0" "$W/merged.bin" -o "$W/ml.bin" --alpha 0.5 > "$W/o" 2>&1 || fail "merged LoRA" "$(tail -1 "$W/o")"
r=$("$PY" - "$W" "$T0" "$W/merged.bin" "$W/ml.bin" <<'EOF'
import sys; sys.path.insert(0, sys.argv[1]); import ck, numpy as np
h, p0 = ck.read(sys.argv[2]); _, p1 = ck.read(sys.argv[3]); _, p = ck.read(sys.argv[4])
L, C, Vp, T = h[4], h[6], h[7], h[2]
sizes = [Vp*C, T*C, L*C, L*C, L*3*C*C, L*3*C, L*C*C, L*C, L*C, L*C, L*4*C*C, L*4*C, L*C*4*C, L*C, C, C]
names = "wte wpe ln1w ln1b qkvw qkvb attprojw attprojb ln2w ln2b fcw fcb fcprojw fcprojb lnfw lnfb".split()
off, bad, moved = 0, [], []
for n, s in zip(names, sizes):
    a, b, c = p0[off:off+s], p1[off:off+s], p[off:off+s]
    if n in ("qkvw", "fcw"):
        d = b.astype(np.float64) - a
        if np.abs(d).max() == 0: bad.append(n + ": the adapter did not change it")
        if ck.err(c, a, b, 0.5) > 1.0: bad.append(n + ": not theta_0 + 0.5 * update")
        moved.append(f"{n} {np.linalg.norm(c.astype(np.float64) - a) / np.linalg.norm(d):.3f}")
    elif not np.array_equal(c.view(np.uint32), a.view(np.uint32)):
        bad.append(n + ": changed")
    off += s
print(("ok " if not bad else "bad ") + ("; ".join(bad) if bad else "|theta(0.5) - theta_0| / |update|: " + ", ".join(moved)))
EOF
)
if [[ $r == ok* ]] && grep -q "unchanged: wte wpe ln1w ln1b qkvb attprojw attprojb ln2w ln2b fcb fcprojw fcprojb lnfw lnfb" "$W/o"; then
    pass "merged LoRA (qkv,fc) as THETA1, alpha 0.5: 14 tensors bitwise THETA0's, the adapted ones at half the update (${r#ok })"
else
    fail "merged LoRA" "$r; $(grep -E 'changed|unchanged' "$W/o" | tr '\n' ' ')"
fi

if [ $fails -ne 0 ]; then echo "test_interpolate: $fails failed"; exit 1; fi
exit 0
