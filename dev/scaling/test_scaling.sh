#!/usr/bin/env bash
# Tests of the scaling-law fitter and planner (dev/scaling/test_scaling.py): Epoch AI's
# Chinchilla refit reproduced, synthetic recovery of known coefficients, Gadre et al.'s runs,
# the planner's round trip and the dN parameter counts against llmc/checkpoint.h compiled.
# Prints PASS:/FAIL: lines; exits non-zero on any failure. About 40 s.
set -u
cd "$(dirname "$0")/../.."
PY=${SCALING_PYTHON:-}
if [ -z "$PY" ]; then
    for p in .venv/bin/python /usr/bin/python3 python3; do
        if "$p" -c "import numpy, scipy, matplotlib" 2>/dev/null; then PY=$p; break; fi
    done
fi
if [ -z "$PY" ]; then
    echo "FAIL: scaling: no python with numpy, scipy and matplotlib (.venv/bin/python, /usr/bin/python3, python3; apt install python3-scipy python3-matplotlib)"
    exit 1
fi
exec "$PY" dev/scaling/test_scaling.py
