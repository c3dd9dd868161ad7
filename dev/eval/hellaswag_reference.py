"""
HellaSwag scoring in PyTorch, the oracle for train_gpt's C evaluation (llmc/hellaswag.h):
loads an llm.c checkpoint and the tokenized examples (dev/data/hellaswag.py), scores each
ending by its mean cross-entropy given the context, and prints the accuracy over the first N
examples in the same line format as train_gpt --eval, then the number of near ties (best and
runner-up within 1e-4 relative: fp32 scoring may pick either).

usage: hellaswag_reference.py CHECKPOINT HELLASWAG_BIN N [SCORES_OUT]
SCORES_OUT, if given, receives the N x 4 mean losses as float32 (dev/test/test_hellaswag.c).
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from gpt2_reference import load_llmc_checkpoint  # noqa: E402


def read_examples(path, n):
    with open(path, "rb") as f:
        header = struct.unpack("<256i", f.read(1024))
        assert header[0] == 20241127 and header[1] == 1, f"{path}: not a HellaSwag file"
        out = []
        for _ in range(min(n, header[2])):
            label, ctx_len, *end_lens = struct.unpack("<6i", f.read(24))
            toks = np.frombuffer(f.read(2 * (ctx_len + sum(end_lens))), dtype=np.uint16).astype(np.int64)
            ctx, pos, endings = toks[:ctx_len], ctx_len, []
            for n_end in end_lens:
                endings.append(toks[pos:pos + n_end])
                pos += n_end
            out.append((label, ctx, endings))
        return out


def main():
    ckpt, data, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model = load_llmc_checkpoint(ckpt)
    all_scores = []
    correct = 0
    near_ties = 0  # best and runner-up closer than fp32 scoring can tell apart
    examples = read_examples(data, n)
    with torch.no_grad():
        for label, ctx, endings in examples:
            scores = []
            for end in endings:
                seq = torch.tensor(np.concatenate([ctx, end]))
                x, y = seq[:-1].unsqueeze(0), seq[1:].unsqueeze(0)
                logits, _ = model(x, y)
                losses = F.cross_entropy(logits[0], y[0], reduction="none")
                scores.append(losses[len(ctx) - 1:].mean().item())
            all_scores.append(scores)
            correct += int(np.argmin(scores) == label)
            two = sorted(scores)[:2]
            near_ties += int(two[1] - two[0] < 1e-4 * abs(two[0]))
    print(f"step 0: HellaSwag accuracy {correct / len(examples):.4f} ({len(examples)} examples)")
    print(f"near ties: {near_ties}")
    if len(sys.argv) > 4:
        np.array(all_scores, dtype=np.float32).tofile(sys.argv[4])


if __name__ == "__main__":
    main()
