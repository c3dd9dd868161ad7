"""
One training step's kernel times from Nsight Compute's CSV (dev/gpu_check.sh's
ncu_kernels.csv: `ncu --metrics gpu__time_duration.sum --csv` over a 2-step run). The step is
the launches between the first step's AdamW launches and the last ones (the second step, after
warm-up). Prints each kernel's total and launches, and the sums by the categories of
dev/cuda/predict_step.py's table (matmuls, attention, other kernels, AdamW + norm), for a
measured-against-predicted comparison.

usage: python3 dev/cuda/ncu_step.py NCU_CSV [--top N]
       python3 dev/cuda/ncu_step.py --self-test
"""
import argparse
import collections
import csv
import re
import sys


def category(name):
    if name.startswith(("nvjet", "sm90_xmma", "sm80_xmma", "cutlass", "ampere", "void cublasLt", "cublasLt")):
        return "matmuls"
    if "splitKreduce" in name or "gemm" in name.lower():
        return "matmuls"
    if "attention" in name or "sdpa" in name or "cudnn" in name:
        return "attention"
    if name.startswith(("adamw", "sum_of_squares")):
        return "AdamW + norm"
    return "other kernels"


def step_times(lines, path):
    """ncu CSV lines -> (per-kernel {name: (launches, ms)}, per-category {category: ms}, launches)"""
    starts = [i for i, l in enumerate(lines) if l.startswith('"ID"')]
    if not starts:
        sys.exit("error: %s: no ncu CSV header (\"ID\",...) in it" % path)
    rows = list(csv.reader(lines[starts[0]:]))
    hdr = rows[0]
    col = {h: i for i, h in enumerate(hdr)}
    for need in ("Kernel Name", "Metric Name", "Metric Value"):
        if need not in col:
            sys.exit("error: %s: no '%s' column" % (path, need))
    data = [r for r in rows[1:] if len(r) == len(hdr) and r[col["Metric Name"]] == "gpu__time_duration.sum"]
    names = [r[col["Kernel Name"]] for r in data]
    unit = data[0][col["Metric Unit"]] if "Metric Unit" in col and data else "ns"
    scale = {"ns": 1e-6, "us": 1e-3, "usecond": 1e-3, "ms": 1.0, "msecond": 1.0, "nsecond": 1e-6}.get(unit, 1e-6)
    ms = [float(r[col["Metric Value"]].replace(",", "")) * scale for r in data]
    adam = [i for i, n in enumerate(names) if n.startswith("adamw")]
    groups = []
    for i in adam:
        if groups and i == groups[-1][-1] + 1:
            groups[-1].append(i)
        else:
            groups.append([i])
    if len(groups) < 2:
        sys.exit("error: %s: fewer than two steps' AdamW launches: not a 2-step run" % path)
    s, e = groups[0][-1] + 1, groups[-1][-1] + 1
    tot = collections.defaultdict(float)
    cnt = collections.Counter()
    cat = collections.defaultdict(float)
    for n, t in zip(names[s:e], ms[s:e]):
        k = re.sub(r"\(.*", "", n)
        tot[k] += t
        cnt[k] += 1
        cat[category(n)] += t
    return {k: (cnt[k], tot[k]) for k in tot}, cat, e - s


def self_test():
    """a made-up 2-step CSV: warm-up step, then a step of known kernels and times"""
    head = '"ID","Kernel Name","Metric Name","Metric Unit","Metric Value"'
    seq = [("encoder_forward_kernel(int)", 5), ("nvjet_sm90_tst_x", 100), ("void attention_forward_tc_kernel<64>(x)", 50),
           ("fused_classifier_kernel(x)", 30), ("adamw_kernel(x)", 7), ("adamw_kernel(x)", 3)]
    rows = [head]
    for step in range(2):
        for name, us in seq:
            t = us * (10 if step == 0 else 1)  # the warm-up step is slower and must not count
            rows.append('"%d","%s","gpu__time_duration.sum","ns","%s"' % (len(rows), name, "{:,}".format(t * 1000)))
    kernels, cat, n = step_times(rows, "self-test")
    ok = n == 6 and abs(cat["matmuls"] - 0.1) < 1e-9 and abs(cat["attention"] - 0.05) < 1e-9 \
        and abs(cat["other kernels"] - 0.035) < 1e-9 and abs(cat["AdamW + norm"] - 0.01) < 1e-9 \
        and kernels["adamw_kernel"][0] == 2 and abs(kernels["adamw_kernel"][1] - 0.01) < 1e-9
    print("%s: ncu_step picks the second step and sums it by category (%d launches, %s)"
          % ("PASS" if ok else "FAIL", n, dict(cat)))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv", nargs="?")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args()
    if args.self_test:
        sys.exit(self_test())
    if args.csv is None:
        ap.error("an ncu CSV, or --self-test")
    kernels, cat, n = step_times(open(args.csv).read().splitlines(), args.csv)
    tot = {k: v[1] for k, v in kernels.items()}
    cnt = {k: v[0] for k, v in kernels.items()}
    total = sum(tot.values())
    print("step 2 of %s: %d launches, kernels sum to %.1f ms" % (args.csv, n, total))
    print()
    print("| category | ms | share |")
    print("|---|---:|---:|")
    for c in ("matmuls", "attention", "other kernels", "AdamW + norm"):
        print("| %s | %.2f | %.1f%% |" % (c, cat[c], 100 * cat[c] / total))
    print()
    print("| kernel | launches | ms | share |")
    print("|---|---:|---:|---:|")
    for k, t in sorted(tot.items(), key=lambda x: -x[1])[:args.top]:
        print("| %s | %d | %.2f | %.1f%% |" % (k[:80], cnt[k], t, 100 * t / total))


if __name__ == "__main__":
    main()
