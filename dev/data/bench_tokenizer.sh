#!/usr/bin/env bash
# `make bench` entry: encode MB/s of our BPE vs tiktoken, same run, same text;
# writes dev/data/results/tokenizer_<date>.md
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" dev/data/bench_tokenizer.py --repeat "${TOKENIZER_BENCH_REPEAT:-5}"
