/* The MPI executor (braid/mpi.h): tiny tasks through br_map, W1 primes over the worker
 * ranks, and what an idle executor costs. Run under the launcher:
 *
 *   braid-mpirun -n 3 bench_mpi [VARIANT]      no variant: every one
 *
 * VARIANT:
 *   map100k   100,000 tiny tasks (x -> 2x+1) through br_map with chunksize 1000 on an
 *             executor over every worker rank; timed from br_map_new to the last result;
 *             the count and the sum are checked. (schwimmbad's MPIPool publishes 0.58 s
 *             for its 100,000-task map; mpi4py.futures is measured beside this by
 *             bench/mpi_futures_peer.py in the same side-by-side run: docs/mpi.md.)
 *   map100k-default  the same with chunksize left at 0: the executor's automatic
 *             chunks (Pool.map's ceil(n / (4 x workers)): 12,500 on 2 worker ranks).
 *   map100k-1 the same with chunksize 1: one task per message, the prefetch alone.
 *   primes    W1's is_prime(112272535095293) x 100 (apps/braid/workloads.h), chunksize 1,
 *             over the worker ranks; also single (the same calls on rank 0, no MPI) and
 *             the efficiency t_single / (workers x t_mpi), and the CPU efficiency: the
 *             single thread's CPU time over the CPU time of every rank of the job
 *             during the map (what braid adds, whatever else loads the machine).
 *             Every result is checked.
 *   bigpay    BIG_N tasks of BIG_MIB MiB each (an echo: the result is the argument),
 *             submitted together and waited for, every result compared with its input;
 *             the figure is the bytes that crossed (there and back) per second, MiB/s,
 *             from the first submit to the last result (the submit-time copy included).
 *   idle      the CPU the worker ranks and rank 0's progress thread burn in IDLE_S
 *             seconds of an executor with nothing to do, in percent of one core (each
 *             worker reports its own process CPU time through a task, before and after).
 * Figures: seconds (map, primes), efficiency, cpu_efficiency, cpu_percent (idle).
 */
#define _POSIX_C_SOURCE 200809L
#include "bench.h"
#include "workloads.h"

#include <braid/mpi.h>

#include <time.h>

#define IDLE_S 2
#define BIG_N 24
#define BIG_MIB 8

static int tiny_task(br_task *t) {
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    return br_task_return_i64(t, 2 * (int64_t)x + 1);
}

