#!/usr/bin/env python3
"""A roofline prediction of one training step of GPT-2 124M on an H100 and an H200, from the
emulated memory profile (dev/cuda/profile.sh) and stated formulas (dev/cuda/PROFILE.md).
Everything it prints is a PREDICTION: no GPU was used.

usage: predict_step.py [--profiles DIR] [--B 64] [--T 1024] [--out FILE.md]
       predict_step.py --self-test

How:
  - The profile holds one step at a small shape (C 768, NH 12: GPT-2's layer; B, T, Vp small)
    at L and L + 1 layers. Per kernel (phase, name): one layer = count(L + 1) - count(L), the
    rest = count(L) - L * one layer; the full model = rest + 12 * one layer.
  - To the target B, T, Vp: counts of the kernels that touch (B, T, C) tensors scale with B*T;
    the attention kernels' requests and sectors (forward, dkdv, dq: K and V are read once per
    query tile) with B*T*T, their unique footprint with B*T;
    the classifier kernel with B*T*Vp; AdamW and the gradient norm with the parameter count.
    These are the kernels' loop structures (llmc/*.h); the T*T rule overstates the part of
    attention's requests that grows only with T (Q, O, dO read once): an upper bound.
  - A kernel's DRAM bytes are its unique footprint (distinct 32-byte sectors it reads and
    writes: a perfect cache) and its time max(bytes / bandwidth, FLOPs / peak, shared-memory
    wavefronts / (SMs x clock)): a wavefront is one 128-byte shared-memory access cycle of an
    SM, so bank conflicts cost time here. The sectors of every request (no reuse at all) are
    printed beside it as the other bound.
  - FLOPs are only counted where they can bind: attention (causal, per head T*T/2 scores):
    forward 2 B NH T^2 hs (QK^T and PV), dkdv 4 B NH T^2 hs (QK^T again, dO V^T, P^T dO, dS^T Q),
    dq 3 B NH T^2 hs (QK^T, dO V^T, dS K); our scalar kernels run on the fp32 CUDA cores, the tc
    kernels on the bf16 tensor cores, each at ATTENTION_EFFICIENCY of that peak (assumed). The
    elementwise kernels' few FLOPs per byte never bind.
  - The matmuls (cuBLASLt, not emulated): 2 M N K FLOPs each, forward and the two of backward
    (dinp, dweight), at MATMUL_EFFICIENCY of the dense bf16 peak (an assumption: 0.65 for
    GPT-2's K = 768 shapes, below the 0.78-0.81 seen for 8192^3 on an H200 here, KINDS.md;
    0.5 and 0.8 are printed too), or their bytes at the bandwidth if that is longer.
  - Not in the emulation, added: the gradient memset (4 bytes a parameter), and a launch gap of
    LAUNCH_GAP_US per kernel launch (nothing overlaps in our single stream).
  - Not seen at all: caches beyond the two bounds, latency, instruction issue, occupancy's
    effect on achieved bandwidth, clocks, power. These make a real step slower, not faster.
"""
import csv
import glob
import json
import os
import re
import sys

