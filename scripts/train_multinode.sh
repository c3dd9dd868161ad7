#!/usr/bin/env bash
# GPT-2 across several nodes with mpirun: one process per GPU, NCCL between GPUs (set up
# through MPI), the output directory on a filesystem every node sees (checkpoints are per rank).
#
#   HOSTFILE=hosts.txt NODES=8 scripts/train_multinode.sh 124M|350M|774M|1558M [flags]
#
# hosts.txt lists the nodes, one per line ("node1 slots=8"). Every node must see the repo at
# the same path, the data and OUT_DIR. Other variables as scripts/train_gpt2_8gpu.sh.
set -eu
cd "$(dirname "$0")/.."
. scripts/launch_common.sh
HOSTFILE=${HOSTFILE:-}
NODES=${NODES:-}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
[ -n "$HOSTFILE" ] && [ -f "$HOSTFILE" ] || launch_fail "HOSTFILE must name a readable MPI hostfile (got '${HOSTFILE}')"
[ -n "$NODES" ] && [ "$NODES" -ge 1 ] 2>/dev/null || launch_fail "NODES must be the number of nodes (got '${NODES}')"
listed=$(grep -cv '^\s*\(#\|$\)' "$HOSTFILE")
[ "$listed" -ge "$NODES" ] || launch_fail "$HOSTFILE lists $listed nodes, fewer than NODES=$NODES"
export NPROC=$(( NODES * GPUS_PER_NODE ))
# reuse the single-node script's hyperparameters, with the hostfile added to mpirun
MPI_EXTRA="--hostfile $HOSTFILE --map-by ppr:$GPUS_PER_NODE:node -x NCCL_DEBUG=WARN -x PATH -x LD_LIBRARY_PATH"
size=${1:-}
[ $# -gt 0 ] && shift
cmd_file=$(mktemp)
trap 'rm -f "$cmd_file"' EXIT
DRY_RUN=1 bash scripts/train_gpt2_8gpu.sh "$size" -pg "$GPUS_PER_NODE" "$@" > "$cmd_file" || { cat "$cmd_file"; exit 1; }
cmd=$(sed -n 's/^  mpirun/mpirun/p' "$cmd_file")
rm -f "$cmd_file"  # launch_run execs: the trap would not run
eval "set -- $cmd"
shift  # drop "mpirun"
launch_run mpirun $MPI_EXTRA "$@"
