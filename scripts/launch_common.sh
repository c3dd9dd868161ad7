# Shared by the launch scripts (sourced, not run): prints the command it will run, checks that
# its inputs exist, then runs it. DRY_RUN=1 prints and checks without running.
#   launch_check_inputs BINARY TRAIN_PATTERN VAL_PATTERN
#   launch_run COMMAND...       (checks the HellaSwag file first when the command evaluates it)
# As root, OpenMPI's mpirun refuses to start without --allow-run-as-root; sourcing this sets its
# equivalent, OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 (exported, so the
# printed mpirun line stays the command to copy), and launch_run says so.

launch_fail() { echo "error: $*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# launch_check_hellaswag ARGS...: when the train flags in ARGS turn HellaSwag on (-h N > 0, the
# last one wins as in train_gpt), the file it reads (--hellaswag PATH, else train_gpt's default)
# must exist, or the run would stop at its first evaluation
launch_check_hellaswag() {
    local every=0 file=dev/data/eval/hellaswag.bin prev=""
    for a in "$@"; do
        case "$prev" in
            -h|--hellaswag-every) every=$a ;;
            --hellaswag) file=$a ;;
        esac
        case "$a" in
            --hellaswag-every=*) every=${a#*=} ;;
            --hellaswag=*) file=${a#*=} ;;
        esac
        prev=$a
    done
    if [ "$every" != "0" ] && [ ! -f "$file" ]; then
        launch_fail "HellaSwag file $file not found, and -h $every evaluates it (make eval-data writes it; or pass -h 0, or --hellaswag PATH)"
    fi
}

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
    launch_check_hellaswag "$@"
    printf -v line '%q ' "$@"
    echo "will run:"
    echo "  ${line% }"
    if [ "$(id -u)" -eq 0 ] && [ "$1" = mpirun ]; then
        echo "(as root: with OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1, mpirun's --allow-run-as-root)"
    fi
    if [ "${DRY_RUN:-0}" = "1" ]; then
        echo "(DRY_RUN=1: not started)"
        return 0
    fi
    exec "$@"
}
