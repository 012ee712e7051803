"""Python's W1 (peers/python/w1_primes.py), scaled down for routine `make bench` runs.

    cd ../shared/peers/python && python3 /path/to/w1_scaled.py {single|thread|process} CALLS

Imports the peer's own w1_primes module and runs its own variant function unchanged,
with PRIMES shortened to CALLS copies of 112272535095293 (the peer uses 100, which takes
50-60 s per run here). Timing and output are the peer's: the whole call, pool start-up
and shutdown included; one JSON line with "calls" and "scale" added. Every result must be
True. With CALLS = 100 this is exactly the peer's run.
"""
import os
import sys

sys.path.insert(0, os.getcwd())  # the peer's directory (run from there)

import w1_primes  # noqa: E402  (the peer's module)
from bench_common import emit, perf  # noqa: E402

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in w1_primes.VARIANTS:
        sys.stderr.write("usage: w1_scaled.py {single|thread|process} CALLS\n")
        sys.exit(2)
    variant, calls = sys.argv[1], int(sys.argv[2])
    w1_primes.PRIMES = [112272535095293] * calls
    t0 = perf()
    res = w1_primes.VARIANTS[variant]()
    t1 = perf()
    assert res == [True] * calls, "112272535095293 must be prime"
    emit("W1", variant, "seconds", round(t1 - t0, 4), "s", n_calls=calls,
         scale="%d/100 calls" % calls)
