#!/usr/bin/env python3
"""
Checks for dev/infer/test_hf.sh, each printing PASS:/FAIL: lines (exit 1 on any FAIL). It reads
checkpoints with its own few lines of numpy (not hf_export.py's reader), rounds to bf16 with
PyTorch, and uses transformers / safetensors / tiktoken as the outside oracles.

  hf_compare.py logits HF_DIR DEBUG_STATE [--tol 1e-5] [--name NAME] [--save DIR]
      GPT2LMHeadModel.from_pretrained(HF_DIR) on the CPU, offline, in fp32: no missing /
      unexpected / mismatched tensors, lm_head tied to wte, config as the debug state says;
      its logits on the reference's inputs vs the reference's logits (scaled max error
      max|a-b| / max|b| <= tol) and its cross-entropy vs the reference's loss. --save DIR:
      then save_pretrained(DIR) (transformers' own safetensors writer, for the import test).
  hf_compare.py safetensors HF_DIR CHECKPOINT [--bf16]
      model.safetensors through the safetensors package (if installed): GPT-2's names, shapes,
      dtype (F32, or BF16 with --bf16), metadata format "pt", values = the checkpoint's
      tensors transposed to Conv1D layout (bf16-rounded with --bf16), no lm_head.
  hf_compare.py ckpt EXPECTED GOT [--round none|bf16|fp16] [--version 3|5]
      GOT is the checkpoint EXPECTED would be after rounding its parameters (and written as
      --version): header and parameters bitwise.
  hf_compare.py variant HF_DIR OUT_DIR KIND
      writes OUT_DIR/model.safetensors + config.json: a variant of HF_DIR's model for the import
      tests, with the safetensors package if present (else numpy): hub (GPT-2's own naming:
      no prefix, F16, the attn.bias mask buffers, lm_head.weight = wte), sharded (two shards
      and model.safetensors.index.json, as transformers writes big models), missing (one tensor
      left out), shape (c_attn.weight stored (3C, C)), untied (lm_head.weight != wte),
      gelu (activation "gelu"), eps (layer_norm_epsilon 1e-6), neo (model_type gpt_neo),
      truncated (the safetensors file cut short).
  hf_compare.py tokenizer HF_DIR TEXT_FILE SEED (--files ENCODER VOCAB_BPE | --tiktoken RANKS)
      AutoTokenizer.from_pretrained(HF_DIR) offline encodes a slice of TEXT_FILE (chosen by
      SEED) to the same ids as tiktoken's GPT-2 encoding (built offline from GPT-2's files),
      or as tiktoken with the ranks of a rank file, and decodes them back to the text.
  hf_compare.py write-tiktoken ENCODER VOCAB_BPE OUT
      GPT-2's vocabulary as a tiktoken rank file (tiktoken's own format).
"""
import argparse
import base64
import json
import os
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
failures = 0
PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def report(name, ok, detail):
    global failures
    if ok:
        print(f"PASS: {name} ({detail})", flush=True)
    else:
        failures += 1
        print(f"FAIL: {name}: {detail}", flush=True)


