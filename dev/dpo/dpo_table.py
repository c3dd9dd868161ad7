#!/usr/bin/env python3
"""The table of scripts/dpo_hh.sh: held-out DPO metrics before and after each variant, the
general ability (val loss on the pre-training data), ms/step, and greedy answers side by side.

    dpo_table.py OUT --variants sigmoid cdpo ... --sft-log OUT/sft.log > OUT/RESULTS.md

Reads OUT/dpo_<variant>.log (the trainer's "dpo held-out" and "val loss" lines at the first
and last evaluation, "average step"), OUT/gen_prompts via OUT/data/gen_prompts.jsonl and the
sft_eval generations OUT/gen_sft.jsonl, OUT/gen_<variant>.jsonl.
"""
import argparse
import json
import os
import re

HELD = re.compile(r"step (\d+): dpo held-out \((\d+) pairs\): loss ([-\d.]+) \| reward accuracy ([\d.]+) \| margin ([-\d.]+) \| "
                  r"rewards chosen ([-\d.]+) rejected ([-\d.]+) \| logps chosen ([-\d.]+) rejected ([-\d.]+) \| logp accuracy ([\d.]+)")
VAL = re.compile(r"step (\d+): val loss ([\d.]+)")
AVG = re.compile(r"average step: ([\d.]+) ms")


def parse(path):
    held, val, ms = [], [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = HELD.search(line)
            if m:
                held.append([float(x) for x in m.groups()])
            m = VAL.search(line)
            if m:
                val.append((int(m.group(1)), float(m.group(2))))
            m = AVG.search(line)
            if m:
                ms = float(m.group(1))
    return held, val, ms


def generations(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def short(s, n=160):
    s = " ".join(str(s).split())
    return (s[:n] + "...") if len(s) > n else s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--variants", nargs="+", required=True)
    ap.add_argument("--sft-log")
    a = ap.parse_args()
    print("# DPO on Anthropic HH (helpful-base), in miniature\n")
    if a.sft_log and os.path.exists(a.sft_log):
        _, val, ms = parse(a.sft_log)
        if val:
            print(f"SFT on the chosen dialogues: held-out masked loss {val[0][1]:.4f} (base) -> {val[-1][1]:.4f} "
                  f"after {val[-1][0]} steps ({ms:.0f} ms/step).\n")
    print("Held-out pairs, before (the SFT model, which is also the reference) and after each DPO run. "
          "Reward = beta (log pi - log ref) of a reply; reward accuracy counts pairs whose chosen reward "
          "beats the rejected one (0 before by construction); log-prob accuracy counts pairs whose chosen "
          "reply the model finds likelier (summed over its tokens). Val loss: the pre-training data "
          "(general ability; lower is better).\n")
    print("| variant | steps | DPO loss | reward acc | margin | reward chosen | reward rejected | logp acc | "
          "logp chosen | logp rejected | val loss before -> after | ms/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    first = None
    rows = []
    for v in a.variants:
        path = os.path.join(a.out, f"dpo_{v}.log")
        if not os.path.exists(path):
            continue
        held, val, ms = parse(path)
        if not held:
            continue
        if first is None:
            first = held[0]
            h = first
            print(f"| (SFT model) | 0 | {h[2]:.4f} | {h[3]:.3f} | {h[4]:.4f} | {h[5]:.4f} | {h[6]:.4f} | {h[9]:.3f} | "
                  f"{h[7]:.1f} | {h[8]:.1f} | {val[0][1]:.4f} | |")
        h = held[-1]
        rows.append((v, h))
        print(f"| {v} | {int(h[0])} | {h[2]:.4f} | {h[3]:.3f} | {h[4]:.4f} | {h[5]:.4f} | {h[6]:.4f} | {h[9]:.3f} | "
              f"{h[7]:.1f} | {h[8]:.1f} | {val[0][1]:.4f} -> {val[-1][1]:.4f} | {ms:.0f} |" if ms else "")
    if first is not None:
        print(f"\n{int(first[1])} held-out pairs. IPO's loss is on another scale ((h - 1/(2 beta))^2).\n")
    prompts = generations(os.path.join(a.out, "data", "gen_prompts.jsonl"))
    sft = generations(os.path.join(a.out, "gen_sft.jsonl"))
    if prompts and sft:
        print("## Greedy answers to held-out prompts (60 tokens at most)\n")
        for i, p in enumerate(prompts):
            print(f"**Prompt {i + 1}:** {short(p['prompt'])}\n")
            print(f"- chosen (data): {short(p['choices'][0])}")
            print(f"- rejected (data): {short(p['choices'][1])}")
            print(f"- SFT: {short(sft[i]['generated']) if i < len(sft) else '?'}")
            for v in a.variants:
                g = generations(os.path.join(a.out, f"gen_{v}.jsonl"))
                if i < len(g):
                    print(f"- DPO {v}: {short(g[i]['generated'])}")
            print()


if __name__ == "__main__":
    main()
