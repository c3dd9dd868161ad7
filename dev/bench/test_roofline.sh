#!/usr/bin/env bash
# Test of dev/bench/roofline (dev/bench/ROOFLINE.md) at tiny shapes, few repetitions and small
# STREAM/flush buffers (a few seconds):
#  - it runs, every kernel is in the Markdown table and in the CSV exactly once, outputs finite;
#  - each kernel's FLOPs and bytes equal ROOFLINE.md's formulas, recomputed here independently
#    (python), and so do its calls per step; AI, GFLOP/s, GB/s, the bound min(peak, AI x BW),
#    the % of it and the binding ceiling are consistent with them and with the ceiling rows;
#  - plausibility only, no timing is asserted: ceilings positive, times positive and finite,
#    no kernel above 1.5x the measured FMA peak; --cold gen flushes only the generation rows,
#    --cold all every row;
#  - a second shape (odd T, B=1, --adamw-n, --vp) against the same formulas;
#  - bad flags (C not divisible by NH, T > maxT, an unknown flag) are refused with a message;
#  - roofline_plot.py writes a PNG from the CSV, and refuses a CSV without ceilings.
# Prints PASS:/FAIL: lines; exits non-zero on failure.
set -u
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PY=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
BIN=dev/bench/roofline
fails=0
pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1: $2"; fails=$((fails + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = "89504e470d0a1a0a" ]; }
[ -x $BIN ] || { fail "roofline binary" "$BIN is not built (make $BIN)"; exit 1; }
SMALL="--reps 3 --stream-mib 8 --flush-mib 4 --peak-ms 50"

