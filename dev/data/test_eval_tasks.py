"""
Checks the task files make eval-data wrote (dev/data/eval/*.bin) by decoding them back to text
and comparing with the sources in ../shared/data read here, against the harness's templates
as dev/data/EVAL.md states them: the example counts of ../shared/data/README.md, the prompt of
a few examples (the first, and one drawn with a fresh seed), each continuation as delimiter +
choice, the true flags, the characters and bytes of every choice; k-shot prompts (the seed
reproduces the file, another seed changes it, the shots are other examples with their true
answer); the harness's handling of a context ending in whitespace; refusals.
Prints PASS:/FAIL: lines. usage: test_eval_tasks.py (from the repository root)
"""
import json
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_tasks import encode_pair  # noqa: E402
from tinyshakespeare import EOT, SHARED, gpt2_encoding  # noqa: E402
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "eval"))
from mc_reference import read_task  # noqa: E402  (the oracle's own reader of the file)

EVAL = "dev/data/eval"
PY = sys.executable
fails = 0


def report(ok, name, detail=""):
    global fails
    print(("PASS: " if ok else "FAIL: ") + name + (f" ({detail})" if detail else ""))
    fails += 0 if ok else 1


def read(path):
    """(name, header, [(contexts, [(ctx, tokens, chars, bytes, true)])]), tokens as lists"""
    name, h, exs = read_task(path, 1 << 30)
    return name, h, [([c.tolist() for c in ctxs], [(ci, t.tolist(), ch, nb, tr) for ci, t, ch, nb, tr in chs])
                     for ctxs, chs in exs]


def jsonl(rel):
    with open(os.path.join(SHARED, rel), encoding="utf-8") as f:
        return [json.loads(x) for x in f if x.strip()]


def check_example(task, ex, want_ctxs, want_choices, enc):
    """want_choices: [(context index, text after the delimiter... as the continuation decodes, choice, true)]"""
    ctxs, chs = ex
    got_ctx = [enc.decode(c) for c in ctxs]
    if got_ctx != want_ctxs:
        return f"contexts {got_ctx!r} != {want_ctxs!r}"
    if len(chs) != len(want_choices):
        return f"{len(chs)} choices, expected {len(want_choices)}"
    for (ci, toks, chars, nbytes, true), (wci, cont, choice, wtrue) in zip(chs, want_choices):
        if ci != wci or enc.decode(toks) != cont or true != wtrue or chars != len(choice) or nbytes != len(choice.encode()):
            return f"choice {choice!r}: context {ci}, '{enc.decode(toks)}', true {true}, {chars} chars, {nbytes} bytes"
    return None


