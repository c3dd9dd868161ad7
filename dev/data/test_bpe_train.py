"""
Tests of BPE training (llmc/bpe_train.h via dev/data/bpe_train) and of the vocabularies it
writes. Prints "PASS: name" / "FAIL: name: detail"; exits non-zero on a failure.

    .venv/bin/python dev/data/test_bpe_train.py [--seed N]

- scratch training equals a naive Python trainer (recount every pair at every step, same
  tie-break and skip rules) merge for merge;
- a trained vocabulary round-trips decode(encode(x)) == x on real text slices and random
  bytes, and our encoder equals tiktoken built from the saved rank file;
- extending GPT-2 with merges learned on aozora keeps every old id and <|endoftext|> = 50256,
  encodes exactly like tiktoken with the extended ranks, and raises bytes per token on
  Japanese text it was not trained on (livedoor, fineweb2) while English stays about the same;
- resize_embedding: new rows = mean of the old rows (the default, --init mean), or with
  --init tokens the mean of the old rows of each new token's BPE pieces under the base
  vocabulary, exact against a Python loop of the merge rule that is itself checked against
  tiktoken (synthetic vocabulary and GPT-2 on Japanese bytes); fp32 and bf16 checkpoints.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter

import regex
import tiktoken
from tiktoken.load import load_tiktoken_bpe

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_tokenizer as tt  # noqa: E402

BPE_TRAIN = os.path.join(tt.REPO, "dev", "data", "bpe_train")
RESIZE = os.path.join(tt.REPO, "dev", "data", "resize_embedding")


def n_params_after_wte(maxT, L, C):
    return maxT * C + L * (2 * C + 3 * C * C + 3 * C + C * C + C + 2 * C + 4 * C * C + 4 * C + 4 * C * C + C) + 2 * C


def write_checkpoint(rng, path, version, maxT, V, L, NH, C, Vp):
    """A random llm.c checkpoint (version 3 fp32, 5 bf16); returns wte and the rest as stored
    (float32, or uint16 bf16 bit patterns)."""
    import numpy as np
    h = np.zeros(256, dtype=np.int32)
    h[:8] = [20240326, version, maxT, V, L, NH, C, Vp]
    nprng = np.random.default_rng(rng.randrange(1 << 30))
    wte = nprng.standard_normal((Vp, C)).astype(np.float32)
    wte[V:] = 0
    rest = nprng.standard_normal(n_params_after_wte(maxT, L, C)).astype(np.float32)
    if version == 5:  # bf16: keep the top 16 bits
        wte_s = (wte.view(np.uint32) >> 16).astype(np.uint16)
        rest_s = (rest.view(np.uint32) >> 16).astype(np.uint16)
    else:
        wte_s, rest_s = wte, rest
    with open(path, "wb") as f:
        f.write(h.tobytes() + wte_s.tobytes() + rest_s.tobytes())
    return wte_s, rest_s


def check_resize(rng, tmp):
    """A small random checkpoint (fp32 and bf16) through resize_embedding."""
    import numpy as np
    maxT, V, L, NH, C, Vp = 32, 300, 2, 2, 64, 384
    for version, dt in ((3, np.float32), (5, np.uint16)):
        src, dst = os.path.join(tmp, f"m{version}.bin"), os.path.join(tmp, f"m{version}_resized.bin")
        wte_s, rest_s = write_checkpoint(rng, src, version, maxT, V, L, NH, C, Vp)
        newV = 517
        p = subprocess.run([RESIZE, src, dst, "--vocab-size", str(newV)], capture_output=True, text=True)
        ok, why = p.returncode == 0, p.stderr
        if ok:
            raw = open(dst, "rb").read()
            h2 = np.frombuffer(raw[:1024], dtype=np.int32)
            newVp = 640
            w2 = np.frombuffer(raw[1024:1024 + newVp * C * wte_s.itemsize], dtype=dt).reshape(newVp, C)
            r2 = np.frombuffer(raw[1024 + newVp * C * wte_s.itemsize:], dtype=dt)
            if version == 5:
                w2f = (w2.astype(np.uint32) << 16).view(np.float32)
                oldf = (wte_s.astype(np.uint32) << 16).view(np.float32)
            else:
                w2f, oldf = w2, wte_s
            mean = oldf[:V].astype(np.float64).mean(0)
            tol = 1e-6 if version == 3 else 1e-2
            checks = {
                "header": list(h2[:8]) == [20240326, version, maxT, newV, L, NH, C, newVp] and not h2[8:].any(),
                "old rows kept": np.array_equal(w2[:V], wte_s[:V]),
                "new rows = mean": np.allclose(w2f[V:newV], mean[None, :], atol=tol, rtol=tol),
                "padding zero": not w2[newV:].any(),
                "rest unchanged": np.array_equal(r2, rest_s),
            }
            ok = all(checks.values())
            why = ", ".join(k for k, v in checks.items() if not v)
        tt.report(f"resize_embedding_{'fp32' if version == 3 else 'bf16'} (V 300 -> 517, Vp 384 -> 640)", ok, why)
        # --init mean is the default, byte for byte
        dst2 = os.path.join(tmp, f"m{version}_resized_mean.bin")
        p = subprocess.run([RESIZE, src, dst2, "--vocab-size", str(newV), "--init", "mean"], capture_output=True, text=True)
        same = p.returncode == 0 and open(dst2, "rb").read() == open(dst, "rb").read()
        tt.report(f"resize_embedding_init_mean_is_default_{'fp32' if version == 3 else 'bf16'}", same, p.stderr)
    # bad input: truncated file, wrong magic, shrinking
    bad = os.path.join(tmp, "bad.bin")
    with open(os.path.join(tmp, "m3.bin"), "rb") as f:
        good = f.read()
    cases = {"truncated": good[:-4], "bad_magic": b"\0\0\0\0" + good[4:]}
    for name, content in cases.items():
        with open(bad, "wb") as f:
            f.write(content)
        p = subprocess.run([RESIZE, bad, os.path.join(tmp, "o.bin"), "--vocab-size", "600"], capture_output=True, text=True)
        tt.report(f"resize_embedding_rejects_{name}", p.returncode != 0 and bad in p.stderr and not os.path.exists(os.path.join(tmp, "o.bin")), p.stderr)
    p = subprocess.run([RESIZE, os.path.join(tmp, "m3.bin"), os.path.join(tmp, "o.bin"), "--vocab-size", "200"], capture_output=True, text=True)
    tt.report("resize_embedding_rejects_shrinking", p.returncode != 0 and "below" in p.stderr, p.stderr)
    for name, extra, want in (("init_tokens_without_tokenizer", ["--vocab-size", "600", "--init", "tokens"], "--init tokens"),
                              ("bad_init", ["--vocab-size", "600", "--init", "bogus"], "--init")):
        p = subprocess.run([RESIZE, os.path.join(tmp, "m3.bin"), os.path.join(tmp, "o.bin")] + extra, capture_output=True, text=True)
        ok = p.returncode != 0 and want in p.stderr and (name != "bad_init" or "bogus" in p.stderr) \
            and not os.path.exists(os.path.join(tmp, "o.bin"))
        tt.report(f"resize_embedding_rejects_{name}", ok, p.stderr)


def write_llmc_tokenizer(path, tokens, eot):
    """llm.c's tokenizer file (llmc/tokenizer.h), version 2: header, then length byte + bytes."""
    import numpy as np
    h = np.zeros(256, dtype=np.int32)
    h[:4] = [20240328, 2, len(tokens), eot]
    with open(path, "wb") as f:
        f.write(h.tobytes())
        for t in tokens:
            assert 1 <= len(t) <= 255
            f.write(bytes([len(t)]) + t)


