"""
Tiny Shakespeare -> GPT-2 token shards, llm.c's format (see llmc/shard.h):
  dev/data/tinyshakespeare/tiny_shakespeare_val.bin    the first 32,768 tokens
  dev/data/tinyshakespeare/tiny_shakespeare_train.bin  the rest (about 305K tokens)
and llm.c's decode-only tokenizer file dev/data/gpt2_tokenizer.bin.

The text and GPT-2's tokenizer files come from ../shared/data (the directory named by
$LLMC_SHARED_DATA if set); only if they are missing are they downloaded from their public URLs.
Each blank-line-separated passage is encoded after an end-of-text token, as llm.c does.
Tokenization: our C tokenizer, dev/data/tokenize (llmc/bpe.h), token-for-token identical to
tiktoken's GPT-2 encoding (dev/data/test_tokenizer.py checks it on every corpus).
gpt2_encoding() below builds that tiktoken encoding offline, for the tests and HellaSwag.
"""
import hashlib
import os
import subprocess
import sys
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("LLMC_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))
OUT_DIR = os.path.join(REPO, "dev", "data", "tinyshakespeare")
TOKENIZER_OUT = os.path.join(REPO, "dev", "data", "gpt2_tokenizer.bin")
# downloads (only when ../shared/data lacks a file) are kept here; `make distclean` removes them
CACHE = os.environ.get("LLMC_DATA_CACHE", os.path.join(REPO, "dev", "data", "downloads"))

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
    tool = os.path.join(REPO, "dev", "data", "tokenize")
    if not os.access(tool, os.X_OK):
        sys.exit(f"error: {tool} is not built (make dev/data/tokenize)")
    os.makedirs(OUT_DIR, exist_ok=True)
    vocab = ["--encoder", encoder_json, "--merges", vocab_bpe]
    subprocess.run([tool, text_path, "-o", os.path.join(OUT_DIR, "tiny_shakespeare"), "--format", "text",
                    "--doc-sep", "\\n\\n", "--val-tokens", str(VAL_TOKENS), "--no-shard-index"] + vocab, check=True)
    subprocess.run([tool, "--write-tokenizer", TOKENIZER_OUT] + vocab, check=True)
    print(f"wrote {OUT_DIR}/tiny_shakespeare_{{train,val}}.bin and {TOKENIZER_OUT}")


if __name__ == "__main__":
    main()
