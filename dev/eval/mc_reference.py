"""
The PyTorch scorer of multiple-choice tasks, the oracle for train_gpt's C evaluation
(llmc/mc_task.h, llmc/train_mc.h). Written apart from the C code: it parses the task file
itself, scores every choice with a float64 forward of one sequence at a time, and applies
lm-evaluation-harness's rules in numpy (argmax takes the first maximum; MC2 through
logsumexp).

usage: mc_reference.py CHECKPOINT TASK_FILE N T [OUT]
  N  the first N examples; T the trainer's -t (windows of T + 1 tokens, cut from the left)
OUT, if given, receives float64: N x 5 metric values (acc, acc_norm, acc_bytes, acc_token,
mc2), N x 5 near-tie flags (1 where the best and the runner-up of that metric's scores are
within 1e-6 relative: fp32 may pick either), then the log-likelihood of every choice of the N
examples in file order. Prints the mean of each metric.
"""
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from gpt2_reference import load_llmc_checkpoint  # noqa: E402

METRICS = ["acc", "acc_norm", "acc_bytes", "acc_token", "mc2"]


def read_task(path, n):
    """(name, header, [(contexts, choices)]) of the first n examples; a choice is (context, tokens,
    chars, bytes, true); tokens as int64 arrays."""
    data = open(path, "rb").read()
    h = struct.unpack_from("<256i", data, 0)
    assert h[0] == 20261203 and h[1] == 1, f"{path}: not a version-1 task file"
    name = data[64:128].split(b"\0")[0].decode()
    pos, out = 1024, []
    for _ in range(min(n, h[2])):
        nc, nch = struct.unpack_from("<2i", data, pos)
        pos += 8
        ctx_lens = struct.unpack_from(f"<{nc}i", data, pos)
        pos += 4 * nc
        meta = [struct.unpack_from("<5i", data, pos + 20 * j) for j in range(nch)]
        pos += 20 * nch
        total = sum(ctx_lens) + sum(m[1] for m in meta)
        toks = np.frombuffer(data, dtype=np.uint16, count=total, offset=pos).astype(np.int64)
        pos += 2 * total
        contexts, k = [], 0
        for L in ctx_lens:
            contexts.append(toks[k:k + L])
            k += L
        choices = []
        for ci, L, chars, nbytes, true in meta:
            choices.append((ci, toks[k:k + L], chars, nbytes, true))
            k += L
        out.append((contexts, choices))
    if n >= h[2]:
        assert pos == len(data), f"{path}: {len(data) - pos} bytes after the last example"
    return name, h, out


def loglikelihood(model, context, cont, T):
    """The harness's rule: the last T + 1 tokens of context + continuation; the sum of the
    log-probabilities of the continuation's tokens among the targets; and how many there were."""
    whole = np.concatenate([context, cont])[-(T + 1):]
    x = torch.tensor(whole[:-1]).unsqueeze(0)
    y = torch.tensor(whole[1:])
    logits, _ = model(x, y.unsqueeze(0))
    logp = F.log_softmax(logits[0].double(), dim=-1).gather(1, y.unsqueeze(1)).squeeze(1)
    k = min(len(cont), len(whole) - 1)
    return logp[-k:].sum().item(), k


def pick(scores):
    """numpy's argmax (the first maximum), and whether the runner-up is within 1e-6 relative"""
    best = int(np.argmax(scores))
    rest = np.delete(scores, best)
    tie = len(rest) > 0 and scores[best] - rest.max() <= 1e-6 * abs(scores[best])
    return best, tie


def main():
    ckpt, path, n, T = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    model = load_llmc_checkpoint(ckpt)
    name, header, examples = read_task(path, n)
    kind = header[6]
    values, ties, lls = [], [], []
    with torch.no_grad():
        for contexts, choices in examples:
            ll, ntok = [], []
            for ci, cont, _, _, _ in choices:
                a, k = loglikelihood(model, contexts[ci], cont, T)
                ll.append(a)
                ntok.append(k)
            ll = np.array(ll)
            lls += list(ll)
            true = np.array([c[4] for c in choices])
            v, t = [0.0] * 5, [0.0] * 5
            if kind == 1:
                v[4] = float(np.exp(torch.logsumexp(torch.tensor(ll[true == 1]), 0).item()
                                    - torch.logsumexp(torch.tensor(ll), 0).item()))
            else:
                divisors = [np.ones(len(ll)), np.array([c[2] for c in choices], dtype=np.float64),
                            np.array([c[3] for c in choices], dtype=np.float64), np.array(ntok, dtype=np.float64)]
                for m, d in enumerate(divisors):
                    best, tie = pick(ll / d)
                    v[m], t[m] = float(true[best]), float(tie)
            values.append(v)
            ties.append(t)
    values, ties = np.array(values), np.array(ties)
    shown = [4] if kind == 1 else [0, 1, 2, 3]
    print(f"{name} ({len(examples)} examples): " + " | ".join(f"{METRICS[m]} {values[:, m].mean():.4f}" for m in shown)
          + f" | near ties {int(ties.sum())}")
    if len(sys.argv) > 5:
        np.concatenate([values.ravel(), ties.ravel(), np.array(lls)]).astype(np.float64).tofile(sys.argv[5])


if __name__ == "__main__":
    main()