def read_ckpt(path):
    """-> (header int32[256], list of 16 float32 arrays in llm.c order and shape)."""
    raw = open(path, "rb").read()
    h = np.frombuffer(raw[:1024], dtype="<i4").copy()
    assert h[0] == 20240326 and h[1] in (3, 5), f"{path}: not a model checkpoint"
    maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    if h[1] == 3:
        p = np.frombuffer(raw[1024:], dtype="<f4")
    else:
        p = (np.frombuffer(raw[1024:], dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    shapes = [(Vp, C), (maxT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C),
              (L, C), (L, C), (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]
    out, off = [], 0
    for s in shapes:
        n = int(np.prod(s))
        out.append(p[off:off + n].reshape(s))
        off += n
    assert off == p.size, f"{path}: size does not match the header"
    return h, out


def hf_tensors(h, t):
    """The checkpoint's tensors under GPT-2's names and layout (written independently of hf_export)."""
    maxT, V, L, NH, C, Vp = (int(x) for x in h[2:8])
    d = {"transformer.wte.weight": t[0][:V], "transformer.wpe.weight": t[1],
         "transformer.ln_f.weight": t[14], "transformer.ln_f.bias": t[15]}
    per_layer = [("ln_1.weight", 2, False), ("ln_1.bias", 3, False), ("attn.c_attn.weight", 4, True),
                 ("attn.c_attn.bias", 5, False), ("attn.c_proj.weight", 6, True), ("attn.c_proj.bias", 7, False),
                 ("ln_2.weight", 8, False), ("ln_2.bias", 9, False), ("mlp.c_fc.weight", 10, True),
                 ("mlp.c_fc.bias", 11, False), ("mlp.c_proj.weight", 12, True), ("mlp.c_proj.bias", 13, False)]
    for i in range(L):
        for name, k, tr in per_layer:
            d[f"transformer.h.{i}.{name}"] = t[k][i].T if tr else t[k][i]
    return d


def rounded(x, how):
    import torch
    if how == "none":
        return np.asarray(x, dtype=np.float32)
    dt = torch.bfloat16 if how == "bf16" else torch.float16
    return torch.tensor(np.ascontiguousarray(x, dtype=np.float32)).to(dt).to(torch.float32).numpy()


def cmd_logits(a):
    import torch
    from transformers import GPT2LMHeadModel
    raw = open(a.debug_state, "rb").read()
    h = np.frombuffer(raw[:1024], dtype="<i4")
    assert h[0] == 20240327 and h[1] == 1, f"{a.debug_state}: not a version-1 debug state"
    B, T, V, Vp, nsteps, L, NH, C, maxT = (int(x) for x in h[2:11])
    off = 1024 + 32
    x = np.frombuffer(raw, dtype="<i4", count=B * T, offset=off).reshape(B, T)
    y = np.frombuffer(raw, dtype="<i4", count=B * T, offset=off + 4 * B * T).reshape(B, T)
    off += 8 * B * T
    ref = np.frombuffer(raw, dtype="<f4", count=B * T * V, offset=off).reshape(B, T, V)
    ref_loss = float(np.frombuffer(raw, dtype="<f4", count=1, offset=off + 4 * B * T * V)[0])
    torch.set_num_threads(1)
    model, info = GPT2LMHeadModel.from_pretrained(a.hf_dir, local_files_only=True, torch_dtype=torch.float32,
                                                  output_loading_info=True)
    model.eval()
    bad = {k: v for k, v in info.items() if v}
    c = model.config
    cfg_ok = (c.vocab_size, c.n_positions, c.n_layer, c.n_head, c.n_embd) == (V, maxT, L, NH, C)
    tied = model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    report(f"{a.name}: from_pretrained loads every tensor", not bad and cfg_ok and tied,
           f"loading info {bad or 'clean'}, config V={c.vocab_size} maxT={c.n_positions} L={c.n_layer} "
           f"NH={c.n_head} C={c.n_embd}, lm_head tied to wte: {tied}")
    with torch.no_grad():
        logits = model(torch.tensor(x, dtype=torch.long)).logits.to(torch.float32)
        loss = float(torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.tensor(y, dtype=torch.long).reshape(-1)))
    got = logits.numpy()
    err = float(np.abs(got - ref).max() / np.abs(ref).max()) if got.shape == ref.shape else float("inf")
    lerr = abs(loss - ref_loss) / abs(ref_loss)
    report(f"{a.name}: HF logits = the PyTorch reference's", err <= a.tol and lerr <= a.tol,
           f"B={B} T={T} V={V}: scaled max error {err:.3g} (tolerance {a.tol:g}), loss {loss:.6f} vs {ref_loss:.6f} "
           f"(relative {lerr:.2g})")
    if a.save:
        model.save_pretrained(a.save, safe_serialization=True)


def cmd_safetensors(a):
    try:
        from safetensors import safe_open
    except ImportError:
        print(f"note: safetensors package not installed: {a.hf_dir}/model.safetensors not checked with it")
        return
    h, t = read_ckpt(a.checkpoint)
    want = hf_tensors(h, t)
    path = os.path.join(a.hf_dir, "model.safetensors")
    dtype = "BF16" if a.bf16 else "F32"
    problems = []
    with safe_open(path, framework="np" if not a.bf16 else "pt") as f:
        names = set(f.keys())
        meta = f.metadata() or {}
        if names != set(want):
            problems.append(f"names: missing {sorted(set(want) - names)[:4]}, extra {sorted(names - set(want))[:4]}")
        if meta.get("format") != "pt":
            problems.append(f"metadata format {meta.get('format')!r} (transformers needs 'pt')")
        for name in sorted(names & set(want)):
            v = f.get_tensor(name)
            if a.bf16:  # numpy has no bf16: read through torch
                import torch
                if v.dtype != torch.bfloat16:
                    problems.append(f"{name}: dtype {v.dtype}, expected bfloat16")
                v = v.to(torch.float32).numpy()
            elif v.dtype != np.float32:
                problems.append(f"{name}: dtype {v.dtype}, expected float32")
            exp = rounded(want[name], "bf16" if a.bf16 else "none")
            if v.shape != exp.shape:
                problems.append(f"{name}: shape {v.shape}, expected {exp.shape}")
            elif not np.array_equal(v.view(np.uint32), exp.view(np.uint32)):
                problems.append(f"{name}: values differ from the checkpoint's")
    report(f"safetensors package reads {os.path.basename(a.hf_dir)}/model.safetensors", not problems,
           f"{len(want)} tensors, GPT-2's names and Conv1D shapes, {dtype}, no lm_head, metadata {meta}, values "
           f"bitwise = the checkpoint's{' rounded to bf16' if a.bf16 else ''}" if not problems else "; ".join(problems[:5]))


def cmd_ckpt(a):
    he, te = read_ckpt(a.expected)
    hg, tg = read_ckpt(a.got)
    hx = he.copy()
    hx[1] = a.version
    problems = []
    if not np.array_equal(hx, hg):
        problems.append(f"header {hg[:8].tolist()} vs expected {hx[:8].tolist()}")
    else:
        for k, (e, g) in enumerate(zip(te, tg)):
            if not np.array_equal(rounded(e, a.round).view(np.uint32), np.asarray(g, dtype=np.float32).view(np.uint32)):
                problems.append(f"tensor {k} differs")
    graw = open(a.got, "rb").read()
    report(a.name, not problems,
           f"{os.path.basename(a.got)} ({len(graw)} bytes, v{hg[1]}) = {os.path.basename(a.expected)}"
           f"{'' if a.round == 'none' else ' rounded to ' + a.round}, header and every parameter bitwise"
           if not problems else "; ".join(problems[:4]))


def save_st(path, tensors, metadata):
    try:
        from safetensors.numpy import save_file
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, path, metadata=metadata)
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from hf_export import write_safetensors
        names = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}
        with open(path, "wb") as f:
            write_safetensors(f, [(k, names[v.dtype], v.shape, (lambda v=v: np.ascontiguousarray(v).astype(v.dtype.newbyteorder("<")).tobytes()))
                                  for k, v in tensors.items()], metadata)


