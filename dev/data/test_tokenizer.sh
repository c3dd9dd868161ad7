#!/usr/bin/env bash
# `make test` entry for the tokenizer: exactness vs tiktoken (dev/data/test_tokenizer.py),
# BPE training and embedding resize (dev/data/test_bpe_train.py). About 40 s on 2 cores.
cd "$(dirname "$0")/../.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
rc=0
"$PY" dev/data/test_tokenizer.py || rc=1
"$PY" dev/data/test_bpe_train.py || rc=1
exit $rc
