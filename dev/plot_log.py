"""
Plots one or several training runs into one PNG: train and val loss against tokens, the same
against training FLOPs, HellaSwag accuracy against tokens when the runs have it, and for DPO
runs (--dpo: dpo_* and dpo_val_* records of main.jsonl) the reward accuracy and the reward
margin against steps, on the training batches (faint) and on the held-out pairs (markers),
val bits per byte against FLOPs, and the multiple-choice tasks (--tasks: "task" records) each
by its headline metric against tokens, with its chance level.

usage: .venv/bin/python dev/plot_log.py RUN [RUN ...] -o runs.png [--logx] [--smooth N] [--title T]
RUN is an output directory (its main.jsonl, else its main.log), a main.jsonl file, or an llm.c
main.log file ("s:N trl:X" train and "s:N tel:X" val lines, "s:N eval:X" HellaSwag); its label
is the directory's name. main.log has no token counts: give --tokens-per-step (B*T*processes,
i.e. -d) to put such runs on the tokens axis, else they are drawn against steps. The FLOPs
panel shows the runs that log FLOPs (main.jsonl).
  --logx       logarithmic x axes (tokens, FLOPs)
  --smooth N   train loss smoothed by an exponential moving average over about N steps
               (alpha = 2/(N+1), bias-corrected); the raw curve stays, faint
  --title T    a title over the figure
Runs with any python: without matplotlib it re-executes itself under the repository's .venv
(made by scripts/setup.sh) or Debian's /usr/bin/python3.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys

try:
    import matplotlib
except ImportError:
    matplotlib = None
if matplotlib is None:
    # re-execute under an interpreter that has matplotlib (once: LLMC_PLOT_REEXEC stops a loop)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not os.environ.get("LLMC_PLOT_REEXEC"):
        for py in (os.path.join(repo, ".venv", "bin", "python"), "/usr/bin/python3"):
            if os.path.exists(py) and os.path.abspath(py) != os.path.abspath(sys.executable):
                if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode == 0:
                    os.environ["LLMC_PLOT_REEXEC"] = "1"
                    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])
    sys.exit(f"error: {sys.executable} has no matplotlib, and neither has .venv/bin/python nor /usr/bin/python3 "
             "(bash scripts/setup.sh installs Debian's python3-matplotlib)")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

MAIN_LOG_LINE = re.compile(r"^s:(\d+) (trl|tel|eval):(\S+)")


def read_main_log(path, tokens_per_step):
    """llm.c's main.log: s:N trl:X (train, after N updates), s:N tel:X (val), s:N eval:X (HellaSwag)."""
    train, val, hs = {}, {}, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            m = MAIN_LOG_LINE.match(line)
            if not m:
                continue
            step, kind = int(m.group(1)), m.group(2)
            try:
                value = float(m.group(3))
            except ValueError:
                sys.exit(f"error: {path}:{n}: '{m.group(3)}' is not a number")
            tokens = None
            if tokens_per_step:
                tokens = (step + 1 if kind == "trl" else step) * tokens_per_step
            if kind == "trl":
                train[step] = {"step": step, "loss": value, "tokens": tokens}
            elif kind == "tel":
                val[step] = {"step": step, "val_loss": value, "tokens": tokens}
            else:
                hs[step] = {"step": step, "hellaswag": value, "tokens": tokens}
    if not train and not val:
        sys.exit(f"error: {path}: no 's:N trl:X' or 's:N tel:X' lines (not a main.log?)")
    return train, val, hs