def cmd_variant(a):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hf_export import SafeTensorsFile
    st = SafeTensorsFile(os.path.join(a.hf_dir, "model.safetensors"))
    t = {n: np.array(st.float32(n)) for n in st.names()}
    cfg = json.load(open(os.path.join(a.hf_dir, "config.json")))
    os.makedirs(a.out_dir, exist_ok=True)
    names = list(t)
    if a.kind == "hub":
        maxT = cfg["n_positions"]
        t = {n[len("transformer."):]: v.astype(np.float16) for n, v in t.items()}
        for i in range(cfg["n_layer"]):
            t[f"h.{i}.attn.bias"] = np.tril(np.ones((maxT, maxT), dtype=np.float32))[None, None]
        t["lm_head.weight"] = t["wte.weight"].copy()
    elif a.kind == "missing":
        del t[names[len(names) // 2]]
    elif a.kind == "shape":
        k = "transformer.h.0.attn.c_attn.weight"
        t[k] = np.ascontiguousarray(t[k].T)
    elif a.kind == "untied":
        t["lm_head.weight"] = t["transformer.wte.weight"].copy()
        t["lm_head.weight"][3, 5] += 0.25
    elif a.kind == "gelu":
        cfg["activation_function"] = "gelu"
    elif a.kind == "eps":
        cfg["layer_norm_epsilon"] = 1e-6
    elif a.kind == "neo":
        cfg["model_type"] = "gpt_neo"
    out = os.path.join(a.out_dir, "model.safetensors")
    if a.kind == "sharded":  # two shards and transformers' index file, the shards' names in reverse
        shards = {"model-00001-of-00002.safetensors": names[len(names) // 2:],
                  "model-00002-of-00002.safetensors": names[:len(names) // 2]}
        for fname, part in shards.items():
            save_st(os.path.join(a.out_dir, fname), {n: t[n] for n in part}, {"format": "pt"})
        with open(os.path.join(a.out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(v.nbytes for v in t.values())},
                       "weight_map": {n: fname for fname, part in shards.items() for n in part}}, f, indent=2)
    else:
        save_st(out, t, {"format": "pt"})
    if a.kind == "truncated":
        with open(out, "r+b") as f:
            f.truncate(os.path.getsize(out) - 100)
    with open(os.path.join(a.out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if a.kind == "missing":
        print(names[len(names) // 2])


def gpt2_tiktoken(enc_path, bpe_path):
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    ranks = data_gym_to_mergeable_bpe_ranks(bpe_path, enc_path)
    return tiktoken.Encoding("gpt2_offline", pat_str=PAT, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}), ranks


def cmd_tokenizer(a):
    import transformers
    from transformers import AutoTokenizer
    transformers.logging.set_verbosity_error()  # not the "longer than model_max_length" notice
    if a.tiktoken:  # a rank file: rank = id, <|endoftext|> = the lowest id it does not use (llmc/bpe.h)
        import tiktoken
        ranks = {}  # read here: tiktoken's loader would cache the file by its (temporary) path
        for line in open(a.tiktoken, "rb").read().splitlines():
            if line:
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
        ids = sorted(ranks.values())
        eot = next((i for i, r in enumerate(ids) if i != r), len(ids))
        enc = tiktoken.Encoding("ranks", pat_str=PAT, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": eot})
        oracle = f"tiktoken with {os.path.basename(a.tiktoken)}'s ranks"
    else:
        enc, _ = gpt2_tiktoken(*a.files)
        oracle = "tiktoken's gpt2"
    text = open(a.text_file, encoding="utf-8").read()
    rng = np.random.default_rng(a.seed)
    start = int(rng.integers(0, len(text) - a.chars))
    start = text.rfind("\n\n", 0, start) + 2 if text.rfind("\n\n", 0, start) >= 0 else 0  # a whole speech
    piece = text[start:start + a.chars]
    tok = AutoTokenizer.from_pretrained(a.hf_dir, local_files_only=True)
    ours = tok(piece)["input_ids"]
    want = enc.encode_ordinary(piece)
    k = next((i for i, (p, q) in enumerate(zip(ours, want)) if p != q), min(len(ours), len(want)))
    same = ours == want
    back = tok.decode(ours)
    report(f"{a.name}: AutoTokenizer encodes like {oracle}", same and back == piece and
           tok.eos_token_id == enc.eot_token and len(tok) == enc.n_vocab,
           f"{type(tok).__name__}, {len(tok)} tokens, eos {tok.eos_token_id}: {len(piece)} characters of "
           f"{os.path.basename(a.text_file)} at offset {start} ({piece[:24]!r}...) -> {len(ours)} ids, identical, "
           f"decoded back exactly" if same else
           f"{len(ours)} vs {len(want)} ids, first difference at {k}: {ours[k:k + 4]} vs {want[k:k + 4]}")


def cmd_write_tiktoken(a):
    _, ranks = gpt2_tiktoken(a.encoder, a.vocab_bpe)
    with open(a.out, "wb") as f:  # tiktoken's dump_tiktoken_bpe format
        for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(tok) + b" " + str(rank).encode() + b"\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("logits")
    p.add_argument("hf_dir")
    p.add_argument("debug_state")
    p.add_argument("--tol", type=float, default=1e-5)
    p.add_argument("--name", default="fp32 export")
    p.add_argument("--save", default=None)
    p = sub.add_parser("safetensors")
    p.add_argument("hf_dir")
    p.add_argument("checkpoint")
    p.add_argument("--bf16", action="store_true")
    p = sub.add_parser("ckpt")
    p.add_argument("expected")
    p.add_argument("got")
    p.add_argument("--round", choices=["none", "bf16", "fp16"], default="none")
    p.add_argument("--version", type=int, default=3)
    p.add_argument("--name", default="import")
    p = sub.add_parser("variant")
    p.add_argument("hf_dir")
    p.add_argument("out_dir")
    p.add_argument("kind", choices=["hub", "sharded", "missing", "shape", "untied", "gelu", "eps", "neo", "truncated"])
    p = sub.add_parser("tokenizer")
    p.add_argument("hf_dir")
    p.add_argument("text_file")
    p.add_argument("seed", type=int)
    p.add_argument("--files", nargs=2, metavar=("ENCODER", "VOCAB_BPE"), help="GPT-2's files for tiktoken")
    p.add_argument("--tiktoken", default=None, help="or a tiktoken rank file as the oracle")
    p.add_argument("--chars", type=int, default=3000)
    p.add_argument("--name", default="tokenizer")
    p = sub.add_parser("write-tiktoken")
    p.add_argument("encoder")
    p.add_argument("vocab_bpe")
    p.add_argument("out")
    a = ap.parse_args()
    {"logits": cmd_logits, "safetensors": cmd_safetensors, "ckpt": cmd_ckpt, "variant": cmd_variant,
     "tokenizer": cmd_tokenizer, "write-tiktoken": cmd_write_tiktoken}[a.cmd](a)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