def bpe_pieces(b, ranks):
    """tiktoken's byte-pair merge written out: single bytes, then merge the adjacent pair whose
    concatenation has the lowest rank (leftmost on a tie) until no pair is in ranks."""
    parts = [b[i:i + 1] for i in range(len(b))]
    while True:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            return [ranks[p] for p in parts]
        i = best[1]
        parts[i:i + 2] = [parts[i] + parts[i + 1]]


def to_bf16_bits(x):
    """float32 -> bf16 bit patterns, round to nearest even (as llmc/checkpoint.h writes them)."""
    import numpy as np
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def check_init_tokens_output(dst, p, version, maxT, V, L, NH, C, wte_s, rest_s, new_tokens, ranks):
    """The resized checkpoint against the rule: each new row = float32 of the double mean of its
    pieces' old rows (bf16: that float32 rounded to bf16). Returns (ok, why, pieces per token)."""
    import numpy as np
    newV = V + len(new_tokens)
    newVp = (newV + 127) // 128 * 128
    if p.returncode != 0:
        return False, p.stderr, None
    dt = np.float32 if version == 3 else np.uint16
    raw = open(dst, "rb").read()
    h2 = np.frombuffer(raw[:1024], dtype=np.int32)
    w2 = np.frombuffer(raw[1024:1024 + newVp * C * wte_s.itemsize], dtype=dt).reshape(newVp, C)
    r2 = np.frombuffer(raw[1024 + newVp * C * wte_s.itemsize:], dtype=dt)
    oldf = (wte_s.astype(np.uint32) << 16).view(np.float32) if version == 5 else wte_s
    want = np.zeros((len(new_tokens), C), dtype=np.float32)
    npieces = 0
    for j, t in enumerate(new_tokens):
        ids = bpe_pieces(t, ranks)
        npieces += len(ids)
        acc = np.zeros(C, dtype=np.float64)
        for i in ids:  # in order, like the C: the double sums are then bit-identical
            acc += oldf[i].astype(np.float64)
        want[j] = (acc / len(ids)).astype(np.float32)
    if version == 5:
        want = to_bf16_bits(want)
    bad_rows = [V + j for j in range(len(new_tokens)) if not np.array_equal(w2[V + j], want[j])]
    mean_pieces = npieces / len(new_tokens)
    checks = {
        "header": list(h2[:8]) == [20240326, version, maxT, newV, L, NH, C, newVp] and not h2[8:].any(),
        "old rows kept": np.array_equal(w2[:V], wte_s[:V]),
        f"new rows = mean of pieces (rows {bad_rows[:5]} differ)": not bad_rows,
        "padding zero": not w2[newV:].any(),
        "rest unchanged": np.array_equal(r2, rest_s),
        "pieces per token printed": f"{mean_pieces:.3f} old pieces per new token" in p.stdout,
    }
    return all(checks.values()), ", ".join(k for k, v in checks.items() if not v) + " " + p.stdout, mean_pieces


