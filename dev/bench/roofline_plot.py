"""
The roofline chart of a dev/bench/roofline CSV: arithmetic intensity (FLOP/byte) on x, GFLOP/s
on y, both logarithmic. Drawn: the FMA peak (flat), the DRAM roof min(peak, AI x STREAM triad
bandwidth) (solid), the cache roof with the cache-resident triad's bandwidth (dashed), the ridge
point, and one labelled point per kernel at (its AI, its achieved GFLOP/s). A point above the
solid roof ran from the caches (dev/bench/ROOFLINE.md says how to read the chart).

usage: .venv/bin/python dev/bench/roofline_plot.py ROOFLINE.csv ROOFLINE.png [--title T]
Runs with any python: without matplotlib it re-executes itself under the repository's .venv
or Debian's /usr/bin/python3.
"""
import argparse
import csv
import math
import os
import subprocess
import sys

try:
    import matplotlib
except ImportError:
    matplotlib = None
if matplotlib is None:
    # re-execute under an interpreter that has matplotlib (once: LLMC_PLOT_REEXEC stops a loop)
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.environ.get("LLMC_PLOT_REEXEC"):
        for py in (os.path.join(repo, ".venv", "bin", "python"), "/usr/bin/python3"):
            if os.path.exists(py) and os.path.abspath(py) != os.path.abspath(sys.executable):
                if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0:
                    os.environ["LLMC_PLOT_REEXEC"] = "1"
                    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit(f"error: {sys.executable} has no matplotlib, and neither has .venv/bin/python nor /usr/bin/python3")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_csv(path):
    """The ceilings (GFLOP/s or GB/s by name), the kernel rows, and the configuration string."""
    ceilings, kernels, config = {}, [], ""
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            kind = row.get("kind")
            if kind == "ceiling":
                value = row["gflops"] if row["name"] == "fma_peak" else row["gbs"]
                ceilings[row["name"]] = float(value)
            elif kind == "kernel":
                kernels.append(row)
            elif kind == "config":
                config = row["shape"]
    for need in ("fma_peak", "dram_triad"):
        if need not in ceilings:
            sys.exit(f"error: {path}: no '{need}' ceiling row (not a dev/bench/roofline CSV?)")
    if not kernels:
        sys.exit(f"error: {path}: no kernel rows")
    return ceilings, kernels, config


def family(name):
    """Marker families: the GEMMs forward and backward, generation's GEMVs, everything else."""
    if name.startswith("matmul_fwd"):
        return "matmul forward"
    if name.startswith("matmul_bwd"):
        return "matmul backward"
    if name.startswith("gen_"):
        return "generation (cold)"
    if name.startswith("attention"):
        return "attention"
    return "elementwise / reductions"


STYLE = {
    "matmul forward": ("o", "tab:blue"),
    "matmul backward": ("s", "tab:cyan"),
    "attention": ("D", "tab:purple"),
    "elementwise / reductions": ("v", "tab:orange"),
    "generation (cold)": ("^", "tab:red"),
}


def short(name):
    """matmul_fwd_qkv -> "qkv f", gen_int8_fc -> "int8 fc", layernorm_bwd -> "ln b"."""
    for prefix, suffix in (("matmul_fwd_", " f"), ("matmul_bwd_", " b")):
        if name.startswith(prefix):
            return name[len(prefix):] + suffix
    if name.startswith("gen_"):  # gen_int8_fc -> "int8 fc"
        return name[len("gen_"):].replace("_attention", " attn").replace("_", " ")
    for long_name, abbrev in (("layernorm", "ln"), ("softmax_xent", "xent"), ("attention", "attn")):
        name = name.replace(long_name, abbrev)
    return name.replace("_fwd", " f").replace("_bwd", " b")


