#!/usr/bin/env python3
"""
FineWeb / FineWeb-Edu / FineWeb-2 (Hugging Face parquet) -> the corpus pipeline's input JSONL
(dev/data/PIPELINE.md: one {"id", "text", "url", "dump"} object per line), optionally followed
by a run of dev/data/pipeline that turns the JSONL into llm.c token shards.

  # local parquet files: a file, a directory (searched recursively for *.parquet) or a glob
  .venv/bin/python scripts/fineweb_to_jsonl.py --out-dir out/fwedu_jsonl \\
      --min-int-score 3 data/fineweb-edu/sample/10BT
  # the same, then the pipeline (flags after --pipeline-args go to dev/data/pipeline)
  .venv/bin/python scripts/fineweb_to_jsonl.py --out-dir out/fwedu_jsonl data/fineweb-edu/sample/10BT \\
      --pipeline --pipeline-args "--lang en --threads 16" --pipeline-out-prefix out/fwedu
  # streaming through the `datasets` library (needs internet and `pip install datasets`)
  .venv/bin/python scripts/fineweb_to_jsonl.py --out-dir out/fwedu_jsonl \\
      --hf-dataset HuggingFaceFW/fineweb-edu --hf-config sample-10BT --streaming --max-docs 100000

Getting the files: `huggingface-cli download HuggingFaceFW/fineweb-edu --repo-type dataset
--include "sample/10BT/*" --local-dir data/fineweb-edu` (FineWeb's layout is
data/CC-MAIN-*/NNN_00000.parquet, the samples' sample/NNBT/NNN_00000.parquet). Downloading first
is the robust way for large amounts: conversion then resumes per file.

Reading: pyarrow, one batch of rows at a time (at most a row group in memory), only the needed
columns (text, id, url, dump, and those the filters use). Each input unit (a parquet file, or
one shard of a streamed dataset) becomes OUT/<tag>_00000.jsonl, _00001.jsonl, ... with at most
--docs-per-file documents each; each file is written to a temporary file, fsynced and renamed.
OUT/fineweb_state.json records the units that are complete (with the input's size and mtime,
and the outputs' sizes); a rerun skips them and converts the rest. A unit that fails or is
interrupted leaves no output file behind. --max-docs / --max-chars cap the total over all units
(in input order); the unit where the cap is reached is recorded as partial and redone by a
rerun, so reruns with the same options give the same files.

Rows: a null or empty text is not written, and is counted and reported with its first positions
(file:row); invalid UTF-8 in a text is replaced by U+FFFD and counted. Filters (in this order,
the first one failing is the reason): --language, --min-language-score, --min-int-score,
--min-score; a row whose filter column is null fails that filter. Errors that stop the run
(exit 1, naming the file): not a parquet file or a corrupt one, no `text` column or one that
is not a string column, a filter column that is missing. --skip-bad-files lists such files
and goes on.
"""
import argparse
import fcntl
import glob
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIPELINE = os.path.join(REPO, "dev", "data", "pipeline")
STATE_NAME = "fineweb_state.json"
STATE_VERSION = 1
FIRST_POSITIONS = 5
PYARROW_HINT = ('.venv/bin/python -m pip install "pyarrow<26"  (pyarrow 26 refuses NumPy < 2, and the '
                'venv sees Debian\'s NumPy 1.24; scripts/setup.sh installs it)')


class InputError(Exception):
    """A problem with one input (file or stream shard): the message names it."""


class Stop(BaseException):
    """SIGINT / SIGTERM."""


def die(msg):
    print(f"fineweb_to_jsonl: error: {msg}", file=sys.stderr)
    sys.exit(1)


def import_pyarrow():
    # pyarrow's default allocator on Linux (mimalloc) kept growing the process by ~200 MB per GB
    # of parquet read here (RSS 0.8 GB after 0.5 GB); jemalloc stayed flat at ~0.2 GB. An
    # explicit ARROW_DEFAULT_MEMORY_POOL wins.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc" if sys.platform.startswith("linux") else "system")
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        die(f"reading parquet needs the pyarrow package, which could not be imported ({e}).\n"
            f"  install it with: {PYARROW_HINT}")
    return pyarrow, pyarrow.parquet


