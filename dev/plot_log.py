"""
Plots one or several training runs from their main.jsonl logs (train_gpt -o DIR writes
DIR/main.jsonl) into one PNG: train and val loss against tokens, the same against training
FLOPs, and HellaSwag accuracy against tokens when the runs have it.

usage: python dev/plot_log.py RUN [RUN ...] -o runs.png
RUN is an output directory or a .jsonl file; its label is the directory's name.
"""
import argparse
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_run(path):
    if os.path.isdir(path):
        path = os.path.join(path, "main.jsonl")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"error: {path}:{n}: not JSON: {e}")
    if not rows:
        sys.exit(f"error: {path}: no records")
    # a resumed run may repeat steps: the last record of each (step, kind) wins
    train, val, hs = {}, {}, {}
    for r in rows:
        if "loss" in r:
            train[r["step"]] = r
        if r.get("val_loss") is not None:
            val[r["step"]] = r
        if r.get("hellaswag") is not None:
            hs[r["step"]] = r
    label = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return label, [train[k] for k in sorted(train)], [val[k] for k in sorted(val)], [hs[k] for k in sorted(hs)]


def series(records, x, y):
    pts = [(r[x], r[y]) for r in records if r.get(x) is not None and r.get(y) is not None and math.isfinite(r[y])]
    return [p[0] for p in pts], [p[1] for p in pts]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("-o", "--output", default="runs.png")
    args = ap.parse_args()
    runs = [read_run(p) for p in args.runs]
    have_hs = any(hs for _, _, _, hs in runs)
    ncols = 3 if have_hs else 2
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.5))
    for i, (label, train, val, hs) in enumerate(runs):
        color = f"C{i}"
        for ax, x in ((axes[0], "tokens"), (axes[1], "flops")):
            tx, ty = series(train, x, "loss")
            ax.plot(tx, ty, color=color, alpha=0.5, lw=1, label=f"{label} train")
            vx, vy = series(val, x, "val_loss")
            if vx:
                ax.plot(vx, vy, color=color, marker="o", ms=3, lw=2, label=f"{label} val")
        if have_hs:
            hx, hy = series(hs, "tokens", "hellaswag")
            if hx:
                axes[2].plot(hx, hy, color=color, marker="o", ms=3, label=label)
    axes[0].set_xlabel("tokens")
    axes[1].set_xlabel("training FLOPs")
    for ax in axes[:2]:
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if have_hs:
        axes[2].axhline(0.25, color="gray", ls="--", lw=1, label="chance")
        axes[2].set_xlabel("tokens")
        axes[2].set_ylabel("HellaSwag accuracy")
        axes[2].grid(alpha=0.3)
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