def place_labels(fig, ax, texts, xs, ys):
    """Each point's label at the nearest of a ring of offsets where it overlaps no label placed
    before it and no marker; failing that, where it overlaps least. Labels set further out get
    a thin leader line. Greedy, points taken in order of y."""
    offsets = []
    for dist in (7, 16, 28, 42, 58):
        for ang in range(0, 360, 30):
            dx = dist * math.cos(math.radians(ang))
            dy = dist * math.sin(math.radians(ang))
            offsets.append((dx, dy, "left" if dx > 1 else "right" if dx < -1 else "center"))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    marks = [ax.transData.transform((x, y)) for x, y in zip(xs, ys)]
    placed = []

    def overlap(a, b):
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        return w * h if w > 0 and h > 0 else 0.0

    for i in sorted(range(len(texts)), key=lambda i: ys[i]):
        best = None
        for dx, dy, ha in offsets:
            t = ax.annotate(texts[i], (xs[i], ys[i]), textcoords="offset points", xytext=(dx, dy),
                            fontsize=7, ha=ha, va="center")
            bb = t.get_window_extent(renderer).expanded(1.04, 1.15)
            t.remove()
            cost = sum(overlap(bb, p) for p in placed)
            cost += sum(100.0 for j, (mx, my) in enumerate(marks) if bb.contains(mx, my))
            axbb = ax.get_window_extent(renderer)
            if bb.x0 < axbb.x0 or bb.x1 > axbb.x1 or bb.y0 < axbb.y0 or bb.y1 > axbb.y1:
                cost += 1e6
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, bb)
            if cost == 0:
                break
        _, dx, dy, ha, bb = best
        far = math.hypot(dx, dy) > 10
        ax.annotate(texts[i], (xs[i], ys[i]), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                    ha=ha, va="center",
                    arrowprops=dict(arrowstyle="-", lw=0.4, color="gray", shrinkA=0, shrinkB=3) if far else None)
        placed.append(bb)


def main():
    ap = argparse.ArgumentParser(description="roofline chart of a dev/bench/roofline CSV")
    ap.add_argument("csv")
    ap.add_argument("png")
    ap.add_argument("--title", default=None)
    args = ap.parse_args()
    ceilings, kernels, config = read_csv(args.csv)
    peak, bw = ceilings["fma_peak"], ceilings["dram_triad"]
    bw_cache = ceilings.get("cache_triad")

    ais = [float(k["ai"]) for k in kernels]
    gfs = [float(k["gflops"]) for k in kernels]
    if not all(math.isfinite(v) and v > 0 for v in ais + gfs):
        sys.exit(f"error: {args.csv}: a kernel has a non-positive or non-finite AI or GFLOP/s")
    xlo = 10 ** math.floor(math.log10(min(ais + [peak / (bw_cache or bw)]) / 2))
    xhi = 10 ** math.ceil(math.log10(max(ais + [peak / bw]) * 2))
    ylo = 10 ** math.floor(math.log10(min(gfs + [xlo * bw]) / 2))
    yhi = 10 ** math.ceil(math.log10(max(gfs + [peak]) * 1.5))

    fig, ax = plt.subplots(figsize=(11, 7.5))
    xs = [xlo * (xhi / xlo) ** (i / 400) for i in range(401)]
    ax.plot(xs, [min(peak, x * bw) for x in xs], color="black", lw=2,
            label=f"roof: min(FMA peak {peak:.0f} GFLOP/s, AI x DRAM triad {bw:.1f} GB/s)")
    if bw_cache:
        ax.plot(xs, [min(peak, x * bw_cache) for x in xs], color="gray", lw=1.2, ls="--",
                label=f"cache roof: AI x L2-resident triad {bw_cache:.0f} GB/s")
    ax.axvline(peak / bw, color="black", lw=0.6, ls=":")
    ax.annotate(f"ridge {peak / bw:.1f} FLOP/B", (peak / bw, ylo * 1.5), fontsize=8, rotation=90,
                ha="right", va="bottom")

    seen = set()
    for k, x, y in zip(kernels, ais, gfs):
        fam = family(k["name"])
        marker, color = STYLE[fam]
        ax.scatter([x], [y], marker=marker, color=color, s=42, zorder=3, edgecolor="black", linewidth=0.4,
                   label=fam if fam not in seen else None)
        seen.add(fam)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    place_labels(fig, ax, [f"{short(k['name'])} {float(k['pct_of_bound']):.0f}%" for k in kernels], ais, gfs)
    ax.set_xlabel("arithmetic intensity (FLOP / compulsory byte)")
    ax.set_ylabel("achieved GFLOP/s (median)")
    ax.grid(True, which="both", lw=0.3, alpha=0.5)
    title = args.title or "Roofline of the CPU training kernels"
    ax.set_title(f"{title}\n{config}" if config else title, fontsize=10)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    fig.text(0.01, 0.01, "labels: kernel, % of the roof (DRAM) achieved; f = forward, b = backward",
             fontsize=7, color="gray")
    fig.tight_layout()
    fig.savefig(args.png, dpi=120)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
