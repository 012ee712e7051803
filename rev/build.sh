#!/bin/sh
# Builds rev/*.c against build/src/libbraid.a (or $B/src/libbraid.a, e.g. B=build-asan).
cd "$(dirname "$0")/.." || exit 1
B=${B:-build}
for f in rev/*.c; do
  n=$(basename "$f" .c)
  extra=""
  case "$B" in *asan*) extra="-fsanitize=address,undefined";; *tsan*) extra="-fsanitize=thread";; esac
  cc -std=gnu11 -O1 -g $extra -Isrc -Iinclude -I"$B"/include "$f" "$B"/src/libbraid.a -lpthread -lm -o "rev/$n.$B" || exit 1
done
