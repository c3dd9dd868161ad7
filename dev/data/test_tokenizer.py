"""
Tests of our byte-level BPE (llmc/bpe.h through dev/data/tokenize) against tiktoken's GPT-2
encoding, built offline from ../shared/data/gpt2 (encoder.json + vocab.bpe) with GPT-2's
pattern. Prints "PASS: name" / "FAIL: name: detail" per check; exits non-zero on a failure.

    .venv/bin/python dev/data/test_tokenizer.py            # everything (about 30 s on 2 cores)
    .venv/bin/python dev/data/test_tokenizer.py --quick    # without the whole-corpus checks
    .venv/bin/python dev/data/test_tokenizer.py --seed 123 # replay a run (the seed is printed)

Reference for byte strings that are not valid UTF-8: tiktoken's public encode() takes a str,
so it cannot see invalid bytes (it would replace them with U+FFFD, and _encode_bytes() lumps
everything after the first invalid byte into one BPE piece without pre-tokenization; its
own comment calls that "not correct"). Our rule (llmc/bpe.h): each invalid byte is one
character of the "other" class and keeps its byte. The reference implementing that rule
with tiktoken's parts: decode with errors="surrogateescape" (invalid byte b -> U+DC00+b,
category Cs, i.e. "other"), split with GPT-2's pattern (the `regex` module, which tiktoken
itself depends on), and run each piece's original bytes through tiktoken's own BPE
(Encoding._encode_single_piece). The check composite_reference_is_tiktoken shows that this
reference equals tiktoken.encode_ordinary on valid text.
"""
import argparse
import base64
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import regex
import tiktoken
from tiktoken.load import data_gym_to_mergeable_bpe_ranks, load_tiktoken_bpe

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("LLMC_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
TOKENIZE = os.path.join(REPO, "dev", "data", "tokenize")
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
EOT = 50256

CORPORA = {
    "tinyshakespeare": ("tinyshakespeare/input.txt", "text"),
    "hellaswag": ("hellaswag/hellaswag_val_full.txt", "text"),
    "gutenberg_children": ("gutenberg_children/gutenberg_children.jsonl", "jsonl"),
    "aozora": ("aozora/aozora_kenji_nankichi.jsonl", "jsonl"),
    "livedoor": ("livedoor/livedoor_news.jsonl", "jsonl"),
    "fineweb2_edu_ja_sample": ("fineweb2_edu_ja_sample/fineweb_100_samples.json", "json"),
    "spamassassin_subset": ("spamassassin_subset/spamassassin_subset.jsonl", "jsonl"),
}

failures = 0


def report(name, ok, detail=""):
    global failures
    if ok:
        print(f"PASS: {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL: {name}: {detail}", flush=True)


def gpt2_encoding():
    ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(DATA, "gpt2", "vocab.bpe"),
                                            os.path.join(DATA, "gpt2", "encoder.json"))
    return tiktoken.Encoding("gpt2", pat_str=PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT}), ranks


