"""Tests of scripts/fineweb_to_jsonl.py (FineWeb parquet -> pipeline JSONL) on local files.

Run by dev/data/test_fineweb.sh with the project's .venv python (needs pyarrow). Prints PASS:/FAIL:
lines, exits non-zero on failure. No network: the parquet files are written here, with
FineWeb's column names and types, from real text:
- the 100 real FineWeb-2 rows of ../shared/data/fineweb2_edu_ja_sample (all their columns, as
  they are, plus FineWeb-Edu's int_score derived from their real `score`), split over two files
  data/CC-MAIN-2013-20/000_00000.parquet and 001_00000.parquet, row groups of 16 rows, with
  two null texts and one empty text added (synthetic rows, ids test-null-*, test-empty-*);
- the 192 Gutenberg books of ../shared/data/gutenberg_children as a FineWeb (not -Edu) file:
  real text and ids, language "en", url null, no score columns.
The `datasets` streaming path is checked against a stub `datasets` module written here (the
real library and the Hub are not reachable): it tests our code, not Hugging Face's.
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "scripts", "fineweb_to_jsonl.py")
PIPE = os.path.join(ROOT, "dev", "data", "pipeline")
DATA = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "..", "shared", "data")
failures = 0


def check(ok, name, detail=""):
    global failures
    if ok:
        print(f"PASS: {name}")
    else:
        failures += 1
        print(f"FAIL: {name}: {detail}")


def conv(args, env=None, **kw):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True, env=e, **kw)


def read_out(out):
    """{file name: [records]} for the *.jsonl files in out."""
    res = {}
    for p in sorted(glob.glob(os.path.join(out, "*.jsonl"))):
        with open(p, "rb") as f:
            res[os.path.basename(p)] = [json.loads(line) for line in f]
    return res


def stray(out):
    return [n for n in os.listdir(out) if ".tmp." in n] if os.path.isdir(out) else []


def report(out):
    with open(os.path.join(out, "fineweb_report.json")) as f:
        return json.load(f)


def make_data(tmp):
    with open(os.path.join(DATA, "fineweb2_edu_ja_sample", "fineweb_100_samples.json"), encoding="utf-8") as f:
        ja = json.load(f)
    for r in ja:  # FineWeb-Edu's int_score: the score clipped to 0..5, rounded (Python's round)
        r["int_score"] = int(round(min(max(r["score"], 0.0), 5.0)))
    gut = []
    with open(os.path.join(DATA, "gutenberg_children", "gutenberg_children.jsonl"), encoding="utf-8") as f:
        for line in f:
            g = json.loads(line)
            gut.append({"text": g["text"], "id": g["id"], "dump": "gutenberg", "url": None, "date": None,
                        "file_path": g["source_path"], "language": "en", "language_score": 1.0,
                        "token_count": None})
    null_rows = []
    for k, (pos, text) in enumerate([(3, None), (20, ""), (41, None)]):
        r = dict(ja[pos])
        r["id"] = f"test-{'null' if text is None else 'empty'}-{k}"
        r["text"] = text
        null_rows.append((pos, r))
    file0 = ja[:60]
    for pos, r in null_rows:
        file0.insert(pos, r)
    file1 = ja[60:]
    ja_schema = pa.schema([("text", pa.string()), ("is_cleaned", pa.bool_()), ("id", pa.string()), ("dump", pa.string()),
                           ("url", pa.string()), ("date", pa.string()), ("file_path", pa.string()),
                           ("language", pa.string()), ("language_score", pa.float64()),
                           ("language_script", pa.string()), ("minhash_cluster_size", pa.int64()),
                           ("top_langs", pa.string()), ("score", pa.float64()), ("int_score", pa.int64()),
                           ("token_count", pa.int64())])
    fw_schema = pa.schema([("text", pa.string()), ("id", pa.string()), ("dump", pa.string()), ("url", pa.string()),
                           ("date", pa.string()), ("file_path", pa.string()), ("language", pa.string()),
                           ("language_score", pa.float64()), ("token_count", pa.int64())])
    d = os.path.join(tmp, "data", "CC-MAIN-2013-20")
    os.makedirs(d)
    pq.write_table(pa.Table.from_pylist(file0, schema=ja_schema), os.path.join(d, "000_00000.parquet"), row_group_size=16)
    pq.write_table(pa.Table.from_pylist(file1, schema=ja_schema), os.path.join(d, "001_00000.parquet"), row_group_size=16)
    g = os.path.join(tmp, "data", "gutenberg")
    os.makedirs(g)
    pq.write_table(pa.Table.from_pylist(gut, schema=fw_schema), os.path.join(g, "000_00000.parquet"), row_group_size=50)
    # input order = sorted paths: CC-MAIN-2013-20/000, CC-MAIN-2013-20/001, gutenberg/000
    return ja, gut, file0 + file1, [("CC-MAIN-2013-20__000_00000", file0), ("CC-MAIN-2013-20__001_00000", file1),
                                    ("gutenberg__000_00000", gut)]


def main():
    tmp = tempfile.mkdtemp(prefix="test_fineweb_")
    ja, gut, ja_rows, units = make_data(tmp)
    data = os.path.join(tmp, "data")
    jadir = os.path.join(data, "CC-MAIN-2013-20")
    good = lambda rows: [r for r in rows if r["text"]]  # noqa: E731

    # 1. everything, 16 docs per file
    out = os.path.join(tmp, "out")
    r = conv(["--out-dir", out, "--docs-per-file", "16", data])
    check(r.returncode == 0, "full conversion exits 0", r.stderr[-800:])
    files = read_out(out)
    ok, why = True, ""
    for tag, rows in units:
        keep = good(rows)
        names = [f"{tag}_{i:05d}.jsonl" for i in range(math.ceil(len(keep) / 16))]
        got = [rec for n in names for rec in files.get(n, [])]
        if any(len(files.get(n, [])) != 16 for n in names[:-1]) or len(got) != len(keep):
            ok, why = False, f"{tag}: files {[len(files.get(n, [])) for n in names]} for {len(keep)} docs"
            break
        for src, rec in zip(keep, got):
            exp = {"id": src["id"], "text": src["text"]}
            if src["url"] is not None:
                exp["url"] = src["url"]
            exp["dump"] = src["dump"]
            if rec != exp or rec["text"].encode("utf-8") != src["text"].encode("utf-8"):
                ok, why = False, f"{tag}: record {src['id']} differs"
                break
    check(ok, "every non-null document kept, in order, text byte-exact, id/url/dump kept, 16 per file", why)
    n_expected = sum(math.ceil(len(good(rows)) / 16) for _, rows in units)
    check(len(files) == n_expected, f"exactly the expected {n_expected} output files", sorted(files))
    with open(os.path.join(out, "CC-MAIN-2013-20__000_00000_00000.jsonl"), "rb") as f:
        raw = f.read()
    check(ja[0]["text"].encode("utf-8") in raw.replace(b"\\n", b"\n"), "output is UTF-8, not \\u-escaped (ensure_ascii off)")
    rep = report(out)
    f0 = os.path.join(jadir, "000_00000.parquet")
    check(rep["null_text"] == 2 and rep["empty_text"] == 1 and rep["kept"] == 100 + 192 and
          rep["rows"] == 103 + 192, "null and empty texts counted (2, 1), 292 kept of 295 rows",
          json.dumps({k: rep[k] for k in ("rows", "kept", "null_text", "empty_text")}))
    check(rep["first"].get("null_text") == [f"{f0}:3", f"{f0}:41"] and rep["first"].get("empty_text") == [f"{f0}:20"],
          "null / empty rows reported with file:row", json.dumps(rep["first"]))
    check("null text 2, empty text 1" in r.stdout and f"{f0}:3" in r.stderr, "counts and positions printed",
          r.stdout[-400:] + r.stderr[-400:])
    check(not stray(out), "no temporary files left", stray(out))

    # 2. resume: a rerun converts nothing and touches no output
    before = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in files}
    r = conv(["--out-dir", out, "--docs-per-file", "16", data])
    after = {n: os.stat(os.path.join(out, n)).st_mtime_ns for n in read_out(out)}
    check(r.returncode == 0 and "0 converted now, 3 already done" in r.stdout and before == after,
          "rerun skips the 3 converted files, outputs untouched", r.stdout[-300:] + r.stderr[-300:])
    victim = "CC-MAIN-2013-20__001_00000_00001.jsonl"
    saved = files[victim]
    os.unlink(os.path.join(out, victim))
    r = conv(["--out-dir", out, "--docs-per-file", "16", data])
    files2 = read_out(out)
    check(r.returncode == 0 and "1 converted now, 2 already done" in r.stdout and files2 == files and
          files2[victim] == saved, "a missing output file: only its input is converted again, same records",
          r.stdout[-300:])
    r = conv(["--out-dir", out, "--docs-per-file", "20", data])
    check(r.returncode == 1 and "other options" in r.stderr, "other options into the same --out-dir: refused", r.stderr[-300:])
    r = conv(["--out-dir", out, "--docs-per-file", "16", data, "--force", "--quiet"])
    check(r.returncode == 0 and "3 converted now" in r.stdout and read_out(out) == files, "--force converts again, same output",
          r.stdout[-300:])

    # 3. filters, against counts made here from the rows written
    def run_filter(tag, args, inputs, expect_kept, expect_filtered):
        o = os.path.join(tmp, "f_" + tag)
        r = conv(["--out-dir", o, "--quiet"] + args + inputs)
        if r.returncode != 0:
            check(False, f"filter {tag}", r.stderr[-500:])
            return
        rep = report(o)
        got = [rec["id"] for recs in read_out(o).values() for rec in recs]
        expect_filtered = {k: v for k, v in expect_filtered.items() if v}
        check(sorted(got) == sorted(expect_kept) and rep["filtered"] == expect_filtered,
              f"filter {tag}: {len(expect_kept)} kept, dropped {expect_filtered}",
              f"kept {len(got)}, filtered {rep['filtered']}")

    jg = good(ja_rows)
    run_filter("language", ["--language", "jpn"], [data], [x["id"] for x in jg], {"language": 192})
    run_filter("language_en", ["--language", "en,fr"], [data], [x["id"] for x in gut], {"language": 100})
    run_filter("int_score", ["--min-int-score", "3"], [jadir], [x["id"] for x in jg if x["int_score"] >= 3],
               {"int_score": sum(x["int_score"] < 3 for x in jg)})
    scores = sorted(x["score"] for x in jg)
    ts = scores[len(scores) // 2]  # the median: about half each side
    ls = sorted(x["language_score"] for x in jg)[30]
    run_filter("score+language_score", ["--min-language-score", repr(ls), "--min-score", repr(ts)], [jadir],
               [x["id"] for x in jg if x["language_score"] >= ls and x["score"] >= ts],
               {"language_score": sum(x["language_score"] < ls for x in jg),
                "score": sum(x["language_score"] >= ls and x["score"] < ts for x in jg)})
    o = os.path.join(tmp, "f_missing_col")
    r = conv(["--out-dir", o, "--min-int-score", "3", data])
    gfile = os.path.join(data, "gutenberg", "000_00000.parquet")
    check(r.returncode == 1 and f"{gfile}: --min-int-score needs a 'int_score' column" in r.stderr,
          "--min-int-score on a FineWeb (non-Edu) file: error naming the file", r.stderr[-400:])
    check(sorted(read_out(o)) == ["CC-MAIN-2013-20__000_00000_00000.jsonl", "CC-MAIN-2013-20__001_00000_00000.jsonl"]
          and not stray(o),
          "the files before it are kept (recorded), nothing of the failing file", sorted(read_out(o)))

    # 4. caps: the first N documents in input order; a rerun gives the same files
    order = [x for _, rows in units for x in good(rows)]
    o = os.path.join(tmp, "cap")
    r = conv(["--out-dir", o, "--docs-per-file", "16", "--max-docs", "77", data])
    got = [rec["id"] for recs in read_out(o).values() for rec in recs]
    check(r.returncode == 0 and got == [x["id"] for x in order[:77]] and "cap reached" in r.stdout,
          "--max-docs 77: exactly the first 77 documents", f"{len(got)} docs; {r.stdout[-300:]}")
    first = read_out(o)
    r = conv(["--out-dir", o, "--docs-per-file", "16", "--max-docs", "77", data])
    check(r.returncode == 0 and read_out(o) == first and "1 converted now, 1 already done" in r.stdout,
          "--max-docs rerun: the partial file is redone, same output", r.stdout[-300:])
    r = conv(["--out-dir", o, "--docs-per-file", "16", "--max-docs", "300", data])
    got = [rec["id"] for recs in read_out(o).values() for rec in recs]
    check(r.returncode == 0 and got == [x["id"] for x in order], "a larger --max-docs afterwards completes the rest",
          f"{len(got)} docs")
    lim = sum(len(x["text"]) for x in order[:65]) + len(order[65]["text"]) - 1
    o = os.path.join(tmp, "capc")
    r = conv(["--out-dir", o, "--max-chars", str(lim), data])
    got = [rec["id"] for recs in read_out(o).values() for rec in recs]
    check(r.returncode == 0 and got == [x["id"] for x in order[:65]] and report(o)["chars"] <= lim,
          "--max-chars: stops before the document that would pass the limit", f"{len(got)} docs")

    # 5. bad input: each error names the file, exits 1, leaves no output of that file
    bad = os.path.join(tmp, "bad")
    os.makedirs(bad)
    shutil.copy(os.path.join(jadir, "001_00000.parquet"), os.path.join(bad, "a_good.parquet"))
    with open(os.path.join(bad, "b_junk.parquet"), "wb") as f:
        f.write(json.dumps(ja[0], ensure_ascii=False).encode("utf-8") * 20)
    good_bytes = open(os.path.join(jadir, "001_00000.parquet"), "rb").read()
    trunc = os.path.join(tmp, "c_truncated.parquet")
    with open(trunc, "wb") as f:
        f.write(good_bytes[:len(good_bytes) // 2])
    nocol = os.path.join(tmp, "d_notext.parquet")
    pq.write_table(pa.table({"content": [x["text"] for x in ja[:5]], "id": [x["id"] for x in ja[:5]]}), nocol)
    inttext = os.path.join(tmp, "e_inttext.parquet")
    pq.write_table(pa.table({"text": [1, 2, 3], "id": ["a", "b", "c"]}), inttext)
    for tag, path, msg in [("not parquet", os.path.join(bad, "b_junk.parquet"), "not a parquet file"),
                           ("truncated parquet", trunc, "not a parquet file, or a corrupt one"),
                           ("missing text column", nocol, "no 'text' column (columns: content, id)"),
                           ("int text column", inttext, "the 'text' column has type int64")]:
        o = os.path.join(tmp, "err_" + tag.replace(" ", "_"))
        r = conv(["--out-dir", o, path])
        check(r.returncode == 1 and f"{path}: {msg}" in r.stderr and not read_out(o) and not stray(o),
              f"{tag}: exit 1, '{msg}' naming the file, no output", f"rc {r.returncode}: {r.stderr[-400:]}")
    o = os.path.join(tmp, "err_dir")
    r = conv(["--out-dir", o, bad])
    check(r.returncode == 1 and "b_junk.parquet: not a parquet file" in r.stderr and
          sorted(read_out(o)) == ["bad__a_good_00000.jsonl"] and not stray(o),
          "a corrupt file after a good one: the good one is kept and recorded", f"{sorted(read_out(o))} {r.stderr[-300:]}")
    r = conv(["--out-dir", o, "--skip-bad-files", bad])
    check(r.returncode == 0 and "1 unreadable and skipped" in r.stdout and "0 converted now, 1 already done" in r.stdout,
          "--skip-bad-files: lists the bad file, goes on", r.stdout[-300:] + r.stderr[-300:])

    # corruption inside the file, found only when its 3rd row group is read (page CRC): the JSONL
    # files already written for that input are removed
    rows = good(ja_rows)[:60]
    ck = os.path.join(tmp, "crc", "f.parquet")
    os.makedirs(os.path.dirname(ck))
    pq.write_table(pa.table({"text": [x["text"] for x in rows], "id": [x["id"] for x in rows]}), ck,
                   row_group_size=16, compression="NONE", use_dictionary=False, write_page_checksum=True)
    b = bytearray(open(ck, "rb").read())
    t = rows[50]["text"].encode("utf-8")
    needle = t[len(t) // 2:len(t) // 2 + 40]
    flipped = b.count(needle) == 1
    if flipped:
        b[b.find(needle)] ^= 1
        with open(ck, "wb") as f:
            f.write(b)
    o = os.path.join(tmp, "err_crc")
    r = conv(["--out-dir", o, "--docs-per-file", "10", ck])
    check(flipped and r.returncode == 1 and f"{ck}: corrupt data in row group 3 of 4" in r.stderr and
          not read_out(o) and not stray(o),
          "corrupt row group after 48 rows written: exit 1, names file and row group, the 4 JSONL files written removed",
          f"rc {r.returncode}, files {sorted(read_out(o))}: {r.stderr[-400:]}")

    # invalid UTF-8 inside a string column (parquet does not validate it): replaced and counted
    vals = [b"ok text", b"bad \xff byte", b"\xe3\x81\x82 kana"]
    offs = [0]
    for v in vals:
        offs.append(offs[-1] + len(v))
    arr = pa.Array.from_buffers(pa.string(), len(vals), [None, pa.py_buffer(pa.array(offs, pa.int32()).buffers()[1]),
                                                         pa.py_buffer(b"".join(vals))])
    bu = os.path.join(tmp, "badutf8.parquet")
    pq.write_table(pa.table({"text": arr, "id": ["u0", "u1", "u2"]}), bu)
    o = os.path.join(tmp, "utf8")
    r = conv(["--out-dir", o, bu])
    got = [rec["text"] for recs in read_out(o).values() for rec in recs]
    check(r.returncode == 0 and got == ["ok text", "bad \ufffd byte", "\u3042 kana"] and report(o)["invalid_utf8"] == 1
          and f"{bu}:1" in r.stderr, "invalid UTF-8 in a text: U+FFFD, kept, counted with its position",
          f"{got} {r.stderr[-300:]}")

    # 6. argument checks and missing packages
    r = conv(["--out-dir", os.path.join(tmp, "x"), "--docs-per-file", "0", data])
    check(r.returncode == 2 and "--docs-per-file" in r.stderr, "--docs-per-file 0 refused", r.stderr[-200:])
    r = conv(["--out-dir", os.path.join(tmp, "x"), os.path.join(tmp, "nonexistent.parquet")])
    check(r.returncode == 1 and "nonexistent.parquet: no such file" in r.stderr, "missing input named", r.stderr[-200:])
    stub = os.path.join(tmp, "nopyarrow", "pyarrow")
    os.makedirs(stub)
    with open(os.path.join(stub, "__init__.py"), "w") as f:
        f.write("raise ImportError('No module named pyarrow (test stub)')\n")
    r = conv(["--out-dir", os.path.join(tmp, "x"), data], env={"PYTHONPATH": os.path.dirname(stub)})
    check(r.returncode == 1 and "needs the pyarrow package" in r.stderr and "pip install" in r.stderr,
          "without pyarrow: a clear error with the install command", r.stderr[-300:])
    try:
        import datasets  # noqa: F401
        print("note: the real `datasets` package is installed: its missing-package message is not checked")
    except ImportError:
        r = conv(["--out-dir", os.path.join(tmp, "x"), "--hf-dataset", "HuggingFaceFW/fineweb-edu",
                  "--hf-config", "sample-10BT", "--streaming"])
        check(r.returncode == 1 and "needs the Hugging Face `datasets` package" in r.stderr,
              "--hf-dataset without `datasets`: a clear error", r.stderr[-300:])

    # 7. the streaming path, against a stub `datasets` (3 shards of the ja rows)
    sd = os.path.join(tmp, "stub")
    os.makedirs(os.path.join(sd, "datasets"))
    with open(os.path.join(sd, "datasets", "__init__.py"), "w") as f:
        f.write(STUB_DATASETS)
    with open(os.path.join(sd, "rows.json"), "w", encoding="utf-8") as f:
        json.dump(ja_rows, f, ensure_ascii=False)
    env = {"PYTHONPATH": sd, "STUB_ROWS": os.path.join(sd, "rows.json")}
    o = os.path.join(tmp, "stream")
    hf = ["--out-dir", o, "--hf-dataset", "HuggingFaceFW/fineweb-edu", "--hf-config", "sample-10BT", "--streaming",
          "--docs-per-file", "16", "--batch-rows", "8"]
    # shard 1 is rows 34..67: 23 documents (rows 34..57) are written before the signal, 16 of
    # them in a finished file
    r = conv(hf, env=dict(env, STUB_KILL_AFTER="60"))
    names = sorted(read_out(o))
    check(r.returncode == 130 and names == ["fineweb-edu_sample-10BT_train__00000_00000.jsonl",
                                            "fineweb-edu_sample-10BT_train__00000_00001.jsonl"] and not stray(o),
          "stream: SIGTERM in shard 1 exits 130, shard 0 kept, no file of shard 1 (its finished one removed)",
          f"rc {r.returncode} {names} {r.stderr[-300:]}")
    r = conv(hf, env=env)
    got = [rec for recs in read_out(o).values() for rec in recs]
    check(r.returncode == 0 and "2 converted now, 1 already done" in r.stdout and
          [x["id"] for x in got] == [x["id"] for x in good(ja_rows)] and
          all(g["text"] == x["text"] for g, x in zip(got, good(ja_rows))) and report(o)["null_text"] == 2,
          "stream: the rerun converts shards 1 and 2; all 100 documents, in order, byte-exact; nulls counted",
          r.stdout[-300:] + r.stderr[-300:])
    r = conv(hf + ["--min-int-score", "3", "--force"], env=dict(env, STUB_DROP_COLUMN="int_score"))
    check(r.returncode == 1 and "--min-int-score needs a 'int_score' field" in r.stderr,
          "stream: a filter field missing from the records is an error", r.stderr[-300:])

    # 8. --pipeline: the JSONL goes through dev/data/pipeline into token shards
    if not os.access(PIPE, os.X_OK):
        check(False, "--pipeline", "dev/data/pipeline is not built (make dev/data/pipeline)")
    else:
        o = os.path.join(tmp, "pipe")
        r = conv(["--out-dir", o, "--quiet", "--pipeline", "--pipeline-args",
                  f"--lang ja --quiet --no-near-dedup --tokenizer-dir {os.path.join(DATA, 'gpt2')}", jadir])
        pr = os.path.join(o, "shards", "fineweb")
        ok = r.returncode == 0 and os.path.exists(pr + "_train_000000.bin")
        rep = json.load(open(pr + "_report.json")) if ok else {}
        st = rep.get("stages", [{}])
        check(ok and st[0].get("docs_in") == 100 and rep["bad_input"]["missing_text"]["count"] == 0 and
              st[-1].get("docs_out", 0) > 50,
              "--pipeline: all 100 documents read by the pipeline, token shards written",
              f"rc {r.returncode} {r.stderr[-300:]} {json.dumps(st)[:300]}")

    if failures == 0:
        shutil.rmtree(tmp)
    else:
        print(f"(files kept in {tmp})")
    return 1 if failures else 0


STUB_DATASETS = r'''
"""Test stub of the `datasets` API that scripts/fineweb_to_jsonl.py uses: load_dataset(...,
streaming=True) -> an iterable of dict rows with n_shards and shard(num_shards, index)."""
import json, os, signal

class _Stream:
    def __init__(self, rows, n):
        self.rows, self.n_shards = rows, n
    def shard(self, num_shards, index):
        assert num_shards == self.n_shards
        k = len(self.rows)
        return _Stream(self.rows[k * index // num_shards:k * (index + 1) // num_shards], 1)
    def __iter__(self):
        kill = int(os.environ.get("STUB_KILL_AFTER", "-1"))
        drop = os.environ.get("STUB_DROP_COLUMN")
        for r in self.rows:
            if r["_pos"] == kill:
                os.kill(os.getpid(), signal.SIGTERM)
            yield {k: v for k, v in r.items() if k != "_pos" and k != drop}

def load_dataset(name, config=None, split=None, streaming=False):
    assert streaming
    with open(os.environ["STUB_ROWS"], encoding="utf-8") as f:
        rows = json.load(f)
    for i, r in enumerate(rows):
        r["_pos"] = i
    return _Stream(rows, 3)
'''

if __name__ == "__main__":
    sys.exit(main())
