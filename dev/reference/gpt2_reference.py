"""
The oracle: GPT-2 in PyTorch (autograd, none of our kernels), for test_gpt.c and test_gpt.cu.

For a config and a seed it writes
  <out>_model.bin        the initial weights, an llm.c version-3 checkpoint (fp32)
  <out>_debug_state.bin  inputs, targets, logits, loss and every parameter gradient of one
                         forward/backward on that batch, then the losses of N AdamW steps on
                         the same batch and the parameters after them.
The math runs in float64 from the fp32 initial weights, so the reference error is far below
the fp32 tolerances the tests check ours against.

debug state layout (little-endian):
  int32[256] header: 20240327 (magic), 1 (version), B, T, V, Vp, nsteps, L, NH, C, maxT
  float32[8]  lr, beta1, beta2, eps, weight_decay, grad_clip, 0, 0
  int32[B*T]  inputs;  int32[B*T] targets
  float32[B*T*V] logits (the real vocabulary only, no padding)
  float32 loss
  float32[P] gradients, in checkpoint order and layout (wte padded to Vp rows)
  float32[nsteps] the loss at each AdamW step (before its update)
  float32[P] parameters after the nsteps updates
Version 2 (--weights or --peft) and 3 (--dpo or --distill) extend it: header[11] has_weights,
header[12] PEFT method, header[13..14] trainable count (low, high 32 bits); after the targets
float32[B*T] loss weights if has_weights; gradients and parameters are then those of the
trainable vector. Version 3 adds header[15] the loss kind (1 DPO sigmoid, 2 IPO, 3 hinge,
4 distillation), header[16] 1 for reverse KL; the hyperparameter floats 6 and 7 hold beta and
label smoothing (DPO) or alpha and tau (distillation); after the weights (then the response
mask) DPO adds float32[B] the reference log-probs of the rows and float32[B] the initial
model's own log-probs of them (what a trainer's reference pass must compute). Distillation
writes the teacher as <out>_teacher.bin (version 3 checkpoint). dev/reference/align_reference.py
defines both losses.
"""
import argparse
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peft_reference  # noqa: E402  (beside this file)
import align_reference  # noqa: E402


class Block(nn.Module):
    def __init__(self, C, NH, sdpa=False):
        super().__init__()
        self.NH = NH
        self.sdpa = sdpa  # fused scaled_dot_product_attention (PyTorch 2) instead of explicit math
        self.ln_1 = nn.LayerNorm(C)
        self.c_attn = nn.Linear(C, 3 * C)
        self.attn_proj = nn.Linear(C, C)
        self.ln_2 = nn.LayerNorm(C)
        self.c_fc = nn.Linear(C, 4 * C)
        self.mlp_proj = nn.Linear(4 * C, C)

    def linear(self, l, target, mod, x, peft):
        return mod(x) if peft is None else peft.linear(l, target, mod, x)

    def layernorm(self, l, which, mod, x, peft):
        return mod(x) if peft is None else peft.layernorm(l, which, mod, x)

    def attention(self, x, l=0, peft=None):
        B, T, C = x.shape
        q, k, v = self.linear(l, "qkv", self.c_attn, x, peft).split(C, dim=2)
        hs = C // self.NH
        q = q.view(B, T, self.NH, hs).transpose(1, 2)
        k = k.view(B, T, self.NH, hs).transpose(1, 2)
        v = v.view(B, T, self.NH, hs).transpose(1, 2)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.linear(l, "attproj", self.attn_proj, y.transpose(1, 2).contiguous().view(B, T, C), peft)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.linear(l, "attproj", self.attn_proj, y, peft)

    def forward(self, x, l=0, peft=None):
        # peft (dev/reference/peft_reference.py): LoRA / BitFit inside the linear layers and
        # LayerNorms, adapters on each sublayer's output before the residual add
        h = self.attention(self.layernorm(l, "ln1", self.ln_1, x, peft), l, peft)
        x = x + (h if peft is None else peft.adapter(l, "attn", h))
        h = self.linear(l, "fcproj", self.mlp_proj, F.gelu(
            self.linear(l, "fc", self.c_fc, self.layernorm(l, "ln2", self.ln_2, x, peft), peft), approximate="tanh"), peft)
        x = x + (h if peft is None else peft.adapter(l, "mlp", h))
        return x


