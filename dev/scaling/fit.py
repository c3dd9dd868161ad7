#!/usr/bin/python3
"""Scaling-law fits on a sweep manifest (scripts/scaling_sweep.sh), on Epoch AI's
Chinchilla points (--epoch), or on Gadre et al. 2024's runs (--gadre).

  python3 dev/scaling/fit.py sweep/manifest.csv --out fit.json --report fit.md --plots fit_plots
  python3 dev/scaling/fit.py --epoch --bootstrap 1000 --report epoch.md
  python3 dev/scaling/fit.py --gadre c4_val --params both

Fits (see dev/scaling/README.md): Kaplan et al.'s L(X) = (X_c/X)^alpha for X = N, D, C on
the frontier of the runs; Chinchilla's approach 2 (IsoFLOP parabolas, N_opt = k_N C^a) and
approach 3 (L(N, D) = E + A/N^alpha + B/D^beta; Huber on log loss, L-BFGS-B from Hoffmann's
grid, bootstrap intervals).
"""

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling_lib as S  # noqa: E402

PROG = "fit.py"


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Scaling-law fits (Kaplan; Chinchilla approaches 2 and 3) on a sweep manifest, "
                    "Epoch AI's Chinchilla points, or Gadre et al. 2024's runs.",
        epilog="Parameter counts (--params):\n"
               + "".join("  %-9s %s\n" % (k, v) for k, v in S.COUNT_HELP.items())
               + "  both      nonembed and total, reported side by side (the first is the primary fit)\n"
               "  all       nonembed, head and total\n"
               "Default: head. It counts the embedding matrix (as Chinchilla counts all parameters;\n"
               "Pearce & Song 2024 and Porian et al. 2024 trace Kaplan's larger N exponent at small\n"
               "scale to leaving it out), and it is the N of the trainer's FLOP count, so C = 6ND\n"
               "holds up to the attention term. It differs from total only by wpe (1024 C).\n"
               "Epoch's points have one count (total); --params is ignored for them.\n\n"
               "Exit status: 0 if at least one fit was made, 1 on bad input or when no fit\n"
               "could be made (the reason is printed).")
    src = p.add_argument_group("input (one of)")
    src.add_argument("manifest", nargs="?", help="sweep manifest CSV (runs with status done are used)")
    src.add_argument("--epoch", nargs="?", const=S.DEFAULT_EPOCH_CSV, metavar="CSV",
                     help="Epoch AI's 245 Chinchilla points (default path: %(const)s)")
    src.add_argument("--gadre", nargs="?", const="c4_val", metavar="VAL_DATA",
                     help="Gadre et al. 2024's runs, loss on validation set VAL_DATA (default c4_val; also "
                          "openlm, paloma_c4_en, paloma_ptb, ...)")
    src.add_argument("--gadre-path", default=S.DEFAULT_GADRE_JSONL, metavar="JSONL", help="default: %(default)s")
    src.add_argument("--gadre-dataset", default="c4_original",
                     help="training set of the Gadre runs: c4_original, rpj, rw_original or all (default %(default)s)")
    src.add_argument("--epoch-drop", type=int, default=5, metavar="K",
                     help="drop the K highest-loss Epoch points, as Epoch did (default %(default)s)")
    src.add_argument("--loss", default="final_val_loss", choices=S.LOSS_COLUMNS,
                     help="manifest loss column (default %(default)s)")
    f = p.add_argument_group("fits")
    f.add_argument("--params", default="head", choices=list(S.COUNTS) + ["both", "all"],
                   help="parameter count for N (default %(default)s; see below)")
    f.add_argument("--starts", default="32", metavar="K|all",
                   help="approach 3: L-BFGS-B from the K best points of Hoffmann's 4500-point grid "
                        "(ranked by objective), or 'all' of them as Hoffmann and Epoch did (default %(default)s)")
    f.add_argument("--bootstrap", type=int, default=200, metavar="R",
                   help="approach 3: bootstrap resamples (runs with replacement; 0: none; default %(default)s)")
    f.add_argument("--boot-starts", type=int, default=2, metavar="K",
                   help="starts per resample besides the full-data optimum (default %(default)s)")
    f.add_argument("--seed", type=int, default=0, help="bootstrap seed (default %(default)s)")
    f.add_argument("--huber-delta", type=float, default=1e-3, help="default %(default)s")
    f.add_argument("--include-unbracketed", action="store_true",
                   help="approach 2: keep IsoFLOP profiles whose minimum is at an edge in the power laws")
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="JSON", help="write everything as JSON (schema: dev/scaling/README.md)")
    o.add_argument("--report", metavar="MD", help="write a Markdown report")
    o.add_argument("--plots", metavar="DIR", help="write PNGs into DIR (created)")
    o.add_argument("--quiet", action="store_true", help="no report on stdout")
    a = p.parse_args(argv)
    n_src = sum(x is not None for x in (a.manifest, a.epoch, a.gadre))
    if n_src != 1:
        p.error("give exactly one input: a manifest CSV, --epoch or --gadre")
    if a.starts != "all":
        try:
            k = int(a.starts)
            if k < 1:
                raise ValueError
        except ValueError:
            p.error("--starts: a positive integer or 'all', got %r" % a.starts)
        a.starts = "ranked:%d" % k
    if a.bootstrap < 0 or a.boot_starts < 0:
        p.error("--bootstrap and --boot-starts must be >= 0")
    if not (a.huber_delta > 0):
        p.error("--huber-delta must be > 0")
    return a


