#!/usr/bin/env bash
# braid's benchmarks side by side with the peers of ../shared/peers (BENCH.md).
#
#   scripts/bench.sh [-n RUNS] [--quick | --full] [--idle[=S]] [--loaded] [--no-peers] [--list] [SELECT ...]
#   make bench BENCH_ARGS="W3 W6"          (the Makefile builds first, then runs this)
#
# First the machine: CPU model, page-fault cost (fault_cost), cross-thread round trip
# (n2_spin_rtt), host probe (calib), in the header and as the results' first record.
# Every figure is one run of ../shared/tools/side-by-side: braid's command first, then
# each peer's, round-robin (A B C A B C ...), one untimed warm-up round and RUNS timed
# rounds (default 3), every run under /tmp/braid-bench.lock, each through
# bench/run-one.sh (idle wait, load, output kept for the extra metrics). Per figure it
# prints braid's and each peer's median [min..max], the ratio (> 1: braid is better,
# whatever the metric's direction) with the [min..max] of the per-round ratios, the
# BIMODAL / CROSSES-1 flags (bench/report.py defines them), and the goal from BENCH.md
# when the figure has one; then a summary table. A figure or peer that prints no value
# in any round is "not available", never a failure of the run. Results also go, one
# JSON object a line, to $BUILD/bench-results/<UTC time>.jsonl (and latest.jsonl).
#
# SELECT: workload ids (W1 W2 W3 W4 W5 W6 W7 W8 W9 W10 N1 N2 N3 N4 N5 N6 MP; a figure answers to every id of its
# BENCH.md goal row, so W3 also runs N2's throughput), program names (lock queue pool
# primes fib aio coro echo) or figure ids (--list shows them). Nothing selected: everything but the
# loaded twins.
#
# --loaded: also the loaded twin (ID-loaded) of every selected figure that has one (W3,
# W4, W6, W7): the same rounds with one busy process pinned to the last CPU during every
# run, braid's and the peers' alike; verdict: braid stays ahead of every peer it beat in
# every unloaded round. Twins are also selected by their ids, by X-loaded (W4-loaded)
# and by `loaded`; a twin always runs right after its unloaded figure. No busy process
# outlives its run (bench/run-one.sh; swept here on every way out).
#
# Sizes. Routine runs keep the full size of every figure with a goal, and scale three
# without one, saying so: Python's W1 (minutes at full size) runs W1_CALLS=10 calls
# instead of 100, braid's twin figure too; N2 without futures 200k of 1M tasks, N3
# bounded 2M of 10M items (a default run: about 8 minutes on the 2-CPU EPYC guest).
# --full runs everything at full size. --quick scales down what the
# peers let us scale (N2 throughput 200k tasks, N3 2M items, W1 4 calls); the Python
# scripts and the N1 peers have fixed sizes and keep them. Goals are judged on full
# sizes: a --quick run prints them as a preview.
#
# --idle[=S]: before each timed run (inside the lock), wait until the machine was >= 90 %
# idle for 1 s, at most S seconds (default 60): others' builds and tests don't take the
# benchmark lock, and on 2 CPUs they halve any parallel figure.
#
# Environment: BUILD (build tree, default build), PEERS (default ../shared/peers beside
# the repository), PYTHON (the Python peers' interpreter, default /usr/bin/python3),
# SIDE_BY_SIDE (default ../shared/tools/side-by-side), BENCH_COMMIT (the commit to name
# in the output when the tree is not a git checkout, e.g. a `git archive` of HEAD).
# Without ../shared/peers it runs braid's own figures only (braid against pthread_mutex
# and against its own single-thread run still work).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SHARED=$(cd "$ROOT/.." && pwd)/shared
# A git worktree elsewhere (e.g. /work/wt/x): the team's ../shared is beside the main
# checkout, which git names as the common directory's parent.
if [[ ! -d $SHARED ]]; then
    common=$(git -C "$ROOT" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) &&
        [[ -d $(dirname "$common")/../shared ]] && SHARED=$(cd "$(dirname "$common")/../shared" && pwd)
fi
PEERS=${PEERS:-$SHARED/peers}
PYTHON=${PYTHON:-/usr/bin/python3}
SIDE_BY_SIDE=${SIDE_BY_SIDE:-$SHARED/tools/side-by-side}
BB=$BUILD/bench          # braid's benchmark programs
PB=$BUILD/peers/bin      # native peers built by scripts/build-peers.sh
PYDIR=$PEERS/python
REPORT="python3 $ROOT/bench/report.py"

RUNS=3
MODE=routine
USE_PEERS=1
IDLE=0
LOADED=0
LIST=0
SELECT=()
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while (( $# )); do
    case $1 in
        -n) RUNS=${2:?-n needs a number}; shift ;;
        -n*) RUNS=${1#-n} ;;
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --no-peers) USE_PEERS=0 ;;
        --idle) IDLE=60 ;;
        --idle=*) IDLE=${1#--idle=} ;;
        --loaded) LOADED=1 ;;
        --list) LIST=1 ;;
        -h|--help) usage 0 ;;
        -*) echo "bench.sh: unknown option $1" >&2; usage 2 ;;
        *) SELECT+=("$1") ;;
    esac
    shift
done
[[ $RUNS =~ ^[0-9]+$ ]] && (( RUNS >= 1 )) || { echo "bench.sh: -n wants a count" >&2; exit 2; }
(( RUNS < 3 )) && echo "bench.sh: note: -n $RUNS is below the 3 rounds BENCH.md asks for" >&2

# --- sizes -------------------------------------------------------------------------
# N2X_TASKS, N3X_ITEMS: the goal-less extras (N2 without futures, N3 bounded), scaled
# in routine runs to keep `make bench` under 10 minutes; the figures with goals keep
# their full sizes
N2_TASKS=1000000; N3_ITEMS=10000000; W1_CALLS=10; N1_CALLS=100
N2X_TASKS=200000; N3X_ITEMS=2000000
case $MODE in
    quick) N2_TASKS=200000; N3_ITEMS=2000000; W1_CALLS=4 ;;
    full) W1_CALLS=100; N2X_TASKS=$N2_TASKS; N3X_ITEMS=$N3_ITEMS ;;
esac
NCPU=$(nproc 2>/dev/null || echo 1)
LOAD_CPU=$((NCPU - 1))     # the loaded twins' busy process runs on the last CPU

