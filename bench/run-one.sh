#!/usr/bin/env bash
# bench/run-one.sh [--idle=S] [--load=CPU] [--tee=FILE] COMMAND
#
# One timed run as scripts/bench.sh hands it to side-by-side (which holds
# /tmp/braid-bench.lock around it): COMMAND is a shell command line, run by sh -c.
#   --idle=S    first wait (bench/idle-wait.sh) until the machine was >= 90 % idle for
#               1 s, at most S seconds.
#   --load=CPU  the loaded variant: one busy process (an empty shell loop) pinned to CPU
#               by taskset runs from before COMMAND starts until it ends, then is killed
#               by its PID. A trap kills it on every way out (exit, INT, TERM, HUP), and
#               the script checks that the PID is gone; its PID sits in
#               $BENCH_SPINNERS/<pid> while it lives, so scripts/bench.sh can sweep any
#               spinner left by a run that was killed with SIGKILL.
#   --tee=FILE  append COMMAND's stdout to FILE after a line "#run", so that scripts/bench.sh
#               can read the figures side-by-side does not take (faults_per_mtask,
#               min_share) from the very same runs.
# COMMAND's stdout still goes to stdout and its exit status is the script's.
set -u
idle=0 load="" tee=""
while (( $# > 1 )); do
    case $1 in
        --idle=*) idle=${1#--idle=} ;;
        --load=*) load=${1#--load=} ;;
        --tee=*) tee=${1#--tee=} ;;
        *) break ;;
    esac
    shift
done
cmd=$1
here=$(dirname "$0")
(( idle > 0 )) && "$here/idle-wait.sh" "$idle"

spinner=""
stop_spinner() {
    [[ -n $spinner ]] || return 0
    kill "$spinner" 2>/dev/null
    wait "$spinner" 2>/dev/null
    if kill -0 "$spinner" 2>/dev/null; then   # still there: not a child we can reap
        kill -9 "$spinner" 2>/dev/null
        echo "run-one: spinner $spinner survived SIGTERM; sent SIGKILL" >&2
    fi
    [[ -n ${BENCH_SPINNERS:-} ]] && rm -f "$BENCH_SPINNERS/$spinner"
    spinner=""
}
if [[ -n $load ]]; then
    trap 'stop_spinner' EXIT
    trap 'stop_spinner; exit 130' INT
    trap 'stop_spinner; exit 143' TERM
    trap 'stop_spinner; exit 129' HUP
    if command -v taskset >/dev/null; then
        taskset -c "$load" sh -c 'while :; do :; done' &
    else   # unpinned, and said so: the run is loaded all the same
        echo "run-one: no taskset; the busy process is not pinned to CPU $load" >&2
        sh -c 'while :; do :; done' &
    fi
    spinner=$!
    [[ -n ${BENCH_SPINNERS:-} ]] && mkdir -p "$BENCH_SPINNERS" && : > "$BENCH_SPINNERS/$spinner"
    sleep 0.05   # let it reach its CPU before the run starts
fi

out=$(sh -c "$cmd")
rc=$?
stop_spinner
printf '%s\n' "$out"
if [[ -n $tee ]]; then
    { echo "#run rc=$rc"; printf '%s\n' "$out"; } >> "$tee"
fi
exit "$rc"
