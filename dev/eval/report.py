"""
The multiple-choice table of scripts/eval_models.sh: reads OUT/NAME/eval.jsonl of each model
(train_gpt --eval --tasks) and writes OUT/RESULTS.md: per task its metrics (the harness's
headline first, acc beside acc_norm), the examples scored, the chance level, every model, and
the published GPT-2 124M figure where one exists (sources below the table).

usage: report.py OUT NAME [NAME ...] [--command TEXT]
"""
import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data"))
from bench_tokenizer import cpu_name  # noqa: E402

# Published lm-evaluation-harness figures for GPT-2 small (124M), with where each comes from.
# Every one is on the task's full set; ours may be a prefix of it (the examples column).
PUBLISHED = {
    ("hellaswag", "acc"): (0.2892, "a"),
    ("hellaswag", "acc_norm"): (0.3114, "a"),
    ("piqa", "acc"): (0.6289, "b"),
    ("winogrande", "acc"): (0.5161, "b"),
    ("arc_challenge", "acc"): (0.1903, "b"),
    ("truthfulqa_mc2", "mc2"): (0.4067, "c"),
}
SOURCES = {
    "a": "0-shot, the harness's figures as quoted in karpathy/llm.c dev/data/hellaswag.py "
         "(\"eleuther harness reports acc 28.92%, acc_norm 31.14%\"); on the original jsonl, ours is a "
         "preprocessed copy (dev/data/EVAL.md)",
    "b": "lm-evaluation-harness, the gpt2 row of the crumb/gpt2023 model card on Hugging Face (shots not "
         "stated; its LAMBADA figure matches a 0-shot harness run); its \"arc\" column read as ARC-Challenge acc",
    "c": "Open LLM Leaderboard (v1), TruthfulQA 0-shot mc2 40.67 for gpt2, as quoted in the crumbly/cramp-25m "
         "model card",
}


def load(out, name):
    path = os.path.join(out, name, "eval.jsonl")
    tasks = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if "task" in r:
                tasks[r["task"]] = r
    return tasks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("names", nargs="+")
    ap.add_argument("--command", default="")
    args = ap.parse_args()
    runs = {n: load(args.out, n) for n in args.names}
    order = []
    for n in args.names:
        for t in runs[n]:
            if t not in order:
                order.append(t)
    head = "| task | metric | examples | chance | " + " | ".join(args.names) + " | GPT-2 124M (published) |"
    rows = [head, "|" + "---|" * (5 + len(args.names))]
    used = []
    for t in order:
        first = next(runs[n][t] for n in args.names if t in runs[n])
        metrics = [first["headline"]] + (["acc"] if first["headline"] == "acc_norm" else [])
        for m in metrics:
            cells = [f"{runs[n][t][m]:.4f}" if t in runs[n] and runs[n][t].get(m) is not None else "" for n in args.names]
            pub = PUBLISHED.get((t, m))
            if pub and pub[1] not in used:
                used.append(pub[1])
            pubtxt = f"{pub[0]:.4f} ({pub[1]})" if pub else "-"
            rows.append(f"| {t} | {m} | {first['examples']} | {first['chance']:.4f} | " + " | ".join(cells) + f" | {pubtxt} |")
    table = "\n".join(rows)
    notes = "\n".join(f"- ({k}) {SOURCES[k]}" for k in used)
    text = (f"# Multiple-choice tasks on the models trained here\n\n"
            f"- date: {datetime.date.today().isoformat()}\n- machine: {cpu_name()}, {os.cpu_count()} cores\n"
            f"- command: `{args.command}`\n\n{table}\n\nPublished figures:\n{notes}\n")
    with open(os.path.join(args.out, "RESULTS.md"), "w", encoding="utf-8") as f:
        f.write(text)
    print(table)
    print(f"wrote {os.path.join(args.out, 'RESULTS.md')}")


if __name__ == "__main__":
    main()
