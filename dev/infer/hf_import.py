#!/usr/bin/env python3
"""
A Hugging Face GPT-2-family model (safetensors + config.json) -> our llm.c model checkpoint.

    hf_import.py HF_DIR_OR_SAFETENSORS OUT.bin [--version 3|5] [--vocab-pad 128] [--config config.json]

Reads model.safetensors (or a sharded model.safetensors.index.json) from HF_DIR, or the given
.safetensors file with the config.json beside it (or --config). Tensor names may carry the
"transformer." prefix (what GPT2LMHeadModel.save_pretrained writes, and hf_export.py) or not
(GPT-2's own files on the Hub); dtypes F32, F16, BF16 (widened exactly) or F64 (rounded). The
causal-mask buffers h.N.attn.bias / h.N.attn.masked_bias are ignored; an lm_head.weight must
equal wte (our LM head is tied).

Output: version 3 (fp32, default) or 5 (bf16, round to nearest even); Vp = V rounded up to a
multiple of --vocab-pad (128), the padded rows of wte zero; Conv1D weights transposed back to
our (out, in) layout. Written atomically (temp file beside OUT.bin, fsync, rename).

Refused, with one message naming the file: a model_type other than gpt2; an activation other
than gelu_new / gelu_pytorch_tanh (our GELU is the tanh approximation); layer_norm_epsilon
other than 1e-5 (llmc/layernorm.h hard-codes it); n_inner other than 4 * n_embd;
scale_attn_weights false, scale_attn_by_inverse_layer_idx true, cross-attention; missing
tensors (named), unexpected tensors (named), wrong shapes (got vs expected), an untied
lm_head that differs from wte, non-finite values, a truncated or malformed safetensors file.
dev/infer/HF.md has the details.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_export import (Refuse, SafeTensorsFile, hf_layout, llmc_shapes, validate_config,  # noqa: E402
                      write_checkpoint)

IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")  # GPT-2's causal-mask buffers, not parameters


def load_json(path, what):
    try:
        with open(path, "rb") as f:
            obj = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise Refuse(f"{path}: {what} not found")
    except OSError as e:
        raise Refuse(f"{path}: cannot read {what}: {e.strerror}")
    except (UnicodeDecodeError, ValueError) as e:
        raise Refuse(f"{path}: {what} is not valid JSON ({e})")
    if not isinstance(obj, dict):
        raise Refuse(f"{path}: {what} is not a JSON object")
    return obj


def locate(src, config):
    """-> (config path, [safetensors paths])."""
    if os.path.isdir(src):
        cfg = config or os.path.join(src, "config.json")
        single = os.path.join(src, "model.safetensors")
        index = os.path.join(src, "model.safetensors.index.json")
        if os.path.isfile(single):
            return cfg, [single]
        if os.path.isfile(index):
            wm = load_json(index, "safetensors index").get("weight_map")
            if not isinstance(wm, dict) or not wm:
                raise Refuse(f"{index}: no weight_map")
            return cfg, [os.path.join(src, f) for f in sorted(set(wm.values()))]
        other = [f for f in ("pytorch_model.bin", "model.bin", "tf_model.h5") if os.path.exists(os.path.join(src, f))]
        raise Refuse(f"{src}: no model.safetensors or model.safetensors.index.json"
                     + (f" (only {', '.join(other)}, which is not read: save it with safe_serialization=True)"
                        if other else ""))
    if not os.path.exists(src):
        raise Refuse(f"{src}: no such file or folder")
    return config or os.path.join(os.path.dirname(os.path.abspath(src)), "config.json"), [src]


def read_hf_config(path):
    c = load_json(path, "config.json")

    def get(key, default):
        v = c.get(key, default)
        return default if v is None else v
    mt = c.get("model_type")
    if mt != "gpt2":
        raise Refuse(f"{path}: model_type {mt!r} is not supported (only 'gpt2': GPT-2's architecture)")
    act = get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise Refuse(f"{path}: activation_function {act!r} is not supported (our GELU is the tanh approximation: "
                     f"gelu_new or gelu_pytorch_tanh)")
    eps = get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or float(eps) != 1e-5:
        raise Refuse(f"{path}: layer_norm_epsilon {eps!r} is not supported (llmc/layernorm.h uses 1e-5)")
    ints = {}
    for key, default in (("vocab_size", 50257), ("n_positions", 1024), ("n_embd", 768), ("n_layer", 12),
                         ("n_head", 12)):
        v = get(key, default)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise Refuse(f"{path}: {key} {v!r} is not a positive integer")
        ints[key] = v
    C = ints["n_embd"]
    n_inner = c.get("n_inner")
    if n_inner is not None and n_inner != 4 * C:
        raise Refuse(f"{path}: n_inner {n_inner} is not supported (our MLP is 4 * n_embd = {4 * C})")
    if not get("scale_attn_weights", True):
        raise Refuse(f"{path}: scale_attn_weights false is not supported (our attention divides by sqrt(head size))")
    if get("scale_attn_by_inverse_layer_idx", False):
        raise Refuse(f"{path}: scale_attn_by_inverse_layer_idx true is not supported")
    if get("add_cross_attention", False):
        raise Refuse(f"{path}: add_cross_attention true is not supported")
    cfg = {"maxT": ints["n_positions"], "V": ints["vocab_size"], "L": ints["n_layer"], "NH": ints["n_head"], "C": C}
    return cfg, bool(get("tie_word_embeddings", True))


def import_model(src, out, version=3, vocab_pad=128, config=None):
    if os.path.isdir(out):
        raise Refuse(f"{out}: is a folder (give the checkpoint file to write)")
    cfg_path, files = locate(src, config)
    cfg, tied = read_hf_config(cfg_path)
    V, C, L, maxT = cfg["V"], cfg["C"], cfg["L"], cfg["maxT"]
    cfg["Vp"] = (V + vocab_pad - 1) // vocab_pad * vocab_pad
    validate_config(cfg, cfg_path)
    for f in files:
        if os.path.exists(out) and os.path.samefile(f, out):
            raise Refuse(f"{out}: is the input file")

    # every tensor, by its name without the "transformer." prefix
    where = {}
    for path in files:
        st = SafeTensorsFile(path)
        for name in st.names():
            bare = name[len("transformer."):] if name.startswith("transformer.") else name
            if bare in where:
                raise Refuse(f"{path}: tensor {bare} is stored twice ({where[bare][1]} and {name})")
            where[bare] = (st, name)
    layout = hf_layout(L, C, V, maxT, prefix="")
    expected = {name for name, *_ in layout}
    where_path = files[0] if len(files) == 1 else os.path.dirname(files[0]) or "."
    missing = [name for name, *_ in layout if name not in where]
    if missing:
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        raise Refuse(f"{where_path}: missing tensors for the config's L={L} C={C} V={V} maxT={maxT}: "
                     f"{', '.join(missing[:8])}{more}")
    unexpected = sorted(n for n in where if n not in expected and n != "lm_head.weight"
                        and not n.endswith(IGNORED_SUFFIXES))
    if unexpected:
        more = f" and {len(unexpected) - 8} more" if len(unexpected) > 8 else ""
        raise Refuse(f"{where_path}: unexpected tensors (not part of GPT-2 with L={L}): "
                     f"{', '.join(unexpected[:8])}{more}")
    for name, shape, *_ in layout + [("lm_head.weight", (V, C))]:
        if name in where:
            st, full = where[name]
            if st.shape(full) != tuple(shape):
                hint = " (an nn.Linear (out, in) layout? GPT-2's Conv1D weights are (in, out))" \
                    if st.shape(full) == tuple(shape[::-1]) else ""
                raise Refuse(f"{st.path}: tensor {full} has shape {list(st.shape(full))}, expected {list(shape)} "
                             f"for the config's L={L} C={C} V={V} maxT={maxT}{hint}")

    def value(name):
        st, full = where[name]
        t = st.float32(full)
        if not np.isfinite(t).all():
            raise Refuse(f"{st.path}: tensor {full} holds a non-finite value (NaN or Inf)")
        return t

    shapes = dict(llmc_shapes(maxT, L, C, cfg["Vp"]))
    params = {n: np.zeros(s, dtype=np.float32) for n, s in shapes.items()}
    for name, shape, llmc, layer, transposed in layout:
        t = value(name)
        if transposed:
            t = t.T
        if llmc == "wte":
            params["wte"][:V] = t
        elif layer is None:
            params[llmc][...] = t
        else:
            params[llmc][layer] = t
    notes = []
    if "lm_head.weight" in where:
        head = value("lm_head.weight")
        diff = np.abs(head - params["wte"][:V])
        if diff.max() != 0:
            raise Refuse(f"{where['lm_head.weight'][0].path}: lm_head.weight differs from wte (max |difference| "
                         f"{float(diff.max()):.3g} at {int(np.count_nonzero(diff))} of {diff.size} values): an untied "
                         f"LM head cannot be expressed in our model, whose LM head is the token embedding")
        notes.append("lm_head.weight equals wte")
    elif not tied:
        raise Refuse(f"{cfg_path}: tie_word_embeddings is false but there is no lm_head.weight")
    write_checkpoint(out, cfg, params, version)
    dtypes = sorted({where[n][0].dtype(where[n][1]) for n in expected})
    print(f"hf_import: {src} ({'/'.join(dtypes)}, {len(files)} file{'s' if len(files) > 1 else ''}) -> {out} "
          f"(v{version}: L={L} C={C} NH={cfg['NH']} V={V} Vp={cfg['Vp']} maxT={maxT})"
          + (f"; {'; '.join(notes)}" if notes else ""))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="a Hugging Face model folder, or a .safetensors file (config.json beside it)")
    ap.add_argument("out", help="the llm.c checkpoint to write")
    ap.add_argument("--version", type=int, choices=[3, 5], default=3, help="3 = fp32 (default), 5 = bf16")
    ap.add_argument("--vocab-pad", type=int, default=128, help="Vp = V rounded up to a multiple of this (128)")
    ap.add_argument("--config", default=None, help="config.json (default: in the folder / beside the file)")
    args = ap.parse_args(argv)
    if not 1 <= args.vocab_pad <= (1 << 20):
        ap.error("--vocab-pad must be 1..1048576")
    try:
        import_model(args.src, args.out, args.version, args.vocab_pad, args.config)
    except Refuse as e:
        print(f"hf_import: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"hf_import: error: {e.filename or args.out}: {e.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
