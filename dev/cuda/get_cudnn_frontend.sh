#!/usr/bin/env bash
# Fetches cuDNN's C++ frontend headers (header-only, MIT licensed) for the USE_CUDNN=1 build:
# cuDNN's fused attention is reached through its graph API, which the frontend wraps.
# The headers come from the nvidia-cudnn-frontend wheel on PyPI: we download the wheel
# without installing it and unpack only its include/ folder into build/cudnn_frontend/include.
# Safe to run again: it does nothing when the headers are there.
#   bash dev/cuda/get_cudnn_frontend.sh [destination]
set -eu
cd "$(dirname "$0")/../.."
VERSION=1.32.0
DEST=${1:-build/cudnn_frontend}
if [ -f "$DEST/include/cudnn_frontend.h" ]; then exit 0; fi
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# any platform's wheel holds the same headers: ask for one that exists for every python
if ! $PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux_2_28_x86_64 "nvidia-cudnn-frontend==$VERSION" -d "$tmp" > "$tmp/pip.log" 2>&1; then
    echo "error: get_cudnn_frontend: could not download nvidia-cudnn-frontend==$VERSION from PyPI:" >&2
    tail -3 "$tmp/pip.log" >&2
    exit 1
fi
whl=$(ls "$tmp"/*.whl | head -1)
mkdir -p "$DEST.tmp"
$PY - "$whl" "$DEST.tmp" <<'PYEOF'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.startswith("include/")]
    if not any(n == "include/cudnn_frontend.h" for n in names):
        sys.exit("error: get_cudnn_frontend: %s has no include/cudnn_frontend.h" % whl)
    for n in names:
        z.extract(n, dest)
PYEOF
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
echo "cuDNN frontend $VERSION headers in $DEST/include"