def read_run(path, tokens_per_step=None):
    if os.path.isdir(path):
        j, m = os.path.join(path, "main.jsonl"), os.path.join(path, "main.log")
        if not os.path.exists(j) and not os.path.exists(m):
            sys.exit(f"error: {path}: neither main.jsonl nor main.log")
        path = j if os.path.exists(j) else m
    if not os.path.exists(path):
        sys.exit(f"error: {path}: not found")
    label = os.path.basename(os.path.dirname(os.path.abspath(path)))
    if not path.endswith(".jsonl"):
        train, val, hs = read_main_log(path, tokens_per_step)
        return label, [train[k] for k in sorted(train)], [val[k] for k in sorted(val)], [hs[k] for k in sorted(hs)], [], [], {}
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
    train, val, hs, dpo, dpo_val, tasks = {}, {}, {}, {}, {}, {}
    for r in rows:
        if r.get("task") is not None and r.get(r.get("headline", "")) is not None:
            tasks.setdefault(r["task"], {})[r["step"]] = r
        if r.get("dpo_loss") is not None:
            dpo[r["step"]] = r
        if r.get("dpo_val_loss") is not None:
            dpo_val[r["step"]] = r
        if "loss" in r:
            train[r["step"]] = r
        if r.get("val_loss") is not None:
            val[r["step"]] = r
        if r.get("hellaswag") is not None:
            hs[r["step"]] = r
    return (label, [train[k] for k in sorted(train)], [val[k] for k in sorted(val)], [hs[k] for k in sorted(hs)],
            [dpo[k] for k in sorted(dpo)], [dpo_val[k] for k in sorted(dpo_val)],
            {t: [v[k] for k in sorted(v)] for t, v in tasks.items()})


def series(records, x, y):
    pts = [(r[x], r[y]) for r in records if r.get(x) is not None and r.get(y) is not None and math.isfinite(r[y])]
    return [p[0] for p in pts], [p[1] for p in pts]


