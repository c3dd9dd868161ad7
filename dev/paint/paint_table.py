#!/usr/bin/env python3
"""The PAINT curve of scripts/paint_sweep.sh: the table, the choice of alpha, the plot.

    python3 dev/paint/paint_table.py --out runs/paint --alphas 0,0.1,...,1 --margin 0.03 \
        [--task spam_cls --base B.bin --theta1 T1.bin --heldout DIR --hellaswag HS.bin \
         --val-batches 10 --threads 1 --wall-seconds S --command "..."]

Reads, for each alpha, OUT/alpha_<alpha>/:
  task_select.json, task_report.json   dev/eval/sft_eval on the two halves of the task's test split
                                       (accuracy_ll: the log-likelihood choice; mean_label_logprob)
  general.txt                          val_loss_select, val_loss_report (the pre-training val shard's
                                       two halves) and hellaswag (accuracy)
Writes OUT/paint.csv, OUT/PAINT.md and OUT/paint.png (matplotlib; the table is written without it).

The pick, on the select halves only: among the alphas whose task accuracy is at least that of
alpha = 1 (the fine-tuned model) minus --margin, the one with the lowest general val loss; ties
go to the smaller alpha (closer to the base). Its report-half figures are the result.
"""
import argparse
import csv
import datetime
import io
import json
import math
import os
import platform
import sys


