/* bench_combine: W8's gather (BENCH.md) through the combinators, the peer's exact work
 * (peers/python/w8_asyncio.py gather-100k: 100,000 tasks each `await asyncio.sleep(0)`,
 * then `await asyncio.gather(*tasks)`), timed inside the main task as the peer does:
 *
 *   bench_combine gather-100k      the tasks, then br_gather(all, 100,000): seconds
 *   bench_combine taskgroup-100k   the same tasks made in a TaskGroup, then
 *                                  br_taskgroup_wait: seconds
 * No argument: both. Each checks that every task ran to its end (the sum of results).
 */
#include "bench.h"

#include <braid/aio.h>

#include <string.h>

enum { N = 100000 };

static int one(br_task *t) {
    BENCH_CHECK_OK(br_aio_yield());
    return br_task_return_i64(t, 1);
}

static int64_t sum_release(br_future **fs, size_t n) {
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        BENCH_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        sum += v;
        br_future_release(fs[i]);
    }
    return sum;
}

static int gather_main(br_task *t) {
    (void)t;
    br_future **fs = malloc(N * sizeof *fs);
    BENCH_CHECK(fs != NULL);
    int64_t t0 = bench_now();
    for (size_t i = 0; i < N; i++)
        BENCH_CHECK_OK(br_create_task(NULL, one, NULL, 0, &fs[i]));
    BENCH_CHECK_OK(br_gather(fs, N, false, BR_FOREVER));
    double s = bench_secs(t0, bench_now());
    BENCH_CHECK_EQ(sum_release(fs, N), N);
    free(fs);
    bench_emit("W8", "gather-100k", "braid-gather", "seconds", s, "s");
    return 0;
}

static int taskgroup_main(br_task *t) {
    (void)t;
    br_future **fs = malloc(N * sizeof *fs);
    BENCH_CHECK(fs != NULL);
    int64_t t0 = bench_now();
    br_taskgroup *g;
    BENCH_CHECK_OK(br_taskgroup_new(&g));
    for (size_t i = 0; i < N; i++)
        BENCH_CHECK_OK(br_taskgroup_create_task(g, one, NULL, 0, &fs[i]));
    BENCH_CHECK_OK(br_taskgroup_wait(g));
    br_taskgroup_free(g);
    double s = bench_secs(t0, bench_now());
    BENCH_CHECK_EQ(sum_release(fs, N), N);
    free(fs);
    bench_emit("W8", "taskgroup-100k", "braid-taskgroup", "seconds", s, "s");
    return 0;
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "all";
    bool all = strcmp(which, "all") == 0;
    int code = 0;
    if (all || strcmp(which, "gather-100k") == 0) {
        BENCH_CHECK_OK(br_aio_run(gather_main, NULL, 0, &code));
        BENCH_CHECK_OK(code);
    }
    if (all || strcmp(which, "taskgroup-100k") == 0) {
        BENCH_CHECK_OK(br_aio_run(taskgroup_main, NULL, 0, &code));
        BENCH_CHECK_OK(code);
    }
    return 0;
}
