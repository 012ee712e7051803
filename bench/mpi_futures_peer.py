"""The peer of bench_mpi's map100k: mpi4py.futures (Debian's python3-mpi4py), SPMD.

  braid-mpirun -n 3 python3 -m mpi4py.futures bench/mpi_futures_peer.py [CHUNKSIZE]

Rank 0 runs this; the other ranks serve. The same work as bench_mpi's map100k: 100,000
tiny tasks x -> 2x+1 through MPIPoolExecutor.map with chunksize 1000 (or CHUNKSIZE),
timed from the map call to the last result, after one warm-up task (the pool's
start-up is not timed, as braid's executor is made before its clock starts). Checks
the count and the sum; prints one JSON line in bench.h's format, impl "mpi4py".
"""
import json
import sys
import time

from mpi4py.futures import MPIPoolExecutor


def tiny(x):
    return 2 * x + 1


def main():
    chunk = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n = 100000
    with MPIPoolExecutor() as ex:
        assert ex.submit(tiny, 1).result() == 3
        t0 = time.perf_counter()
        out = list(ex.map(tiny, range(n), chunksize=chunk))
        t1 = time.perf_counter()
    assert len(out) == n and sum(out) == n * n
    variant = "map100k" if chunk == 1000 else "map100k-%d" % chunk
    print(json.dumps({"workload": "MPI", "variant": variant, "impl": "mpi4py",
                      "metric": "seconds", "value": t1 - t0, "unit": "s"}))


if __name__ == "__main__":
    main()
