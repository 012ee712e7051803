/* W3 / W4 / N2: braid's thread pool (br_threadpool_new, ThreadPoolExecutor) on no-op
 * tasks, 2 workers (1 in the -1 variants).
 *
 *   bench_pool [VARIANT [N]]        no arguments: every variant
 *
 * VARIANT:
 *   submit-2     W3, as Python's w3_threadpool_throughput.py submit-2: the pool
 *                (max_workers 2) is created before timing and its threads start lazily
 *                inside the timed region; timed: N = 100,000 br_submit of a no-op, each
 *                keeping its future, then br_wait(ALL_COMPLETED) on all of them.
 *   submit-1     the same with max_workers 1 (W3's 2-vs-1 ratio is submit-2 / submit-1).
 *   batch-2      W3 with br_submit_batch: timed: one br_submit_batch of N = 100,000
 *   batch-1      no-ops (futures kept) then br_wait on all; max_workers 2 / 1.
 *   map-2        W3 map-2: timed: br_map_new over N = 100,000 inputs (all submitted up
 *                front, as Python 3.11's Executor.map does: buffersize = N) and
 *                br_map_next until BR_EOF, then br_map_free.
 *   map-1        the same with max_workers 1.
 *   n2-submit-2  N2 throughput, steady state, as the native peers (n2_uv, n2_glib,
 *                n2_omp, n2_tbb, n2_pool_go) run theirs: an untimed full-size round
 *                first in the same process (N submits, wait, release all: both workers
 *                started, the future blocks and the fifo's ring grown to size), then
 *                timed: N = 1,000,000 submits (futures kept) then br_wait on all. Every
 *                N2 variant faults its own array of N handles in before timing, as
 *                n2_uv pre-touches its requests (W3's array is built while timed, as
 *                Python's list is).
 *   n2-submit-2-cold  the same timed round after a 1,000-task warm-up only (both workers
 *                started, nothing else): a fresh process's first million, which pays
 *                for the memory it touches first (N2 "submit-2-cold").
 *   n2-batch-2   N2 steady state with one br_submit_batch of N instead of the loop.
 *   n2-submit-1, n2-batch-1  the steady-state ones with max_workers 1 (N2 "submit-1",
 *                "batch-1"): the pool's own 2-vs-1 ratio, once first touches are gone.
 *   n2-submit-2-nofuture  (extra) the same without futures, as the bare-callback peers
 *                run: N br_submit(..., NULL) of a task that counts (an atomic
 *                increment), then br_executor_shutdown(wait) (GLib's free(wait)); the
 *                count must be N.
 *   roundtrip    W4 and N2 round trip: 1,000 untimed warm-up round trips, then N =
 *                10,000 sequential br_submit + br_future_result + br_future_release,
 *                each timed alone; p50 and p99 (nearest rank) and the median (Python's
 *                statistics.median) in us.
 * Every throughput variant also emits faults_per_mtask: the minor + major page faults
 * (getrusage, RUSAGE_SELF) over its timed region, per million tasks.
 * The task is `__asm__ volatile("" ::: "memory"); return 0;`, the peers' no-op. Every
 * future is checked done and successful (map: every result read, none failed).
 */
#include "bench.h"

#include <stdatomic.h>
#include <sys/resource.h>

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

/* Page faults so far (minor + major), for faults_per_mtask. */
static long faults_now(void) {
    struct rusage ru;
    BENCH_CHECK(getrusage(RUSAGE_SELF, &ru) == 0);
    return ru.ru_minflt + ru.ru_majflt;
}

/* A timed region: seconds, and the page faults taken in it. */
typedef struct timed {
    int64_t t0;
    long f0;
    double s;
    long faults;
} timed;

static void timed_start(timed *t) {
    t->f0 = faults_now();
    t->t0 = bench_now();
}

static void timed_stop(timed *t) {
    t->s = bench_secs(t->t0, bench_now());
    t->faults = faults_now() - t->f0;
}

