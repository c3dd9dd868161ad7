#!/usr/bin/env python3
"""Writes a scaling sweep's manifest: one CSV row per run folder, read from what the trainer
and the launcher left there. Used by scripts/scaling_sweep.sh after every run; run it by hand
to rebuild a manifest. Standard library only (a GPU node may have nothing else).

  python3 scripts/scaling_manifest.py SWEEP_DIR            # writes SWEEP_DIR/manifest.csv

A run folder holds the trainer's main.jsonl (its first record carries the model's parameter
counts and FLOPs per token), and the launcher's sweep.json (preset, mode, budget), wall_seconds
(one line per launch) and FINISHED (written when the trainer exited 0 at the last step).

Columns (the fitter in dev/scaling/ reads them):
  run, preset, mode (isoflop | tokens), budget_flops (isoflop), target_tokens (tokens mode),
  n_params (every parameter), n_params_nonembed (without wte and wpe), n_params_head (without
  wpe: the N of the log's FLOPs per token = 6N + 6LCT), vocab, B, T, total_batch, steps,
  tokens (trained), flops (spent: steps x total_batch x flops_per_token), flops_per_token,
  final_val_loss (at the last step), best_val_loss, final_train_loss (mean of the last 10% of
  steps, at least 1), tokens_per_second (median over the steps after the first of each
  launch), wall_seconds (sum over launches, evaluations and checkpoints included),
  status (done | partial | not started).
"""
import csv
import json
import os
import statistics
import sys

COLUMNS = ["run", "preset", "mode", "budget_flops", "target_tokens", "n_params", "n_params_nonembed",
           "n_params_head", "vocab", "B", "T", "total_batch", "steps", "tokens", "flops", "flops_per_token",
           "final_val_loss", "best_val_loss", "final_train_loss", "tokens_per_second", "wall_seconds", "status"]


def read_jsonl(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                # a run killed mid-write leaves at most a torn last line: skip it, say so
                print(f"warning: {path}:{n}: not JSON ({e}); skipped", file=sys.stderr)
    return rows


def run_row(sweep_dir, name):
    d = os.path.join(sweep_dir, name)
    row = {c: "" for c in COLUMNS}
    row["run"] = name
    meta_path = os.path.join(d, "sweep.json")
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        for k in ("preset", "mode"):
            row[k] = meta.get(k, "")
        for k in ("budget_flops", "target_tokens"):
            if meta.get(k) is not None:
                row[k] = "%.6g" % meta[k]
    log = os.path.join(d, "main.jsonl")
    if not os.path.exists(log):
        row["status"] = "not started"
        return row
    records = read_jsonl(log)
    run = next((r["run"] for r in records if "run" in r), None)
    if run is not None:
        for k in ("n_params", "n_params_nonembed", "n_params_head", "flops_per_token", "B", "T", "total_batch"):
            row[k] = run.get(k, "")
        row["vocab"] = run.get("V", "")
    train = {}
    val = {}
    for r in records:
        if "loss" in r:
            train[r["step"]] = r  # a resumed run may repeat a step: the last record wins
        if r.get("val_loss") is not None:
            val[r["step"]] = r["val_loss"]
    steps = len(train)
    row["steps"] = steps
    if run is not None and steps > 0:
        row["tokens"] = steps * run["total_batch"]
        row["flops"] = "%.6g" % (steps * run["total_batch"] * run["flops_per_token"])
    if val:
        last = max(val)
        row["final_val_loss"] = "%.6f" % val[last]
        row["best_val_loss"] = "%.6f" % min(val.values())
    if train:
        ordered = [train[k] for k in sorted(train)]
        tail = ordered[-max(1, len(ordered) // 10):]
        row["final_train_loss"] = "%.6f" % statistics.fmean(r["loss"] for r in tail)
        # the first step of every launch warms caches: the median ignores it
        speeds = [r["tokens_per_second"] for r in ordered if r.get("tokens_per_second")]
        if speeds:
            row["tokens_per_second"] = "%.1f" % statistics.median(speeds)
    wall = os.path.join(d, "wall_seconds")
    if os.path.exists(wall):
        with open(wall, encoding="utf-8") as f:
            row["wall_seconds"] = "%.1f" % sum(float(x) for x in f.read().split())
    finished = os.path.exists(os.path.join(d, "FINISHED"))
    done = finished and run is not None and steps == run["max_steps"] and (run["max_steps"] in val)
    row["status"] = "done" if done else "partial"
    return row


def main():
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        sys.exit(0 if len(sys.argv) == 2 else 1)
    sweep_dir = sys.argv[1]
    if not os.path.isdir(sweep_dir):
        sys.exit(f"error: {sweep_dir}: not a directory")
    names = sorted(n for n in os.listdir(sweep_dir)
                   if os.path.isdir(os.path.join(sweep_dir, n)) and os.path.exists(os.path.join(sweep_dir, n, "sweep.json")))
    rows = [run_row(sweep_dir, n) for n in names]
    out = os.path.join(sweep_dir, "manifest.csv")
    tmp = f"{out}.tmp.{os.getpid()}"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out)
    done = sum(r["status"] == "done" for r in rows)
    print(f"manifest: {out}: {len(rows)} runs, {done} done")


if __name__ == "__main__":
    main()