# --- what is there -------------------------------------------------------------------
HAVE_PEERS=0
if (( USE_PEERS )) && [[ -d $PEERS ]]; then
    HAVE_PEERS=1
elif (( USE_PEERS )); then
    echo "bench.sh: no peers at $PEERS (set PEERS=): braid's own figures only" >&2
fi
SBS=("$SIDE_BY_SIDE")
if [[ ! -x $SIDE_BY_SIDE ]]; then
    # no ../shared at all: braid's own figures through a stand-in with the same rules
    echo "bench.sh: no side-by-side tool at $SIDE_BY_SIDE; using bench/report.py sbs" >&2
    SBS=($REPORT sbs)
fi
if (( HAVE_PEERS && ! LIST )); then
    BUILD=$BUILD PEERS=$PEERS "$ROOT/scripts/build-peers.sh"
fi
[[ -x $PYTHON && -d $PYDIR ]] || PYDIR=""

# The loaded twins' busy processes: bench/run-one.sh starts one per run and kills it by PID;
# it leaves its PID in $BENCH_SPINNERS while it lives. check_spinners (after every loaded
# figure and on every way out) kills any that a killed run left behind, by that PID only.
CAPROOT=$(mktemp -d "${TMPDIR:-/tmp}/braid-bench.XXXXXX")
export BENCH_SPINNERS=$CAPROOT/spinners
mkdir -p "$BENCH_SPINNERS"
check_spinners() {
    local f pid left=0
    for f in "$BENCH_SPINNERS"/*; do
        [[ -e $f ]] || continue
        pid=${f##*/}
        if [[ $pid =~ ^[0-9]+$ ]] && { tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null | grep -q 'while :; do :; done'; then
            kill "$pid" 2>/dev/null && left=$((left + 1))
        fi
        rm -f "$f"
    done
    (( left )) && echo "bench.sh: killed $left busy process(es) a run left behind" >&2
    return 0
}
SBS_PID=""
SERVER_PIDS=()   # W9's servers (a braid fixture server, nginx), started once when needed
cleanup() {
    [[ -n $SBS_PID ]] && kill "$SBS_PID" 2>/dev/null
    local p
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    check_spinners
    rm -rf "$CAPROOT"
}
trap cleanup EXIT
trap 'cleanup; trap - INT; kill -INT $$' INT
trap 'cleanup; exit 143' TERM HUP

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
COMMIT=${BENCH_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)}
if [[ -z ${BENCH_COMMIT:-} && -n $(git -C "$ROOT" status --porcelain --untracked-files=no -- src include bench 2>/dev/null) ]]; then
    COMMIT="$COMMIT+uncommitted"   # the build tree holds library or benchmark changes not in HEAD
fi
RESDIR=$BUILD/bench-results
RESULTS=$RESDIR/$STAMP.jsonl
CPU_MODEL=""
if (( ! LIST )); then
    mkdir -p "$RESDIR"
    : > "$RESULTS"
    ln -sfn "$STAMP.jsonl" "$RESDIR/latest.jsonl"
    # what tells this machine apart: CPU model, page-fault cost, cross-thread round trip
    $REPORT machine "$PB" >> "$RESULTS"
    MACHINE=$(head -n 1 "$RESULTS")
    CPU_MODEL=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cpu_model"])' "$MACHINE")
    echo "braid benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $CPU_MODEL, $NCPU CPUs"
    $REPORT header "$MACHINE"
    echo "braid: $BUILD at commit $COMMIT"
    echo "mode: $MODE ($RUNS timed rounds + 1 warm-up per figure, alternating, under /tmp/braid-bench.lock$( (( IDLE )) && echo ", each run after <= ${IDLE}s of waiting for an idle machine"))"
    (( LOADED )) && echo "loaded twins: on, a busy process pinned to CPU $LOAD_CPU during every run of their rounds"
    echo "sizes: N1 $N1_CALLS calls; W1 with Python $W1_CALLS of 100 calls; N2 $N2_TASKS tasks ($N2X_TASKS without futures); N3 $N3_ITEMS items ($N3X_ITEMS bounded); the rest at BENCH.md's sizes"
    if (( HAVE_PEERS )); then echo "peers: $PEERS"; else echo "peers: none (braid's own figures only)"; fi
fi