def import_datasets():
    try:
        import datasets
    except ImportError as e:
        die(f"--hf-dataset needs the Hugging Face `datasets` package, which could not be imported ({e}).\n"
            "  install it with: .venv/bin/python -m pip install datasets   (or download the parquet\n"
            "  files with huggingface-cli and pass them as inputs: that is resumable per file)")
    return datasets


# ---------------------------------------------------------------------------------------------
# output


def fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path, data):
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    fsync_dir(os.path.dirname(path) or ".")


class ShardWriter:
    """Writes OUT/<tag>_NNNNN.jsonl files of at most `per_file` lines, each through a temporary
    file that is fsynced and renamed when it is full (or at close()). abort() removes the
    temporary file and every file this writer has renamed: a unit's output is all or nothing."""

    def __init__(self, out_dir, tag, per_file):
        self.out_dir, self.tag, self.per_file = out_dir, tag, per_file
        self.index, self.lines, self.f, self.tmp = 0, 0, None, None
        self.done = []  # (name, size)

    def name(self, i):
        return f"{self.tag}_{i:05d}.jsonl"

    def write(self, line):
        if self.f is None:
            self.tmp = os.path.join(self.out_dir, f".{self.name(self.index)}.tmp.{os.getpid()}")
            self.f = open(self.tmp, "wb")
        self.f.write(line)
        self.lines += 1
        if self.lines == self.per_file:
            self._finish()

    def _finish(self):
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        self.f = None
        final = os.path.join(self.out_dir, self.name(self.index))
        os.replace(self.tmp, final)
        self.tmp = None
        self.done.append((self.name(self.index), os.path.getsize(final)))
        self.index += 1
        self.lines = 0

    def close(self):
        if self.f is not None:
            self._finish()
        fsync_dir(self.out_dir)
        return self.done

    def abort(self):
        if self.f is not None:
            self.f.close()
            self.f = None
        if self.tmp and os.path.exists(self.tmp):
            os.unlink(self.tmp)
        for name, _ in self.done:
            p = os.path.join(self.out_dir, name)
            if os.path.exists(p):
                os.unlink(p)
        self.done = []


def remove_stale_outputs(out_dir, tag, key, state):
    """Files named <tag>_NNNNN.jsonl left by an interrupted or partial run of this unit. Refuses
    when a complete unit of another input (an earlier run) owns such names."""
    pat = re.compile(re.escape(tag) + r"_\d{5}\.jsonl$")
    for k, u in state["units"].items():
        if k != key and any(pat.match(n) for n, _ in u["outputs"]):
            raise InputError(f"{u['path']} (converted earlier into {out_dir}) and this input would both "
                             f"write {tag}_NNNNN.jsonl: use another --out-dir")
    for name in os.listdir(out_dir):
        if pat.match(name):
            os.unlink(os.path.join(out_dir, name))


# ---------------------------------------------------------------------------------------------
# inputs


def expand_inputs(args):
    """Parquet paths, sorted within each argument, in argument order, without repeats."""
    paths = []
    for a in args:
        if os.path.isdir(a):
            found = sorted(glob.glob(os.path.join(glob.escape(a), "**", "*.parquet"), recursive=True))
            if not found:
                die(f"{a}: a directory with no *.parquet file in it (searched recursively)")
            paths += found
        elif os.path.exists(a):
            paths.append(a)
        elif glob.has_magic(a):
            found = sorted(p for p in glob.glob(a, recursive=True) if os.path.isfile(p))
            if not found:
                die(f"{a}: the pattern matches no file")
            paths += found
        else:
            die(f"{a}: no such file or directory")
    seen, out = set(), []
    for p in paths:
        r = os.path.realpath(p)
        if r not in seen:
            seen.add(r)
            out.append(p)
    return out


def file_tags(paths):
    """Output name stems: the file's folder and name, '/' -> '__', without .parquet
    (data/CC-MAIN-2013-20/000_00000.parquet -> CC-MAIN-2013-20__000_00000); more folders
    when two inputs would get the same stem."""
    parts = [os.path.realpath(p).split(os.sep) for p in paths]
    for k in range(2, max((len(x) for x in parts), default=2) + 1):
        tags = []
        for x in parts:
            rel = "__".join(y for y in x[-k:] if y)
            rel = re.sub(r"\.parquet$", "", rel)
            tags.append(re.sub(r"[^A-Za-z0-9._-]", "_", rel).lstrip(".") or "input")
        if len(set(tags)) == len(tags):
            return tags
    die("cannot give the inputs distinct output names")


