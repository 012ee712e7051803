#!/usr/bin/env bash
# bench/selftest.sh: checks scripts/bench.sh itself, in about half a minute, on stand-in
# benchmark programs (shell scripts printing fixed figures) in a temporary build tree,
# without peers: a broken harness is worse than none. Not part of `make test` (it takes
# the benchmark lock, which a long benchmark of someone else's may hold for minutes).
#
# What it checks, from the JSON lines the run writes:
#   - the machine record comes first, with the CPU model;
#   - W3.submit-2: braid against its 1-worker run (the 2-vs-1 ratio and its goal), the
#     spread of rounds and of per-round ratios, faults_per_mtask read from the same runs;
#   - W3.map-2: a program without the 1-worker variant gives "not available" for that
#     peer, and the figure is still judged;
#   - W7.counter-locked and its loaded twin: min_share and the "no thread starved"
#     check, the twin's verdict, and no busy process left behind;
#   - N2.submit-2-cold: a variant the program lacks is "not available", not a failure;
#   - N3.1p1c: a program that is not built is skipped.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/braid-bench-selftest.XXXXXX")
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/bench"

cat > "$T/bench/bench_pool" <<'EOF'
#!/bin/sh
# map-1 and n2-submit-2-cold deliberately missing
j() { printf '{"workload": "%s", "variant": "%s", "impl": "braid", "metric": "%s", "value": %s}\n' "$@"; }
case $1 in
    submit-2) j W3 submit-2 tasks_per_s 2000000; j W3 submit-2 faults_per_mtask 12 ;;
    submit-1) j W3 submit-1 tasks_per_s 1000000 ;;
    map-2) j W3 map-2 tasks_per_s 1500000; j W3 map-2 faults_per_mtask 30 ;;
    *) echo "usage: bench_pool [submit-2|submit-1|map-2]" >&2; exit 2 ;;
esac
EOF
cat > "$T/bench/bench_lock" <<'EOF'
#!/bin/sh
[ "$1" = counter-locked ] || { echo "usage: bench_lock counter-locked IMPL" >&2; exit 2; }
if [ "$2" = braid ]; then v=0.050; s=0.45; else v=0.060; s=0.30; fi
printf '{"workload": "W7", "variant": "counter-locked", "impl": "%s", "metric": "seconds", "value": %s}\n' "$2" "$v"
printf '{"workload": "W7", "variant": "counter-locked", "impl": "%s", "metric": "min_share", "value": %s}\n' "$2" "$s"
EOF
chmod +x "$T/bench/bench_pool" "$T/bench/bench_lock"

TMPDIR=$T BUILD=$T "$ROOT/scripts/bench.sh" --no-peers -n 3 \
    W3.submit-2 W3.map-2 W7.counter-locked-loaded N2.submit-2-cold N3.1p1c > "$T/out.txt" 2>&1
rc=$?
python3 - "$T/bench-results/latest.jsonl" "$rc" "$T/out.txt" <<'EOF'
import json, sys
path, rc, out = sys.argv[1], int(sys.argv[2]), open(sys.argv[3]).read()
recs = [json.loads(l) for l in open(path) if l.strip()]
fails = []
def check(cond, what):
    if not cond:
        fails.append(what)
check(rc == 0, "bench.sh exit status %d" % rc)
check(recs and recs[0].get("machine") and recs[0].get("cpu_model"), "machine record first")
fig = {r["figure"]: r for r in recs if "figure" in r}
w3 = fig.get("W3.submit-2", {})
check(abs((w3.get("ratios", {}).get("braid-1w") or 0) - 2.0) < 1e-9, "W3 2-vs-1 ratio 2.0")
check(w3.get("met") is True, "W3 goal judged on the 1-worker ratio")
check((w3.get("braid_spread") or {}).get("n") == 3, "three rounds in braid's spread")
check(w3.get("round_ratios", {}).get("braid-1w") == [2.0, 2.0, 2.0], "per-round ratios")
check(w3.get("extras", {}).get("braid", {}).get("faults_per_mtask") == [12, 12, 12],
      "faults_per_mtask from the same runs")
m2 = fig.get("W3.map-2", {})
check(m2.get("peers", {}).get("braid-1w", {}).get("unavailable") is True,
      "map-1 missing: braid-1w not available")
check(not m2.get("unavailable") and m2.get("braid_median") == 1.5e6, "map-2 still measured")
c = fig.get("W7.counter-locked", {})
check(c.get("extras", {}).get("braid", {}).get("min_share") == [0.45] * 3, "min_share read")
check(any(g["goal"].startswith("min_share") and g["met"] is True for g in c.get("goals", [])),
      "no thread starved: met")
tw = fig.get("W7.counter-locked-loaded", {})
check(tw.get("loaded") == "%d" % (__import__("os").cpu_count() - 1), "twin ran loaded")
check(tw.get("beaten_unloaded") == ["pthread"] and tw.get("met") is True,
      "twin: still ahead of pthread")
cold = fig.get("N2.submit-2-cold", {})
check(bool(cold.get("unavailable")), "a missing variant is not available")
check(bool(fig.get("N3.1p1c", {}).get("skipped")), "a program not built is skipped")
check("not available" in out and "Traceback" not in out, "the output says not available")
if fails:
    print("bench selftest: FAILED: " + "; ".join(fails))
    print(out)
    sys.exit(1)
print("bench selftest: ok (%d figure records)" % len(fig))
EOF
status=$?
# no busy process of this run may outlive it: ours carry BENCH_SPINNERS under $T in their
# environment (bench.sh's temporary directory is made under TMPDIR=$T); a concurrent
# benchmark's spinner is not ours
left=""
for pid in $(pgrep -u "$(id -u)" -f '^sh -c while :; do :; done$'); do
    if { tr '\0' '\n' < "/proc/$pid/environ"; } 2>/dev/null | grep -q "^BENCH_SPINNERS=$T/"; then
        left+=" $pid"
    fi
done
if [[ -n $left ]]; then
    ps -o pid=,ppid=,args= -p "$(echo $left | tr ' ' ,)"
    echo "bench selftest: FAILED: a busy process outlived the run (listed above)" >&2
    status=1
fi
exit $status
