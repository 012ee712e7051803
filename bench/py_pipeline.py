#!/usr/bin/env python3
"""Peer of bench_pipeline: the tutorials' producer-consumer crawler shape with the work
taken out. Items str(0..N-1) go through 3 threads passing them on and 2 threads summing
them, queue.Queue(maxsize=1024) between, one None per consumer to stop. Prints the figure
as bench_pipeline does ({"variant": "threads", "metric": "items_per_s"})."""
import json
import queue
import sys
import threading
import time


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    q1, q2 = queue.Queue(maxsize=1024), queue.Queue(maxsize=1024)
    total = [0]
    lock = threading.Lock()

    def pass_on():
        while True:
            x = q1.get()
            if x is None:
                return
            q2.put(x)

    def add_up():
        s = 0
        while True:
            x = q2.get()
            if x is None:
                with lock:
                    total[0] += s
                return
            s += int(x)

    t0 = time.perf_counter()
    s1 = [threading.Thread(target=pass_on) for _ in range(3)]
    s2 = [threading.Thread(target=add_up) for _ in range(2)]
    for t in s1 + s2:
        t.start()
    for i in range(n):
        q1.put(str(i))
    for _ in s1:
        q1.put(None)
    for t in s1:
        t.join()
    for _ in s2:
        q2.put(None)
    for t in s2:
        t.join()
    secs = time.perf_counter() - t0
    assert total[0] == n * (n - 1) // 2
    print(json.dumps({"workload": "pipeline", "variant": "threads", "impl": "python",
                      "metric": "items_per_s", "value": n / secs, "unit": "items/s"}))


if __name__ == "__main__":
    main()
