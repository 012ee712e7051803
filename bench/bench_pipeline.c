/* The tutorials' producer-consumer crawler shape with the work taken out: what a
 * pipeline's hand-offs cost. Items "0".."N-1" go through stage 1 (3 workers, passing
 * each on) and stage 2 (2 workers, summing the numbers), every queue bounded at 1,024
 * (the tutorial's queues are unbounded; a pipeline's never are).
 *
 *   bench_pipeline [VARIANT [N]]       no arguments: every variant; N = 200,000
 *
 * VARIANT: threads (both stages threads: the tutorial's threading version),
 * coroutines (both stages coroutines, each on its own loop), processes (stage 1 a
 * process stage, N = 20,000 unless given). Peer: bench/py_pipeline.py (queue.Queue and
 * threads, as the tutorial). Figure: items_per_s, from the first put to the join.
 */
#include "bench.h"

#include <braid/pipeline.h>

#include <stdatomic.h>

#ifndef CAP
#define CAP 1024
#endif

static _Atomic uint64_t total;

static int pass_on(br_stage *st, const void *item, size_t len, void *arg) {
    (void)arg;
    return br_stage_emit(st, item, len);
}

static int add_up(br_stage *st, const void *item, size_t len, void *arg) {
    (void)st;
    (void)arg;
    char buf[32];
    BENCH_CHECK(len < sizeof buf);
    memcpy(buf, item, len);
    buf[len] = 0;
    atomic_fetch_add_explicit(&total, strtoull(buf, NULL, 10), memory_order_relaxed);
    return 0;
}

static void run(const char *variant, br_stage_model m1, br_stage_model m2, long n) {
    atomic_store(&total, 0);
    br_stage_opts st[2] = {
        {.fn = pass_on, .model = m1, .workers = 3, .capacity = CAP},
        {.fn = add_up, .model = m2, .workers = 2, .capacity = CAP},
    };
    br_pipeline *p;
    int64_t t0 = bench_now();
    BENCH_CHECK_OK(br_pipeline_new(&p, st, 2, NULL));
    for (long i = 0; i < n; i++) {
        char buf[32];
        int len = snprintf(buf, sizeof buf, "%ld", i);
        BENCH_CHECK_OK(br_pipeline_put(p, buf, (size_t)len, BR_FOREVER));
    }
    BENCH_CHECK_OK(br_pipeline_close(p));
    BENCH_CHECK_OK(br_pipeline_join(p, BR_FOREVER));
    double s = bench_secs(t0, bench_now());
    BENCH_CHECK_EQ(atomic_load(&total), (uint64_t)n * (uint64_t)(n - 1) / 2);
    br_stage_stats ss;
    BENCH_CHECK_OK(br_pipeline_stats(p, 1, &ss));
    BENCH_CHECK_EQ(ss.in, n);
    BENCH_CHECK_OK(br_pipeline_free(p));
    bench_note("pipeline %s: %ld items in %.3f s", variant, n, s);
    bench_emit("pipeline", variant, "braid", "items_per_s", (double)n / s, "items/s");
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    const char *only = argc > 1 ? argv[1] : NULL;
    long n = argc > 2 ? atol(argv[2]) : 0;
    if (!only || strcmp(only, "threads") == 0)
        run("threads", BR_STAGE_THREADS, BR_STAGE_THREADS, n ? n : 200000);
    if (!only || strcmp(only, "coroutines") == 0)
        run("coroutines", BR_STAGE_COROUTINES, BR_STAGE_COROUTINES, n ? n : 200000);
    if (!only || strcmp(only, "processes") == 0)
        run("processes", BR_STAGE_PROCESSES, BR_STAGE_THREADS, n ? n : 20000);
    return 0;
}
