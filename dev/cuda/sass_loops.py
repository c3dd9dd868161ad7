#!/usr/bin/env python3
"""
What the compiler made of a kernel's loops: the SASS (the GPU's own instructions, by cuobjdump)
of the kernels whose names match a pattern, built for sm_90 with the trainer's flags, with the
instruction mix of each loop body. Static counts: a loop's body is counted once, whatever its
trip count, and both sides of a branch inside it are counted.

This is the one look at instruction issue that needs no GPU: the emulated profile sees memory
and FLOPs, ncu sees stalls, and this sees how many instructions stand around each HMMA. Used on
the tensor-core attention (dev/cuda/PROFILE.md): exp2f without --use_fast_math is four
instructions around one MUFU.EX2, and tile loads whose loop stride is blockDim.x stay loops.

    python3 dev/cuda/sass_loops.py                          # attention_check.cu, the tc kernels
    python3 dev/cuda/sass_loops.py --source dev/cuda/attention_check.cu --kernels 'forward_tc.*<64>'
    python3 dev/cuda/sass_loops.py --cubin x.cubin --kernels '.'
    python3 dev/cuda/sass_loops.py --self-test    (the parser and the path walk on hand-counted SASS)

One pass through a loop, counted along a path (the instructions one warp issues for one
iteration): --path START:END walks from START to END (hex addresses of one kernel's SASS, as
printed), takes the conditional forward branches at the addresses in --taken, and runs each
inner loop (named by the address of its backward branch) the times in --trips, once otherwise:

    python3 dev/cuda/sass_loops.py --kernels 'forward_tc_kernel<64>' --path 0x2d10:0x6ba0 \
        --taken 0x2d30,0x2f60,0x3f70 --trips 0x5260:4

The addresses belong to one compiler's output (dev/cuda/results/sass_2026-12-05 names nvcc's).

cuobjdump is not in every CUDA install (nvcc alone is not enough); PyPI has it:
    pip install nvidia-cuda-cuobjdump nvidia-cuda-nvdisasm     (found in .venv, on PATH, or by $CUOBJDUMP)
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

NVCC = os.environ.get("NVCC", "/usr/local/cuda/bin/nvcc")
# dev/cuda/cuda.mk's NVCC_FLAGS for sm_90 (as dev/cuda/kernel_report.py builds)
NVCC_FLAGS = ["-O3", "-std=c++17", "-I.", "-Drestrict=__restrict__", "-diag-suppress", "1675,550,177", "-arch=sm_90"]

# opcode (before the first '.') -> class, for the mix; anything else is "other"
CLASSES = {
    "tensor": {"HMMA", "HGMMA"},
    "shared": {"LDSM", "LDS", "STS", "LDGSTS", "ATOMS"},
    "global": {"LDG", "STG", "LDGDEPBAR", "DEPBAR", "RED", "ATOMG"},
    "sfu": {"MUFU"},
    "fp32": {"FADD", "FMUL", "FFMA", "FMNMX", "FSETP", "FSEL", "FCHK", "F2FP", "FSWZADD"},
    "int": {"IMAD", "IADD3", "LEA", "SHF", "LOP3", "ISETP", "VIADD", "IABS", "PRMT", "SEL", "IMNMX", "MOV", "CS2R",
            "S2R", "S2UR", "LDC", "ULDC", "UMOV", "ULEA", "USHF", "UIADD3", "UIMAD", "PLOP3", "R2UR"},
    "control": {"BRA", "BSSY", "BSYNC", "BAR", "EXIT", "CALL", "RET", "NOP", "WARPSYNC", "SHFL", "VOTE"},
}


def find_cuobjdump():
    env = os.environ.get("CUOBJDUMP")
    if env:
        return env
    for p in [shutil.which("cuobjdump"), "/usr/local/cuda/bin/cuobjdump"] + \
            sorted(glob.glob(".venv/lib/python3*/site-packages/nvidia/cu*/bin/cuobjdump")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def opcode(text):
    words = text.split()
    op = words[1] if words[0].startswith("@") else words[0]
    return op.split(".")[0]


def op_class(op):
    for name, ops in CLASSES.items():
        if op in ops:
            return name
    return "other"


def parse_functions(sass):
    """{mangled name: [(address, instruction text)]} from cuobjdump -sass output"""
    funcs, cur = {}, None
    for line in sass.splitlines():
        m = re.match(r"\s+Function : (\S+)", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;", line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(2)))
    return funcs


def demangle(name):
    cxxfilt = shutil.which("c++filt")
    if not cxxfilt:
        return name
    return subprocess.run([cxxfilt, name], capture_output=True, text=True).stdout.strip() or name


def loops(ins):
    """(start, end) address pairs of the backward branches: each one closes a loop body"""
    out = []
    for a, text in ins:
        if opcode(text) != "BRA":
            continue
        targets = re.findall(r"0x([0-9a-f]+)", text)
        if targets and int(targets[-1], 16) < a:
            out.append((int(targets[-1], 16), a))
    return out


def walk(ins, start, end, taken, trips):
    """(instructions, HMMAs) issued from start to end along the path given by taken and trips"""
    index = {a: i for i, (a, _) in enumerate(ins)}
    if start not in index or end not in index:
        sys.exit(f"sass_loops: --path {start:#x}:{end:#x}: not instruction addresses of this kernel")
    count, hmma, i, seen = 0, 0, index[start], {}
    while True:
        a, text = ins[i]
        count += 1
        hmma += opcode(text) == "HMMA"
        if a == end:
            return count, hmma
        if count > 1000000:
            sys.exit("sass_loops: --path does not reach its end (a loop without --trips?)")
        m = re.search(r"BRA\s+(?:!?U?P\d,\s*)?0x([0-9a-f]+)", text) if opcode(text) == "BRA" else None
        if m and "BRA.DIV" not in text:
            target, conditional = int(m.group(1), 16), text.startswith("@")
            if not conditional:
                i = index[target]
                continue
            if target < a:  # an inner loop's backward branch
                seen[a] = seen.get(a, 0) + 1
                if seen[a] < trips.get(a, 1):
                    i = index[target]
                    continue
                seen[a] = 0
            elif a in taken:
                i = index[target]
                continue
        i += 1


def mix(ins, lo, hi):
    ops = [opcode(t) for a, t in ins if lo <= a <= hi]
    classes = collections.Counter(op_class(o) for o in ops)
    return len(ops), classes, collections.Counter(ops)


def report(funcs, pattern, top, path=None):
    shown = 0
    for mangled, ins in funcs.items():
        name = demangle(mangled)
        if not re.search(pattern, name):
            continue
        shown += 1
        print(f"\n{name}: {len(ins)} instructions")
        if path is not None:
            (start, end), taken, trips = path
            n, hmma = walk(ins, start, end, taken, trips)
            per = f", {(n - hmma) / hmma:.1f} others per HMMA" if hmma else ""
            print(f"  path {start:#06x}-{end:#06x}: {n} instructions issued, {hmma} HMMA{per}")
            continue
        spans = loops(ins)
        for lo, hi in spans:
            n, classes, ops = mix(ins, lo, hi)
            inner = [(a, b) for a, b in spans if lo <= a and b <= hi and (a, b) != (lo, hi)]
            depth = sum(1 for a, b in spans if a <= lo and hi <= b and (a, b) != (lo, hi))
            tensor = classes.get("tensor", 0)
            per = f", {(n - tensor) / tensor:.1f} others per HMMA" if tensor else ""
            print(f"  {'  ' * depth}loop {lo:#06x}-{hi:#06x}: {n} instructions ({len(inner)} loops inside){per}")
            print(f"  {'  ' * depth}  " + "  ".join(f"{k} {v}" for k, v in sorted(classes.items(), key=lambda x: -x[1])))
            print(f"  {'  ' * depth}  top: " + " ".join(f"{o} {c}" for o, c in ops.most_common(top)))
    return shown


# A hand-written function in cuobjdump's format: an outer loop 0x10-0xa0 around an inner loop
# 0x30-0x50 and an if (0x60 branches over 0x70-0x80). One pass 0x10 -> 0xa0 with the inner loop
# run 3 times and the if's branch not taken: 0x10, 0x20, 3 x (0x30, 0x40, 0x50), 0x60, 0x70,
# 0x80, 0x90, 0xa0 = 16 instructions, 6 of them HMMA; with 0x60 taken: 14 (0x70, 0x80 skipped).
SELF_TEST_SASS = """
\t\tFunction : _Z6kernelPf
        /*0000*/                   MOV R1, c[0x0][0x28] ;
        /*0010*/                   IMAD R2, R0, 0x4, RZ ;
        /*0020*/                   LDSM.16.M88.4 R4, [R2] ;
        /*0030*/                   HMMA.16816.F32.BF16 R8, R4, R6, R8 ;
        /*0040*/                   HMMA.16816.F32.BF16 R12, R4, R6, R12 ;
        /*0050*/              @!P1 BRA 0x30 ;
        /*0060*/               @P2 BRA P3, 0x90 ;
        /*0070*/                   FSETP.GEU.AND P4, PT, R8, -126, PT ;
        /*0080*/                   MUFU.EX2 R8, R8 ;
        /*0090*/                   FFMA R9, R8, R9, R10 ;
        /*00a0*/               @P0 BRA 0x10 ;
        /*00b0*/                   EXIT ;
