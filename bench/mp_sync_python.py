#!/usr/bin/env python3
"""The Python peer of bench_mp_sync: multiprocessing.Lock on the same two figures.

  mp_sync_python.py uncontended [N]   N acquire+release pairs on one thread (1,000,000;
                                      a tenth untimed first): METRIC ns_per_op
  mp_sync_python.py counter [N]       2 forked processes x N increments of a shared
                                      RawValue under the lock (200,000: Python is slow),
                                      timed from a gate to both joined; the total is
                                      checked: METRIC ns_per_inc

Output lines are `METRIC name value unit`, which ../shared/tools/side-by-side reads.
"""
import multiprocessing as mp
import sys
import time


def uncontended(n):
    lock = mp.Lock()
    for _ in range(n // 10):
        lock.acquire()
        lock.release()
    t = time.perf_counter()
    for _ in range(n):
        lock.acquire()
        lock.release()
    print("METRIC ns_per_op %f ns" % ((time.perf_counter() - t) * 1e9 / n))


def _count(lock, counter, ready, gate, n):
    ready.release()
    gate.wait()
    for _ in range(n):
        with lock:
            counter.value += 1


def counter(n):
    mp.set_start_method("fork")
    lock, value = mp.Lock(), mp.RawValue("l", 0)
    ready, gate = mp.Semaphore(0), mp.Event()
    procs = [mp.Process(target=_count, args=(lock, value, ready, gate, n)) for _ in range(2)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.acquire()
    t = time.perf_counter()
    gate.set()
    for p in procs:
        p.join()
    dt = time.perf_counter() - t
    if value.value != 2 * n or any(p.exitcode != 0 for p in procs):
        sys.exit("counter: %d, want %d" % (value.value, 2 * n))
    print("METRIC ns_per_inc %f ns" % (dt * 1e9 / (2 * n)))


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "uncontended"
    if what == "uncontended":
        uncontended(int(sys.argv[2]) if len(sys.argv) > 2 else 1000000)
    elif what == "counter":
        counter(int(sys.argv[2]) if len(sys.argv) > 2 else 200000)
    else:
        sys.exit(__doc__)
