"""
PEFT for the PyTorch oracle (dev/reference/gpt2_reference.py): the four methods of llmc/peft.h,
written from the math in that header (its comment is the contract; this is an independent
implementation, not a port of the C code), the adapter-file writer, and hash64 of llmc/utils.h.

A Peft module holds the trainable tensors in the layout order of llmc/peft.h and gives the
GPT forward pass four hooks: linear (LoRA and BitFit biases), layernorm (BitFit biases and,
with bitfit_ln, gains), adapter (Houlsby bottlenecks on the sublayer outputs) and embed (soft
prompt positions). The base model's parameters are frozen by the caller.
"""
import math
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PEFT_MAGIC, PEFT_VERSION = 20261202, 1
METHODS = {"none": 0, "lora": 1, "bitfit": 2, "adapter": 3, "prompt": 4}
TARGETS = ["qkv", "attproj", "fc", "fcproj"]                       # bit i = 1 << i
TARGET_MODULE = {"qkv": "c_attn", "attproj": "attn_proj", "fc": "c_fc", "fcproj": "mlp_proj"}
TARGET_IN_OUT = {"qkv": (1, 3), "attproj": (1, 1), "fc": (1, 4), "fcproj": (4, 1)}  # (IC, OC) / C

# BitFit tensors in checkpoint order: (checkpoint index, name, is a LayerNorm gain, where it lives)
# where: (module attribute in a Block or None for the final LayerNorm, parameter name)
BITFIT_TENSORS = [
    (2, "ln1w", True, ("ln_1", "weight")), (3, "ln1b", False, ("ln_1", "bias")),
    (5, "qkvb", False, ("c_attn", "bias")), (7, "attprojb", False, ("attn_proj", "bias")),
    (8, "ln2w", True, ("ln_2", "weight")), (9, "ln2b", False, ("ln_2", "bias")),
    (11, "fcb", False, ("c_fc", "bias")), (13, "fcprojb", False, ("mlp_proj", "bias")),
    (14, "lnfw", True, (None, "weight")), (15, "lnfb", False, (None, "bias")),
]
# which BitFit tensor stands in for the bias of each linear layer, and for each LayerNorm
BITFIT_LINEAR_BIAS = {"qkv": "qkvb", "attproj": "attprojb", "fc": "fcb", "fcproj": "fcprojb"}
BITFIT_LN = {"ln1": ("ln1w", "ln1b"), "ln2": ("ln2w", "ln2b"), "lnf": ("lnfw", "lnfb")}

M64 = 0xFFFFFFFFFFFFFFFF


# ----------------------------------------------------------------------------------------------
# hash64 (llmc/utils.h): 8-byte little-endian words, then the zero-padded tail word if any, then
# the total byte count, each folded in by the same mix; all arithmetic modulo 2^64.

def _mix(h, w):
    h ^= (w * 0xFF51AFD7ED558CCD) & M64
    h = ((h << 31) | (h >> 33)) & M64
    return (h * 0xC4CEB9FE1A85EC53 + 0x165667B19E3779F9) & M64


def hash64(data):
    data = bytes(data)
    n = len(data)
    h = 0x9E3779B97F4A7C15
    nwords = n // 8
    if nwords:
        for w in np.frombuffer(data, dtype="<u8", count=nwords).tolist():
            h = _mix(h, w)
    tail = data[nwords * 8:]
    if tail:
        h = _mix(h, int.from_bytes(tail + bytes(8 - len(tail)), "little"))
    return _mix(h, n & M64)


# ----------------------------------------------------------------------------------------------

class PeftConfig:
    def __init__(self, method, rank=3, alpha=5.0, targets=15, bitfit_ln=0, adapter_size=5, prompt_len=3):
        self.method = method if isinstance(method, int) else METHODS[method]
        self.rank, self.alpha, self.targets = int(rank), float(alpha), int(targets)
        self.bitfit_ln, self.adapter_size, self.prompt_len = int(bitfit_ln), int(adapter_size), int(prompt_len)

    @property
    def name(self):
        return [k for k, v in METHODS.items() if v == self.method][0]

    @property
    def scale(self):
        # s = alpha / r, with alpha as the float32 the adapter file stores
        return float(np.float32(self.alpha)) / self.rank


