"""The shared-dict peer: Python's multiprocessing Manager().dict(), the same work as
bench_mp_shared.c (same variant and metric names, so side-by-side pairs them).

dict-1p: one process, N rounds of d[key] = r; assert d[key] == r, over K = 1000 keys
         "key-<r % K>"; one untimed warm-up pass over the keys first.
dict-2p: two processes (fork) on one Manager dict, each N/2 rounds over its own K keys,
         from a common start (an Event) to both joined.
One op = one set or one get: ops_per_s = 2 N / seconds. N defaults to 20,000 (a
Manager op takes tens of microseconds, so this takes about as long as braid's run).

Usage: peer_manager_dict.py {dict-1p|dict-2p} [N]
"""
import json
import multiprocessing as mp
import os
import sys
import time

K = 1000


def rounds(d, n, base):
    keys = ["key-%d" % (base + i) for i in range(K)]
    for r in range(n):
        k = keys[r % K]
        d[k] = r
        if d[k] != r:
            raise SystemExit("wrong value for %s" % k)


def child(d, n, base, go):
    go.wait()
    rounds(d, n, base)


def emit(variant, value):
    print(json.dumps({"workload": "MPDICT", "variant": variant, "impl": "python",
                      "metric": "ops_per_s", "value": value, "unit": "ops/s",
                      "argv": [os.path.basename(sys.argv[0])] + sys.argv[1:]}),
          flush=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("dict-1p", "dict-2p"):
        sys.stderr.write(__doc__)
        sys.exit(2)
    variant = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    ctx = mp.get_context("fork")
    with ctx.Manager() as m:
        d = m.dict()
        if variant == "dict-1p":
            rounds(d, K, 0)
            t0 = time.perf_counter()
            rounds(d, n, 0)
            s = time.perf_counter() - t0
            assert len(d) == K
        else:
            rounds(d, K, 0)
            rounds(d, K, K)
            go = ctx.Event()
            ps = [ctx.Process(target=child, args=(d, n // 2, c * K, go)) for c in range(2)]
            for p in ps:
                p.start()
            t0 = time.perf_counter()
            go.set()
            for p in ps:
                p.join()
            s = time.perf_counter() - t0
            assert all(p.exitcode == 0 for p in ps)
            assert len(d) == 2 * K
        sys.stderr.write("%s: %d rounds in %.3f s, %.1f us per op\n"
                         % (variant, n, s, s * 1e6 / (2 * n)))
        emit(variant, 2 * n / s)


if __name__ == "__main__":
    main()