def check_resize_init_tokens(rng, tmp, gpt2_ranks, ext_bin):
    """--init tokens: each new row is the mean of the old rows of the new token's BPE pieces
    under the base vocabulary, checked against bpe_pieces(), itself checked against tiktoken."""
    import numpy as np
    # a synthetic byte-level vocabulary: the 256 bytes under shuffled ids (the C must look each
    # byte up, not assume id == byte), merges over a small "hot" alphabet so that tokens overlap
    # and the merge order matters, end-of-text last, as bpe_train writes it
    singles = [bytes([b]) for b in range(256)]
    rng.shuffle(singles)
    hot = [bytes([b]) for b in (0x00, 0x0A, 0x20, 0x61, 0x62, 0x63, 0xE3, 0x81, 0x82, 0xFF)]
    old = list(singles)
    known = set(old)
    while len(old) < 256 + 400:
        pool = hot + old[256:]
        t = rng.choice(pool) + rng.choice(pool)
        if t not in known and len(t) <= 16:
            old.append(t)
            known.add(t)
    # merges that reach end-of-text's bytes: it must still not be a piece (special, as in tiktoken)
    for k in range(2, 13):
        if b"<|endoftext|>"[:k] not in known:
            old.append(b"<|endoftext|>"[:k])
            known.add(old[-1])
    old.append(b"<|endoftext|>")
    V = len(old)
    eot = V - 1
    ranks = {t: i for i, t in enumerate(old) if i != eot}  # end-of-text is special, never merged
    new = []
    seen = set(known)

    def add(t):
        if t not in seen and 1 <= len(t) <= 255:
            new.append(t)
            seen.add(t)
    while len(new) < 150:  # what BPE training would add: a pair of existing tokens
        pool = hot + old[256:eot] + new
        add(rng.choice(pool) + rng.choice(pool))
    while len(new) < 230:  # and arbitrary strings: the split need not be one merge away
        add(b"".join(rng.choice(hot) for _ in range(rng.randint(2, 40))))
    add(bytes(rng.choice(hot)[0] for _ in range(255)))
    add(b"<|im_start|>")
    add(b"<|endoftext|><|endoftext|>")
    add(b"<|endoftext|>>")
    add(bytes(range(256))[rng.randrange(200):][:40])  # bytes outside the hot alphabet: unmerged singles
    n_plain = len(new)
    new.append(old[300])  # a new token equal to an old one: one piece, that row
    # the plain loop is the reference, so first check it against tiktoken's own byte-pair merge
    enc = tiktoken.Encoding("t", pat_str=r".+", mergeable_ranks=ranks, special_tokens={})
    diff = [t for t in new[:n_plain] if bpe_pieces(t, ranks) != enc._encode_single_piece(t)]
    tt.report(f"bpe_pieces_equals_tiktoken_synthetic ({n_plain} tokens)", not diff, f"{len(diff)} differ, e.g. {diff[:2]}")
    base, ext = os.path.join(tmp, "syn_base.bin"), os.path.join(tmp, "syn_ext.bin")
    write_llmc_tokenizer(base, old, eot)
    write_llmc_tokenizer(ext, old + new, eot)
    maxT, L, NH, C = 16, 1, 2, 32
    Vp = (V + 127) // 128 * 128
    for version in (3, 5):
        kind = "fp32" if version == 3 else "bf16"
        src, dst = os.path.join(tmp, f"syn{version}.bin"), os.path.join(tmp, f"syn{version}_tokens.bin")
        wte_s, rest_s = write_checkpoint(rng, src, version, maxT, V, L, NH, C, Vp)
        p = subprocess.run([RESIZE, src, dst, "--tokenizer", ext, "--base-tokenizer", base, "--init", "tokens"],
                           capture_output=True, text=True)
        ok, why, mp = check_init_tokens_output(dst, p, version, maxT, V, L, NH, C, wte_s, rest_s, new, ranks)
        tt.report(f"resize_embedding_init_tokens_{kind} (V {V} -> {V + len(new)}, {mp or 0:.2f} pieces per new token)", ok, why)
    # a base vocabulary without a one-byte token for 0x7f cannot split a new token holding it
    nobyte = [t if t != b"\x7f" else b"\x7f\x7f" for t in old]
    base2, ext2 = os.path.join(tmp, "syn_base_nobyte.bin"), os.path.join(tmp, "syn_ext_nobyte.bin")
    write_llmc_tokenizer(base2, nobyte, eot)
    write_llmc_tokenizer(ext2, nobyte + [b"a\x7f"], eot)
    out = os.path.join(tmp, "o.bin")
    p = subprocess.run([RESIZE, os.path.join(tmp, "syn3.bin"), out, "--tokenizer", ext2, "--base-tokenizer", base2,
                        "--init", "tokens"], capture_output=True, text=True)
    tt.report("resize_embedding_init_tokens_rejects_missing_byte", p.returncode != 0 and "0x7f" in p.stderr
              and "--init tokens" in p.stderr and not os.path.exists(out), p.stderr)

    # GPT-2's real vocabulary: bpe_pieces against tiktoken on Japanese strings, whole and cut at
    # arbitrary bytes (tokens may end inside a character)
    enc = tiktoken.Encoding("gpt2_onepiece", pat_str=r".+", mergeable_ranks=gpt2_ranks, special_tokens={})
    docs = tt.load_docs("livedoor")
    strs = []
    for _ in range(300):
        d = rng.choice(docs).encode()
        i = rng.randrange(len(d))
        strs.append(d[i:i + rng.randint(1, 60)])
    strs = [s for s in strs if s not in gpt2_ranks]
    diff = [s for s in strs if bpe_pieces(s, gpt2_ranks) != enc._encode_single_piece(s)]
    tt.report(f"bpe_pieces_equals_tiktoken_gpt2_japanese ({len(strs)} byte strings)", not diff, f"{len(diff)} differ, e.g. {diff[:2]}")
    # and the whole tool on GPT-2 extended by bpe_train --add (ext_bin): a tiny-C checkpoint of
    # GPT-2's V, the base tokenizer written from GPT-2's ranks
    gpt2_tokens = [t for t, _ in sorted(gpt2_ranks.items(), key=lambda x: x[1])] + [b"<|endoftext|>"]
    base = os.path.join(tmp, "gpt2_base.bin")
    write_llmc_tokenizer(base, gpt2_tokens, 50256)
    with open(ext_bin, "rb") as f:
        raw = f.read()
    nV = int(np.frombuffer(raw[8:12], dtype=np.int32)[0])
    toks, off = [], 1024
    for _ in range(nV):
        n = raw[off]
        toks.append(raw[off + 1:off + 1 + n])
        off += 1 + n
    new = toks[50257:]
    V, maxT, L, NH, C = 50257, 8, 1, 1, 8
    src, dst = os.path.join(tmp, "g5.bin"), os.path.join(tmp, "g5_tokens.bin")
    wte_s, rest_s = write_checkpoint(rng, src, 5, maxT, V, L, NH, C, 50304)
    p = subprocess.run([RESIZE, src, dst, "--tokenizer", ext_bin, "--base-tokenizer", base, "--init", "tokens"],
                       capture_output=True, text=True)
    ok, why, mp = check_init_tokens_output(dst, p, 5, maxT, V, L, NH, C, wte_s, rest_s, new, gpt2_ranks)
    tt.report(f"resize_embedding_init_tokens_gpt2_extended (+{len(new)}, {mp or 0:.2f} GPT-2 pieces per new token)", ok, why)


