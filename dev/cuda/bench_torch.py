"""
The PyTorch baseline for dev/gpu_check.sh: the GPT-2 of dev/reference/gpt2_reference.py, run for
speed (scaled_dot_product_attention, bf16 autocast, torch.compile, fused AdamW) and trained
on random tokens at the same B and T as our d12 benchmark. Prints one line:
    torch: B=.. T=.. ms/step .. tok/s .. MFU ..% peak_mem .. GiB
usage: python dev/cuda/bench_torch.py --B 32 --T 1024 [--steps 20] [--depth 12] [--no-compile]
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from gpt2_reference import GPT  # noqa: E402  the oracle's model, with fused attention


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--T", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "bench_torch.py needs a CUDA GPU"
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    L = args.depth
    C, NH = {12: (768, 12), 24: (1024, 16), 36: (1280, 20), 48: (1600, 25)}.get(L, (64 * L, L))
    V, Vp, maxT = 50257, 50304, 1024
    model = GPT(L, C, NH, Vp, maxT, sdpa=True)  # the padded vocabulary, as our trainer computes it
    model.init_weights(L)
    model = model.cuda()
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0, fused=True)
    step_fn = model if args.no_compile else torch.compile(model)
    x = torch.randint(0, V, (args.B, args.T), device="cuda")
    y = torch.randint(0, V, (args.B, args.T), device="cuda")
    # the same FLOP count as train_gpt.cu: 6 * (params - wpe) + 6 * L * C * T per token
    flops_per_token = 6.0 * (nparams - maxT * C) + 6.0 * L * C * args.T
    times = []
    for step in range(args.steps):
        torch.cuda.synchronize()
        t0 = time.time()
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            _, loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.time() - t0)
    steady = times[3:] if len(times) > 5 else times[1:]  # compile and warmup first
    dt = sum(steady) / len(steady)
    tok = args.B * args.T / dt
    mfu = flops_per_token * tok / (args.peak_tflops * 1e12)
    print(f"torch: B={args.B} T={args.T} ms/step {dt * 1e3:.1f} tok/s {tok:.0f} MFU {100 * mfu:.1f}% "
          f"peak_mem {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB loss {loss.item():.4f} "
          f"(torch {torch.__version__}, {'eager' if args.no_compile else 'compiled'})")


if __name__ == "__main__":
    main()