def parse_targets(text):
    if text == "all":
        return 15
    bits = 0
    for t in text.split(","):
        if t not in TARGETS:
            raise ValueError(f"--lora-targets '{text}': unknown target '{t}' (choose from {','.join(TARGETS)} or all)")
        bits |= 1 << TARGETS.index(t)
    if bits == 0:
        raise ValueError(f"--lora-targets '{text}': no target given")
    return bits


def peft_layout(cfg, L, C):
    """[(name, shape, decay)] in the layout order of llmc/peft.h."""
    lay = []
    if cfg.method == METHODS["lora"]:
        r = cfg.rank
        for i, t in enumerate(TARGETS):
            if cfg.targets & (1 << i):
                ic, oc = (m * C for m in TARGET_IN_OUT[t])
                lay += [(f"{t}_A", (L, r, ic), True), (f"{t}_B", (L, oc, r), True)]
    elif cfg.method == METHODS["bitfit"]:
        for _, name, is_gain, (mod, _) in BITFIT_TENSORS:
            if is_gain and not cfg.bitfit_ln:
                continue
            ch = {"qkvb": 3 * C, "fcb": 4 * C}.get(name, C)
            lay.append((name, (ch,) if mod is None else (L, ch), False))
    elif cfg.method == METHODS["adapter"]:
        m = cfg.adapter_size
        for where in ("attn", "mlp"):
            lay += [(f"{where}_down_w", (L, m, C), True), (f"{where}_down_b", (L, m), False),
                    (f"{where}_up_w", (L, C, m), True), (f"{where}_up_b", (L, C), False)]
    elif cfg.method == METHODS["prompt"]:
        lay.append(("prompt", (cfg.prompt_len, C), False))
    else:
        raise ValueError(f"no PEFT layout for method {cfg.method}")
    return lay


def bitfit_base_tensor(model, name):
    """The base model's tensor a BitFit tensor stands for (stacked over layers), detached."""
    for _, n, _, (mod, attr) in BITFIT_TENSORS:
        if n == name:
            if mod is None:
                return getattr(model.ln_f, attr).detach().clone()
            return torch.stack([getattr(getattr(b, mod), attr).detach() for b in model.blocks])
    raise KeyError(name)


def init_test_tensors(cfg, model, rng, V):
    """The test init of the brief: everything random and non-zero, float32 numpy, layout order.
    model: the base GPT (its float32 initial weights)."""
    L, C = len(model.blocks), model.wte.weight.shape[1]
    out = {}
    for name, shape, _ in peft_layout(cfg, L, C):
        if name.endswith("_A"):
            ic = shape[2]
            bound = 1.0 / math.sqrt(ic)
            t = rng.uniform(-bound, bound, size=shape)
        elif cfg.method == METHODS["bitfit"]:
            t = bitfit_base_tensor(model, name).double().numpy() + rng.normal(0.0, 0.02, size=shape)
        elif name == "prompt":
            u = rng.integers(0, V, size=shape[0])
            t = model.wte.weight.detach().double().numpy()[u] + rng.normal(0.0, 0.02, size=shape)
        else:  # LoRA B, adapter weights and biases
            t = rng.normal(0.0, 0.02, size=shape)
        out[name] = np.ascontiguousarray(t, dtype=np.float32)
    return out


def _gelu(x):
    return F.gelu(x, approximate="tanh")