\t\tFunction : _Z5otherv
        /*0000*/                   EXIT ;
"""


def self_test():
    fails = 0

    def check(name, ok, detail=""):
        nonlocal fails
        print(f"{'PASS' if ok else 'FAIL'}: sass_loops {name}{': ' + detail if detail else ''}")
        fails += not ok

    funcs = parse_functions(SELF_TEST_SASS)
    check("parses both functions", sorted(funcs) == ["_Z5otherv", "_Z6kernelPf"], str(sorted(funcs)))
    ins = funcs.get("_Z6kernelPf", [])
    check("reads every instruction of the kernel", len(ins) == 12, f"{len(ins)} of 12")
    check("opcode under a predicate", opcode("@!P1 BRA 0x30") == "BRA" and opcode("HMMA.16816.F32.BF16 R8") == "HMMA")
    check("finds the two loops by their backward branches", sorted(loops(ins)) == [(0x10, 0xa0), (0x30, 0x50)],
          str(loops(ins)))
    n, classes, _ = mix(ins, 0x10, 0xa0)
    check("the outer loop's mix", n == 10 and classes["tensor"] == 2 and classes["sfu"] == 1 and classes["control"] == 3,
          f"{n} {dict(classes)}")
    check("a path through the inner loop 3 times", walk(ins, 0x10, 0xa0, set(), {0x50: 3}) == (16, 6),
          str(walk(ins, 0x10, 0xa0, set(), {0x50: 3})))
    check("a taken branch (BRA with a predicate operand) skips its block",
          walk(ins, 0x10, 0xa0, {0x60}, {0x50: 3}) == (14, 6), str(walk(ins, 0x10, 0xa0, {0x60}, {0x50: 3})))
    check("an inner loop without --trips runs once", walk(ins, 0x10, 0xa0, set(), {}) == (10, 2),
          str(walk(ins, 0x10, 0xa0, set(), {})))
    return 1 if fails else 0


def main():
    if "--self-test" in sys.argv[1:]:
        sys.exit(self_test())
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="dev/cuda/attention_check.cu", help="a .cu file to build for sm_90")
    ap.add_argument("--cubin", help="an sm_90 cubin already built (instead of --source)")
    ap.add_argument("--kernels", default=r"attention_.*_tc_kernel", help="regular expression on the demangled names")
    ap.add_argument("--top", type=int, default=12, help="opcodes listed per loop")
    ap.add_argument("-D", action="append", default=[], help="extra -D for the build (e.g. -D ENABLE_FP32)")
    ap.add_argument("--path", help="START:END (hex): count one pass along a path instead (one kernel)")
    ap.add_argument("--taken", default="", help="with --path: the conditional forward branches taken (hex, commas)")
    ap.add_argument("--trips", default="", help="with --path: ADDR:N,... the inner loops' trip counts")
    args = ap.parse_args()
    path = None
    if args.path:
        try:
            start, end = (int(x, 16) for x in args.path.split(":"))
            taken = {int(x, 16) for x in args.taken.split(",") if x}
            trips = {int(a, 16): int(n) for a, n in (t.split(":") for t in args.trips.split(",") if t)}
        except ValueError:
            sys.exit(f"sass_loops: --path/--taken/--trips: expected hex addresses (START:END, A,B, ADDR:N), "
                     f"got {args.path!r} {args.taken!r} {args.trips!r}")
        path = ((start, end), taken, trips)
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    tool = find_cuobjdump()
    if tool is None:
        sys.exit("sass_loops: no cuobjdump (not in this CUDA install): .venv/bin/pip install nvidia-cuda-cuobjdump "
                 "nvidia-cuda-nvdisasm, or set CUOBJDUMP=/path/to/cuobjdump")
    with tempfile.TemporaryDirectory() as tmp:
        cubin = args.cubin
        if cubin is None:
            if not os.path.isfile(args.source):
                sys.exit(f"sass_loops: --source {args.source}: no such file")
            cubin = os.path.join(tmp, "k.cubin")
            cmd = [NVCC] + NVCC_FLAGS + [f"-D{d}" for d in args.D] + ["-cubin", "-o", cubin, args.source]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"sass_loops: building {args.source} failed:\n{r.stderr}")
        elif not os.path.isfile(cubin):
            sys.exit(f"sass_loops: --cubin {cubin}: no such file")
        # cuobjdump runs nvdisasm, which the PyPI wheels put beside it
        env = dict(os.environ, PATH=os.path.dirname(os.path.abspath(tool)) + os.pathsep + os.environ.get("PATH", ""))
        r = subprocess.run([tool, "-sass", cubin], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            sys.exit(f"sass_loops: {tool} -sass {cubin} failed:\n{r.stderr}")
    funcs = parse_functions(r.stdout)
    if path is not None:
        matching = [f for f in funcs if re.search(args.kernels, demangle(f))]
        if len(matching) != 1:
            sys.exit(f"sass_loops: --path needs --kernels to match one kernel; {len(matching)} match {args.kernels!r}")
    if report(funcs, args.kernels, args.top, path) == 0:
        sys.exit(f"sass_loops: no kernel matches --kernels {args.kernels!r} ({len(funcs)} in the build)")


if __name__ == "__main__":
    main()
