"""End-to-end tests of dev/data/pipeline on the real corpora in ../shared/data.

Run by dev/data/test_pipeline.sh (after the C unit tests). Prints PASS:/FAIL: lines and exits
non-zero on failure. Plain python3 (json, struct, subprocess): no third-party packages.

Checks:
- every corpus (livedoor, aozora, fineweb2 sample, Gutenberg, SpamAssassin) runs through all
  stages; the report is consistent from stage to stage (docs/chars out of stage k == in of
  stage k+1), drops add up to the per-reason counts, the shards hold exactly the reported
  tokens and one <|endoftext|> per kept document, the rejects file lists every dropped
  document once, and the kept JSONL matches;
- the shard tokens decode (GPT-2 byte decoder) back to the kept, PII-masked texts;
- output is byte-identical for 1 and 3 threads and different batch sizes;
- real counts: livedoor has 229 bodies under 400 chars and 70 under 50% Japanese (README);
  exact dedup equals an independent Python count under the same normalization;
- host block / allow lists against a Python count on the fineweb2 URLs;
- bad input (invalid UTF-8, empty documents, blank lines, malformed JSON, missing or
  non-string text) is counted by kind with the right line numbers, and nothing is lost.
"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PIPE = os.path.join(ROOT, "dev", "data", "pipeline")
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")
GPT2 = os.path.join(DATA, "gpt2")
EOT = 50256
failures = 0


def check(ok, name, detail=""):
    global failures
    if ok:
        print(f"PASS: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}: {detail}")


def run(args, tmp, tag):
    """Runs the pipeline with all outputs under tmp/tag_*; returns (report, paths)."""
    paths = {k: os.path.join(tmp, f"{tag}_{k}") for k in ("report.json", "kept.jsonl", "rejects.jsonl")}
    prefix = os.path.join(tmp, tag)
    cmd = [PIPE, "--quiet", "--tokenizer-dir", GPT2, "--out-prefix", prefix, "--report", paths["report.json"],
           "--out-jsonl", paths["kept.jsonl"], "--rejects", paths["rejects.jsonl"]] + args
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        check(False, f"{tag}: pipeline runs", f"exit {r.returncode}: {r.stderr.strip()[:500]}")
        return None, None
    paths["prefix"] = prefix
    with open(paths["report.json"]) as f:
        return json.load(f), paths


def read_shards(prefix, split):
    toks = []
    i = 0
    while os.path.exists(f"{prefix}_{split}_{i:06d}.bin"):
        with open(f"{prefix}_{split}_{i:06d}.bin", "rb") as f:
            data = f.read()
        hdr = struct.unpack("<256i", data[:1024])
        assert hdr[0] == 20240520 and hdr[1] == 1, f"bad shard header {hdr[:3]}"
        assert len(data) == 1024 + 2 * hdr[2], "shard size does not match its header"
        toks.extend(struct.unpack(f"<{hdr[2]}H", data[1024:]))
        i += 1
    return toks, i


def count_lines(path):
    with open(path, "rb") as f:
        data = f.read()
    n = data.count(b"\n")
    return n + (1 if data and not data.endswith(b"\n") else 0)


def check_report(tag, rep, paths, input_records):
    st = rep["stages"]
    ok = True
    why = []
    for a, b in zip(st, st[1:]):
        if a["docs_out"] != b["docs_in"] or a["chars_out"] != b["chars_in"]:
            ok = False
            why.append(f"{a['name']}->{b['name']}: docs {a['docs_out']}/{b['docs_in']} chars {a['chars_out']}/{b['chars_in']}")
    for s in st:
        if s["docs_out"] > s["docs_in"] or (not s["enabled"] and (s["docs_out"] != s["docs_in"] or s["chars_out"] != s["chars_in"])):
            ok = False
            why.append(f"{s['name']} in/out {s['docs_in']}/{s['docs_out']}")
    check(ok, f"{tag}: report consistent from stage to stage", "; ".join(why))
    check(st[0]["docs_in"] == rep["records"] == input_records, f"{tag}: every input record counted",
          f"records {rep['records']}, extract in {st[0]['docs_in']}, input lines {input_records}")
    bad = sum(v["count"] for v in rep["bad_input"].values() if "count" in v)
    q = sum(rep["quality_reasons"].values()) - rep["quality_reasons"].get("pass", 0)
    check(st[0]["docs_in"] - st[0]["docs_out"] == bad and st[1]["docs_in"] - st[1]["docs_out"] == q,
          f"{tag}: drops add up to the per-kind counts", f"extract drops {st[0]['docs_in'] - st[0]['docs_out']} vs bad {bad}; quality drops {st[1]['docs_in'] - st[1]['docs_out']} vs reasons {q}")
    final = st[-1]["docs_out"]
    dropped = st[0]["docs_in"] - final
    nrej = count_lines(paths["rejects.jsonl"])
    kept = [json.loads(l) for l in open(paths["kept.jsonl"], encoding="utf-8")]
    check(nrej == dropped and len(kept) == final, f"{tag}: rejects + kept files account for every record",
          f"rejects {nrej} vs dropped {dropped}, kept {len(kept)} vs {final}")
    kept_chars = sum(len(d["text"]) for d in kept)
    check(kept_chars == st[-1]["chars_out"], f"{tag}: kept characters match the report", f"{kept_chars} vs {st[-1]['chars_out']}")
    tr, ntr = read_shards(paths["prefix"], "train")
    va, nva = read_shards(paths["prefix"], "val")
    t = rep["tokens"]
    ok = (len(tr) == t["train"] and len(va) == t["val"] and tr.count(EOT) == t["docs_train"] and va.count(EOT) == t["docs_val"]
          and t["docs_train"] + t["docs_val"] == final and ntr == t["shards_train"] and nva == t["shards_val"]
          and (not tr or tr[0] == EOT) and (not va or va[0] == EOT))
    check(ok, f"{tag}: shards hold the reported tokens, one <|endoftext|> before each kept document",
          f"train {len(tr)}/{t['train']} eot {tr.count(EOT)}/{t['docs_train']}, val {len(va)}/{t['val']} eot {va.count(EOT)}/{t['docs_val']}, final docs {final}")
    tmp_left = [p for p in os.listdir(os.path.dirname(paths["prefix"])) if ".tmp." in p]
    check(not tmp_left, f"{tag}: no temporary files left behind (atomic outputs)", str(tmp_left[:3]))
    return kept, tr, va


def gpt2_decoder():
    # GPT-2's byte <-> unicode table (as in its encoder.py), to decode ids to bytes
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    byte_of = {chr(c): b for b, c in zip(bs, cs)}
    enc = json.load(open(os.path.join(GPT2, "encoder.json"), encoding="utf-8"))
    return {i: bytes(byte_of[ch] for ch in tok) for tok, i in enc.items() if i != EOT}


def split_docs(toks):
    docs, cur = [], None
    for t in toks:
        if t == EOT:
            if cur is not None:
                docs.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur is not None:
        docs.append(cur)
    return docs


def check_decode(tag, kept, tr, va, dec):
    docs = {"train": split_docs(tr), "val": split_docs(va)}
    texts = {"train": [d["text"] for d in kept if d["split"] == "train"], "val": [d["text"] for d in kept if d["split"] == "val"]}
    ok = True
    why = ""
    for split in ("train", "val"):
        if len(docs[split]) != len(texts[split]):
            ok, why = False, f"{split}: {len(docs[split])} token docs vs {len(texts[split])} texts"
            break
        for i, (ids, text) in enumerate(zip(docs[split], texts[split])):
            if b"".join(dec[t] for t in ids).decode("utf-8") != text:
                ok, why = False, f"{split} doc {i} differs"
                break
    check(ok, f"{tag}: shard tokens decode to the kept (masked) texts, in order", why)


def main():
    tmp = tempfile.mkdtemp(prefix="test_pipeline_")
    dec = gpt2_decoder()
    livedoor = os.path.join(DATA, "livedoor", "livedoor_news.jsonl")
    aozora = os.path.join(DATA, "aozora", "aozora_kenji_nankichi.jsonl")
    gutenberg = os.path.join(DATA, "gutenberg_children", "gutenberg_children.jsonl")
    spam = os.path.join(DATA, "spamassassin_subset", "spamassassin_subset.jsonl")
    # the fineweb2 sample is one JSON array: convert it to JSONL
    fineweb = os.path.join(tmp, "fineweb.jsonl")
    arr = json.load(open(os.path.join(DATA, "fineweb2_edu_ja_sample", "fineweb_100_samples.json"), encoding="utf-8"))
    with open(fineweb, "w", encoding="utf-8") as f:
        for d in arr:
            f.write(json.dumps({"id": d["id"], "url": d["url"], "text": d["text"]}, ensure_ascii=False) + "\n")

    # 1. every corpus end to end
    corpora = [("livedoor", livedoor, ["--lang", "ja"]), ("aozora", aozora, ["--lang", "ja"]),
               ("fineweb2", fineweb, ["--lang", "ja"]), ("gutenberg", gutenberg, ["--lang", "en", "--shard-tokens", "3000000"]),
               ("spamassassin", spam, ["--lang", "en"])]
    for tag, path, args in corpora:
        rep, paths = run(args + [path], tmp, tag)
        if rep is None:
            continue
        kept, tr, va = check_report(tag, rep, paths, count_lines(path))
        if tag != "gutenberg":  # decoding 40 MB in Python is slow; the others cover it
            check_decode(tag, kept, tr, va, dec)
        st = rep["stages"]
        print(f"      {tag}: docs " + " -> ".join(f"{s['name']} {s['docs_out']}" for s in st) +
              f"; chars {st[0]['chars_out']} -> {st[-1]['chars_out']}; pii {rep['pii']}")
        if tag == "gutenberg":
            check(rep["tokens"]["shards_train"] >= 2, "gutenberg: training tokens split over several shards", str(rep["tokens"]))
        if tag == "spamassassin":
            check(rep["pii"]["email"] > 1000 and rep["pii"]["ip"] > 1000, "spamassassin: e-mails and IPs masked and counted", str(rep["pii"]))
        if tag in ("livedoor", "spamassassin", "fineweb2"):
            # independent regexes over the kept output: nothing they find may be left
            # (a local part needs a letter or digit: "<....@host>" is an already redacted address)
            email = re.compile(r"[A-Za-z0-9._%+-]*[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
            jp_phone = re.compile(r"(?<![\d.-])0\d{1,4}-\d{1,4}-\d{4}(?![\d-])")
            ipv4 = re.compile(r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.A-Za-z])")  # not "Mutt/1.2.5.1i" (a version)
            left = {name: [m.group(0) for d in kept for m in rx.finditer(d["text"])
                           if name != "jp_phone" or len(re.sub(r"\D", "", m.group(0))) in (10, 11)]
                    for name, rx in (("email", email), ("jp_phone", jp_phone), ("ipv4", ipv4))}
            check(not any(left.values()), f"{tag}: no e-mail, Japanese phone number or IPv4 address left in the kept text",
                  str({k: v[:5] for k, v in left.items() if v}))
            if tag == "livedoor":
                raw = [json.loads(l)["text"] for l in open(path, encoding="utf-8")]
                n_regex = sum(1 for t in raw if re.search(r"0\d{1,4}-\d{1,4}-\d{3,4}", t))
                n_masked = sum(1 for d in kept if "<PHONE>" in d["text"])
                print(f"      livedoor: {n_regex} raw bodies match the README's phone regex; {n_masked} kept documents have a <PHONE>")

    # 2. same output for any thread count and batch size
    outs = []
    for threads, batch in ((1, 64), (3, 7)):
        rep, paths = run(["--lang", "ja", "--threads", str(threads), "--batch-docs", str(batch), livedoor], tmp, f"det{threads}")
        if rep is None:
            return
        blobs = []
        for p in (paths["prefix"] + "_train_000000.bin", paths["prefix"] + "_val_000000.bin", paths["kept.jsonl"], paths["rejects.jsonl"]):
            blobs.append(open(p, "rb").read())
        rep.pop("seconds")
        rep.pop("cpu_seconds")
        rep.pop("threads")
        rep.pop("out_prefix")
        outs.append((blobs, rep))
    check(outs[0] == outs[1], "livedoor: shards, kept, rejects and report identical for 1 and 3 threads (batch 64 / 7)")

    # 3. real counts from ../shared/data/README.md and independent Python counts
    rep, _ = run(["--lang", "ja", "--min-ja-frac", "-1", "--no-gopher", "--no-exact-dedup", "--no-near-dedup", "--no-tokenize", livedoor], tmp, "minchars")
    check(rep and rep["quality_reasons"]["min_chars"] == 229, "livedoor: 229 bodies under 400 characters (README count)", rep and rep["quality_reasons"])
    rep, _ = run(["--lang", "ja", "--min-chars", "0", "--no-gopher", "--no-exact-dedup", "--no-near-dedup", "--no-tokenize", livedoor], tmp, "jafrac")
    check(rep and rep["quality_reasons"]["ja_fraction"] == 70, "livedoor: 70 bodies under 50% Japanese characters (README count)", rep and rep["quality_reasons"])
    rep, _ = run(["--lang", "ja", "--no-quality", "--no-near-dedup", "--no-tokenize", livedoor], tmp, "exact")
    seen, dups = set(), 0
    for line in open(livedoor, encoding="utf-8"):
        t = json.loads(line)["text"]
        key = " ".join(t.split()).translate({c: c + 32 for c in range(65, 91)})
        dups += key in seen
        seen.add(key)
    st = rep["stages"] if rep else None
    check(st and st[2]["docs_in"] - st[2]["docs_out"] == dups and dups >= 8,
          "livedoor: exact dedup drops the Python count of normalized duplicates (README: 8 identical bodies)",
          f"pipeline {st and st[2]['docs_in'] - st[2]['docs_out']} python {dups}")
    print(f"      livedoor: {dups} exact duplicates after normalization")
    rep, _ = run(["--lang", "en", "--no-quality", "--no-exact-dedup", "--no-tokenize", gutenberg], tmp, "neargb")
    st = rep["stages"] if rep else None
    check(st and st[3]["docs_in"] - st[3]["docs_out"] >= 2, "gutenberg: near dedup finds the duplicate editions (e.g. two Alices)",
          f"{st and st[3]['docs_in'] - st[3]['docs_out']} dropped")

    # 4. host block / allow lists on the fineweb2 URLs
    from urllib.parse import urlsplit
    hosts = [urlsplit(d["url"]).hostname.lower() for d in arr]
    block = ["wikipedia.org", "amazon.co.jp", "tumblr.com"]
    allow = ["ja.wikipedia.org"]
    with open(os.path.join(tmp, "block.txt"), "w") as f:
        f.write("# test block list\n" + "\n".join(block) + "\n")
    with open(os.path.join(tmp, "allow.txt"), "w") as f:
        f.write("\n".join(allow) + "\n")
    match = lambda h, lst: any(h == s or h.endswith("." + s) for s in lst)
    want_block = sum(match(h, block) for h in hosts)
    want_block_allow = sum(match(h, block) and not match(h, allow) for h in hosts)
    want_only = sum(not match(h, allow) for h in hosts)
    base = ["--lang", "ja", "--no-quality", "--no-exact-dedup", "--no-near-dedup", "--no-tokenize"]
    got = []
    for extra in (["--block-hosts", os.path.join(tmp, "block.txt")],
                  ["--block-hosts", os.path.join(tmp, "block.txt"), "--allow-hosts", os.path.join(tmp, "allow.txt")],
                  ["--allow-hosts", os.path.join(tmp, "allow.txt"), "--allow-only"]):
        rep, _ = run(base + extra + [fineweb], tmp, "hosts")
        got.append(rep["stages"][4]["docs_in"] - rep["stages"][4]["docs_out"] if rep else None)
    check(got == [want_block, want_block_allow, want_only] and want_block > want_block_allow > 0,
          "fineweb2: host block list, allow-list exemptions and allow-only match a Python count",
          f"pipeline {got}, python {[want_block, want_block_allow, want_only]}")

    # 5. bad input, mixed with real records; line numbers are 1-based
    real = [l.rstrip("\n") for _, l in zip(range(3), open(livedoor, encoding="utf-8"))]
    lines = [
        real[0].encode(),                                               # 1 ok
        b'{"id": "bad-utf8", "text": "' + ("あ" * 500).encode() + b'\xff\xfe tail"}',  # 2 invalid UTF-8: kept, repaired
        b'{"id": "empty", "text": ""}',                                 # 3 empty
        b"",                                                            # 4 blank line
        b'{"id": "trunc", "text": "abc',                                # 5 malformed
        b'{"id": "notext", "title": "x"}',                              # 6 missing text
        b'{"id": "num", "text": 42}',                                   # 7 text not a string
        b'["an", "array"]',                                             # 8 not an object
        b'{"id": "spaces", "text": "   \\n\\t  "}',                     # 9 empty (white space)
        real[1].encode()[:-5],                                          # 10 malformed (cut)
        real[2].encode(),                                               # 11 ok
        b'{"id": "comma", "text": "x",}',                               # 12 malformed
        b'{"id": "lone", "text": "' + ("い" * 450).encode() + b'\\ud800"}',  # 13 lone surrogate: kept, repaired
    ]
    bad_path = os.path.join(tmp, "bad.jsonl")
    with open(bad_path, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    rep, paths = run(["--lang", "ja", "--min-chars", "0", "--no-gopher", bad_path], tmp, "bad")
    if rep:
        b = rep["bad_input"]
        lines_of = lambda k: [int(w.split(":")[1]) for w in b[k]["first"]]
        ok = (b["malformed_json"]["count"] == 3 and lines_of("malformed_json") == [5, 10, 12]
              and b["empty"]["count"] == 3 and lines_of("empty") == [3, 4, 9]
              and b["missing_text"]["count"] == 1 and lines_of("missing_text") == [6]
              and b["text_not_string"]["count"] == 1 and lines_of("text_not_string") == [7]
              and b["not_an_object"]["count"] == 1 and lines_of("not_an_object") == [8]
              and b["invalid_utf8"]["docs"] == 2 and b["invalid_utf8"]["bytes_replaced"] == 3
              and [int(w.split(":")[1]) for w in b["invalid_utf8"]["first"]] == [2, 13])
        check(ok, "bad input counted by kind with line numbers", json.dumps(b, ensure_ascii=False)[:600])
        kept = [json.loads(l) for l in open(paths["kept.jsonl"], encoding="utf-8")]
        check([d["id"] for d in kept] == [json.loads(real[0])["id"], "bad-utf8", json.loads(real[2])["id"], "lone"]
              and "\ufffd" in kept[1]["text"] and kept[3]["text"].endswith("\ufffd"),
              "bad input: good and repaired records kept, in order", str([d["id"] for d in kept]))
        check_report("bad-input", rep, paths, len(lines))

    # 6. usage errors fail cleanly
    r = subprocess.run([PIPE, "--no-such-flag", livedoor], capture_output=True, text=True)
    r2 = subprocess.run([PIPE, "--no-tokenize", os.path.join(tmp, "missing.jsonl")], capture_output=True, text=True)
    h = subprocess.run([PIPE, "--help"], capture_output=True, text=True)
    check(r.returncode != 0 and "unknown flag" in r.stderr and r2.returncode != 0 and "missing.jsonl" in r2.stderr
          and h.returncode == 0 and "[0.20,0.18,0.16]" in h.stdout and "[400]" in h.stdout,
          "usage errors are reported; --help states the thresholds", r.stderr + r2.stderr)

    subprocess.run(["rm", "-rf", tmp])
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
