/* The thread pool at the edges of its options: max_workers up to INT_MAX costs nothing
 * until workers start (the bookkeeping grows with them), and max_pending from
 * BR_THREADPOOL_UNBOUNDED up (SIZE_MAX, 2^63) means no bound at all. Time appears only
 * as hang guards. */
#include "harness.h"

#include "executor/pool/for_tests.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The process's virtual size in KiB (VmSize): a table sized by max_workers up front
 * would show here even untouched. -1 if unreadable. */
static long vm_size_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int nop_task(br_task *t) {
    int64_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    return br_task_return_i64(t, x + 1);
}

/* --- max_workers -----------------------------------------------------------------------
 */

/* A pool with max_workers = n: made, a map of 100 no-ops (results checked), freed; the
 * pool starts at most one worker per task, and making it reserves nothing per possible
 * worker. */
static void huge_max_workers(int n) {
    int baseline = br_test_thread_baseline();
    long vm0 = vm_size_kib();
    br_executor *ex = NULL;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = n}));
    long vm1 = vm_size_kib();
    /* 2^26 workers' bookkeeping up front would be gigabytes of address space */
    if (vm0 > 0 && vm1 > 0)
        BR_CHECK(vm1 - vm0 < 64 * 1024);
    BR_CHECK_EQ(br_executor_max_workers(ex), n);
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    BR_CHECK_EQ(st.threads, 0); /* lazy: nothing until the first submit */

    enum { N = 100 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = 1000 + i;
    br_map *m = NULL;
    BR_CHECK_OK(br_map_new(&m, ex, nop_task, in, N, sizeof in[0],
                           &(br_map_opts){.deadline = br_test_hang_guard()}));
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, in[i] + 1);
    }
    BR_CHECK_ERR(br_map_next_i64(m, NULL), BR_EOF);
    BR_CHECK_OK(br_map_free(m));

    /* After the join no worker can start any more (a worker that finds more work
     * visible may start another even now): the final count. */
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    br__threadpool_stats(ex, &st);
    BR_CHECK(st.threads >= 1 && st.threads <= N);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_threads(baseline);
}

static void max_workers_2_26(void **state) {
    (void)state;
    huge_max_workers(1 << 26);
}

static void max_workers_2_28(void **state) {
    (void)state;
    huge_max_workers(1 << 28);
}

static void max_workers_int_max(void **state) {
    (void)state;
    huge_max_workers(INT_MAX);
}

/* --- max_pending ---------------------------------------------------------------------- */

typedef struct blocker {
    br_event started, go;
} blocker;

static int block_task(br_task *t) {
    blocker *b = *(blocker *const *)br_task_arg(t, NULL);
    br_event_set(&b->started);
    return br_event_wait(&b->go, br_test_hang_guard());
}

static _Atomic long ran;

static int count_task(br_task *t) {
    atomic_fetch_add(&ran, 1);
    return br_task_return_i64(t, br_task_arg_i64(t) * 3);
}

/* A 1-worker pool with max_pending = limit, its worker held on an event: 10,000 submits
 * from outside with BR_CALL_NOWAIT all get in (none waits for room: there is no
 * bound), and every one runs once the worker is let go. The pool is a daemon and the
 * events static, so that a failed check leaves a held worker that neither waits on a
 * dead stack frame nor holds up the process's exit. */
static void unbounded_pending(size_t limit) {
    br_executor *ex = NULL;
    BR_CHECK_OK(br_threadpool_new(
        &ex,
        &(br_threadpool_opts){.max_workers = 1, .max_pending = limit, .daemon = true}));
    static blocker b;
    BR_CHECK_OK(br_event_init(&b.started));
    BR_CHECK_OK(br_event_init(&b.go));
    blocker *bp = &b;
    br_future *held = NULL;
    BR_CHECK_OK(br_submit_call(
        ex,
        &(br_call){
            .fn = block_task, .arg = &bp, .len = sizeof bp, .flags = BR_CALL_COPY_ARG},
        &held));
    BR_CHECK_OK(br_event_wait(&b.started, br_test_hang_guard()));

    enum { N = 10000 };
    br_future **fs = calloc(N, sizeof *fs);
    BR_CHECK(fs != NULL);
    atomic_store(&ran, 0);
    for (int64_t i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_call(ex,
                                   &(br_call){.fn = count_task,
                                              .arg = &i,
                                              .len = sizeof i,
                                              .flags = BR_CALL_COPY_ARG | BR_CALL_NOWAIT},
                                   &fs[i]));
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    BR_CHECK_EQ(st.pending, 0);    /* pending is counted only under a bound */
    BR_CHECK_EQ(st.bp_waiters, 0); /* nobody waits for room */
    BR_CHECK_EQ(atomic_load(&ran), 0);
    BR_CHECK(!br_future_done(fs[N - 1]));

    BR_CHECK_OK(br_event_set(&b.go));
    BR_CHECK_OK(br_future_result(held, br_test_hang_guard(), NULL, NULL));
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, 3 * (int64_t)i);
    }
    BR_CHECK_EQ(atomic_load(&ran), N);
    br_test_futures_release(fs, N);
    free(fs);
    br_future_release(held);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&b.started));
    BR_CHECK_OK(br_event_destroy(&b.go));
}

static void max_pending_size_max(void **state) {
    (void)state;
    unbounded_pending(SIZE_MAX);
}

static void max_pending_unbounded(void **state) {
    (void)state;
    unbounded_pending(BR_THREADPOOL_UNBOUNDED);
}

static void max_pending_2_63(void **state) {
    (void)state;
    unbounded_pending((size_t)1 << 63);
}

BR_TEST_MAIN(cmocka_unit_test(max_workers_2_26), cmocka_unit_test(max_workers_2_28),
             cmocka_unit_test(max_workers_int_max), cmocka_unit_test(max_pending_size_max),
             cmocka_unit_test(max_pending_unbounded), cmocka_unit_test(max_pending_2_63))
