#!/usr/bin/env python3
"""
Our llm.c model checkpoint (version 3 = fp32 or 5 = bf16) -> a Hugging Face GPT-2 folder.

    hf_export.py IN.bin OUTDIR [--tokenizer DIR|FILE|ENC,MERGES|none] [--dtype float32|bfloat16] [--force]

OUTDIR gets config.json (GPT2LMHeadModel), generation_config.json, model.safetensors (GPT-2's
tensor names and Conv1D layout, the LM head tied to wte and not stored) and, when the
vocabulary is known, vocab.json + merges.txt + tokenizer_config.json + special_tokens_map.json.
dev/infer/HF.md has the tensor mapping, every config field, and what is refused.

--dtype: float32 or bfloat16 (round to nearest even, as llmc/checkpoint.h does); the default
is the checkpoint's own precision (version 3 -> float32, version 5 -> bfloat16), lossless.
--tokenizer: a folder holding vocab.json + merges.txt or GPT-2's encoder.json + vocab.bpe; the
two files as ENCODER,MERGES; a tiktoken rank file (e.g. from dev/data/bpe_train), converted to
vocab.json + merges.txt; or "none". Default: GPT-2's files from ../shared/data/gpt2 (or
$LLMC_SHARED_DATA/gpt2) when V = 50257, otherwise no tokenizer (a checkpoint does not say
which vocabulary it was trained with).

Everything is written into a temporary folder beside OUTDIR, fsynced, then renamed to OUTDIR.
An existing OUTDIR that is not empty is refused unless --force. A bad checkpoint (magic,
version, shape fields, size, non-finite values) is refused with one message naming the file.
Needs only numpy: the safetensors file is written by hand (8-byte little-endian header length,
the JSON header, then the raw little-endian data).

This file is also the small library that hf_import.py uses (checkpoint and safetensors I/O,
the name/layout mapping).
"""
import argparse
import base64
import json
import os
import shutil
import stat
import sys

import numpy as np

CHECKPOINT_MAGIC = 20240326
LLMC_NAMES = ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb",
              "ln2w", "ln2b", "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
TESTED_TRANSFORMERS = "4.36.2"
EOT_TEXT = "<|endoftext|>"
GPT2_V = 50257
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Refuse(Exception):
    """A refusal: the message names the file and what is wrong."""


# ---------------------------------------------------------------- llm.c checkpoint