def load(a):
    if a.manifest is not None:
        return S.load_manifest(a.manifest, a.loss)
    if a.epoch is not None:
        return S.load_epoch(a.epoch, drop_highest=a.epoch_drop)
    return S.load_gadre(a.gadre_path, val_data=a.gadre, dataset=a.gadre_dataset)


def counts_for(a, runs):
    have = runs.counts()
    want = {"both": ["nonembed", "total"], "all": ["nonembed", "head", "total"]}.get(a.params, [a.params])
    if runs.source["kind"] == "epoch":
        return ["total"]
    return [c for c in want if c in have]


def run_fits(a, runs):
    result = {"schema": "llmc-scaling-fit/1", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "source": runs.source, "notes": runs.notes, "n_runs": len(runs),
              "settings": {"params": a.params, "starts": a.starts, "bootstrap": a.bootstrap,
                           "boot_starts": a.boot_starts, "seed": a.seed, "huber_delta": a.huber_delta,
                           "include_unbracketed": a.include_unbracketed},
              "fits": {}}
    counts = counts_for(a, runs)
    # the primary fit (plots, plan.py's default): head if fitted, else total, else nonembed
    result["primary_count"] = next(c for c in ("head", "total", "nonembed") if c in counts)
    any_fit = False
    problems = []
    for count in counts:
        fit = {"count": count, "count_meaning": S.COUNT_HELP[count] if runs.source["kind"] != "epoch"
               else "Chinchilla's model sizes (all parameters)"}
        fit["kaplan"] = S.fit_kaplan(runs, count)
        fit["approach2"] = S.fit_approach2(runs, count, include_unbracketed=a.include_unbracketed)
        fit["approach3"] = S.fit_approach3(runs, count, starts=a.starts, n_boot=a.bootstrap, seed=a.seed,
                                           boot_starts=a.boot_starts, delta=a.huber_delta)
        for name, part in (("Kaplan L(N)", fit["kaplan"]["N"]), ("Kaplan L(D)", fit["kaplan"]["D"]),
                           ("Kaplan L(C)", fit["kaplan"]["C"]), ("approach 2", fit["approach2"]),
                           ("approach 3", fit["approach3"])):
            if "skipped" in part:
                problems.append("%s (%s): %s" % (name, count, part["skipped"]))
            else:
                any_fit = True
        result["fits"][count] = fit
    result["problems"] = problems
    return result, any_fit


# ---------------------------------------------------------------------------------------
# Report

def ci_text(a3, k):
    b = a3.get("bootstrap")
    if not b:
        return ""
    lo, hi = b["ci"][k]
    return "[%s, %s]" % (S.fmt_num(lo, 4), S.fmt_num(hi, 4))