def naive_train(text, nmerges, max_bytes):
    words = Counter(p.encode() for p in regex.findall(tt.PAT, text))
    vocab = [bytes([i]) for i in range(256)]
    known = set(vocab)
    seqs = [(list(w), c) for w, c in words.items()]
    banned = set()
    while len(vocab) - 256 < nmerges:
        counts = Counter()
        for s, c in seqs:
            for p in zip(s, s[1:]):
                counts[p] += c
        cands = [(-n, p) for p, n in counts.items() if n > 0 and p not in banned]
        if not cands:
            break
        _, (a, b) = min(cands)
        new = vocab[a] + vocab[b]
        if new in known or len(new) > max_bytes:
            banned.add((a, b))
            continue
        nid = len(vocab)
        vocab.append(new)
        known.add(new)
        out = []
        for s, c in seqs:
            t, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    t.append(nid)
                    i += 2
                else:
                    t.append(s[i])
                    i += 1
            out.append((t, c))
        seqs = out
    return vocab


def train(args):
    p = subprocess.run([BPE_TRAIN] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"bpe_train {' '.join(args)} failed: {p.stderr.strip()}")
    return p.stdout


def encoding_from(path, eot):
    ranks = load_tiktoken_bpe(path)
    return tiktoken.Encoding(os.path.basename(path), pat_str=tt.PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": eot}), ranks


def bytes_per_token(enc, docs):
    ids = enc.encode_ordinary_batch(docs, num_threads=2)
    return sum(len(d.encode()) for d in docs) / sum(len(x) for x in ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed} (replay with --seed {seed})", flush=True)
    rng = random.Random(seed)
    for b in (BPE_TRAIN, RESIZE, tt.TOKENIZE):
        if not os.path.exists(b):
            tt.report("build", False, f"{b} not built")
            sys.exit(1)
    with tempfile.TemporaryDirectory() as tmp:
        # 1. scratch training == naive trainer, on a random 150 KB of tiny shakespeare
        text = tt.load_docs("tinyshakespeare")[0]
        start = rng.randint(0, len(text) - 150000)
        sample = text[start:start + 150000]
        src = os.path.join(tmp, "sample.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write(sample)
        out = os.path.join(tmp, "scratch.tiktoken")
        nm, maxb = 300, 6
        train(["--vocab-size", str(257 + nm), "--max-token-bytes", str(maxb), "-o", out, src])
        ranks = load_tiktoken_bpe(out)
        ours = [t for t, _ in sorted(ranks.items(), key=lambda x: x[1])]
        want = naive_train(sample, nm, maxb)
        k = next((i for i, (x, y) in enumerate(zip(ours, want)) if x != y), min(len(ours), len(want)))
        tt.report(f"train_scratch_equals_naive_trainer ({nm} merges, text from offset {start})",
                  ours == want, f"first difference at id {k}: ours {ours[k:k+3]} naive {want[k:k+3]}")

        # 2. a bigger scratch vocabulary: exact vs tiktoken with its ranks, and round-trips
        out = os.path.join(tmp, "scratch4k.tiktoken")
        train(["--vocab-size", "4096", "-o", out, "--write-tokenizer", os.path.join(tmp, "scratch4k.bin"),
               os.path.join(tt.DATA, "tinyshakespeare", "input.txt")])
        enc, ranks = encoding_from(out, 4095)
        tt.report("train_scratch_vocab_size", len(ranks) == 4095 and max(ranks.values()) == 4094, f"{len(ranks)} ranks")
        recs = tt.random_slices(rng, tt.load_docs("gutenberg_children"), 100) + \
            [tt.random_invalid_bytes(rng) for _ in range(300)] + \
            tt.random_slices(rng, tt.load_docs("livedoor"), 50)
        got, _ = tt.ours(recs, vocab_args=["--tiktoken", out])
        bad = [i for i, (r, g) in enumerate(zip(recs, got)) if enc.decode_bytes(g) != r]
        tt.report("train_scratch_roundtrip (decode(encode(x)) == x)", not bad, f"{len(bad)} inputs do not round-trip")
        wants = [tt.composite_reference(enc, r) for r in recs]
        tt.report("train_scratch_encode_equals_tiktoken", got == wants,
                  f"{sum(g != w for g, w in zip(got, wants))} of {len(recs)} differ")

        # 3. extension of GPT-2 with merges learned on aozora
        gpt2, gpt2_ranks = tt.gpt2_encoding()
        out = os.path.join(tmp, "gpt2_aozora.tiktoken")
        add = 3000
        train(["--add", str(add), "-o", out, os.path.join(tt.DATA, "aozora", "aozora_kenji_nankichi.jsonl")])
        ext, ext_ranks = encoding_from(out, 50256)
        kept = all(ext_ranks.get(t) == r for t, r in gpt2_ranks.items())
        tt.report(f"extend_keeps_every_gpt2_id (+{add})", kept and len(ext_ranks) == 50256 + add
                  and min(r for r in ext_ranks.values() if r >= 50256) == 50257, f"{len(ext_ranks)} ranks")
        p = subprocess.run([tt.TOKENIZE, "--tiktoken", out, "--write-tokenizer", os.path.join(tmp, "ext.bin")],
                           capture_output=True, text=True)
        tt.report("extend_eot_stays_50256", "end-of-text 50256" in p.stdout, p.stdout + p.stderr)
        for name in ("livedoor", "fineweb2_edu_ja_sample", "gutenberg_children"):
            docs = tt.load_docs(name)
            if name != "fineweb2_edu_ja_sample":
                docs = rng.sample(docs, min(len(docs), 300 if name == "livedoor" else 10))
            recs = [d.encode() for d in docs]
            got, _ = tt.ours(recs, vocab_args=["--tiktoken", out])
            want = ext.encode_ordinary_batch(docs, num_threads=2)
            tt.report(f"extend_encode_equals_tiktoken_{name} ({len(docs)} documents)", got == want,
                      f"{sum(g != w for g, w in zip(got, want))} documents differ")
            b0, b1 = bytes_per_token(gpt2, docs), bytes_per_token(ext, docs)
            print(f"  {name}: bytes/token GPT-2 {b0:.3f}, GPT-2+{add} aozora merges {b1:.3f}")
            if name == "gutenberg_children":
                tt.report("extend_english_not_worse", b1 >= b0 * 0.999, f"{b0:.3f} -> {b1:.3f}")
            else:
                tt.report(f"extend_raises_bytes_per_token_{name} (held out)", b1 > b0 * 1.3, f"{b0:.3f} -> {b1:.3f}")
        check_resize(rng, tmp)
        check_resize_init_tokens(rng, tmp, gpt2_ranks, os.path.join(tmp, "ext.bin"))
    sys.exit(1 if tt.failures else 0)


if __name__ == "__main__":
    main()
