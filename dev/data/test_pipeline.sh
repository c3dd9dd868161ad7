#!/usr/bin/env bash
# Tests of the corpus pipeline: C unit tests of each stage on real text, then end-to-end runs
# of dev/data/pipeline on every corpus in ../shared/data. Prints PASS:/FAIL: lines; exits
# non-zero on any failure. `make test` builds dev/data/pipeline and dev/data/test_pipeline first.
set -u
cd "$(dirname "$0")/../.."
DATA=${DATA_DIR:-../shared/data}
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
rc=0
for bin in dev/data/pipeline dev/data/test_pipeline; do
    if [ ! -x "$bin" ]; then echo "FAIL: $bin is not built (make $bin)"; exit 1; fi
done
./dev/data/test_pipeline "$DATA" || rc=1
$PY dev/data/test_pipeline.py "$DATA" || rc=1
exit $rc
