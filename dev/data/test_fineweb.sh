#!/usr/bin/env bash
# Tests of scripts/fineweb_to_jsonl.py (FineWeb / FineWeb-Edu parquet -> pipeline JSONL) on parquet
# files written from the real FineWeb-2 sample and Gutenberg texts in ../shared/data; no network.
# Needs pyarrow in the project's .venv (scripts/setup.sh) and dev/data/pipeline (for --pipeline).
# Prints PASS:/FAIL: lines; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
DATA=${DATA_DIR:-../shared/data}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if ! $PY -c "import pyarrow.parquet" 2>/dev/null; then
    echo "FAIL: pyarrow is not importable by $PY: run scripts/setup.sh, or $PY -m pip install \"pyarrow<26\""
    exit 1
fi
$PY dev/data/test_fineweb.py "$DATA"
