"""Shared code of dev/scaling/fit.py and dev/scaling/plan.py.

Scaling-law fits on a table of training runs (N parameters, D tokens, C FLOPs, loss L):
  - Kaplan et al. 2020: L(X) = (X_c / X)^alpha for X = N, D, C, on the frontier of the runs;
  - Hoffmann et al. 2022 approach 2: a parabola in log N per IsoFLOP profile, its minimum
    N_opt(C), then power laws N_opt = k_N C^a and D_opt = k_D C^b;
  - Hoffmann et al. 2022 approach 3: L(N, D) = E + A/N^alpha + B/D^beta, fitted as in
    Besiroglu et al. 2024 (Epoch AI's replication): Huber loss (delta 1e-3) between
    log-sum-exp(a - alpha log N, b - beta log D, e) and log L, summed over runs, L-BFGS-B
    from Hoffmann's grid of starts, bootstrap intervals.
and the parameter counts of the trainer's dN model family (llmc/checkpoint.h).

Only numpy and scipy (matplotlib only in plot functions, imported there).
"""

import csv
import itertools
import json
import math
import os

import numpy as np

PF_DAY = 8.64e19  # FLOPs in one PF-day (1e15 FLOP/s for 86400 s)

COUNTS = ("nonembed", "head", "total")
COUNT_HELP = {
    "total": "every parameter (wte with its padded rows, wpe, all blocks)",
    "head": "all but wpe (wte counted once, as the tied LM head): the N of the trainer's "
            "FLOP count 6N + 6LCT per token",
    "nonembed": "without wte and wpe (Kaplan's non-embedding count)",
}

# Published approach-3 coefficients. Both count N as all parameters, embeddings included
# (Chinchilla's model sizes), so the nearest-preset match uses the "total" count.
PUBLISHED = {
    "chinchilla": {
        "E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28, "count": "total",
        "source": "Hoffmann et al. 2022, approach 3 (eq. 10, rounded values of the paper body)",
    },
    "epoch": {
        "E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658, "count": "total",
        "source": "Besiroglu et al. 2024 (Epoch AI), refit of Chinchilla's approach 3 on 240 "
                  "points extracted from Hoffmann et al.'s Figure 4",
    },
}

# Hoffmann et al.'s IsoFLOP budgets (Figure 3); used to group the Epoch points into profiles.
CHINCHILLA_BUDGETS = [6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21, 3e21]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_EPOCH_CSV = os.path.normpath(os.path.join(
    _REPO, "..", "shared", "data", "scaling", "chinchilla_epoch", "svg_extracted_data.csv"))
DEFAULT_GADRE_JSONL = os.path.normpath(os.path.join(
    _REPO, "..", "shared", "data", "scaling", "overtraining_gadre2024", "models.jsonl"))


class ScalingError(Exception):
    """A problem with the input or a fit that the user should see as one clear line."""


# ---------------------------------------------------------------------------------------
# The dN model family (mirrors gpt2_config_from_preset / gpt2_num_parameters /
# gpt2_flops_per_token in llmc/checkpoint.h)

GPT2_SPECIAL = {12: (768, 12), 24: (1024, 16), 36: (1280, 20), 48: (1600, 25)}


