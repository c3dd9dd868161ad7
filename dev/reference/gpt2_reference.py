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
"""
import argparse
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


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

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.NH
        q = q.view(B, T, self.NH, hs).transpose(1, 2)
        k = k.view(B, T, self.NH, hs).transpose(1, 2)
        v = v.view(B, T, self.NH, hs).transpose(1, 2)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        mask = torch.tril(torch.ones(T, T, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.attn_proj(y)

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        x = x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))
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

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # LM head tied to the token embedding
        loss = F.cross_entropy(logits.view(-1, self.V), targets.view(-1))
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


def main():
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
    ap.add_argument("--out", type=str, required=True, help="output prefix")
    args = ap.parse_args()
    assert args.C % args.NH == 0 and args.T <= args.maxT
    Vp = (args.V + 127) // 128 * 128

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = GPT(args.L, args.C, args.NH, args.V, args.maxT)
    model.init_weights(args.L)  # in float32: these exact values go into the checkpoint
    B, T = args.B, args.T
    if args.tokens:
        toks = read_shard_tokens(args.tokens)
        starts = rng.integers(0, len(toks) - T - 1, size=B)
        batch = np.stack([toks[s:s + T + 1] for s in starts])
        assert batch.max() < args.V
    else:
        batch = rng.integers(0, args.V, size=(B, T + 1))
    x = torch.tensor(batch[:, :-1], dtype=torch.long)
    y = torch.tensor(batch[:, 1:], dtype=torch.long)

    params0 = flatten(model.tensors_in_checkpoint_order(), args.V, Vp)
    header = [0] * 256
    header[:8] = [20240326, 3, args.maxT, args.V, args.L, args.NH, args.C, Vp]
    atomic_write(args.out + "_model.bin", [struct.pack("<256i", *header), params0.tobytes()])

    model = model.to(getattr(torch, args.dtype))
    logits, loss = model(x, y)
    loss.backward()
    grads = flatten(model.tensors_in_checkpoint_order(grads=True), args.V, Vp)
    logits_np = logits.detach().to(torch.float32).numpy()
    loss0 = float(loss.item())

    decay, no_decay = model.optimizer_groups()
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    losses = []
    for _ in range(args.steps):
        opt.zero_grad(set_to_none=True)
        _, loss = model(x, y)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        opt.step()
        losses.append(loss.item())
    params_final = flatten(model.tensors_in_checkpoint_order(), args.V, Vp)

    header = [0] * 256
    header[:11] = [20240327, 1, B, T, args.V, Vp, args.steps, args.L, args.NH, args.C, args.maxT]
    hp = [args.lr, args.beta1, args.beta2, args.eps, args.weight_decay, args.grad_clip, 0.0, 0.0]
    atomic_write(args.out + "_debug_state.bin", [
        struct.pack("<256i", *header), struct.pack("<8f", *hp),
        x.numpy().astype(np.int32).tobytes(), y.numpy().astype(np.int32).tobytes(),
        logits_np.astype(np.float32).tobytes(), struct.pack("<f", loss0),
        grads.tobytes(), np.array(losses, dtype=np.float32).tobytes(), params_final.tobytes(),
    ])
    print(f"reference: L={args.L} C={args.C} NH={args.NH} V={args.V} Vp={Vp} maxT={args.maxT} B={B} T={T} "
          f"seed={args.seed} {args.dtype}: loss {loss0:.6f}, after {args.steps} steps "
          f"{losses[-1] if losses else loss0:.6f} -> {args.out}_*.bin")


if __name__ == "__main__":
    main()
