# Shared by the launch scripts (sourced, not run): prints the command it will run, checks that
# its inputs exist, then runs it. DRY_RUN=1 prints and checks without running.
#   launch_check_inputs BINARY TRAIN_PATTERN VAL_PATTERN
#   launch_run COMMAND...

launch_fail() { echo "error: $*" >&2; exit 1; }

launch_check_inputs() {
    local bin=$1 train=$2 val=$3
    [ -x "$bin" ] || launch_fail "$bin not found or not executable (build it: make ${bin#./})"
    # shellcheck disable=SC2086
    compgen -G "$train" > /dev/null || launch_fail "no train shards match '$train' (set TRAIN_DATA)"
    compgen -G "$val" > /dev/null || launch_fail "no val shards match '$val' (set VAL_DATA)"
    if [ -n "${OUT_DIR:-}" ] && [ -e "$OUT_DIR" ] && [ ! -d "$OUT_DIR" ]; then
        launch_fail "output $OUT_DIR exists and is not a directory"
    fi
}

launch_run() {
    local line
    printf -v line '%q ' "$@"
    echo "will run:"
    echo "  ${line% }"
    if [ "${DRY_RUN:-0}" = "1" ]; then
        echo "(DRY_RUN=1: not started)"
        return 0
    fi
    exec "$@"
}