def llmc_shapes(maxT, L, C, Vp):
    """The 16 parameter tensors of a checkpoint, in file order, as (name, shape)."""
    return list(zip(LLMC_NAMES, [
        (Vp, C), (maxT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C),
        (L, C), (L, C), (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]))


def validate_config(cfg, where):
    """The same limits as gpt2_config_validate() in llmc/checkpoint.h."""
    maxT, V, L, NH, C, Vp = (cfg[k] for k in ("maxT", "V", "L", "NH", "C", "Vp"))
    if not 0 < maxT <= (1 << 20):
        raise Refuse(f"{where}: bad maxT {maxT}")
    if not 0 < V <= (1 << 24):
        raise Refuse(f"{where}: bad vocabulary size V={V}")
    if Vp < V or Vp > (1 << 24):
        raise Refuse(f"{where}: padded vocabulary Vp={Vp} is smaller than V={V} or too large")
    if not 0 < L <= 1024:
        raise Refuse(f"{where}: bad number of layers L={L}")
    if NH <= 0 or C <= 0 or C > (1 << 16):
        raise Refuse(f"{where}: bad heads NH={NH} or channels C={C}")
    if C % NH:
        raise Refuse(f"{where}: channels C={C} are not divisible by heads NH={NH}")


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """Round to nearest even, NaN stays NaN: float_to_bf16() of llmc/checkpoint.h."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    out = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    nan = (b & 0x7FFFFFFF) > 0x7F800000
    if nan.any():
        out[nan] = ((b[nan] >> 16) | 0x40).astype(np.uint16)
    return out


def check_regular_input(path):
    try:
        st = os.stat(path)
    except OSError as e:
        raise Refuse(f"{path}: cannot open: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        raise Refuse(f"{path}: not a regular file")
    return st.st_size


def read_checkpoint(path):
    """-> (cfg dict with maxT V L NH C Vp version, {name: float32 array of its shape}).
    Version 5 (bf16) is widened exactly. Refuses anything that llmc/checkpoint.h would."""
    size = check_regular_input(path)
    if size < 1024:
        raise Refuse(f"{path}: file is {size} bytes, too short for the 1024-byte model checkpoint header")
    header = np.fromfile(path, dtype="<i4", count=256)
    if header[0] != CHECKPOINT_MAGIC:
        raise Refuse(f"{path}: bad magic {header[0]} in model checkpoint header (expected {CHECKPOINT_MAGIC}): "
                     f"not a model checkpoint")
    version = int(header[1])
    if version not in (3, 5):
        raise Refuse(f"{path}: unsupported model checkpoint version {version} (supported: 3 = fp32, 5 = bf16)")
    cfg = dict(zip(("maxT", "V", "L", "NH", "C", "Vp"), (int(v) for v in header[2:8])))
    cfg["version"] = version
    validate_config(cfg, path)
    shapes = llmc_shapes(cfg["maxT"], cfg["L"], cfg["C"], cfg["Vp"])
    n = sum(int(np.prod(s)) for _, s in shapes)
    elem = 4 if version == 3 else 2
    expected = 1024 + n * elem
    if size != expected:
        raise Refuse(f"{path}: file is {'truncated' if size < expected else 'too long'}: {size} bytes, but the "
                     f"header's shape (L={cfg['L']} C={cfg['C']} NH={cfg['NH']} Vp={cfg['Vp']} maxT={cfg['maxT']}) "
                     f"needs {expected}")
    raw = np.memmap(path, dtype="<f4" if version == 3 else "<u2", mode="r", offset=1024, shape=(n,))
    params, off = {}, 0
    for name, shape in shapes:
        k = int(np.prod(shape))
        chunk = raw[off:off + k]
        arr = chunk.view(np.float32) if version == 3 else bf16_bits_to_f32(chunk)  # v3: no copy
        params[name] = arr.reshape(shape)
        off += k
    for name, _ in shapes:
        t = params[name] if name != "wte" else params[name][:cfg["V"]]
        if not np.isfinite(t).all():
            bad = int(np.argmin(np.isfinite(t).ravel()))
            raise Refuse(f"{path}: parameter tensor {name} holds a non-finite value (NaN or Inf) at flat index {bad}")
    return cfg, params


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


def write_checkpoint(path, cfg, params, version):
    """Atomic (temp file beside it, fsync, rename): version 3 (fp32) or 5 (bf16, nearest even)."""
    header = np.zeros(256, dtype="<i4")
    header[:8] = [CHECKPOINT_MAGIC, version, cfg["maxT"], cfg["V"], cfg["L"], cfg["NH"], cfg["C"], cfg["Vp"]]
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(header.tobytes())
            for name, shape in llmc_shapes(cfg["maxT"], cfg["L"], cfg["C"], cfg["Vp"]):
                t = np.ascontiguousarray(params[name], dtype=np.float32)
                assert t.shape == tuple(shape), (name, t.shape, shape)
                f.write(t.astype("<f4").tobytes() if version == 3 else f32_to_bf16_bits(t).astype("<u2").tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


# ---------------------------------------------------------------- the name / layout mapping

def hf_layout(L, C, V, maxT, prefix="transformer."):
    """GPT-2's tensors as (hf name, hf shape, llm.c name, layer or None, transposed), in the
    order GPT2LMHeadModel.state_dict() lists them. Conv1D weights are (in, out): the transpose
    of our (out, in) matrices."""
    p = prefix
    out = [(p + "wte.weight", (V, C), "wte", None, False), (p + "wpe.weight", (maxT, C), "wpe", None, False)]
    for i in range(L):
        h = f"{p}h.{i}."
        out += [
            (h + "ln_1.weight", (C,), "ln1w", i, False), (h + "ln_1.bias", (C,), "ln1b", i, False),
            (h + "attn.c_attn.weight", (C, 3 * C), "qkvw", i, True), (h + "attn.c_attn.bias", (3 * C,), "qkvb", i, False),
            (h + "attn.c_proj.weight", (C, C), "attprojw", i, True), (h + "attn.c_proj.bias", (C,), "attprojb", i, False),
            (h + "ln_2.weight", (C,), "ln2w", i, False), (h + "ln_2.bias", (C,), "ln2b", i, False),
            (h + "mlp.c_fc.weight", (C, 4 * C), "fcw", i, True), (h + "mlp.c_fc.bias", (4 * C,), "fcb", i, False),
            (h + "mlp.c_proj.weight", (4 * C, C), "fcprojw", i, True), (h + "mlp.c_proj.bias", (C,), "fcprojb", i, False),
        ]
    out += [(p + "ln_f.weight", (C,), "lnfw", None, False), (p + "ln_f.bias", (C,), "lnfb", None, False)]
    return out


# ---------------------------------------------------------------- safetensors by hand

ST_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "F64": np.dtype("<f8"), "BF16": np.dtype("<u2"),
             "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
             "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
             "BOOL": np.dtype("u1")}
ST_ITEMSIZE = {**{k: v.itemsize for k, v in ST_DTYPES.items()}, "F8_E4M3": 1, "F8_E5M2": 1}
ST_MAX_HEADER = 100 * 1000 * 1000


def write_safetensors(f, tensors, metadata):
    """tensors: list of (name, dtype "F32" | "BF16", shape, producer) where producer() returns the
    little-endian bytes, produced one tensor at a time (a big model is never copied whole)."""
    header, off = {}, 0
    for name, dtype, shape, _ in tensors:
        n = int(np.prod(shape)) * ST_ITEMSIZE[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the data starts 8-aligned, as the safetensors library writes it
    f.write(len(blob).to_bytes(8, "little"))
    f.write(blob)
    for name, dtype, shape, producer in tensors:
        data = producer()
        assert len(data) == header[name]["data_offsets"][1] - header[name]["data_offsets"][0], name
        f.write(data)


class SafeTensorsFile:
    """Reads a .safetensors file with numpy only; validates the header and every entry's offsets."""

    def __init__(self, path):
        self.path = path
        size = check_regular_input(path)
        if size < 8:
            raise Refuse(f"{path}: file is {size} bytes, too short for a safetensors header")
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > min(size - 8, ST_MAX_HEADER):
                raise Refuse(f"{path}: safetensors header length {n} is larger than the file ({size} bytes): "
                             f"truncated or not a safetensors file")
            raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise Refuse(f"{path}: the safetensors header is not valid JSON ({e})")
        if not isinstance(header, dict):
            raise Refuse(f"{path}: the safetensors header is not a JSON object")
        self.metadata = header.pop("__metadata__", None) or {}
        self.data_start = 8 + n
        data_len = size - self.data_start
        self.entries, spans = {}, []
        for name, e in header.items():
            ok = (isinstance(e, dict) and isinstance(e.get("dtype"), str) and isinstance(e.get("shape"), list)
                  and all(isinstance(d, int) and d >= 0 for d in e["shape"])
                  and isinstance(e.get("data_offsets"), list) and len(e["data_offsets"]) == 2
                  and all(isinstance(d, int) for d in e["data_offsets"]))
            if not ok:
                raise Refuse(f"{path}: malformed safetensors entry for tensor {name!r}: {e!r}")
            b, end = e["data_offsets"]
            if not 0 <= b <= end <= data_len:
                raise Refuse(f"{path}: tensor {name} lies at bytes {b}..{end} of the data, but the file holds "
                             f"{data_len} bytes of data: truncated")
            item = ST_ITEMSIZE.get(e["dtype"])
            if item is not None and end - b != int(np.prod(e["shape"], dtype=np.int64)) * item:
                raise Refuse(f"{path}: tensor {name} ({e['dtype']} {e['shape']}) has {end - b} bytes of data")
            self.entries[name] = e
            spans.append((b, end, name))
        spans.sort()
        for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
            if b1 < e0:
                raise Refuse(f"{path}: tensors {n0} and {n1} overlap in the data")

    def names(self):
        return list(self.entries)

    def shape(self, name):
        return tuple(self.entries[name]["shape"])

    def dtype(self, name):
        return self.entries[name]["dtype"]

    def raw(self, name):
        """The stored values with their own dtype (BF16 as uint16 bits)."""
        e = self.entries[name]
        if e["dtype"] not in ST_DTYPES:
            raise Refuse(f"{self.path}: tensor {name} has dtype {e['dtype']}, which is not read here")
        dt = ST_DTYPES[e["dtype"]]
        count = int(np.prod(e["shape"], dtype=np.int64))
        if count == 0:
            return np.zeros(e["shape"], dtype=dt)
        return np.memmap(self.path, dtype=dt, mode="r", offset=self.data_start + e["data_offsets"][0],
                         shape=(count,)).reshape(e["shape"])

    def float32(self, name):
        """F32 exactly; F16 and BF16 widened exactly; F64 rounded to nearest."""
        dtype = self.dtype(name)
        if dtype not in ("F32", "F16", "BF16", "F64"):
            raise Refuse(f"{self.path}: tensor {name} has dtype {dtype} (supported: F32, F16, BF16, F64)")
        r = self.raw(name)
        return bf16_bits_to_f32(r).reshape(r.shape) if dtype == "BF16" else np.array(r, dtype=np.float32)


# ---------------------------------------------------------------- tokenizer

def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map: the printable Latin-1 bytes map to
    themselves, the other 68 bytes to U+0100 onwards in byte order."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def shared_data_dir():
    env = os.environ.get("LLMC_SHARED_DATA")
    if env:
        return env
    for base in (os.getcwd(), REPO):
        d = os.path.join(base, "..", "shared", "data")
        if os.path.isdir(d):
            return os.path.normpath(d)
    return os.path.normpath(os.path.join(REPO, "..", "shared", "data"))


def load_vocab_json(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        vocab = json.loads(raw.decode("utf-8"))
    except OSError as e:
        raise Refuse(f"{path}: cannot read: {e.strerror}")
    except (UnicodeDecodeError, ValueError) as e:
        raise Refuse(f"{path}: not a JSON vocabulary ({e})")
    if not isinstance(vocab, dict) or not all(isinstance(v, int) for v in vocab.values()):
        raise Refuse(f"{path}: not a vocabulary (a JSON object of token -> integer id)")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise Refuse(f"{path}: the {len(vocab)} token ids are not exactly 0..{len(vocab) - 1}")
    return raw, vocab


def check_merges(path, vocab):
    try:
        with open(path, "rb") as f:
            raw = f.read()
        lines = raw.decode("utf-8").split("\n")
    except OSError as e:
        raise Refuse(f"{path}: cannot read: {e.strerror}")
    except UnicodeDecodeError as e:
        raise Refuse(f"{path}: not UTF-8 ({e})")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]
    n = 0
    for k, line in enumerate(lines):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or parts[0] not in vocab or parts[1] not in vocab or parts[0] + parts[1] not in vocab:
            raise Refuse(f"{path}: line {k + 2}: {line[:60]!r} is not a merge of two tokens of the vocabulary")
        n += 1
    return raw, n


def tiktoken_to_gpt2_files(path, V):
    """A tiktoken rank file ("base64(token) rank" per line; rank = id; <|endoftext|> gets the
    lowest id the file does not use, as llmc/bpe.h reads it) -> (vocab.json bytes, merges.txt
    bytes). Each merge is recovered by running the byte-pair merges of lower rank over the
    token's bytes: they must end in exactly two tokens, whose concatenation is the merge."""
    ranks = {}
    try:
        with open(path, "rb") as f:
            for k, line in enumerate(f):
                line = line.strip()
                if not line:
                    continue
                tok, rank = line.split(b" ")
                tok, rank = base64.b64decode(tok, validate=True), int(rank)
                if tok in ranks or rank < 0:
                    raise ValueError("repeated token or negative rank")
                ranks[tok] = rank
    except OSError as e:
        raise Refuse(f"{path}: cannot read: {e.strerror}")
    except ValueError as e:
        raise Refuse(f"{path}: line {k + 1}: not a tiktoken rank line ({e})")
    ids = sorted(ranks.values())
    if len(set(ids)) != len(ids):
        raise Refuse(f"{path}: two tokens share a rank")
    eot = next((i for i, r in enumerate(ids) if i != r), len(ids))
    if len(ids) + 1 != V or sorted(ids + [eot]) != list(range(V)):
        raise Refuse(f"{path}: {len(ids)} ranked tokens + <|endoftext|> = {len(ids) + 1} ids, not the checkpoint's "
                     f"V={V} ids 0..{V - 1}")
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise Refuse(f"{path}: byte {missing[0]:#04x} is not a token (a byte-level BPE has all 256)")
    b2u = bytes_to_unicode()
    text = lambda t: "".join(b2u[b] for b in t)  # noqa: E731
    vocab = {text(t): r for t, r in ranks.items()}
    if EOT_TEXT in vocab:
        raise Refuse(f"{path}: a ranked token is spelled {EOT_TEXT!r} in GPT-2's byte alphabet")
    vocab[EOT_TEXT] = eot
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = [bytes([b]) for b in tok]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[0]):
                    best = (r, i)
            if best is None:
                break
            i = best[1]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) != 2:
            raise Refuse(f"{path}: token {rank} ({tok!r}) is not the merge of two tokens of lower rank: "
                         f"it cannot be written as a merges.txt line")
        merges.append(f"{text(parts[0])} {text(parts[1])}")
    vocab_json = json.dumps(dict(sorted(vocab.items(), key=lambda kv: kv[1])), ensure_ascii=False).encode("utf-8")
    merges_txt = ("#version: 0.2\n" + "".join(m + "\n" for m in merges)).encode("utf-8")
    return vocab_json, merges_txt