# check.py CSV MD B T C NH V Vp L maxT adamw_n cold_mode: the formulas of ROOFLINE.md, written
# out again here; prints one line per finding, "OK ..." lines for passes
cat > "$work/check.py" <<'EOF'
import csv, math, sys
path, md, B, T, C, NH, V, Vp, L, maxT, adamw_n, cold = sys.argv[1:13]
B, T, C, NH, V, Vp, L, maxT, adamw_n = map(int, (B, T, C, NH, V, Vp, L, maxT, adamw_n))
BT, N, hs = B * T, B * T * C, C // NH
S = T * (T + 1) // 2
pairs, natt = B * NH * S, B * NH * T * T
params = Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C
n = adamw_n or params
M = 4 * N
want = {  # name: (FLOPs, bytes, calls)
    "encoder_fwd": (N, 4 * (2 * N + T * C + BT), 1),
    "encoder_bwd": (2 * N, 4 * (3 * N + 2 * T * C + BT), 1),
    "layernorm_fwd": (8 * N + 5 * BT, 4 * (2 * N + 2 * C + 2 * BT), 2 * L + 1),
    "layernorm_bwd": (19 * N + 2 * BT + 2 * C, 4 * (4 * N + 5 * C + 2 * BT), 2 * L + 1),
    "attention_fwd": (pairs * (4 * hs + 6) + B * NH * T, 4 * (4 * N + natt), L),
    "attention_bwd": (pairs * (8 * hs + 5), 4 * (10 * N + pairs), L),
    "gelu_fwd": (9 * M, 8 * M, L),
    "gelu_bwd": (20 * M, 16 * M, L),
    "residual_fwd": (N, 12 * N, 2 * L),
    "softmax_xent_fwd": (BT * (5 * V + 3), 4 * (BT * (V + Vp) + 2 * BT), 1),
    "softmax_xent_bwd": (BT * (V + 1), 4 * (BT * (V + Vp) + BT), 1),
    "adamw": (17 * n, 28 * n, params / n),
}
for name, cin, oc, hb, calls in (("qkv", C, 3 * C, 1, L), ("attproj", C, C, 1, L), ("fc", C, 4 * C, 1, L),
                                 ("fcproj", 4 * C, C, 1, L), ("lmhead", C, Vp, 0, 1)):
    want["matmul_fwd_" + name] = (2 * BT * cin * oc, 4 * (BT * cin + oc * cin + BT * oc + hb * oc), calls)
    want["matmul_bwd_" + name] = (4 * BT * cin * oc, 4 * (BT * oc + 3 * BT * cin + 3 * oc * cin + 2 * hb * oc), calls)
    # generation as dev/infer/generate runs it: the weights as stored (llmc/quant.h: int8 one
    # byte a value and a float scale per row; int4 16 bytes per 32 values of a row, padded, and
    # a float scale per group of 32), then the input, the output and the bias
    stored = {"f32": 4 * oc * cin, "int8": oc * cin + 4 * oc,
              "int4": oc * 16 * ((cin + 31) // 32) + 4 * oc * ((cin + 31) // 32)}
    for k, wb in stored.items():
        want[f"gen_{k}_{name}"] = (2 * cin * oc, wb + 4 * (cin + oc + hb * oc), calls)
P = max(maxT // 2, 1)
for k in ("f32", "int8", "int4"):
    want[f"gen_{k}_attention"] = (NH * (P + 1) * (4 * hs + 3), 4 * (2 * (P + 1) * C + 4 * C), L)

bad = []
def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-300)
try:
    rows = list(csv.DictReader(open(path, newline="")))
except Exception as e:
    print(f"BAD csv does not parse: {e}"); sys.exit(0)
ceil = {r["name"]: r for r in rows if r["kind"] == "ceiling"}
kern = [r for r in rows if r["kind"] == "kernel"]
try:
    peak, bw = float(ceil["fma_peak"]["gflops"]), float(ceil["dram_triad"]["gbs"])
    bwc = float(ceil["cache_triad"]["gbs"])
except (KeyError, ValueError) as e:
    print(f"BAD ceilings missing or unreadable: {e}"); sys.exit(0)
if not (peak > 0 and bw > 0 and bwc > 0 and all(map(math.isfinite, (peak, bw, bwc)))):
    bad.append(f"ceilings not positive: peak {peak} bw {bw} cache {bwc}")
names = [r["name"] for r in kern]
if sorted(names) != sorted(want):
    bad.append(f"kernels {sorted(set(names) ^ set(want))} missing or extra, or repeated: {len(names)} rows")
mdtext = open(md).read()
for name in want:
    if mdtext.count(f"| {name} |") != 1:
        bad.append(f"{name} appears {mdtext.count(f'| {name} |')} times in the Markdown table")
if "outputs: all finite" not in mdtext:
    bad.append("the report does not say 'outputs: all finite'")
nform = nderived = 0
for r in kern:
    name = r["name"]
    if name not in want:
        continue
    f, b, calls = want[name]
    flops, nbytes = int(r["flops"]), int(r["bytes"])
    if flops != f or nbytes != b:
        bad.append(f"{name}: FLOPs {flops} bytes {nbytes}, formulas give {f} and {b}")
    elif not close(float(r["calls"]), calls, 1e-5):
        bad.append(f"{name}: calls {r['calls']}, want {calls}")
    else:
        nform += 1
    t, gf, gbs, ai = float(r["seconds"]), float(r["gflops"]), float(r["gbs"]), float(r["ai"])
    bound, pct = float(r["bound_gflops"]), float(r["pct_of_bound"])
    if not (math.isfinite(t) and t > 0 and float(r["best_seconds"]) <= t * (1 + 1e-5)):
        bad.append(f"{name}: time {t} (best {r['best_seconds']})"); continue
    ok = (close(ai, flops / nbytes, 1e-5) and close(gf, flops / t * 1e-9, 1e-4)
          and close(gbs, nbytes / t * 1e-9, 1e-4) and close(bound, min(peak, ai * bw), 1e-4)
          and close(pct, 100 * gf / bound, 1e-3)
          and r["binds"] == ("memory" if ai * bw < peak else "compute"))
    if not ok:
        bad.append(f"{name}: derived columns inconsistent: {r}")
    else:
        nderived += 1
    if gf > 1.5 * peak:
        bad.append(f"{name}: {gf:.1f} GFLOP/s is above 1.5x the FMA peak {peak:.1f}")
    want_cold = cold == "all" or (cold == "gen" and name.startswith("gen_"))
    if (r["cache"] == "cold") != want_cold:
        bad.append(f"{name}: cache {r['cache']} with --cold {cold}")
for x in bad:
    print("BAD " + x)
print(f"OK {nform} kernels match the formulas, {nderived} have consistent derived columns, "
      f"peak {peak:.1f} GFLOP/s, DRAM {bw:.1f} GB/s, cache {bwc:.1f} GB/s")
EOF

# run SHAPE_ARGS... then check: run_and_check LABEL "B T C NH V Vp L maxT adamw_n cold" ARGS...
run_and_check() {
    local label=$1 params=$2
    shift 2
    local t0=$SECONDS
    timeout 120 $BIN "$@" --csv "$work/$label.csv" > "$work/$label.md" 2> "$work/$label.err"
    local rc=$?
    if [ $rc -ne 0 ]; then
        fail "roofline $label runs" "exit $rc: $(tail -3 "$work/$label.err")"
        return
    fi
    pass "roofline $label runs ($*), $((SECONDS - t0)) s"
    out=$($PY "$work/check.py" "$work/$label.csv" "$work/$label.md" $params 2>&1)
    if echo "$out" | grep -q "^BAD"; then
        fail "roofline $label report" "$(echo "$out" | grep '^BAD' | head -5)"
    elif echo "$out" | grep -q "^OK"; then
        pass "roofline $label: every kernel present once; FLOPs, bytes and calls equal the formulas; derived columns consistent; nothing above 1.5x peak ($(echo "$out" | grep '^OK' | cut -c4-))"
    else
        fail "roofline $label report" "checker: $out"
    fi
}

run_and_check tiny "2 16 64 4 1000 1024 2 64 0 gen" -b 2 -t 16 -c 64 --nh 4 -v 1000 -l 2 --maxT 64 $SMALL
run_and_check odd "1 7 96 3 500 640 3 32 5000 all" -b 1 -t 7 -c 96 --nh 3 -v 500 --vp 640 -l 3 --maxT 32 \
    --adamw-n 5000 --cold all $SMALL

out=$($PY dev/bench/roofline_plot.py "$work/tiny.csv" "$work/tiny.png" 2>&1); rc=$?
if [ $rc -eq 0 ] && is_png "$work/tiny.png"; then
    pass "roofline_plot.py writes a PNG from the CSV"
else
    fail "roofline_plot.py" "rc=$rc: $out"
fi
grep -v '^ceiling' "$work/tiny.csv" > "$work/noceil.csv"
out=$($PY dev/bench/roofline_plot.py "$work/noceil.csv" "$work/noceil.png" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "no 'fma_peak' ceiling" && [ ! -e "$work/noceil.png" ]; then
    pass "roofline_plot.py refuses a CSV without the ceiling rows, naming it"
else
    fail "roofline_plot.py without ceilings" "rc=$rc: $out"
fi

for bad in "-c 100 --nh 3|not divisible" "-t 80 --maxT 64|exceeds maxT" "--frobnicate 1|unknown flag" "-b 0|-b wants"; do
    args=${bad%%|*}; msg=${bad#*|}
    out=$($BIN $args 2>&1); rc=$?
    if [ $rc -ne 0 ] && echo "$out" | grep -q -- "$msg"; then
        pass "roofline refuses '$args' ($msg)"
    else
        fail "roofline $args" "rc=$rc: $(echo "$out" | tail -2)"
    fi
done
[ $fails -eq 0 ]