CARDS = {
    # datasheet peaks; achievable bandwidth: H200 ~4.3 TB/s device-to-device copy seen here
    # (KINDS.md, 2026-10-28 and 11-04: 90% of 4.8); the H100 at the same 90% of 3.35
    # shared memory: 128 bytes (one wavefront) per clock per SM, 132 SMs at the 1980 MHz boost
    # clock (datasheet; 1980 MHz was read on an H200 here under load, KINDS.md)
    "H100 SXM": {"bw": 3.35e12 * 0.9, "bf16": 989.4e12, "fp32": 66.9e12, "wavefronts": 132 * 1.98e9},
    "H200 SXM": {"bw": 4.3e12, "bf16": 989.4e12, "fp32": 66.9e12, "wavefronts": 132 * 1.98e9},
}
MATMUL_EFFICIENCY = 0.65
# attention's FLOPs at a fraction of the peak of the units that run them (assumptions): the tensor
# cores at 0.35, about what FlashAttention-2 reaches on an H100 in the FlashAttention-3 paper
# (Shah et al., 2024: roughly 300-350 of 989 TFLOP/s forward); our WMMA kernels are simpler, so
# this is optimistic for them. The scalar kernels' FMAs at 0.5 of the fp32 CUDA-core peak.
ATTENTION_EFFICIENCY = {"tc": 0.35, "scalar": 0.5}
LAUNCH_GAP_US = 4.0
PARAM_KERNELS = ("adamw_kernel", "sum_of_squares_partial_kernel", "sum_of_squares_finish_kernel")
ATTENTION_FLOP_UNITS = {"forward": 2, "backward_dkdv": 4, "backward_dq": 3}
# llm.c's published figure for this model: GPT-2 124M, 10B tokens in about 90 minutes on one
# 8X A100 80GB SXM node, "up to ~60% MFU" (karpathy/llm.c discussion #481, May 2024)
LLMC_A100_TOKENS_PER_S = 10e9 / (90 * 60) / 8
A100_BF16 = 312e12
COUNTERS = ["gld_requests", "gld_sectors", "gld_bytes", "gst_requests", "gst_sectors", "gst_bytes",
            "gld_unique_sectors", "gst_unique_sectors", "gld_ideal_sectors", "gst_ideal_sectors",
            "shld_requests", "shld_wavefronts", "shld_phases", "shst_requests", "shst_wavefronts", "shst_phases",
            "launches"]


def base(name):
    return re.sub(r"<.*", "", name).split("::")[-1]


def attention_part(name):
    m = re.match(r"attention_(forward|backward_dkdv|backward_dq)(_tc)?_kernel", base(name))
    return m.group(1) if m else None


def load_profile(path):
    """CSV -> {(phase, kernel): counters summed over its launches}, and the shape (.json)"""
    groups = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["phase"], r["kernel"])
            g = groups.setdefault(key, dict.fromkeys(COUNTERS, 0))
            for c in COUNTERS[:-1]:
                g[c] += int(r[c])
            g["launches"] += 1
    with open(path + ".json") as f:
        shape = json.load(f)
    return groups, shape


def gpt2_124m_params(Vp=50304, L=12, C=768, maxT=1024):
    return Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C


def full_model_counts(small, large, target):
    """the two profiles (L and L + 1 layers) -> counts for the target shape (12 layers)"""
    gs, ss = small
    gl, sl = large
    if sl["L"] != ss["L"] + 1 or any(sl[k] != ss[k] for k in ("B", "T", "Vp", "C", "NH", "attention", "precision")):
        sys.exit("error: predict_step: the two profiles must differ by one layer only")
    s_bt = target["B"] * target["T"] / (ss["B"] * ss["T"])
    n_full = gpt2_124m_params(target["Vp"], target["L"])
    out = {}
    for key in sorted(set(gs) | set(gl)):
        a = gs.get(key, dict.fromkeys(COUNTERS, 0))
        b = gl.get(key, dict.fromkeys(COUNTERS, 0))
        name = base(key[1])
        if name in PARAM_KERNELS:
            scale = {c: a[c] * n_full / ss["parameters"] for c in COUNTERS}
            scale["launches"] = a["launches"] + (b["launches"] - a["launches"]) * (target["L"] - ss["L"])
            out[key] = scale
            continue
        layer = {c: b[c] - a[c] for c in COUNTERS}
        rest = {c: a[c] - ss["L"] * layer[c] for c in COUNTERS}
        if any(v < 0 for v in layer.values()) or any(v < 0 for v in rest.values()):
            sys.exit("error: predict_step: %s: counts do not split into layers (%s)" % (key, layer))
        s = {c: s_bt for c in COUNTERS}
        s["launches"] = 1
        if attention_part(key[1]):
            # requests and sectors grow with T * T (K, V re-read for every query tile); the unique
            # footprint (q, k, v, out and their gradients) only with T
            for c in COUNTERS:
                if c not in ("launches", "gld_unique_sectors", "gst_unique_sectors"):
                    s[c] *= target["T"] / ss["T"]
        elif name == "fused_classifier_kernel":
            for c in COUNTERS:
                if c != "launches":
                    s[c] *= target["Vp"] / ss["Vp"]
        full = {c: (rest[c] + target["L"] * layer[c]) * s[c] for c in COUNTERS}
        out[key] = full
    return out, n_full