class Peft(nn.Module):
    def __init__(self, cfg, L, C, tensors):
        """tensors: {name: array or tensor} for every tensor of the layout (copied, as parameters)."""
        super().__init__()
        self.cfg, self.L, self.C = cfg, L, C
        self.layout = peft_layout(cfg, L, C)
        self.names = [n for n, _, _ in self.layout]
        self.t = nn.ParameterDict()
        for name, shape, _ in self.layout:
            v = torch.as_tensor(np.asarray(tensors[name])) if not torch.is_tensor(tensors[name]) else tensors[name]
            assert tuple(v.shape) == tuple(shape), f"{name}: shape {tuple(v.shape)}, layout wants {shape}"
            self.t[name] = nn.Parameter(v.detach().clone())
        self.override = None  # {name: tensor} read instead of the parameters (for gradcheck)

    @property
    def prompt_len(self):
        return self.cfg.prompt_len if self.cfg.method == METHODS["prompt"] else 0

    def _t(self, name):
        return self.t[name] if self.override is None else self.override[name]

    # --- hooks -------------------------------------------------------------------------------
    def linear(self, l, target, mod, x):
        bias = mod.bias
        if self.cfg.method == METHODS["bitfit"]:
            bias = self._t(BITFIT_LINEAR_BIAS[target])[l]
        y = F.linear(x, mod.weight, bias)
        if self.cfg.method == METHODS["lora"] and f"{target}_A" in self.names:
            A, Bm = self._t(f"{target}_A")[l], self._t(f"{target}_B")[l]   # (r, IC), (OC, r)
            y = y + self.cfg.scale * F.linear(F.linear(x, A), Bm)
        return y

    def layernorm(self, l, which, mod, x):
        w, b = mod.weight, mod.bias
        if self.cfg.method == METHODS["bitfit"]:
            wn, bn = BITFIT_LN[which]
            pick = (lambda t: t) if which == "lnf" else (lambda t: t[l])
            b = pick(self._t(bn))
            if wn in self.names:
                w = pick(self._t(wn))
        return F.layer_norm(x, mod.normalized_shape, w, b, mod.eps)

    def adapter(self, l, where, h):
        if self.cfg.method != METHODS["adapter"]:
            return h
        t = lambda s: self._t(f"{where}_{s}")[l]
        return h + F.linear(_gelu(F.linear(h, t("down_w"), t("down_b"))), t("up_w"), t("up_b"))

    def embed(self, model, idx):
        """(B, k+T, C) inputs of the blocks: k prompt positions, then the T tokens."""
        B, T = idx.shape
        k = self.prompt_len
        assert k + T <= model.maxT, f"prompt length {k} + T {T} exceeds maxT {model.maxT}"
        pos = model.wpe.weight
        tok = model.wte(idx) + pos[k:k + T]
        if k == 0:
            return tok
        pr = (self._t("prompt") + pos[:k]).unsqueeze(0).expand(B, k, -1)
        return torch.cat([pr, tok], dim=1)

    # --- the trainable vector ------------------------------------------------------------------
    def params_in_order(self):
        return [self.t[n] for n in self.names]

    def flat(self, grads=False):
        ts = [(p.grad if grads else p) for p in self.params_in_order()]
        return np.concatenate([t.detach().to(torch.float32).numpy().ravel() for t in ts]).astype(np.float32)

    def count(self):
        return sum(int(np.prod(s)) for _, s, _ in self.layout)

    def optimizer_groups(self):
        decay = [self.t[n] for n, _, d in self.layout if d]
        no_decay = [self.t[n] for n, _, d in self.layout if not d]
        return decay, no_decay


def write_adapter_file(path, cfg, L, C, NH, V, Vp, maxT, payload, base_hash, write):
    """The llmc/peft.h adapter file: int32[256] header, float32 payload (layout order).
    write(path, chunks) does the (atomic) writing."""
    payload = np.ascontiguousarray(payload, dtype=np.float32)
    n = payload.size
    ph = hash64(payload.tobytes())
    alpha_bits = struct.unpack("<I", struct.pack("<f", cfg.alpha))[0]
    h = [0] * 256
    h[:21] = [PEFT_MAGIC, PEFT_VERSION, cfg.method, L, C, NH, V, Vp, maxT,
              cfg.rank, cfg.targets, alpha_bits, cfg.bitfit_ln, cfg.adapter_size, cfg.prompt_len,
              n & 0xFFFFFFFF, n >> 32, base_hash & 0xFFFFFFFF, base_hash >> 32, ph & 0xFFFFFFFF, ph >> 32]
    write(path, [struct.pack("<256I", *[v & 0xFFFFFFFF for v in h]), payload.tobytes()])
    return ph


def read_adapter_file(path):
    with open(path, "rb") as f:
        h = np.frombuffer(f.read(1024), dtype="<u4").astype(np.int64)
        payload = np.frombuffer(f.read(), dtype=np.float32)
    return h, payload


# ----------------------------------------------------------------------------------------------
# --selfcheck: the PEFT and weighted-loss math in float64 on a tiny model, by finite differences
# (torch.autograd.gradcheck) and by identities that must hold exactly; then the files the
# oracle writes, read back. Prints PASS:/FAIL: lines; returns 0 when all pass.

# hash64 of b"" and b"abcdefghij", as llmc/utils.h computes them (checked with a C program)
HASH64_EMPTY, HASH64_ABCDEFGHIJ = 0xD4CA44FFCC9C854D, 0x15CECB815D1355FD


