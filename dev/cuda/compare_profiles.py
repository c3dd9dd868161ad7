"""Per-kernel counts of two emulated step profiles side by side (dev/cuda/PROFILE.md).

usage: compare_profiles.py BEFORE_DIR AFTER_DIR [--out FILE.md] | --self-test

For each profile both directories hold (step_<precision>_<attention>_L<layers>.csv, written by
dev/cuda/profile.sh), prints the kernels whose global requests, global sectors or shared
wavefronts changed. Requests are warp memory instructions, sectors the 32-byte pieces they touch,
bank conflicts the shared wavefronts beyond one per phase. Counts, not times.
"""
import csv
import glob
import os
import sys
from collections import OrderedDict


def totals(path):
    kernels = OrderedDict()
    with open(path) as f:
        for row in csv.DictReader(f):
            k = kernels.setdefault(row["kernel"], [0, 0, 0, 0])
            k[0] += int(row["gld_requests"]) + int(row["gst_requests"])
            k[1] += int(row["gld_sectors"]) + int(row["gst_sectors"])
            k[2] += int(row["shld_wavefronts"]) + int(row["shst_wavefronts"])
            k[3] += int(row["shld_phases"]) + int(row["shst_phases"])
    return kernels


def ratio(a, b):
    return "-" if b == 0 else "%.2fx" % (a / b)


def compare(before_dir, after_dir):
    lines = []
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(before_dir, "step_*.csv")))
    for name in names:
        after_path = os.path.join(after_dir, name)
        if not os.path.exists(after_path):
            continue
        before, after = totals(os.path.join(before_dir, name)), totals(after_path)
        lines.append("## %s\n" % name)
        lines.append("| kernel | global requests | global sectors | shared wavefronts (bank conflicts) | requests before/after |")
        lines.append("|---|---|---|---|---:|")
        for kernel, b in before.items():
            a = after.get(kernel)
            if a is None or a == b:
                continue
            lines.append("| %s | %d -> %d | %d -> %d | %d (%d) -> %d (%d) | %s |" % (
                kernel, b[0], a[0], b[1], a[1], b[2], b[2] - b[3], a[2], a[2] - a[3], ratio(b[0], a[0])))
        sb = [sum(v[i] for v in before.values()) for i in range(4)]
        sa = [sum(v[i] for v in after.values()) for i in range(4)]
        lines.append("| **all kernels** | %d -> %d | %d -> %d | %d (%d) -> %d (%d) | %s |\n" % (
            sb[0], sa[0], sb[1], sa[1], sb[2], sb[2] - sb[3], sa[2], sa[2] - sa[3], ratio(sb[0], sa[0])))
    return "\n".join(lines)


def self_test():
    """Two made-up profiles with hand-counted sums: a kernel that changed, one that did not."""
    import tempfile
    header = ("phase,kernel,gld_requests,gld_sectors,gst_requests,gst_sectors,"
              "shld_wavefronts,shld_phases,shst_wavefronts,shst_phases\n")
    rows = {"before": ["forward,k_wide,8,16,8,16,0,0,0,0", "forward,k_wide,8,16,8,16,0,0,0,0",
                       "forward,k_same,1,4,1,4,10,2,0,0"],
            "after": ["forward,k_wide,2,16,2,16,0,0,0,0", "forward,k_wide,2,16,2,16,0,0,0,0",
                      "forward,k_same,1,4,1,4,10,2,0,0"]}
    failed = 0
    with tempfile.TemporaryDirectory() as d:
        for name, lines in rows.items():
            os.makedirs(os.path.join(d, name))
            with open(os.path.join(d, name, "step_x_L1.csv"), "w") as f:
                f.write(header + "\n".join(lines) + "\n")
        text = compare(os.path.join(d, "before"), os.path.join(d, "after"))
    checks = [("the changed kernel's sums", "| k_wide | 32 -> 8 | 64 -> 64 | 0 (0) -> 0 (0) | 4.00x |" in text),
              ("the unchanged kernel left out", "k_same" not in text),
              ("the totals with bank conflicts", "| **all kernels** | 34 -> 10 | 72 -> 72 | 10 (8) -> 10 (8) | 3.40x |" in text)]
    for what, ok in checks:
        print("%s: compare_profiles: %s" % ("PASS" if ok else "FAIL", what))
        failed += not ok
    return 1 if failed else 0


def main(argv):
    if argv == ["--self-test"]:
        sys.exit(self_test())
    out = None
    if "--out" in argv:
        i = argv.index("--out")
        if i + 1 >= len(argv):
            sys.exit("error: compare_profiles.py: --out needs a file name")
        out = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    if len(argv) != 2 or not all(os.path.isdir(d) for d in argv):
        sys.exit("usage: compare_profiles.py BEFORE_DIR AFTER_DIR [--out FILE.md] | --self-test")
    text = "# Emulated counts, before and after\n\n%s: %s\n%s: %s\n\n" % (
        "before", argv[0], "after", argv[1]) + compare(argv[0], argv[1])
    if out:
        with open(out + ".tmp", "w") as f:
            f.write(text)
        os.replace(out + ".tmp", out)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
