#!/bin/sh
# Builds bench/ablate_mp_ring.c once per variant into $OUT (default /tmp/ablate) and runs
# every variant, plus the native peer n6_shm_ring and braid's bench_mp_queue 1p1c when
# given, in ROUNDS interleaved rounds; prints one line per run (round variant items/s).
# Each run holds /tmp/braid-bench.lock (as ../shared/tools/side-by-side does).
#   bench/ablate_mp_ring.sh ROUNDS [N] [RING_BIN] [BRAID_BENCH ...]
# e.g. bench/ablate_mp_ring.sh 7 10000000 build/peers/bin/n6_shm_ring build/bench/bench_mp_queue
set -eu
ROUNDS=${1:-5}; N=${2:-10000000}; RING=${3:-}; shift 3 2>/dev/null || shift $#
OUT=${OUT:-/tmp/ablate}; mkdir -p "$OUT"
SRC=$(dirname "$0")/ablate_mp_ring.c
L="-DREC16 -DVARCOPY -DNWORD -DCOMMIT"          # the record layout and publication
M="$L -DSLEEP -DSTATE -DLOCK -DCAPB=262144 -DCALL" # main's path, modelled
B="$L -DSLEEP -DSTATE -DBIAS -DCAPB=262144 -DCALL" # the biased branch's path, modelled
VARIANTS="
ring|
cap256k|-DCAPB=262144
rec16|-DREC16
varcopy|-DVARCOPY
nword|-DNWORD
commit|-DCOMMIT
fence|-DFENCE
sleep|-DSLEEP
state|-DSTATE
lock|-DLOCK
bias|-DBIAS
call|-DCALL
layout|$L
layout+sleep|$L -DSLEEP
layout+sleep+lock|$L -DSLEEP -DLOCK
main-model|$M
main-model-rec16|$(echo "$M" | sed 's/-DREC16//')
main-model-varcopy|$(echo "$M" | sed 's/-DVARCOPY//')
main-model-nword|$(echo "$M" | sed 's/-DNWORD//')
main-model-commit|$(echo "$M" | sed 's/-DCOMMIT//')
main-model-sleep|$(echo "$M" | sed 's/-DSLEEP//')
main-model-state|$(echo "$M" | sed 's/-DSTATE//')
main-model-lock|$(echo "$M" | sed 's/-DLOCK//')
main-model-cap|$(echo "$M" | sed 's/-DCAPB=262144//')
main-model-call|$(echo "$M" | sed 's/-DCALL//')
biased-model|$B
pack|-DPACK
lock+fence|-DLOCK -DFENCE
layout+fence|$L -DFENCE
layout+lock|$L -DLOCK
main-model-nobarrier|$(echo "$M" | sed 's/-DLOCK//; s/-DSLEEP//')
main-model-nobarrier-rec16|$(echo "$M" | sed 's/-DLOCK//; s/-DSLEEP//; s/-DREC16//')
main-model-nobarrier+pack|$(echo "$M" | sed 's/-DLOCK//; s/-DSLEEP//; s/-DREC16//; s/-DVARCOPY//') -DPACK
main-model-lockst|$M -DLOCKST
pack+sleep+bias|-DPACK -DNWORD -DCOMMIT -DSTATE -DCAPB=262144 -DCALL -DSLEEP -DBIAS
"
echo "$VARIANTS" | while IFS='|' read -r name flags; do
    [ -n "$name" ] || continue
    cc -O2 -std=gnu11 -Wall -Wextra $flags -o "$OUT/$name" "$SRC"
done
names=$(echo "$VARIANTS" | cut -d'|' -f1 | grep -v '^$')
for r in $(seq 1 "$ROUNDS"); do
    for v in $names; do
        x=$(flock /tmp/braid-bench.lock "$OUT/$v" "$N" | awk '/items_per_s/{v=$3} /sleeps/{s=$3} END{print v, "sleeps=" s}')
        echo "$r $v $x"
    done
    if [ -n "$RING" ]; then echo "$r n6_shm_ring $(flock /tmp/braid-bench.lock "$RING" "$N" 1 | awk '/items_per_s/{print $3}')"; fi
    for b in "$@"; do
        echo "$r braid:$b $(flock /tmp/braid-bench.lock "$b" 1p1c "$N" 2>/dev/null | sed -n 's/.*"value": *\([0-9.e+]*\).*/\1/p' | head -1)"
    done
done
