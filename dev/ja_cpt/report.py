#!/usr/bin/env python3
"""The table and the curves of scripts/ja_continued_pretraining.sh: reads OUT/eval/*.log (the
held-out evaluations, bits per byte), each run's main.jsonl (the val curve, the speed) and the
pipeline reports; writes OUT/RESULTS.md and OUT/curves.png.

    python3 dev/ja_cpt/report.py runs/ja_cpt --runs "cpt_ext_mean cpt_ext_tokens cpt_gpt2 scratch_ext"
    python3 dev/ja_cpt/report.py - --funnel runs/ja_cpt/data/ja_report.json   # the funnel line only
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys

DESCRIBE = {
    "base_en": ("English base", "GPT-2", "-"),
    "base_ext_mean": ("English base, resized", "extended", "mean of all rows"),
    "base_ext_tokens": ("English base, resized", "extended", "mean of its GPT-2 pieces"),
    "cpt_ext_mean": ("continued pre-training", "extended", "mean of all rows"),
    "cpt_ext_tokens": ("continued pre-training", "extended", "mean of its GPT-2 pieces"),
    "cpt_gpt2": ("continued pre-training", "GPT-2", "-"),
    "scratch_ext": ("from scratch (Japanese only)", "extended", "random"),
    "cpt_ext_tokens_hilr": ("continued pre-training, scratch's lr", "extended", "mean of its GPT-2 pieces"),
}
EVAL_RE = re.compile(r"val loss ([0-9.]+) \(perplexity [0-9.]+\) \| ([0-9.]+) bits per byte, ([0-9.]+) bytes per token")


def read_eval(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = EVAL_RE.search(line)
            if m:
                loss, bpb, bpt = map(float, m.groups())
                return {"loss": loss, "bpb": bpb, "bytes_per_token": bpt}
    sys.exit(f"error: {path}: no 'bits per byte' line (an evaluation without the model's tokenizer?)")


def read_run(path):
    """run record, (flops, val_bpb) points, median train tokens/s of a main.jsonl"""
    rec, curve, speed = None, [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if "run" in d:
                rec = d["run"]
            elif "val_bpb" in d:
                curve.append((d["flops"], d["val_bpb"]))
            elif "tokens_per_second" in d and d["step"] > 1:  # step 1 pays the warm-up
                speed.append(d["tokens_per_second"])
    return rec, curve, (statistics.median(speed) if speed else float("nan"))


def funnel(report_path):
    r = json.load(open(report_path))
    st = [s for s in r["stages"] if s["enabled"] and s["name"] != "tokenize"]
    return " -> ".join([f"raw {st[0]['chars_in'] / 1e6:.2f}M"] + [f"{s['name']} {s['chars_out'] / 1e6:.2f}M" for s in st]), r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--runs", default="cpt_ext_mean cpt_ext_tokens cpt_gpt2 scratch_ext cpt_ext_tokens_hilr")
    ap.add_argument("--command", default="bash scripts/ja_continued_pretraining.sh")
    ap.add_argument("--funnel", metavar="REPORT", help="only print the characters after each stage of a pipeline report")
    a = ap.parse_args()
    if a.funnel:
        print(funnel(a.funnel)[0])
        return
    out, runs = a.out, a.runs.split()
    names = ["base_en", "base_ext_mean", "base_ext_tokens"] + runs
    ev = {n: {lang: read_eval(os.path.join(out, "eval", f"{n}.{lang}.log")) for lang in ("ja", "en")} for n in names}
    info = {}
    for n in ["base_en"] + runs:
        p = os.path.join(out, n, "main.jsonl")
        if os.path.exists(p):
            info[n] = read_run(p)
    base_en = ev["base_en"]["en"]

    rows = []
    for n in names:
        kind, vocab, init = DESCRIBE[n]
        ja, en = ev[n]["ja"], ev[n]["en"]
        if ja is None or en is None:
            continue
        rec, _, tps = info.get(n, (None, None, float("nan")))
        tokens = f"{rec['tokens'] / 1e6:.2f}M" if rec else "-"
        flops = f"{rec['flops']:.2e}" if rec else "-"
        speed = f"{tps:.0f}" if tps == tps else "-"
        forget = f"{en['bpb'] - base_en['bpb']:+.3f}" if n != "base_en" else "-"
        rows.append(f"| {n} | {kind} | {vocab} | {init} | {tokens} | {flops} | {speed} | **{ja['bpb']:.3f}** | "
                    f"{ja['bytes_per_token']:.2f} | {en['bpb']:.3f} | {forget} | {en['bytes_per_token']:.2f} |")

    ja_funnel, ja_rep = funnel(os.path.join(out, "data", "ja_report.json"))
    en_funnel, _ = funnel(os.path.join(out, "data", "en_report.json"))
    secs = ""
    p = os.path.join(out, "seconds_this_invocation")
    if os.path.exists(p):
        secs = open(p).read().strip()
    base_rec = info.get("base_en", (None,))[0]

    md = []
    md.append("# Continued pre-training in Japanese (the Swallow recipe in miniature)\n")
    md.append(f"- date: {datetime.date.today().isoformat()}; machine: {platform.machine()} "
              f"{os.cpu_count()} cores ({platform.processor() or 'CPU'}), {platform.system()}")
    md.append(f"- command: `{a.command}`" + (f"; the last invocation took {secs} s" if secs else ""))
    if base_rec:
        md.append(f"- model: L={base_rec['L']} C={base_rec['C']} NH={base_rec['NH']}, B={base_rec['B']} T={base_rec['T']}; "
                  f"English base: {base_rec['tokens'] / 1e6:.2f}M tokens, {base_rec['flops']:.2e} FLOPs")
    md.append(f"- Japanese corpus, characters after each stage: {ja_funnel}")
    md.append(f"- English corpus: {en_funnel}")
    md.append("")
    md.append("Bits per byte (bpb) = the loss summed over the held-out text's tokens, in bits, over the text's UTF-8 "
              "bytes: comparable across vocabularies, lower is better. Held-out text: the pipeline's val documents "
              "(never seen by the tokenizer or in training), evaluated whole. `en change`: English bpb minus the base's "
              "(forgetting when positive). Same compute: every Japanese run has the same FLOP budget, counted as the "
              "trainer counts it (6N + 6LCT per token, N includes the embedding), so the extended vocabulary's larger "
              "head buys fewer tokens.\n")
    md.append("| model | what | vocabulary | new rows | train tokens | train FLOPs | tokens/s | ja bpb | ja bytes/token | "
              "en bpb | en change | en bytes/token |")
    md.append("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    md.extend(rows)
    md.append("")
    md.append("![curves](curves.png)")
    with open(os.path.join(out, "RESULTS.md.tmp"), "w", encoding="utf-8") as f:
        f.write("\n".join(md) + "\n")
    os.replace(os.path.join(out, "RESULTS.md.tmp"), os.path.join(out, "RESULTS.md"))
    print("\n".join(md))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no matplotlib: no curves.png)")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for n in runs:
        if n in info and info[n][1]:
            xs, ys = zip(*info[n][1])
            ax1.plot(xs, ys, marker="o", ms=3, label=n)
    ax1.set_xlabel("training FLOPs (Japanese phase)")
    ax1.set_ylabel("held-out Japanese bits per byte (curve: first batches)")
    ax1.set_title("Japanese, same compute")
    ax1.grid(alpha=0.3)
    ax1.legend()
    shown = [n for n in names if ev[n]["en"] is not None and ev[n]["ja"] is not None]
    x = range(len(shown))
    ax2.bar([i - 0.2 for i in x], [ev[n]["ja"]["bpb"] for n in shown], width=0.4, label="Japanese")
    ax2.bar([i + 0.2 for i in x], [ev[n]["en"]["bpb"] for n in shown], width=0.4, label="English")
    ax2.set_xticks(list(x))
    ax2.set_xticklabels(shown, rotation=30, ha="right", fontsize=8)
    ax2.set_ylabel("bits per byte, whole held-out text")
    ax2.set_title("final models (English: forgetting)")
    ax2.grid(alpha=0.3, axis="y")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "curves.png"), dpi=110)
    print(f"wrote {os.path.join(out, 'curves.png')}")


if __name__ == "__main__":
    main()