def kernel_time(key, c, shape, target, card):
    dram = 32.0 * (c["gld_unique_sectors"] + c["gst_unique_sectors"])
    t_mem = dram / card["bw"]
    part = attention_part(key[1])
    flops, t_flop = 0.0, 0.0
    if part:
        B, T, NH, hs = target["B"], target["T"], 12, 64
        flops = ATTENTION_FLOP_UNITS[part] * B * NH * T * T * hs * target["L"]
        kind = "tc" if "_tc_" in key[1] else "scalar"
        peak = (card["bf16"] if kind == "tc" else card["fp32"]) * ATTENTION_EFFICIENCY[kind]
        t_flop = flops / peak
    # shared memory: every wavefront (bank conflicts included) at one per SM per clock
    t_smem = (c["shld_wavefronts"] + c["shst_wavefronts"]) / card["wavefronts"]
    t = max(t_mem, t_flop, t_smem)
    bound = "compute" if t == t_flop and t_flop > 0 else "shared memory" if t == t_smem and t_smem > t_mem else "memory"
    return t, dram, flops, bound


def matmuls(target, card, eff):
    """the step's cuBLASLt matmuls: (time s, FLOPs, bytes)"""
    B, T, L, C, Vp = target["B"], target["T"], target["L"], 768, target["Vp"]
    M = B * T
    shapes = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * L + [(C, Vp)]
    t = flops = nbytes = 0.0
    for K, N in shapes:
        for _ in range(3):  # forward, backward dinp, backward dweight
            f = 2.0 * M * N * K
            by = 2.0 * (M * K + K * N + M * N)
            t += max(f / (card["bf16"] * eff), by / card["bw"])
            flops += f
            nbytes += by
    return t, flops, nbytes


def predict(counts, shape, target, card, eff, n_full):
    rows = []
    for key, c in counts.items():
        t, dram, flops, bound = kernel_time(key, c, shape, target, card)
        rows.append((key, c, t, dram, flops, bound))
    t_kernels = sum(r[2] for r in rows)
    t_mm, mm_flops, _ = matmuls(target, card, eff)
    t_memset = 4.0 * n_full / card["bw"]
    # the profiled kernels, the matmuls (3 for each of 4 L + 1) and the memset
    launches = sum(c["launches"] for c in counts.values()) + 3 * (4 * target["L"] + 1) + 1
    t_launch = launches * LAUNCH_GAP_US * 1e-6
    total = t_kernels + t_mm + t_memset + t_launch
    tokens = target["B"] * target["T"]
    # llm.c's MFU rule (llmc/checkpoint.h): 6 N + 6 L C T FLOPs a token
    flops_per_token = 6.0 * n_full + 6.0 * target["L"] * 768 * target["T"]
    return {
        "rows": rows, "t_kernels": t_kernels, "t_mm": t_mm, "t_memset": t_memset, "t_launch": t_launch,
        "launches": launches, "total": total, "tok_s": tokens / total,
        "mfu": flops_per_token * tokens / total / card["bf16"],
        "t_attention": sum(r[2] for r in rows if attention_part(r[0][1])),
        "t_param": sum(r[2] for r in rows if base(r[0][1]) in PARAM_KERNELS),
    }


def fmt_ms(t):
    return "%.2f" % (t * 1e3)


