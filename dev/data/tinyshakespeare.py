"""
Tiny Shakespeare -> GPT-2 token shards, llm.c's format (see llmc/shard.h):
  dev/data/tinyshakespeare/tiny_shakespeare_val.bin    the first 32,768 tokens
  dev/data/tinyshakespeare/tiny_shakespeare_train.bin  the rest (about 305K tokens)
and llm.c's decode-only tokenizer file dev/data/gpt2_tokenizer.bin.

The text and GPT-2's tokenizer files come from ../shared/data (the directory named by
$LLMC_SHARED_DATA if set); only if they are missing are they downloaded from their public URLs.
Each blank-line-separated passage is encoded after an end-of-text token, as llm.c does.
Tokenization: tiktoken's GPT-2 encoding, built offline from encoder.json + vocab.bpe.
"""
import hashlib
import json
import os
import struct
import sys
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("LLMC_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
OUT_DIR = os.path.join(REPO, "dev", "data", "tinyshakespeare")
TOKENIZER_OUT = os.path.join(REPO, "dev", "data", "gpt2_tokenizer.bin")
CACHE = os.path.join(REPO, "dev", "data", "downloads")

SOURCES = {
    "tinyshakespeare/input.txt": ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                                  "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    "gpt2/encoder.json": ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
                          "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "gpt2/vocab.bpe": ("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
                       "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}
VAL_TOKENS = 32768
EOT = 50256


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find(rel):
    """Path of a data file: ../shared/data first, then a checked download."""
    url, digest = SOURCES[rel]
    local = os.path.join(SHARED, rel)
    if os.path.exists(local):
        return local
    cached = os.path.join(CACHE, rel)
    if not os.path.exists(cached):
        print(f"{local} not found, downloading {url}")
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        urllib.request.urlretrieve(url, cached + ".part")
        os.replace(cached + ".part", cached)
    if sha256(cached) != digest:
        sys.exit(f"error: {cached}: sha256 mismatch (expected {digest})")
    return cached


def atomic_write(path, chunks):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(path, tokens):
    header = [0] * 256
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    assert all(0 <= t < 65536 for t in tokens)
    atomic_write(path, [struct.pack("<256i", *header), struct.pack(f"<{len(tokens)}H", *tokens)])


def gpt2_byte_decoder():
    """GPT-2 maps every byte to a printable unicode character; this inverts that map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def write_tokenizer(path, encoder_json):
    with open(encoder_json, encoding="utf-8") as f:
        encoder = json.load(f)
    decoder = gpt2_byte_decoder()
    tokens = [None] * len(encoder)
    for s, i in encoder.items():
        tokens[i] = bytes(decoder[ch] for ch in s) if i != EOT else s.encode("utf-8")
    header = [0] * 256
    header[0], header[1], header[2], header[3] = 20240328, 2, len(tokens), EOT
    body = [struct.pack("<256i", *header)]
    for t in tokens:
        body.append(struct.pack("<B", len(t)) + t)
    atomic_write(path, body)


def gpt2_encoding(encoder_json, vocab_bpe):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=vocab_bpe, encoder_json_file=encoder_json)
    return tiktoken.Encoding(
        name="gpt2-offline",
        pat_str=r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""",
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": EOT},
    )


def main():
    text_path = find("tinyshakespeare/input.txt")
    encoder_json = find("gpt2/encoder.json")
    vocab_bpe = find("gpt2/vocab.bpe")
    enc = gpt2_encoding(encoder_json, vocab_bpe)
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    tokens = []
    for passage in text.split("\n\n"):
        tokens.append(EOT)
        tokens.extend(enc.encode_ordinary(passage + "\n\n"))
    os.makedirs(OUT_DIR, exist_ok=True)
    write_shard(os.path.join(OUT_DIR, "tiny_shakespeare_val.bin"), tokens[:VAL_TOKENS])
    write_shard(os.path.join(OUT_DIR, "tiny_shakespeare_train.bin"), tokens[VAL_TOKENS:])
    write_tokenizer(TOKENIZER_OUT, encoder_json)
    print(f"{text_path}: {len(text):,} characters -> {len(tokens):,} tokens "
          f"({VAL_TOKENS:,} val, {len(tokens) - VAL_TOKENS:,} train) in {OUT_DIR}")
    print(f"wrote {TOKENIZER_OUT}")


if __name__ == "__main__":
    main()