def atomic_write(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    tmp = path + ".tmp.%d" % os.getpid()
    with open(tmp, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_alpha(out, a):
    d = os.path.join(out, "alpha_%s" % a)
    row = {"alpha": float(a), "alpha_text": a}
    for half in ("select", "report"):
        path = os.path.join(d, "task_%s.json" % half)
        try:
            with open(path, encoding="utf-8") as f:
                r = json.load(f)
            row["acc_" + half] = float(r["accuracy_ll"])
            row["n_" + half] = int(r["n"])
            row["correct_" + half] = int(r["correct_ll"])
            row["logp_" + half] = float(r["mean_label_logprob"])
            row["greedy_" + half] = float(r["accuracy_greedy"])
        except (OSError, ValueError, KeyError) as e:
            sys.exit("error: %s: cannot read the task evaluation: %s" % (path, e))
    path = os.path.join(d, "general.txt")
    try:
        with open(path, encoding="utf-8") as f:
            kv = dict(line.split() for line in f if line.strip())
        row["val_select"] = float(kv["val_loss_select"])
        row["val_report"] = float(kv["val_loss_report"])
        row["hellaswag"] = float(kv["hellaswag"])
    except (OSError, ValueError, KeyError) as e:
        sys.exit("error: %s: cannot read the general evaluation: %s" % (path, e))
    return row


def pick(rows, margin):
    """The rule of the module docstring; returns (chosen row, the accuracy bar)."""
    ft = [r for r in rows if r["alpha"] == 1.0]
    if not ft:
        sys.exit("error: --alphas must include 1 (the fine-tuned model is the rule's reference)")
    bar = ft[0]["acc_select"] - margin
    ok = [r for r in rows if r["acc_select"] >= bar - 1e-12]
    best = min(ok, key=lambda r: (r["val_select"], r["alpha"]))
    return best, bar


def read_timing(path, alphas):
    """One line on the recorded stage times (the last record of each stage), or ''."""
    if not path or not os.path.exists(path):
        return ""
    rec = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                try:
                    rec[parts[0]] = (float(parts[1]), float(parts[2]))
                except ValueError:
                    pass
    fmt = lambda s: "%dm%02ds" % divmod(int(round(s)), 60)
    out = []
    if "theta1_training" in rec:
        w, c = rec["theta1_training"]
        out.append("theta_1 training %s wall / %s CPU" % (fmt(w), fmt(c)))
    per = [rec["alpha_" + a] for a in alphas if "alpha_" + a in rec]
    if per:
        out.append("the evaluations of %d alpha%s %s wall / %s CPU (%s CPU per alpha)" % (
            len(per), "s" if len(per) > 1 else "", fmt(sum(w for w, _ in per)), fmt(sum(c for _, c in per)),
            fmt(sum(c for _, c in per) / len(per))))
    missing = [a for a in alphas if "alpha_" + a not in rec]
    if missing:
        out.append("no time recorded for alpha %s" % ", ".join(missing))
    return "stage times recorded (`timing.txt`): " + "; ".join(out) if out else ""


def stderr(p, n):
    return math.sqrt(max(p * (1 - p), 1e-12) / n) if n else float("nan")


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def plot(rows, chosen, bar, majority, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print("note: no matplotlib (%s): %s not written" % (e, path))
        return False
    xs = [r["alpha"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 7.5), sharex=True)
    ax1.plot(xs, [r["acc_select"] for r in rows], "o-", label="task accuracy, select half (picks alpha)")
    ax1.plot(xs, [r["acc_report"] for r in rows], "s--", label="task accuracy, report half")
    ax1.axhline(majority, color="gray", lw=0.8, ls=":", label="majority label (report half)")
    ax1.axhline(bar, color="tab:red", lw=0.8, ls="-.", label="the pick's bar: acc(alpha=1) - margin")
    ax1.set_ylabel("task accuracy (log-likelihood choice)")
    ax1.set_title(title, fontsize=10)
    ax1.legend(fontsize=8, loc="upper left")
    ax1.grid(alpha=0.3)
    ax2.plot(xs, [r["val_select"] for r in rows], "o-", color="tab:green", label="val loss, select half")
    ax2.plot(xs, [r["val_report"] for r in rows], "s--", color="tab:olive", label="val loss, report half")
    ax2.set_ylabel("pre-training val loss (lower is better)")
    ax2.set_xlabel("alpha  (0 = pre-trained base, 1 = fine-tuned)")
    ax2.grid(alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(xs, [r["hellaswag"] for r in rows], "^:", color="tab:purple", label="HellaSwag accuracy")
    ax3.axhline(0.25, color="tab:purple", lw=0.6, ls=":")
    ax3.set_ylabel("HellaSwag accuracy (chance 0.25)")
    # a fixed, wide range: with 200 examples (standard error ~3 points) a tight automatic range
    # would draw noise as a trend
    hs = [r["hellaswag"] for r in rows]
    ax3.set_ylim(min(0.15, min(hs) - 0.02), max(0.45, max(hs) + 0.02))
    h1, l1 = ax2.get_legend_handles_labels()
    h2, l2 = ax3.get_legend_handles_labels()
    ax2.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    for ax in (ax1, ax2):
        ax.axvline(chosen["alpha"], color="black", lw=0.8, ls="--")
    ax1.annotate("chosen alpha %s" % chosen["alpha_text"], (chosen["alpha"], ax1.get_ylim()[0]),
                 xytext=(-4, 4), textcoords="offset points", fontsize=8, ha="right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--alphas", required=True, help="comma-separated, as the sweep's directories name them")
    ap.add_argument("--margin", type=float, default=0.03)
    ap.add_argument("--task", default="spam_cls")
    ap.add_argument("--base", default="?")
    ap.add_argument("--theta1", default="?")
    ap.add_argument("--heldout", default="?")
    ap.add_argument("--hellaswag", default="?")
    ap.add_argument("--val-batches", type=int, default=0)
    ap.add_argument("--threads", default="?")
    ap.add_argument("--wall-seconds", type=float, default=float("nan"))
    ap.add_argument("--command", default="bash scripts/paint_sweep.sh")
    ap.add_argument("--timing", default=None, help="the sweep's timing.txt: one 'stage wall_s cpu_s' line per stage run")
    args = ap.parse_args()
    if not (args.margin >= 0 and math.isfinite(args.margin)):
        sys.exit("error: --margin %s: must be a finite number >= 0" % args.margin)
    alphas = [a for a in args.alphas.split(",") if a]
    if not alphas:
        sys.exit("error: --alphas is empty")
    rows = sorted((read_alpha(args.out, a) for a in alphas), key=lambda r: r["alpha"])
    chosen, bar = pick(rows, args.margin)
    for r in rows:
        r["chosen"] = int(r is chosen)
    by_alpha = {r["alpha"]: r for r in rows}
    n_sel, n_rep = rows[0]["n_select"], rows[0]["n_report"]

    # majority-label baseline of the report half, from the per-label counts of one report
    with open(os.path.join(args.out, "alpha_%s" % alphas[0], "task_report.json"), encoding="utf-8") as f:
        per_label = json.load(f).get("per_label", [])
    majority = max((p["n"] for p in per_label), default=0) / n_rep if n_rep else float("nan")

    # CSV
    cols = ["alpha", "task_acc_select", "task_acc_report", "task_label_logprob_select", "task_label_logprob_report",
            "task_greedy_select", "task_greedy_report", "val_loss_select", "val_loss_report", "hellaswag", "chosen"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r["alpha_text"], "%.4f" % r["acc_select"], "%.4f" % r["acc_report"], "%.4f" % r["logp_select"],
                    "%.4f" % r["logp_report"], "%.4f" % r["greedy_select"], "%.4f" % r["greedy_report"],
                    "%.4f" % r["val_select"], "%.4f" % r["val_report"], "%.4f" % r["hellaswag"], r["chosen"]])
    atomic_write(os.path.join(args.out, "paint.csv"), buf.getvalue())

    # HellaSwag size from its header
    hs_n = "?"
    try:
        with open(args.hellaswag, "rb") as f:
            import struct
            hs_n = struct.unpack("<4i", f.read(16))[2]
    except (OSError, Exception):
        pass

    # PAINT.md
    wall = "%dm%02ds" % divmod(int(round(args.wall_seconds)), 60) if math.isfinite(args.wall_seconds) else "?"
    r0, r1 = by_alpha.get(0.0), by_alpha[1.0]
    L = []
    L.append("# PAINT: interpolating a base and its fine-tuning on %s" % args.task)
    L.append("")
    L.append("- date: %s; machine: %s, `nproc` %d; threads per run (OMP_NUM_THREADS): %s"
             % (datetime.date.today().isoformat(), cpu_model(), os.cpu_count() or 0, args.threads))
    L.append("- command: `%s` (wall time of this invocation: %s; the base model existed, its ~20-minute "
             "pre-training is not in it)" % (args.command, wall))
    timing = read_timing(args.timing, alphas)
    if timing:
        L.append("- " + timing)
    L.append("- theta_0: `%s`; theta_1: `%s`" % (args.base, args.theta1))
    L.append("- task: %s test split in two halves, select %d / report %d examples; majority label on the report "
             "half %.3f; one example is %.1f points" % (args.task, n_sel, n_rep, majority, 100.0 / n_rep))
    L.append("- general: val loss on the base's pre-training val shard, first half (select) and second half "
             "(report), %d batches of 16 x 256 tokens each (%d tokens); HellaSwag: %s validation examples "
             "tokenized with the base's BPE (chance 0.25)" % (args.val_batches, args.val_batches * 4096, hs_n))
    L.append("")
    L.append("| alpha | task acc (select) | task acc (report) | log p(label) (report) | val loss (select) | val loss (report) | HellaSwag |")
    L.append("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        mark = " **<- chosen**" if r["chosen"] else ""
        L.append("| %s%s | %.3f | %.3f | %.3f | %.4f | %.4f | %.3f |" % (
            r["alpha_text"], mark, r["acc_select"], r["acc_report"], r["logp_report"], r["val_select"],
            r["val_report"], r["hellaswag"]))
    L.append("")
    L.append("**The pick** (select halves only): the alphas whose task accuracy is at least alpha = 1's "
             "(%.3f) minus the margin %.3f, i.e. >= %.3f; among them the lowest general val loss; ties to the "
             "smaller alpha. Chosen: **alpha = %s**." % (r1["acc_select"], args.margin, bar, chosen["alpha_text"]))
    L.append("")
    L.append("On the report halves (never used to choose): task accuracy %.3f (+- %.3f standard error) against "
             "%.3f for the fine-tuned model%s; val loss %.4f against %.4f fine-tuned%s; HellaSwag %.3f against %.3f "
             "fine-tuned%s." % (
                 chosen["acc_report"], stderr(chosen["acc_report"], n_rep), r1["acc_report"],
                 " and %.3f for the base" % r0["acc_report"] if r0 else "",
                 chosen["val_report"], r1["val_report"], " and %.4f for the base" % r0["val_report"] if r0 else "",
                 chosen["hellaswag"], r1["hellaswag"], " and %.3f for the base" % r0["hellaswag"] if r0 else ""))
    L.append("")
    if r0:
        L.append("Of the general val loss the fine-tuning added (report half, %.4f -> %.4f), the chosen alpha keeps "
                 "%.0f%% off." % (r0["val_report"], r1["val_report"],
                                  100.0 * (r1["val_report"] - chosen["val_report"]) / (r1["val_report"] - r0["val_report"])
                                  if r1["val_report"] != r0["val_report"] else float("nan")))
        L.append("")
    L.append("Scale: a task-accuracy difference under about %.0f points (two standard errors at 0.85 on %d "
             "examples) is noise; HellaSwag with %s examples has a standard error near %.1f points at chance, and "
             "a 5.5M-parameter model trained on 2.5M tokens of old books sits at chance on it, so its column "
             "cannot show a trade-off here; the val loss is the general metric that can." % (
                 200 * stderr(0.85, n_rep), n_rep, hs_n,
                 100 * stderr(0.25, hs_n) if isinstance(hs_n, int) else float("nan")))
    L.append("")
    L.append("![PAINT curve](paint.png)")
    L.append("")
    title = "PAINT on %s: theta(alpha) = (1 - alpha) base + alpha fine-tuned" % args.task
    have_png = plot(rows, chosen, bar, majority, os.path.join(args.out, "paint.png"), title)
    if not have_png:
        L = L[:-2]
    atomic_write(os.path.join(args.out, "PAINT.md"), "\n".join(L) + "\n")
    print("wrote %s/paint.csv, %s/PAINT.md%s; chosen alpha %s" % (
        args.out, args.out, ", %s/paint.png" % args.out if have_png else "", chosen["alpha_text"]))


if __name__ == "__main__":
    main()
