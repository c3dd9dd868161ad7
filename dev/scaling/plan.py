#!/usr/bin/python3
"""Compute-optimal planner: for a FLOP budget, the model size N and token count D that
minimise L(N, D) = E + A/N^alpha + B/D^beta under C = 6 N D, the predicted loss, the
nearest preset of the trainer's dN family, and the wall time.

  python3 dev/scaling/plan.py --flops 1e21                       # Epoch's refit (default)
  python3 dev/scaling/plan.py --pf-days 3 --published chinchilla
  python3 dev/scaling/plan.py --flops 1e18,1e19,1e20 --fit fit.json --mfu 0.4 --peak-tflops 989
  python3 dev/scaling/plan.py --params 124e6 --tokens-per-second 1.2e6
  python3 dev/scaling/plan.py --presets                          # the dN family's counts
  python3 dev/scaling/plan.py --sweep manifest.csv --mfu 0.4 --peak-tflops 989 --markdown
"""

import argparse
import csv
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scaling_lib as S  # noqa: E402

PROG = "plan.py"


class PlanError(Exception):
    pass


def number_list(text, what):
    out = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise PlanError("%s: not a number: %r" % (what, part))
        if not math.isfinite(v) or v <= 0:
            raise PlanError("%s: must be positive and finite, got %r" % (what, part))
        out.append(v)
    return out


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compute-optimal N, D, loss and wall time for a FLOP budget (Chinchilla approach 3 "
                    "coefficients), and the nearest preset of the trainer's dN family.",
        epilog="Coefficients: --published epoch (the default; Besiroglu et al. 2024's refit: E 1.8172,\n"
               "A 482.01, B 2085.43, alpha 0.3478, beta 0.3658), --published chinchilla (Hoffmann et\n"
               "al. 2022: E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28), or --fit fit.json (approach 3\n"
               "of dev/scaling/fit.py). Published coefficients count N as all parameters, embeddings\n"
               "included; a fit counts N as it was fitted (fit.json's count). The nearest preset is\n"
               "matched on that count. The optimum uses C = 6ND; a preset's tokens for a budget use\n"
               "the trainer's FLOPs per token (6 (params - wpe) + 6 L C T).\n\n"
               "Wall time: --tokens-per-second R (D / R), or --mfu U --peak-tflops P (C / (U P));\n"
               "one H100 SXM: 989 dense bf16 TFLOP/s.")
    what = p.add_argument_group("what to plan (one of)")
    what.add_argument("--flops", "--budgets", dest="flops", metavar="C[,C...]", help="FLOP budget(s), e.g. 1e18,1e19")
    what.add_argument("--pf-days", metavar="X[,X...]", help="budget(s) in PF-days (8.64e19 FLOPs each)")
    what.add_argument("--params", metavar="N[,N...]", help="reverse: model size(s); gives the compute-optimal D and C")
    what.add_argument("--presets", action="store_true", help="print the dN family's parameter counts")
    what.add_argument("--sweep", metavar="MANIFEST",
                      help="a sweep manifest: its FLOPs per budget and the wall time at --mfu/--tokens-per-second")
    co = p.add_argument_group("coefficients")
    co.add_argument("--published", choices=sorted(S.PUBLISHED), help="published coefficients (default epoch)")
    co.add_argument("--fit", metavar="JSON", help="fit.json written by dev/scaling/fit.py --out")
    co.add_argument("--fit-count", choices=S.COUNTS, help="which count's fit in fit.json (default: its primary)")
    co.add_argument("--count", choices=S.COUNTS,
                    help="match presets on this count (default: the count the coefficients assume)")
    m = p.add_argument_group("model family and hardware")
    m.add_argument("--vocab", type=int, default=50257, help="vocabulary size V (wte has V padded to 128; default %(default)s)")
    m.add_argument("--seq-len", type=int, default=1024, help="T for the attention FLOPs (default %(default)s)")
    m.add_argument("--max-depth", type=int, default=48, help="presets d1..dMAX (default %(default)s)")
    m.add_argument("--tokens-per-second", type=float, metavar="R", help="training throughput in tokens/s")
    m.add_argument("--mfu", type=float, metavar="U", help="model FLOPs utilisation, 0 < U <= 1")
    m.add_argument("--peak-tflops", type=float, metavar="P", help="peak TFLOP/s of the device(s)")
    o = p.add_argument_group("output")
    o.add_argument("--markdown", action="store_true", help="Markdown tables")
    o.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    a = p.parse_args(argv)
    chosen = [x for x in ("flops", "pf_days", "params", "sweep") if getattr(a, x) is not None] + (["presets"] if a.presets else [])
    if len(chosen) != 1:
        p.error("give exactly one of --flops, --pf-days, --params, --presets, --sweep")
    if a.fit and a.published:
        p.error("--fit and --published exclude each other")
    if a.mfu is not None and not (0 < a.mfu <= 1):
        p.error("--mfu must be in (0, 1], got %g" % a.mfu)
    if (a.mfu is None) != (a.peak_tflops is None):
        p.error("--mfu and --peak-tflops go together")
    if a.peak_tflops is not None and not (a.peak_tflops > 0 and math.isfinite(a.peak_tflops)):
        p.error("--peak-tflops must be positive")
    if a.tokens_per_second is not None and not (a.tokens_per_second > 0 and math.isfinite(a.tokens_per_second)):
        p.error("--tokens-per-second must be positive")
    if a.vocab < 1 or a.seq_len < 1 or not (1 <= a.max_depth <= 256):
        p.error("--vocab and --seq-len must be >= 1, --max-depth 1..256")
    return a


