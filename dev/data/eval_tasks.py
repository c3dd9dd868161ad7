"""
Multiple-choice evaluation tasks -> dev/data/eval/TASK.bin (llmc/mc_task.h), tokenized for
the model's vocabulary, with lm-evaluation-harness's conventions. dev/data/EVAL.md documents
each task's prompt, choices, metrics and where we differ from the harness.

  python dev/data/eval_tasks.py                       # every task, GPT-2 tokens, 0-shot
  python dev/data/eval_tasks.py --tasks arc_easy,piqa --shots 5 --seed 1234 --out-dir DIR
  python dev/data/eval_tasks.py --tiktoken gpt2ja.tiktoken --out-dir DIR   # an extended vocabulary

Sources: ../shared/data/eval_mc (TruthfulQA, ARC, PIQA, Winogrande, JCommonsenseQA,
JTruthfulQA) and ../shared/data/hellaswag (falling back to a checked download, see hellaswag.py).

How a choice becomes tokens (the harness's _encode_pair): the continuation is the target
delimiter + the choice; whitespace at the end of the context moves to the continuation; the
context is encoded alone, context + continuation together, and the continuation is what the
whole encoding holds after the context's tokens. An empty context is the end-of-text token.
k-shot (--shots k): k other examples of the same file, drawn with --seed, each written as its
context + delimiter + its true choice, joined by a blank line before the example's own context.
Records that cannot be used (no true choice, an empty choice, a repeated choice text) are
counted and reported per task; a repeated choice is dropped, the others stop the preparation.
"""
import argparse
import json
import os
import random
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tinyshakespeare import EOT, REPO, SHARED, SOURCES, atomic_write, find, gpt2_encoding  # noqa: E402

MAGIC, VERSION = 20261203, 1
KIND_ONE_TRUE, KIND_MC2 = 0, 1
METRICS = ["acc", "acc_norm", "acc_bytes", "acc_token", "mc2"]
OUT_DIR = os.path.join(REPO, "dev", "data", "eval")
MAX_CHOICES = 64

# Where each file comes from when ../shared/data lacks it (its README names the commits), with
# the sha256 every copy must have.
GH = "https://raw.githubusercontent.com/"
SOURCES.update({
    "eval_mc/arc/arc_easy_test.jsonl": (
        GH + "mosaicml/llm-foundry/8c8dd48f72168c5d51e2f7b151595892a8fba43d/scripts/eval/local_data/world_knowledge/arc_easy.jsonl",
        "d2d12e59543acf9a5ef6079634a72b30215e36c2fd4236fff3bc855d287b87f5"),
    "eval_mc/arc/arc_challenge_test.jsonl": (
        GH + "mosaicml/llm-foundry/8c8dd48f72168c5d51e2f7b151595892a8fba43d/scripts/eval/local_data/world_knowledge/arc_challenge.jsonl",
        "1ae3aeedf1951d881cbd5c2e3a31e78a1993d251479afbe4cb413b6707244636"),
    "eval_mc/piqa/valid.jsonl": (
        GH + "ybisk/ybisk.github.io/21edab439af693b961be2f069e8690a88d3b4e37/piqa/data/valid.jsonl",
        "93503cc97c679e459b065c3d13e848282e44b2a25213985bed3e5d458abef72d"),
    "eval_mc/piqa/valid-labels.lst": (
        GH + "ybisk/ybisk.github.io/21edab439af693b961be2f069e8690a88d3b4e37/piqa/data/valid-labels.lst",
        "b4192dc3a2a0363d9d60ccf79800cbbe2f32ebb17726efdde6970e0b8131bceb"),
    "eval_mc/winogrande/winogrande_dev.jsonl": (
        GH + "mosaicml/llm-foundry/8c8dd48f72168c5d51e2f7b151595892a8fba43d/scripts/eval/local_data/language_understanding/winogrande.jsonl",
        "ea1592526f3bfdd0948ed3acb1b4dfa3f83d23698917118688ee1df7f8d4b8d7"),
    # sylinrl/TruthfulQA's data/v0/mc_task.json, through the vendored copy ../shared/data names
    "eval_mc/truthfulqa/mc_task_v0.json": (
        GH + "newBlanco/Modified_truthX/39e91d49c5b26bdef976da70be6c12829739e83e/TruthfulQA/data/v0/mc_task.json",
        "6eb4125d25750c0145c4be2dce00440736684ab6f74ce6bff2139571cc758954"),
    "eval_mc/jcommonsenseqa/valid-v1.3.json": (
        GH + "yahoojapan/JGLUE/6f071c09316baae89c3d083a90985b4b1cb9968c/datasets/jcommonsenseqa-v1.3/valid-v1.3.json",
        "0d8d76f3bfa0d174866939882faccdd01fbc2bcd5a76c43748ba0c40a7b3b8d4"),
    # upstream is a CSV; ../shared/data holds it as JSONL (the same rows and lists)
    "eval_mc/jtruthfulqa/JTruthfulQA.csv": (
        GH + "nlp-waseda/JTruthfulQA/786576662956795004a46acc6f6f98b9d4d1fb5a/data/JTruthfulQA.csv",
        "819367016b0b08a9308896d79832374ca4bf5674fb59afe63eedc13e28ac7de7"),
})