def resolve_tokenizer(spec, V):
    """-> None, or (vocab.json bytes, merges.txt bytes, description)."""
    if spec == "none":
        return None
    if spec is None:
        if V != GPT2_V:
            return None
        d = os.path.join(shared_data_dir(), "gpt2")
        if not (os.path.isfile(os.path.join(d, "encoder.json")) and os.path.isfile(os.path.join(d, "vocab.bpe"))):
            raise Refuse(f"{d}: GPT-2's encoder.json + vocab.bpe are not there (V=50257 exports GPT-2's tokenizer by "
                         f"default): give --tokenizer DIR, or --tokenizer none for the weights alone")
        spec = d
    if "," in spec:
        enc, merges = spec.split(",", 1)
    elif os.path.isdir(spec):
        if os.path.isfile(os.path.join(spec, "vocab.json")):
            enc, merges = os.path.join(spec, "vocab.json"), os.path.join(spec, "merges.txt")
        else:
            enc, merges = os.path.join(spec, "encoder.json"), os.path.join(spec, "vocab.bpe")
        if not os.path.isfile(enc):
            raise Refuse(f"{spec}: holds neither vocab.json + merges.txt nor encoder.json + vocab.bpe")
    elif os.path.isfile(spec):
        vj, mt = tiktoken_to_gpt2_files(spec, V)
        return vj, mt, f"converted from the tiktoken rank file {spec}"
    else:
        raise Refuse(f"{spec}: --tokenizer is neither a folder, a file, ENCODER,MERGES nor 'none'")
    raw_vocab, vocab = load_vocab_json(enc)
    if len(vocab) != V:
        raise Refuse(f"{enc}: the tokenizer has {len(vocab)} tokens but the checkpoint's vocabulary is V={V}")
    raw_merges, n = check_merges(merges, vocab)
    return raw_vocab, raw_merges, f"copied from {enc} and {merges} ({n} merges)"