def load_coeffs(a):
    if a.fit:
        if not os.path.isfile(a.fit):
            raise PlanError("%s: no such file" % a.fit)
        try:
            with open(a.fit) as f:
                data = json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            raise PlanError("%s: not JSON (%s)" % (a.fit, e))
        if not isinstance(data, dict) or "fits" not in data:
            raise PlanError("%s: not a fit.json of dev/scaling/fit.py (no 'fits')" % a.fit)
        count = a.fit_count or data.get("primary_count")
        if count not in data["fits"]:
            raise PlanError("%s: no fit for count %r (has: %s)" % (a.fit, count, ", ".join(data["fits"])))
        a3 = data["fits"][count].get("approach3", {})
        if "skipped" in a3 or any(a3.get(k) is None for k in ("E", "A", "B", "alpha", "beta")):
            raise PlanError("%s: no approach-3 fit for count %s (%s)" % (a.fit, count, a3.get("skipped", "missing")))
        c = {k: float(a3[k]) for k in ("E", "A", "B", "alpha", "beta")}
        c.update(count=count, source="%s (approach 3, N = %s parameters)" % (a.fit, count))
    else:
        name = a.published or "epoch"
        c = dict(S.PUBLISHED[name])
        c["source"] = "%s: %s" % (name, c["source"])
    c.update(S.derived(c))
    if not math.isfinite(c["G"]):
        raise PlanError("coefficients from %s have no compute-optimal allocation (alpha, beta, A, B must be > 0)" % c["source"])
    return c


def nearest_preset(presets, N, count):
    return min(presets, key=lambda r: abs(math.log(r[count] / N)))


def wall_seconds(a, C, D):
    if a.mfu is not None:
        return C / (a.mfu * a.peak_tflops * 1e12)
    if a.tokens_per_second is not None:
        return D / a.tokens_per_second
    return None


def plan_rows(a, c, presets, budgets=None, params=None):
    rows = []
    items = [("C", x) for x in budgets] if budgets is not None else [("N", x) for x in params]
    for kind, x in items:
        if kind == "C":
            C = x
            N, D = S.optimal_for_compute(c, C)
        else:
            N = x
            C, D = S.compute_for_params(c, N)
        loss = float(S.predict(c, N, D))
        pr = nearest_preset(presets, N, a.count)
        lo, hi = min(r[a.count] for r in presets), max(r[a.count] for r in presets)
        outside = N > 1.5 * hi or N < lo / 1.5
        fpt = S.flops_per_token(pr["L"], pr["C"], a.seq_len, a.vocab)
        Dp = C / fpt
        row = {"flops": C, "pf_days": C / S.PF_DAY, "N_opt": N, "D_opt": D, "tokens_per_param": D / N,
               "loss": loss, "preset": pr["preset"], "preset_N": pr[a.count], "preset_flops_per_token": fpt,
               "preset_tokens": Dp, "preset_tokens_per_param": Dp / pr[a.count],
               "preset_loss": float(S.predict(c, pr[a.count], Dp)), "preset_outside_family": outside}
        row["wall_seconds"] = wall_seconds(a, C, Dp)
        rows.append(row)
    return rows


