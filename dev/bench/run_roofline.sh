#!/usr/bin/env bash
# The roofline report of the CPU training kernels at the default shape (GPT-2 124M widths,
# B=4 T=64; dev/bench/ROOFLINE.md): runs dev/bench/roofline once and writes
#   OUT.md   date, machine, commit, command, load, the ceilings and the tables
#   OUT.csv  one row per kernel and per ceiling
#   OUT.png  the roofline chart (dev/bench/roofline_plot.py)
# with OUT = dev/bench/results/roofline_<date> unless given. Registered in BENCH_SCRIPTS
# (dev/bench/roofline.mk), so `make bench` runs it after the training benchmark.
#   bash dev/bench/run_roofline.sh [roofline flags...]
#   OUT=dev/bench/results/roofline_2026-12-03_xeon_2core bash dev/bench/run_roofline.sh
set -eu
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
BIN=dev/bench/roofline
[ -x $BIN ] || { echo "error: $BIN is not built (make $BIN)" >&2; exit 1; }
PY=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
date=$(date -u +%Y-%m-%d)
out=${OUT:-dev/bench/results/roofline_$date}
mkdir -p "$(dirname "$out")"
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit (with uncommitted changes to tracked files)"
fi
table=$(mktemp)
trap 'rm -f "$table"' EXIT
load0=$(cat /proc/loadavg)
start=$(date -u +%H:%M:%S)
$BIN --csv "$out.csv" "$@" > "$table"
load1=$(cat /proc/loadavg)
$PY dev/bench/roofline_plot.py "$out.csv" "$out.png" --title "Roofline, $cpu, $OMP_NUM_THREADS threads, $date"
{
    echo "# Roofline of the CPU training kernels, $date"
    echo
    echo "- machine: $cpu, $(nproc) cores online, OMP_NUM_THREADS=$OMP_NUM_THREADS"
    echo "- commit: $commit"
    echo "- command: OMP_NUM_THREADS=$OMP_NUM_THREADS $BIN --csv $out.csv $* (dev/bench/run_roofline.sh, started $start UTC)"
    echo "- /proc/loadavg before: $load0; after: $load1"
    echo "- method and formulas: dev/bench/ROOFLINE.md; chart: $(basename "$out.png"); every row: $(basename "$out.csv")"
    echo
    # the program's report, its title line replaced by the one above
    tail -n +3 "$table"
    echo
    echo "![roofline]($(basename "$out.png"))"
} > "$out.md"
cat "$out.md"
echo
echo "results written to $out.md (+ .csv, .png)"
