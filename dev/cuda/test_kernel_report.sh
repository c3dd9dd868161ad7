#!/usr/bin/env bash
# The static kernel report (dev/cuda/kernel_report.py) on the real sm_90 build of train_gpt.cu:
# it must find the trainer's kernels in ptxas's output, demangle them and give each launched one
# an occupancy (launch configurations from a small emulated-profile CSV made here by hand from
# the trainer's launch code: layernorm 256 threads, the classifier 1024). Flags are printed, not
# failed on: they are findings (dev/cuda/PROFILE.md). Prints PASS:/FAIL: lines.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/p.csv" <<'CSV'
phase,kernel,grid_x,grid_y,grid_z,block_x,block_y,block_z,dyn_smem
forward,layernorm_forward_kernel,8,1,1,256,1,1,0
forward,fused_classifier_kernel,64,1,1,1024,1,1,0
CSV
if ! python3 dev/cuda/kernel_report.py --profile "$tmp/p.csv" --out "$tmp/r.md" > "$tmp/out" 2>&1; then
    echo "FAIL: kernel_report on the sm_90 build: $(tail -3 "$tmp/out")"
    exit 1
fi
kernels=$(grep -c '^| [a-z]' "$tmp/r.md")
fails=0
check() { if [ "$1" = 1 ]; then echo "PASS: kernel_report $2"; else echo "FAIL: kernel_report $2"; fails=$((fails + 1)); fi; }
check "$([ "$kernels" -ge 30 ] && echo 1)" "lists the sm_90 build's kernels ($kernels rows)"
check "$(grep -q '^| layernorm_forward_kernel | [0-9]* | 0 | .* | 256 | [0-9]* / [0-9]* | [0-9]*% |' "$tmp/r.md" && echo 1)" \
      "gives layernorm_forward_kernel (256 threads) registers, no spill and an occupancy"
check "$(grep -q '^| fused_classifier_kernel | .* | 1024 | ' "$tmp/r.md" && echo 1)" "gives fused_classifier_kernel its 1024-thread launch"
check "$(grep -q 'not launched in the profiled step' "$tmp/r.md" && echo 1)" "lists kernels no step launches without an occupancy"
grep '^FLAG' "$tmp/r.md" | sed 's/^/    /'
[ $fails -eq 0 ]
