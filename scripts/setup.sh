#!/usr/bin/env bash
# Installs what building, training and testing need, on a fresh Debian machine (as root),
# and prepares the default dataset. Safe to run again: it skips what is already there.
#   Debian packages: a C compiler with OpenMP, clang with libFuzzer (fuzz targets), OpenBLAS
#                    (the benchmark's baseline), PyTorch and NumPy (the reference model),
#                    matplotlib (plots), SciPy (scaling-law fits), python3-venv, OpenMPI (data-parallel runs)
#   .venv:           a virtual environment that sees Debian's torch, plus tiktoken, pyarrow
#                    (FineWeb's parquet files) and transformers 4.36.2 (the Hugging Face export's
#                    check) from PyPI
#   dev/data:        tiny shakespeare as GPT-2 token shards, and GPT-2's tokenizer file
set -eu
cd "$(dirname "$0")/.."
PKGS="build-essential clang libclang-rt-14-dev libopenblas-dev python3 python3-venv python3-numpy python3-torch python3-matplotlib python3-scipy libopenmpi-dev openmpi-bin"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends $missing
fi
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
if ! .venv/bin/python -c "import tiktoken" 2>/dev/null; then
    .venv/bin/python -m pip install -q tiktoken
fi
# pyarrow 26 needs NumPy 2, and the venv sees Debian's NumPy 1.24 (which Debian's torch is built against)
if ! .venv/bin/python -c "import pyarrow.parquet" 2>/dev/null; then
    .venv/bin/python -m pip install -q "pyarrow<26"
fi
# transformers 4.36.2 works with Debian's torch 1.13: the Hugging Face export is checked with it
# (dev/infer/test_hf.sh, test_generate.sh); it brings tokenizers, safetensors and huggingface-hub
if ! .venv/bin/python -c "import transformers" 2>/dev/null; then
    .venv/bin/python -m pip install -q "transformers==4.36.2"
fi
.venv/bin/python -c "import torch, numpy, tiktoken, pyarrow.parquet, transformers" || { echo "error: the python environment is incomplete"; exit 1; }
make -s data