/* Submit n no-ops keeping each future (one br_submit_batch if batch), then wait for
 * all; *submit_s is the submit loop's share if not NULL. pretouch: the array of
 * handles is faulted in before timing (N2: as n2_uv pre-touches its requests, so the
 * figure is the executor's, not the first touch of the benchmark's own 8 MB array;
 * W3 keeps Python's list built inside the timed region). */
static timed submit_wait(br_executor *ex, long n, bool batch, bool pretouch,
                         double *submit_s) {
    br_future **f = calloc((size_t)n, sizeof *f);
    BENCH_CHECK(f != NULL);
    if (pretouch) /* a write per page: gcc drops a memset of zeros after calloc */
        for (size_t i = 0; i < (size_t)n; i += 4096 / sizeof *f)
            ((br_future *volatile *)f)[i] = NULL;
    timed t;
    timed_start(&t);
    if (batch) {
        size_t queued;
        BENCH_CHECK_OK(br_submit_batch(ex, noop, NULL, (size_t)n, 0, f, &queued));
        BENCH_CHECK_EQ(queued, n);
    } else {
        for (long i = 0; i < n; i++)
            BENCH_CHECK_OK(br_submit(ex, noop, NULL, 0, &f[i]));
    }
    int64_t tm = bench_now();
    BENCH_CHECK_OK(br_wait(f, (size_t)n, BR_ALL_COMPLETED, BR_FOREVER, NULL, NULL, NULL));
    timed_stop(&t);
    check_and_release(f, n);
    free(f);
    if (submit_s)
        *submit_s = bench_secs(t.t0, tm);
    return t;
}

/* Submit n no-ops without futures, then shutdown(wait). */
static timed submit_nofuture(br_executor *ex, long n) {
    timed t;
    timed_start(&t);
    for (long i = 0; i < n; i++)
        BENCH_CHECK_OK(br_submit(ex, count_task, NULL, 0, NULL));
    BENCH_CHECK_OK(br_executor_shutdown(ex, true, false));
    timed_stop(&t);
    return t;
}

static void report_rate(const char *workload, const char *variant, long n, timed t,
                        double setup_ms, double teardown_ms) {
    char buf[32];
    double rate = (double)n / t.s;
    double fpm = (double)t.faults * 1e6 / (double)n;
    bench_note("%s %s braid: setup %.3f ms, run %ld tasks in %.4f s (%.0f ns/task, "
               "%stasks/s), %ld page faults (%.0f per M tasks), teardown %.3f ms",
               workload, variant, setup_ms, n, t.s, t.s * 1e9 / (double)n,
               bench_si(rate, buf, sizeof buf), t.faults, fpm, teardown_ms);
    bench_emit(workload, variant, "braid", "tasks_per_s", rate, "tasks/s");
    bench_emit(workload, variant, "braid", "faults_per_mtask", fpm, "faults/Mtask");
}

/* W3 submit-<workers> (batch-<workers> with br_submit_batch). */
static void w3_submit(long n, int workers, bool batch) {
    char variant[32];
    snprintf(variant, sizeof variant, "%s-%d", batch ? "batch" : "submit", workers);
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(workers);
    double setup = bench_secs(s0, bench_now()) * 1e3;
    double sub;
    timed t = submit_wait(ex, n, batch, false, &sub);
    int64_t d0 = bench_now();
    BENCH_CHECK_OK(br_executor_free(ex));
    bench_note("W3 %s braid: submit loop %.4f s, then br_wait %.4f s", variant, sub,
               t.s - sub);
    report_rate("W3", variant, n, t, setup, bench_secs(d0, bench_now()) * 1e3);
}

