/* W3 / W4 / N2: braid's thread pool (br_threadpool_new, ThreadPoolExecutor) on no-op
 * tasks, 2 workers.
 *
 *   bench_pool [VARIANT [N]]        no arguments: every variant
 *
 * VARIANT:
 *   submit-2     W3, as Python's w3_threadpool_throughput.py submit-2: the pool
 *                (max_workers 2) is created before timing and its threads start lazily
 *                inside the timed region; timed: N = 100,000 br_submit of a no-op, each
 *                keeping its future, then br_wait(ALL_COMPLETED) on all of them.
 *   map-2        W3 map-2: timed: br_map_new over N = 100,000 inputs (all submitted up
 *                front, as Python 3.11's Executor.map does: buffersize = N) and
 *                br_map_next until BR_EOF, then br_map_free.
 *   n2-submit-2  N2 throughput, as the native peers (n2_uv, n2_glib, n2_omp, n2_tbb,
 *                n2_pool_go): the pool is warmed (both workers started) before timing;
 *                timed: N = 1,000,000 submits (futures kept) then br_wait on all.
 *   n2-submit-2-nofuture  (extra) the same without futures, as the bare-callback peers
 *                run: N br_submit(..., NULL) of a task that counts (an atomic
 *                increment), then br_executor_shutdown(wait) (GLib's free(wait)); the
 *                count must be N.
 *   roundtrip    W4 and N2 round trip: 1,000 untimed warm-up round trips, then N =
 *                10,000 sequential br_submit + br_future_result + br_future_release,
 *                each timed alone; p50 and p99 (nearest rank) and the median (Python's
 *                statistics.median) in us.
 * The task is `__asm__ volatile("" ::: "memory"); return 0;`, the peers' no-op. Every
 * future is checked done and successful (map: every result read, none failed).
 */
#include "bench.h"

#include <stdatomic.h>

static int noop(br_task *t) {
    (void)t;
    __asm__ volatile("" ::: "memory");
    return 0;
}

/* The no-future variant can't check futures: its no-op counts instead. */
static _Atomic long counted;
static int count_task(br_task *t) {
    (void)t;
    counted++;
    return 0;
}

static br_executor *new_pool(int workers) {
    br_executor *ex;
    BENCH_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = workers}));
    BENCH_CHECK_EQ(br_executor_max_workers(ex), workers);
    return ex;
}

static void check_and_release(br_future **f, long n) {
    for (long i = 0; i < n; i++) {
        BENCH_CHECK(br_future_done(f[i]));
        BENCH_CHECK(!br_future_failed(f[i]) && !br_future_cancelled(f[i]));
        br_future_release(f[i]);
    }
}

/* Submit n no-ops keeping each future, then wait for all: seconds (the submit loop's
 * share in *submit_s if not NULL). */
static double submit_wait(br_executor *ex, long n, double *submit_s) {
    br_future **f = calloc((size_t)n, sizeof *f);
    BENCH_CHECK(f != NULL);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        BENCH_CHECK_OK(br_submit(ex, noop, NULL, 0, &f[i]));
    int64_t tm = bench_now();
    BENCH_CHECK_OK(br_wait(f, (size_t)n, BR_ALL_COMPLETED, BR_FOREVER, NULL, NULL, NULL));
    int64_t t1 = bench_now();
    check_and_release(f, n);
    free(f);
    if (submit_s)
        *submit_s = bench_secs(t0, tm);
    return bench_secs(t0, t1);
}

/* Submit n no-ops without futures, then shutdown(wait): seconds. */
static double submit_nofuture(br_executor *ex, long n) {
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++)
        BENCH_CHECK_OK(br_submit(ex, count_task, NULL, 0, NULL));
    BENCH_CHECK_OK(br_executor_shutdown(ex, true, false));
    int64_t t1 = bench_now();
    return bench_secs(t0, t1);
}

static void report_rate(const char *workload, const char *variant, long n, double s,
                        double setup_ms, double teardown_ms) {
    char buf[32];
    double rate = (double)n / s;
    bench_note("%s %s braid: setup %.3f ms, run %ld tasks in %.4f s (%.0f ns/task, "
               "%stasks/s), teardown %.3f ms",
               workload, variant, setup_ms, n, s, s * 1e9 / (double)n,
               bench_si(rate, buf, sizeof buf), teardown_ms);
    bench_emit(workload, variant, "braid", "tasks_per_s", rate, "tasks/s");
}

static void w3_submit(long n) {
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(2);
    double setup = bench_secs(s0, bench_now()) * 1e3;
    double sub, s = submit_wait(ex, n, &sub);
    int64_t d0 = bench_now();
    BENCH_CHECK_OK(br_executor_free(ex));
    bench_note("W3 submit-2 braid: submit loop %.4f s, then br_wait %.4f s", sub, s - sub);
    report_rate("W3", "submit-2", n, s, setup, bench_secs(d0, bench_now()) * 1e3);
}