class ParquetUnit:
    def __init__(self, path, tag):
        self.path, self.tag = path, tag
        self.key = "file:" + os.path.realpath(path)
        st = os.stat(path)
        self.fingerprint = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def batches(self, want, required, batch_rows):
        """Yields (first_row, {column: python list}) for the columns in `want` that exist;
        raises InputError for the problems that make the file unusable."""
        pa, pq = import_pyarrow()
        try:
            try:
                pf = pq.ParquetFile(self.path, page_checksum_verification=True)
            except TypeError:  # pyarrow < 13
                pf = pq.ParquetFile(self.path)
        except Exception as e:
            raise InputError(f"{self.path}: not a parquet file, or a corrupt one ({type(e).__name__}: {e})")
        schema = pf.schema_arrow
        names = set(schema.names)
        if "text" not in names:
            raise InputError(f"{self.path}: no 'text' column (columns: {', '.join(schema.names)})")
        ttype = schema.field("text").type
        if not (pa.types.is_string(ttype) or pa.types.is_large_string(ttype)):
            raise InputError(f"{self.path}: the 'text' column has type {ttype}, expected a string column")
        for col, why in required.items():
            if col not in names:
                raise InputError(f"{self.path}: {why} needs a '{col}' column, and this file has none "
                                 f"(columns: {', '.join(schema.names)})")
        cols = [c for c in want if c in names]
        row = 0
        rg = 0
        try:
            for rg in range(pf.num_row_groups):
                for b in pf.iter_batches(batch_size=batch_rows, row_groups=[rg], columns=cols):
                    yield row, batch_to_lists(b, cols, pa)
                    row += b.num_rows
        except InputError:
            raise
        except (OSError, ValueError, KeyError, IndexError) as e:
            raise InputError(f"{self.path}: corrupt data in row group {rg} of {pf.num_row_groups} "
                             f"(after row {row}): {type(e).__name__}: {e}")
        except Exception as e:  # pyarrow.lib.ArrowException subclasses
            if type(e).__module__.startswith("pyarrow"):
                raise InputError(f"{self.path}: corrupt data in row group {rg} of {pf.num_row_groups} "
                                 f"(after row {row}): {type(e).__name__}: {e}")
            raise


def batch_to_lists(b, cols, pa):
    out = {}
    for c in cols:
        arr = b.column(c)
        if c == "text":
            try:
                out[c] = arr.to_pylist()
            except UnicodeDecodeError:
                # parquet strings are not validated on write: decode byte by byte, replace, count
                raw = arr.cast(pa.large_binary()).to_pylist()
                vals = []
                for v in raw:
                    if v is None:
                        vals.append(None)
                    else:
                        try:
                            vals.append(v.decode("utf-8"))
                        except UnicodeDecodeError:
                            vals.append(BadUTF8(v.decode("utf-8", errors="replace")))
                out[c] = vals
        else:
            try:
                out[c] = arr.to_pylist()
            except UnicodeDecodeError:
                out[c] = [None if v is None else v.decode("utf-8", errors="replace")
                          for v in arr.cast(pa.large_binary()).to_pylist()]
    return out


class BadUTF8(str):
    """A text that held invalid UTF-8 (already replaced by U+FFFD)."""


class StreamUnit:
    """One shard of a `datasets` streaming IterableDataset (one underlying file when the
    dataset can be split by its files), or the whole stream."""

    def __init__(self, ds, key, tag, label):
        self.ds, self.key, self.tag, self.label = ds, key, tag, label
        self.path = label
        self.fingerprint = {}

    def batches(self, want, required, batch_rows):
        row = 0
        cols = None
        buf = []
        try:
            for rec in self.ds:
                if cols is None:
                    if "text" not in rec:
                        raise InputError(f"{self.label}: the records have no 'text' field (fields: {', '.join(rec)})")
                    for col, why in required.items():
                        if col not in rec:
                            raise InputError(f"{self.label}: {why} needs a '{col}' field, and these records have none")
                    cols = [c for c in want if c in rec]
                buf.append(rec)
                if len(buf) == batch_rows:
                    yield row, {c: [r.get(c) for r in buf] for c in cols}
                    row += len(buf)
                    buf = []
        except InputError:
            raise
        except (KeyboardInterrupt, Stop):
            raise
        except Exception as e:
            raise InputError(f"{self.label}: reading the stream failed after row {row + len(buf)}: "
                             f"{type(e).__name__}: {e}")
        if buf:
            yield row, {c: [r.get(c) for r in buf] for c in cols}


