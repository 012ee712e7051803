#!/usr/bin/env bash
# BENCH.md N5 / W10 "hello", one run of one server under the peers' wrk command:
#   wrk -t1 -c50 -d10s --latency http://127.0.0.1:PORT/hello.txt
# after a curl check of the body and a 2 s warm-up (discarded). Prints METRIC lines
# (requests_per_s, p50_us, p99_us, non2xx, socket_errors) for tools/side-by-side:
#
#   tools/side-by-side -n 5 --higher \
#     braid 'bench/http_hello.sh braid' requests_per_s \
#     nginx 'bench/http_hello.sh nginx' requests_per_s \
#     go    'bench/http_hello.sh go'    requests_per_s \
#     libuv 'bench/http_hello.sh uv'    requests_per_s
#
# KIND: braid (build/bench/bench_http_server; BRAID_BENCH_BIN overrides), braid-log
# (the same with its access log on, to /dev/null), braid-nohto (without the handler
# timeout's scope), uv / go / nginx: the peers of
# ../shared/peers/native (src/n5_uv_http.c, src/n5_http.go, conf/nginx.conf.in),
# whose binaries are taken from PEERS_BIN (default /tmp/braid-peers; scripts/bench.sh passes
# scripts/build-peers.sh's build/peers/bin, which has them: or build them there
# with the peers' Makefile rules; see docs/http-server.md). The server is stopped by
# its PID; everything is on 127.0.0.1 and the two cores are shared, nothing pinned.
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
KIND=${1:?usage: http_hello.sh braid|braid-log|braid-nohto|uv|go|nginx}
DURATION=${WRK_DURATION:-10s}
PEERS_BIN=${PEERS_BIN:-/tmp/braid-peers}
PEERS_SRC=${PEERS_SRC:-$HERE/../shared/peers/native}
BRAID_BIN=${BRAID_BENCH_BIN:-$HERE/build/bench/bench_http_server}

pick_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if ! ss -Htln "sport = :$p" | grep -q .; then echo "$p"; return 0; fi
    done
    echo "no free port" >&2; return 1
}

PORT=$(pick_port)
URL="http://127.0.0.1:$PORT/hello.txt"
SERVER_PID=
PREFIX=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [[ -n $PREFIX && -d $PREFIX ]] && rm -rf "$PREFIX"
    return 0
}
trap cleanup EXIT

case $KIND in
braid)     timeout 90 "$BRAID_BIN" "$PORT" & SERVER_PID=$! ;;
braid-log) timeout 90 "$BRAID_BIN" "$PORT" --log 2>/dev/null & SERVER_PID=$! ;;
braid-nohto) timeout 90 "$BRAID_BIN" "$PORT" --no-handler-timeout & SERVER_PID=$! ;;
uv)        timeout 90 "$PEERS_BIN/n5_uv_http" "$PORT" 2>/dev/null & SERVER_PID=$! ;;
go)        GOMAXPROCS=2 timeout 90 "$PEERS_BIN/n5_http_go" "$PORT" & SERVER_PID=$! ;;
nginx)
    PREFIX=$(mktemp -d /tmp/braid-nginx.XXXXXX)
    chmod 755 "$PREFIX"
    mkdir -p "$PREFIX/html" "$PREFIX/tmp"
    printf 'Hello, World!' > "$PREFIX/html/hello.txt"
    chmod 644 "$PREFIX/html/hello.txt"
    sed -e "s|@PREFIX@|$PREFIX|g" -e "s|@PORT@|$PORT|g" "$PEERS_SRC/conf/nginx.conf.in" \
        > "$PREFIX/nginx.conf"
    timeout 90 nginx -p "$PREFIX" -c "$PREFIX/nginx.conf" -e "$PREFIX/error.log" &
    SERVER_PID=$!
    ;;
*) echo "unknown kind $KIND" >&2; exit 2 ;;
esac

for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
    sleep 0.05
done
body=$(curl -s --max-time 5 "$URL" || true)
[[ $body == "Hello, World!" ]] || { echo "unexpected body: '$body'" >&2; exit 1; }

timeout 30 wrk -t1 -c50 -d2s "$URL" > /dev/null
out=$(timeout 60 wrk -t1 -c50 -d"$DURATION" --latency "$URL")
echo "$out" | sed 's/^/# /'

to_us() { # wrk prints 812.00us, 1.23ms, 1.01s
    awk -v v="$1" 'BEGIN{
        if (v ~ /us$/) { sub(/us$/,"",v); print v+0 }
        else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 }
        else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 }
        else print "nan" }'
}
rps=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
p50=$(echo "$out" | awk '$1=="50%" {print $2}')
p99=$(echo "$out" | awk '$1=="99%" {print $2}')
non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
sockerr=$(echo "$out" | awk '/Socket errors/ {gsub(/,/,""); print $4+$6+$8+$10}')
echo "METRIC requests_per_s $rps req/s"
echo "METRIC p50_us $(to_us "$p50") us"
echo "METRIC p99_us $(to_us "$p99") us"
echo "METRIC non2xx ${non2xx:-0} responses"
echo "METRIC socket_errors ${sockerr:-0} errors"

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
if kill -0 "$SERVER_PID" 2>/dev/null; then echo "server still alive" >&2; exit 1; fi
SERVER_PID=