def ema(ys, span):
    """Exponential moving average over about span points, bias-corrected (starts at the data)."""
    if span <= 1:
        return list(ys)
    a = 2.0 / (span + 1)
    out, m, w = [], 0.0, 0.0
    for y in ys:
        m = (1 - a) * m + a * y
        w = (1 - a) * w + a
        out.append(m / w)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+")
    ap.add_argument("-o", "--output", default="runs.png")
    ap.add_argument("--logx", action="store_true", help="logarithmic x axes")
    ap.add_argument("--smooth", type=float, default=0, metavar="N", help="EMA of the train loss over about N steps")
    ap.add_argument("--title", default=None, help="figure title")
    ap.add_argument("--tokens-per-step", type=float, default=None, metavar="D",
                    help="tokens per step, for main.log runs (they have no token counts)")
    args = ap.parse_args()
    if args.smooth < 0:
        ap.error("--smooth must be >= 0")
    runs = [read_run(p, args.tokens_per_step) for p in args.runs]
    # x axis: tokens when every run has them, else steps
    has_tokens = all(r.get("tokens") is not None for _, tr, va, _, _, _, _ in runs for r in tr + va)
    xkey = "tokens" if has_tokens else "step"
    have_flops = any(r.get("flops") is not None for _, tr, _, _, _, _, _ in runs for r in tr)
    have_hs = any(hs for _, _, _, hs, _, _, _ in runs)
    have_tasks = any(tk for *_, tk in runs)
    have_dpo = any(d or dv for _, _, _, _, d, dv, _ in runs)
    have_bpb = any(r.get("val_bpb") is not None for _, _, va, _, _, _, _ in runs for r in va)
    panels = [xkey] + (["flops"] if have_flops else [])
    bpb_x = "flops" if have_flops else xkey  # bits per byte compares vocabularies: against compute
    ncols = len(panels) + (1 if have_hs else 0) + (2 if have_dpo else 0) + (1 if have_bpb else 0) + (1 if have_tasks else 0)
    fig, axes = plt.subplots(1, ncols, figsize=(6 * ncols, 4.5), squeeze=False)
    axes = axes[0]
    hs_ax = len(panels) if have_hs else None
    dpo_ax = len(panels) + (1 if have_hs else 0)
    bpb_ax = dpo_ax + (2 if have_dpo else 0)
    tasks_ax = bpb_ax + (1 if have_bpb else 0)
    styles = ["-", "--", ":", "-."]
    task_color = {}
    for i, (label, train, val, hs, dpo, dpo_val, tasks) in enumerate(runs):
        color = f"C{i}"
        for ax, x in zip(axes, panels):
            tx, ty = series(train, x, "loss")
            if tx:
                if args.smooth > 1:
                    ax.plot(tx, ty, color=color, alpha=0.2, lw=1)
                    ax.plot(tx, ema(ty, args.smooth), color=color, lw=1.5, label=f"{label} train (EMA {args.smooth:g})")
                else:
                    ax.plot(tx, ty, color=color, alpha=0.5, lw=1, label=f"{label} train")
            vx, vy = series(val, x, "val_loss")
            if vx:
                ax.plot(vx, vy, color=color, marker="o", ms=3, lw=2, label=f"{label} val")
        if have_bpb:
            bx, by = series(val, bpb_x, "val_bpb")
            if bx:
                axes[bpb_ax].plot(bx, by, color=color, marker="o", ms=3, lw=2, label=label)
        if have_hs:
            hx, hy = series(hs, xkey, "hellaswag")
            if hx:
                axes[hs_ax].plot(hx, hy, color=color, marker="o", ms=3, label=label)
        # each task's headline metric (the one lm-evaluation-harness reports first): a colour per
        # task, a line style per run, the task's chance level dotted in its colour
        for task, recs in sorted(tasks.items()):
            c = task_color.setdefault(task, f"C{len(task_color) % 10}")
            head = recs[-1]["headline"]
            tx, ty = series(recs, xkey, head)
            if tx:
                axes[tasks_ax].plot(tx, ty, color=c, ls=styles[i % len(styles)], marker="o", ms=3,
                                    label=f"{task} {head}" + (f" ({label})" if len(runs) > 1 else ""))
                if i == 0 and recs[-1].get("chance") is not None:
                    axes[tasks_ax].axhline(recs[-1]["chance"], color=c, ls=":", lw=0.8)
        if have_dpo:
            for k, key in enumerate(("reward_accuracy", "reward_margin")):
                ax = axes[dpo_ax + k]
                tx, ty = series(dpo, "step", "dpo_" + key)
                if tx:
                    ax.plot(tx, ema(ty, max(args.smooth, 1)), color=color, alpha=0.35, lw=1, label=f"{label} train")
                vx, vy = series(dpo_val, "step", "dpo_val_" + key)
                if vx:
                    ax.plot(vx, vy, color=color, marker="o", ms=3, lw=2, label=f"{label} held-out")
    names = {"tokens": "tokens", "step": "step", "flops": "training FLOPs"}
    def finish(ax, xlabel, ylabel, fontsize=8):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=fontsize)
    for ax, x in zip(axes, panels):
        finish(ax, names[x], "loss")
    if have_dpo:
        for k, name in enumerate(("DPO reward accuracy", "DPO reward margin")):
            finish(axes[dpo_ax + k], "step", name, 7)
    if have_hs:
        axes[hs_ax].axhline(0.25, color="gray", ls="--", lw=1, label="chance")
        finish(axes[hs_ax], names[xkey], "HellaSwag accuracy")
    if have_bpb:
        finish(axes[bpb_ax], names[bpb_x], "val bits per byte")
    if have_tasks:
        finish(axes[tasks_ax], names[xkey], "task score (dotted: chance)", 7)
    if args.logx:
        for ax in axes:
            ax.set_xscale("log", nonpositive="mask")  # step 0 / 0 tokens: left out
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    drawn = [f"loss vs {names[x]}" for x in panels] + (["HellaSwag"] if have_hs else []) + \
        (["DPO reward accuracy", "DPO reward margin"] if have_dpo else []) + (["val bits per byte"] if have_bpb else []) + (["tasks"] if have_tasks else [])
    print(f"wrote {args.output} (panels: {', '.join(drawn)})")


if __name__ == "__main__":
    main()