/* N2: steady (an untimed full-size round first) or cold (a 1,000-task warm-up only). */
static void n2_submit(long n, int workers, bool steady, bool batch) {
    char variant[32];
    snprintf(variant, sizeof variant, "%s-%d%s", batch ? "batch" : "submit", workers,
             steady ? "" : "-cold");
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(workers);
    (void)submit_wait(ex, steady ? n : 1000, batch, true, NULL); /* workers started */
    double setup = bench_secs(s0, bench_now()) * 1e3;
    double sub;
    timed t = submit_wait(ex, n, batch, true, &sub);
    int64_t d0 = bench_now();
    BENCH_CHECK_OK(br_executor_free(ex));
    bench_note("N2 %s braid: submit loop %.4f s, then br_wait %.4f s", variant, sub,
               t.s - sub);
    report_rate("N2", variant, n, t, setup, bench_secs(d0, bench_now()) * 1e3);
}

static void n2_nofuture(long n) {
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(2);
    (void)submit_wait(ex, 1000, false, true, NULL); /* warm-up: both workers started */
    double setup = bench_secs(s0, bench_now()) * 1e3;
    counted = 0;
    timed t = submit_nofuture(ex, n);
    BENCH_CHECK_EQ(counted, n);
    int64_t d0 = bench_now();
    BENCH_CHECK_OK(br_executor_free(ex));
    report_rate("N2", "submit-2-nofuture", n, t, setup, bench_secs(d0, bench_now()) * 1e3);
}

static void w3_map(long n, int workers) {
    char variant[32];
    snprintf(variant, sizeof variant, "map-%d", workers);
    int64_t s0 = bench_now();
    br_executor *ex = new_pool(workers);
    int64_t *xs = malloc((size_t)n * sizeof *xs);
    BENCH_CHECK(xs != NULL);
    for (long i = 0; i < n; i++)
        xs[i] = i;
    double setup = bench_secs(s0, bench_now()) * 1e3;
    timed t;
    timed_start(&t);
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
    timed_stop(&t);
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(got, n);
    BENCH_CHECK_OK(br_executor_free(ex));
    free(xs);
    report_rate("W3", variant, n, t, setup, bench_secs(t1, bench_now()) * 1e3);
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

static bool is(const char *v, const char *name) {
    return v == NULL || strcmp(v, name) == 0;
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : NULL;
    bool matched = false;
    long w3n = bench_arg_count(argc, argv, 2, 100000);
    long n2n = bench_arg_count(argc, argv, 2, 1000000);
    for (int workers = 2; workers >= 1; workers--) {
        char name[32];
        snprintf(name, sizeof name, "submit-%d", workers);
        if (is(v, name)) {
            w3_submit(w3n, workers, false);
            matched = true;
        }
        snprintf(name, sizeof name, "batch-%d", workers);
        if (is(v, name)) {
            w3_submit(w3n, workers, true);
            matched = true;
        }
        snprintf(name, sizeof name, "map-%d", workers);
        if (is(v, name)) {
            w3_map(w3n, workers);
            matched = true;
        }
    }
    for (int workers = 2; workers >= 1; workers--) {
        char name[32];
        snprintf(name, sizeof name, "n2-submit-%d", workers);
        if (is(v, name)) {
            n2_submit(n2n, workers, true, false);
            matched = true;
        }
        snprintf(name, sizeof name, "n2-batch-%d", workers);
        if (is(v, name)) {
            n2_submit(n2n, workers, true, true);
            matched = true;
        }
    }
    if (is(v, "n2-submit-2-cold")) {
        n2_submit(n2n, 2, false, false);
        matched = true;
    }
    if (is(v, "n2-submit-2-nofuture")) {
        n2_nofuture(n2n);
        matched = true;
    }
    if (is(v, "roundtrip")) {
        roundtrip(bench_arg_count(argc, argv, 2, 10000));
        matched = true;
    }
    if (!matched) {
        fprintf(stderr,
                "usage: %s [submit-2|submit-1|batch-2|batch-1|map-2|map-1|n2-submit-2|"
                "n2-submit-2-cold|n2-submit-1|n2-batch-2|n2-batch-1|n2-submit-2-nofuture|"
                "roundtrip "
                "[N]]\n",
                argv[0]);
        return 2;
    }
    return 0;
}