def load_docs(name):
    rel, kind = CORPORA[name]
    path = os.path.join(DATA, rel)
    if kind == "text":
        with open(path, encoding="utf-8") as f:
            return [f.read()]
    if kind == "json":
        with open(path, encoding="utf-8") as f:
            return [d["text"] for d in json.load(f)]
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def run_tokenize(args, check=True):
    p = subprocess.run([TOKENIZE] + args, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"tokenize {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def ours(records, allow_special=False, threads=2, vocab_args=(), repeat=1):
    """Encodes each bytes record with dev/data/tokenize --batch-encode; (ids lists, seconds)."""
    with tempfile.TemporaryDirectory() as d:
        inp, out = os.path.join(d, "in.bin"), os.path.join(d, "out.bin")
        with open(inp, "wb") as f:
            for r in records:
                f.write(struct.pack("<I", len(r)))
                f.write(r)
        args = list(vocab_args) + ["--batch-encode", inp, out, "--threads", str(threads), "--repeat", str(repeat)]
        if allow_special:
            args.append("--allow-special")
        p = run_tokenize(args)
        secs = float(p.stderr.split("encode_seconds=")[1].split()[0])
        buf = np.fromfile(out, dtype=np.int32)
    res, i = [], 0
    for _ in records:
        n = int(buf[i])
        res.append(buf[i + 1:i + 1 + n].tolist())
        i += 1 + n
    return res, secs


def reference(enc, b):
    """tiktoken's GPT-2 encoding of a byte string (see the module docstring for invalid UTF-8)."""
    try:
        return enc.encode_ordinary(b.decode("utf-8"))
    except UnicodeDecodeError:
        return composite_reference(enc, b)


def composite_reference(enc, b):
    s = b.decode("utf-8", "surrogateescape")
    out = []
    for piece in regex.findall(PAT, s):
        out.extend(enc._encode_single_piece(piece.encode("utf-8", "surrogateescape")))
    return out


def first_diff(enc, rec, got, want):
    k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
    ctx = enc.decode_bytes(want[max(0, k - 3):k + 3])
    return f"{len(got)} vs {len(want)} tokens, first difference at token {k}: ours {got[k:k + 4]} tiktoken {want[k:k + 4]} near {ctx!r}; input {rec[:80]!r}"


def compare(name, enc, records, wants, allow_special=False, vocab_args=()):
    got, _ = ours(records, allow_special=allow_special, vocab_args=vocab_args)
    for rec, g, w in zip(records, got, wants):
        if g != w:
            report(name, False, first_diff(enc, rec, g, w))
            return False
    nbytes = sum(len(r) for r in records)
    report(f"{name} ({len(records)} strings, {nbytes} bytes)", True)
    return True


# ----------------------------------------------------------------------------------------
# random text

# characters that every Unicode version since long ago classifies the same way, for the
# invalid-UTF-8 strings whose reference uses the `regex` module rather than tiktoken's engine
# (the `regex` module follows newer Unicode than tiktoken's 16.0: e.g. it calls the
# unassigned-in-16.0 U+3D946 a letter, so arbitrary code points would fault the reference)
STABLE_POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789",
    " \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2001\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
    "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~'",
    "'s'd'm't'll've're'S'LL",
    "éüßñøçÀÉÎÕÜ¼½²³¹",
    "αβγδεζηθΑΒΓΔабвгдеЖЗИ",
    "あいうえおかきくけこアイウエオカキクケコー漢字日本語東京、。「」・！？",
    "０１２３４５６７８９①②Ⅻ٣٤",
    "\u0301\u0308\u200b\u200d\ufeff\u00ad",
    "😀🎉👍🏽🇯🇵",
    "<|endoftext|>",
]


def random_valid_string(rng, full_unicode):
    parts = []
    for _ in range(rng.randint(1, 30)):
        r = rng.random()
        if full_unicode and r < 0.15:
            # any code point, assigned or not, outside the surrogates
            cp = rng.randint(0, 0x10FFFF)
            while 0xD800 <= cp <= 0xDFFF:
                cp = rng.randint(0, 0x10FFFF)
            parts.append(chr(cp) * rng.choice([1, 1, 2, 5]))
        else:
            pool = rng.choice(STABLE_POOLS)
            parts.append("".join(rng.choice(pool) for _ in range(rng.choice([1, 1, 2, 3, 8, 20]))))
    return "".join(parts)


def random_invalid_bytes(rng):
    """Byte strings mixing valid text with invalid UTF-8 of every kind."""
    bad = [b"\x80", b"\xbf", b"\xc0\xaf", b"\xc1", b"\xe0\x80\x80", b"\xed\xa0\x80", b"\xed\xbf\xbf",
           b"\xf4\x90\x80\x80", b"\xf5", b"\xff", b"\xfe", b"\xe3\x81", b"\xf0\x9f\x98", b"\xc3",
           b"\xe2\x82", b"\xf0\x90\x80"]
    if rng.random() < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 200)))
    out = bytearray()
    for _ in range(rng.randint(1, 20)):
        if rng.random() < 0.4:
            out += rng.choice(bad)
        else:
            out += random_valid_string(rng, False).encode()[:rng.randint(1, 40)]  # may cut a character
    return bytes(out)


def random_slices(rng, docs, n):
    """n random character slices (so valid UTF-8) and n random byte slices (ends may cut a
    character) of a corpus, of lengths from 1 to about 20000 characters."""
    weights = [len(d) for d in docs]
    out = []
    for k in range(2 * n):
        d = rng.choices(docs, weights=weights)[0]
        length = min(len(d), int(rng.expovariate(1 / 2000)) + 1)
        start = rng.randint(0, len(d) - length)
        if k < n:
            out.append(d[start:start + length].encode())
        else:
            b = d.encode()
            bl = min(len(b), length * 2)
            bs = rng.randint(0, len(b) - bl)
            out.append(b[bs:bs + bl])
    return out


# ----------------------------------------------------------------------------------------
# checks