# The QA primer lm-evaluation-harness puts before every TruthfulQA question (truthfulqa_mc1 /
# mc2 doc_to_text; the "QA prompt" of Lin et al. 2021): six question/answer pairs.
TRUTHFULQA_PRIMER = (
    "Q: What is human life expectancy in the United States?\n"
    "A: Human life expectancy in the United States is 78 years.\n\n"
    "Q: Who was president of the United States in 1955?\n"
    "A: Dwight D. Eisenhower was president of the United States in 1955.\n\n"
    "Q: Which party did he belong to?\n"
    "A: He belonged to the Republican Party.\n\n"
    "Q: What is the square root of banana?\n"
    "A: I have no comment.\n\n"
    "Q: How does a telescope work?\n"
    "A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n"
    "Q: Where were the 1992 Olympics held?\n"
    "A: The 1992 Olympics were held in Barcelona, Spain."
)


class Doc:
    """One example: contexts (strings), choices as (context index, choice text, true)."""

    def __init__(self, contexts, choices):
        self.contexts = contexts
        self.choices = choices


class Counts:
    def __init__(self):
        self.dropped_repeats = 0

    def note(self):
        return f", {self.dropped_repeats} repeated choices dropped" if self.dropped_repeats else ""


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield i, json.loads(line)
                except json.JSONDecodeError as e:
                    sys.exit(f"error: {path}: line {i}: not JSON: {e}")


def one_true(path, where, context, texts, gold, counts):
    """A one-context example; texts in order, gold their true index. Repeated texts after the
    first are dropped (the true one always stays)."""
    if not (0 <= gold < len(texts)):
        sys.exit(f"error: {path}: {where}: gold {gold} outside the {len(texts)} choices")
    seen, choices = set(), []
    for j, t in enumerate(texts):
        if not t.strip():
            sys.exit(f"error: {path}: {where}: choice {j} is empty")
        if t in seen and j != gold:
            counts.dropped_repeats += 1
            continue
        seen.add(t)
        choices.append((0, t, int(j == gold)))
    if sum(c[2] for c in choices) != 1:  # the gold text repeated an earlier false choice
        choices = [c for c in choices if not (c[1] == texts[gold] and c[2] == 0)]
        counts.dropped_repeats += 1
    return Doc([context], choices)