def report(result):
    src = result["source"]
    L = []
    L.append("# Scaling-law fit: %s" % {"manifest": "sweep manifest", "epoch": "Epoch AI's Chinchilla points",
                                         "gadre": "Gadre et al. 2024"}[src["kind"]])
    L.append("")
    L.append("Source: `%s`, %d run(s) used." % (src["path"], result["n_runs"]))
    for n in result["notes"]:
        L.append("- %s" % n)
    L.append("")
    counts = list(result["fits"])
    if len(counts) > 1:
        L.append("## Both counts side by side")
        L.append("")
        L.append("| quantity | " + " | ".join(counts) + " |")
        L.append("|---|" + "---|" * len(counts))
        rows = [("Kaplan alpha_N", lambda f: f["kaplan"]["N"].get("alpha")),
                ("Kaplan alpha_C", lambda f: f["kaplan"]["C"].get("alpha")),
                ("approach 2: a (N_opt ~ C^a)", lambda f: f["approach2"].get("a")),
                ("approach 3: alpha", lambda f: f["approach3"].get("alpha")),
                ("approach 3: beta", lambda f: f["approach3"].get("beta")),
                ("approach 3: E", lambda f: f["approach3"].get("E")),
                ("approach 3: a = beta/(alpha+beta)", lambda f: f["approach3"].get("a"))]
        for name, get in rows:
            L.append("| %s | %s |" % (name, " | ".join(S.fmt_num(get(result["fits"][c]), 4) for c in counts)))
        L.append("")
        L.append("The N count moves the exponents most at small N, where the embedding is a large share "
                 "of the parameters (Pearce & Song 2024; Porian et al. 2024).")
        L.append("")
    for count in counts:
        f = result["fits"][count]
        L.append("## N = %s parameters" % count)
        L.append("")
        L.append("(%s)" % f["count_meaning"])
        L.append("")
        L.append("### Kaplan et al. 2020: L(X) = (X_c / X)^alpha on the frontier")
        L.append("")
        L.append("| X | alpha | X_c | points | R^2 |")
        L.append("|---|---|---|---|---|")
        for key, what in (("N", "N (best loss per size)"), ("D", "D tokens"), ("C", "C FLOPs")):
            k = f["kaplan"][key]
            if "skipped" in k:
                L.append("| %s | skipped: %s | | | |" % (what, k["skipped"]))
                continue
            xc = S.fmt_num(k["X_c"])
            if key == "C":
                xc += " (%s PF-days)" % S.fmt_num(k["X_c_pf_days"])
            L.append("| %s | %s +- %s | %s | %d | %.4f |" % (what, S.fmt_num(k["alpha"], 4), S.fmt_num(k["alpha_se"], 2),
                                                             xc, k["n_points"], k["r2"]))
        L.append("")
        a2 = f["approach2"]
        L.append("### Chinchilla approach 2: IsoFLOP profiles")
        L.append("")
        if "profiles" in a2:
            L.append("| budget C | PF-days | runs | N_opt | D_opt | loss at min | bracketed | used |")
            L.append("|---|---|---|---|---|---|---|---|")
            for p in a2["profiles"]:
                if "N_opt" in p:
                    L.append("| %s | %s | %d | %s | %s | %.4f | %s | %s |" % (
                        S.fmt_num(p["budget"]), S.fmt_num(p["budget_pf_days"]), p["n_runs"], S.fmt_num(p["N_opt"]),
                        S.fmt_num(p["D_opt"]), p["L_opt"], "yes" if p["bracketed"] else "**no**: " + p.get("flag", ""),
                        "yes" if p["used"] else "no"))
                else:
                    L.append("| %s | %s | %d | | | | %s | no |" % (S.fmt_num(p["budget"]), S.fmt_num(p["budget_pf_days"]),
                                                                  p["n_runs"], p.get("flag", "")))
            L.append("")
        if "skipped" in a2:
            L.append("Power laws skipped: %s." % a2["skipped"])
        else:
            L.append("N_opt = %s C^%s (+- %s), D_opt = %s C^%s (+- %s); a + b = %.4f; %d of %d profiles used." % (
                S.fmt_num(a2["k_N"]), S.fmt_num(a2["a"], 4), S.fmt_num(a2["a_se"], 2), S.fmt_num(a2["k_D"]),
                S.fmt_num(a2["b"], 4), S.fmt_num(a2["b_se"], 2), a2["a_plus_b"], a2["n_used"], a2["n_profiles"]))
        L.append("")
        a3 = f["approach3"]
        L.append("### Chinchilla approach 3: L(N, D) = E + A/N^alpha + B/D^beta")
        L.append("")
        if "skipped" in a3:
            L.append("Skipped: %s." % a3["skipped"])
        else:
            b = a3.get("bootstrap")
            L.append("Huber (delta %g) on log loss, summed; L-BFGS-B from %d start(s) (%s), %d reached the best "
                     "objective %.6g." % (a3["huber_delta"], a3["n_starts"], a3["starts"], a3["n_starts_at_best"],
                                          a3["objective"]))
            if b:
                L.append("Intervals: %d%% bootstrap percentile, %d resamples of the runs, seed %d." % (
                    round(100 * b["level"]), b["n"], b["seed"]))
                bad = b["n"] - min(b["n_finite"].values())
                if bad:
                    L.append("%d resample(s) failed or gave non-finite coefficients (left out of the intervals)." % bad)
            if a3["n_runs"] < 15:
                L.append("Only %d runs for 5 coefficients: the fit is weakly determined." % a3["n_runs"])
            L.append("")
            L.append("| coefficient | estimate | interval |")
            L.append("|---|---|---|")
            for k in ("E", "A", "B", "alpha", "beta", "a", "b", "G"):
                L.append("| %s | %s | %s |" % (k, S.fmt_num(a3[k], 5), ci_text(a3, k)))
            L.append("")
            L.append("a = beta/(alpha+beta), b = alpha/(alpha+beta); N_opt(C) = G (C/6)^a, D_opt = C / (6 N_opt).")
            r = a3["residuals"]
            L.append("Fit: rms log residual %.4f, median |rel. error| %.2f%%, max %.2f%%." % (
                r["rms_log"], 100 * r["median_abs_rel"], 100 * r["max_abs_rel"]))
            if a3["E"] < 1e-3:
                L.append("")
                L.append("**Note**: E went to ~0: this fit prefers no irreducible-loss term; the exponents are then "
                         "those of a pure sum of two power laws, and extrapolations are unreliable.")
        L.append("")
    if result["problems"]:
        L.append("## Not fitted")
        L.append("")
        for pr in result["problems"]:
            L.append("- %s" % pr)
        L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------