# --- one figure ---------------------------------------------------------------------
# fig ID TAGS DIRECTION TITLE SCALE GOALSPEC GOALTEXT   starts a figure; then
# subject PROG ARGS METRIC      braid's command ($BB/PROG ARGS)
# own LABEL PROG ARGS METRIC    another command of braid's own (a pthread twin, single)
# native LABEL BIN "ENV..." ARGS METRIC    a native peer ($PB/BIN), if built
# py LABEL SCRIPT ARGS METRIC               a Python peer (cd peers/python; $PYTHON ...)
# expect METRIC...              extra metrics of the same runs to report (see report.py)
# loadable                      the figure has a loaded twin, ID-loaded (tags X-loaded)
# run                           runs it (and its twin) if selected and braid's program exists
F_ID=""; F_TAGS=""; F_DIR=""; F_TITLE=""; F_SCALE=""; F_GOAL=""; F_GOALTEXT=""
TRIPLES=(); SKIPPED=(); F_PROG=""; F_EXPECT=""; F_LOADABLE=0
fig() {
    F_ID=$1; F_TAGS=$2; F_DIR=$3; F_TITLE=$4; F_SCALE=$5; F_GOAL=$6; F_GOALTEXT=$7
    TRIPLES=(); SKIPPED=(); F_PROG=""; F_EXPECT=""; F_LOADABLE=0
}
subject() { F_PROG=$1; TRIPLES+=(braid "$BB/$1 $2" "$3"); }
own() { TRIPLES+=("$1" "$BB/$2 $3" "$4"); }
expect() { F_EXPECT="$*"; }
loadable() { F_LOADABLE=1; }
native() {
    local label=$1 bin=$2 env=$3 args=$4 metric=$5
    if (( HAVE_PEERS )) && [[ -x $PB/$bin ]]; then
        TRIPLES+=("$label" "${env:+env $env }$PB/$bin${args:+ $args}" "$metric")
    else
        SKIPPED+=("$label")
    fi
}
py() {
    local label=$1 script=$2 args=$3 metric=$4
    if (( HAVE_PEERS )) && [[ -n $PYDIR && -f $PYDIR/${script%% *} ]]; then
        TRIPLES+=("$label" "cd $PYDIR && $PYTHON $script $args" "$metric")
    elif (( HAVE_PEERS )) && [[ -n $PYDIR && -f $ROOT/bench/${script%% *} ]]; then
        TRIPLES+=("$label" "cd $PYDIR && $PYTHON $ROOT/bench/$script $args" "$metric")
    else
        SKIPPED+=("$label")
    fi
}
selected() {
    (( ${#SELECT[@]} == 0 )) && return 0
    local s t
    for s in "${SELECT[@]}"; do
        [[ $s == "$F_ID" || $s == "$F_PROG" || $s == "bench_$F_PROG" ]] && return 0
        for t in $F_TAGS; do [[ ${s^^} == "$t" ]] && return 0; done
    done
    return 1
}
twin_selected() {   # the loaded twin: --loaded, or its id, a tag X-loaded, or `loaded`
    (( F_LOADABLE )) || return 1
    if (( ${#SELECT[@]} == 0 )); then
        (( LOADED )) && return 0
        return 1
    fi
    (( LOADED )) && selected && return 0
    local s t
    for s in "${SELECT[@]}"; do
        [[ $s == "$F_ID-loaded" || $s == loaded ]] && return 0
        for t in $F_TAGS; do [[ ${s^^} == "$t-LOADED" ]] && return 0; done
    done
    return 1
}
FIGS_RUN=0
run() {
    local base=0 twin=0
    selected && base=1
    twin_selected && twin=1
    (( twin )) && base=1   # a loaded figure is judged against its unloaded self
    (( base )) || return 0
    if (( LIST )); then
        printf '%-28s %-8s %s\n' "$F_ID" "$F_TAGS" "$F_TITLE"
        (( F_LOADABLE )) && printf '%-28s %-8s %s\n' "$F_ID-loaded" \
            "$(for t in $F_TAGS; do printf '%s-loaded ' "$t"; done)" \
            "(loaded) the same with a busy process pinned to CPU $LOAD_CPU"
        return 0
    fi
    run_figure "" ""
    (( twin )) && run_figure "$LOAD_CPU" "$(tail -n 1 "$RESULTS")"
}
# run_figure LOAD_CPU UNLOADED_RECORD: one side-by-side run of the current figure; with
# LOAD_CPU, its loaded twin (every command under the same busy process on that CPU).
run_figure() {
    local load=$1 unloaded=$2 id=$F_ID tags=$F_TAGS title=$F_TITLE goal=$F_GOAL goaltext=$F_GOALTEXT
    if [[ -n $load ]]; then
        id="$F_ID-loaded"
        tags=$(for t in $F_TAGS; do printf '%s-loaded ' "$t"; done); tags=${tags% }
        title="$F_TITLE, with a busy process pinned to CPU $load"
        goal="ahead"; goaltext="braid stays ahead of every peer it beats unloaded"
    fi
    local meta
    meta=$(F_ID=$id F_TAGS=$tags F_DIR=$F_DIR F_TITLE=$title F_SCALE=$F_SCALE \
           F_GOAL=$goal F_GOALTEXT=$goaltext SKIPPED="${SKIPPED[*]:-}" NCPU=$NCPU \
           MODE=$MODE STAMP=$STAMP COMMIT=$COMMIT CPU_MODEL=$CPU_MODEL F_EXPECT=$F_EXPECT \
           F_LOAD=$load UNLOADED=$unloaded $REPORT meta) || return 0
    if [[ ! -x $BB/$F_PROG ]]; then
        echo
        echo "== $id: $title"
        echo "   skipped: $BB/$F_PROG is not built (its braid layer may not have landed yet)"
        $REPORT skip "$meta" "not built: $F_PROG" >> "$RESULTS"
        return 0
    fi
    echo
    echo "== $id: $title${F_SCALE:+ [$F_SCALE]}"
    local out rc=0 k cap t0=$SECONDS
    cap=$CAPROOT/$id
    rm -rf "$cap"; mkdir -p "$cap"
    local wrapped=("${TRIPLES[@]}")
    for (( k = 0; k < ${#wrapped[@]}; k += 3 )); do
        wrapped[k+1]="$ROOT/bench/run-one.sh --tee=$cap/${wrapped[k]}$( (( IDLE > 0 )) && echo " --idle=$IDLE")${load:+ --load=$load} $(printf '%q' "${wrapped[k+1]}")"
    done
    # in the background, so that a signal to this script reaches the trap at once and the
    # trap can stop side-by-side (its PID) before sweeping the spinners
    local sbs=("${SBS[@]}")
    # braid alone (every peer absent): side-by-side wants a peer; the stand-in runs the
    # same rounds under the same lock for one command
    (( ${#wrapped[@]} == 3 )) && sbs=($REPORT sbs)
    "${sbs[@]}" -n "$RUNS" "--$F_DIR" --json "${wrapped[@]}" > "$cap/.report" &
    SBS_PID=$!
    wait "$SBS_PID" || rc=$?
    SBS_PID=""
    out=$(cat "$cap/.report")
    FIGS_RUN=$((FIGS_RUN + 1))
    F_SECONDS=$((SECONDS - t0)) $REPORT figure "$meta" "$out" "$rc" \
        "$(printf '%s\n' "${TRIPLES[@]}")" "$cap" >> "$RESULTS"
    $REPORT show "$(tail -n 1 "$RESULTS")"
    [[ -n $load ]] && check_spinners
}

# --- W7 locks (bench_lock) -------------------------------------------------------------
fig W7.uncontended "W7" lower "Lock: uncontended acquire+release, 1M pairs, 2nd thread alive (ns/op)" "" \
    "ratio>=0.8333:pthread" "uncontended within 1.2x of pthread_mutex"
subject bench_lock "uncontended braid" uncontended/ns_per_op
own pthread bench_lock "uncontended pthread" uncontended/ns_per_op
py python w7_locks.py uncontended uncontended/ns_per_op
loadable
run

fig W7.uncontended-1thread "W7" lower "(extra) the same in a never-threaded process: glibc's fast path (ns/op)" "" "" ""
subject bench_lock "uncontended-1thread braid" uncontended-1thread/ns_per_op
own pthread bench_lock "uncontended-1thread pthread" uncontended-1thread/ns_per_op
run

fig W7.uncontended-with "W7" lower "Lock through BR_WITH / \`with lock:\`, 1M (ns/op)" "" "" ""
subject bench_lock "uncontended-with braid" uncontended-with/ns_per_op
own pthread bench_lock "uncontended-with pthread" uncontended-with/ns_per_op
py python w7_locks.py uncontended-with uncontended-with/ns_per_op
run

fig W7.uncontended-rlock "W7" lower "RLock vs recursive pthread_mutex, uncontended, 1M (ns/op)" "" "" ""
subject bench_lock "uncontended-rlock braid" uncontended-rlock/ns_per_op
own pthread-rec bench_lock "uncontended-rlock pthread" uncontended-rlock/ns_per_op
run

fig W7.counter-locked "W7" lower "2 threads x 1M increments under one lock (s)" "" \
    "ratio>=1:pthread;share>=0.1:min_share" ">= 1.0x pthread_mutex, no thread starved"
subject bench_lock "counter-locked braid" counter-locked/seconds
own pthread bench_lock "counter-locked pthread" counter-locked/seconds
py python w7_locks.py counter-locked counter-locked/seconds
expect min_share
loadable
run

# --- W6 / N3 queues (bench_queue) -------------------------------------------------------
fig W6.thread-queue "W6" higher "queue 1 producer -> 1 consumer thread, 1M items (items/s)" "" "" ""
subject bench_queue thread-queue thread-queue/items_per_s
py python w6_queues.py thread-queue thread-queue/items_per_s
loadable
run

fig N3.1p1c "N3 W6" higher "unbounded FIFO queue 1P -> 1C, $N3_ITEMS items (items/s)" \
    "$([[ $N3_ITEMS != 10000000 ]] && echo "$N3_ITEMS of 10M items")" \
    "ratio>=1:go-chan" ">= Go's channel"
subject bench_queue "1p1c $N3_ITEMS" 1p1c/items_per_s
native glib-asyncq n3_glib "" "$N3_ITEMS" items_per_s
native go-chan n3_chan_go GOMAXPROCS=2 "$N3_ITEMS" items_per_s
native c-ring n3_ring "" "$N3_ITEMS" items_per_s
loadable
run

fig N3.1p1c-bounded "N3 W6" higher "(extra) Queue(maxsize=1024) 1P -> 1C, $N3X_ITEMS items (items/s)" \
    "$([[ $N3X_ITEMS != 10000000 ]] && echo "$N3X_ITEMS of 10M items")" "" ""
subject bench_queue "1p1c-bounded $N3X_ITEMS" 1p1c-bounded/items_per_s
native go-chan n3_chan_go GOMAXPROCS=2 "$N3X_ITEMS" items_per_s
native c-ring n3_ring "" "$N3X_ITEMS" items_per_s
run

# --- W3 / W4 / N2 thread pool (bench_pool) ------------------------------------------------
# n2_peers N: N2's six native peers, each running N no-op tasks
n2_peers() {
    native libuv n2_uv UV_THREADPOOL_SIZE=2 "throughput $1" tasks_per_s
    native glib n2_glib "" "throughput $1" tasks_per_s
    native omp-gcc n2_omp OMP_NUM_THREADS=2 "$1" tasks_per_s
    native omp-clang n2_omp_clang OMP_NUM_THREADS=2 "$1" tasks_per_s
    native tbb n2_tbb "" "$1" tasks_per_s
    native go n2_pool_go GOMAXPROCS=2 "throughput $1" tasks_per_s
}
# braid-1w: the same pool with 1 worker; ratio to it = the 2-workers / 1-worker scaling
fig W3.submit-2 "W3" higher "pool of 2: submit 100k no-ops + wait (tasks/s)" "" \
    "ratio>=100:python;ratio>=1.6:braid-1w" ">= 100x Python; 2 workers >= 1.6x 1 worker"
subject bench_pool submit-2 submit-2/tasks_per_s
own braid-1w bench_pool submit-1 submit-1/tasks_per_s
py python w3_threadpool_throughput.py submit-2 submit-2/tasks_per_s
expect faults_per_mtask
loadable
run

fig W3.map-2 "W3" higher "pool of 2: map over 100k no-ops (tasks/s)" "" \
    "ratio>=100:python;ratio>=1.6:braid-1w" ">= 100x Python; 2 workers >= 1.6x 1 worker"
subject bench_pool map-2 map-2/tasks_per_s
own braid-1w bench_pool map-1 map-1/tasks_per_s
py python w3_threadpool_throughput.py map-2 map-2/tasks_per_s
expect faults_per_mtask
loadable
run

fig W3.batch-2 "W3" higher "(extra) pool of 2: br_submit_batch of 100k no-ops + wait (tasks/s)" "" \
    "ratio>=100:python;ratio>=1.6:braid-1w" ">= 100x Python; 2 workers >= 1.6x 1 worker"
subject bench_pool batch-2 batch-2/tasks_per_s
own braid-1w bench_pool batch-1 batch-1/tasks_per_s
py python w3_threadpool_throughput.py submit-2 submit-2/tasks_per_s
expect faults_per_mtask
run

fig N2.submit-2 "N2 W3" higher "pool of 2: $N2_TASKS no-op tasks, warm pool, steady state (tasks/s)" \
    "$([[ $N2_TASKS != 1000000 ]] && echo "$N2_TASKS of 1M tasks")" \
    "ratio>1:libuv,glib,omp-gcc,omp-clang,tbb,go" "above every native peer"
subject bench_pool "n2-submit-2 $N2_TASKS" submit-2/tasks_per_s
n2_peers "$N2_TASKS"
expect faults_per_mtask
run

# cold: the pool's first N2_TASKS in a fresh process, as every native peer runs
fig N2.submit-2-cold "N2 W3" higher "pool of 2: $N2_TASKS no-op tasks in a fresh process (tasks/s)" \
    "$([[ $N2_TASKS != 1000000 ]] && echo "$N2_TASKS of 1M tasks")" \
    "ratio>1:libuv,glib,omp-gcc,omp-clang,tbb,go" "above every native peer"
subject bench_pool "n2-submit-2-cold $N2_TASKS" submit-2-cold/tasks_per_s
n2_peers "$N2_TASKS"
expect faults_per_mtask
run

# batch: the same 1M tasks through br_submit_batch (one call, one wake-up per 256)
fig N2.batch-2 "N2 W3" higher "(extra) pool of 2: $N2_TASKS no-op tasks by br_submit_batch, steady state (tasks/s)" \
    "$([[ $N2_TASKS != 1000000 ]] && echo "$N2_TASKS of 1M tasks")" "" ""
subject bench_pool "n2-batch-2 $N2_TASKS" batch-2/tasks_per_s
native omp-gcc n2_omp OMP_NUM_THREADS=2 "$N2_TASKS" tasks_per_s
native omp-clang n2_omp_clang OMP_NUM_THREADS=2 "$N2_TASKS" tasks_per_s
native tbb n2_tbb "" "$N2_TASKS" tasks_per_s
expect faults_per_mtask
run

fig N2.submit-2-nofuture "N2 W3" higher "(extra) the same without futures: submit + shutdown(wait) (tasks/s)" \
    "$([[ $N2X_TASKS != 1000000 ]] && echo "$N2X_TASKS of 1M tasks")" "" ""
subject bench_pool "n2-submit-2-nofuture $N2X_TASKS" submit-2-nofuture/tasks_per_s
n2_peers "$N2X_TASKS"
expect faults_per_mtask
run

# spin-rtt: n2_spin_rtt, two threads ping-ponging one cache line: the physical limit
fig W4.roundtrip-p50 "W4 N2" lower "submit -> result round trip, 10k sequential: p50 (us)" "" \
    "within<=1.5:spin-rtt" "p50 <= 1.5x n2_spin_rtt"
subject bench_pool roundtrip roundtrip/p50_us
native spin-rtt n2_spin_rtt "" 10000 p50_us
native libuv n2_uv UV_THREADPOOL_SIZE=2 "latency 10000" p50_us
native glib n2_glib "" "latency 10000" p50_us
native go n2_pool_go GOMAXPROCS=2 "latency 10000" p50_us
py python w4_threadpool_latency.py roundtrip roundtrip/median_us
loadable
run

fig W4.roundtrip-p99 "W4 N2" lower "submit -> result round trip, 10k sequential: p99 (us)" "" \
    "within<=3:spin-rtt" "p99 <= 3x n2_spin_rtt"
subject bench_pool roundtrip roundtrip/p99_us
native spin-rtt n2_spin_rtt "" 10000 p99_us
native libuv n2_uv UV_THREADPOOL_SIZE=2 "latency 10000" p99_us
native glib n2_glib "" "latency 10000" p99_us
native go n2_pool_go GOMAXPROCS=2 "latency 10000" p99_us
py python w4_threadpool_latency.py roundtrip roundtrip/p99_us
loadable
run

# --- W1 / N1 primes (bench_primes) --------------------------------------------------------
fig N1.single "N1 W1" lower "is_prime x $N1_CALLS, one thread (s)" "" "" ""
subject bench_primes "single $N1_CALLS" single/seconds
native c-serial n1_serial "" "" seconds
run

fig N1.threads "N1 W1" lower "is_prime x $N1_CALLS on $NCPU br_threads (s)" "" \
    "eff>=0.95:braid-single" "parallel efficiency >= 0.95 vs braid single"
subject bench_primes "threads $N1_CALLS" threads/seconds
own braid-single bench_primes "single $N1_CALLS" single/seconds
native pthreads n1_pthreads "" "" seconds
native openmp n1_omp OMP_NUM_THREADS=2 "" seconds
native go n1_primes_go GOMAXPROCS=2 "" seconds
run

fig N1.pool "N1 W1" lower "is_prime x $N1_CALLS, thread pool of $NCPU, br_map (s)" "" \
    "eff>=0.95:braid-single" "parallel efficiency >= 0.95 vs braid single"
subject bench_primes "pool $N1_CALLS" pool/seconds
own braid-single bench_primes "single $N1_CALLS" single/seconds
native pthreads n1_pthreads "" "" seconds
native openmp n1_omp OMP_NUM_THREADS=2 "" seconds
native go n1_primes_go GOMAXPROCS=2 "" seconds
run

W1_SCALE=$([[ $W1_CALLS != 100 ]] && echo "$W1_CALLS of 100 calls, braid and Python alike")
fig W1.single "W1" lower "is_prime x $W1_CALLS, one thread, vs Python (s)" "$W1_SCALE" "" ""
subject bench_primes "single $W1_CALLS" single/seconds
py python "w1_scaled.py single" "$W1_CALLS" single/seconds
run

fig W1.pool "W1" lower "is_prime x $W1_CALLS, braid pool vs Python's pools (s)" "$W1_SCALE" "" ""
subject bench_primes "pool $W1_CALLS" pool/seconds
py py-threadpool "w1_scaled.py thread" "$W1_CALLS" thread/seconds
py py-processpool "w1_scaled.py process" "$W1_CALLS" process/seconds
run

# --- W2 fib (bench_fib) ------------------------------------------------------------------
fig W2.thread "W2" lower "fib(25..34) on a pool of 3, as_completed (s)" "" "" ""
subject bench_fib thread thread/seconds
py py-threadpool w2_fib.py thread thread/seconds
py py-processpool w2_fib.py process process/seconds
run

# --- the process layer: W5 process pools (bench_processpool) ----------------------------
fig W5.ppe-submit "W5" higher "ProcessPool(2): submit 10k no-ops + wait (tasks/s)" "" \
    "ratio>=100:python" ">= 100x Python's ProcessPoolExecutor"
subject bench_processpool ppe-submit ppe-submit/tasks_per_s
py python w5_process_pools.py ppe-submit ppe-submit/tasks_per_s
run

fig W5.ppe-map "W5" higher "ProcessPool(2): map over 10k no-ops (tasks/s)" "" \
    "ratio>=100:python" ">= 100x Python's ProcessPoolExecutor"
subject bench_processpool ppe-map ppe-map/tasks_per_s
py python w5_process_pools.py ppe-map ppe-map/tasks_per_s
run

fig W5.pool-map-chunk1 "W5" higher "Pool(2).map, chunksize 1, 10k no-ops (tasks/s)" "" \
    "ratio>=20:python" ">= 20x Python's Pool(chunksize=1)"
subject bench_processpool pool-map-chunk1 pool-map-chunk1/tasks_per_s
py python w5_process_pools.py pool-map-chunk1 pool-map-chunk1/tasks_per_s
run

fig W5.pool-map-default "W5" higher "(extra) Pool(2).map, Python's default chunksize, 10k no-ops (tasks/s)" "" "" ""
subject bench_processpool pool-map-default pool-map-default/tasks_per_s
py python w5_process_pools.py pool-map-default pool-map-default/tasks_per_s
run

fig W5.payload-seq "W5" higher "ProcessPool(2): 200 sequential echoes of 1 MiB (MiB/s)" "" \
    "ratio>=10:python" ">= 10x Python"
subject bench_processpool payload-seq payload-seq/MiB_per_s
py python w5_process_pools.py payload-seq payload-seq/MiB_per_s
run

fig W5.payload-map "W5" higher "ProcessPool(2): map of the 1 MiB echo over 200 copies (MiB/s)" "" \
    "ratio>=10:python" ">= 10x Python"
subject bench_processpool payload-map payload-map/MiB_per_s
py python w5_process_pools.py payload-map payload-map/MiB_per_s
run

# --- W6 / N6 across processes (bench_mp_queue) ------------------------------------------
fig W6.mp-queue "W6" higher "multiprocessing Queue, producer process -> consumer process (items/s)" "" \
    "ratio>=50:python" ">= 50x Python"
subject bench_mp_queue mp-queue mp-queue/items_per_s
py python w6_queues.py mp-queue mp-queue/items_per_s
run

fig W6.mp-pipe "W6" higher "Pipe(duplex=False), child sends -> parent receives (msgs/s)" "" \
    "ratio>=50:python" ">= 50x Python"
subject bench_mp_queue mp-pipe mp-pipe/msgs_per_s
py python w6_queues.py mp-pipe mp-pipe/msgs_per_s
run

fig N6.1p1c "N6 W6" higher "cross-process Queue 1P -> 1C against the raw shm SPSC ring, 10M items (items/s)" "" \
    "ratio>=0.5:shm-ring" "within 2x of the raw shared-memory ring"
subject bench_mp_queue 1p1c 1p1c/items_per_s
native shm-ring n6_shm_ring "" "" items_per_s
run

# --- N6 starting processes (bench_process, bench_subprocess) -----------------------------
fig N6.fork "N6" lower "Process start + join of a no-op task, fork, 200 (us each)" "" "" ""
subject bench_process "fork 200" fork/us_each
native fork-waitpid n6_fork "" 200 us_each
py python "py_process_start.py fork" 100 us_each
run

fig N6.spawn "N6" lower "Process start + join of a no-op task, spawn, 100 (us each)" "" "" ""
subject bench_process "spawn 100" spawn/us_each
native posix-spawn n6_spawn "" 100 us_each
py python "py_process_start.py spawn" 10 us_each
run

fig N6.subprocess "N6" lower "subprocess.run(/bin/true), 500 (us each)" "" "" ""
subject bench_subprocess "run 500" run/us_each
native posix-spawn n6_spawn "" 500 us_each
py python py_subprocess_run.py 500 us_each
run

# --- shared state (bench_mp_shared, bench_mp_sync) ---------------------------------------
fig MP.dict-1p "MP" higher "(extra) shared dict set+get, one process, 1000 keys (ops/s)" "" "" ""
subject bench_mp_shared dict-1p dict-1p/ops_per_s
py python peer_manager_dict.py dict-1p dict-1p/ops_per_s
run

fig MP.lock-counter "MP W7" lower "(extra) 2 processes x increments under one process-shared lock (ns/inc)" "" "" ""
subject bench_mp_sync "counter braid" counter/ns_per_inc
own pthread-robust bench_mp_sync "counter pthread-robust" counter/ns_per_inc
py python "mp_sync_python.py counter" "" ns_per_inc
run

# --- the aio layer: W8 asyncio (bench_aio), N4 coroutines (bench_coro), N5 echo -----------
W8_GOAL="ratio>=50:python"
W8_GOALTEXT=">= 50x asyncio"
fig W8.gather-100k "W8" lower "100k tasks each yielding once, then awaited (s)" "" "$W8_GOAL" "$W8_GOALTEXT"
subject bench_aio gather-100k gather-100k/seconds
py python w8_asyncio.py gather-100k gather-100k/seconds
run

fig W8.pingpong-1m "W8" lower "two tasks yielding 500k times each (ns/switch)" "" "$W8_GOAL" "$W8_GOALTEXT"
subject bench_aio pingpong-1m pingpong-1m/ns_per_switch
py python w8_asyncio.py pingpong-1m pingpong-1m/ns_per_switch
run

# wall time of 1 s sleeps: bounded below by the sleep itself, whoever runs it
fig W8.sleep1-100k "W8" lower "100k tasks each sleeping 1 s, awaited: wall time (s)" "" "$W8_GOAL" "$W8_GOALTEXT"
subject bench_aio sleep1-100k sleep1-100k/seconds
py python w8_asyncio.py sleep1-100k sleep1-100k/seconds
run

fig W8.sleep1-100k-rss "W8" lower "(extra) the same: peak RSS of the process (MiB)" "" "" ""
subject bench_aio sleep1-100k sleep1-100k/peak_rss
py python w8_asyncio.py sleep1-100k sleep1-100k/peak_rss_mib
run

fig W8.sem10-10k "W8" lower "Semaphore(10), 10k tasks each holding it around a yield (s)" "" "$W8_GOAL" "$W8_GOALTEXT"
subject bench_aio sem10-10k sem10-10k/seconds
py python w8_asyncio.py sem10-10k sem10-10k/seconds
run

# The same masses on shared stacks (br_loop_set_task_defaults): an idle task keeps only
# its live frames, so no fresh stack page per task
fig W8.gather-100k-shared "W8" lower "gather-100k, every task on the shared stack (s)" "" "$W8_GOAL" "$W8_GOALTEXT"
subject bench_aio "gather-100k shared" gather-100k-shared/seconds
py python w8_asyncio.py gather-100k gather-100k/seconds
run

fig W8.sem10-10k-shared "W8" lower "sem10-10k, every task on the shared stack (s)" "" "$W8_GOAL" "$W8_GOALTEXT"
subject bench_aio "sem10-10k shared" sem10-10k-shared/seconds
py python w8_asyncio.py sem10-10k sem10-10k/seconds
run

fig W8.sleep1-100k-shared-rss "W8" lower "(extra) sleep1-100k on the shared stack: peak RSS (MiB)" "" "" ""
subject bench_aio "sleep1-100k shared" sleep1-100k-shared/peak_rss
py python w8_asyncio.py sleep1-100k sleep1-100k/peak_rss_mib
run

# N4's peers are not in build-peers.sh's default list: built here, skipped if they fail
if (( HAVE_PEERS && ! LIST )); then
    BUILD=$BUILD PEERS=$PEERS "$ROOT/scripts/build-peers.sh" bin/n4_fcontext bin/n4_ucontext \
        bin/n4_pingpong_go bin/n4_spawn_go
fi
fig N4.switch "N4 W8" lower "coroutine resume + suspend, 20M round trips (ns/switch)" "" \
    "ratio>=1:fcontext" "<= Boost.Context's fcontext"
subject bench_coro switch switch/ns_per_switch
native fcontext n4_fcontext "" "" ns_per_switch
native ucontext n4_ucontext "" "" ns_per_switch
native go-handoff n4_pingpong_go GOMAXPROCS=1 "" ns_per_handoff
run

fig N4.switch-raw "N4" lower "(extra) the bare context switch, as fcontext's ping-pong (ns/switch)" "" "" ""
subject bench_coro switch-raw switch-raw/ns_per_switch
native fcontext n4_fcontext "" "" ns_per_switch
run

# the 1M runs take minutes on a slow-faulting guest: the start-up time (spawn_s, first
# new to last park) is read from the same runs as an extra metric
fig N4.alive-1m "N4 W8" lower "1M coroutines alive, own stacks: peak RSS / 1M (KiB each)" "" \
    "value<=12" "<= 12 KiB each"
subject bench_coro "alive 1000000" alive/kib_per_coroutine
native go n4_spawn_go "" "" kib_per_goroutine
expect spawn_s
run

fig N4.alive-shared-1m "N4 W8" lower "1M coroutines alive, shared-stack mode: peak RSS / 1M (KiB each)" "" \
    "value<=2.7" "<= 2.7 KiB each"
subject bench_coro "alive-shared 1000000" alive-shared/kib_per_coroutine
native go n4_spawn_go "" "" kib_per_goroutine
expect spawn_s
run

# bench/peers' echo servers (libuv, Go), built into the build tree; Go's runs on
# GOMAXPROCS=1 and libuv and braid on one loop, so every figure is per server core
ECHO=$BUILD/peers/echo
if (( ! LIST )); then
    GOCACHE=$BUILD/peers/go-cache GOPATH=$BUILD/peers/gopath GOPROXY=off \
        make --no-print-directory -s -C "$ROOT/bench/peers" BIN="$ECHO" \
        "$ECHO/uv_echo" "$ECHO/go_echo" >/dev/null 2>&1 ||
        echo "bench.sh: an echo peer failed to build (make -C bench/peers); skipped" >&2
fi
echo_peers() {   # echo_peers VARIANT METRIC
    if [[ -x $ECHO/uv_echo ]]; then own libuv bench_echo "--impl libuv --server $ECHO/uv_echo $1" "$1/$2"; else SKIPPED+=(libuv); fi
    if [[ -x $ECHO/go_echo ]]; then own go bench_echo "--impl go --server 'env GOMAXPROCS=1 $ECHO/go_echo' $1" "$1/$2"; else SKIPPED+=(go); fi
}
ECHO_GOAL="ratio>1:libuv,go"
ECHO_GOALTEXT="above libuv and Go, per server core"
fig N5.echo-pingpong-1 "N5" higher "TCP echo, 1 connection, 1-byte round trips (rps per core of server CPU; rps beside)" "" "$ECHO_GOAL" "$ECHO_GOALTEXT"
subject bench_echo pingpong-1 pingpong-1/rps_per_core
echo_peers pingpong-1 rps_per_core
expect rps
run

fig N5.echo-pingpong-64 "N5" higher "TCP echo, 1 connection, 64-byte round trips (rps per core of server CPU; rps beside)" "" "$ECHO_GOAL" "$ECHO_GOALTEXT"
subject bench_echo pingpong-64 pingpong-64/rps_per_core
echo_peers pingpong-64 rps_per_core
expect rps
run

fig N5.echo-conns-64 "N5" higher "TCP echo, 64 connections, 200k round trips in all (rps per core of server CPU; rps beside)" "" "$ECHO_GOAL" "$ECHO_GOALTEXT"
subject bench_echo conns-64 conns-64/rps_per_core
echo_peers conns-64 rps_per_core
expect rps
run

fig N5.echo-stream "N5" higher "(extra) TCP echo, 256 MiB through one connection (MB/s)" "" "" ""
subject bench_echo stream stream/mb_per_s
echo_peers stream mb_per_s
run

# --- the http layer and the apps (issue 12): W9, W10, N5's hello --------------------------
# W9's servers, started once, when the first W9 figure runs: `braid serve --fixture
# --latency 100` (W9's latency-bound server; braid's crawl and the Python peer's crawl
# both fetch from it) and nginx over the fixture's files (W9 "big", zero latency), the
# Python peer's own configuration. The fixture's files and expected lines come from
# bench/peers/fixture/gen_site.py (the peer's generator, in the tree).
BRAID_PROG=$BUILD/apps/braid/braid
W9_SITE=""; W9_SLOW=""; W9_NGINX=""
w9_servers() {
    [[ -n $W9_SITE ]] && return 0
    W9_SITE=$CAPROOT/w9-site
    chmod go+rx "$CAPROOT" # nginx's worker runs as another user when we are root
    "$PYTHON" "$ROOT/bench/peers/fixture/gen_site.py" "$W9_SITE" > /dev/null || { W9_SITE=""; return 1; }
    if [[ -x $BRAID_PROG ]]; then
        "$BRAID_PROG" serve --fixture --latency 100 --port 0 > "$CAPROOT/w9-slow.url" 2> /dev/null &
        SERVER_PIDS+=($!)
        local i
        for i in $(seq 1 100); do [[ -s $CAPROOT/w9-slow.url ]] && break; sleep 0.05; done
        W9_SLOW=$(head -n 1 "$CAPROOT/w9-slow.url"); W9_SLOW=${W9_SLOW%/}
    fi
    if command -v nginx > /dev/null && [[ -f $PYDIR/nginx.conf.template ]]; then
        local prefix=$CAPROOT/nginx port=$((20000 + RANDOM % 30000))
        mkdir -p "$prefix"
        sed -e "s|@PREFIX@|$prefix|g" -e "s|@PORT@|$port|g" -e "s|@ROOT@|$W9_SITE|g" \
            "$PYDIR/nginx.conf.template" > "$prefix/nginx.conf"
        nginx -p "$prefix" -c "$prefix/nginx.conf" > "$prefix/out.log" 2>&1 &
        SERVER_PIDS+=($!)
        for i in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/hello.txt" > /dev/null 2>&1 && break; sleep 0.05; done
        W9_NGINX=http://127.0.0.1:$port
    fi
}
# run_w9: run(), with the servers up first (unless only listing or not selected)
run_w9() {
    if (( ! LIST )) && { selected || twin_selected; }; then w9_servers; fi
    run
}
# A braid figure whose command is a script (bench/*.sh) running a built program:
# F_PROG names that program, for the "not built" check.
script_subject() { F_PROG=$1; TRIPLES+=(braid "$2" "$3"); }
# A peer that is a command of its own (a script in bench/, a server kind)
peer_cmd() { TRIPLES+=("$1" "$2" "$3"); }

W9_GOAL="value<=0.25"
W9_GOALTEXT="50 pages at +100 ms in at most 0.25 s"
for model in async pipeline pool threads process; do
    fig W9.crawl-$model "W9" lower "crawl of the fixture's 50 pages at +100 ms, $model model (s)" "" "$W9_GOAL" "$W9_GOALTEXT"
    F_PROG=bench_crawl
    if (( ! LIST )) && { selected || twin_selected; }; then w9_servers; fi
    if [[ -n $W9_SLOW ]]; then
        subject bench_crawl "--base $W9_SLOW/ --model $model" "$model/seconds"
        case $model in
            async) pyv=aiohttp-sem10 ;; pipeline) pyv=pipeline ;; pool) pyv=threadpool ;;
            threads) pyv=thread-per-url ;; process) pyv=mp-pool4 ;;
        esac
        py python "w9_crawl.py" "--base $W9_SLOW --variant $pyv --parser lxml --out $CAPROOT/w9-py.tsv --expected $W9_SITE/expected.tsv --label slow" seconds
    else
        subject bench_crawl "--latency 100 --model $model" "$model/seconds"
    fi
    run
done

fig W9.big-shared "W9" higher "2,000 fetches from nginx, 50 in flight, one client (pages/s)" "" "ratio>=5:python" "at least 5x aiohttp's pages/s"
F_PROG=bench_http_client
if (( ! LIST )) && { selected || twin_selected; }; then w9_servers; fi
if [[ -n $W9_NGINX ]]; then
    subject bench_http_client "big-shared $W9_NGINX $W9_SITE" pages_per_s
    py python w9_crawl.py "--base $W9_NGINX --variant big-shared --parser none --label nginx --expected $W9_SITE/expected.tsv" pages_per_s
    # The server's ceiling on these cores: wrk over the same 50 pages (bench/w9_ceiling.sh).
    command -v wrk > /dev/null && peer_cmd wrk-ceiling "$ROOT/bench/w9_ceiling.sh $W9_NGINX" pages_per_s || SKIPPED+=(wrk)
fi
run

fig W9.big-perpage "W9" higher "(extra) the same, a new client (connection) per fetch (pages/s)" "" "" ""
F_PROG=bench_http_client
if [[ -n $W9_NGINX ]]; then
    subject bench_http_client "big-perpage $W9_NGINX $W9_SITE" pages_per_s
    py python w9_crawl.py "--base $W9_NGINX --variant big-perpage --parser none --label nginx --expected $W9_SITE/expected.tsv" pages_per_s
fi
run

# N5 / W10 hello: braid's server under wrk beside nginx, Go net/http and libuv's minimal
# responder (bench/http_hello.sh builds nothing: the peers come from PEERS_BIN)
fig N5.hello "N5 W10" higher "HTTP hello route, wrk -t1 -c50 -d10s (requests/s)" "" "ratio>1:nginx,go" "above nginx and Go (libuv's minimal responder: the stretch)"
script_subject bench_http_server "$ROOT/bench/http_hello.sh braid" requests_per_s
command -v nginx > /dev/null && peer_cmd nginx "$ROOT/bench/http_hello.sh nginx" requests_per_s || SKIPPED+=(nginx)
# bench/http_hello.sh takes the Go and libuv servers from PEERS_BIN: scripts/build-peers.sh's
# directory unless the caller names another.
export PEERS_BIN=${PEERS_BIN:-$PB}
[[ -x $PEERS_BIN/n5_http_go ]] && peer_cmd go "$ROOT/bench/http_hello.sh go" requests_per_s || SKIPPED+=(go)
[[ -x $PEERS_BIN/n5_uv_http ]] && peer_cmd libuv "$ROOT/bench/http_hello.sh uv" requests_per_s || SKIPPED+=(libuv)
run

# W10: the tutorials' service, braid serve against the Flask app, wrk -t1 -c10 -d10s
fig W10.is_prime "W10" higher "GET /is_prime/2,3,5,7,11,13 on the process pool, wrk -t1 -c10 (requests/s)" "" "ratio>=50:flask" "at least 50x Flask's requests/s"
script_subject ../apps/braid/braid "$ROOT/bench/w10.sh braid is_prime $BRAID_PROG" is_prime/rps
[[ -x $PYTHON ]] && peer_cmd flask "$ROOT/bench/w10.sh flask is_prime" is_prime/rps || SKIPPED+=(flask)
run

fig W10.index "W10" higher "GET / fanning out 0.1/0.2/0.3 s reads to 6 pool threads (requests/s)" "" "" ""
script_subject ../apps/braid/braid "$ROOT/bench/w10.sh braid index $BRAID_PROG" index/rps
[[ -x $PYTHON ]] && peer_cmd flask "$ROOT/bench/w10.sh flask index" index/rps || SKIPPED+=(flask)
run

# --- summary -----------------------------------------------------------------------------
(( LIST )) && exit 0
echo
if (( ! USE_PEERS )); then
    echo "bench.sh: --no-peers: braid's own figures only"
elif (( ! HAVE_PEERS )); then
    echo "bench.sh: no peers at $PEERS: braid's own figures only"
fi
$REPORT summary "$RESULTS" "$MODE" "$RUNS"
check_spinners
echo
echo "results: $RESULTS"
