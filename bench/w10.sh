#!/usr/bin/env bash
# bench/w10.sh: W10 (the tutorials' web service) and the N5 hello route under wrk, for
# one implementation per run, printing BENCH.md's JSON lines (requests/s, p50 and p99
# latency). side-by-side runs it for braid and for the Flask peer alternately:
#
#   bench/w10.sh braid ROUTE [BRAID]     braid serve (BRAID: the program, default
#                                        build/apps/braid/braid)
#   bench/w10.sh flask ROUTE             bench/w10_flask_app.py, the tutorial's Flask app
#
# ROUTE: is_prime (/is_prime/2,3,5,7,11,13), index (/), hello (/hello; braid only).
# WRK_ARGS overrides the load (default "-t1 -c10 -d10s", BENCH.md's W10 load); every
# server binds 127.0.0.1 on a free port and is stopped by pid when the run ends.
set -euo pipefail
impl=${1:?usage: bench/w10.sh braid|flask is_prime|index|hello [BRAID]}
route=${2:?usage: bench/w10.sh braid|flask is_prime|index|hello [BRAID]}
here=$(cd "$(dirname "$0")" && pwd)
braid=${3:-$here/../build/apps/braid/braid}
wrk_args=${WRK_ARGS:--t1 -c10 -d10s}
case $route in
    is_prime) path=/is_prime/2,3,5,7,11,13 ;;
    index) path=/ ;;
    hello) path=/hello ;;
    *) echo "w10.sh: unknown route $route" >&2; exit 2 ;;
esac

tmp=$(mktemp -d)
pid=
cleanup() {
    if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

case $impl in
    braid)
        "$braid" serve --port 0 >"$tmp/out" 2>"$tmp/err" &
        pid=$!
        for _ in $(seq 200); do [[ -s $tmp/out ]] && break; sleep 0.05; done
        url=$(head -n1 "$tmp/out")
        url=${url%/}
        ;;
    flask)
        [[ $route == hello ]] && { echo "w10.sh: the Flask app has no /hello" >&2; exit 2; }
        port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        /usr/bin/python3 "$here/w10_flask_app.py" "$port" >"$tmp/out" 2>"$tmp/err" &
        pid=$!
        url=http://127.0.0.1:$port
        for _ in $(seq 200); do curl -sf -o /dev/null "$url/is_prime/2" && break; sleep 0.05; done
        ;;
    *) echo "w10.sh: unknown implementation $impl" >&2; exit 2 ;;
esac
[[ -n ${url:-} ]] || { echo "w10.sh: $impl did not start" >&2; cat "$tmp/err" >&2; exit 1; }
curl -sf -o "$tmp/body" "$url$path" || { echo "w10.sh: $url$path failed" >&2; exit 1; }

# shellcheck disable=SC2086
wrk $wrk_args --latency "$url$path" >"$tmp/wrk"
awk -v impl="$impl" -v variant="$route" '
    function ms(v) {            # wrk latency "1.23ms" / "456.00us" / "1.20s" -> ms
        if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
        if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
        if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
        return v + 0
    }
    function line(metric, value, unit) {
        printf "{\"workload\": \"W10\", \"variant\": \"%s\", \"impl\": \"%s\", \"metric\": \"%s\", \"value\": %s, \"unit\": \"%s\"}\n", variant, impl, metric, value, unit
    }
    /^Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { bad = $NF }
    /Socket errors:/ { errs = $0 }
    END {
        if (bad > 0) { printf "w10.sh: %d non-2xx responses\n", bad > "/dev/stderr"; exit 1 }
        line("rps", rps, "req/s"); line("p50_ms", p50, "ms"); line("p99_ms", p99, "ms")
        if (errs != "") printf "w10.sh: %s\n", errs > "/dev/stderr"
    }' "$tmp/wrk"
