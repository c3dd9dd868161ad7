"""
Compares two llm.c model checkpoints: prints the largest parameter difference relative to the
largest parameter magnitude, and exits 1 if it exceeds the tolerance.
usage: compare_models.py A.bin B.bin TOLERANCE
"""
import sys

import numpy as np


def load(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype=np.int32)
        if header[0] != 20240326 or header[1] != 3:
            sys.exit(f"error: {path}: not a version-3 model checkpoint")
        return header[:8], np.frombuffer(f.read(), dtype=np.float32)


ha, a = load(sys.argv[1])
hb, b = load(sys.argv[2])
if not np.array_equal(ha, hb) or a.shape != b.shape:
    sys.exit(f"error: {sys.argv[1]} and {sys.argv[2]} have different shapes")
err = float(np.max(np.abs(a.astype(np.float64) - b)) / np.max(np.abs(b)))
print(f"scaled max difference {err:.2e} (tolerance {float(sys.argv[3]):.0e})")
sys.exit(0 if err <= float(sys.argv[3]) else 1)