def selfcheck(GPT, run_main):
    import copy
    import os
    import tempfile
    import time
    from torch.nn.utils.stateless import functional_call

    t0 = time.time()
    failures = []

    def check(ok, name, detail):
        print(f"{'PASS' if ok else 'FAIL'}: {name} ({detail})")
        if not ok:
            failures.append(name)

    def maxdiff(a, b):
        return float((a - b).abs().max())

    check(hash64(b"") == HASH64_EMPTY and hash64(b"abcdefghij") == HASH64_ABCDEFGHIJ, "hash64 port",
          f"hash64('')={hash64(b''):016x} hash64('abcdefghij')={hash64(b'abcdefghij'):016x}")
    # incremental feeding is the C's business; here: the tail word and the length both count
    check(len({hash64(b"a"), hash64(b"a\0"), hash64(b"a" + bytes(7)), hash64(b"a" + bytes(8))}) == 4,
          "hash64 tail and length", "zero padding is not a collision")

    L, C, NH, V, maxT, B, T = 2, 8, 2, 11, 8, 3, 5
    torch.manual_seed(1234)
    base32 = GPT(L, C, NH, V, maxT)
    base32.init_weights(L)
    base = copy.deepcopy(base32).double()
    for p in base.parameters():
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(99)
    x = torch.randint(0, V, (B, T), generator=g)
    y = torch.randint(0, V, (B, T), generator=g)
    w = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [0, 1, 1, 0, 1]], dtype=torch.float64)
    rng = np.random.default_rng(5)

    # --- the weighted loss -----------------------------------------------------------------
    with torch.no_grad():
        logits, mean_loss = base(x, y)
        _, ones_loss = base(x, y, torch.ones(B, T, dtype=torch.float64))
        _, wloss = base(x, y, w)
        lp = torch.log_softmax(logits, dim=-1)
        num = den = 0.0
        for b in range(B):
            for t in range(T):
                num += float(w[b, t]) * -float(lp[b, t, y[b, t]])
                den += float(w[b, t])
        y2 = y.clone()
        y2[w == 0] = (y2[w == 0] + 3) % V
        _, wloss2 = base(x, y2, w)
    check(abs(float(ones_loss) - float(mean_loss)) <= 1e-14, "weighted loss, all ones = mean",
          f"|diff| {abs(float(ones_loss) - float(mean_loss)):.1e}")
    check(abs(float(wloss) - num / den) <= 1e-12, "weighted loss = sum(w l) / sum(w)",
          f"{float(wloss):.12f} vs loop {num / den:.12f}")
    check(float(wloss) == float(wloss2), "weighted loss ignores w=0 targets", "targets changed where w=0")

    # --- full fine-tuning with weights: gradcheck over every base parameter ----------------
    full = copy.deepcopy(base32).double()
    names = [n for n, _ in full.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_(True) for _, p in full.named_parameters())

    def f_full(*ts):
        return functional_call(full, dict(zip(names, ts)), (x, y, w))[1]
    ok = torch.autograd.gradcheck(f_full, inputs, eps=1e-6, atol=1e-9, rtol=1e-6, raise_exception=False)
    check(ok, "gradcheck full fine-tuning, weighted loss", f"{sum(t.numel() for t in inputs)} parameters")

    # --- each PEFT method: gradcheck over its tensors, all gradients non-zero ---------------
    configs = [("lora all r=2", PeftConfig("lora", rank=2, alpha=3.0, targets=15)),
               ("lora qkv,fc r=1", PeftConfig("lora", rank=1, alpha=5.0, targets=1 | 4)),
               ("lora attproj,fcproj r=3", PeftConfig("lora", rank=3, alpha=5.0, targets=2 | 8)),
               ("bitfit", PeftConfig("bitfit")), ("bitfit ln", PeftConfig("bitfit", bitfit_ln=1)),
               ("adapter m=3", PeftConfig("adapter", adapter_size=3)),
               ("prompt k=3", PeftConfig("prompt", prompt_len=3))]
    for label, cfg in configs:
        init = init_test_tensors(cfg, base32, rng, V)
        peft = Peft(cfg, L, C, {k: torch.tensor(v) for k, v in init.items()}).double()
        ins = tuple(p.detach().clone().requires_grad_(True) for p in peft.params_in_order())

        def f_peft(*ts, peft=peft):
            peft.override = dict(zip(peft.names, ts))
            try:
                return base(x, y, w, peft)[1]
            finally:
                peft.override = None
        ok = torch.autograd.gradcheck(f_peft, ins, eps=1e-6, atol=1e-9, rtol=1e-6, raise_exception=False)
        check(ok, f"gradcheck {label}, weighted loss", f"{peft.count()} floats: {', '.join(peft.names)}")
        peft.zero_grad(set_to_none=True)
        base(x, y, w, peft)[1].backward()
        zero = [n for n, p in zip(peft.names, peft.params_in_order()) if p.grad is None or float(p.grad.abs().max()) == 0]
        check(not zero and all(p.grad is None for p in base.parameters()), f"{label}: every PEFT gradient non-zero, base frozen",
              "zero: " + (", ".join(zero) or "none"))

    with torch.no_grad():
        # LoRA with B = 0 is the base model
        cfg = PeftConfig("lora", rank=2, alpha=3.0, targets=15)
        init = init_test_tensors(cfg, base32, rng, V)
        zeroB = {k: (np.zeros_like(v) if k.endswith("_B") else v) for k, v in init.items()}
        peft = Peft(cfg, L, C, zeroB).double()
        d = maxdiff(base(x, y, w, peft)[0], logits)
        check(d == 0.0, "lora with B=0 gives the base logits", f"max |diff| {d:.1e}")
        # merged LoRA (W += s B A) = unmerged LoRA
        for label, bits in (("all", 15), ("qkv,fc", 5)):
            cfg = PeftConfig("lora", rank=3, alpha=5.0, targets=bits)
            init = init_test_tensors(cfg, base32, rng, V)
            peft = Peft(cfg, L, C, init).double()
            unmerged = base(x, y, w, peft)[0]
            merged = copy.deepcopy(base)
            for i, t in enumerate(TARGETS):
                if bits & (1 << i):
                    for l, blk in enumerate(merged.blocks):
                        W = getattr(blk, TARGET_MODULE[t]).weight
                        W += cfg.scale * peft.t[f"{t}_B"][l] @ peft.t[f"{t}_A"][l]
            d = maxdiff(merged(x, y, w)[0], unmerged)
            d0 = maxdiff(unmerged, logits)
            check(d <= 1e-12 and d0 > 1e-6, f"lora {label}: merged = unmerged",
                  f"max |diff| {d:.1e}, tolerance 1e-12; the adapter moves the logits by {d0:.1e}")
        # adapters with up_w = 0 (and up_b = 0) are the identity
        cfg = PeftConfig("adapter", adapter_size=3)
        init = init_test_tensors(cfg, base32, rng, V)
        ident = {k: (np.zeros_like(v) if "_up_" in k else v) for k, v in init.items()}
        d = maxdiff(base(x, y, w, Peft(cfg, L, C, ident).double())[0], logits)
        d0 = maxdiff(base(x, y, w, Peft(cfg, L, C, init).double())[0], logits)
        check(d == 0.0 and d0 > 1e-6, "adapter with up_w=0, up_b=0 gives the base logits",
              f"max |diff| {d:.1e}; with the random init the logits move by {d0:.1e}")
        # BitFit with exact copies of the base tensors is the base; with the noisy test init it is not
        for ln in (0, 1):
            cfg = PeftConfig("bitfit", bitfit_ln=ln)
            copies = {n: bitfit_base_tensor(base32, n).numpy() for n, _, _ in peft_layout(cfg, L, C)}
            d = maxdiff(base(x, y, w, Peft(cfg, L, C, copies).double())[0], logits)
            noisy = init_test_tensors(cfg, base32, rng, V)
            d0 = maxdiff(base(x, y, w, Peft(cfg, L, C, noisy).double())[0], logits)
            check(d == 0.0 and d0 > 1e-6, f"bitfit{' ln' if ln else ''} with copies of the base gives the base logits",
                  f"max |diff| {d:.1e}; with the noisy copies the logits move by {d0:.1e}")
        # a soft prompt of wte rows of tokens u is the base model run on (u, x), from position k on
        k = 3
        cfg = PeftConfig("prompt", prompt_len=k)
        u = torch.randint(0, V, (k,), generator=g)
        peft = Peft(cfg, L, C, {"prompt": base32.wte.weight.detach()[u]}).double()
        xu = torch.cat([u.unsqueeze(0).expand(B, k), x], dim=1)
        yu = torch.cat([torch.zeros(B, k, dtype=torch.long), y], dim=1)
        d = maxdiff(base(x, y, w, peft)[0], base(xu, yu)[0][:, k:])
        check(d <= 1e-12, "prompt of wte rows = the base on the prepended tokens", f"max |diff| {d:.1e}")

    # --- the files the oracle writes, read back ---------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--L", "2", "--C", "12", "--NH", "3", "--V", "37", "--maxT", "9", "--B", "2", "--T", "6",
                  "--steps", "2", "--seed", "3"]
        runs = [("v1", []), ("full+weights", ["--weights"]),
                ("lora", ["--peft", "lora", "--lora-targets", "attproj,fcproj", "--weights"]),
                ("bitfit", ["--peft", "bitfit", "--bitfit-ln"]), ("adapter", ["--peft", "adapter", "--weights"]),
                ("prompt", ["--peft", "prompt", "--prompt-len", "3", "--weights"])]
        for label, extra in runs:
            out = os.path.join(tmp, label)
            run_main(common + extra + ["--out", out])
            msg = _check_files(out, "--weights" in extra, extra[1] if extra[:1] == ["--peft"] else None)
            check(msg == "", f"files of a {label} run read back", msg or "sizes, header, hashes")
    print(f"selfcheck: {len(failures)} failure(s) in {time.time() - t0:.1f} s")
    return 1 if failures else 0


