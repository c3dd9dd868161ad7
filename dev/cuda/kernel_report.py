#!/usr/bin/env python3
"""The static kernel report (dev/cuda/PROFILE.md): for every kernel of the GPU trainer, built for
sm_90 as the trainer builds it, the registers per thread, spills, static and dynamic shared memory,
and the occupancy that follows at the launch configuration a training step uses (block size and
dynamic shared memory, taken from the emulated profile's CSV: dev/cuda/profile.sh).

usage: kernel_report.py [--precision bf16|fp32] [--profile CSV ...] [--out FILE.md]
       kernel_report.py --self-test      (the parser and the occupancy rules on known cases)

Flags, printed as FLAG lines and marked in the table: any spill (stack spill stores or loads),
and an occupancy under the floor of 25% of the SM's 64 warps (OCCUPANCY_FLOOR): below 16 warps
an SM has too few warps to hide the memory latency of a memory-bound kernel. A kernel that no
step launches is listed without occupancy.

The occupancy rules are NVIDIA's for compute capability 9.0 (the CUDA C Programming Guide's
table of technical specifications, and the occupancy calculator's allocation rules): 64K
32-bit registers, 64 warps, 32 blocks and 228 KiB of shared memory per SM, at most 227 KiB a
block; registers allocated per warp in units of 256; shared memory in units of 128 bytes plus
1 KiB the runtime reserves per block. Exit status 0 (flags are findings, not errors); 1 if the
build or the parse fails.
"""
import csv
import math
import os
import re
import subprocess
import sys

SM90 = {
    "regs_per_sm": 65536, "max_warps": 64, "max_blocks": 32, "smem_per_sm": 228 * 1024,
    "smem_per_block_max": 227 * 1024, "reg_unit": 256, "smem_unit": 128, "smem_reserved": 1024,
    "max_regs_per_thread": 255,
}
OCCUPANCY_FLOOR = 0.25
NVCC = os.environ.get("NVCC", "/usr/local/cuda/bin/nvcc")
# dev/cuda/cuda.mk's NVCC_FLAGS (without the host compiler's warnings) for sm_90 only
NVCC_FLAGS = ["-O3", "-lineinfo", "-std=c++17", "-I.", "-Drestrict=__restrict__", "-diag-suppress", "1675,550,177",
              "-gencode", "arch=compute_90,code=sm_90", "-Xcompiler", "-fopenmp", "-Xptxas", "-v"]


def parse_ptxas(text):
    """ptxas -v output -> {mangled name: {regs, spill_st, spill_ld, stack, smem}}"""
    kernels, cur = {}, None
    for line in text.splitlines():
        m = re.search(r"Compiling entry function '([^']+)' for 'sm_(\d+)'", line)
        if m:
            cur = {"regs": 0, "spill_st": 0, "spill_ld": 0, "stack": 0, "smem": 0, "arch": int(m.group(2))}
            kernels[m.group(1)] = cur
            continue
        if cur is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            cur["stack"], cur["spill_st"], cur["spill_ld"] = (int(g) for g in m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            cur["regs"] = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            cur["smem"] = int(s.group(1)) if s else 0
    return kernels


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.splitlines()))


def base_name(demangled):
    """'void f<2>(int*, ...)' -> ('f', 'f<2>')"""
    s = re.sub(r"^void\s+", "", demangled)
    s = s.split("(")[0]
    return re.sub(r"<.*", "", s), s


