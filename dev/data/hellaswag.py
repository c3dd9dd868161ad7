"""
HellaSwag validation set -> dev/data/hellaswag/hellaswag_val.bin, GPT-2 tokens (llmc/hellaswag.h).

Reads ../shared/data/hellaswag/hellaswag_val_full.txt: a PREPROCESSED copy of the validation
set (llama.cpp's 6-line text format: "activity_label: ctx", the gold label, 4 endings; WikiHow
[header]/[step]/[title] tags already stripped), not the original jsonl, so accuracies can
differ slightly from evaluations on the original file. Each ending is tokenized with a
leading space, as it continues the context.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tinyshakespeare import REPO, SHARED, atomic_write, find, gpt2_encoding  # noqa: E402

OUT = os.path.join(REPO, "dev", "data", "hellaswag", "hellaswag_val.bin")


def main():
    src = os.path.join(SHARED, "hellaswag", "hellaswag_val_full.txt")
    if not os.path.exists(src):
        sys.exit(f"error: {src} not found (the original jsonl is not used; see ../shared/data/README.md)")
    enc = gpt2_encoding(find("gpt2/encoder.json"), find("gpt2/vocab.bpe"))
    with open(src, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) % 6 != 0:
        sys.exit(f"error: {src}: {len(lines)} lines, not a multiple of 6")
    body, total, n = [], 0, len(lines) // 6
    for i in range(n):
        ctx, label, *endings = lines[6 * i: 6 * i + 6]
        if label not in ("0", "1", "2", "3"):
            sys.exit(f"error: {src}: line {6 * i + 2}: label '{label}' is not 0..3")
        ctx_tokens = enc.encode_ordinary(ctx)
        end_tokens = [enc.encode_ordinary(" " + e) for e in endings]
        toks = ctx_tokens + [t for e in end_tokens for t in e]
        body.append(struct.pack("<6i", int(label), len(ctx_tokens), *[len(e) for e in end_tokens]))
        body.append(struct.pack(f"<{len(toks)}H", *toks))
        total += len(toks)
    header = [0] * 256
    header[:4] = [20241127, 1, n, total]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    atomic_write(OUT, [struct.pack("<256i", *header)] + body)
    print(f"{src}: {n} examples, {total:,} tokens -> {OUT}")


if __name__ == "__main__":
    main()