def _check_files(out, has_weights, method):
    """'' if PREFIX_debug_state.bin (and PREFIX_peft_init.peft) are consistent, else what is not."""
    import os
    with open(out + "_model.bin", "rb") as f:
        mh = np.frombuffer(f.read(1024), dtype=np.int32)
        base_bytes = f.read()
    maxT, V, L, NH, C, Vp = (int(v) for v in mh[2:8])
    P = len(base_bytes) // 4
    size = os.path.getsize(out + "_debug_state.bin")
    with open(out + "_debug_state.bin", "rb") as f:
        h = np.frombuffer(f.read(1024), dtype="<u4").astype(np.int64)
    B, T, nsteps = int(h[2]), int(h[3]), int(h[6])
    if list(h[7:11]) != [L, NH, C, maxT] or h[0] != 20240327:
        return "header does not match the model"
    version = int(h[1])
    want_version = 2 if (has_weights or method) else 1
    if version != want_version:
        return f"version {version}, expected {want_version}"
    if version == 1:
        n, hw = P, 0
        if any(h[11:]):
            return "v1 header has non-zero words after [10]"
    else:
        hw, pm, n = int(h[11]), int(h[12]), int(h[13]) | (int(h[14]) << 32)
        if hw != int(has_weights) or pm != METHODS[method or "none"]:
            return f"has_weights {hw} method {pm}"
        if method is None and n != P:
            return f"full fine-tuning n_trainable {n} != {P}"
    expect = 1024 + 32 + 2 * 4 * B * T + (4 * B * T if hw else 0) + 4 * B * T * V + 4 + 4 * n + 4 * nsteps + 4 * n
    if size != expect:
        return f"debug state has {size} bytes, expected {expect}"
    if method:
        ph, payload = read_adapter_file(out + "_peft_init.peft")
        cfg = PeftConfig(int(ph[2]), int(ph[9]), struct.unpack("<f", struct.pack("<I", int(ph[11])))[0], int(ph[10]),
                         int(ph[12]), int(ph[13]), int(ph[14]))
        cnt = sum(int(np.prod(s)) for _, s, _ in peft_layout(cfg, L, C))
        if ph[0] != PEFT_MAGIC or ph[1] != PEFT_VERSION or cfg.method != METHODS[method]:
            return "adapter file magic/version/method"
        if list(ph[3:9]) != [L, C, NH, V, Vp, maxT]:
            return "adapter file base shape"
        if not (int(ph[15]) | (int(ph[16]) << 32)) == cnt == payload.size == n:
            return f"adapter file count {payload.size} / header / layout {cnt} / debug state {n}"
        if (int(ph[17]) | (int(ph[18]) << 32)) != hash64(base_bytes):
            return "adapter file base hash"
        if (int(ph[19]) | (int(ph[20]) << 32)) != hash64(payload.tobytes()):
            return "adapter file payload hash"
        if any(ph[21:]):
            return "adapter file header words after [20] are not zero"
    return ""
