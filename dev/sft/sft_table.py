#!/usr/bin/env python3
"""The table of scripts/sft_compare.sh: one row per (task, method), from the files the runs left.

    python3 dev/sft/sft_table.py --out runs/sft_compare --tasks livedoor_cls spam_cls \
        --methods base full lora4 lora16 bitfit adapter prompt --preset d4 --base BASE.bin \
        --pretrain-run runs/sft_compare/pretrain/run

Reads, for each run OUT/ft/<task>_<method>/:
  main.jsonl      the run record (parameters, trainable parameters, tokens per step) and the
                  per-step times (ms/step: the median over the steps after the first)
  heldout.txt     the masked loss on the whole test split (train_gpt --eval)
  task_eval.json  the accuracies of dev/eval/sft_eval on the first MAX_EVAL test examples
Writes OUT/results.csv and OUT/RESULTS.md. Standard library only.

Memory: the optimizer state that training adds per trainable parameter, in fp32: the gradient
and AdamW's two moments, 12 bytes each (what the frozen base saves). Activations are not in it
(PEFT keeps nearly all of them: the backward pass still runs through every layer).
"""
import argparse
import csv
import json
import os
import re
import statistics
import sys


def read_jsonl(path):
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def run_stats(run_dir):
    """n_params, n_trainable, ms/step, tokens/step of a training run (None when no run: base)."""
    path = os.path.join(run_dir, "main.jsonl")
    if not os.path.exists(path):
        return None
    recs = read_jsonl(path)
    run = next((r["run"] for r in recs if "run" in r), None)
    if run is None:
        sys.exit("error: %s has no run record" % path)
    ms = [r["ms"] for r in recs if "ms" in r and r.get("step", 0) > 0]
    return {
        "n_params": int(run["n_params"]),
        "n_trainable": int(run["n_trainable"]),
        "ms_step": statistics.median(ms) if ms else float("nan"),
        "steps": sum(1 for r in recs if "ms" in r),
        "tokens_per_step": int(run["total_batch"]),
    }


def pick(d, *keys):
    for k in keys:
        if k in d:
            return d[k]
    raise KeyError("none of %s in the task report (keys: %s)" % (keys, sorted(d)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", nargs="+", required=True)
    ap.add_argument("--methods", nargs="+", required=True)
    ap.add_argument("--preset", default="")
    ap.add_argument("--base", default="")
    ap.add_argument("--pretrain-run", default="", help="the base model's run directory (its main.jsonl)")
    opts = ap.parse_args()

    rows = []
    for task in opts.tasks:
        for method in opts.methods:
            d = os.path.join(opts.out, "ft", "%s_%s" % (task, method))
            st = run_stats(d) if method != "base" else None
            with open(os.path.join(d, "heldout.txt")) as f:
                heldout = float(f.read().split()[0])
            with open(os.path.join(d, "task_eval.json"), encoding="utf-8") as f:
                ev = json.load(f)
            lr = ""
            log = d + ".log"
            if st and os.path.exists(log):
                with open(log, encoding="utf-8", errors="replace") as f:
                    m = re.search(r"optimizer: AdamW lr=([0-9.eE+-]+)", f.read())
                lr = m.group(1) if m else ""
            row = {
                "task": task, "method": method, "lr": lr,
                "n_trainable": st["n_trainable"] if st else 0,
                "pct_trainable": 100.0 * st["n_trainable"] / st["n_params"] if st else 0.0,
                "optimizer_mb": 12.0 * st["n_trainable"] / 1e6 if st else 0.0,
                "ms_step": st["ms_step"] if st else float("nan"),
                "train_tokens": st["steps"] * st["tokens_per_step"] if st else 0,
                "heldout_loss": heldout,
                "n_eval": int(pick(ev, "n", "examples")),
                "acc_ll": float(pick(ev, "acc_ll", "accuracy_ll")),
                "acc_ll_norm": float(pick(ev, "acc_ll_norm", "accuracy_ll_norm")),
                "acc_greedy": float(pick(ev, "acc_greedy", "accuracy_greedy")),
                "greedy_valid": float(pick(ev, "greedy_is_choice", "greedy_valid", "valid_generations")),
                # the accuracy of always answering the most frequent label of the evaluated examples
                "majority": max(p["n"] for p in ev["per_label"]) / max(1, int(pick(ev, "n", "examples"))),
            }
            rows.append(row)

    fields = list(rows[0].keys())
    with open(os.path.join(opts.out, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)

    lines = []
    pre = ""
    if opts.pretrain_run and os.path.exists(os.path.join(opts.pretrain_run, "main.jsonl")):
        recs = read_jsonl(os.path.join(opts.pretrain_run, "main.jsonl"))
        run = next((r["run"] for r in recs if "run" in r), {})
        vl = [r for r in recs if "val_loss" in r]
        if vl:
            pre = ", pre-trained for %d steps of %d tokens (%s tokens): val loss %.4f" % (
                run.get("max_steps", 0), run.get("total_batch", 0), "{:,}".format(int(vl[-1]["tokens"])), vl[-1]["val_loss"])
    base_params = next((r for r in rows if r["method"] != "base"), None)
    n_params = int(round(base_params["n_trainable"] / (base_params["pct_trainable"] / 100))) if base_params and base_params["pct_trainable"] else 0
    lines.append("Base model: %s (%s parameters)%s." % (opts.preset, "{:,}".format(n_params) if n_params else "?", pre))
    lines.append("")
    for task in opts.tasks:
        tr = [r for r in rows if r["task"] == task]
        lines.append("### %s (accuracies on %d test examples, the labels in turn; loss on the whole test split)" % (task, tr[0]["n_eval"]))
        lines.append("")
        lines.append("Always answering the most frequent label would score %.3f." % tr[0]["majority"])
        lines.append("")
        lines.append("| method | lr | trainable | % | grad+AdamW MB | ms/step | held-out masked loss | acc (LL) | acc (LL/token) | acc (greedy) | greedy is a label |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in tr:
            ms = "-" if r["method"] == "base" else "%.0f" % r["ms_step"]
            lines.append("| %s | %s | %s | %.3f | %.2f | %s | %.4f | %.3f | %.3f | %.3f | %.3f |" % (
                r["method"].split("@")[0], r["lr"] or "-", "{:,}".format(r["n_trainable"]), r["pct_trainable"], r["optimizer_mb"], ms,
                r["heldout_loss"], r["acc_ll"], r["acc_ll_norm"], r["acc_greedy"], r["greedy_valid"]))
        lines.append("")
    with open(os.path.join(opts.out, "RESULTS.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