def main():
    enc = gpt2_encoding(os.path.join(SHARED, "gpt2/encoder.json"), os.path.join(SHARED, "gpt2/vocab.bpe"))
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    counts = {"hellaswag": 10042, "arc_easy": 2376, "arc_challenge": 1172, "piqa": 1838, "winogrande": 1267,
              "truthfulqa_mc1": 817, "truthfulqa_mc2": 817, "jcommonsenseqa": 1119, "jtruthfulqa_mc1": 582,
              "jtruthfulqa_mc2": 582}
    files = {}
    for t, n in counts.items():
        name, h, exs = read(os.path.join(EVAL, t + ".bin"))
        files[t] = exs
        report(name == t and h[2] == n and h[8] == 50257 and h[9] == 0, f"{t}.bin: {n} examples, GPT-2 vocabulary, 0-shot",
               f"name {name}, {h[2]} examples")

    # HellaSwag: the harness's preprocess of the stored lines, " " + each ending
    import re

    def pre(text):
        text = text.strip().replace(" [title]", ". ")
        return re.sub("\\[.*?\\]", "", text).replace("  ", " ")
    with open(os.path.join(SHARED, "hellaswag/hellaswag_val_full.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    i = rng.randrange(10042)
    ctx, label, *ends = lines[6 * i: 6 * i + 6]
    bad = check_example("hellaswag", files["hellaswag"][i], [pre(ctx)],
                        [(0, " " + pre(e), pre(e), int(j == int(label))) for j, e in enumerate(ends)], enc)
    report(bad is None, "hellaswag: a random example, preprocessed as the harness does, its 4 endings", bad or f"example {i}")
    # ARC and PIQA: "Question: ...\nAnswer:" and " " + each choice
    for t in ("arc_easy", "arc_challenge"):
        raw = jsonl(f"eval_mc/arc/{t}_test.jsonl")
        bad = None
        for i in (0, rng.randrange(len(raw))):
            d = raw[i]
            seen, want = set(), []
            for j, c in enumerate(d["choices"]):
                if c in seen and j != d["gold"]:
                    continue  # a repeated choice is dropped (EVAL.md)
                seen.add(c)
                want.append((0, " " + c, c, int(j == d["gold"])))
            bad = bad or check_example(t, files[t][i], [d["query"] + "\nAnswer:"], want, enc)
        report(bad is None, f"{t}: examples 0 and a random one decode to the harness's prompt and choices", bad or f"seed {seed}")
    raw = jsonl("eval_mc/piqa/valid.jsonl")
    labels = open(os.path.join(SHARED, "eval_mc/piqa/valid-labels.lst")).read().split()
    i = rng.randrange(len(raw))
    d, lab = raw[i], int(labels[i])
    bad = check_example("piqa", files["piqa"][i], [f"Question: {d['goal']}\nAnswer:"],
                        [(0, " " + d["sol1"], d["sol1"], int(lab == 0)), (0, " " + d["sol2"], d["sol2"], int(lab == 1))], enc)
    report(bad is None, "piqa: a random example and its label from valid-labels.lst", bad or f"example {i}")
    # Winogrande: two contexts, one stripped continuation after a space
    raw = jsonl("eval_mc/winogrande/winogrande_dev.jsonl")
    bad = None
    apostrophe = next(i for i, d in enumerate(raw) if d["continuation"].startswith(("'", ".")))
    for i in (0, apostrophe, rng.randrange(len(raw))):
        d = raw[i]
        cont = d["continuation"].strip()
        bad = bad or check_example("winogrande", files["winogrande"][i], d["context_options"],
                                   [(0, " " + cont, cont, int(d["gold"] == 0)), (1, " " + cont, cont, int(d["gold"] == 1))], enc)
    report(bad is None, "winogrande: partial scoring, 2 contexts, the same continuation after a space (also where it starts with ' or .)",
           bad or "")
    # TruthfulQA: the primer, the question, every target with its label, in file order
    with open(os.path.join(SHARED, "eval_mc/truthfulqa/mc_task_v0.json"), encoding="utf-8") as f:
        tq = json.load(f)
    bad = None
    for t, key in (("truthfulqa_mc1", "mc1_targets"), ("truthfulqa_mc2", "mc2_targets")):
        i = rng.randrange(len(tq))
        ctx = enc.decode(files[t][i][0][0])
        if not (ctx.startswith("Q: What is human life expectancy in the United States?\nA: Human life expectancy")
                and ctx.endswith("Where were the 1992 Olympics held?\nA: The 1992 Olympics were held in Barcelona, Spain.\n\nQ: "
                                 + tq[i]["question"] + "\nA:")):
            bad = f"{t} example {i}: context {ctx[-120:]!r}"
        want = [(0, " " + a, a, int(v)) for a, v in tq[i][key].items()]
        bad = bad or check_example(t, files[t][i], [ctx], want, enc)
    report(bad is None, "truthfulqa_mc1/mc2: the QA primer, then Q:/A:, every target with its label", bad or "")
    # JCommonsenseQA prompt 0.2.1, no delimiter
    raw = jsonl("eval_mc/jcommonsenseqa/valid-v1.3.json")
    i = rng.randrange(len(raw))
    d = raw[i]
    cs = [d[f"choice{j}"] for j in range(5)]
    ctx = ("与えられた選択肢の中から、最適な答えを選んでください。 \n\n質問：" + d["question"] + "\n選択肢：\n"
           + "\n".join("- " + c for c in cs) + "\n回答：")
    bad = check_example("jcommonsenseqa", files["jcommonsenseqa"][i], [ctx],
                        [(0, c, c, int(j == d["label"])) for j, c in enumerate(cs)], enc)
    report(bad is None, "jcommonsenseqa: prompt 0.2.1, the choices without a delimiter", bad or f"example {i}")
    # JTruthfulQA: MC1 the original answer true; MC2 the correct answers true; repeats dropped
    raw = jsonl("eval_mc/jtruthfulqa/JTruthfulQA.jsonl")
    i = rng.randrange(len(raw))
    d = raw[i]
    bad = None
    for t, trues in (("jtruthfulqa_mc1", [d["Original Answer"]]), ("jtruthfulqa_mc2", d["Correct Answers"])):
        want, seen = [], set()
        for a, v in [(a, 1) for a in trues] + [(a, 0) for a in d["Incorrect Answers"]]:
            if a not in seen:
                seen.add(a)
                want.append((0, a, a, v))
        bad = bad or check_example(t, files[t][i], ["質問：" + d["Question"] + "\n回答："], want, enc)
    report(bad is None, "jtruthfulqa_mc1/mc2: our MC variant as EVAL.md states it", bad or f"example {i}")

    # the harness's _encode_pair: trailing whitespace of the context moves to the continuation
    c, k = encode_pair(enc, EOT, "Answer: ", "Paris")
    c2, k2 = encode_pair(enc, EOT, "", "Paris")
    report(c == enc.encode_ordinary("Answer:") and k == enc.encode_ordinary(" Paris") and c2 == [EOT],
           "encode_pair: trailing space moved to the continuation; an empty context is end-of-text")

    # k-shot: reproducible with its seed, other examples with their true answers
    with tempfile.TemporaryDirectory() as tmp:
        def shots(seed, out):
            return subprocess.run([PY, "dev/data/eval_tasks.py", "--tasks", "arc_easy", "--shots", "2", "--seed", str(seed),
                                   "--limit", "5", "-o", out], capture_output=True, text=True)
        a, b, c3 = shots(7, f"{tmp}/a.bin"), shots(7, f"{tmp}/b.bin"), shots(8, f"{tmp}/c.bin")
        ok = a.returncode == 0 and open(f"{tmp}/a.bin", "rb").read() == open(f"{tmp}/b.bin", "rb").read() != \
            open(f"{tmp}/c.bin", "rb").read()
        name, h, exs = read(f"{tmp}/a.bin")
        raw = jsonl("eval_mc/arc/arc_easy_test.jsonl")
        shot_texts = {d["query"] + "\nAnswer: " + d["choices"][d["gold"]] for d in raw}
        ctx = enc.decode(exs[0][0][0])
        parts = ctx.split("\n\n")
        ok = ok and h[9] == 2 and h[10] == 7 and len(parts) == 3 and parts[2] == raw[0]["query"] + "\nAnswer:" and \
            all(p in shot_texts and p != raw[0]["query"] + "\nAnswer: " + raw[0]["choices"][raw[0]["gold"]] for p in parts[:2])
        report(ok, "k-shot: --seed reproduces the file, another seed changes it; 2 other examples with their true answer, "
                   "blank lines, then the example", ctx[:100].replace("\n", "\\n"))
        r = subprocess.run([PY, "dev/data/eval_tasks.py", "--tasks", "truthfulqa_mc1", "--shots", "1", "-o", f"{tmp}/t.bin"],
                           capture_output=True, text=True)
        r2 = subprocess.run([PY, "dev/data/eval_tasks.py", "--tasks", "arc_ez"], capture_output=True, text=True)
        report(r.returncode != 0 and "--shots" in r.stderr and r2.returncode != 0 and "arc_ez" in r2.stderr,
               "k-shot TruthfulQA and an unknown task are refused, naming the flag", (r.stderr + r2.stderr).strip()[:160])
    return 0 if fails == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