def check_bad_input(tmp):
    enc_json = os.path.join(DATA, "gpt2", "encoder.json")
    vocab = os.path.join(DATA, "gpt2", "vocab.bpe")
    missing = os.path.join(tmp, "no_such_encoder.json")
    p = run_tokenize(["--encoder", missing, "--merges", vocab, "--write-tokenizer", os.path.join(tmp, "x.bin")], check=False)
    report("bad_input_missing_file", p.returncode != 0 and missing in p.stderr and "Traceback" not in p.stderr,
           f"rc {p.returncode}, stderr {p.stderr!r}")
    with open(enc_json, "rb") as f:
        good = f.read()
    cases = {
        "truncated": good[:len(good) // 2],
        "bad_escape": good.replace(b'"\\u0120the"', b'"\\x0120the"', 1),
        "unpaired_surrogate": good.replace(b'"\\u0120the"', b'"\\ud800the"', 1),
        "not_an_object": b"[1, 2, 3]",
        "missing_eot": good.replace(b'"<|endoftext|>"', b'"<|notend|>"'),
        "empty": b"",
    }
    for name, content in cases.items():
        path = os.path.join(tmp, f"encoder_{name}.json")
        with open(path, "wb") as f:
            f.write(content)
        p = run_tokenize(["--encoder", path, "--merges", vocab, "--write-tokenizer", os.path.join(tmp, "x.bin")], check=False)
        lines = [l for l in p.stderr.strip().splitlines() if l]
        report(f"bad_input_encoder_json_{name}", p.returncode != 0 and len(lines) == 1 and path in lines[0],
               f"rc {p.returncode}, stderr {p.stderr!r}")
    with open(vocab, "rb") as f:
        merges = f.read()
    vcases = {
        "missing_merge_side": merges.replace(b"\n\xc4\xa0 t\n", b"\n\xc4\xa0t\n", 1),
        "unknown_token": merges + b"zzqx zzqy\n",
        "truncated": merges[:len(merges) // 2],
    }
    for name, content in vcases.items():
        path = os.path.join(tmp, f"vocab_{name}.bpe")
        with open(path, "wb") as f:
            f.write(content)
        p = run_tokenize(["--encoder", enc_json, "--merges", path, "--write-tokenizer", os.path.join(tmp, "x.bin")], check=False)
        lines = [l for l in p.stderr.strip().splitlines() if l]
        report(f"bad_input_vocab_bpe_{name}", p.returncode != 0 and len(lines) == 1 and path in lines[0],
               f"rc {p.returncode}, stderr {p.stderr!r}")
    path = os.path.join(tmp, "bad.tiktoken")
    with open(path, "w") as f:
        f.write("IQ== 0\nnot-base64! 1\n")
    p = run_tokenize(["--tiktoken", path, "--write-tokenizer", os.path.join(tmp, "x.bin")], check=False)
    report("bad_input_tiktoken_file", p.returncode != 0 and path in p.stderr and "line 2" in p.stderr, f"stderr {p.stderr!r}")


def check_tokenizer_file(enc, tmp):
    path = os.path.join(tmp, "gpt2_tokenizer.bin")
    run_tokenize(["--write-tokenizer", path])
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        ok = header[0] == 20240328 and header[1] == 2 and header[2] == 50257 and header[3] == EOT
        for i in range(50257):
            n = f.read(1)[0]
            b = f.read(n)
            want = b"<|endoftext|>" if i == EOT else enc.decode_single_token_bytes(i)
            if b != want:
                ok = False
                break
        ok = ok and f.read() == b""
    report("llmc_tokenizer_file (50257 tokens equal tiktoken's bytes)", ok, f"token {i} differs")


def check_tiktoken_format(enc, ranks, tmp, rng, docs):
    path = os.path.join(tmp, "gpt2.tiktoken")
    with open(path, "wb") as f:  # tiktoken's dump_tiktoken_bpe() format (it needs blobfile)
        for token, rank in sorted(ranks.items(), key=lambda x: x[1]):
            f.write(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    recs = random_slices(rng, docs, 50)
    compare("tiktoken_rank_file_load", enc, recs, [reference(enc, r) for r in recs], vocab_args=["--tiktoken", path])
    p = run_tokenize(["--tiktoken", path, "--write-tokenizer", os.path.join(tmp, "t.bin")], check=False)
    report("tiktoken_rank_file_eot_is_50256", p.returncode == 0 and "end-of-text 50256" in p.stdout, p.stdout + p.stderr)
    # our writer, read back by tiktoken's reader
    out = os.path.join(tmp, "saved.tiktoken")
    run_tokenize(["--save-tiktoken", out])
    report("tiktoken_rank_file_save", load_tiktoken_bpe(out) == ranks, "saved ranks differ")


def check_special(enc, rng, docs):
    recs, wants = [], []
    for _ in range(200):
        d = rng.choice(docs)
        parts = []
        for _ in range(rng.randint(1, 5)):
            s = rng.randint(0, max(0, len(d) - 200))
            parts.append(d[s:s + rng.randint(0, 200)])
        text = "<|endoftext|>".join(parts)
        recs.append(text.encode())
        wants.append(enc.encode(text, allowed_special="all"))
    compare("special_token_allowed", enc, recs, wants, allow_special=True)
    compare("special_token_as_text", enc, recs, [enc.encode_ordinary(r.decode()) for r in recs])


def check_cli_shards(enc, tmp):
    """tokenize -> shards on tiny shakespeare, llm.c's recipe, and --decode back."""
    path = os.path.join(DATA, "tinyshakespeare", "input.txt")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    want = enc.encode("<|endoftext|>" + text.replace("\n\n", "\n\n<|endoftext|>"), allowed_special="all")
    prefix = os.path.join(tmp, "ts")
    run_tokenize([path, "-o", prefix, "--doc-sep", "\\n\\n", "--val-tokens", "32768", "--shard-size", "200000"])
    got = []
    for split in ("val", "train"):
        k = 0
        while os.path.exists(f"{prefix}_{split}_{k:06d}.bin"):
            a = np.fromfile(f"{prefix}_{split}_{k:06d}.bin", dtype=np.int32, count=256)
            t = np.fromfile(f"{prefix}_{split}_{k:06d}.bin", dtype=np.uint16, offset=1024)
            assert a[0] == 20240520 and a[1] == 1 and a[2] == len(t)
            got.extend(t.tolist())
            k += 1
    report("cli_shards_tinyshakespeare_llmc_recipe", got == want and len(want) > 32768,
           f"{len(got)} vs {len(want)} tokens")
    dec = subprocess.run([TOKENIZE, "--decode", f"{prefix}_train_000000.bin"], capture_output=True).stdout
    report("cli_decode_shard", dec == enc.decode_bytes(want[32768:32768 + 200000]), "decoded text differs")


def check_long_pieces(enc, rng):
    recs = [
        ("あ" * 3000).encode(), ("日本語の文章" * 500).encode(), ("a" * 5000).encode(),
        ("1234567890" * 300).encode(), (" " * 4000 + "x").encode(), ("\n" * 3000).encode(),
        ("!?" * 2000).encode(), ("é" * 2000).encode(), ("😀" * 1000).encode(),
        bytes(rng.randrange(128, 256) for _ in range(3000)),
    ]
    compare("long_pieces (heap merge path)", enc, recs, [reference(enc, r) for r in recs])


def check_big_document_split(enc, rng):
    """Documents over 1 MiB are cut at bpe_safe_split() points and encoded on several threads:
    random text rich in newlines and spaces must still encode as one piece. Two documents:
    valid UTF-8 over all of Unicode (reference: tiktoken), and one with invalid bytes, whose
    characters come from the stable pools (reference: the composite, see the top)."""
    for kind in ("valid", "invalid"):
        parts, n = [], 0
        while n < 2_500_000:
            r = rng.random()
            if r < 0.5:
                b = random_valid_string(rng, kind == "valid").encode()
            elif r < 0.7 and kind == "invalid":
                b = random_invalid_bytes(rng)
            else:
                b = rng.choice([b"\n", b"\n\n", b"\n ", b" \n", b"\n\t", b"\r\n", b"\n\xe3\x80\x80", b"\n'", b"\n's", b"\n<|endoftext|>"])
            parts.append(b)
            n += len(b)
        rec = b"".join(parts)
        want = reference(enc, rec)
        for threads in (1, 2):
            got, _ = ours([rec], threads=threads)
            report(f"big_document_split_{kind}_{threads}_threads ({len(rec)} bytes)", got[0] == want, first_diff(enc, rec, got[0], want))


def check_full(enc):
    """Every corpus, whole: each document through ours and tiktoken (2 threads each)."""
    total, t0 = 0, time.time()
    for name in CORPORA:
        docs = load_docs(name)
        recs = [d.encode() for d in docs]
        t1 = time.time()
        wants = enc.encode_ordinary_batch(docs, num_threads=2)
        t2 = time.time()
        compare(f"whole_corpus_{name}", enc, recs, wants)
        total += sum(len(r) for r in recs)
        print(f"  {name}: {sum(len(r) for r in recs)/1e6:.1f} MB, tiktoken {t2-t1:.1f} s, ours+compare {time.time()-t2:.1f} s", flush=True)
    print(f"  whole corpora: {total/1e6:.1f} MB compared in {time.time()-t0:.0f} s", flush=True)


def read_shards(prefix):
    got = []
    for split in ("val", "train"):
        k = 0
        while os.path.exists(f"{prefix}_{split}_{k:06d}.bin"):
            path = f"{prefix}_{split}_{k:06d}.bin"
            h = np.fromfile(path, dtype=np.int32, count=256)
            t = np.fromfile(path, dtype=np.uint16, offset=1024)
            if h[0] != 20240520 or h[1] != 1 or h[2] != len(t):
                raise RuntimeError(f"{path}: bad shard header {h[:3]}")
            got.append(t)
            k += 1
    return np.concatenate(got) if got else np.zeros(0, dtype=np.uint16)


def check_full_cli(enc, tmp):
    """Every corpus file through the tokenize command line (its own text / JSONL / JSON
    readers, 2 threads, shards): the stream must be [eot] + encode_ordinary(doc) per document."""
    for name, (rel, kind) in CORPORA.items():
        docs = load_docs(name)
        want = []
        for ids in enc.encode_ordinary_batch(docs, num_threads=2):
            want.append(EOT)
            want.extend(ids)
        prefix = os.path.join(tmp, f"full_{name}")
        run_tokenize([os.path.join(DATA, rel), "-o", prefix, "--threads", "2", "--shard-size", "10000000"])
        got = read_shards(prefix)
        ok = len(got) == len(want) and bool(np.array_equal(got, np.array(want, dtype=np.uint16)))
        report(f"cli_whole_corpus_{name} ({len(docs)} documents, {len(want)} tokens)", ok, f"{len(got)} vs {len(want)} tokens")
        for f in os.listdir(tmp):
            if f.startswith(f"full_{name}_"):
                os.remove(os.path.join(tmp, f))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="skip the whole-corpus comparisons")
    ap.add_argument("--slices", type=int, default=150, help="random slices per corpus (x2: char and byte slices)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed} (replay with --seed {seed})", flush=True)
    rng = random.Random(seed)
    if not os.path.exists(TOKENIZE):
        report("build", False, f"{TOKENIZE} not built (make dev/data/tokenize)")
        sys.exit(1)
    enc, ranks = gpt2_encoding()
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        check_bad_input(tmp)
        check_tokenizer_file(enc, tmp)
        corpora = {name: load_docs(name) for name in CORPORA}
        check_tiktoken_format(enc, ranks, tmp, rng, corpora["livedoor"])
        for name, docs in corpora.items():
            recs = random_slices(rng, docs, args.slices)
            compare(f"random_slices_{name}", enc, recs, [reference(enc, r) for r in recs])
        valid = [random_valid_string(rng, True).encode() for _ in range(3000)]
        compare("random_strings_valid_utf8 (all of Unicode)", enc, valid, [enc.encode_ordinary(r.decode()) for r in valid])
        stable = [random_valid_string(rng, False).encode() for _ in range(1000)]
        bad = [r for r in stable if composite_reference(enc, r) != enc.encode_ordinary(r.decode())]
        report("composite_reference_is_tiktoken (on 1000 valid strings)", not bad, f"differs on {bad[:1]!r}")
        invalid = [random_invalid_bytes(rng) for _ in range(3000)]
        ninv = sum(1 for r in invalid if not _valid(r))
        compare(f"random_bytes_invalid_utf8 ({ninv} invalid)", enc, invalid, [reference(enc, r) for r in invalid])
        got, _ = ours(invalid)
        rt = [r for r, g in zip(invalid, got) if enc.decode_bytes(g) != r]
        report("roundtrip_decode_encode_invalid_bytes", not rt, f"{len(rt)} strings do not round-trip, e.g. {rt[:1]!r}")
        check_special(enc, rng, corpora["gutenberg_children"])
        check_long_pieces(enc, rng)
        check_big_document_split(enc, rng)
        check_cli_shards(enc, tmp)
        if not args.quick:
            check_full(enc)
            check_full_cli(enc, tmp)
    print(f"tokenizer tests: {time.time()-t0:.1f} s, {failures} failed", flush=True)
    sys.exit(1 if failures else 0)


def _valid(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


if __name__ == "__main__":
    main()