class GPT(nn.Module):
    def __init__(self, L, C, NH, V, maxT, sdpa=False):
        super().__init__()
        self.V, self.maxT = V, maxT
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList([Block(C, NH, sdpa) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)

    def init_weights(self, L):
        # GPT-2's: normal(0, 0.02), residual projections scaled by 1/sqrt(2L), zero biases.
        # LayerNorm weights are drawn near 1 (not exactly 1) and biases near 0 so that their
        # gradients are tested with non-trivial values.
        for name, p in self.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                nn.init.normal_(p, mean=1.0, std=0.1)
            elif ".ln_" in name or name == "ln_f.bias":
                nn.init.normal_(p, mean=0.0, std=0.02)
            elif name.endswith("bias"):
                nn.init.normal_(p, mean=0.0, std=0.02)  # non-zero, for the same reason
            elif name.endswith("attn_proj.weight") or name.endswith("mlp_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, mean=0.0, std=0.02)

    def forward(self, idx, targets, weights=None, peft=None):
        """logits (B, T, V) at the T token positions, and the loss: the mean cross-entropy, or
        with weights (B, T) sum(w * loss_t) / sum(w). peft: a peft_reference.Peft or None."""
        B, T = idx.shape
        if peft is None:
            x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        else:
            x = peft.embed(self, idx)  # with a soft prompt: k + T positions
        for l, block in enumerate(self.blocks):
            x = block(x, l, peft)
        k = x.shape[1] - T
        if k:
            x = x[:, k:]  # the prompt positions predict nothing
        xf = self.ln_f(x) if peft is None else peft.layernorm(0, "lnf", self.ln_f, x)
        logits = xf @ self.wte.weight.t()  # LM head tied to the token embedding
        if weights is None:
            loss = F.cross_entropy(logits.view(-1, self.V), targets.view(-1))
        else:
            per_pos = F.cross_entropy(logits.view(-1, self.V), targets.view(-1), reduction="none")
            w = weights.reshape(-1).to(per_pos.dtype)
            loss = (w * per_pos).sum() / w.sum()
        return logits, loss

    def tensors_in_checkpoint_order(self, grads=False):
        """The 16 llm.c tensors as float32 numpy arrays (wte padded later)."""
        get = (lambda p: p.grad) if grads else (lambda p: p)
        stack = lambda f: torch.stack([get(f(b)) for b in self.blocks])
        t = [
            get(self.wte.weight), get(self.wpe.weight),
            stack(lambda b: b.ln_1.weight), stack(lambda b: b.ln_1.bias),
            stack(lambda b: b.c_attn.weight), stack(lambda b: b.c_attn.bias),
            stack(lambda b: b.attn_proj.weight), stack(lambda b: b.attn_proj.bias),
            stack(lambda b: b.ln_2.weight), stack(lambda b: b.ln_2.bias),
            stack(lambda b: b.c_fc.weight), stack(lambda b: b.c_fc.bias),
            stack(lambda b: b.mlp_proj.weight), stack(lambda b: b.mlp_proj.bias),
            get(self.ln_f.weight), get(self.ln_f.bias),
        ]
        return [x.detach().to(torch.float32).numpy() for x in t]

    def optimizer_groups(self):
        """Weight decay on the matrices (wte, wpe, qkvw, attprojw, fcw, fcprojw) only."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (decay if p.dim() == 2 else no_decay).append(p)
        return decay, no_decay


def load_llmc_checkpoint(path):
    """A version-3 (fp32) llm.c checkpoint as a GPT in float64."""
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        assert header[0] == 20240326 and header[1] == 3, f"{path}: not a version-3 model checkpoint"
        maxT, V, L, NH, C, Vp = (int(x) for x in header[2:8])
        params = np.frombuffer(f.read(), dtype=np.float32)
    model = GPT(L, C, NH, V, maxT)
    shapes = [(Vp, C), (maxT, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C),
              (L, C), (L, C), (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]
    tensors, off = [], 0
    for shape in shapes:
        n = int(np.prod(shape))
        tensors.append(torch.tensor(params[off:off + n].reshape(shape)))
        off += n
    assert off == len(params), f"{path}: size does not match its header"
    with torch.no_grad():
        model.wte.weight.copy_(tensors[0][:V])
        model.wpe.weight.copy_(tensors[1])
        names = ["ln_1.weight", "ln_1.bias", "c_attn.weight", "c_attn.bias", "attn_proj.weight", "attn_proj.bias",
                 "ln_2.weight", "ln_2.bias", "c_fc.weight", "c_fc.bias", "mlp_proj.weight", "mlp_proj.bias"]
        for l, block in enumerate(model.blocks):
            sd = block.state_dict()
            for name, t in zip(names, tensors[2:14]):
                sd[name].copy_(t[l])
        model.ln_f.weight.copy_(tensors[14])
        model.ln_f.bias.copy_(tensors[15])
    return model.double()


def flatten(tensors, V, Vp):
    wte = np.zeros((Vp, tensors[0].shape[1]), dtype=np.float32)
    wte[:V] = tensors[0]
    return np.concatenate([wte.ravel()] + [t.ravel() for t in tensors[1:]]).astype(np.float32)


def atomic_write(path, chunks):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        for c in chunks:
            f.write(c)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_shard_tokens(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        assert header[0] == 20240520 and header[1] == 1, f"{path}: not a version-1 token shard"
        return np.frombuffer(f.read(), dtype=np.uint16).astype(np.int64)


def draw_weights(rng, B, T):
    """Per-target-position weights in {0, 1}, P(1) = 0.6, with one whole row zero when B >= 2
    (that sequence contributes nothing) and at least one 1."""
    w = (rng.random((B, T)) < 0.6).astype(np.float32)
    zero_row = int(rng.integers(0, B)) if B >= 2 else -1
    if zero_row >= 0:
        w[zero_row] = 0.0
    if w.sum() == 0:
        rows = [b for b in range(B) if b != zero_row]
        w[rows[int(rng.integers(0, len(rows)))], int(rng.integers(0, T))] = 1.0
    return w


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--L", type=int, default=2)
    ap.add_argument("--C", type=int, default=72)
    ap.add_argument("--NH", type=int, default=3)
    ap.add_argument("--V", type=int, default=997)
    ap.add_argument("--maxT", type=int, default=16)
    ap.add_argument("--B", type=int, default=3)
    ap.add_argument("--T", type=int, default=13)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokens", type=str, default=None, help="token shard to take the batch from (default: random ids)")
    ap.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    ap.add_argument("--out", type=str, default=None, help="output prefix (required unless --selfcheck)")
    ap.add_argument("--weights", action="store_true",
                    help="weighted loss: random per-position weights in {0,1} (P(1)=0.6, one whole row 0 when B>=2)")
    ap.add_argument("--peft", choices=["lora", "bitfit", "adapter", "prompt"], default=None,
                    help="freeze the base model and train only these PEFT tensors (llmc/peft.h)")
    ap.add_argument("--lora-rank", type=int, default=3)
    ap.add_argument("--lora-alpha", type=float, default=5.0)
    ap.add_argument("--lora-targets", type=str, default="all", help="comma list of qkv,attproj,fc,fcproj, or all")
    ap.add_argument("--bitfit-ln", action="store_true", help="bitfit: also the LayerNorm gains")
    ap.add_argument("--adapter-size", type=int, default=5)
    ap.add_argument("--prompt-len", type=int, default=3)
    ap.add_argument("--dpo", choices=list(align_reference.DPO_TYPES), default=None,
                    help="DPO loss on B/2 pairs of rows (chosen 2i, rejected 2i+1) sharing a prompt; "
                         "the reference log-probs are the initial model's plus N(0, 3) noise")
    ap.add_argument("--dpo-beta", type=float, default=0.5)
    ap.add_argument("--dpo-label-smoothing", type=float, default=0.0)
    ap.add_argument("--distill", action="store_true",
                    help="distillation from a teacher of --teacher-L/C/NH (same V, maxT): <out>_teacher.bin")
    ap.add_argument("--teacher-L", type=int, default=3)
    ap.add_argument("--teacher-C", type=int, default=48)
    ap.add_argument("--teacher-NH", type=int, default=4)
    ap.add_argument("--distill-alpha", type=float, default=0.6)
    ap.add_argument("--distill-tau", type=float, default=2.0)
    ap.add_argument("--distill-reverse", action="store_true")
    ap.add_argument("--selfcheck", action="store_true",
                    help="check the PEFT and weighted-loss math (finite differences, identities) and exit")
    args = ap.parse_args(argv)
    if not args.selfcheck and args.out is None:
        ap.error("--out is required")
    try:
        args.lora_target_bits = peft_reference.parse_targets(args.lora_targets)
    except ValueError as e:
        ap.error(str(e))
    if args.peft == "lora" and (args.lora_rank < 1 or not args.lora_alpha > 0):
        ap.error("--lora-rank must be >= 1 and --lora-alpha > 0")
    if args.peft == "adapter" and args.adapter_size < 1:
        ap.error("--adapter-size must be >= 1")
    if args.peft == "prompt" and (args.prompt_len < 1 or args.prompt_len + args.T > args.maxT):
        ap.error(f"--prompt-len {args.prompt_len}: needs 1 <= k and k + T <= maxT ({args.T} + k <= {args.maxT})")
    if args.dpo and (args.B % 2 or args.T < 3 or args.weights or not args.dpo_beta > 0):
        ap.error("--dpo: needs an even B, T >= 3, beta > 0, and not --weights (the response mask is the weights)")
    if args.distill and args.dpo:
        ap.error("--distill and --dpo are separate tests")
    return args


def write_checkpoint(path, model, L, NH, C, V, maxT):
    Vp = (V + 127) // 128 * 128
    header = [0] * 256
    header[:8] = [20240326, 3, maxT, V, L, NH, C, Vp]
    atomic_write(path, [struct.pack("<256i", *header), flatten(model.tensors_in_checkpoint_order(), V, Vp).tobytes()])


def main(argv=None):
    args = parse_args(argv)
    if args.selfcheck:
        failures = []

        def check(ok, name, detail):
            print(f"{'PASS' if ok else 'FAIL'}: {name} ({detail})")
            if not ok:
                failures.append(name)
        align_reference.selfcheck(check)
        return peft_reference.selfcheck(GPT, main) or (1 if failures else 0)
    assert args.C % args.NH == 0 and args.T <= args.maxT
    Vp = (args.V + 127) // 128 * 128

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = GPT(args.L, args.C, args.NH, args.V, args.maxT)
    model.init_weights(args.L)  # in float32: these exact values go into the checkpoint
    B, T = args.B, args.T
    if args.dpo:
        batch, mask_np = align_reference.draw_pairs(rng, B, T, args.V)
    elif args.tokens:
        toks = read_shard_tokens(args.tokens)
        starts = rng.integers(0, len(toks) - T - 1, size=B)
        batch = np.stack([toks[s:s + T + 1] for s in starts])
        assert batch.max() < args.V
    else:
        batch = rng.integers(0, args.V, size=(B, T + 1))
    x = torch.tensor(batch[:, :-1], dtype=torch.long)
    y = torch.tensor(batch[:, 1:], dtype=torch.long)
    # drawn after the batch, so the batch (and the model) are the same with and without the flags
    w_np = draw_weights(rng, B, T) if args.weights else None
    if args.dpo:
        w_np = mask_np  # the response mask travels as the loss weights

    params0 = flatten(model.tensors_in_checkpoint_order(), args.V, Vp)
    header = [0] * 256
    header[:8] = [20240326, 3, args.maxT, args.V, args.L, args.NH, args.C, Vp]
    atomic_write(args.out + "_model.bin", [struct.pack("<256i", *header), params0.tobytes()])

    dtype = getattr(torch, args.dtype)
    pcfg = peft = None
    if args.peft:
        pcfg = peft_reference.PeftConfig(args.peft, args.lora_rank, args.lora_alpha, args.lora_target_bits,
                                         int(args.bitfit_ln), args.adapter_size, args.prompt_len)
        # its own stream (not the base init's): the test init of every tensor, random and non-zero
        prng = np.random.default_rng([args.seed, 0x50454654])
        init = peft_reference.init_test_tensors(pcfg, model, prng, args.V)
        payload = np.concatenate([init[n].ravel() for n, _, _ in peft_reference.peft_layout(pcfg, args.L, args.C)])
        peft_reference.write_adapter_file(args.out + "_peft_init.peft", pcfg, args.L, args.C, args.NH, args.V, Vp,
                                          args.maxT, payload, peft_reference.hash64(params0.tobytes()), atomic_write)

    model = model.to(dtype)
    if args.peft:
        for p in model.parameters():
            p.requires_grad_(False)  # the base is frozen
        peft = peft_reference.Peft(pcfg, args.L, args.C, {k: torch.tensor(v) for k, v in init.items()}).to(dtype)
    w = torch.tensor(w_np, dtype=dtype) if w_np is not None else None

    kind, hp67, extra_dpo, teacher_logits = 0, [0.0, 0.0], [], None
    if args.dpo:
        kind, hp67 = align_reference.DPO_TYPES[args.dpo], [args.dpo_beta, args.dpo_label_smoothing]
        with torch.no_grad():
            init_logp = align_reference.row_logps(model(x, y, None, peft)[0], y, w)
        ref = init_logp + torch.tensor(rng.normal(0.0, 3.0, size=B), dtype=dtype)
        # The noise sets each pair's log-ratio difference h. The hinge, relu(1 - beta h), is flat
        # past its kink: with every pair there the loss and the gradients are exactly 0 and the
        # checks compare nothing (2 pairs at beta 0.3: about 5% of seeds; CI failed on one, 0/0),
        # and a pair near the kink may fall on either side of it in fp32. For the hinge the noise
        # is drawn again until some pair is before the kink and none is within 0.1 of it.
        while args.dpo == "hinge":
            z = args.dpo_beta * ((init_logp[0::2] - ref[0::2]) - (init_logp[1::2] - ref[1::2]))
            if bool((z < 1.0).any()) and bool(((z - 1.0).abs() > 0.1).all()):
                break
            ref = init_logp + torch.tensor(rng.normal(0.0, 3.0, size=B), dtype=dtype)
        extra_dpo = [ref.numpy().astype(np.float32).tobytes(), init_logp.numpy().astype(np.float32).tobytes()]
        ref = torch.tensor(ref.numpy().astype(np.float32), dtype=dtype)  # what the C reads back
    if args.distill:
        kind, hp67 = align_reference.LOSS_DISTILL, [args.distill_alpha, args.distill_tau]
        torch.manual_seed(args.seed + 1)
        teacher = GPT(args.teacher_L, args.teacher_C, args.teacher_NH, args.V, args.maxT)
        teacher.init_weights(args.teacher_L)
        # a teacher that predicts something: its logits scaled up (a sharper distribution than
        # a fresh init's near-uniform one), so the KL term is far from trivial
        with torch.no_grad():
            teacher.wte.weight.mul_(6.0)
        write_checkpoint(args.out + "_teacher.bin", teacher, args.teacher_L, args.teacher_NH, args.teacher_C, args.V, args.maxT)
        teacher = teacher.to(dtype)
        with torch.no_grad():
            teacher_logits = teacher(x, y)[0]

    def loss_of(logits, plain_loss):
        if args.dpo:
            return align_reference.dpo_loss(logits, y, w, ref, args.dpo, args.dpo_beta, args.dpo_label_smoothing)[0]
        if args.distill:
            return align_reference.distill_loss(logits, y, w, teacher_logits, args.distill_alpha, args.distill_tau,
                                                args.distill_reverse)
        return plain_loss

    logits, loss = model(x, y, w, peft)
    loss = loss_of(logits, loss)
    loss.backward()
    if peft is None:
        grads = flatten(model.tensors_in_checkpoint_order(grads=True), args.V, Vp)
        decay, no_decay = model.optimizer_groups()
        trainable = list(model.parameters())
    else:
        grads = peft.flat(grads=True)
        decay, no_decay = peft.optimizer_groups()
        trainable = peft.params_in_order()
    logits_np = logits.detach().to(torch.float32).numpy()
    loss0 = float(loss.item())

    groups = [g for g in ({"params": decay, "weight_decay": args.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    losses = []
    for _ in range(args.steps):
        opt.zero_grad(set_to_none=True)
        logits_s, loss = model(x, y, w, peft)
        loss = loss_of(logits_s, loss)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(trainable, args.grad_clip)
        opt.step()
        losses.append(loss.item())
    if peft is None:
        params_final = flatten(model.tensors_in_checkpoint_order(), args.V, Vp)
    else:
        params_final = peft.flat()
    assert grads.size == params_final.size

    hp = [args.lr, args.beta1, args.beta2, args.eps, args.weight_decay, args.grad_clip] + hp67
    version = 3 if kind else 2 if (args.weights or args.peft) else 1
    header = [0] * 256
    header[:11] = [20240327, version, B, T, args.V, Vp, args.steps, args.L, args.NH, args.C, args.maxT]
    extra = []
    if version >= 2:
        n = grads.size
        header[11:15] = [int(w_np is not None), pcfg.method if pcfg else 0, n & 0xFFFFFFFF, n >> 32]
        header[15:17] = [kind, int(args.distill_reverse)]
        header = [struct.unpack("<i", struct.pack("<I", v & 0xFFFFFFFF))[0] for v in header]
        if w_np is not None:
            extra = [w_np.astype(np.float32).tobytes()]
        extra += extra_dpo
    atomic_write(args.out + "_debug_state.bin", [
        struct.pack("<256i", *header), struct.pack("<8f", *hp),
        x.numpy().astype(np.int32).tobytes(), y.numpy().astype(np.int32).tobytes(), *extra,
        logits_np.astype(np.float32).tobytes(), struct.pack("<f", loss0),
        grads.tobytes(), np.array(losses, dtype=np.float32).tobytes(), params_final.tobytes(),
    ])
    what = ""
    if version >= 2:
        what = (f" v{version} weights={int(w_np is not None)}" + (f" (sum {int(w_np.sum())})" if w_np is not None else "") +
                f" peft={args.peft or 'none'} trainable={grads.size}" +
                (f" dpo={args.dpo} beta={args.dpo_beta} ls={args.dpo_label_smoothing}" if args.dpo else "") +
                (f" distill alpha={args.distill_alpha} tau={args.distill_tau}{' reverse' if args.distill_reverse else ''}"
                 if args.distill else ""))
    print(f"reference: L={args.L} C={args.C} NH={args.NH} V={args.V} Vp={Vp} maxT={args.maxT} B={B} T={T} "
          f"seed={args.seed} {args.dtype}{what}: loss {loss0:.6f}, after {args.steps} steps "
          f"{losses[-1] if losses else loss0:.6f} -> {args.out}_*.bin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
