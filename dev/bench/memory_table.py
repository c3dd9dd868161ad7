"""
Memory needed per preset, computed from the buffers the programs allocate (no run needed):
parameters (llmc/checkpoint.h's tensor sizes), parameter gradients, AdamW moments, and the
activations kept for the backward pass plus the one-layer gradient scratch (train_gpt.c's
gpt2_allocate, train_gpt.cu's gpt2cu_layout).

  CPU (train_gpt, fp32): params + grads + m + v = 16 bytes per parameter; activations in fp32,
      including the (L, B, NH, T, T) attention matrix and fp32 logits and probabilities.
  GPU (train_gpt_cu, bf16): fp32 master + bf16 weights + fp32 grads + m + v = 18 bytes per
      parameter; bf16 activations, no T x T matrix (the attention keeps a logsumexp per row),
      bf16 logits only. -r 1 keeps ln1, ln2 and the GELU output for one layer instead of L.
      Not counted: the CUDA context, cuBLASLt's 32 MiB workspace, NCCL and cuDNN buffers,
      the small reduction scratch (together well under 1 GiB).
  ZeRO-1 (-z 1) over p processes divides the 8 bytes of m and v per parameter by p.

usage: python3 dev/bench/memory_table.py [-b B] [-t T] [--presets d6,d12,d24,d36,d48]
"""
import argparse

V, VP, MAXT = 50257, 50304, 1024
GPT2 = {12: (768, 12), 24: (1024, 16), 36: (1280, 20), 48: (1600, 25)}  # L: (C, NH)


def preset(name):
    L = int(name[1:])
    C, NH = GPT2.get(L, (64 * L, L))
    return L, C, NH


def num_params(L, C):
    return VP * C + MAXT * C + L * (12 * C * C + 13 * C) + 2 * C


def cpu_act_floats(L, C, NH, B, T):
    BT = B * T
    acts = (BT * C + L * BT * C + 2 * L * BT + 3 * L * BT * C + L * BT * C + L * B * NH * T * T
            + L * BT * C + L * BT * C + 2 * L * BT + 4 * L * BT * C + 4 * L * BT * C + L * BT * C
            + BT * C + 2 * BT + 2 * BT * VP + BT + BT * C)
    scratch = BT * (C + C + C + 3 * C + 4 * C + 4 * C)
    return acts + scratch


def gpu_act_bytes(L, C, NH, B, T, recompute, X=2):
    BT = B * T
    Lr = 1 if recompute else L
    acts = (X * (BT * C + Lr * BT * C + 3 * L * BT * C + L * BT * C + L * BT * C + Lr * BT * C
                 + 4 * L * BT * C + 4 * Lr * BT * C + L * BT * C + BT * C + BT * VP + BT * C)
            + 4 * (2 * L * BT + L * B * NH * T + 2 * L * BT + 2 * BT + BT))
    scratch = X * BT * 14 * C + 4 * B * NH * T
    return acts + scratch


def gib(b):
    return f"{b / 2**30:.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-b", type=int, default=8)
    ap.add_argument("-t", type=int, default=1024)
    ap.add_argument("--presets", default="d6,d12,d24,d36,d48")
    a = ap.parse_args()
    B, T = a.b, a.t
    print(f"Memory per process at B={B}, T={T} (GiB = 2^30 bytes)\n")
    print("| preset | parameters | CPU fp32: params+grads+AdamW | CPU activations | CPU total "
          "| GPU bf16: weights+master+grads+AdamW | GPU activations | GPU total | GPU total, -r 1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in a.presets.split(","):
        L, C, NH = preset(name)
        n = num_params(L, C)
        cpu_state, cpu_act = 16 * n, 4 * cpu_act_floats(L, C, NH, B, T)
        gpu_state = 18 * n
        gpu_act, gpu_act_r = gpu_act_bytes(L, C, NH, B, T, False), gpu_act_bytes(L, C, NH, B, T, True)
        print(f"| {name} (L={L}, C={C}, NH={NH}) | {n / 1e6:.1f}M | {gib(cpu_state)} | {gib(cpu_act)} "
              f"| {gib(cpu_state + cpu_act)} | {gib(gpu_state)} | {gib(gpu_act)} | {gib(gpu_state + gpu_act)} "
              f"| {gib(gpu_state + gpu_act_r)} |")


if __name__ == "__main__":
    main()
