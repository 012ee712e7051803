#!/usr/bin/env bash
# W9 "big": the server's own ceiling. wrk (one thread, 50 connections, as the crawl's 50
# in flight) fetching the fixture's 50 pages in turn from the same server for 2 s; prints
# `METRIC pages_per_s <requests/s> pages/s` for tools/side-by-side. wrk reads each reply
# into one buffer and drops it (no copy out, no parse), so no client on these two shared
# cores can fetch faster than this from that server: it bounds what any ratio to
# aiohttp can reach (docs/benchmarks.md, W9 big).
#
#   bench/w9_ceiling.sh BASE_URL      e.g. http://127.0.0.1:28080
set -euo pipefail
BASE=${1:?usage: w9_ceiling.sh BASE_URL}
command -v wrk > /dev/null || { echo "w9_ceiling: wrk is not installed" >&2; exit 1; }
LUA=$(mktemp /tmp/braid-w9-ceiling.XXXXXX.lua)
trap 'rm -f "$LUA"' EXIT
cat > "$LUA" <<'LUA'
local i = 0
request = function()
  i = i % 50 + 1
  return wrk.format("GET", string.format("/page-%02d.html", i))
end
LUA
out=$(wrk -t1 -c50 -d"${WRK_DURATION:-2s}" -s "$LUA" "$BASE")
# A reply that isn't a 2xx/3xx (a missing page) would make this a ceiling of errors.
if grep -q "Non-2xx" <<< "$out"; then
    echo "w9_ceiling: non-2xx replies:" >&2
    echo "$out" >&2
    exit 1
fi
rps=$(awk '/^Requests\/sec:/ {print $2}' <<< "$out")
[[ -n $rps ]] || { echo "w9_ceiling: no Requests/sec in wrk's output" >&2; echo "$out" >&2; exit 1; }
echo "METRIC pages_per_s $rps pages/s"
