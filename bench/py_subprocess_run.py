"""N6's process start in Python: subprocess.run(["/bin/true"]) N times, after 20 untimed.

    python3 bench/py_subprocess_run.py [N] [capture]

The peer bench_subprocess's "run" variant is measured against (and, with "capture",
its "run-capture": subprocess.run(["/bin/echo", "x"], capture_output=True)). Prints
the native peers' format, `METRIC us_each <value> us`, after checking every returncode
(and the captured bytes).
"""
import subprocess
import sys
import time


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    capture = len(sys.argv) > 2 and sys.argv[2] == "capture"

    def one():
        if capture:
            r = subprocess.run(["/bin/echo", "x"], capture_output=True)
            if r.returncode != 0 or r.stdout != b"x\n" or r.stderr != b"":
                sys.exit("bad child: %r" % (r,))
        else:
            if subprocess.run(["/bin/true"]).returncode != 0:
                sys.exit("bad returncode")

    for _ in range(20):
        one()
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    s = time.perf_counter() - t0
    print("METRIC us_each %.6g us" % (s * 1e6 / n))


if __name__ == "__main__":
    main()