def stream_units(a):
    datasets = import_datasets()
    name = a.hf_dataset
    try:
        ds = datasets.load_dataset(name, a.hf_config, split=a.hf_split, streaming=True)
    except Exception as e:
        die(f"could not open {name} (config {a.hf_config}, split {a.hf_split}) with datasets.load_dataset: "
            f"{type(e).__name__}: {e}")
    base = re.sub(r"[^A-Za-z0-9._-]", "_", f"{name.split('/')[-1]}_{a.hf_config or 'default'}_{a.hf_split}")
    label = f"hf:{name}/{a.hf_config}/{a.hf_split}"
    n = getattr(ds, "n_shards", None)
    if isinstance(n, int) and n > 1 and hasattr(ds, "shard"):
        return [StreamUnit(ds.shard(num_shards=n, index=i), f"{label}#{i}/{n}", f"{base}__{i:05d}",
                           f"{label} shard {i} of {n}") for i in range(n)]
    print(f"note: {label} cannot be split into shards: it is one unit, and an interrupted "
          "conversion starts it again", file=sys.stderr)
    return [StreamUnit(ds, label, base, label)]


# ---------------------------------------------------------------------------------------------
# conversion


class Stats:
    KEYS = ("rows", "kept", "chars", "null_text", "empty_text", "invalid_utf8")

    def __init__(self, d=None):
        d = d or {}
        for k in self.KEYS:
            setattr(self, k, d.get(k, 0))
        self.filtered = dict(d.get("filtered", {}))
        self.first = {k: list(v) for k, v in d.get("first", {}).items()}

    def note(self, kind, where):
        lst = self.first.setdefault(kind, [])
        if len(lst) < FIRST_POSITIONS:
            lst.append(where)

    def add(self, o):
        for k in self.KEYS:
            setattr(self, k, getattr(self, k) + getattr(o, k))
        for k, v in o.filtered.items():
            self.filtered[k] = self.filtered.get(k, 0) + v
        for k, lst in o.first.items():
            for w in lst:
                self.note(k, w)

    def as_dict(self):
        d = {k: getattr(self, k) for k in self.KEYS}
        d["filtered"] = dict(self.filtered)
        d["first"] = {k: list(v) for k, v in self.first.items()}
        return d


FILTER_FLAGS = {"language": "--language", "language_score": "--min-language-score",
                "int_score": "--min-int-score", "score": "--min-score"}


def make_filters(a):
    """[(reason, column, predicate)], in the order they are applied."""
    f = []
    if a.language:
        langs = frozenset(x.strip() for x in a.language.split(",") if x.strip())
        f.append(("language", "language", lambda v, s=langs: v in s))
    for reason, t in (("language_score", a.min_language_score), ("int_score", a.min_int_score),
                      ("score", a.min_score)):
        if t is not None:
            f.append((reason, reason, lambda v, t=t: v is not None and v >= t))
    return f


