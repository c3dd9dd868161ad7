"""The generator's decoding against Hugging Face transformers (the PyTorch reference).

  decode_reference.py cases FILE
      FILE from `dev/infer/test_infer --cases FILE`: random logits with a temperature, top-k,
      top-p and repetition penalty, and what llmc/sampler.h made of them. Each case goes
      through transformers' own RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
      TopKLogitsWarper and TopPLogitsWarper (the order of generate()'s sampling) and a softmax;
      the penalized logits, the set of kept tokens, the probabilities and the greedy token
      must agree.

  decode_reference.py generate HF_DIR PROMPTS OURS.jsonl --max-new-tokens N [--beams K
                      --length-penalty P --early-stopping true|false|never] [--repetition-penalty R]
      Runs transformers' generate() (greedy, or beam search) on the exported model for each
      prompt of PROMPTS (one per line, tokenized with the exported tokenizer, as our
      generator does) and compares the token ids with ours (dev/infer/generate --format jsonl);
      with --num-return K, the K hypotheses transformers returns and their sequence scores
      against ours (--num-return-sequences K), in order.
      A greedy difference is forgiven only when transformers' own top two logits at that step
      are within 1e-4 of each other (a tie that float rounding may break either way); it is
      reported.

Prints PASS:/FAIL: lines (dev/test/run_tests.sh's protocol); exit 1 on a failure.
"""
import json
import os
import struct
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch

fails = 0


def check(ok, name, detail):
    global fails
    if ok:
        print(f"PASS: {name} ({detail})")
    else:
        print(f"FAIL: {name}: {detail}")
        fails += 1


def read_cases(path):
    data = open(path, "rb").read()
    off = 0

    def take(fmt, n=1):
        nonlocal off
        size = struct.calcsize("<" + fmt * n)
        vals = struct.unpack_from("<" + fmt * n, data, off)
        off += size
        return vals

    (ncases,) = take("i")
    cases = []
    for _ in range(ncases):
        V, nh = take("i", 2)
        (temp,) = take("f")
        (top_k,) = take("i")
        (top_p,) = take("f")
        (rep,) = take("f")
        hist = np.array(take("i", nh), dtype=np.int64)
        logits = np.array(take("f", V), dtype=np.float32)
        pen = np.array(take("f", V), dtype=np.float32)
        probs = np.array(take("f", V), dtype=np.float32)
        (greedy,) = take("i")
        cases.append(dict(V=V, temp=temp, top_k=top_k, top_p=top_p, rep=rep, hist=hist, logits=logits, pen=pen,
                          probs=probs, greedy=greedy))
    if off != len(data):
        raise SystemExit(f"{path}: {len(data) - off} trailing bytes")
    return cases


def run_cases(path):
    from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                        TopKLogitsWarper, TopPLogitsWarper)
    cases = read_cases(path)
    worst_pen = worst_p = 0.0
    set_diff = greedy_diff = 0
    boundary = 0
    for c in cases:
        ids = torch.tensor(c["hist"])[None, :]
        x = torch.tensor(c["logits"])[None, :].clone()
        if c["rep"] != 1.0:
            x = RepetitionPenaltyLogitsProcessor(penalty=float(c["rep"]))(ids, x)
        worst_pen = max(worst_pen, float(np.max(np.abs(x[0].numpy() - c["pen"]))))
        if int(torch.argmax(x[0])) != c["greedy"]:
            greedy_diff += 1
        y = TemperatureLogitsWarper(float(c["temp"]))(ids, x.clone())
        if c["top_k"] > 0:
            y = TopKLogitsWarper(top_k=int(c["top_k"]))(ids, y)
        if c["top_p"] < 1.0:
            y = TopPLogitsWarper(top_p=float(c["top_p"]))(ids, y)
        p = torch.softmax(y, dim=-1)[0].numpy()
        kept_ref = p > 0
        kept_ours = c["probs"] > 0
        if not np.array_equal(kept_ref, kept_ours):
            # a token at the top-p boundary: the mass before it equals top_p to float rounding
            q = torch.softmax(TemperatureLogitsWarper(float(c["temp"]))(ids, x.clone()), dim=-1)[0].numpy().astype(np.float64)
            order = np.argsort(-q, kind="stable")
            before = np.concatenate([[0.0], np.cumsum(q[order])[:-1]])
            diff = np.nonzero(kept_ref != kept_ours)[0]
            near = all(abs(before[np.nonzero(order == i)[0][0]] - c["top_p"]) < 1e-5 for i in diff)
            if near:
                boundary += 1
                continue
            set_diff += 1
            continue
        worst_p = max(worst_p, float(np.max(np.abs(p - c["probs"]))))
    n = len(cases)
    check(worst_pen <= 1e-6, "repetition penalty vs transformers' RepetitionPenaltyLogitsProcessor",
          f"{n} cases, worst absolute difference {worst_pen:.1e}, tolerance 1e-6")
    check(greedy_diff == 0, "greedy token vs torch.argmax of the processed logits", f"{greedy_diff} of {n} differ")
    check(set_diff == 0, "tokens kept by temperature + top-k + top-p vs transformers' warpers",
          f"{set_diff} of {n} cases keep another set ({boundary} differ only at a top-p boundary within 1e-5, forgiven)")
    check(worst_p <= 2e-6, "sampling distribution vs softmax of transformers' warped logits",
          f"worst absolute difference {worst_p:.1e}, tolerance 2e-6 (float32 softmax)")


