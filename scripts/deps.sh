#!/usr/bin/env bash
# Installs the Debian 12 packages braid needs that aren't installed yet.
#   scripts/deps.sh build   what `make test`, `make run` and `make sanitize` need
#   scripts/deps.sh bench   that, plus what the peers of ../shared/peers need
# Quiet and quick when nothing is missing (no apt-get update then).
set -euo pipefail

what=${1:-build}
build_pkgs=(cmake ninja-build make gcc g++ libc6-dev pkg-config libcmocka-dev
            # the aio.memcheck tests (tests/aio/tests.cmake)
            valgrind
            libasan8 libubsan1 libtsan2
            # the MPI executor (optional in the build; CI builds and tests it)
            openmpi-bin libopenmpi-dev
            # the http layer (optional in the build; CI builds and tests it): libcurl,
            # libxml2, jansson, llhttp's generated C sources (node-llhttp ships them),
            # nginx-light (the crawl tests' second server), chromium (the report's test)
            libcurl4-openssl-dev libxml2-dev libjansson-dev node-llhttp nginx-light
            chromium
            # the request parser's libFuzzer target (tests/http), built with clang
            clang
            # the client's HTTPS test serves with the openssl program
            openssl)
bench_pkgs=(libomp-dev libglib2.0-dev libuv1-dev golang-go libtbb-dev
            libboost-context-dev python3
            # the Python peers of W9/W10 (the tutorials' crawler and Flask service), wrk
            python3-bs4 python3-lxml python3-aiohttp python3-flask python3-requests wrk
            # the libuv HTTP peer of N5 (n5_uv_http)
            libhttp-parser-dev)

case "$what" in
  build) pkgs=("${build_pkgs[@]}") ;;
  bench) pkgs=("${build_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|bench]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps.sh: no dpkg here (not Debian?); skipping the package check." >&2
  echo "deps.sh: braid needs a C11 compiler, CMake >= 3.20, Ninja, pkg-config and cmocka." >&2
  exit 0
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "deps.sh: missing packages (${missing[*]}) and not root; install them and retry" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