static void n2_submit(long n) {
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(2);
    (void)submit_wait(ex, 1000, NULL); /* warm-up: both workers started before timing */
    double setup = bench_secs(s0, bench_now()) * 1e3;
    double sub, s = submit_wait(ex, n, &sub);
    int64_t d0 = bench_now();
    BENCH_CHECK_OK(br_executor_free(ex));
    bench_note("N2 submit-2 braid: submit loop %.4f s, then br_wait %.4f s", sub, s - sub);
    report_rate("N2", "submit-2", n, s, setup, bench_secs(d0, bench_now()) * 1e3);
}

static void n2_nofuture(long n) {
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(2);
    (void)submit_wait(ex, 1000, NULL); /* warm-up: both workers started before timing */
    double setup = bench_secs(s0, bench_now()) * 1e3;
    counted = 0;
    double s = submit_nofuture(ex, n);
    BENCH_CHECK_EQ(counted, n);
    int64_t d0 = bench_now();
    BENCH_CHECK_OK(br_executor_free(ex));
    report_rate("N2", "submit-2-nofuture", n, s, setup, bench_secs(d0, bench_now()) * 1e3);
}

static void w3_map(long n) {
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(2);
    int64_t *xs = malloc((size_t)n * sizeof *xs);
    BENCH_CHECK(xs != NULL);
    for (long i = 0; i < n; i++)
        xs[i] = i;
    double setup = bench_secs(s0, bench_now()) * 1e3;
    int64_t t0 = bench_now();
    br_map *m;
    BENCH_CHECK_OK(br_map_new(&m, ex, noop, xs, (size_t)n, sizeof xs[0],
                              &(br_map_opts){.buffersize = (size_t)n}));
    long got = 0;
    for (;;) {
        const void *data;
        size_t len;
        int rc = br_map_next(m, &data, &len);
        if (rc == BR_EOF)
            break;
        BENCH_CHECK_OK(rc);
        got++;
    }
    BENCH_CHECK_OK(br_map_free(m));
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(got, n);
    BENCH_CHECK_OK(br_executor_free(ex));
    free(xs);
    report_rate("W3", "map-2", n, bench_secs(t0, t1), setup,
                bench_secs(t1, bench_now()) * 1e3);
}

static int64_t round_trip(br_executor *ex) {
    br_future *f;
    int64_t t0 = bench_now();
    BENCH_CHECK_OK(br_submit(ex, noop, NULL, 0, &f));
    BENCH_CHECK_OK(br_future_result(f, BR_FOREVER, NULL, NULL));
    br_future_release(f);
    return bench_now() - t0;
}

static void roundtrip(long n) {
    br_executor *ex = new_pool(2);
    for (int i = 0; i < 1000; i++)
        (void)round_trip(ex);
    int64_t *lat = malloc((size_t)n * sizeof *lat);
    BENCH_CHECK(lat != NULL);
    for (long i = 0; i < n; i++)
        lat[i] = round_trip(ex);
    BENCH_CHECK_OK(br_executor_free(ex));
    double sum = 0;
    for (long i = 0; i < n; i++)
        sum += (double)lat[i];
    double med = bench_median(lat, (size_t)n) / 1e3;
    double p50 = (double)bench_percentile(lat, (size_t)n, 50) / 1e3;
    double p99 = (double)bench_percentile(lat, (size_t)n, 99) / 1e3;
    bench_note("W4 roundtrip braid: %ld sequential submit->result round trips (after 1000 "
               "warm-up): p50 %.2f us, p99 %.2f us, min %.2f us, mean %.2f us",
               n, p50, p99, (double)lat[0] / 1e3, sum / (double)n / 1e3);
    bench_emit("W4", "roundtrip", "braid", "p50_us", p50, "us");
    bench_emit("W4", "roundtrip", "braid", "p99_us", p99, "us");
    bench_emit("W4", "roundtrip", "braid", "median_us", med, "us");
    free(lat);
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : NULL;
    bool all = v == NULL, matched = false;
    if (all || strcmp(v, "submit-2") == 0) {
        w3_submit(bench_arg_count(argc, argv, 2, 100000));
        matched = true;
    }
    if (all || strcmp(v, "map-2") == 0) {
        w3_map(bench_arg_count(argc, argv, 2, 100000));
        matched = true;
    }
    if (all || strcmp(v, "n2-submit-2") == 0) {
        n2_submit(bench_arg_count(argc, argv, 2, 1000000));
        matched = true;
    }
    if (all || strcmp(v, "n2-submit-2-nofuture") == 0) {
        n2_nofuture(bench_arg_count(argc, argv, 2, 1000000));
        matched = true;
    }
    if (all || strcmp(v, "roundtrip") == 0) {
        roundtrip(bench_arg_count(argc, argv, 2, 10000));
        matched = true;
    }
    if (!matched) {
        fprintf(
            stderr,
            "usage: %s [submit-2|map-2|n2-submit-2|n2-submit-2-nofuture|roundtrip [N]]\n",
            argv[0]);
        return 2;
    }
    return 0;
}