def run_generate(hf_dir, prompts_path, ours_path, args):
    from transformers import AutoTokenizer, GPT2LMHeadModel
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-new-tokens", type=int, required=True)
    ap.add_argument("--beams", type=int, default=0)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--early-stopping", default="false")
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--num-return", type=int, default=1)
    a = ap.parse_args(args)
    torch.manual_seed(0)
    model = GPT2LMHeadModel.from_pretrained(hf_dir, local_files_only=True).eval()
    tok = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    prompts = [l.rstrip("\n").replace("\\n", "\n") for l in open(prompts_path, encoding="utf-8") if l.strip()]
    ours = [json.loads(l) for l in open(ours_path, encoding="utf-8")]
    if len(ours) != len(prompts):
        check(False, "generate vs transformers", f"{len(ours)} outputs for {len(prompts)} prompts")
        return
    eot = model.config.eos_token_id
    early = {"true": True, "false": False, "never": "never"}[a.early_stopping]
    same = forgiven = 0
    notes = []
    for i, (p, o) in enumerate(zip(prompts, ours)):
        ids = tok(p, return_tensors="pt")["input_ids"]
        if ids.shape[1] != o["prompt_tokens"]:
            check(False, f"prompt {i} tokens", f"transformers' tokenizer gives {ids.shape[1]}, ours {o['prompt_tokens']}")
            continue
        kw = dict(max_new_tokens=a.max_new_tokens, pad_token_id=eot, eos_token_id=eot, do_sample=False,
                  repetition_penalty=a.repetition_penalty)
        if a.beams > 0:
            kw.update(num_beams=a.beams, length_penalty=a.length_penalty, early_stopping=early)
        if a.num_return > 1:
            kw.update(num_return_sequences=a.num_return, output_scores=True, return_dict_in_generate=True)
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), **kw)
        if a.num_return > 1:
            # every returned hypothesis, in order, with its score
            hyps = o.get("hypotheses", [])
            bad = None
            if len(hyps) != a.num_return:
                bad = f"{len(hyps)} hypotheses, transformers {a.num_return}"
            for r in range(min(len(hyps), a.num_return)):
                seq = out.sequences[r, ids.shape[1]:].tolist()
                if eot in seq:
                    seq = seq[:seq.index(eot)]
                sc = float(out.sequences_scores[r])
                if bad is None and (seq != hyps[r]["tokens"] or abs(sc - hyps[r]["score"]) > 1e-5 * max(1.0, abs(sc))):
                    bad = (f"hypothesis {r}: ours {hyps[r]['tokens']} score {hyps[r]['score']:.7g}, "
                           f"transformers {seq} score {sc:.7g}")
            if bad is None:
                same += 1
            else:
                check(False, f"prompt {i}", bad)
            continue
        ref = out[0, ids.shape[1]:].tolist()
        # ours has no EOT; transformers' ends with it (greedy) or pads after it (beams)
        if eot in ref:
            ref = ref[:ref.index(eot)]
        got = o["tokens"]
        if got == ref:
            same += 1
            continue
        # where they part, is transformers' choice a near tie? (greedy only)
        k = next((j for j in range(min(len(got), len(ref))) if got[j] != ref[j]), min(len(got), len(ref)))
        if a.beams == 0:
            ctx = torch.tensor([ids[0].tolist() + ref[:k]])
            with torch.no_grad():
                logits = model(ctx).logits[0, -1]
            top2 = torch.topk(logits, 2).values
            if float(top2[0] - top2[1]) < 1e-4:
                forgiven += 1
                notes.append(f"prompt {i}: near tie at new token {k} (top-2 gap {float(top2[0] - top2[1]):.1e})")
                continue
        check(False, f"prompt {i}", f"ours {got[:k + 3]}... vs transformers {ref[:k + 3]}... (first difference at new token {k})")
    what = f"beam search, {a.beams} beams, length penalty {a.length_penalty}, early stopping {a.early_stopping}" if a.beams > 0 else "greedy"
    if a.repetition_penalty != 1.0:
        what += f", repetition penalty {a.repetition_penalty}"
    if a.num_return > 1:
        what += f", all {a.num_return} returned hypotheses and their scores"
    check(same + forgiven == len(prompts), f"generate ({what}) equals transformers' generate on the exported model",
          f"{same} of {len(prompts)} prompts identical, {a.max_new_tokens} new tokens at most" + (f"; forgiven: {notes}" if notes else ""))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "cases":
        run_cases(sys.argv[2])
    elif len(sys.argv) >= 5 and sys.argv[1] == "generate":
        run_generate(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
    else:
        print(__doc__)
        sys.exit(2)
    sys.exit(1 if fails else 0)
