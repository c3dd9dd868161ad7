#!/usr/bin/env python3
"""Copies CUDA sources into a tree that g++ compiles against the CPU emulation (dev/cuda/emu).

Three rewrites, nothing else:
  - kernel<<<grid, block[, smem[, stream]]>>>(args);
        -> emu_launch(dim3(grid), dim3(block), (size_t)(smem), [=]() { kernel(args); }, "kernel", stream);
     (the arguments copied: the kernel runs in its stream's order, maybe after the caller returns)
  - extern __shared__ ... T name[];  ->  T* name = (T*)emu_dynamic_smem();
  - __CUDACC__ -> LLMC_EMU_CUDACC (the CUDA sections compile, without g++'s system headers
    taking it for nvcc)
usage: emu_transform.py OUTDIR FILE...   (FILE relative to the repository root)
"""
import os
import re
import sys


def find_kernel_start(text, pos):
    """Start of the kernel expression ending just before pos: name or name<template args>."""
    i = pos
    while i > 0 and text[i - 1] in " \t":
        i -= 1
    if text[i - 1] == ">":  # template arguments: walk back to the matching '<'
        depth = 0
        j = i - 1
        while j >= 0:
            if text[j] == ">":
                depth += 1
            elif text[j] == "<":
                depth -= 1
                if depth == 0:
                    break
            j -= 1
        i = j
    while i > 0 and (text[i - 1].isalnum() or text[i - 1] in "_:"):
        i -= 1
    return i


def split_top_level(s):
    parts, depth, cur = [], 0, ""
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def rewrite_launches(text, path):
    out, pos = [], 0
    while True:
        k = text.find("<<<", pos)
        if k < 0:
            out.append(text[pos:])
            return "".join(out)
        start = find_kernel_start(text, k)
        name = text[start:k].strip()
        end_cfg = text.find(">>>", k)
        cfg = split_top_level(text[k + 3:end_cfg])
        if len(cfg) < 2 or len(cfg) > 4:
            sys.exit("%s: cannot read the launch configuration of %s" % (path, name))
        j = end_cfg + 3
        while text[j] in " \t\n":
            j += 1
        if text[j] != "(":
            sys.exit("%s: no arguments after the launch of %s" % (path, name))
        depth, a = 0, j
        while True:
            if text[a] == "(":
                depth += 1
            elif text[a] == ")":
                depth -= 1
                if depth == 0:
                    break
            a += 1
        args = text[j + 1:a]
        smem = cfg[2] if len(cfg) > 2 else "0"
        out.append(text[pos:start])
        stream = cfg[3] if len(cfg) > 3 else "0"
        out.append("emu_launch(dim3(%s), dim3(%s), (size_t)(%s), [=]() { %s(%s); }, \"%s\", %s)"
                   % (cfg[0], cfg[1], smem, name, args, name.replace('"', "'"), stream))
        pos = a + 1


EXTERN_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\d+\)\s+)?([\w ]+?)\s+(\w+)\s*\[\s*\]\s*;")


def transform(text, path):
    text = text.replace("__CUDACC__", "LLMC_EMU_CUDACC")
    text = EXTERN_SHARED.sub(lambda m: "%s* %s = (%s*)emu_dynamic_smem();" % (m.group(1), m.group(2), m.group(1)), text)
    if "<<<" in text:
        text = rewrite_launches(text, path)
    return text


def main():
    outdir = sys.argv[1]
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        dst = os.path.join(outdir, path)
        os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
        new = transform(text, path)
        old = None
        if os.path.exists(dst):
            with open(dst, encoding="utf-8") as f:
                old = f.read()
        if new != old:  # keep timestamps of unchanged copies (make)
            with open(dst, "w", encoding="utf-8") as f:
                f.write(new)


if __name__ == "__main__":
    main()