def table(header, rows, markdown):
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    w = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w[i]) for i, c in enumerate(cells))
    return "\n".join([line(header), line(["-" * x for x in w])] + [line(r) for r in rows])


def hw_text(a):
    if a.mfu is not None:
        return "wall time at MFU %.2f of %g TFLOP/s (%.3g FLOP/s achieved)" % (a.mfu, a.peak_tflops, a.mfu * a.peak_tflops * 1e12)
    if a.tokens_per_second is not None:
        return "wall time at %.4g tokens/s (the preset's tokens)" % a.tokens_per_second
    return "no wall time (give --tokens-per-second, or --mfu and --peak-tflops)"


def do_plan(a, c, presets):
    if a.params is not None:
        rows = plan_rows(a, c, presets, params=number_list(a.params, "--params"))
    else:
        budgets = number_list(a.flops, "--flops") if a.flops is not None else \
            [x * S.PF_DAY for x in number_list(a.pf_days, "--pf-days")]
        rows = plan_rows(a, c, presets, budgets=budgets)
    print("Coefficients: %s" % c["source"])
    print("  E %.4g, A %.5g, B %.5g, alpha %.4f, beta %.4f; a = beta/(alpha+beta) = %.4f, G = %.4g; N counts %s parameters"
          % (c["E"], c["A"], c["B"], c["alpha"], c["beta"], c["a"], c["G"], c["count"]))
    if a.count != c["count"]:
        print("  note: presets matched on the %s count, but the coefficients assume %s" % (a.count, c["count"]))
    print("Optimum under C = 6 N D: N_opt = G (C/6)^a, D_opt = C / (6 N_opt). Preset: nearest dN in log N (%s count);"
          " its tokens = C / (trainer FLOPs per token at T=%d, V=%d)." % (a.count, a.seq_len, a.vocab))
    print(hw_text(a))
    print()
    header = ["C (FLOPs)", "PF-days", "N_opt", "D_opt", "D/N", "loss", "preset", "preset N", "preset D", "D/N", "loss"]
    if rows[0]["wall_seconds"] is not None:
        header.append("wall time")
    body = []
    for r in rows:
        cells = [S.fmt_num(r["flops"]), S.fmt_num(r["pf_days"]), S.fmt_count(r["N_opt"]), S.fmt_count(r["D_opt"]),
                 "%.1f" % r["tokens_per_param"], "%.4f" % r["loss"], r["preset"] + ("!" if r["preset_outside_family"] else ""), S.fmt_count(r["preset_N"]),
                 S.fmt_count(r["preset_tokens"]), "%.1f" % r["preset_tokens_per_param"], "%.4f" % r["preset_loss"]]
        if r["wall_seconds"] is not None:
            cells.append(S.fmt_duration(r["wall_seconds"]))
        body.append(cells)
    print(table(header, body, a.markdown))
    if any(r["preset_outside_family"] for r in rows):
        print("! N_opt is outside the presets d1..d%d (more than 1.5x beyond the nearest): a larger --max-depth or another family"
              % a.max_depth)
    return {"coefficients": c, "count": a.count, "seq_len": a.seq_len, "vocab": a.vocab, "rows": rows}


def do_presets(a):
    rows = S.preset_table(a.max_depth, a.vocab)
    print("dN family (llmc/checkpoint.h): L = N, C = 64 N, heads = N, except d12 (768, 12), d24 (1024, 16), "
          "d36 (1280, 20), d48 (1600, 25); maxT 1024; V = %d padded to %d rows of wte." % (a.vocab, S.padded_vocab(a.vocab)))
    print("total = every parameter; head = total - wpe (the N of the FLOP count); nonembed = total - wte - wpe.")
    print()
    header = ["preset", "L", "C", "heads", "total", "head", "nonembed", "FLOPs/token (T=%d)" % a.seq_len]
    body = [[r["preset"], str(r["L"]), str(r["C"]), str(r["NH"]), str(r["total"]), str(r["head"]), str(r["nonembed"]),
             S.fmt_num(S.flops_per_token(r["L"], r["C"], a.seq_len, a.vocab))] for r in rows]
    print(table(header, body, a.markdown))
    return {"presets": rows}