def padded_vocab(vocab):
    return ((vocab + 127) // 128) * 128


def preset_shape(depth):
    """(L, C, NH) of preset d<depth>: d12/d24/d36/d48 are GPT-2's sizes, others C = 64 d."""
    if depth < 1 or depth > 256:
        raise ScalingError("preset d%d: depth must be 1..256" % depth)
    C, NH = GPT2_SPECIAL.get(depth, (64 * depth, depth))
    return depth, C, NH


def param_counts(L, C, vocab=50257, max_t=1024):
    """Parameter counts of a GPT-2 of L layers and C channels, as the C code counts them:
    wte has Vp = vocab padded to a multiple of 128 rows (the padded rows are stored and
    counted, though always zero). Returns dict total / head / nonembed / wte / wpe."""
    Vp = padded_vocab(vocab)
    wte = Vp * C
    wpe = max_t * C
    blocks = L * (12 * C * C + 13 * C) + 2 * C  # per layer: qkv, proj, fc, fcproj, biases, 2 LNs; + final LN
    total = wte + wpe + blocks
    return {"total": total, "head": total - wpe, "nonembed": total - wte - wpe, "wte": wte, "wpe": wpe}


def flops_per_token(L, C, T=1024, vocab=50257, max_t=1024):
    """The trainer's training FLOPs per token: 6 * (all params but wpe) + 6 L C T."""
    return 6.0 * param_counts(L, C, vocab, max_t)["head"] + 6.0 * L * C * T


def preset_table(max_depth=48, vocab=50257, max_t=1024):
    rows = []
    for d in range(1, max_depth + 1):
        L, C, NH = preset_shape(d)
        pc = param_counts(L, C, vocab, max_t)
        rows.append({"preset": "d%d" % d, "L": L, "C": C, "NH": NH, **pc})
    return rows


# ---------------------------------------------------------------------------------------
# Data

class Runs:
    """A table of runs: name, N (dict count -> array), D, C, L, budget (nan: not IsoFLOP)."""

    def __init__(self, names, N, D, C, L, budget, source, notes=None, extra=None):
        self.names = list(names)
        self.N = {k: np.asarray(v, dtype=float) for k, v in N.items()}
        self.D = np.asarray(D, dtype=float)
        self.C = np.asarray(C, dtype=float)
        self.L = np.asarray(L, dtype=float)
        self.budget = np.asarray(budget, dtype=float)
        self.source = source
        self.notes = list(notes or [])
        self.extra = extra or {}

    def __len__(self):
        return len(self.L)

    def counts(self):
        return [k for k in COUNTS if k in self.N]


MANIFEST_REQUIRED = ["run", "mode", "budget_flops", "n_params", "n_params_nonembed",
                     "n_params_head", "tokens", "flops", "status"]
LOSS_COLUMNS = ("final_val_loss", "best_val_loss", "final_train_loss")


def _num(text, path, lineno, col, run, positive=True):
    try:
        v = float(text)
    except ValueError:
        raise ScalingError("%s:%d (run %s): column %s is not a number: %r" % (path, lineno, run, col, text))
    if not math.isfinite(v) or (positive and v <= 0):
        raise ScalingError("%s:%d (run %s): column %s must be a positive finite number, got %r"
                           % (path, lineno, run, col, text))
    return v


def load_manifest(path, loss_col="final_val_loss"):
    """Reads the sweep manifest (scripts/scaling_sweep.sh); keeps rows with status 'done'.
    A run listed more than once (a resumed sweep) counts once: its last row."""
    if loss_col not in LOSS_COLUMNS:
        raise ScalingError("unknown loss column %r (one of %s)" % (loss_col, ", ".join(LOSS_COLUMNS)))
    if not os.path.isfile(path):
        raise ScalingError("%s: no such file" % path)
    with open(path, newline="") as f:
        text = f.read()
    if not text.strip():
        raise ScalingError("%s: empty file (expected a CSV header and one row per run)" % path)
    reader = csv.reader(text.splitlines())
    header = next(reader)
    header = [h.strip() for h in header]
    missing = [c for c in MANIFEST_REQUIRED + [loss_col] if c not in header]
    if missing:
        raise ScalingError("%s: not a sweep manifest: the header lacks column(s) %s (header: %s)"
                           % (path, ", ".join(missing), ",".join(header[:8]) + (",..." if len(header) > 8 else "")))
    idx = {c: i for i, c in enumerate(header)}
    rows = {}
    order = []
    n_rows = 0
    statuses = {}
    for lineno, rec in enumerate(reader, start=2):
        if not rec or all(not x.strip() for x in rec):
            continue
        n_rows += 1
        if len(rec) != len(header):
            raise ScalingError("%s:%d: %d fields, but the header has %d" % (path, lineno, len(rec), len(header)))
        get = lambda c: rec[idx[c]].strip()
        status = get("status")
        statuses[status] = statuses.get(status, 0) + 1
        run = get("run") or ("line%d" % lineno)
        if run in rows:
            order.remove(run)
        order.append(run)
        rows[run] = (lineno, rec, status)
    if n_rows == 0:
        raise ScalingError("%s: a header but no runs" % path)
    names, Nt, Nn, Nh, D, C, L, budget, modes = [], [], [], [], [], [], [], [], []
    for run in order:
        lineno, rec, status = rows[run]
        if status != "done":
            continue
        get = lambda c: rec[idx[c]].strip()
        mode = get("mode")
        if mode not in ("isoflop", "tokens"):
            raise ScalingError("%s:%d (run %s): mode must be isoflop or tokens, got %r" % (path, lineno, run, mode))
        names.append(run)
        modes.append(mode)
        Nt.append(_num(get("n_params"), path, lineno, "n_params", run))
        Nn.append(_num(get("n_params_nonembed"), path, lineno, "n_params_nonembed", run))
        Nh.append(_num(get("n_params_head"), path, lineno, "n_params_head", run))
        D.append(_num(get("tokens"), path, lineno, "tokens", run))
        C.append(_num(get("flops"), path, lineno, "flops", run))
        L.append(_num(get(loss_col), path, lineno, loss_col, run))
        b = get("budget_flops")
        if mode == "isoflop":
            if not b:
                raise ScalingError("%s:%d (run %s): mode isoflop but budget_flops is empty" % (path, lineno, run))
            budget.append(_num(b, path, lineno, "budget_flops", run))
        else:
            budget.append(float("nan"))
    if not names:
        raise ScalingError("%s: no finished runs (status done) among %d row(s); statuses seen: %s"
                           % (path, n_rows, ", ".join("%s %d" % kv for kv in sorted(statuses.items()))))
    notes = []
    if len(order) < n_rows:
        notes.append("%d row(s) repeat an earlier run; the last row of each run is used" % (n_rows - len(order)))
    notes.append("%d of %d run(s) finished (status done); loss column %s" % (len(names), len(order), loss_col))
    return Runs(names, {"total": Nt, "nonembed": Nn, "head": Nh}, D, C, L, budget,
                source={"kind": "manifest", "path": path, "loss_column": loss_col,
                        "rows": n_rows, "runs": len(order), "runs_done": len(names)},
                notes=notes, extra={"mode": modes})


def load_epoch(path=DEFAULT_EPOCH_CSV, drop_highest=5, budget_tolerance=1.25):
    """The 245 points Epoch AI extracted from Chinchilla's Figure 4 (D = C / 6N). As in
    their analysis, keeps the points whose loss is below the drop_highest-th highest loss
    (240 points with drop_highest = 5). Each point is given the IsoFLOP budget of
    Hoffmann et al. within a factor budget_tolerance of its FLOPs, if any (the points
    carry no profile label; the colour column encodes the loss)."""
    if not os.path.isfile(path):
        raise ScalingError("%s: no such file (the Epoch AI Chinchilla points; see /work/shared/data/README.md)" % path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        need = ["Model Size", "Training FLOP", "loss"]
        if reader.fieldnames is None or any(c not in reader.fieldnames for c in need):
            raise ScalingError("%s: expected columns %s, got %s" % (path, ", ".join(need), reader.fieldnames))
        N, C, L = [], [], []
        for lineno, r in enumerate(reader, start=2):
            N.append(_num(r["Model Size"], path, lineno, "Model Size", lineno))
            C.append(_num(r["Training FLOP"], path, lineno, "Training FLOP", lineno))
            L.append(_num(r["loss"], path, lineno, "loss", lineno))
    N, C, L = np.array(N), np.array(C), np.array(L)
    n_all = len(L)
    if n_all < 10:
        raise ScalingError("%s: only %d points" % (path, n_all))
    keep = np.ones(n_all, bool)
    if drop_highest > 0:
        threshold = np.sort(L)[-drop_highest]
        keep = L < threshold
    idx = np.nonzero(keep)[0]
    N, C, L = N[idx], C[idx], L[idx]
    D = C / (6.0 * N)
    budget = np.full(len(L), np.nan)
    for i, c in enumerate(C):
        for b in CHINCHILLA_BUDGETS:
            if abs(math.log(c / b)) <= math.log(budget_tolerance):
                budget[i] = b
    dropped = ("dropped the %d with the highest loss (loss >= %.4f), as Epoch AI did" % (n_all - len(L), threshold)
               if drop_highest > 0 else "none dropped")
    notes = ["%d of %d points kept: %s" % (len(L), n_all, dropped),
             "N counts all parameters (Chinchilla's model sizes); D = C / (6 N)",
             "IsoFLOP profiles: points within a factor %.2f of one of Hoffmann et al.'s budgets %s"
             % (budget_tolerance, ", ".join("%.0e" % b for b in CHINCHILLA_BUDGETS))]
    return Runs(["epoch%d" % i for i in idx], {"total": N}, D, C, L, budget,
                source={"kind": "epoch", "path": path, "points": n_all, "points_used": len(L),
                        "drop_highest": drop_highest}, notes=notes)


def load_gadre(path=DEFAULT_GADRE_JSONL, val_data="c4_val", dataset="c4_original"):
    """Gadre et al. 2024's 104 runs (models.jsonl): N = params (total) or params_no_embed,
    D = tokens, C = 6 N D, L = the loss on the validation set whose path contains val_data.
    dataset: the training set (c4_original, rpj, rw_original) or 'all'."""
    if not os.path.isfile(path):
        raise ScalingError("%s: no such file (Gadre et al. 2024 runs; see /work/shared/data/README.md)" % path)
    names, Nt, Nn, D, L = [], [], [], [], []
    seen_val, seen_sets = set(), set()
    with open(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                hp = r["hyperparameters"]
                ds = r["dataset_name"]
                seen_sets.add(ds)
                if dataset != "all" and ds != dataset:
                    continue
                loss = None
                for e in r["results"]:
                    vd = e["val_data"]
                    vd = " ".join(vd) if isinstance(vd, list) else str(vd)
                    seen_val.add(vd)
                    if val_data in vd.split("/"):
                        loss = float(e["loss"])
                if loss is None:
                    continue
                names.append(r["name"])
                Nt.append(float(hp["params"]))
                Nn.append(float(hp["params_no_embed"]))
                D.append(float(hp["tokens"]))
                L.append(loss)
            except (KeyError, TypeError, ValueError) as ex:
                raise ScalingError("%s:%d: not a Gadre et al. run record (%s)" % (path, lineno, ex))
    if not names:
        sets = ", ".join(sorted(seen_sets))
        vals = ", ".join(sorted(set(p for v in seen_val for p in v.split("/") if p and "." not in p)))
        raise ScalingError("%s: no run of dataset %r with validation set %r (datasets: %s, all; "
                           "validation path parts: %s)" % (path, dataset, val_data, sets, vals))
    Nt, Nn, D = np.array(Nt), np.array(Nn), np.array(D)
    N = {"total": Nt, "head": Nt, "nonembed": Nn}
    notes = ["Gadre et al. 2024: %d run(s), training set %s, loss on validation set %s" % (len(names), dataset, val_data),
             "N total = params (one embedding matrix counted; head = total here), nonembed = params_no_embed",
             "C = 6 N D with the chosen N (the runs' FLOPs are not recorded)"]
    runs = Runs(names, N, D, 6.0 * Nt * D, L, np.full(len(L), np.nan),
                source={"kind": "gadre", "path": path, "val_data": val_data, "dataset": dataset}, notes=notes)
    runs.extra["C_from_count"] = True
    return runs


def compute_of(runs, count):
    if runs.extra.get("C_from_count"):
        return 6.0 * runs.N[count] * runs.D
    return runs.C


# ---------------------------------------------------------------------------------------
# Kaplan et al. 2020: L(X) = (X_c / X)^alpha on the frontier

def frontier(X, L, rel_tol=0.02):
    """Indices of the lower envelope of loss against X: runs with the same X (within
    rel_tol) are grouped and the lowest loss kept; then, in increasing X, a group is on the
    frontier when its loss is below every group with smaller X. The 2% tolerance groups the
    runs of one IsoFLOP budget, whose FLOPs differ by up to half a step from rounding to whole
    steps: otherwise the run that happened to round down looks like a frontier point."""
    X = np.asarray(X, float)
    L = np.asarray(L, float)
    order = np.argsort(X, kind="stable")
    groups = []
    for i in order:
        if groups and X[i] <= X[groups[-1][0]] * (1 + rel_tol):
            groups[-1].append(i)
        else:
            groups.append([i])
    best = [min(g, key=lambda i: L[i]) for g in groups]
    out = []
    running = math.inf
    for i in best:
        if L[i] < running:
            out.append(i)
            running = L[i]
    return np.array(out, dtype=int)


def fit_power_law(X, L):
    """Least squares of log L = alpha log X_c - alpha log X. Returns alpha, X_c, r2, and the
    standard error of alpha (nan for 2 points)."""
    x = np.log(np.asarray(X, float))
    y = np.log(np.asarray(L, float))
    n = len(x)
    if n < 2 or np.ptp(x) == 0:
        raise ScalingError("a power law needs at least 2 distinct points, got %d" % n)
    slope, intercept = np.polyfit(x, y, 1)
    alpha = -slope
    resid = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid ** 2)) / ss_tot if ss_tot > 0 else float("nan")
    se = float("nan")
    if n > 2:
        se = math.sqrt(float(np.sum(resid ** 2)) / (n - 2) / float(np.sum((x - x.mean()) ** 2)))
    Xc = math.exp(intercept / alpha) if alpha != 0 else float("nan")
    return {"alpha": float(alpha), "X_c": Xc, "r2": r2, "alpha_se": se, "n_points": n}


def fit_kaplan(runs, count):
    """L(N): best loss per model size, on the frontier (Kaplan's L(N) is for models trained
    long enough; the best run of each size is the nearest we have). L(D): frontier of loss
    against tokens. L(C): frontier of loss against training FLOPs (the compute-efficient
    envelope). Each needs >= 3 frontier points."""
    out = {}
    C = compute_of(runs, count)
    for key, X in (("N", runs.N[count]), ("D", runs.D), ("C", C)):
        idx = frontier(X, runs.L)
        if len(idx) < 3:
            out[key] = {"skipped": "%d point(s) on the frontier of loss against %s; need 3" % (len(idx), key)}
            continue
        r = fit_power_law(X[idx], runs.L[idx])
        r["frontier"] = [[float(X[i]), float(runs.L[i]), runs.names[i]] for i in idx]
        if key == "C":
            r["X_c_pf_days"] = r["X_c"] / PF_DAY
        out[key] = r
    return out


# ---------------------------------------------------------------------------------------
# Hoffmann et al. approach 2: IsoFLOP profiles

def fit_approach2(runs, count, include_unbracketed=False, min_runs=3):
    """Per IsoFLOP budget: loss = p2 x^2 + p1 x + p0 with x = ln N; N_opt = exp(-p1 / 2 p2).
    D_opt: the profile's ln D against ln N (a line) read at N_opt; with D = C / 6N exactly
    (Epoch's points) this is C / (6 N_opt). A profile is 'bracketed' when its lowest-loss
    run is neither its smallest nor its largest model and the parabola's minimum lies in its
    N range; unbracketed or concave profiles are flagged and left out of the power laws
    unless include_unbracketed. Power laws: ln N_opt = ln k_N + a ln C, same for D_opt."""
    N = runs.N[count]
    budgets = sorted(set(b for b in runs.budget if math.isfinite(b)))
    if not budgets:
        return {"skipped": "no IsoFLOP runs (mode isoflop with budget_flops)"}
    profiles = []
    for b in budgets:
        idx = np.nonzero(runs.budget == b)[0]
        idx = idx[np.argsort(N[idx])]
        p = {"budget": float(b), "budget_pf_days": float(b) / PF_DAY, "n_runs": int(len(idx)),
             "runs": [[float(N[i]), float(runs.D[i]), float(runs.L[i]), runs.names[i]] for i in idx]}
        profiles.append(p)
        x = np.log(N[idx])
        if len(np.unique(x)) < min_runs:
            p.update(used=False, flag="%d distinct model size(s); need %d" % (len(np.unique(x)), min_runs))
            continue
        p2, p1, p0 = np.polyfit(x, runs.L[idx], 2)
        p["parabola"] = [float(p2), float(p1), float(p0)]
        if p2 <= 0:
            p.update(used=False, flag="parabola has no minimum (concave)")
            continue
        xs = -p1 / (2 * p2)
        lo_edge = int(np.argmin(runs.L[idx]))
        bracketed = 0 < lo_edge < len(idx) - 1 and x[0] < xs < x[-1]
        dl = np.polyfit(x, np.log(runs.D[idx]), 1)
        p.update(N_opt=float(math.exp(xs)), D_opt=float(math.exp(np.polyval(dl, xs))),
                 L_opt=float(p0 - p1 * p1 / (4 * p2)), bracketed=bool(bracketed))
        if not bracketed:
            where = "smallest" if (lo_edge == 0 or xs <= x[0]) else "largest"
            p["flag"] = "minimum not bracketed: at or beyond the %s model" % where
        p["used"] = bool(bracketed or include_unbracketed)
    used = [p for p in profiles if p.get("used")]
    out = {"profiles": profiles, "n_profiles": len(profiles), "n_used": len(used),
           "include_unbracketed": include_unbracketed}
    if len(used) < 2:
        out["skipped"] = "%d usable IsoFLOP profile(s) (bracketed minimum, >= %d sizes); need 2" % (len(used), min_runs)
        return out
    Cs = np.array([p["budget"] for p in used])
    for key, q in (("N", "N_opt"), ("D", "D_opt")):
        y = np.log([p[q] for p in used])
        slope, icpt = np.polyfit(np.log(Cs), y, 1)
        se = float("nan")
        if len(used) > 2:
            res = y - (slope * np.log(Cs) + icpt)
            se = math.sqrt(float(np.sum(res ** 2)) / (len(used) - 2) / float(np.sum((np.log(Cs) - np.log(Cs).mean()) ** 2)))
        out["a" if key == "N" else "b"] = float(slope)
        out["a_se" if key == "N" else "b_se"] = se
        out["k_N" if key == "N" else "k_D"] = float(math.exp(icpt))
    out["a_plus_b"] = out["a"] + out["b"]
    return out


# ---------------------------------------------------------------------------------------
# Hoffmann et al. approach 3 as fitted by Besiroglu et al. 2024

def hoffmann_grid():
    """Hoffmann et al.'s (appendix D.2) grid of starts, in (a, b, e, alpha, beta) with
    A = e^a, B = e^b, E = e^e: alpha, beta in {0, 0.5, ..., 2}, e in {-1, -0.5, ..., 1},
    a, b in {0, 5, ..., 25}: 4500 points."""
    ab = np.arange(0, 30, 5.0)
    e = np.arange(-1, 1.5, 0.5)
    ex = np.arange(0, 2.5, 0.5)
    return np.array(list(itertools.product(ab, ab, e, ex, ex)), dtype=float)


def huber(r, delta):
    ar = np.abs(r)
    return np.where(ar <= delta, 0.5 * r * r, delta * (ar - 0.5 * delta))


def _objective(p, lN, lD, lL, delta, w=None):
    """Summed Huber of (log-sum-exp prediction - log L), divided by delta (the same
    minimiser; the scale keeps L-BFGS-B's tolerances meaningful), and its gradient.
    w: optional integer weights (bootstrap multiplicities)."""
    a, b, e, al, be = p
    t1 = a - al * lN
    t2 = b - be * lD
    m = np.maximum(np.maximum(t1, t2), e)
    w1 = np.exp(t1 - m)
    w2 = np.exp(t2 - m)
    w3 = np.exp(e - m)
    s = w1 + w2 + w3
    r = m + np.log(s) - lL
    ar = np.abs(r)
    inner = ar <= delta
    h = np.where(inner, 0.5 * r * r, delta * (ar - 0.5 * delta))
    g = np.where(inner, r, delta * np.sign(r))
    if w is not None:
        h = h * w
        g = g * w
    g1, g2, g3 = g * (w1 / s), g * (w2 / s), g * (w3 / s)
    f = float(h.sum()) / delta
    grad = np.array([g1.sum(), g2.sum(), g3.sum(), -(g1 * lN).sum(), -(g2 * lD).sum()]) / delta
    return f, grad


def _grid_values(grid, lN, lD, lL, delta, w=None, chunk=500):
    """The objective at every grid point (vectorised), for ranking the starts."""
    out = np.empty(len(grid))
    for s in range(0, len(grid), chunk):
        g = grid[s:s + chunk]
        t1 = g[:, 0:1] - g[:, 3:4] * lN[None, :]
        t2 = g[:, 1:2] - g[:, 4:5] * lD[None, :]
        t3 = np.broadcast_to(g[:, 2:3], t1.shape)
        m = np.maximum(np.maximum(t1, t2), t3)
        pred = m + np.log(np.exp(t1 - m) + np.exp(t2 - m) + np.exp(t3 - m))
        h = huber(pred - lL[None, :], delta)
        if w is not None:
            h = h * w[None, :]
        out[s:s + chunk] = h.sum(axis=1) / delta
    return out


def _minimize(p0, args):
    from scipy.optimize import minimize
    with np.errstate(all="ignore"):
        r = minimize(_objective, np.asarray(p0, float), args=args, jac=True, method="L-BFGS-B",
                     options={"maxiter": 5000, "ftol": 1e-13, "gtol": 1e-10, "maxcor": 20})
    return r


def fit_lnd(N, D, L, starts="ranked:32", delta=1e-3, extra_starts=(), w=None):
    """Fits L(N, D) = E + A/N^alpha + B/D^beta. starts: 'all' (L-BFGS-B from every point of
    Hoffmann's grid, as Hoffmann et al. and Epoch did), or 'ranked:K' (evaluate the
    objective on the whole grid, start from the K best grid points), plus extra_starts.
    Returns the best result (lowest objective) as a dict."""
    lN, lD, lL = np.log(N), np.log(D), np.log(L)
    grid = hoffmann_grid()
    if starts == "all":
        chosen = grid
    else:
        k = int(str(starts).split(":")[1])
        vals = _grid_values(grid, lN, lD, lL, delta, w)
        chosen = grid[np.argsort(vals, kind="stable")[:k]]
    if len(extra_starts):
        chosen = np.vstack([np.asarray(extra_starts, float).reshape(-1, 5), chosen])
    args = (lN, lD, lL, delta, w)
    best, funs = None, []
    for p0 in chosen:
        r = _minimize(p0, args)
        if not np.all(np.isfinite(r.x)) or not math.isfinite(r.fun):
            continue
        funs.append(r.fun)
        if best is None or r.fun < best.fun:
            best = r
    if best is None:
        raise ScalingError("approach 3: no start converged to a finite objective")
    funs = np.array(funs)
    a, b, e, al, be = (float(v) for v in best.x)
    out = {"E": _exp(e), "A": _exp(a), "B": _exp(b), "alpha": al, "beta": be,
           "objective": best.fun * delta, "huber_delta": delta, "n_starts": int(len(chosen)),
           "n_starts_at_best": int(np.sum(funs <= best.fun * (1 + 1e-6) + 1e-12)),
           "converged": bool(best.success), "x": [a, b, e, al, be]}
    out.update(derived(out))
    return out


def _exp(x):
    return math.exp(x) if x < 700 else float("inf")


def derived(c):
    """Compute-optimal allocation under C = 6 N D: N_opt = G (C/6)^a, D_opt = (C/6)^b / G,
    a = beta/(alpha+beta), b = alpha/(alpha+beta), G = (alpha A / (beta B))^(1/(alpha+beta))."""
    al, be, A, B = c["alpha"], c["beta"], c["A"], c["B"]
    nan = float("nan")
    if not all(math.isfinite(v) for v in (al, be, A, B)) or not (al > 0 and be > 0 and A > 0 and B > 0):
        return {"a": nan, "b": nan, "G": nan}
    s = al + be
    try:
        G = math.exp((math.log(al * A) - math.log(be * B)) / s)
    except OverflowError:
        G = nan
    return {"a": be / s, "b": al / s, "G": G}


def predict(c, N, D):
    return c["E"] + c["A"] / np.power(N, c["alpha"]) + c["B"] / np.power(D, c["beta"])


def optimal_for_compute(c, C):
    d = derived(c) if "G" not in c else c
    if not math.isfinite(d["G"]):
        raise ScalingError("coefficients give no compute-optimal allocation (alpha, beta, A, B must be > 0)")
    N = d["G"] * (C / 6.0) ** d["a"]
    D = C / (6.0 * N)
    return N, D


def compute_for_params(c, N):
    """The budget C for which N is compute-optimal: C = 6 (N / G)^(1/a)."""
    d = derived(c) if "G" not in c else c
    if not math.isfinite(d["G"]):
        raise ScalingError("coefficients give no compute-optimal allocation (alpha, beta, A, B must be > 0)")
    C = 6.0 * (N / d["G"]) ** (1.0 / d["a"])
    return C, C / (6.0 * N)


def bootstrap_lnd(N, D, L, point, n_boot=200, seed=0, boot_starts=2, delta=1e-3, level=0.95):
    """Percentile intervals by resampling runs with replacement (weights = multiplicities).
    Each resample starts L-BFGS-B from the full-data optimum and from the boot_starts best
    points of Hoffmann's grid on that resample (cheap, and rarely worse than the full grid
    since a resample's optimum lies near the full data's)."""
    rng = np.random.default_rng(seed)
    n = len(L)
    keys = ["E", "A", "B", "alpha", "beta", "a", "b", "G"]
    samples = {k: [] for k in keys}
    failed = 0
    for _ in range(n_boot):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        try:
            r = fit_lnd(N, D, L, starts="ranked:%d" % boot_starts, delta=delta, extra_starts=[point["x"]], w=w)
        except ScalingError:
            failed += 1
            continue
        for k in keys:
            samples[k].append(r[k])
    q = (1 - level) / 2
    ci, std = {}, {}
    for k in keys:
        v = np.array(samples[k], float)
        v = v[np.isfinite(v)]
        ci[k] = [float(np.quantile(v, q)), float(np.quantile(v, 1 - q))] if len(v) else [float("nan")] * 2
        std[k] = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
    return {"n": n_boot, "failed": failed, "seed": seed, "starts_per_resample": 1 + boot_starts, "level": level,
            "method": "percentile", "ci": ci, "std": std,
            "n_finite": {k: int(np.sum(np.isfinite(np.array(samples[k], float)))) for k in keys}}


def fit_approach3(runs, count, starts="ranked:32", n_boot=200, seed=0, boot_starts=2, delta=1e-3):
    N, D, L = runs.N[count], runs.D, runs.L
    if len(L) < 6:
        return {"skipped": "%d run(s); L(N, D) has 5 coefficients, need at least 6 runs" % len(L)}
    if len(np.unique(N)) < 2 or len(np.unique(D)) < 2:
        return {"skipped": "need at least 2 distinct model sizes and 2 distinct token counts"}
    r = fit_lnd(N, D, L, starts=starts, delta=delta)
    pred = predict(r, N, D)
    rel = pred / L - 1
    r["residuals"] = {"rms_log": float(np.sqrt(np.mean(np.log(pred / L) ** 2))),
                      "max_abs_rel": float(np.max(np.abs(rel))),
                      "median_abs_rel": float(np.median(np.abs(rel)))}
    r["n_runs"] = int(len(L))
    r["starts"] = starts
    if n_boot > 0:
        r["bootstrap"] = bootstrap_lnd(N, D, L, r, n_boot=n_boot, seed=seed, boot_starts=boot_starts, delta=delta)
    return r


# ---------------------------------------------------------------------------------------
# Formatting helpers

def fmt_num(x, digits=3):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return "%.*e" % (digits - 1, x)
    return "%.*g" % (digits + 1, x)


def fmt_count(n):
    for unit, v in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= v:
            return "%.3g%s" % (n / v, unit)
    return "%d" % n


def fmt_duration(seconds):
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 120:
        return "%.0f s" % seconds
    if seconds < 7200:
        return "%.1f min" % (seconds / 60)
    if seconds < 3 * 86400:
        return "%.1f h" % (seconds / 3600)
    return "%.1f days" % (seconds / 86400)
