/* W1 / N1 primes: is_prime(112272535095293) x 100, the tutorial's speed.py in C.
 *
 *   bench_primes [VARIANT [CALLS]]      no arguments: every variant (and efficiencies)
 *
 * is_prime is the naive Python loop exactly as the peers run it (peers/native
 * n1_primes.h, peers/python w1_primes.py): odd divisors 3..floor(sqrt(n)) inclusive,
 * uint64_t, sqrt in double; the number is read from a volatile, so nothing is folded or
 * hoisted. 112272535095293 is prime: every call runs all 5,297,936 divisions.
 *
 * VARIANT (CALLS = 100 unless given; scripts/bench.sh scales the W1 pairing with
 * Python down and says so):
 *   single   one thread, CALLS sequential calls.
 *   threads  N = br_cpu_count() br_threads, each making its share of the calls; timed
 *            from the first start to the last join.
 *   pool     a thread pool of br_cpu_count() workers, br_map over the CALLS inputs
 *            (chunksize 1), results read in order; timed like Python's `with
 *            ThreadPoolExecutor() as pool: list(pool.map(is_prime, PRIMES))`: pool
 *            creation and shutdown included.
 * Figure: seconds. Every one of the CALLS results is checked to be "prime". Run with no
 * arguments it also prints each parallel variant's efficiency against single:
 * t_single / (N x t_variant) (scripts/bench.sh computes the same from the side-by-side
 * medians instead).
 */
#include "bench.h"
#include "workloads.h"

#include <math.h>

#define N1_CALLS 100


static long calls = N1_CALLS;

static double single(void) {
    long found = 0;
    int64_t t0 = bench_now();
    for (long k = 0; k < calls; k++)
        found += is_prime(w1_number);
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(found, calls);
    return bench_secs(t0, t1);
}

typedef struct slice {
    long count, found;
} slice;

static void slice_run(void *arg) {
    slice *s = arg;
    for (long k = 0; k < s->count; k++)
        s->found += is_prime(w1_number);
}

static double threads(int n) {
    br_thread **t = calloc((size_t)n, sizeof *t);
    slice *sl = calloc((size_t)n, sizeof *sl);
    BENCH_CHECK(t != NULL && sl != NULL);
    for (int i = 0; i < n; i++)
        sl[i].count = (long)(i + 1) * calls / n - (long)i * calls / n;
    int64_t t0 = bench_now();
    for (int i = 0; i < n; i++)
        BENCH_CHECK_OK(br_thread_start(&t[i], slice_run, &sl[i], NULL));
    for (int i = 0; i < n; i++)
        BENCH_CHECK_OK(br_thread_join(t[i], BR_FOREVER));
    int64_t t1 = bench_now();
    long found = 0;
    for (int i = 0; i < n; i++) {
        BENCH_CHECK_OK(br_thread_free(t[i]));
        found += sl[i].found;
    }
    BENCH_CHECK_EQ(found, calls);
    free(t);
    free(sl);
    return bench_secs(t0, t1);
}

static int is_prime_task(br_task *t) {
    return br_task_return_i64(t, is_prime((uint64_t)br_task_arg_i64(t)));
}

static double pool(int n) {
    int64_t *xs = malloc((size_t)calls * sizeof *xs);
    BENCH_CHECK(xs != NULL);
    for (long k = 0; k < calls; k++)
        xs[k] = (int64_t)w1_number;
    long found = 0, got = 0;
    int64_t t0 = bench_now();
    br_executor *ex;
    BENCH_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = n}));
    br_map *m;
    BENCH_CHECK_OK(
        br_map_new(&m, ex, is_prime_task, xs, (size_t)calls, sizeof xs[0], NULL));
    for (;;) {
        int64_t r;
        int rc = br_map_next_i64(m, &r);
        if (rc == BR_EOF)
            break;
        BENCH_CHECK_OK(rc);
        found += r == 1;
        got++;
    }
    BENCH_CHECK_OK(br_map_free(m));
    BENCH_CHECK_OK(br_executor_free(ex));
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(got, calls);
    BENCH_CHECK_EQ(found, calls);
    free(xs);
    return bench_secs(t0, t1);
}

static void report(const char *variant, int n, double s) {
    bench_note("W1 %s braid: %ld x is_prime(%llu) on %d thread%s in %.3f s (%.2f ms/call), "
               "all prime",
               variant, calls, (unsigned long long)w1_number, n, n == 1 ? "" : "s", s,
               s * 1e3 / (double)calls);
    bench_emit("W1", variant, "braid", "seconds", s, "s");
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : NULL;
    calls = bench_arg_count(argc, argv, 2, N1_CALLS);
    int ncpu = br_cpu_count();
    if (v && strcmp(v, "single") && strcmp(v, "threads") && strcmp(v, "pool")) {
        fprintf(stderr, "usage: %s [single|threads|pool [CALLS]]\n", argv[0]);
        return 2;
    }
    double t_single = 0;
    if (!v || strcmp(v, "single") == 0)
        report("single", 1, t_single = single());
    if (!v || strcmp(v, "threads") == 0) {
        double s = threads(ncpu);
        report("threads", ncpu, s);
        if (t_single > 0)
            bench_emit("W1", "threads", "braid", "efficiency", t_single / (ncpu * s), "");
    }
    if (!v || strcmp(v, "pool") == 0) {
        double s = pool(ncpu);
        report("pool", ncpu, s);
        if (t_single > 0)
            bench_emit("W1", "pool", "braid", "efficiency", t_single / (ncpu * s), "");
    }
    return 0;
}