def convert_unit(unit, a, filters, out_dir, budget, state):
    """Converts one unit. budget: {"docs": left or None, "chars": left or None}, updated.
    Returns (stats, outputs, complete)."""
    want = ["text", "id", "url", "dump"] + [c for _, c, _ in filters]
    required = {c: FILTER_FLAGS[r] for r, c, _ in filters}
    st = Stats()
    w = ShardWriter(out_dir, unit.tag, a.docs_per_file)
    complete = True
    dumps = not a.no_dump
    try:
        remove_stale_outputs(out_dir, unit.tag, unit.key, state)
        for first_row, cols in unit.batches(want, required, a.batch_rows):
            texts = cols["text"]
            ids, urls, dps = cols.get("id"), cols.get("url"), cols.get("dump")
            n = len(texts)
            stop = False
            for i in range(n):
                row = first_row + i
                t = texts[i]
                if t is None:
                    st.null_text += 1
                    st.note("null_text", f"{unit.path}:{row}")
                    st.rows += 1
                    continue
                if not isinstance(t, str):
                    raise InputError(f"{unit.path}: row {row}: 'text' is a {type(t).__name__}, not a string")
                if not t:
                    st.empty_text += 1
                    st.note("empty_text", f"{unit.path}:{row}")
                    st.rows += 1
                    continue
                reason = None
                for r, c, pred in filters:
                    try:
                        passed = pred(cols[c][i])
                    except TypeError:
                        raise InputError(f"{unit.path}: row {row}: '{c}' holds {cols[c][i]!r}, which "
                                         f"cannot be compared with the {FILTER_FLAGS[r]} value")
                    if not passed:
                        reason = r
                        break
                if reason is not None:
                    st.filtered[reason] = st.filtered.get(reason, 0) + 1
                    st.rows += 1
                    continue
                if budget["docs"] is not None and budget["docs"] <= 0:
                    stop = True
                    break
                nch = len(t)
                if budget["chars"] is not None and nch > budget["chars"]:
                    stop = True
                    break
                st.rows += 1
                if isinstance(t, BadUTF8):
                    st.invalid_utf8 += 1
                    st.note("invalid_utf8", f"{unit.path}:{row}")
                    t = str(t)
                did = ids[i] if ids is not None else None
                rec = {"id": did if did is not None else f"{unit.tag}:{row}", "text": t}
                u = urls[i] if urls is not None else None
                if u is not None:
                    rec["url"] = u
                if dumps and dps is not None and dps[i] is not None:
                    rec["dump"] = dps[i]
                w.write((json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8"))
                st.kept += 1
                st.chars += nch
                if budget["docs"] is not None:
                    budget["docs"] -= 1
                if budget["chars"] is not None:
                    budget["chars"] -= nch
            if stop:
                complete = False
                break
        outputs = w.close()
    except BaseException:
        w.abort()
        raise
    return st, outputs, complete


# ---------------------------------------------------------------------------------------------
# state


def options_key(a):
    """The options that change what a complete unit's output holds."""
    return {"docs_per_file": a.docs_per_file, "language": a.language, "min_language_score": a.min_language_score,
            "min_int_score": a.min_int_score, "min_score": a.min_score, "dump": not a.no_dump}


def load_state(path):
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            s = json.load(f)
        if s.get("version") != STATE_VERSION or not isinstance(s.get("units"), dict):
            raise ValueError("unknown layout")
        return s
    except (OSError, ValueError) as e:
        die(f"{path}: unreadable state file ({e}); remove it (or use --force) to convert everything again")


def unit_is_done(state, unit, out_dir):
    u = state["units"].get(unit.key)
    if not u or not u.get("complete"):
        return None
    if unit.fingerprint and u.get("input") != unit.fingerprint:
        return None
    for name, size in u["outputs"]:
        p = os.path.join(out_dir, name)
        if not os.path.isfile(p) or os.path.getsize(p) != size:
            return None
    return u


def save_state(path, state):
    write_atomic(path, (json.dumps(state, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="fineweb_to_jsonl.py",
        description="FineWeb / FineWeb-Edu parquet (local files, or `datasets` streaming) -> JSONL for "
                    "dev/data/pipeline, sharded, atomic and resumable; optionally runs the pipeline.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Outputs: OUT/<input>_NNNNN.jsonl, OUT/fineweb_state.json (the complete units; a rerun "
               "skips them), OUT/fineweb_report.json (the counts of the last run, over all units). "
               "Exit status: 0 done, 1 an error (the message names the file) or no document written, "
               "2 bad arguments, 130 interrupted.")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="parquet files, directories (searched recursively for *.parquet) or globs")
    p.add_argument("--out-dir", required=True, help="folder for the JSONL files and the state (created)")
    g = p.add_argument_group("Hugging Face datasets (streaming; needs `pip install datasets` and internet)")
    g.add_argument("--hf-dataset", metavar="NAME", help="e.g. HuggingFaceFW/fineweb-edu (instead of INPUTs)")
    g.add_argument("--hf-config", metavar="C", help="e.g. sample-10BT, CC-MAIN-2024-10, default")
    g.add_argument("--hf-split", default="train", metavar="S", help="split (default train)")
    g.add_argument("--streaming", action="store_true",
                   help="stream (the only mode supported: to convert a whole dataset, download its "
                        "parquet files and pass them as INPUTs)")
    g = p.add_argument_group("limits and filters")
    g.add_argument("--max-docs", type=int, metavar="N", help="stop after N documents written (over all inputs)")
    g.add_argument("--max-chars", type=int, metavar="N",
                   help="stop before the document that would take the characters written past N")
    g.add_argument("--language", metavar="L[,L]",
                   help="keep rows whose `language` is one of these (FineWeb: en; FineWeb-2: jpn, ...)")
    g.add_argument("--min-language-score", type=float, metavar="F", help="keep rows with language_score >= F")
    g.add_argument("--min-int-score", type=int, metavar="N",
                   help="keep rows with int_score >= N (FineWeb-Edu's classifier score, 0..5; FineWeb-Edu "
                        "itself is int_score >= 3)")
    g.add_argument("--min-score", type=float, metavar="F", help="keep rows with score >= F (FineWeb-Edu)")
    g = p.add_argument_group("output")
    g.add_argument("--docs-per-file", type=int, default=100000, metavar="N",
                   help="documents per JSONL file (default 100000)")
    g.add_argument("--batch-rows", type=int, default=1024, metavar="N",
                   help="rows read at a time (default 1024; memory is about a row group or N rows)")
    g.add_argument("--no-dump", action="store_true", help='leave the "dump" field out of the records')
    g.add_argument("--force", action="store_true", help="ignore the state file: convert everything again")
    g.add_argument("--skip-bad-files", action="store_true",
                   help="list unreadable inputs and go on (default: stop at the first, exit 1)")
    g.add_argument("--quiet", action="store_true", help="no per-unit progress lines")
    g = p.add_argument_group("then the pipeline (dev/data/pipeline; `make dev/data/pipeline`)")
    g.add_argument("--pipeline", action="store_true",
                   help="run dev/data/pipeline on every output file of the complete and partial units")
    g.add_argument("--pipeline-args", default="", metavar="'ARGS'",
                   help="extra pipeline flags, one string, e.g. \"--lang ja --threads 16\"")
    g.add_argument("--pipeline-out-prefix", metavar="P",
                   help="shards P_train_000000.bin, ... (default OUT/shards/fineweb); report P_report.json")
    a = p.parse_args(argv)
    if a.hf_dataset and a.inputs:
        p.error("give either INPUT files or --hf-dataset, not both")
    if not a.hf_dataset and not a.inputs:
        p.error("no input: give parquet files / folders / globs, or --hf-dataset NAME")
    if not a.hf_dataset and (a.hf_config or a.streaming):
        p.error("--hf-config / --streaming go with --hf-dataset")
    if a.docs_per_file < 1:
        p.error("--docs-per-file must be at least 1")
    if a.batch_rows < 1:
        p.error("--batch-rows must be at least 1")
    for k in ("max_docs", "max_chars"):
        v = getattr(a, k)
        if v is not None and v < 0:
            p.error(f"--{k.replace('_', '-')} must be >= 0")
    if a.language is not None and not a.language.strip(", "):
        p.error("--language needs a value")
    if a.pipeline_args and not a.pipeline:
        p.error("--pipeline-args goes with --pipeline")
    try:
        a.pipeline_argv = shlex.split(a.pipeline_args)
    except ValueError as e:
        p.error(f"--pipeline-args: {e}")
    return a


def on_signal(signum, frame):
    raise Stop(signal.Signals(signum).name)


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if a.pipeline and not os.access(PIPELINE, os.X_OK):
        die(f"--pipeline: {PIPELINE} is not built (make dev/data/pipeline)")
    if a.hf_dataset:
        units = stream_units(a)
    else:
        import_pyarrow()  # fail early, with the hint
        paths = expand_inputs(a.inputs)
        units = [ParquetUnit(p, t) for p, t in zip(paths, file_tags(paths))]
    os.makedirs(a.out_dir, exist_ok=True)
    out_dir = a.out_dir
    lock = open(os.path.join(out_dir, ".fineweb_lock"), "a")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        die(f"another conversion is writing into {out_dir}")
    state_path = os.path.join(out_dir, STATE_NAME)
    state = None if a.force else load_state(state_path)
    if state is not None and state.get("options") != options_key(a):
        die(f"{out_dir} was converted with other options ({json.dumps(state.get('options'))}, now "
            f"{json.dumps(options_key(a))}): use another --out-dir, or --force to convert everything again")
    if state is None:
        state = {"version": STATE_VERSION, "options": options_key(a), "units": {}}
    for k in [k for k in state["units"] if not state["units"][k].get("complete")]:
        del state["units"][k]  # partial units are redone

    filters = make_filters(a)
    budget = {"docs": a.max_docs, "chars": a.max_chars}
    total = Stats()
    done_before = converted = 0
    bad = []
    outputs = []
    capped = None
    t0 = time.time()
    try:
        for unit in units:
            if any(v is not None and v <= 0 for v in budget.values()):
                capped = capped or "before " + unit.path
                break
            prev = unit_is_done(state, unit, out_dir)
            if prev is not None:
                s = Stats(prev["stats"])
                total.add(s)
                outputs += [n for n, _ in prev["outputs"]]
                done_before += 1
                if budget["docs"] is not None:
                    budget["docs"] -= s.kept
                if budget["chars"] is not None:
                    budget["chars"] -= s.chars
                continue
            state["units"].pop(unit.key, None)
            t1 = time.time()
            try:
                s, outs, complete = convert_unit(unit, a, filters, out_dir, budget, state)
            except InputError as e:
                if not a.skip_bad_files:
                    save_state(state_path, state)
                    die(str(e) + "\n  (no output was kept for this input; the inputs converted before it are "
                        "recorded, a rerun skips them)")
                print(f"fineweb_to_jsonl: skipped: {e}", file=sys.stderr)
                bad.append(str(e))
                continue
            total.add(s)
            outputs += [n for n, _ in outs]
            converted += 1
            state["units"][unit.key] = {"path": unit.path, "input": unit.fingerprint, "complete": complete,
                                        "outputs": outs, "stats": s.as_dict()}
            save_state(state_path, state)
            if not a.quiet:
                dt = time.time() - t1
                print(f"{unit.path}: {s.rows} rows -> {s.kept} docs in {len(outs)} file(s), "
                      f"{s.chars / 1e6:.1f}M chars, {dt:.1f} s ({s.chars / 1e6 / max(dt, 1e-9):.1f}M chars/s)"
                      + ("" if complete else " [cap reached: partial]"), flush=True)
            if not complete:
                capped = unit.path
                break
    except Stop as e:
        save_state(state_path, state)
        print(f"fineweb_to_jsonl: interrupted ({e}); the complete inputs are recorded, a rerun goes on",
              file=sys.stderr)
        sys.exit(130)

    report = {"inputs": len(units), "converted_now": converted, "skipped_done": done_before,
              "bad_inputs": bad, "cap_reached": capped, "outputs": outputs, **total.as_dict(),
              "seconds": round(time.time() - t0, 3)}
    write_atomic(os.path.join(out_dir, "fineweb_report.json"),
                 (json.dumps(report, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    print(f"units: {len(units)} ({converted} converted now, {done_before} already done"
          + (f", {len(bad)} unreadable and skipped" if bad else "") + ")"
          + (f"; cap reached at {capped}" if capped else ""))
    print(f"rows {total.rows}: kept {total.kept} docs ({total.chars} chars) in {len(outputs)} file(s); "
          f"filtered {json.dumps(total.filtered)}; null text {total.null_text}, empty text {total.empty_text}, "
          f"invalid UTF-8 replaced {total.invalid_utf8}")
    for kind, lst in total.first.items():
        print(f"  {kind} first at: {', '.join(lst)}", file=sys.stderr)
    for e in bad:
        print(f"  unreadable: {e}", file=sys.stderr)
    if not outputs:
        die("no document was written")

    paths = [os.path.join(out_dir, n) for n in outputs]
    prefix = a.pipeline_out_prefix or os.path.join(out_dir, "shards", "fineweb")
    cmd = [PIPELINE] + a.pipeline_argv + ["--out-prefix", prefix, "--report", prefix + "_report.json"] + paths
    if not a.pipeline:
        shown = " ".join(shlex.quote(x) for x in [os.path.relpath(PIPELINE)] + cmd[1:len(cmd) - len(paths)])
        print(f"next: {shown} {shlex.quote(out_dir)}/*.jsonl   (or rerun with --pipeline; add --lang ja for "
              "Japanese; dev/data/pipeline --help for its filters)")
        return 0
    if os.path.dirname(prefix):
        os.makedirs(os.path.dirname(prefix), exist_ok=True)
    print("running: " + " ".join(shlex.quote(x) for x in cmd[:len(cmd) - len(paths)]) + f" <{len(paths)} files>",
          flush=True)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pipeline gets it and cleans up
    r = subprocess.run(cmd)
    if r.returncode != 0:
        die(f"dev/data/pipeline exited with status {r.returncode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
