/* W2 fib: naive recursive fib(n) for n in 25..34 on a thread pool of 3, collected with
 * as_completed, as Python's w2_fib.py thread / process.
 *
 *   bench_fib [VARIANT]        no arguments: both variants
 *
 * VARIANT:
 *   thread   br_threadpool_new(max_workers 3); br_submit_i64(fib, n) for n in 25..34;
 *            br_as_completed over the 10 futures, reading each result. Timed like
 *            Python's `with ThreadPoolExecutor(3) as ex:` block: pool creation to
 *            br_executor_free (shutdown + wait) included.
 *   serial   a plain loop (reference, as Python's serial).
 * Check: the sum of the 10 results is 14,808,959. Figure: seconds.
 */
#include "bench.h"
#include "workloads.h"

#define FIB_FIRST 25
#define FIB_LAST 34
#define FIB_SUM 14808959LL


static int fib_task(br_task *t) {
    return br_task_return_i64(t, fib(br_task_arg_i64(t)));
}

static volatile int64_t first = FIB_FIRST; /* nothing folded at compile time */

static double serial(int64_t *sum) {
    int64_t s = 0;
    int64_t t0 = bench_now();
    for (int64_t n = first; n <= FIB_LAST; n++)
        s += fib(n);
    int64_t t1 = bench_now();
    *sum = s;
    return bench_secs(t0, t1);
}

static double thread_pool(int64_t *sum) {
    enum { N = FIB_LAST - FIB_FIRST + 1 };
    br_future *f[N];
    int64_t s = 0;
    int seen = 0;
    int64_t t0 = bench_now();
    br_executor *ex;
    BENCH_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 3}));
    for (int i = 0; i < N; i++)
        BENCH_CHECK_OK(br_submit_i64(ex, fib_task, first + i, &f[i]));
    br_as_completed *it;
    BENCH_CHECK_OK(br_as_completed_new(&it, f, N, BR_FOREVER));
    for (;;) {
        br_future *d;
        int rc = br_as_completed_next(it, &d);
        if (rc == BR_EOF)
            break;
        BENCH_CHECK_OK(rc);
        int64_t r;
        BENCH_CHECK_OK(br_future_result_i64(d, BR_NOWAIT, &r));
        s += r;
        seen++;
    }
    BENCH_CHECK_OK(br_as_completed_free(it));
    BENCH_CHECK_OK(br_executor_free(ex));
    int64_t t1 = bench_now();
    for (int i = 0; i < N; i++)
        br_future_release(f[i]);
    BENCH_CHECK_EQ(seen, N);
    *sum = s;
    return bench_secs(t0, t1);
}

static void report(const char *variant, double s, int64_t sum) {
    BENCH_CHECK_EQ(sum, FIB_SUM);
    bench_note("W2 %s braid: fib(%d..%d) in %.4f s, sum %lld checked", variant, FIB_FIRST,
               FIB_LAST, s, (long long)sum);
    bench_emit("W2", variant, "braid", "seconds", s, "s");
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : NULL;
    if (v && strcmp(v, "thread") && strcmp(v, "serial")) {
        fprintf(stderr, "usage: %s [thread|serial]\n", argv[0]);
        return 2;
    }
    int64_t sum = 0;
    if (!v || strcmp(v, "thread") == 0) {
        double s = thread_pool(&sum);
        report("thread", s, sum);
    }
    if (!v || strcmp(v, "serial") == 0) {
        double s = serial(&sum);
        report("serial", s, sum);
    }
    return 0;
}
