#!/usr/bin/env python3
"""Held-out HH pairs with a single-turn prompt, as dev/eval/sft_eval task lines.

    hh_gen_prompts.py hh_pairs_test.jsonl --n 6 -o gen_prompts.jsonl

Input: dev/data/sft_sources.py's hh_pairs (form (b) of dev/data/dpo_prepare: "prompt" a list of
messages). Keeps, in file order, the pairs whose prompt is one user turn and whose prompt and
replies are short enough for a 256-token row (--max-chars, counted in characters), and writes
{"prompt": user, "choices": [chosen, rejected], "label": 0}: sft_eval then reports which reply
the model finds likelier (pred_ll 0 = the chosen one) and its greedy answer to the prompt.
"""
import argparse
import json
import os


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pairs")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--max-chars", type=int, default=500, help="prompt + longer reply, in characters")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args()
    rows = []
    with open(a.pairs, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            p = r.get("prompt")
            if not (isinstance(p, list) and len(p) == 1 and p[0].get("role") == "user"):
                continue
            user = p[0]["content"]
            if len(user) + max(len(r["chosen"]), len(r["rejected"])) > a.max_chars:
                continue
            rows.append({"prompt": user, "choices": [r["chosen"], r["rejected"]], "label": 0})
            if len(rows) == a.n:
                break
    if len(rows) < a.n:
        raise SystemExit(f"{a.pairs}: only {len(rows)} single-turn pairs fit --max-chars {a.max_chars}, asked for {a.n}")
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, a.out)
    print(f"{a.out}: {len(rows)} prompts")


if __name__ == "__main__":
    main()