def do_sweep(a):
    path = a.sweep
    if not os.path.isfile(path):
        raise PlanError("%s: no such file" % path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = ["run", "mode", "budget_flops", "target_tokens", "flops", "status"]
        if reader.fieldnames is None or any(k not in reader.fieldnames for k in need):
            raise PlanError("%s: not a sweep manifest (needs columns %s)" % (path, ", ".join(need)))
        last = {}
        for lineno, r in enumerate(reader, start=2):
            last[r["run"] or "line%d" % lineno] = (lineno, r)
    groups = {}
    skipped = 0
    for run, (lineno, r) in last.items():
        def val(k):
            try:
                v = float(r.get(k) or "nan")
            except ValueError:
                raise PlanError("%s:%d (run %s): column %s is not a number: %r" % (path, lineno, run, k, r.get(k)))
            return v if math.isfinite(v) and v > 0 else None
        C = val("flops")
        if C is None and r["mode"] == "isoflop":
            C = val("budget_flops")
        if C is None and val("target_tokens") and val("flops_per_token"):
            C = val("target_tokens") * val("flops_per_token")
        if C is None:
            skipped += 1
            continue
        key = ("isoflop", val("budget_flops")) if r["mode"] == "isoflop" else ("tokens", val("target_tokens"))
        g = groups.setdefault(key, {"runs": 0, "flops": 0.0, "done": 0})
        g["runs"] += 1
        g["flops"] += C
        g["done"] += r["status"] == "done"
    if not groups:
        raise PlanError("%s: no run with FLOPs (flops, or budget_flops, or target_tokens x flops_per_token)" % path)
    print("Sweep %s: %d run(s) in %d group(s)%s; %s" % (path, sum(g["runs"] for g in groups.values()), len(groups),
                                                       ", %d without FLOPs skipped" % skipped if skipped else "", hw_text(a)))
    print()
    header = ["group", "runs", "done", "FLOPs", "PF-days"]
    if a.mfu is not None:
        header.append("wall time")
    body = []
    total = 0.0
    rows = []
    for key in sorted(groups, key=lambda k: (k[0], k[1] or 0)):
        g = groups[key]
        total += g["flops"]
        name = ("IsoFLOP %s" % S.fmt_num(key[1])) if key[0] == "isoflop" else ("tokens %s" % S.fmt_count(key[1] or 0))
        cells = [name, str(g["runs"]), str(g["done"]), S.fmt_num(g["flops"]), S.fmt_num(g["flops"] / S.PF_DAY)]
        sec = g["flops"] / (a.mfu * a.peak_tflops * 1e12) if a.mfu is not None else None
        if sec is not None:
            cells.append(S.fmt_duration(sec))
        body.append(cells)
        rows.append({"group": name, "runs": g["runs"], "done": g["done"], "flops": g["flops"], "wall_seconds": sec})
    cells = ["total", str(sum(g["runs"] for g in groups.values())), str(sum(g["done"] for g in groups.values())),
             S.fmt_num(total), S.fmt_num(total / S.PF_DAY)]
    if a.mfu is not None:
        cells.append(S.fmt_duration(total / (a.mfu * a.peak_tflops * 1e12)))
    body.append(cells)
    print(table(header, body, a.markdown))
    if a.mfu is None:
        print("\n(--mfu and --peak-tflops give the wall time)")
    return {"sweep": path, "groups": rows, "total_flops": total}


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if a.presets:
            out = do_presets(a)
        elif a.sweep:
            out = do_sweep(a)
        else:
            c = load_coeffs(a)
            a.count = a.count or c["count"]
            out = do_plan(a, c, S.preset_table(a.max_depth, a.vocab))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
                f.write("\n")
    except (PlanError, S.ScalingError) as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    except OSError as e:
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