# ---------------------------------------------------------------- export

def hf_config(cfg, dtype, eot_id):
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": cfg["V"],
        "n_positions": cfg["maxT"],
        "n_ctx": cfg["maxT"],
        "n_embd": cfg["C"],
        "n_layer": cfg["L"],
        "n_head": cfg["NH"],
        "n_inner": None,
        "activation_function": "gelu_new",
        "layer_norm_epsilon": 1e-05,
        "initializer_range": 0.02,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "torch_dtype": dtype,
        "transformers_version": TESTED_TRANSFORMERS,
    }


def prepare_outdir(outdir, force):
    """Refuses an existing OUTDIR that is not an empty folder unless --force."""
    if os.path.lexists(outdir):
        if not os.path.isdir(outdir) or os.path.islink(outdir):
            raise Refuse(f"{outdir}: exists and is not a folder")
        if os.listdir(outdir) and not force:
            raise Refuse(f"{outdir}: output folder exists and is not empty (--force replaces it)")
    parent = os.path.dirname(os.path.abspath(outdir))
    if not os.path.isdir(parent):
        raise Refuse(f"{outdir}: its parent folder {parent} does not exist")


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def export(src, outdir, dtype=None, tokenizer=None, force=False):
    prepare_outdir(outdir, force)
    if os.path.realpath(src).startswith(os.path.realpath(outdir) + os.sep):
        raise Refuse(f"{outdir}: the output folder holds the input checkpoint {src}")
    cfg, params = read_checkpoint(src)
    V, Vp, C, L, maxT = cfg["V"], cfg["Vp"], cfg["C"], cfg["L"], cfg["maxT"]
    if dtype is None:
        dtype = "float32" if cfg["version"] == 3 else "bfloat16"
    tok = resolve_tokenizer(tokenizer, V)
    if tok is not None:
        eot_id = json.loads(tok[0].decode("utf-8")).get(EOT_TEXT)
    else:
        eot_id = 50256 if V >= GPT2_V else None
    warnings = []
    if Vp > V and np.any(params["wte"][V:]):
        warnings.append(f"warning: {src}: the padded rows V..Vp-1 ({V}..{Vp - 1}) of wte are not zero; "
                        f"they are not exported (no token id reaches them)")
    st_dtype = "F32" if dtype == "float32" else "BF16"

    def producer(llmc, layer, transposed):
        def make():
            t = params[llmc]
            if layer is not None:
                t = t[layer]
            if llmc == "wte":
                t = t[:V]
            if transposed:
                t = t.T
            t = np.ascontiguousarray(t, dtype=np.float32)
            return t.astype("<f4").tobytes() if st_dtype == "F32" else f32_to_bf16_bits(t).astype("<u2").tobytes()
        return make
    tensors = [(name, st_dtype, shape, producer(llmc, layer, tr))
               for name, shape, llmc, layer, tr in hf_layout(L, C, V, maxT)]
    metadata = {"format": "pt", "llmc_source": os.path.basename(src), "llmc_checkpoint_version": str(cfg["version"]),
                "llmc_padded_vocab_size": str(Vp)}

    parent = os.path.dirname(os.path.abspath(outdir))
    tmp = os.path.join(parent, f".{os.path.basename(os.path.abspath(outdir))}.tmp.{os.getpid()}")
    old = None
    try:
        os.mkdir(tmp)
        with open(os.path.join(tmp, "model.safetensors"), "wb") as f:
            write_safetensors(f, tensors, metadata)
            f.flush()
            os.fsync(f.fileno())
        write_file(os.path.join(tmp, "config.json"),
                   (json.dumps(hf_config(cfg, dtype, eot_id), indent=2) + "\n").encode())
        gen = {"_from_model_config": True, "transformers_version": TESTED_TRANSFORMERS}
        if eot_id is not None:
            gen.update(bos_token_id=eot_id, eos_token_id=eot_id)
        write_file(os.path.join(tmp, "generation_config.json"), (json.dumps(gen, indent=2) + "\n").encode())
        if tok is not None:
            write_file(os.path.join(tmp, "vocab.json"), tok[0])
            write_file(os.path.join(tmp, "merges.txt"), tok[1])
            special = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
            tcfg = {"tokenizer_class": "GPT2Tokenizer", "model_max_length": maxT, "add_prefix_space": False,
                    "add_bos_token": False, "errors": "replace", "clean_up_tokenization_spaces": False, **special}
            write_file(os.path.join(tmp, "tokenizer_config.json"), (json.dumps(tcfg, indent=2) + "\n").encode())
            write_file(os.path.join(tmp, "special_tokens_map.json"), (json.dumps(special, indent=2) + "\n").encode())
        fsync_dir(tmp)
        if os.path.isdir(outdir) and os.listdir(outdir):  # --force: move the old one aside first
            old = os.path.join(parent, f".{os.path.basename(os.path.abspath(outdir))}.old.{os.getpid()}")
            os.rename(outdir, old)
        os.replace(tmp, outdir)  # also replaces an existing empty folder
        fsync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.exists(outdir):
            os.rename(old, outdir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    for w in warnings:
        print(w, file=sys.stderr)
    nparam = sum(int(np.prod(s)) for _, s, _, _, _ in hf_layout(L, C, V, maxT))
    print(f"hf_export: {src} (v{cfg['version']}: L={L} C={C} NH={cfg['NH']} V={V} Vp={Vp} maxT={maxT}) -> {outdir}: "
          f"{len(tensors)} tensors, {nparam} parameters, {dtype}; tokenizer: "
          f"{tok[2] if tok else 'none'}; bos/eos {eot_id}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="llm.c model checkpoint (version 3 or 5)")
    ap.add_argument("outdir", help="output folder (must not exist or be empty, unless --force)")
    ap.add_argument("--tokenizer", default=None,
                    help="folder (vocab.json+merges.txt or encoder.json+vocab.bpe), ENCODER,MERGES, a tiktoken rank "
                         "file, or none (default: GPT-2's from ../shared/data/gpt2 when V=50257, else none)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default=None,
                    help="safetensors dtype (default: the checkpoint's own: v3 float32, v5 bfloat16)")
    ap.add_argument("--force", action="store_true", help="replace an existing non-empty OUTDIR")
    args = ap.parse_args(argv)
    try:
        export(args.checkpoint, args.outdir, args.dtype, args.tokenizer, args.force)
    except Refuse as e:
        print(f"hf_export: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"hf_export: error: {e.filename or args.outdir}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