static double map_tiny(br_executor *ex, int32_t n, size_t chunk) {
    int32_t *in = malloc((size_t)n * sizeof *in);
    BENCH_CHECK(in != NULL);
    for (int32_t i = 0; i < n; i++)
        in[i] = i;
    int64_t t0 = bench_now();
    br_map *m;
    /* single tasks: 256 ahead, as a pool.map that submits everything keeps the ranks fed */
    BENCH_CHECK_OK(br_map_new(&m, ex, tiny_task, in, (size_t)n, sizeof in[0],
                              &(br_map_opts){.chunksize = chunk,
                                             .buffersize = chunk == 1 ? 256 : 0}));
    int64_t v, sum = 0, count = 0;
    for (int32_t i = 0; i < n; i++) {
        BENCH_CHECK_OK(br_map_next_i64(m, &v));
        sum += v;
        count++;
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_OK(br_map_free(m));
    BENCH_CHECK_EQ(count, n);
    BENCH_CHECK_EQ(sum, (int64_t)n * n);
    free(in);
    return bench_secs(t0, t1);
}

static int is_prime_task(br_task *t) {
    return br_task_return_i64(t, is_prime((uint64_t)br_task_arg_i64(t)));
}

static double primes(br_executor *ex, long calls) {
    int64_t *in = malloc((size_t)calls * sizeof *in);
    BENCH_CHECK(in != NULL);
    for (long i = 0; i < calls; i++)
        in[i] = (int64_t)w1_number;
    int64_t t0 = bench_now();
    br_map *m;
    BENCH_CHECK_OK(br_map_new(&m, ex, is_prime_task, in, (size_t)calls, sizeof in[0],
                              /* every call submitted at once, as Python's Executor.map does:
                               * a bounded map (the default buffersize, 2 x workers) can leave a
                               * rank idle behind the slowest head task */
                              &(br_map_opts){.chunksize = 1, .buffersize = (size_t)calls}));
    long found = 0;
    for (long i = 0; i < calls; i++) {
        int64_t v;
        BENCH_CHECK_OK(br_map_next_i64(m, &v));
        found += v;
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_OK(br_map_free(m));
    BENCH_CHECK_EQ(found, calls);
    free(in);
    return bench_secs(t0, t1);
}

static int64_t cpu_ns(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The calls on this thread: wall seconds, and its CPU seconds in *cpu. */
static double single(long calls, double *cpu) {
    long found = 0;
    int64_t t0 = bench_now(), c0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    for (long k = 0; k < calls; k++)
        found += is_prime(w1_number);
    int64_t t1 = bench_now(), c1 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    BENCH_CHECK_EQ(found, calls);
    *cpu = (double)(c1 - c0) / 1e9;
    return bench_secs(t0, t1);
}

/* A worker's rank and process CPU time (ns), as two int64. */
static int cpu_task(br_task *t) {
    int64_t r[2] = {br_mpi_rank(), cpu_ns(CLOCK_PROCESS_CPUTIME_ID)};
    return br_task_return(t, r, sizeof r);
}

/* Each worker rank's CPU time now, indexed by rank: rounds of one task per rank until
 * every rank has answered (work goes to the rank with the most room, ties in turn, so a
 * round usually reaches each rank once). */
static void worker_cpu(br_executor *ex, int nw, int64_t *out) {
    br_future **fs = calloc((size_t)nw, sizeof *fs);
    BENCH_CHECK(fs != NULL);
    int seen = 0;
    for (int round = 0; seen < nw; round++) {
        BENCH_CHECK(round < 1000);
        for (int i = 0; i < nw; i++)
            BENCH_CHECK_OK(br_submit(ex, cpu_task, NULL, 0, &fs[i]));
        for (int i = 0; i < nw; i++) {
            const void *d;
            size_t len;
            BENCH_CHECK_OK(br_future_result(fs[i], BR_FOREVER, &d, &len));
            BENCH_CHECK_EQ(len, 2 * sizeof(int64_t));
            int64_t r[2];
            memcpy(r, d, sizeof r);
            BENCH_CHECK(r[0] >= 1 && r[0] <= nw);
            if (out[r[0]] < 0) {
                out[r[0]] = r[1];
                seen++;
            }
            br_future_release(fs[i]);
        }
    }
    free(fs);
}

/* W1 over the ranks: wall seconds and efficiency as before, and the CPU the whole job
 * burnt (rank 0's process and every worker rank's) beside the CPU of the same calls on
 * one thread: cpu_efficiency = single CPU / job CPU. On a shared machine the wall-clock
 * efficiency also measures the other load; the CPU one measures what braid adds. */
static void primes_all(br_executor *ex, int nw, long calls) {
    double scpu = 0;
    double ts = single(calls, &scpu);
    int64_t *a = calloc((size_t)nw + 1, sizeof *a), *b = calloc((size_t)nw + 1, sizeof *b);
    BENCH_CHECK(a != NULL && b != NULL);
    for (int i = 0; i <= nw; i++)
        a[i] = b[i] = -1;
    worker_cpu(ex, nw, a);
    int64_t r0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    double s = primes(ex, calls);
    int64_t r1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
    worker_cpu(ex, nw, b);
    double job = (double)(r1 - r0) / 1e9;
    for (int r = 1; r <= nw; r++) {
        double w = (double)(b[r] - a[r]) / 1e9;
        bench_note("primes: rank %d used %.3f s of CPU", r, w);
        job += w;
    }
    bench_note("primes: rank 0 used %.3f s of CPU; one thread %.3f s for the same calls",
               (double)(r1 - r0) / 1e9, scpu);
    bench_emit("W1", "single", "braid", "seconds", ts, "s");
    bench_emit("W1", "mpi", "braid", "seconds", s, "s");
    bench_emit("W1", "mpi", "braid", "efficiency", ts / (nw * s), "");
    bench_emit("W1", "mpi", "braid", "cpu_efficiency", scpu / job, "");
    free(a);
    free(b);
}

static void idle(br_executor *ex, int nw) {
    int64_t *a = calloc((size_t)nw + 1, sizeof *a), *b = calloc((size_t)nw + 1, sizeof *b);
    BENCH_CHECK(a != NULL && b != NULL);
    for (int i = 0; i <= nw; i++)
        a[i] = b[i] = -1;
    worker_cpu(ex, nw, a);
    int64_t r0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = bench_now();
    struct timespec ts = {IDLE_S, 0};
    nanosleep(&ts, NULL);
    int64_t r1 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID), t1 = bench_now();
    worker_cpu(ex, nw, b);
    double wall = (double)(t1 - t0);
    double worst = 0, total = 0;
    for (int r = 1; r <= nw; r++) {
        BENCH_CHECK(a[r] >= 0 && b[r] >= 0);
        double pct = 100.0 * (double)(b[r] - a[r]) / wall;
        total += pct;
        if (pct > worst)
            worst = pct;
        bench_note("idle: rank %d used %.2f%% of a core", r, pct);
    }
    double p0 = 100.0 * (double)(r1 - r0) / wall;
    bench_note("idle: rank 0 (progress thread) used %.2f%% of a core", p0);
    bench_emit("MPI", "idle-worker", "braid", "cpu_percent", total / nw, "%");
    bench_emit("MPI", "idle-worker-max", "braid", "cpu_percent", worst, "%");
    bench_emit("MPI", "idle-rank0", "braid", "cpu_percent", p0, "%");
    free(a);
    free(b);
}

static int echo_task(br_task *t) {
    size_t len = 0;
    const void *a = br_task_arg(t, &len);
    return br_task_return(t, a, len);
}

static double bigpay(br_executor *ex) {
    size_t len = (size_t)BIG_MIB << 20;
    unsigned char *in[BIG_N];
    br_future *f[BIG_N];
    for (int k = 0; k < BIG_N; k++) {
        in[k] = malloc(len);
        BENCH_CHECK(in[k] != NULL);
        for (size_t i = 0; i < len; i += 4096) /* touched, and told apart */
            memset(in[k] + i, (int)(k * 31 + (i >> 12)), 4096);
    }
    int64_t t0 = bench_now();
    for (int k = 0; k < BIG_N; k++)
        BENCH_CHECK_OK(br_submit(ex, echo_task, in[k], len, &f[k]));
    for (int k = 0; k < BIG_N; k++) {
        const void *data = NULL;
        size_t rlen = 0;
        BENCH_CHECK_OK(br_future_result(f[k], BR_FOREVER, &data, &rlen));
        BENCH_CHECK_EQ(rlen, len);
    }
    int64_t t1 = bench_now();
    for (int k = 0; k < BIG_N; k++) {
        const void *data = NULL;
        size_t rlen = 0;
        BENCH_CHECK_OK(br_future_result(f[k], BR_FOREVER, &data, &rlen));
        BENCH_CHECK(memcmp(data, in[k], len) == 0);
        br_future_release(f[k]);
        free(in[k]);
    }
    return 2.0 * BIG_N * BIG_MIB / bench_secs(t0, t1);
}

int main(int argc, char **argv) {
    BENCH_CHECK_OK(br_mpi_main(&argc, &argv)); /* the worker ranks stay there */
    const char *v = argc > 1 ? argv[1] : NULL;
    int nw = br_mpi_size() - 1;
    if (nw < 1) {
        fprintf(stderr, "bench_mpi: run it with at least 2 ranks (braid-mpirun -n 3 %s)\n",
                argv[0]);
        return 2;
    }
    br_executor *ex;
    BENCH_CHECK_OK(br_mpi_executor_new(&ex, NULL));
    bench_note("%d worker ranks", nw);
    if (v == NULL || strcmp(v, "map100k") == 0) {
        double s = map_tiny(ex, 100000, 1000);
        bench_emit("MPI", "map100k", "braid", "seconds", s, "s");
    }
    if (v == NULL || strcmp(v, "map100k-default") == 0) {
        double s = map_tiny(ex, 100000, 0);
        bench_emit("MPI", "map100k-default", "braid", "seconds", s, "s");
    }
    if (v == NULL || strcmp(v, "map100k-1") == 0) {
        double s = map_tiny(ex, 100000, 1);
        bench_emit("MPI", "map100k-1", "braid", "seconds", s, "s");
    }
    if (v == NULL || strcmp(v, "primes") == 0) {
        primes_all(ex, nw, 100);
    }
    if (v == NULL || strcmp(v, "bigpay") == 0) {
        double mibs = bigpay(ex);
        bench_emit("MPI", "bigpay", "braid", "mib_per_s", mibs, "MiB/s");
    }
    if (v == NULL || strcmp(v, "idle") == 0)
        idle(ex, nw);
    BENCH_CHECK_OK(br_executor_free(ex));
    return 0;
}
