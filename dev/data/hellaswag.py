"""
HellaSwag validation set -> dev/data/eval/hellaswag.bin, GPT-2 tokens, a multiple-choice task
file (llmc/mc_task.h) written by eval_tasks.py; this file finds the source text.

Reads ../shared/data/hellaswag/hellaswag_val_full.txt: a PREPROCESSED copy of the validation
set (llama.cpp's 6-line text format: "activity_label: ctx", the gold label, 4 endings; WikiHow
[header]/[step]/[title] tags already stripped), not the original jsonl, so accuracies can
differ slightly from evaluations on the original file (dev/data/EVAL.md).

When ../shared/data (or $LLMC_SHARED_DATA) lacks the file, it is downloaded from its public
source, klosax/hellaswag_text_data at a fixed commit (a .bz2, the same file ../shared/data
holds decompressed), into dev/data/downloads/ and checked against its sha256.
usage: python dev/data/hellaswag.py [-o OUT.bin]
"""
import bz2
import hashlib
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tinyshakespeare import CACHE, REPO, SHARED, sha256  # noqa: E402

OUT = os.path.join(REPO, "dev", "data", "eval", "hellaswag.bin")
REL = "hellaswag/hellaswag_val_full.txt"
URL = ("https://raw.githubusercontent.com/klosax/hellaswag_text_data/"
       "1105d370f8340eac3c63a91fd1fa58e8999f9505/hellaswag_val_full.txt.bz2")
SHA256 = "d572539320eb2050e858ca34b495bbe2103e3b3f1391a9c3bcdf215b0bb93bd1"  # decompressed


def find_hellaswag():
    """../shared/data's copy, else a checked download ($LLMC_HELLASWAG_URL overrides the URL)."""
    local = os.path.join(SHARED, REL)
    if os.path.exists(local):
        return local
    cached = os.path.join(CACHE, REL)
    if not os.path.exists(cached):
        url = os.environ.get("LLMC_HELLASWAG_URL", URL)
        print(f"{local} not found, downloading {url}")
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        try:
            with urllib.request.urlopen(url) as r:
                data = bz2.decompress(r.read())
        except Exception as e:  # no network, HTTP error, not bzip2
            sys.exit(f"error: {local} not found and the download of {url} failed: {e}\n"
                     "(HellaSwag is only needed for evaluation: `make data` and training do not need it)")
        if hashlib.sha256(data).hexdigest() != SHA256:
            sys.exit(f"error: {url}: sha256 mismatch after decompression (expected {SHA256})")
        with open(cached + ".part", "wb") as f:
            f.write(data)
        os.replace(cached + ".part", cached)
    if sha256(cached) != SHA256:
        sys.exit(f"error: {cached}: sha256 mismatch (expected {SHA256}); delete it to download again")
    return cached


def main():
    # the file itself is written by eval_tasks.py, like every other multiple-choice task
    out = OUT
    if len(sys.argv) == 3 and sys.argv[1] == "-o":
        out = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit("usage: python dev/data/hellaswag.py [-o OUT.bin]")
    import eval_tasks
    sys.argv = [sys.argv[0], "--tasks", "hellaswag", "-o", out]
    eval_tasks.main()


if __name__ == "__main__":
    main()
