/* bench_aio: W8 (BENCH.md) on braid's event loop, the same work as
 * peers/python/w8_asyncio.py, timed inside the main task (the loop's creation and
 * teardown excluded, as the peer does):
 *
 *   bench_aio gather-100k   100,000 tasks each yielding once (br_aio_yield), then all
 *                           awaited in order: seconds
 *   bench_aio pingpong-1m   two tasks each yielding 500,000 times: seconds and
 *                           ns_per_switch (seconds / 1e6)
 *   bench_aio sleep1-100k   100,000 tasks each sleeping 1 s, awaited: wall seconds and
 *                           peak RSS (MiB; ru_maxrss), with the RSS before as baseline
 *   bench_aio sem10-10k     a br_sem of 10; 10,000 tasks each taking it around a yield:
 *                           seconds
 * No argument: all four. Each checks that every task ran to its end. A second argument
 * "shared" runs every task on the loop thread's shared stack (br_loop_set_task_defaults;
 * the figures named *-shared): frames copied out while a task is suspended, so an idle
 * task costs its record and its live frames instead of a page of stack or more.
 */
#include "bench.h"

#include <braid/aio.h>

#include <sys/resource.h>

static double rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static bool shared; /* the "shared" argument */

/* The loop's tasks on the shared stack, in shared mode (run from each main task). */
static void stack_mode(void) {
    if (shared)
        BENCH_CHECK_OK(br_loop_set_task_defaults(br_loop_current(),
                                                 &(br_task_opts){.shared_stack = true}));
}

static const char *fig(const char *name) {
    static char b[64];
    snprintf(b, sizeof b, "%s%s", name, shared ? "-shared" : "");
    return b;
}

static int one(br_task *t) {
    BENCH_CHECK_OK(br_aio_yield());
    return br_task_return_i64(t, 1);
}

static int64_t await_all(br_future **fs, size_t n) {
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        BENCH_CHECK_OK(br_future_result_i64(fs[i], BR_FOREVER, &v));
        sum += v;
        br_future_release(fs[i]);
    }
    return sum;
}

static int gather_main(br_task *t) {
    enum { N = 100000 };
    br_future **fs = malloc(N * sizeof *fs);
    BENCH_CHECK(fs != NULL);
    stack_mode();
    int64_t t0 = bench_now();
    for (size_t i = 0; i < N; i++)
        BENCH_CHECK_OK(br_create_task(NULL, one, NULL, 0, &fs[i]));
    BENCH_CHECK_EQ(await_all(fs, N), N);
    double s = bench_secs(t0, bench_now());
    free(fs);
    bench_emit("W8", fig("gather-100k"), "braid", "seconds", s, "s");
    (void)t;
    return 0;
}

static int pinger(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    for (int64_t i = 0; i < n; i++)
        BENCH_CHECK_OK(br_aio_yield());
    return br_task_return_i64(t, n);
}

static int pingpong_main(br_task *t) {
    int64_t half = 500000;
    br_future *fs[2];
    stack_mode();
    int64_t t0 = bench_now();
    BENCH_CHECK_OK(br_create_task(NULL, pinger, &half, sizeof half, &fs[0]));
    BENCH_CHECK_OK(br_create_task(NULL, pinger, &half, sizeof half, &fs[1]));
    BENCH_CHECK_EQ(await_all(fs, 2), 2 * half);
    double s = bench_secs(t0, bench_now());
    bench_emit("W8", fig("pingpong-1m"), "braid", "seconds", s, "s");
    bench_emit("W8", fig("pingpong-1m"), "braid", "ns_per_switch", s * 1e3, "ns");
    (void)t;
    return 0;
}

static int sleeper(br_task *t) {
    BENCH_CHECK_OK(br_aio_sleep(BR_SEC));
    return br_task_return_i64(t, 1);
}

static int sleep_main(br_task *t) {
    enum { N = 100000 };
    br_future **fs = malloc(N * sizeof *fs);
    BENCH_CHECK(fs != NULL);
    double base = rss_mib();
    int64_t t0 = bench_now();
    br_task_opts o = {.stack_size = 16 << 10, .shared_stack = shared};
    for (size_t i = 0; i < N; i++)
        BENCH_CHECK_OK(br_create_task_opts(NULL, sleeper, NULL, 0, &o, &fs[i]));
    BENCH_CHECK_EQ(await_all(fs, N), N);
    double s = bench_secs(t0, bench_now());
    free(fs);
    bench_emit("W8", fig("sleep1-100k"), "braid", "seconds", s, "s");
    bench_emit("W8", fig("sleep1-100k"), "braid", "peak_rss", rss_mib(), "MiB");
    bench_emit("W8", fig("sleep1-100k"), "braid", "baseline_rss", base, "MiB");
    (void)t;
    return 0;
}

static br_sem sem;

static int sem_task(br_task *t) {
    BENCH_CHECK_OK(br_sem_acquire(&sem, BR_FOREVER));
    BENCH_CHECK_OK(br_aio_yield());
    BENCH_CHECK_OK(br_sem_release(&sem, 1));
    return br_task_return_i64(t, 1);
}

static int sem_main(br_task *t) {
    enum { N = 10000 };
    br_future **fs = malloc(N * sizeof *fs);
    BENCH_CHECK(fs != NULL);
    BENCH_CHECK_OK(br_sem_init(&sem, 10));
    stack_mode();
    int64_t t0 = bench_now();
    for (size_t i = 0; i < N; i++)
        BENCH_CHECK_OK(br_create_task(NULL, sem_task, NULL, 0, &fs[i]));
    BENCH_CHECK_EQ(await_all(fs, N), N);
    double s = bench_secs(t0, bench_now());
    free(fs);
    br_sem_destroy(&sem);
    bench_emit("W8", fig("sem10-10k"), "braid", "seconds", s, "s");
    (void)t;
    return 0;
}

static void run(br_task_fn fn) {
    int code = 1;
    BENCH_CHECK_OK(br_aio_run(fn, NULL, 0, &code));
    BENCH_CHECK_EQ(code, 0);
}

int main(int argc, char **argv) {
    const char *v = argc > 1 ? argv[1] : "all";
    shared = argc > 2 && strcmp(argv[2], "shared") == 0;
    bool all = strcmp(v, "all") == 0;
    bool any = false;
    if (all || strcmp(v, "gather-100k") == 0)
        run(gather_main), any = true;
    if (all || strcmp(v, "pingpong-1m") == 0)
        run(pingpong_main), any = true;
    if (all || strcmp(v, "sem10-10k") == 0)
        run(sem_main), any = true;
    if (all || strcmp(v, "sleep1-100k") == 0)
        run(sleep_main), any = true;
    if (!any) {
        fprintf(stderr, "usage: bench_aio [gather-100k|pingpong-1m|sleep1-100k|sem10-10k|all] [shared]\n");
        return 2;
    }
    return 0;
}
