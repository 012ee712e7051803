#!/usr/bin/env bash
# Builds the native peers that scripts/bench.sh runs beside braid, from
# ../shared/peers/native/src into $BUILD/peers/bin (default build/peers/bin).
#
#   scripts/build-peers.sh            N1 (serial, pthreads, OpenMP, Go), N2 (libuv, GLib,
#                                     OpenMP gcc + clang, oneTBB, Go, n2_spin_rtt), N3 (GLib,
#                                     Go chan, ring), N5's HTTP hello servers (libuv, Go: for
#                                     bench/http_hello.sh), and the machine probes fault_cost, calib
#   scripts/build-peers.sh bin/n3_ring ...   only those targets
#
# It drives the peers' own Makefile (make -f .../native/Makefile), run in $BUILD/peers
# with a link to their src/, so every peer gets exactly the compilers and flags that
# produced the baseline (research/baseline-native.md); ../shared stays untouched. Go
# builds keep GOCACHE and GOPATH under $BUILD/peers and never reach the network.
# A peer that fails to build (a missing toolchain or library) is reported and skipped;
# scripts/bench.sh leaves it out. Without ../shared/peers: a message and exit 0.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
PEERS=${PEERS:-$ROOT/../shared/peers}
NATIVE=$PEERS/native
OUT=$BUILD/peers

if [[ ! -f $NATIVE/Makefile || ! -d $NATIVE/src ]]; then
    echo "build-peers: no native peers at $NATIVE; skipping (braid figures only)" >&2
    exit 0
fi

targets=("$@")
if (( ${#targets[@]} == 0 )); then
    targets=(bin/n1_serial bin/n1_pthreads bin/n1_omp bin/n1_primes_go
             bin/n2_uv bin/n2_glib bin/n2_omp bin/n2_omp_clang bin/n2_tbb bin/n2_pool_go
             bin/n3_glib bin/n3_chan_go bin/n3_ring
             bin/n6_fork bin/n6_spawn bin/n6_pipe bin/n6_shm_ring
             bin/n5_uv_http bin/n5_http_go
             bin/n2_spin_rtt bin/fault_cost bin/calib)
fi

mkdir -p "$OUT/bin" "$OUT/go-cache" "$OUT/gopath"
ln -sfn "$(cd "$NATIVE/src" && pwd)" "$OUT/src"

export GOCACHE=$OUT/go-cache GOPATH=$OUT/gopath GOPROXY=off
failed=()
for t in "${targets[@]}"; do
    if ! out=$(make --no-print-directory -C "$OUT" -f "$NATIVE/Makefile" "$t" 2>&1); then
        failed+=("$t")
        printf 'build-peers: %s failed to build; skipped:\n%s\n' "$t" "$(tail -n 5 <<<"$out")" >&2
    elif [[ $out != *"is up to date"* ]]; then
        echo "build-peers: built $OUT/$t" >&2
    fi
done
built=$(( ${#targets[@]} - ${#failed[@]} ))
echo "build-peers: $built of ${#targets[@]} peers ready in $OUT/bin${failed:+ (skipped: ${failed[*]})}" >&2
exit 0