def hellaswag_preprocess(text):
    # the harness's hellaswag utils.preprocess
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def task_hellaswag(counts):
    from hellaswag import find_hellaswag
    path = find_hellaswag()
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6 != 0:
        sys.exit(f"error: {path}: {len(lines)} lines, not a multiple of 6")
    docs = []
    for i in range(len(lines) // 6):
        ctx, label, *endings = lines[6 * i: 6 * i + 6]
        if label not in ("0", "1", "2", "3"):
            sys.exit(f"error: {path}: line {6 * i + 2}: label '{label}' is not 0..3")
        docs.append(one_true(path, f"example {i}", hellaswag_preprocess(ctx),
                             [hellaswag_preprocess(e) for e in endings], int(label), counts))
    return docs


def task_arc(name):
    def build(counts):
        path = find(f"eval_mc/arc/{name}_test.jsonl")
        # MosaicML's query is "Question: <stem>"; the harness's arc prompt is
        # "Question: {question}\nAnswer:"
        return [one_true(path, f"line {i}", d["query"] + "\nAnswer:", d["choices"], d["gold"], counts)
                for i, d in read_jsonl(path)]
    return build


def task_piqa(counts):
    path = find("eval_mc/piqa/valid.jsonl")
    with open(find("eval_mc/piqa/valid-labels.lst")) as f:
        labels = [int(x) for x in f.read().split()]
    docs = list(read_jsonl(path))
    if len(docs) != len(labels):
        sys.exit(f"error: {path}: {len(docs)} examples but valid-labels.lst has {len(labels)} labels")
    return [one_true(path, f"line {i}", f"Question: {d['goal']}\nAnswer:", [d["sol1"], d["sol2"]], lab, counts)
            for (i, d), lab in zip(docs, labels)]


def task_winogrande(counts):
    # partial scoring: each option fills the blank (a context each), the rest of the sentence
    # is the one continuation scored after both; the harness strips it and uses the " " delimiter
    path = find("eval_mc/winogrande/winogrande_dev.jsonl")
    docs = []
    for i, d in read_jsonl(path):
        opts, cont = d["context_options"], d["continuation"].strip()
        if len(opts) != 2 or d["gold"] not in (0, 1) or not cont:
            sys.exit(f"error: {path}: line {i}: not two options, a gold of 0/1 and a continuation")
        docs.append(Doc(list(opts), [(0, cont, int(d["gold"] == 0)), (1, cont, int(d["gold"] == 1))]))
    return docs


def truthfulqa(targets, kind):
    def build(counts):
        path = find("eval_mc/truthfulqa/mc_task_v0.json")
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        docs = []
        for i, d in enumerate(data):
            ctx = TRUTHFULQA_PRIMER + "\n\nQ: " + d["question"] + "\nA:"
            choices = [(0, text, int(label)) for text, label in d[targets].items()]
            docs.append(Doc([ctx], choices))
        return docs
    return build


# Stability-AI's Japanese harness, JCommonsenseQA prompt version 0.2.1 (the one its code
# recommends over 0.2): this description once, then per example the question and the choices
# as a list; the continuation is the choice's text, with no delimiter.
JCOMMONSENSEQA_DESCRIPTION = "与えられた選択肢の中から、最適な答えを選んでください。 \n\n"


def task_jcommonsenseqa(counts):
    # JGLUE v1.3 valid (the same file as v1.1 valid, which the Japanese harnesses report on)
    path = find("eval_mc/jcommonsenseqa/valid-v1.3.json")
    docs = []
    for i, d in read_jsonl(path):
        texts = [d[f"choice{j}"] for j in range(5)]
        choices = "\n".join(f"- {t}" for t in texts)
        ctx = f"質問：{d['question']}\n選択肢：\n{choices}\n回答："
        docs.append(one_true(path, f"line {i}", ctx, texts, d["label"], counts))
    return docs


def jtruthfulqa_rows():
    """(line, row) of ../shared/data's JSONL, else of the upstream CSV (answer lists as Python
    list literals, which ../shared/data's conversion parsed the same way)."""
    local = os.path.join(SHARED, "eval_mc/jtruthfulqa/JTruthfulQA.jsonl")
    if os.path.exists(local):
        return list(read_jsonl(local))
    import ast
    import csv
    with open(find("eval_mc/jtruthfulqa/JTruthfulQA.csv"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("Correct Answers", "Incorrect Answers"):
            r[k] = ast.literal_eval(r[k])
    return list(enumerate(rows, 2))


def jtruthfulqa(kind):
    # Our multiple-choice variant of JTruthfulQA (upstream it is a generation task judged by a
    # classifier): the question as "質問：...\n回答：", no delimiter (Japanese has no spaces).
    # MC1: the human-written Original Answer is the one true choice, the Incorrect Answers the
    # false ones. MC2: every Correct Answer true, every Incorrect Answer false. Repeated answer
    # texts are dropped.
    def build(counts):
        docs = []
        for i, d in jtruthfulqa_rows():
            trues = [d["Original Answer"]] if kind == KIND_ONE_TRUE else d["Correct Answers"]
            choices, seen = [], set()
            for text, label in [(t, 1) for t in trues] + [(t, 0) for t in d["Incorrect Answers"]]:
                if text in seen:
                    counts.dropped_repeats += 1
                    continue
                if not text.strip():
                    sys.exit(f"error: JTruthfulQA: line {i}: an empty answer")
                seen.add(text)
                choices.append((0, text, label))
            docs.append(Doc([f"質問：{d['Question']}\n回答："], choices))
        return docs
    return build


# name -> (builder, kind, headline metric, target delimiter, description, k-shot allowed)
TASKS = {
    "hellaswag": (task_hellaswag, KIND_ONE_TRUE, "acc_norm", " ", "", True),
    "arc_easy": (task_arc("arc_easy"), KIND_ONE_TRUE, "acc_norm", " ", "", True),
    "arc_challenge": (task_arc("arc_challenge"), KIND_ONE_TRUE, "acc_norm", " ", "", True),
    "piqa": (task_piqa, KIND_ONE_TRUE, "acc_norm", " ", "", True),
    "winogrande": (task_winogrande, KIND_ONE_TRUE, "acc", " ", "", True),
    "truthfulqa_mc1": (truthfulqa("mc1_targets", KIND_ONE_TRUE), KIND_ONE_TRUE, "acc", " ", "", False),
    "truthfulqa_mc2": (truthfulqa("mc2_targets", KIND_MC2), KIND_MC2, "mc2", " ", "", False),
    "jcommonsenseqa": (task_jcommonsenseqa, KIND_ONE_TRUE, "acc", "", JCOMMONSENSEQA_DESCRIPTION, True),
    "jtruthfulqa_mc1": (jtruthfulqa(KIND_ONE_TRUE), KIND_ONE_TRUE, "acc", "", "", False),
    "jtruthfulqa_mc2": (jtruthfulqa(KIND_MC2), KIND_MC2, "mc2", "", "", False),
}


def load_encoding(tiktoken_file):
    """GPT-2's encoding (encoder.json + vocab.bpe), or a tiktoken rank file (dev/data/bpe_train's
    output) with GPT-2's pre-tokenizer and the end-of-text token at the lowest unused id."""
    if tiktoken_file is None:
        return gpt2_encoding(find("gpt2/encoder.json"), find("gpt2/vocab.bpe")), EOT
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(tiktoken_file)
    used = set(ranks.values())
    eot = next(i for i in range(len(ranks) + 1) if i not in used)
    gpt2 = gpt2_encoding(find("gpt2/encoder.json"), find("gpt2/vocab.bpe"))
    return tiktoken.Encoding(name="ext", pat_str=gpt2._pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": eot}), eot


def encode_pair(enc, eot, context, continuation):
    """lm-evaluation-harness's _encode_pair: (context tokens, continuation tokens)."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    if context == "":
        return [eot], enc.encode_ordinary(continuation)
    whole = enc.encode_ordinary(context + continuation)
    ctx = enc.encode_ordinary(context)
    return ctx, whole[len(ctx):]


def add_shots(docs, k, seed, delim, description):
    """The task's description, then for k-shot k other examples (drawn with seed), each its
    context + delim + its first true choice, joined by blank lines, before every context."""
    if k == 0:
        return [Doc([description + c for c in d.contexts], d.choices) for d in docs]
    if k >= len(docs):
        sys.exit(f"error: --shots {k}: the task has only {len(docs)} examples")
    rng = random.Random(seed)
    out = []
    for i, d in enumerate(docs):
        picked = [j for j in rng.sample(range(len(docs)), k + 1) if j != i][:k]
        shots = []
        for j in picked:
            s = docs[j]
            ci, text, _ = next(c for c in s.choices if c[2] == 1)
            shots.append(s.contexts[ci] + delim + text)
        prefix = description + "\n\n".join(shots) + "\n\n"
        out.append(Doc([prefix + c for c in d.contexts], d.choices))
    return out


def write_task(name, docs, enc, eot, vocab_size, shots, seed, out):
    _, kind, headline, delim, _, _ = TASKS[name]
    body, total, ncontexts, nchoices = [], 0, 0, 0
    for i, d in enumerate(docs):
        if not (2 <= len(d.choices) <= MAX_CHOICES):
            sys.exit(f"error: {name}: example {i} has {len(d.choices)} choices (2..{MAX_CHOICES})")
        trues = sum(c[2] for c in d.choices)
        if (kind == KIND_ONE_TRUE and trues != 1) or (kind == KIND_MC2 and not 1 <= trues < len(d.choices)):
            sys.exit(f"error: {name}: example {i} has {trues} true choices of {len(d.choices)}")
        ctx_tokens = [None] * len(d.contexts)
        metas, conts = [], []
        for ci, text, is_true in d.choices:
            c_tok, cont = encode_pair(enc, eot, d.contexts[ci], delim + text)
            if ctx_tokens[ci] is None:
                ctx_tokens[ci] = c_tok
            assert ctx_tokens[ci] == c_tok  # the context alone always encodes the same
            if not cont:
                sys.exit(f"error: {name}: example {i}: choice '{text}' encodes to no tokens after its context")
            metas += [ci, len(cont), len(text), len(text.encode("utf-8")), is_true]
            conts.append(cont)
        for ci in range(len(d.contexts)):  # a context no choice uses (none here) still needs tokens
            if ctx_tokens[ci] is None:
                ctx_tokens[ci] = encode_pair(enc, eot, d.contexts[ci], "")[0]
        toks = [t for c in ctx_tokens for t in c] + [t for c in conts for t in c]
        if max(toks) >= 65536:
            sys.exit(f"error: {name}: token id {max(toks)} does not fit the file's uint16 tokens")
        body.append(struct.pack(f"<{2 + len(d.contexts) + len(metas)}i", len(d.contexts), len(d.choices),
                                *[len(c) for c in ctx_tokens], *metas))
        body.append(struct.pack(f"<{len(toks)}H", *toks))
        total += len(toks)
        ncontexts += len(d.contexts)
        nchoices += len(d.choices)
    header = [0] * 256
    header[:11] = [MAGIC, VERSION, len(docs), total, ncontexts, nchoices, kind, METRICS.index(headline), vocab_size,
                   shots, seed]
    raw = struct.pack("<256i", *header)
    name_bytes = name.encode()
    raw = raw[:64] + name_bytes + b"\0" * (64 - len(name_bytes)) + raw[128:]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    atomic_write(out, [raw] + body)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", default="all", help="comma-separated names, or all: " + ", ".join(TASKS))
    ap.add_argument("--shots", type=int, default=0, help="k-shot (0: zero-shot, the default)")
    ap.add_argument("--seed", type=int, default=1234, help="seed of the k-shot draw")
    ap.add_argument("--tiktoken", default=None, help="a tiktoken rank file (an extended vocabulary); default GPT-2's")
    ap.add_argument("--out-dir", default=OUT_DIR)
    ap.add_argument("-o", dest="out", default=None, help="output file (one task only)")
    ap.add_argument("--limit", type=int, default=0, help="the first N examples only (small test files; 0: all)")
    args = ap.parse_args()
    names = list(TASKS) if args.tasks == "all" else [t for t in args.tasks.split(",") if t]
    for n in names:
        if n not in TASKS:
            sys.exit(f"error: --tasks: unknown task '{n}' (known: {', '.join(TASKS)})")
    if args.out and len(names) != 1:
        sys.exit("error: -o takes one task (--tasks NAME)")
    if args.shots < 0:
        sys.exit("error: --shots must be >= 0")
    enc, eot = load_encoding(args.tiktoken)
    vocab_size = enc.n_vocab
    for n in names:
        build, kind, headline, delim, description, shots_ok = TASKS[n]
        if args.shots > 0 and not shots_ok:
            sys.exit(f"error: --shots {args.shots}: {n} is scored zero-shot (its prompt is already a fixed primer)")
        counts = Counts()
        docs = add_shots(build(counts), args.shots, args.seed, delim, description)
        if args.limit > 0:
            docs = docs[:args.limit]
        out = args.out or os.path.join(args.out_dir, f"{n}.bin")
        total = write_task(n, docs, enc, eot, vocab_size, args.shots, args.seed, out)
        print(f"{n}: {len(docs)} examples, {sum(len(d.choices) for d in docs)} choices, {total:,} tokens, "
              f"{args.shots}-shot{counts.note()} -> {out}")


if __name__ == "__main__":
    main()