def occupancy(threads, regs, smem_bytes, arch=SM90):
    """-> (blocks per SM, active warps per SM, fraction of the SM's warps, the limiting resource)"""
    warps = math.ceil(threads / 32)
    regs_per_warp = math.ceil(max(regs, 1) * 32 / arch["reg_unit"]) * arch["reg_unit"]
    limits = {
        "warps": arch["max_warps"] // warps,
        "blocks": arch["max_blocks"],
        "registers": (arch["regs_per_sm"] // regs_per_warp) // warps,
    }
    if smem_bytes > arch["smem_per_block_max"]:
        return 0, 0, 0.0, "shared memory (over the per-block maximum)"
    smem_alloc = math.ceil(smem_bytes / arch["smem_unit"]) * arch["smem_unit"] + arch["smem_reserved"]
    limits["shared memory"] = arch["smem_per_sm"] // smem_alloc
    blocks = min(limits.values())
    # every resource that binds, in a fixed order
    limiter = ", ".join(k for k in ("warps", "blocks", "registers", "shared memory") if limits[k] == blocks)
    return blocks, blocks * warps, blocks * warps / arch["max_warps"], limiter


# the launches spell some template arguments by name: the profiled model's values (dev/cuda/profile_step.cu)
TEMPLATE_NAMES = {"HS": "64"}


def launch_configs(csv_paths):
    """kernel as the launches name it ('f' or 'f<2>') -> set of (threads per block, dynamic smem)"""
    cfg = {}
    for path in csv_paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                name = r["kernel"].split("::")[-1]
                for k, v in TEMPLATE_NAMES.items():
                    name = name.replace("<%s>" % k, "<%s>" % v)
                threads = int(r["block_x"]) * int(r["block_y"]) * int(r["block_z"])
                cfg.setdefault(name, set()).add((threads, int(r["dyn_smem"])))
    return cfg


def build_report(ptxas_text, configs, precision):
    kernels = parse_ptxas(ptxas_text)
    if not kernels:
        sys.exit("error: kernel_report: no kernel in the ptxas output")
    names = demangle(sorted(kernels))
    rows, flags = [], []
    for mangled, k in sorted(kernels.items(), key=lambda kv: names[kv[0]]):
        base, full = base_name(names[mangled])
        spill = k["spill_st"] + k["spill_ld"]
        # a template instance only by its own launches; a plain kernel by its name
        launches = sorted(configs.get(full if full != base else base, []))
        if not launches:
            rows.append((full, k["regs"], spill, k["stack"], k["smem"], "-", "-", "-", "-",
                         "not launched in the profiled step", ""))
            if spill:
                flags.append("FLAG: %s spills %d bytes (stores + loads)" % (full, spill))
            continue
        for threads, dyn in launches:
            blocks, warps, occ, limiter = occupancy(threads, k["regs"], k["smem"] + dyn)
            marks = []
            if spill:
                marks.append("spill")
                flags.append("FLAG: %s spills %d bytes (stores + loads)" % (full, spill))
            if occ < OCCUPANCY_FLOOR:
                marks.append("low occupancy")
                flags.append("FLAG: %s at %d threads, %d B dynamic smem: occupancy %.0f%% (%d warps/SM), limited by %s"
                             % (full, threads, dyn, 100 * occ, warps, limiter))
            rows.append((full, k["regs"], spill, k["stack"], k["smem"], dyn, threads, "%d / %d" % (blocks, warps),
                         "%.0f%%" % (100 * occ), limiter, ", ".join(marks)))
    lines = ["| kernel (%s, sm_90) | registers | spill bytes | stack | static smem | dynamic smem | threads/block | "
             "blocks / warps per SM | occupancy | limited by | flag |" % precision,
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(str(x) for x in r) + " |")
    return lines, flags


def self_test():
    fails = 0

    def check(what, got, want):
        nonlocal fails
        ok = got == want
        fails += not ok
        print("%s: kernel_report %s: %r%s" % ("PASS" if ok else "FAIL", what, got, "" if ok else " (expected %r)" % (want,)))

    # 256 threads, 32 registers, no smem: 8 warps a block, 64 warps by threads, 65536 / (32*32) = 64 warps by registers
    check("occupancy 256 threads 32 regs", occupancy(256, 32, 0), (8, 64, 1.0, "warps, registers"))
    # 235 registers -> 240 per thread (unit 256 per warp: 7680 a warp), 8 warps fit, 2 blocks of 128
    check("occupancy 128 threads 235 regs", occupancy(128, 235, 0), (2, 8, 0.125, "registers"))
    # 48 registers: 1536 a warp, 42 warps, 5 blocks of 8; 41216 B smem + 1 KiB reserved: 228 KiB / 42240 B = 5
    check("occupancy 256 threads 48 regs 41216 B smem", occupancy(256, 48, 41216), (5, 40, 0.625, "registers, shared memory"))
    # 64 threads, 16 registers: 32 blocks a SM at most -> 64 warps
    check("occupancy 64 threads (block limit)", occupancy(64, 16, 0), (32, 64, 1.0, "warps, blocks"))
    check("occupancy 32 threads (block limit binds)", occupancy(32, 16, 0), (32, 32, 0.5, "blocks"))
    check("occupancy over the smem maximum", occupancy(128, 32, 228 * 1024)[0], 0)
    sample = """ptxas info    : Compiling entry function '_Z6kernelILi2EEvPfi' for 'sm_90'
ptxas info    : Function properties for _Z6kernelILi2EEvPfi
    8 bytes stack frame, 12 bytes spill stores, 16 bytes spill loads
ptxas info    : Used 255 registers, used 1 barriers, 4096 bytes smem
ptxas info    : Compiling entry function '_Z5otherPf' for 'sm_90'
ptxas info    : Function properties for _Z5otherPf
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 20 registers, used 0 barriers
"""
    k = parse_ptxas(sample)
    check("parse: kernels", sorted(k), ["_Z5otherPf", "_Z6kernelILi2EEvPfi"])
    check("parse: registers, spills, smem", [k["_Z6kernelILi2EEvPfi"][f] for f in ("regs", "spill_st", "spill_ld", "stack", "smem")],
          [255, 12, 16, 8, 4096])
    check("parse: no smem", k["_Z5otherPf"]["smem"], 0)
    lines, flags = build_report(sample, {"kernel<2>": {(256, 0)}, "other": {(1024, 0)}}, "test")
    check("report: a spill is flagged", any("kernel<2>" in f and "spills 28" in f for f in flags), True)
    check("report: low occupancy is flagged", any("occupancy 12%" in f for f in flags), True)
    check("report: a healthy kernel is not flagged", any("other" in f for f in flags), False)
    return 1 if fails else 0


def main():
    args = sys.argv[1:]
    if args == ["--self-test"]:
        sys.exit(self_test())
    precision, profiles, out = "bf16", [], None
    i = 0
    while i < len(args):
        if args[i] == "--precision" and i + 1 < len(args) and args[i + 1] in ("bf16", "fp32"):
            precision = args[i + 1]
            i += 2
        elif args[i] == "--profile" and i + 1 < len(args):
            profiles.append(args[i + 1])
            i += 2
        elif args[i] == "--out" and i + 1 < len(args):
            out = args[i + 1]
            i += 2
        else:
            sys.exit("usage: kernel_report.py [--precision bf16|fp32] [--profile CSV ...] [--out FILE.md] | --self-test")
    for p in profiles:
        if not os.path.isfile(p):
            sys.exit("error: kernel_report: --profile %s: no such file (dev/cuda/profile.sh writes it)" % p)
    cmd = [NVCC] + NVCC_FLAGS + (["-DENABLE_FP32"] if precision == "fp32" else []) + \
        ["-c", "train_gpt.cu", "-o", "/dev/null"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit("error: kernel_report: the sm_90 build failed:\n" + res.stderr[-2000:])
    lines, flags = build_report(res.stderr, launch_configs(profiles), precision)
    text = "\n".join(lines + [""] + (flags or ["no spills; every launched kernel at or above %d%% occupancy" % (100 * OCCUPANCY_FLOOR)]))
    print(text)
    if out:
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)


if __name__ == "__main__":
    main()