# Plots

def plots(result, runs, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    os.makedirs(outdir, exist_ok=True)
    written = []
    count = result["primary_count"]
    f = result["fits"][count]
    N = runs.N[count]
    C = S.compute_of(runs, count)
    ref = dict(S.PUBLISHED["epoch"])
    ref.update(S.derived(ref))
    ref_label = "Epoch refit of Chinchilla (a=%.3f)" % ref["a"]

    # 1. IsoFLOP profiles
    a2 = f["approach2"]
    if "profiles" in a2:
        fig, ax = plt.subplots(figsize=(8, 5.5))
        cmap = plt.get_cmap("viridis")
        profs = a2["profiles"]
        for i, p in enumerate(profs):
            col = cmap(i / max(1, len(profs) - 1))
            pts = np.array([[r[0], r[2]] for r in p["runs"]])
            ax.scatter(pts[:, 0], pts[:, 1], color=col, s=18, label="%s FLOPs" % S.fmt_num(p["budget"], 2))
            if "parabola" in p and len(pts) > 1:
                xs = np.linspace(np.log(pts[:, 0].min()) - 0.2, np.log(pts[:, 0].max()) + 0.2, 100)
                ax.plot(np.exp(xs), np.polyval(p["parabola"], xs), color=col, lw=1)
            if "N_opt" in p:
                ax.scatter([p["N_opt"]], [p["L_opt"]], marker="*", s=160, edgecolors="k",
                           color=col if p["bracketed"] else "none", zorder=5)
        ax.set_xscale("log")
        ax.set_xlabel("N (%s parameters)" % count)
        ax.set_ylabel("loss")
        ax.set_title("IsoFLOP profiles: parabolas in log N, minima (hollow star: not bracketed)")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = os.path.join(outdir, "isoflop.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    # 2. Loss against compute, frontier, Kaplan law
    fig, ax = plt.subplots(figsize=(8, 5.5))
    ax.scatter(C, runs.L, s=12, color="0.6", label="runs")
    kc = f["kaplan"]["C"]
    if "frontier" in kc:
        fr = np.array([[x[0], x[1]] for x in kc["frontier"]])
        ax.scatter(fr[:, 0], fr[:, 1], s=22, color="C3", label="frontier")
        xs = np.geomspace(C.min(), C.max(), 100)
        ax.plot(xs, (kc["X_c"] / xs) ** kc["alpha"], color="C3",
                label="L = (%s PF-days / C)^%.4f" % (S.fmt_num(kc["X_c_pf_days"]), kc["alpha"]))
    a3 = f["approach3"]
    if "skipped" not in a3 and math.isfinite(a3["G"]):
        xs = np.geomspace(C.min(), C.max(), 100)
        n_o, d_o = S.optimal_for_compute(a3, xs)
        ax.plot(xs, S.predict(a3, n_o, d_o), color="C0", ls="--", label="approach 3 at the optimal N, D")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training FLOPs C")
    ax.set_ylabel("loss")
    sec = ax.secondary_xaxis("top", functions=(lambda x: x / S.PF_DAY, lambda x: x * S.PF_DAY))
    sec.set_xlabel("PF-days")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(outdir, "loss_vs_compute.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    # 3. N_opt and D_opt against C
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.8))
    lo, hi = C.min(), C.max()
    if "profiles" in a2:
        bs = [p["budget"] for p in a2["profiles"]]
        lo, hi = min(lo, min(bs)), max(hi, max(bs))
    xs = np.geomspace(lo / 3, hi * 3, 100)
    for ax, key, kk, ek in ((axs[0], "N_opt", "k_N", "a"), (axs[1], "D_opt", "k_D", "b")):
        if "profiles" in a2:
            pts = [(p["budget"], p[key], p["used"]) for p in a2["profiles"] if key in p]
            if pts:
                arr = np.array([(x, y) for x, y, u in pts if u])
                if len(arr):
                    ax.scatter(arr[:, 0], arr[:, 1], color="C3", zorder=5, label="IsoFLOP minima")
                arr = np.array([(x, y) for x, y, u in pts if not u])
                if len(arr):
                    ax.scatter(arr[:, 0], arr[:, 1], facecolors="none", edgecolors="C3", zorder=5,
                               label="not bracketed (unused)")
            if "skipped" not in a2:
                ax.plot(xs, a2[kk] * xs ** a2[ek], color="C3", label="approach 2: C^%.3f" % a2[ek])
        if "skipped" not in a3 and math.isfinite(a3["G"]):
            n_o, d_o = S.optimal_for_compute(a3, xs)
            ax.plot(xs, n_o if key == "N_opt" else d_o, color="C0", ls="--",
                    label="approach 3: C^%.3f" % a3["a" if key == "N_opt" else "b"])
        n_r, d_r = S.optimal_for_compute(ref, xs)
        ax.plot(xs, n_r if key == "N_opt" else d_r, color="0.4", ls=":", label=ref_label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training FLOPs C")
        ax.set_ylabel(key + (" (%s parameters)" % count if key == "N_opt" else " (tokens)"))
        ax.legend(fontsize=7)
    fig.suptitle("Compute-optimal allocation (reference: Epoch AI's approach-3 refit, N = all parameters)",
                 fontsize=10)
    fig.tight_layout()
    path = os.path.join(outdir, "optimal_vs_compute.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    # 4. Approach 3: predicted against observed
    if "skipped" not in a3:
        fig, ax = plt.subplots(figsize=(5.5, 5.5))
        pred = S.predict(a3, N, runs.D)
        ax.scatter(runs.L, pred, s=12)
        m0, m1 = min(runs.L.min(), pred.min()), max(runs.L.max(), pred.max())
        ax.plot([m0, m1], [m0, m1], color="k", lw=0.8)
        ax.set_xlabel("observed loss")
        ax.set_ylabel("L(N, D) fitted")
        ax.set_title("approach 3 fit (rms log residual %.4f)" % a3["residuals"]["rms_log"], fontsize=10)
        fig.tight_layout()
        path = os.path.join(outdir, "approach3_fit.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def jsonable(x):
    if isinstance(x, dict):
        return {k: jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return jsonable(x.item())
    return x


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import scipy.optimize  # noqa: F401
        import matplotlib  # noqa: F401
    except ImportError as e:
        print("%s: error: %s; fit.py needs numpy, scipy and matplotlib (Debian: apt install python3-scipy "
              "python3-matplotlib; or run it with /usr/bin/python3 or .venv/bin/python)" % (PROG, e), file=sys.stderr)
        return 1
    try:
        runs = load(a)
        result, any_fit = run_fits(a, runs)
    except S.ScalingError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    text = report(result)
    if not a.quiet:
        print(text)
    try:
        if a.out:
            with open(a.out, "w") as fo:
                json.dump(jsonable(result), fo, indent=1)
                fo.write("\n")
        if a.report:
            with open(a.report, "w") as fo:
                fo.write(text + "\n")
        if a.plots:
            for path in plots(result, runs, a.plots):
                if not a.quiet:
                    print("wrote %s" % path)
    except OSError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    if not any_fit:
        print("%s: error: no fit could be made from %s:\n  %s" % (PROG, result["source"]["path"],
                                                                  "\n  ".join(result["problems"])), file=sys.stderr)
        return 1
    for pr in result["problems"]:
        print("%s: note: not fitted: %s" % (PROG, pr), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
