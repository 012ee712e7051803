#!/usr/bin/env python3
"""Python's multiprocessing.Process start cost, for bench_process's side-by-side (no
peer under /work/shared/peers measures it): start + join of a no-op target, N times
after 20 warm-up, with the start method given ("fork", "spawn", "forkserver").
Prints `METRIC us_each <value> us`."""
import multiprocessing as mp
import sys
import time


def noop():
    pass


def main():
    method = sys.argv[1] if len(sys.argv) > 1 else "fork"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    ctx = mp.get_context(method)
    for _ in range(20):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
    t0 = time.perf_counter()
    for _ in range(n):
        p = ctx.Process(target=noop)
        p.start()
        p.join()
        assert p.exitcode == 0
    s = time.perf_counter() - t0
    print("METRIC us_each %.1f us" % (s * 1e6 / n))


if __name__ == "__main__":
    main()