def report(profiles_dir, target):
    lines = []
    runs = {}
    for path in sorted(glob.glob(os.path.join(profiles_dir, "step_*_L*.csv"))):
        m = re.match(r"step_(\w+?)_(\w+?)_L(\d+)\.csv$", os.path.basename(path))
        if m:
            runs.setdefault((m.group(1), m.group(2)), {})[int(m.group(3))] = path
    configs = []
    for (prec, att), by_l in sorted(runs.items()):
        ls = sorted(by_l)
        if len(ls) < 2 or ls[1] != ls[0] + 1:
            continue
        small, large = load_profile(by_l[ls[0]]), load_profile(by_l[ls[1]])
        counts, n_full = full_model_counts(small, large, target)
        configs.append((prec, att, counts, small[1], n_full, small))
    if not configs:
        sys.exit("error: predict_step: no pair of profiles (L and L + 1) in %s: run dev/cuda/profile.sh" % profiles_dir)
    sh = configs[0][3]
    lines.append("# Predicted training step of GPT-2 124M (B=%d, T=%d, L=12, Vp=%d) on H100 and H200: a PREDICTION, no GPU used"
                 % (target["B"], target["T"], target["Vp"]))
    lines.append("")
    lines.append("From the emulated memory profile of one step at B=%d, T=%d, Vp=%d, C=768, NH=12, with %d and %d layers "
                 "(dev/cuda/profile.sh), scaled by the rules in dev/cuda/predict_step.py's docstring. Bandwidth: %s. "
                 "Matmuls at %.2f of the dense bf16 peak, attention at %s of its units' peak (assumed). "
                 "Launch gap %.0f us a launch (assumed)."
                 % (sh["B"], sh["T"], sh["Vp"], sh["L"], sh["L"] + 1,
                    ", ".join("%s %.2f TB/s" % (k, v["bw"] / 1e12) for k, v in CARDS.items()), MATMUL_EFFICIENCY,
                    ", ".join("%s %.2f" % kv for kv in sorted(ATTENTION_EFFICIENCY.items())), LAUNCH_GAP_US))
    lines.append("")
    lines.append("## The step")
    lines.append("")
    lines.append("| build | card | matmuls ms | attention ms | other kernels ms | AdamW + norm ms | memset ms | launch gaps ms | "
                 "step ms | tokens/s | MFU | at matmul eff. 0.5 / 0.8: tokens/s |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for prec, att, counts, shape, n_full, _ in configs:
        for cname, card in CARDS.items():
            p = predict(counts, shape, target, card, MATMUL_EFFICIENCY, n_full)
            lo = predict(counts, shape, target, card, 0.5, n_full)
            hi = predict(counts, shape, target, card, 0.8, n_full)
            other = p["t_kernels"] - p["t_attention"] - p["t_param"]
            lines.append("| %s, %s attention | %s | %s | %s | %s | %s | %s | %s | %s | %.0fk | %.1f%% | %.0fk / %.0fk |"
                         % (prec, att, cname, fmt_ms(p["t_mm"]), fmt_ms(p["t_attention"]), fmt_ms(other), fmt_ms(p["t_param"]),
                            fmt_ms(p["t_memset"]), fmt_ms(p["t_launch"]), fmt_ms(p["total"]), p["tok_s"] / 1e3,
                            100 * p["mfu"], lo["tok_s"] / 1e3, hi["tok_s"] / 1e3))
    h100_same_mfu = LLMC_A100_TOKENS_PER_S * CARDS["H100 SXM"]["bf16"] / A100_BF16
    lines.append("")
    lines.append("llm.c, published: GPT-2 124M on 8X A100 80GB SXM, 10B tokens in about 90 minutes (karpathy/llm.c "
                 "discussion #481): %.0fk tokens/s per A100, about 60%% MFU by its own count. At the same MFU an H100's "
                 "bf16 peak would give %.0fk tokens/s (derived here, not published)." % (LLMC_A100_TOKENS_PER_S / 1e3,
                                                                                         h100_same_mfu / 1e3))
    # per-kernel table for each build on the H100
    for prec, att, counts, shape, n_full, _ in configs:
        card = CARDS["H100 SXM"]
        p = predict(counts, shape, target, card, MATMUL_EFFICIENCY, n_full)
        lines.append("")
        lines.append("## Kernels: %s, %s attention (H100 SXM)" % (prec, att))
        lines.append("")
        lines.append("Sectors/request and its ideal (the fewest sectors the request's distinct bytes fit in) come from the "
                     "emulated step as it is (no scaling); bank conflicts = shared wavefronts - phases. DRAM MB is the "
                     "unique footprint at the target shape; 'no reuse MB' counts every request's sectors.")
        lines.append("")
        lines.append("| phase | kernel | launches | load sectors/req (ideal) | store sectors/req (ideal) | shared bank conflicts "
                     "(% of wavefronts) | DRAM MB | no reuse MB | GFLOP | bound | predicted ms |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        emu = configs[[c[:2] for c in configs].index((prec, att))][5][0]
        for key, c, t, dram, flops, bound in sorted(p["rows"], key=lambda r: -r[2]):
            e = emu.get(key)
            if e is None:
                continue

            def spr(req, sec, ideal):
                return "%.2f (%.2f)" % (e[sec] / e[req], e[ideal] / e[req]) if e[req] else "-"
            waves = e["shld_wavefronts"] + e["shst_wavefronts"]
            conf = waves - e["shld_phases"] - e["shst_phases"]
            lines.append("| %s | %s | %.0f | %s | %s | %s | %.1f | %.1f | %.1f | %s | %.3f |" % (
                key[0], key[1], c["launches"], spr("gld_requests", "gld_sectors", "gld_ideal_sectors"),
                spr("gst_requests", "gst_sectors", "gst_ideal_sectors"),
                "%d (%.0f%%)" % (conf, 100.0 * conf / waves) if waves else "-",
                dram / 1e6, 32.0 * (c["gld_sectors"] + c["gst_sectors"]) / 1e6, flops / 1e9, bound, t * 1e3))
    lines.append("")
    lines.append("## Flags (from the emulated counts)")
    lines.append("")
    flags = []
    for prec, att, counts, shape, n_full, small in configs:
        for key, e in small[0].items():
            for kind, req, sec, ideal in (("load", "gld_requests", "gld_sectors", "gld_ideal_sectors"),
                                          ("store", "gst_requests", "gst_sectors", "gst_ideal_sectors")):
                if e[req] and e[sec] > 1.25 * e[ideal]:
                    flags.append("- uncoalesced %s: %s %s (%s, %s): %.2f sectors a request, ideal %.2f"
                                 % (kind, key[0], key[1], prec, att, e[sec] / e[req], e[ideal] / e[req]))
            waves = e["shld_wavefronts"] + e["shst_wavefronts"]
            conf = waves - e["shld_phases"] - e["shst_phases"]
            if waves and conf > 0.05 * waves:
                flags.append("- shared-memory bank conflicts: %s %s (%s, %s): %d extra wavefronts, %.0f%% of %d"
                             % (key[0], key[1], prec, att, conf, 100.0 * conf / waves, waves))
    lines.extend(sorted(set(flags)) or ["none: every request within 1.25x of its ideal sectors, bank conflicts under 5%"])
    return "\n".join(lines) + "\n"


def self_test():
    fails = 0

    def check(what, ok, detail=""):
        nonlocal fails
        fails += not ok
        print("%s: predict_step %s %s" % ("PASS" if ok else "FAIL", what, detail))
    check("GPT-2 124M parameter count", gpt2_124m_params() == 124475904, str(gpt2_124m_params()))
    check("attention kernel names", [attention_part(n) for n in ("attention_forward_kernel<2>", "attention_backward_dq_tc_kernel<64>",
                                                                  "attention_backward_dsum_kernel")] == ["forward", "backward_dq", None])
    # a layer's counts and the rest split and scale as stated
    z = dict.fromkeys(COUNTERS, 0)
    a = dict(z, gld_unique_sectors=10 + 4, launches=3)   # rest 10, one layer 4, at L = 1
    b = dict(z, gld_unique_sectors=10 + 8, launches=5)
    shape = {"B": 1, "T": 64, "L": 1, "C": 768, "NH": 12, "Vp": 2048, "parameters": 1000, "attention": "scalar", "precision": "bf16"}
    target = {"B": 2, "T": 128, "L": 12, "Vp": 50304}
    out, _ = full_model_counts(({("forward", "gelu_forward_kernel"): a}, shape),
                               ({("forward", "gelu_forward_kernel"): b}, dict(shape, L=2)), target)
    got = out[("forward", "gelu_forward_kernel")]
    check("layer split and B*T scaling", abs(got["gld_unique_sectors"] - (10 + 12 * 4) * 4) < 1e-9, str(got["gld_unique_sectors"]))
    check("launches: rest + 12 layers", got["launches"] == 1 + 12 * 2, str(got["launches"]))
    out, _ = full_model_counts(({("forward", "attention_forward_kernel<2>"): a}, shape),
                               ({("forward", "attention_forward_kernel<2>"): b}, dict(shape, L=2)), target)
    got = out[("forward", "attention_forward_kernel<2>")]
    check("attention's footprint scales with B*T", abs(got["gld_unique_sectors"] - (10 + 12 * 4) * 4) < 1e-9, str(got["gld_unique_sectors"]))
    a2 = dict(a, gld_sectors=10 + 4)
    b2 = dict(b, gld_sectors=10 + 8)
    out, _ = full_model_counts(({("forward", "attention_forward_kernel<2>"): a2}, shape),
                               ({("forward", "attention_forward_kernel<2>"): b2}, dict(shape, L=2)), target)
    got = out[("forward", "attention_forward_kernel<2>")]
    check("attention's sectors scale with B*T*T", abs(got["gld_sectors"] - (10 + 12 * 4) * 8) < 1e-9, str(got["gld_sectors"]))
    # the roofline of one kernel: 3.2e9 bytes at 3.2e12 B/s is 1 ms
    card = {"bw": 3.2e12, "bf16": 1e15, "fp32": 1e14 / ATTENTION_EFFICIENCY["scalar"], "wavefronts": 1e12}
    t, dram, _, bound = kernel_time(("forward", "gelu_forward_kernel"), dict(z, gld_unique_sectors=5e7, gst_unique_sectors=5e7),
                                    shape, target, card)
    check("memory-bound kernel time", abs(t - 1e-3) < 1e-12 and bound == "memory", "%.6f s" % t)
    t, _, flops, bound = kernel_time(("forward", "attention_forward_kernel<2>"), z, shape, target, card)
    check("attention FLOPs (2 B NH T^2 hs, 12 layers)", flops == 2 * 2 * 12 * 128 * 128 * 64 * 12 and bound == "compute", str(flops))
    t, _, _, bound = kernel_time(("forward", "gelu_forward_kernel"), dict(z, shld_wavefronts=3e9, shst_wavefronts=1e9), shape, target, card)
    check("shared-memory-bound kernel time (wavefronts / rate)", abs(t - 4e-3) < 1e-12 and bound == "shared memory", "%.6f s" % t)
    t_mm, mm_flops, _ = matmuls({"B": 1, "T": 1, "L": 1, "Vp": 768}, {"bw": 1e30, "bf16": 1.0}, 1.0)
    check("matmul FLOPs (3 x 2 M N K)", mm_flops == 3 * 2 * (768 * 2304 + 768 * 768 + 768 * 3072 * 2 + 768 * 768), str(mm_flops))
    return 1 if fails else 0


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(self_test())
    profiles, out = "build/profile", None
    target = {"B": 64, "T": 1024, "L": 12, "Vp": 50304}
    i = 0
    while i < len(args):
        if args[i] in ("--profiles", "--out", "--B", "--T") and i + 1 < len(args):
            if args[i] == "--profiles":
                profiles = args[i + 1]
            elif args[i] == "--out":
                out = args[i + 1]
            else:
                try:
                    target[args[i][2:]] = int(args[i + 1])
                except ValueError:
                    sys.exit("error: predict_step: %s %s: not an integer" % (args[i], args[i + 1]))
            i += 2
        else:
            sys.exit("usage: predict_step.py [--profiles DIR] [--B 64] [--T 1024] [--out FILE.md] | --self-test")
    text = report(profiles, target)
    sys.stdout.write(text)
    if out:
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
