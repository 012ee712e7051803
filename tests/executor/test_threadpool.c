/* The thread pool: the executor conformance suite, plus what only a thread pool does
 * (lazy workers, names, initializer, bounded submission, shutdown details, nested
 * submits, parallel_for, the exit rule) and a stress test.
 *
 * No sleeps: tasks block on "gates" (futures the test completes) and report progress
 * through futures of their own; loops that wait for the scheduler to settle poll a
 * condition under a deadline that only guards against hangs.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "executor/pool/deque.h"
#include "executor/pool/for_tests.h"
#include "future/private.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int conformance_make(br_executor **out, int max_workers) {
    return br_threadpool_new(out, &(br_threadpool_opts){.max_workers = max_workers});
}

#include "conformance_executor.h"

/* --- helpers ------------------------------------------------------------------------ */

/* Twice the harness's hang guard: this file's tests get 120 s (above). */
static int64_t tp_guard(void) {
    return br_deadline_after(2 * br_test_hang_guard_ns());
}

static br_executor *tp_new(const br_threadpool_opts *o) {
    br_executor *ex = NULL;
    BR_CHECK_OK(br_threadpool_new(&ex, o));
    BR_CHECK(ex != NULL);
    return ex;
}

static br_future *tp_future(void) {
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    return f;
}

/* A task that reports it started, then waits for its gate; if asked to stop while
 * waiting it returns BR_ECANCELED (when `obey`), else it keeps waiting. At `give_up`
 * (the hang guard, from tp_block_new) it returns BR_ETIMEDOUT: a failed check that
 * never opens the gate must not leave a worker for the exit rule to wait on forever. */
typedef struct tp_block {
    br_future *gate;
    br_future *started;
    bool obey;
    _Atomic int saw_cancel;
    int64_t give_up;
} tp_block;

static int tp_block_task(br_task *t) {
    tp_block *b = (tp_block *)(uintptr_t)br_task_arg_i64(t);
    br_future_set_result_i64(b->started, 1);
    for (;;) {
        if (br_future_wait(b->gate, br_deadline_after(200 * BR_USEC)) == 0)
            break;
        if (br_task_cancelled(t)) {
            atomic_store(&b->saw_cancel, 1);
            if (b->obey)
                return BR_ECANCELED;
        }
        if (br_now() > b->give_up)
            return BR_ETIMEDOUT;
    }
    return br_task_return_i64(t, 7);
}

static tp_block *tp_block_new(bool obey) {
    tp_block *b = calloc(1, sizeof *b);
    b->gate = tp_future();
    b->started = tp_future();
    b->obey = obey;
    b->give_up = tp_guard();
    return b;
}

static void tp_block_free(tp_block *b) {
    br_future_release(b->gate);
    br_future_release(b->started);
    free(b);
}

static br_future *tp_submit_block(br_executor *ex, tp_block *b) {
    br_future *f = NULL;
    BR_CHECK_OK(br_submit_i64(ex, tp_block_task, (int64_t)(uintptr_t)b, &f));
    return f;
}

static int tp_noop(br_task *t) {
    (void)t;
    return 0;
}

static int tp_echo(br_task *t) { return br_task_return_i64(t, br_task_arg_i64(t)); }

static int64_t tp_result(br_future *f) {
    int64_t v = -1;
    BR_CHECK_OK(br_future_result_i64(f, tp_guard(), &v));
    return v;
}

/* Submits n echo tasks (0..n-1) through fs[0..n), checks every result and releases
 * them: n tasks in flight at once. */
static void tp_echo_all(br_executor *ex, br_future **fs, int n) {
    for (int i = 0; i < n; i++)
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, i, &fs[i]));
    for (int i = 0; i < n; i++) {
        BR_CHECK_EQ(tp_result(fs[i]), i);
        br_future_release(fs[i]);
    }
}

/* Polls cond(ex) until true (the guard only catches hangs). */
static void tp_until(bool (*cond)(br_executor *ex), br_executor *ex) {
    int64_t guard = tp_guard();
    while (!cond(ex)) {
        BR_CHECK(br_now() < guard);
        sched_yield();
    }
}

static bool tp_all_parked(br_executor *ex) {
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    return st.sleeping == st.threads;
}

typedef struct tp_pf {
    int64_t base;
    int64_t n;
    _Atomic uint8_t *hits;
    bool fail;       /* the chunk holding fail_at fails */
    int64_t fail_at;
    _Atomic int64_t calls;
} tp_pf;

static int tp_pf_body(int64_t begin, int64_t end, void *ctx) {
    tp_pf *p = ctx;
    atomic_fetch_add(&p->calls, 1);
    if (begin >= end || begin < p->base || end > p->base + p->n)
        return -1000; /* an empty or out-of-range chunk */
    for (int64_t i = begin; i < end; i++) {
        if (p->fail && i == p->fail_at)
            return BR_EIO;
        atomic_fetch_add(&p->hits[i - p->base], 1);
    }
    return 0;
}

/* --- lazy start, reuse, defaults ------------------------------------------------------ */

static void threadpool_lazy_start(void **state) {
    (void)state;
    int before = br_test_thread_baseline();
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 4});
    BR_CHECK_EQ(br_test_count_threads(), before); /* nothing until the first submit */
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 5, &f));
    BR_CHECK_EQ(tp_result(f), 5);
    br_future_release(f);
    /* The first submit starts exactly one worker. */
    BR_CHECK_EQ(br_test_count_threads(), before + 1);
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    BR_CHECK_EQ(st.threads, 1);
    /* Once it is idle, a submit reuses it. */
    tp_until(tp_all_parked, ex);
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 6, &f));
    BR_CHECK_EQ(tp_result(f), 6);
    br_future_release(f);
    br__threadpool_stats(ex, &st);
    BR_CHECK_EQ(st.threads, 1);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_threads(before);
}

static void threadpool_reuse_bounded(void **state) {
    (void)state;
    int before = br_test_thread_baseline();
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 3});
    enum { N = 2000 };
    static br_future *fs[N];
    for (int round = 0; round < 3; round++) {
        tp_echo_all(ex, fs, N);
        BR_CHECK(br_test_count_threads() <= before + 3);
    }
    /* A blocked pool of 3 takes a 4th blocking task without a 4th thread. */
    tp_block *b[4];
    br_future *bf[4];
    for (int i = 0; i < 4; i++) {
        b[i] = tp_block_new(true);
        bf[i] = tp_submit_block(ex, b[i]);
    }
    /* Any three of them start (which three is the scheduler's business)... */
    int64_t guard = tp_guard();
    int started;
    do {
        BR_CHECK(br_now() < guard);
        started = 0;
        for (int i = 0; i < 4; i++)
            started += br_future_done(b[i]->started);
    } while (started < 3);
    BR_CHECK(br_test_count_threads() <= before + 3);
    /* ...and the fourth can't: all three workers are blocked. */
    started = 0;
    for (int i = 0; i < 4; i++)
        started += br_future_done(b[i]->started);
    BR_CHECK_EQ(started, 3);
    for (int i = 0; i < 4; i++)
        cf_open(b[i]->gate);
    for (int i = 0; i < 4; i++) {
        BR_CHECK_EQ(tp_result(bf[i]), 7);
        br_future_release(bf[i]);
        tp_block_free(b[i]);
    }
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_threads(before);
}

/* Two quick submits to a pool whose only worker is idle: the second must get a worker
 * of its own (Python's idle-semaphore rule), or a task waiting for a later one would
 * deadlock. */
static br_executor *tp_self_ex;

static int tp_wait_for_next(br_task *t) {
    br_future *next = (br_future *)(uintptr_t)br_task_arg_i64(t);
    int64_t v = -1;
    int rc = br_future_result_i64(next, tp_guard(), &v);
    if (rc != 0)
        return rc;
    return br_task_return_i64(t, v + 1);
}

static void threadpool_second_worker_for_waiting_task(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 1, &f)); /* start one worker */
    BR_CHECK_EQ(tp_result(f), 1);
    br_future_release(f);
    tp_until(tp_all_parked, ex);
    br_future *later = tp_future();
    br_future *a, *b;
    BR_CHECK_OK(br_submit_i64(ex, tp_wait_for_next, (int64_t)(uintptr_t)later, &a));
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 41, &b));
    /* b runs on the second worker while a blocks on `later`, which b's result opens. */
    BR_CHECK_EQ(tp_result(b), 41);
    BR_CHECK_OK(br_future_set_result_i64(later, 41));
    BR_CHECK_EQ(tp_result(a), 42);
    br_future_release(a);
    br_future_release(b);
    br_future_release(later);
    BR_CHECK_OK(br_executor_free(ex));
}

static void threadpool_default_max_workers(void **state) {
    (void)state;
    int n = br_cpu_count() + 4;
    if (n > 32)
        n = 32;
    br_executor *ex = tp_new(NULL);
    BR_CHECK_EQ(br_executor_max_workers(ex), n);
    BR_CHECK(strcmp(br_executor_kind(ex), "thread") == 0);
    BR_CHECK_OK(br_executor_free(ex));
    ex = tp_new(&(br_threadpool_opts){0});
    BR_CHECK_EQ(br_executor_max_workers(ex), n);
    BR_CHECK_OK(br_executor_free(ex));
    br_executor *bad = (br_executor *)1;
    BR_CHECK_ERR(br_threadpool_new(&bad, &(br_threadpool_opts){.max_workers = -1}), BR_EINVAL);
    BR_CHECK(bad == NULL);
    BR_CHECK_ERR(br_threadpool_new(NULL, NULL), BR_EINVAL);
}

/* --- names ---------------------------------------------------------------------------- */

/* Every thread's kernel name (comm) joined with '|'. */
static void tp_comms(char *out, size_t len) {
    out[0] = 0;
    DIR *d = opendir("/proc/self/task");
    BR_CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(comm, sizeof comm, f) == NULL)
            comm[0] = 0;
        fclose(f);
        comm[strcspn(comm, "\n")] = 0;
        strncat(out, "|", len - strlen(out) - 1);
        strncat(out, comm, len - strlen(out) - 1);
    }
    closedir(d);
    strncat(out, "|", len - strlen(out) - 1);
}

static void threadpool_name_prefix(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2,
                                                    .thread_name_prefix = "crawler"});
    tp_block *b[2];
    br_future *f[2];
    for (int i = 0; i < 2; i++) {
        b[i] = tp_block_new(true);
        f[i] = tp_submit_block(ex, b[i]);
    }
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_future_wait(b[i]->started, tp_guard()));
    char comms[4096];
    tp_comms(comms, sizeof comms);
    if (strstr(comms, "|crawler_0|") == NULL || strstr(comms, "|crawler_1|") == NULL)
        fail_msg("worker names missing: %s", comms);
    for (int i = 0; i < 2; i++) {
        cf_open(b[i]->gate);
        BR_CHECK_EQ(tp_result(f[i]), 7);
        br_future_release(f[i]);
        tp_block_free(b[i]);
    }
    BR_CHECK_OK(br_executor_free(ex));

    /* The default, Python's "ThreadPoolExecutor-<n>_<i>", as far as the kernel's 15
     * bytes go. */
    ex = tp_new(NULL);
    tp_block *d = tp_block_new(true);
    br_future *df = tp_submit_block(ex, d);
    BR_CHECK_OK(br_future_wait(d->started, tp_guard()));
    tp_comms(comms, sizeof comms);
    if (strstr(comms, "|ThreadPoolExecu|") == NULL)
        fail_msg("default worker name missing: %s", comms);
    cf_open(d->gate);
    BR_CHECK_EQ(tp_result(df), 7);
    br_future_release(df);
    tp_block_free(d);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- initializer ---------------------------------------------------------------------- */

static _Atomic int tp_inits;

static int tp_init_ok(void *arg) {
    atomic_fetch_add(&tp_inits, 1);
    return arg == (void *)&tp_inits ? 0 : -1;
}

static int tp_init_fail(void *arg) {
    (void)arg;
    atomic_fetch_add(&tp_inits, 1);
    return -1;
}

static void threadpool_initializer_runs_once_per_worker(void **state) {
    (void)state;
    atomic_store(&tp_inits, 0);
    br_executor *ex = tp_new(&(br_threadpool_opts){
        .max_workers = 3, .initializer = tp_init_ok, .initarg = (void *)&tp_inits});
    enum { N = 500 };
    static br_future *fs[N];
    tp_echo_all(ex, fs, N);
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&tp_inits), st.threads);
}

static void threadpool_initializer_failure_breaks_pool(void **state) {
    (void)state;
    atomic_store(&tp_inits, 0);
    br_executor *ex =
        tp_new(&(br_threadpool_opts){.max_workers = 1, .initializer = tp_init_fail});
    enum { N = 50 };
    br_future *fs[N];
    int queued = 0;
    for (int i = 0; i < N; i++) {
        int rc = br_submit_i64(ex, tp_echo, i, &fs[queued]);
        if (rc == 0)
            queued++;
        else
            BR_CHECK_ERR(rc, BR_EBROKEN); /* the pool broke while we were submitting */
    }
    /* The first worker may fail before even the first task is queued: then every
     * submit reports BR_EBROKEN, which is as right as a queued task failing. */
    for (int i = 0; i < queued; i++) {
        BR_CHECK_ERR(br_future_result(fs[i], tp_guard(), NULL, NULL), BR_EBROKEN);
        BR_CHECK(br_future_done(fs[i]) && br_future_failed(fs[i]));
        br_future_release(fs[i]);
    }
    br_future *f = NULL;
    BR_CHECK_ERR(br_submit_i64(ex, tp_echo, 1, &f), BR_EBROKEN);
    BR_CHECK(f == NULL);
    _Atomic uint8_t hits[10] = {0};
    tp_pf p = {.base = 0, .n = 10, .hits = hits};
    BR_CHECK_ERR(br_parallel_for(ex, 0, 10, 1, tp_pf_body, &p), BR_EBROKEN);
    BR_CHECK_EQ(atomic_load(&p.calls), 0);
    int64_t in[3] = {1, 2, 3};
    br_map *m = (br_map *)1;
    BR_CHECK_ERR(br_map_new(&m, ex, tp_echo, in, 3, sizeof in[0], NULL), BR_EBROKEN);
    BR_CHECK(m == NULL);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&tp_inits), 1);
}

/* --- bounded submission ----------------------------------------------------------------- */

typedef struct tp_bp_arg {
    br_executor *ex;
    br_future *opened; /* done once the test has opened the gate */
    _Atomic int opened_at_return;
    int rc;
    br_future *f;
} tp_bp_arg;

static void *tp_blocking_submitter(void *arg) {
    tp_bp_arg *a = arg;
    a->rc = br_submit_i64(a->ex, tp_echo, 99, &a->f);
    atomic_store(&a->opened_at_return, br_future_done(a->opened) ? 1 : 0);
    return NULL;
}

static void threadpool_max_pending(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 1, .max_pending = 2});
    tp_block *b = tp_block_new(true);
    br_future *bf = tp_submit_block(ex, b);
    BR_CHECK_OK(br_future_wait(b->started, tp_guard())); /* running: no longer pending */
    br_future *q1, *q2, *x = NULL;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 1, &q1));
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 2, &q2));
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    BR_CHECK_EQ(st.pending, 2);
    /* Full: NOWAIT fails at once, a deadline fails at the deadline. */
    BR_CHECK_ERR(br_submit_call(ex, &(br_call){.fn = tp_noop, .flags = BR_CALL_NOWAIT}, &x),
                 BR_ETIMEDOUT);
    BR_CHECK(x == NULL);
    int64_t dl = br_deadline_after(20 * BR_MSEC);
    BR_CHECK_ERR(br_submit_call(ex, &(br_call){.fn = tp_noop, .submit_deadline = dl}, &x),
                 BR_ETIMEDOUT);
    BR_CHECK(br_now() >= dl);
    BR_CHECK(x == NULL);
    /* A plain submit waits for room; room appears only once the gate opens. */
    tp_bp_arg a = {.ex = ex, .opened = tp_future()};
    pthread_t th;
    BR_CHECK_EQ(pthread_create(&th, NULL, tp_blocking_submitter, &a), 0);
    BR_CHECK_OK(br_future_set_result_i64(a.opened, 1));
    cf_open(b->gate);
    BR_CHECK_EQ(pthread_join(th, NULL), 0);
    BR_CHECK_OK(a.rc);
    BR_CHECK_EQ(atomic_load(&a.opened_at_return), 1);
    BR_CHECK_EQ(tp_result(bf), 7);
    BR_CHECK_EQ(tp_result(q1), 1);
    BR_CHECK_EQ(tp_result(q2), 2);
    BR_CHECK_EQ(tp_result(a.f), 99);
    br_future_release(bf);
    br_future_release(q1);
    br_future_release(q2);
    br_future_release(a.f);
    br_future_release(a.opened);
    tp_block_free(b);
    BR_CHECK_OK(br_executor_free(ex));
}

/* A submitter blocked for room gets BR_ESHUTDOWN when the pool shuts down. */
static void threadpool_max_pending_shutdown_wakes(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 1, .max_pending = 1});
    tp_block *b = tp_block_new(true);
    br_future *bf = tp_submit_block(ex, b);
    BR_CHECK_OK(br_future_wait(b->started, tp_guard()));
    br_future *q;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 1, &q));
    tp_bp_arg a = {.ex = ex, .opened = tp_future()};
    pthread_t th;
    BR_CHECK_EQ(pthread_create(&th, NULL, tp_blocking_submitter, &a), 0);
    BR_CHECK_OK(br_executor_shutdown(ex, false, false));
    BR_CHECK_EQ(pthread_join(th, NULL), 0);
    BR_CHECK_ERR(a.rc, BR_ESHUTDOWN);
    BR_CHECK(a.f == NULL);
    cf_open(b->gate);
    BR_CHECK_EQ(tp_result(bf), 7);
    BR_CHECK_EQ(tp_result(q), 1);
    br_future_release(bf);
    br_future_release(q);
    br_future_release(a.opened);
    tp_block_free(b);
    BR_CHECK_OK(br_executor_free(ex));
}

/* br_executor_free while several threads are blocked in br_submit waiting for room:
 * shutdown wakes them with BR_ESHUTDOWN, and free must not release the pool before
 * they have stopped reading it. The hook holds each woken submitter back, inside the
 * pool, until free has started waiting for it (or, wrongly, returned): deterministic,
 * and ASan sees any read of the freed pool. */
static _Atomic int tp_uaf_free_returned;
static _Atomic int tp_uaf_resumed_after_free;
static _Atomic long tp_uaf_parks_before;

static void tp_uaf_hook(void) {
    int64_t guard = tp_guard();
    while (!atomic_load(&tp_uaf_free_returned) &&
           atomic_load(&br__pool_drain_parks) == atomic_load(&tp_uaf_parks_before) &&
           br_now() < guard)
        sched_yield();
    if (atomic_load(&tp_uaf_free_returned))
        atomic_store(&tp_uaf_resumed_after_free, 1); /* it is about to read a freed pool */
}

static void threadpool_free_with_blocked_submitters(void **state) {
    (void)state;
    enum { K = 6 };
    int rounds = (int)br_test_scaled(20, 4);
    br__pool_bp_woken_hook = tp_uaf_hook;
    for (int r = 0; r < rounds; r++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 1, .max_pending = 1});
        tp_block *b = tp_block_new(true);
        br_future *bf = tp_submit_block(ex, b);
        BR_CHECK_OK(br_future_wait(b->started, tp_guard()));
        br_future *q;
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, 1, &q)); /* pending is full now */
        tp_bp_arg a[K];
        pthread_t th[K];
        for (int i = 0; i < K; i++) {
            a[i] = (tp_bp_arg){.ex = ex, .opened = b->gate};
            BR_CHECK_EQ(pthread_create(&th[i], NULL, tp_blocking_submitter, &a[i]), 0);
        }
        struct br__threadpool_stats st;
        int64_t guard = tp_guard();
        do {
            BR_CHECK(br_now() < guard);
            sched_yield();
            br__threadpool_stats(ex, &st);
        } while (st.bp_waiters < K); /* every one parked in pending_reserve */
        atomic_store(&tp_uaf_free_returned, 0);
        atomic_store(&tp_uaf_resumed_after_free, 0);
        atomic_store(&tp_uaf_parks_before, atomic_load(&br__pool_drain_parks));
        BR_CHECK_OK(br_executor_shutdown(ex, false, false)); /* wakes them */
        cf_open(b->gate);
        BR_CHECK_OK(br_executor_free(ex));
        atomic_store(&tp_uaf_free_returned, 1);
        for (int i = 0; i < K; i++) {
            BR_CHECK_EQ(pthread_join(th[i], NULL), 0);
            BR_CHECK_ERR(a[i].rc, BR_ESHUTDOWN);
            BR_CHECK(a[i].f == NULL);
        }
        BR_CHECK_EQ(atomic_load(&tp_uaf_resumed_after_free), 0);
        BR_CHECK_EQ(tp_result(bf), 7);
        BR_CHECK_EQ(tp_result(q), 1);
        br_future_release(bf);
        br_future_release(q);
        tp_block_free(b);
    }
    br__pool_bp_woken_hook = NULL;
}

/* Many submitters against a small bound: all get through, pending never runs away. */
typedef struct tp_bp_many {
    br_executor *ex;
    int n;
    _Atomic long sum;
    _Atomic int failed; /* submits that failed (checked in the test's thread) */
} tp_bp_many;

static int tp_add(br_task *t) {
    tp_bp_many *m = (tp_bp_many *)(uintptr_t)br_task_arg_i64(t);
    atomic_fetch_add(&m->sum, 1);
    return 0;
}

static void *tp_bp_submitter(void *arg) {
    tp_bp_many *m = arg;
    for (int i = 0; i < m->n; i++)
        if (br_submit_i64(m->ex, tp_add, (int64_t)(uintptr_t)m, NULL) != 0)
            atomic_fetch_add(&m->failed, 1);
    return NULL;
}

static void threadpool_max_pending_many(void **state) {
    (void)state;
    tp_bp_many m = {.n = (int)br_test_scaled(20000, 1000)};
    m.ex = tp_new(&(br_threadpool_opts){.max_workers = 2, .max_pending = 3});
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        BR_CHECK_EQ(pthread_create(&th[i], NULL, tp_bp_submitter, &m), 0);
    for (int i = 0; i < 4; i++)
        BR_CHECK_EQ(pthread_join(th[i], NULL), 0);
    BR_CHECK_OK(br_executor_free(m.ex));
    BR_CHECK_EQ(atomic_load(&m.failed), 0);
    BR_CHECK_EQ(atomic_load(&m.sum), 4L * m.n);
}

/* --- shutdown ---------------------------------------------------------------------------- */

static void threadpool_shutdown_nowait_then_free(void **state) {
    (void)state;
    int before = br_test_thread_baseline();
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    tp_block *b = tp_block_new(true);
    br_future *bf = tp_submit_block(ex, b);
    br_future *q;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 3, &q));
    BR_CHECK_OK(br_future_wait(b->started, tp_guard()));
    BR_CHECK_OK(br_executor_shutdown(ex, false, false)); /* returns while b runs */
    BR_CHECK(!br_future_done(bf));
    br_future *x = NULL;
    BR_CHECK_ERR(br_submit_i64(ex, tp_echo, 4, &x), BR_ESHUTDOWN);
    BR_CHECK(x == NULL);
    BR_CHECK_OK(br_executor_shutdown(ex, false, false)); /* again is fine */
    cf_open(b->gate);
    BR_CHECK_OK(br_executor_free(ex)); /* waits for b and q */
    BR_CHECK(br_future_done(bf) && br_future_done(q));
    BR_CHECK_EQ(tp_result(bf), 7);
    BR_CHECK_EQ(tp_result(q), 3);
    br_future_release(bf);
    br_future_release(q);
    tp_block_free(b);
    br_test_wait_threads(before);
}

static void tp_cancel_futures_case(void) {
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    tp_block *obey = tp_block_new(true), *ignore = tp_block_new(false);
    br_future *fo = tp_submit_block(ex, obey);
    br_future *fi = tp_submit_block(ex, ignore);
    BR_CHECK_OK(br_future_wait(obey->started, tp_guard()));
    BR_CHECK_OK(br_future_wait(ignore->started, tp_guard()));
    enum { N = 100 };
    br_future *q[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, i, &q[i]));
    BR_CHECK_OK(br_executor_shutdown(ex, false, true));
    /* Everything queued is cancelled at once. */
    for (int i = 0; i < N; i++)
        BR_CHECK(br_future_cancelled(q[i]));
    /* The running ones were asked to stop: one obeys, one finishes normally. */
    BR_CHECK_ERR(br_future_result(fo, tp_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(fo));
    BR_CHECK_EQ(atomic_load(&obey->saw_cancel), 1);
    int64_t guard = tp_guard();
    while (!atomic_load(&ignore->saw_cancel))
        BR_CHECK(br_now() < guard);
    cf_open(ignore->gate);
    BR_CHECK_EQ(tp_result(fi), 7);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_futures_release(q, N);
    br_future_release(fo);
    br_future_release(fi);
    tp_block_free(obey);
    tp_block_free(ignore);
}

static void threadpool_shutdown_cancel_futures(void **state) {
    (void)state;
    tp_cancel_futures_case();
}

/* The same through the fallback protocol (atomic RMWs instead of membarrier). */
static void threadpool_shutdown_cancel_futures_cas(void **state) {
    (void)state;
    br__pool_no_membarrier = true;
    tp_cancel_futures_case();
    br__pool_no_membarrier = false;
}

/* Many short tasks running while shutdown requests cancels: the requests must never
 * reach a future whose task already finished (ASan catches a use after free). */
static int tp_short(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    for (volatile int64_t i = 0; i < n; i++)
        ;
    return br_task_cancelled(t) ? BR_ECANCELED : 0;
}

static void tp_cancel_race_case(void) {
    int rounds = (int)br_test_scaled(200, 20);
    for (int r = 0; r < rounds; r++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 3});
        enum { N = 300 };
        br_future *fs[N];
        for (int i = 0; i < N; i++)
            BR_CHECK_OK(br_submit_i64(ex, tp_short, i % 7 * 50, &fs[i]));
        BR_CHECK_OK(br_executor_shutdown(ex, true, true));
        for (int i = 0; i < N; i++) {
            BR_CHECK(br_future_done(fs[i]));
            br_future_release(fs[i]);
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
}

static void threadpool_cancel_requests_race(void **state) {
    (void)state;
    tp_cancel_race_case();
    br__pool_no_membarrier = true;
    tp_cancel_race_case();
    br__pool_no_membarrier = false;
}

/* Submitting from several threads while the pool shuts down: every submit either fails
 * with BR_ESHUTDOWN or its task runs (no task is lost between the two). */
typedef struct tp_race {
    br_executor *ex;
    int n;
    br_future **fs;
    int *rcs;
} tp_race;

static void *tp_race_submitter(void *arg) {
    tp_race *r = arg;
    for (int i = 0; i < r->n; i++) {
        r->rcs[i] = br_submit_i64(r->ex, tp_echo, i, &r->fs[i]);
        if (r->rcs[i] == BR_ESHUTDOWN)
            break;
    }
    return NULL;
}

static void threadpool_shutdown_races_submit(void **state) {
    (void)state;
    int rounds = (int)br_test_scaled(20, 3);
    for (int round = 0; round < rounds; round++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
        enum { T = 3 };
        tp_race r[T];
        pthread_t th[T];
        int n = (int)br_test_scaled(5000, 500);
        for (int i = 0; i < T; i++) {
            r[i] = (tp_race){.ex = ex, .n = n};
            r[i].fs = calloc((size_t)n, sizeof *r[i].fs);
            r[i].rcs = calloc((size_t)n, sizeof *r[i].rcs);
            for (int k = 0; k < n; k++)
                r[i].rcs[k] = 1; /* not tried */
            BR_CHECK_EQ(pthread_create(&th[i], NULL, tp_race_submitter, &r[i]), 0);
        }
        BR_CHECK_OK(br_executor_shutdown(ex, round % 2 == 0, false));
        for (int i = 0; i < T; i++)
            BR_CHECK_EQ(pthread_join(th[i], NULL), 0);
        BR_CHECK_OK(br_executor_free(ex));
        for (int i = 0; i < T; i++) {
            for (int k = 0; k < n; k++) {
                if (r[i].rcs[k] == 0) {
                    BR_CHECK(br_future_done(r[i].fs[k])); /* ran before free returned */
                    BR_CHECK_EQ(tp_result(r[i].fs[k]), k);
                    br_future_release(r[i].fs[k]);
                } else if (r[i].rcs[k] != 1) {
                    BR_CHECK_ERR(r[i].rcs[k], BR_ESHUTDOWN);
                    BR_CHECK(r[i].fs[k] == NULL);
                }
            }
            free(r[i].fs);
            free(r[i].rcs);
        }
    }
}

/* --- nested submits ---------------------------------------------------------------------- */

static int tp_nested(br_task *t) {
    int64_t depth = br_task_arg_i64(t);
    if (depth == 0)
        return br_task_return_i64(t, 1);
    br_future *a, *b;
    int rc = br_submit_i64(tp_self_ex, tp_nested, depth - 1, &a);
    if (rc != 0)
        return rc;
    rc = br_submit_i64(tp_self_ex, tp_nested, depth - 1, &b);
    if (rc != 0) {
        br_future_release(a);
        return rc;
    }
    int64_t x = 0, y = 0;
    /* Waits on its children: fine while the pool has more workers than the tree has
     * levels, which the test guarantees. */
    rc = br_future_result_i64(a, tp_guard(), &x);
    if (rc == 0)
        rc = br_future_result_i64(b, tp_guard(), &y);
    br_future_release(a);
    br_future_release(b);
    return rc != 0 ? rc : br_task_return_i64(t, x + y);
}

static _Atomic long tp_fan_sum;

static int tp_fan_leaf(br_task *t) {
    atomic_fetch_add(&tp_fan_sum, br_task_arg_i64(t));
    return 0;
}

static int tp_fan_out(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    for (int64_t i = 1; i <= n; i++) {
        int rc = br_submit_i64(tp_self_ex, tp_fan_leaf, i, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void threadpool_nested_submit(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 8});
    tp_self_ex = ex;
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, tp_nested, 3, &f)); /* 15 tasks, 4 levels */
    BR_CHECK_EQ(tp_result(f), 8);
    br_future_release(f);
    /* Fan-out from inside: tasks land in the worker's deque and get stolen. */
    atomic_store(&tp_fan_sum, 0);
    int64_t n = br_test_scaled(100000, 5000);
    BR_CHECK_OK(br_submit_i64(ex, tp_fan_out, n, &f));
    BR_CHECK_OK(br_future_result(f, tp_guard(), NULL, NULL));
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex)); /* waits for every leaf */
    BR_CHECK_EQ(atomic_load(&tp_fan_sum), n * (n + 1) / 2);

    /* One worker: tasks run in submission order, nested ones included. */
    ex = tp_new(&(br_threadpool_opts){.max_workers = 1});
    tp_self_ex = ex;
    atomic_store(&tp_fan_sum, 0);
    BR_CHECK_OK(br_submit_i64(ex, tp_fan_out, 1000, &f));
    BR_CHECK_OK(br_future_result(f, tp_guard(), NULL, NULL));
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&tp_fan_sum), 1000 * 1001 / 2);
}

/* One worker runs external submissions first-in first-out. */
typedef struct tp_order {
    _Atomic int next;
    _Atomic int bad;
} tp_order;
static tp_order tp_ord;

static int tp_order_task(br_task *t) {
    int want = (int)br_task_arg_i64(t);
    int got = atomic_fetch_add(&tp_ord.next, 1);
    if (got != want)
        atomic_store(&tp_ord.bad, 1);
    return 0;
}

static void threadpool_single_worker_fifo(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 1});
    atomic_store(&tp_ord.next, 0);
    atomic_store(&tp_ord.bad, 0);
    int n = (int)br_test_scaled(50000, 5000);
    for (int i = 0; i < n; i++)
        BR_CHECK_OK(br_submit_i64(ex, tp_order_task, i, NULL));
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&tp_ord.next), n);
    BR_CHECK_EQ(atomic_load(&tp_ord.bad), 0);
}

/* --- start order of tasks submitted from outside ------------------------------------------
 *
 * The guarantee (executor.h): a worker that becomes free starts the oldest task
 * submitted from outside the pool that hasn't started. Each task below records the
 * start position it got (the k-th start completes slot[k] with its own index) and then
 * waits for its gate, so the test decides when each worker becomes free. Whenever at
 * most one worker can be looking for work, the k-th start must be task k exactly; when
 * several are free at once (a burst to an idle pool) they race to record, so only the
 * set of the first starts is checked. */
enum { FIFO_MAX = 64 };

static struct {
    _Atomic int nstarted;
    br_future *slot[FIFO_MAX]; /* slot[k]: the index of the k-th task to start */
    br_future *gate[FIFO_MAX];
    int64_t give_up; /* the round's hang guard: a task still gated then fails */
} tp_fifo;

static int tp_fifo_task(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    int k = atomic_fetch_add(&tp_fifo.nstarted, 1);
    br_future_set_result_i64(tp_fifo.slot[k], i);
    return br_future_wait(tp_fifo.gate[i], tp_fifo.give_up); /* BR_ETIMEDOUT at the guard */
}

static void tp_fifo_reset(int n) {
    atomic_store(&tp_fifo.nstarted, 0);
    tp_fifo.give_up = tp_guard();
    for (int i = 0; i < n; i++) {
        tp_fifo.slot[i] = tp_future();
        tp_fifo.gate[i] = tp_future();
    }
}

static void tp_fifo_release_all(int n, br_future **fs) {
    for (int i = 0; i < n; i++)
        br_future_set_result_i64(tp_fifo.gate[i], 0); /* (some were released already) */
    for (int i = 0; i < n; i++) {
        BR_CHECK_OK(br_future_result(fs[i], tp_guard(), NULL, NULL));
        br_future_release(fs[i]);
        br_future_release(tp_fifo.slot[i]);
        br_future_release(tp_fifo.gate[i]);
    }
}

/* The index of the k-th task to start (waits for it). */
static int tp_fifo_started(int k) {
    int64_t i = -1;
    BR_CHECK_OK(br_future_result_i64(tp_fifo.slot[k], tp_guard(), &i));
    return (int)i;
}

static void threadpool_fifo_start_order(void **state) {
    (void)state;
    unsigned seed = 12345;
    int rounds = (int)br_test_scaled(300, 30);
    for (int round = 0; round < rounds; round++) {
        int workers = 1 + round % 4;
        int n = 8 + (int)(rand_r(&seed) % (FIFO_MAX - 8));
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
        tp_fifo_reset(n);
        br_future *fs[FIFO_MAX];
        int submitted = 0, next = 0;   /* tasks submitted; the next start expected */
        int running[FIFO_MAX], nrun = 0; /* started, gate still closed */
        while (next < n) {
            bool can_submit = submitted < n;
            bool can_release = nrun > 0;
            if (can_submit && (!can_release || rand_r(&seed) % 2 == 0)) {
                BR_CHECK_OK(br_submit_i64(ex, tp_fifo_task, submitted, &fs[submitted]));
                submitted++;
            } else {
                int j = (int)(rand_r(&seed) % (unsigned)nrun);
                br_future_set_result_i64(tp_fifo.gate[running[j]], 0);
                running[j] = running[--nrun];
            }
            /* One worker at most is free now: if a task is queued it starts next, and
             * it must be the oldest. */
            if (nrun < workers && next < submitted) {
                int got = tp_fifo_started(next);
                if (got != next)
                    fail_msg("round %d (%d workers): start %d was task %d", round, workers,
                             next, got);
                running[nrun++] = got;
                next++;
            }
        }
        tp_fifo_release_all(n, fs);
        BR_CHECK_OK(br_executor_free(ex));
    }
}

/* Python's get_html(3, 4, 9, 7) shape: a burst to an idle pool of 2 starts the first
 * two, and each worker that frees up then takes the oldest one left. The burst is n
 * submits, or one br_submit_batch (batch) followed by one submit. A batch's tasks may
 * start in any order among themselves (workers take runs of them: braid/executor.h),
 * but each worker that frees up starts one not started yet, every one of them once, and
 * the submit made after the batch returned starts last. */
static void tp_fifo_burst(bool batch) {
    unsigned seed = batch ? 4242 : 777;
    int rounds = (int)br_test_scaled(300, 30);
    for (int round = 0; round < rounds; round++) {
        int workers = 2 + round % 3;
        int n = workers + 2 + (int)(rand_r(&seed) % (FIFO_MAX - workers - 2));
        int total = batch ? n + 1 : n; /* n < FIFO_MAX */
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
        if (round % 2) { /* warm: workers started and idle (spinning or parked) */
            br_future *f;
            BR_CHECK_OK(br_submit_i64(ex, tp_order_task, 0, &f));
            BR_CHECK_OK(br_future_wait(f, tp_guard()));
            br_future_release(f);
        }
        tp_fifo_reset(total);
        br_future *fs[FIFO_MAX];
        static int64_t idx[FIFO_MAX];
        for (int i = 0; i < n; i++)
            idx[i] = i;
        if (batch) {
            size_t q;
            BR_CHECK_OK(
                br_submit_batch(ex, tp_fifo_task, idx, (size_t)n, sizeof idx[0], fs, &q));
            BR_CHECK_EQ(q, n);
            BR_CHECK_OK(br_submit_i64(ex, tp_fifo_task, n, &fs[n]));
        } else {
            for (int i = 0; i < n; i++)
                BR_CHECK_OK(br_submit_i64(ex, tp_fifo_task, i, &fs[i]));
        }
        /* the first `workers` starts race each other: they are tasks 0..workers-1 (of
         * the batch: any of its tasks) */
        unsigned long long seen = 0;
        int running[FIFO_MAX];
        for (int k = 0; k < workers; k++) {
            int got = tp_fifo_started(k);
            BR_CHECK(got >= 0 && got < (batch ? n : workers));
            BR_CHECK(!(seen & (1ull << got)));
            seen |= 1ull << got;
            running[k] = got;
        }
        if (!batch)
            BR_CHECK_EQ(seen, (1ull << workers) - 1);
        /* then one worker frees up at a time: strictly in submission order (a batch's
         * tasks: each one once, all before the submit that followed it) */
        int nrun = workers;
        for (int k = workers; k < total; k++) {
            int j = (int)(rand_r(&seed) % (unsigned)nrun);
            br_future_set_result_i64(tp_fifo.gate[running[j]], 0);
            int got = tp_fifo_started(k);
            bool ok = batch ? (k < n ? got >= 0 && got < n && !(seen & (1ull << got))
                                     : got == n)
                            : got == k;
            if (!ok)
                fail_msg("round %d (%d workers): start %d was task %d", round, workers, k, got);
            if (got < 64)
                seen |= 1ull << got;
            running[j] = got;
        }
        tp_fifo_release_all(total, fs);
        BR_CHECK_OK(br_executor_free(ex));
    }
}

static void threadpool_fifo_burst_to_idle_pool(void **state) {
    (void)state;
    tp_fifo_burst(false);
}

static void threadpool_batch_start_order(void **state) {
    (void)state;
    tp_fifo_burst(true);
}

/* Runs (sched.c, "Runs"): workers take up to 32 tasks of one batch with one CAS and
 * steal the older half of each other's runs. Many batches of many sizes, with single
 * submits between them, on 1-3 workers: every task runs exactly once, with its own
 * argument, and its future holds its own result. */
enum { RUNS_MAXN = 700 };
static _Atomic int tp_runs_count[RUNS_MAXN];
static int64_t tp_runs_idx[RUNS_MAXN];

static int tp_runs_task(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    atomic_fetch_add(&tp_runs_count[i], 1);
    return br_task_return_i64(t, i * 3);
}

static void threadpool_runs_no_loss(void **state) {
    (void)state;
    unsigned seed = 99;
    int rounds = (int)br_test_scaled(400, 40);
    for (int i = 0; i < RUNS_MAXN; i++)
        tp_runs_idx[i] = i;
    static br_future *fs[RUNS_MAXN];
    for (int workers = 1; workers <= 3; workers++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
        for (int round = 0; round < rounds; round++) {
            for (int i = 0; i < RUNS_MAXN; i++)
                atomic_store(&tp_runs_count[i], 0);
            /* batches of 1..300 and single submits, in random order, up to RUNS_MAXN */
            int n = 0;
            while (n < RUNS_MAXN - 1) {
                int k = 1 + (int)(rand_r(&seed) % 300);
                if (k > RUNS_MAXN - n)
                    k = RUNS_MAXN - n;
                if (rand_r(&seed) % 3 == 0) {
                    BR_CHECK_OK(br_submit_i64(ex, tp_runs_task, n, &fs[n]));
                    n++;
                    continue;
                }
                size_t q;
                BR_CHECK_OK(br_submit_batch(ex, tp_runs_task, tp_runs_idx + n, (size_t)k,
                                            sizeof tp_runs_idx[0], fs + n, &q));
                BR_CHECK_EQ(q, k);
                n += k;
            }
            for (int i = 0; i < n; i++) {
                int64_t v = -1;
                BR_CHECK_OK(br_future_result_i64(fs[i], tp_guard(), &v));
                BR_CHECK_EQ(v, (int64_t)i * 3);
                br_future_release(fs[i]);
            }
            for (int i = 0; i < n; i++)
                if (atomic_load(&tp_runs_count[i]) != 1)
                    fail_msg("%d workers, round %d: task %d ran %d times", workers, round, i,
                             atomic_load(&tp_runs_count[i]));
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
}

/* A long task can't hold a run hostage: the first task of a batch to start waits until
 * every other task of the batch has finished, which only the other workers can do, so
 * they must steal the rest of the run its worker took with it (and take the rest of
 * the batch). Batches of 2..100 on 2 and 3 workers, idle pools parked or not. */
static struct {
    _Atomic int started, done;
    int n;
    br_future *all_done;
} tp_hold;

static int tp_hold_task(br_task *t) {
    (void)t;
    if (atomic_fetch_add(&tp_hold.started, 1) == 0) {
        int rc = br_future_wait(tp_hold.all_done, tp_guard()); /* BR_ETIMEDOUT: held */
        if (rc != 0)
            return rc;
    } else if (atomic_fetch_add(&tp_hold.done, 1) + 1 == tp_hold.n - 1) {
        br_future_set_result_i64(tp_hold.all_done, 0);
    }
    return 0;
}

static void threadpool_run_not_held_by_long_task(void **state) {
    (void)state;
    unsigned seed = 7;
    int rounds = (int)br_test_scaled(200, 20);
    static br_future *fs[100];
    for (int workers = 2; workers <= 3; workers++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
        for (int round = 0; round < rounds; round++) {
            int n = 2 + (int)(rand_r(&seed) % 99);
            atomic_store(&tp_hold.started, 0);
            atomic_store(&tp_hold.done, 0);
            tp_hold.n = n;
            tp_hold.all_done = tp_future();
            size_t q;
            BR_CHECK_OK(br_submit_batch(ex, tp_hold_task, NULL, (size_t)n, 0, fs, &q));
            for (int i = 0; i < n; i++) {
                BR_CHECK_OK(br_future_result(fs[i], tp_guard(), NULL, NULL));
                br_future_release(fs[i]);
            }
            BR_CHECK_EQ(atomic_load(&tp_hold.started), n);
            BR_CHECK_EQ(atomic_load(&tp_hold.done), n - 1);
            br_future_release(tp_hold.all_done);
            if (round % 4 == 3) /* let the workers park now and then */
                br_sleep(1000000);
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
}

/* Called from a hook: returns once shutdown has closed ex (or the guard ran out). */
static void tp_wait_closed(br_executor *ex) {
    struct br__threadpool_stats st;
    int64_t guard = tp_guard();
    do {
        br_sleep(100 * BR_USEC);
        br__threadpool_stats(ex, &st);
    } while (!st.closed && br_now() < guard);
}

/* A claim in flight (sched.c, "Runs"): the claim hook keeps the first worker that
 * claims a run of the batch between its claim and the fill of its run, as a
 * preemption would: until the test has acted (`acted` set) and 100 ms more
 * (tp_claim_arm), or until the pool is closed and `linger` ns more
 * (tp_claim_arm_closed: the shutdown tests); so no test depends on acting in time. */
static struct {
    _Atomic int calls;
    br_future *entered, *acted;
    br_executor *ex;
    int64_t linger;
} tp_claim;

static void tp_claim_hook_sleep(void) {
    if (atomic_fetch_add(&tp_claim.calls, 1) == 0) {
        br_future_set_result_i64(tp_claim.entered, 0);
        (void)br_future_wait(tp_claim.acted, tp_guard());
        br_sleep(100000000);
    }
}

static void tp_claim_hook_closed(void) {
    if (atomic_fetch_add(&tp_claim.calls, 1) != 0)
        return;
    br_future_set_result_i64(tp_claim.entered, 0);
    tp_wait_closed(tp_claim.ex);
    if (tp_claim.linger > 0)
        br_sleep(tp_claim.linger);
}

static void tp_claim_arm(br_future *acted) {
    atomic_store(&tp_claim.calls, 0);
    tp_claim.acted = acted;
    tp_claim.entered = tp_future();
    atomic_store_explicit(&br__pool_claim_hook, tp_claim_hook_sleep, memory_order_release);
}

static void tp_claim_arm_closed(br_executor *ex, int64_t linger) {
    atomic_store(&tp_claim.calls, 0);
    tp_claim.entered = tp_future();
    tp_claim.ex = ex;
    tp_claim.linger = linger;
    atomic_store_explicit(&br__pool_claim_hook, tp_claim_hook_closed, memory_order_release);
}

static void tp_claim_disarm(void) {
    atomic_store_explicit(&br__pool_claim_hook, NULL, memory_order_release);
    br_future_release(tp_claim.entered);
}

enum { CLAIM_N = 20 };
static _Atomic int tp_claim_started[CLAIM_N];

static int tp_claim_task(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    atomic_fetch_add(&tp_claim_started[i], 1);
    return br_task_return_i64(t, i);
}

/* shutdown(cancel_futures) while a worker holds claimed tasks that no run shows yet
 * (held until the pool is closed): when it returns, every task of the batch has
 * started or is cancelled, but for at most one per worker (the task a worker has
 * taken to start next is only abandoned in br__pool_run, maybe after shutdown
 * returned: "starts means taken", braid/executor.h); once the pool is freed every task
 * is done, the claimed ones (all but the oldest, which the mover keeps) cancelled, and
 * none ran after it was cancelled. */
static void threadpool_cancel_futures_claim_in_flight(void **state) {
    (void)state;
    static int64_t idx[CLAIM_N];
    for (int round = 0; round < 3; round++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
        for (int i = 0; i < CLAIM_N; i++) {
            idx[i] = i;
            atomic_store(&tp_claim_started[i], 0);
        }
        tp_claim_arm_closed(ex, 0);
        br_future *fs[CLAIM_N];
        size_t q;
        BR_CHECK_OK(br_submit_batch(ex, tp_claim_task, idx, CLAIM_N, sizeof idx[0], fs, &q));
        BR_CHECK_OK(br_future_wait(tp_claim.entered, tp_guard()));
        BR_CHECK_OK(br_executor_shutdown(ex, false, true));
        int pending = 0;
        for (int i = 0; i < CLAIM_N; i++)
            pending += !br_future_cancelled(fs[i]) && !atomic_load(&tp_claim_started[i]);
        if (pending > 2)
            fail_msg("round %d: %d tasks neither started nor cancelled at shutdown (at most "
                     "one per worker may be)", round, pending);
        BR_CHECK_OK(br_executor_free(ex));
        int cancelled = 0;
        for (int i = 0; i < CLAIM_N; i++) {
            BR_CHECK(br_future_done(fs[i]));
            int ran = atomic_load(&tp_claim_started[i]);
            BR_CHECK_EQ(ran, br_future_cancelled(fs[i]) ? 0 : 1);
            cancelled += br_future_cancelled(fs[i]);
        }
        if (cancelled < CLAIM_N - 1)
            fail_msg("round %d: %d of the %d claimed tasks cancelled", round, cancelled,
                     CLAIM_N - 1);
        br_test_futures_release(fs, CLAIM_N);
        tp_claim_disarm();
    }
}

/* shutdown(wait) while a worker holds claimed tasks that no run shows yet (until the
 * pool is closed and 20 ms more, in which the other worker, woken, looks): the other
 * worker must not exit, since those tasks need two workers (the first of tasks 1.. to
 * start waits until another one starts: with one worker left it would give up after
 * 5 s and fail). */
static struct {
    _Atomic int arrived;
    br_future *partner;
} tp_pair;

static int tp_pair_task(br_task *t) {
    if (br_task_arg_i64(t) == 0)
        return 0;
    if (atomic_fetch_add(&tp_pair.arrived, 1) == 0)
        return br_future_wait(tp_pair.partner, tp_guard()); /* held */
    br_future_set_result_i64(tp_pair.partner, 0);
    return 0;
}

static void threadpool_shutdown_wait_claim_in_flight(void **state) {
    (void)state;
    static int64_t idx[CLAIM_N];
    for (int i = 0; i < CLAIM_N; i++)
        idx[i] = i;
    for (int round = 0; round < 3; round++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
        atomic_store(&tp_pair.arrived, 0);
        tp_pair.partner = tp_future();
        tp_claim_arm_closed(ex, 20 * BR_MSEC);
        br_future *fs[CLAIM_N];
        size_t q;
        BR_CHECK_OK(br_submit_batch(ex, tp_pair_task, idx, CLAIM_N, sizeof idx[0], fs, &q));
        BR_CHECK_OK(br_future_wait(tp_claim.entered, tp_guard()));
        BR_CHECK_OK(br_executor_shutdown(ex, true, false));
        for (int i = 0; i < CLAIM_N; i++) {
            if (br_future_result(fs[i], tp_guard(), NULL, NULL) != 0)
                fail_msg("round %d: task %d failed (a worker left while tasks it was needed "
                         "for waited in a claim)", round, i);
        }
        BR_CHECK_EQ(atomic_load(&tp_pair.arrived), CLAIM_N - 1);
        BR_CHECK_OK(br_executor_free(ex));
        br_test_futures_release(fs, CLAIM_N);
        br_future_release(tp_pair.partner);
        tp_claim_disarm();
    }
}

/* shutdown(wait) while a mover holds the batch it took off the stack (sched.c, "Exit";
 * the hole predates the runs): the move hook holds the first mover between its take all
 * and its first publish until the pool is closed, and 20 ms more, in which the other
 * worker, woken by the shutdown, looks at the pool. It must not exit: the batch's two
 * tasks each wait for the other to have started (with one worker left the first gives
 * up after 5 s and the test fails). */
static struct {
    br_executor *ex;
    _Atomic int calls, warm;
    br_future *entered;
} tp_mh;

static void tp_mh_hook(int where) {
    if (where != BR__POOL_MOVE_TAKEN || atomic_fetch_add(&tp_mh.calls, 1) != 0)
        return;
    br_future_set_result_i64(tp_mh.entered, 0);
    tp_wait_closed(tp_mh.ex);
    br_sleep(20 * BR_MSEC);
}

static int tp_mh_warm_task(br_task *t) {
    (void)t; /* both workers at once: the pool has two */
    atomic_fetch_add(&tp_mh.warm, 1);
    int64_t guard = tp_guard();
    while (atomic_load(&tp_mh.warm) < 2 && br_now() < guard)
        br_sleep(10 * BR_USEC);
    return atomic_load(&tp_mh.warm) >= 2 ? 0 : BR_ETIMEDOUT;
}

static void threadpool_shutdown_wait_mover_holds(void **state) {
    (void)state;
    static int64_t idx[2] = {1, 2};
    for (int round = 0; round < 3; round++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
        tp_mh.ex = ex;
        atomic_store(&tp_mh.warm, 0);
        br_future *w[2];
        for (int i = 0; i < 2; i++)
            BR_CHECK_OK(br_submit_i64(ex, tp_mh_warm_task, i, &w[i]));
        for (int i = 0; i < 2; i++)
            BR_CHECK_OK(br_future_result(w[i], tp_guard(), NULL, NULL));
        br_test_futures_release(w, 2);
        atomic_store(&tp_mh.calls, 0);
        atomic_store(&tp_pair.arrived, 0);
        tp_pair.partner = tp_future();
        tp_mh.entered = tp_future();
        atomic_store_explicit(&br__pool_move_hook, tp_mh_hook, memory_order_release);
        br_future *fs[2];
        size_t q;
        BR_CHECK_OK(br_submit_batch(ex, tp_pair_task, idx, 2, sizeof idx[0], fs, &q));
        BR_CHECK_OK(br_future_wait(tp_mh.entered, tp_guard()));
        BR_CHECK_OK(br_executor_shutdown(ex, true, false));
        for (int i = 0; i < 2; i++)
            if (br_future_result(fs[i], tp_guard(), NULL, NULL) != 0)
                fail_msg("round %d: task %d failed (a worker exited while the mover held "
                         "the batch)", round, i + 1);
        BR_CHECK_EQ(atomic_load(&tp_pair.arrived), 2);
        atomic_store_explicit(&br__pool_move_hook, NULL, memory_order_release);
        BR_CHECK_OK(br_executor_free(ex));
        br_test_futures_release(fs, 2);
        br_future_release(tp_pair.partner);
        br_future_release(tp_mh.entered);
    }
}

/* Start order with a claim in flight (the mover must not keep a later submit for
 * itself while a batch's tasks wait in a claim: sched.c, "Runs"). Both workers leave
 * a gated task at once with a batch of 10 on the stack: the first to look sleeps in
 * the move hook until the test says S is queued; the other moves the batch, runs its
 * oldest task and claims the other 9, and the claim hook holds it there until S is
 * queued and 100 ms more. The test then submits S and wakes the first, which moves S
 * over: S must not start
 * before the 9 claimed tasks (all but one, taken just before it, have begun). */
static struct {
    _Atomic int calls;
    br_future *s_queued;
    _Atomic int64_t started, s_saw;
} tp_mv;

static void tp_move_hook_wait(int where) {
    if (where == BR__POOL_MOVE_LOOKED && atomic_fetch_add(&tp_mv.calls, 1) == 0)
        (void)br_future_wait(tp_mv.s_queued, tp_guard());
}

static int tp_mv_batch_task(br_task *t) {
    (void)t;
    atomic_fetch_add(&tp_mv.started, 1);
    return 0;
}

static int tp_mv_single_task(br_task *t) {
    (void)t;
    atomic_store(&tp_mv.s_saw, atomic_load(&tp_mv.started));
    return 0;
}

static void threadpool_mover_waits_for_claims(void **state) {
    (void)state;
    enum { N = 10 };
    for (int round = 0; round < 3; round++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
        tp_block *b[2] = {tp_block_new(true), tp_block_new(true)};
        br_future *g[2];
        for (int i = 0; i < 2; i++)
            g[i] = tp_submit_block(ex, b[i]);
        for (int i = 0; i < 2; i++)
            BR_CHECK_OK(br_future_wait(b[i]->started, tp_guard()));
        atomic_store(&tp_mv.calls, 0);
        atomic_store(&tp_mv.started, 0);
        atomic_store(&tp_mv.s_saw, -1);
        tp_mv.s_queued = tp_future();
        tp_claim_arm(tp_mv.s_queued); /* held until S is queued, and 100 ms more */
        atomic_store_explicit(&br__pool_move_hook, tp_move_hook_wait, memory_order_release);
        br_future *fs[N + 1];
        size_t q;
        BR_CHECK_OK(br_submit_batch(ex, tp_mv_batch_task, NULL, N, 0, fs, &q));
        for (int i = 0; i < 2; i++)
            cf_open(b[i]->gate);
        BR_CHECK_OK(br_future_wait(tp_claim.entered, tp_guard()));
        BR_CHECK_OK(br_submit_i64(ex, tp_mv_single_task, 0, &fs[N]));
        br_future_set_result_i64(tp_mv.s_queued, 0);
        for (int i = 0; i <= N; i++)
            BR_CHECK_OK(br_future_result(fs[i], tp_guard(), NULL, NULL));
        int64_t saw = atomic_load(&tp_mv.s_saw);
        if (saw < N - 1)
            fail_msg("round %d: the submit after the batch started when %lld of its %d "
                     "tasks had", round, (long long)saw, N);
        atomic_store_explicit(&br__pool_move_hook, NULL, memory_order_release);
        BR_CHECK_OK(br_executor_free(ex));
        br_test_futures_release(fs, N + 1);
        br_test_futures_release(g, 2);
        br_future_release(tp_mv.s_queued);
        tp_claim_disarm();
        for (int i = 0; i < 2; i++)
            tp_block_free(b[i]);
    }
}

/* A busy worker that moves the stack must wake a sleeper for what it moved: while it
 * moves them the tasks are in no queue, so the other worker, the spinner the submit
 * counted on, can find nothing, stop spinning and park. Here worker A leaves a gated
 * task with a batch on the stack and moves it; the move hook holds A with the stack
 * taken until B has parked (B's own look at the stack is held until A has taken it,
 * so that A is the mover). The batch's oldest task, which A keeps, waits until the
 * others have run: only B can run them, and only if A's move woke it (else the task
 * gives up after 5 s and the test fails). */
static BR__TLS bool tp_wk_is_a;
static struct {
    br_executor *ex;
    br_future *taken;
    _Atomic int done;
    br_future *all_done;
} tp_wk;

static void tp_wk_hook(int where) {
    if (where == BR__POOL_MOVE_TAKEN && tp_wk_is_a) {
        tp_wk_is_a = false;
        br_future_set_result_i64(tp_wk.taken, 0);
        struct br__threadpool_stats st;
        int64_t guard = tp_guard();
        do {
            br_sleep(100 * BR_USEC);
            br__threadpool_stats(tp_wk.ex, &st);
        } while (st.sleeping == 0 && br_now() < guard);
    } else if (where == BR__POOL_MOVE_LOOKED && !tp_wk_is_a) {
        (void)br_future_wait(tp_wk.taken, tp_guard());
    }
}

static int tp_wk_gate_task(br_task *t) {
    tp_block *b = (tp_block *)(uintptr_t)br_task_arg_i64(t);
    br_future_set_result_i64(b->started, 1);
    int rc = br_future_wait(b->gate, tp_guard());
    tp_wk_is_a = true; /* this worker goes on to look at the stack, as busy */
    return rc;
}

static int tp_wk_task(br_task *t) {
    if (br_task_arg_i64(t) == 0)
        return br_future_wait(tp_wk.all_done, tp_guard());
    if (atomic_fetch_add(&tp_wk.done, 1) + 1 == 9)
        br_future_set_result_i64(tp_wk.all_done, 0);
    return 0;
}

static void threadpool_busy_mover_wakes_sleeper(void **state) {
    (void)state;
    static int64_t idx[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    for (int round = 0; round < 2; round++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
        tp_wk.ex = ex;
        tp_wk.taken = tp_future();
        tp_wk.all_done = tp_future();
        atomic_store(&tp_wk.done, 0);
        /* both workers started, then A gated and B idle */
        br_future *w[2];
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, 1, &w[0]));
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, 2, &w[1]));
        br_test_futures_release(w, 2);
        tp_block *b = tp_block_new(true);
        br_future *g = NULL;
        BR_CHECK_OK(br_submit_i64(ex, tp_wk_gate_task, (int64_t)(uintptr_t)b, &g));
        BR_CHECK_OK(br_future_wait(b->started, tp_guard()));
        atomic_store_explicit(&br__pool_move_hook, tp_wk_hook, memory_order_release);
        br_future *fs[10];
        size_t q;
        BR_CHECK_OK(br_submit_batch(ex, tp_wk_task, idx, 10, sizeof idx[0], fs, &q));
        cf_open(b->gate);
        for (int i = 0; i < 10; i++)
            if (br_future_result(fs[i], tp_guard(), NULL, NULL) != 0)
                fail_msg("round %d: task %d failed (the other worker slept through the "
                         "move)", round, i);
        atomic_store_explicit(&br__pool_move_hook, NULL, memory_order_release);
        BR_CHECK_OK(br_future_result(g, tp_guard(), NULL, NULL));
        BR_CHECK_OK(br_executor_free(ex));
        br_test_futures_release(fs, 10);
        br_future_release(g);
        br_future_release(tp_wk.taken);
        br_future_release(tp_wk.all_done);
        tp_block_free(b);
    }
}

/* A submit in the lost-wake-up window (sched.c, "Lost wake-ups"): the pool's only
 * worker has found nothing and is about to park when the task is pushed. The park hook
 * holds it there until the submit has returned: before it links itself (the submit
 * sees nobody spinning or sleeping and a full pool, so it wakes nobody: the worker's
 * own look after linking must find the task), and after it linked itself and counted
 * itself asleep (the submit pops and wakes it while it is still awake: it must take
 * that wake-up, not sleep through it). A lost wake-up leaves the task queued and the
 * result's wait runs into the hang guard. Each task arms the hook for the next round
 * before it returns, so the worker can't park unseen between rounds; each round checks
 * the task ran once, with its own argument. */
enum { TP_PK_MAX = 200 };
static struct {
    _Atomic int armed; /* BR__POOL_PARK_* + 1 of the window to hold, 0: none */
    _Atomic int cur;   /* the round the hook is armed for */
    int rounds;
    br_future *at_park[TP_PK_MAX];   /* set by the hook: the worker is in the window */
    br_future *submitted[TP_PK_MAX]; /* set by the test: the submit has returned */
    _Atomic long ran;
} tp_pk;

static int tp_pk_where(int round) {
    return round % 2 ? BR__POOL_PARK_LINKED : BR__POOL_PARK_LINKING;
}

static void tp_pk_hook(int where) {
    int want = where + 1;
    if (atomic_load(&tp_pk.armed) != want ||
        !atomic_compare_exchange_strong(&tp_pk.armed, &want, 0))
        return;
    int k = atomic_load(&tp_pk.cur);
    br_future_set_result_i64(tp_pk.at_park[k], where);
    (void)br_future_wait(tp_pk.submitted[k], tp_guard());
}

/* Runs on the worker: arms the hook for round `next` (if any), then returns arg. */
static void tp_pk_arm(int next) {
    if (next >= tp_pk.rounds)
        return;
    atomic_store(&tp_pk.cur, next);
    atomic_store(&tp_pk.armed, tp_pk_where(next) + 1);
}

static int tp_pk_task(br_task *t) {
    int64_t r = br_task_arg_i64(t);
    if (r >= 0)
        atomic_fetch_add(&tp_pk.ran, 1);
    tp_pk_arm((int)r + 1);
    return br_task_return_i64(t, r);
}

static void threadpool_submit_while_the_worker_parks(void **state) {
    (void)state;
    tp_pk.rounds = (int)br_test_scaled(TP_PK_MAX, 20);
    if (tp_pk.rounds > TP_PK_MAX)
        tp_pk.rounds = TP_PK_MAX;
    for (int r = 0; r < tp_pk.rounds; r++) {
        tp_pk.at_park[r] = tp_future();
        tp_pk.submitted[r] = tp_future();
    }
    atomic_store(&tp_pk.ran, 0);
    atomic_store(&tp_pk.armed, 0);
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 1});
    atomic_store_explicit(&br__pool_park_hook, tp_pk_hook, memory_order_release);
    br_future *f0; /* starts the worker and arms round 0 */
    BR_CHECK_OK(br_submit_i64(ex, tp_pk_task, -1, &f0));
    BR_CHECK_OK(br_future_result(f0, tp_guard(), NULL, NULL));
    br_future_release(f0);
    for (int round = 0; round < tp_pk.rounds; round++) {
        int where = tp_pk_where(round);
        int64_t got = -1;
        BR_CHECK_OK(br_future_result_i64(tp_pk.at_park[round], tp_guard(), &got));
        BR_CHECK_EQ(got, where);
        br_future *f;
        BR_CHECK_OK(br_submit_i64(ex, tp_pk_task, round, &f));
        br_future_set_result_i64(tp_pk.submitted[round], 0);
        int64_t v = -1;
        if (br_future_result_i64(f, tp_guard(), &v) != 0)
            fail_msg("round %d (%s): the task pushed while the worker parked never ran",
                     round, where == BR__POOL_PARK_LINKED ? "linked" : "linking");
        BR_CHECK_EQ(v, round);
        BR_CHECK_EQ(atomic_load(&tp_pk.ran), round + 1);
        br_future_release(f);
    }
    atomic_store_explicit(&br__pool_park_hook, NULL, memory_order_release);
    BR_CHECK_OK(br_executor_free(ex));
    for (int r = 0; r < tp_pk.rounds; r++) {
        br_future_release(tp_pk.at_park[r]);
        br_future_release(tp_pk.submitted[r]);
    }
}

/* Start order across a batch and the submits after it, without gates: each single
 * submit made after a batch returned sees, when it starts, every task of that batch
 * (and of every batch before it) started, but for one per other worker (taken just
 * before it, not begun yet). Batches of 2..100 with runs taken and
 * stolen on 2 and 3 workers. */
static struct {
    _Atomic int64_t started; /* batch tasks started */
    _Atomic int bad;
} tp_bso;

static int tp_order_batch_task(br_task *t) {
    (void)t;
    atomic_fetch_add(&tp_bso.started, 1);
    return 0;
}

static int tp_order_single_task(br_task *t) {
    int64_t need = br_task_arg_i64(t);
    if (atomic_load(&tp_bso.started) < need)
        atomic_fetch_add(&tp_bso.bad, 1);
    return 0;
}

static void threadpool_batch_then_submit_order(void **state) {
    (void)state;
    unsigned seed = 31;
    int rounds = (int)br_test_scaled(300, 30);
    static br_future *fs[128];
    for (int workers = 2; workers <= 3; workers++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
        for (int round = 0; round < rounds; round++) {
            atomic_store(&tp_bso.started, 0);
            int64_t total = 0;
            int nf = 0;
            for (int b = 0; b < 3; b++) {
                int n = 2 + (int)(rand_r(&seed) % 99);
                size_t q;
                BR_CHECK_OK(br_submit_batch(ex, tp_order_batch_task, NULL, (size_t)n, 0,
                                            NULL, &q));
                total += n;
                /* Each other worker may hold one batch task it took before this one
                 * and hasn't begun yet ("starts" means taken, braid/executor.h). */
                BR_CHECK_OK(br_submit_i64(ex, tp_order_single_task, total - (workers - 1),
                                          &fs[nf++]));
            }
            for (int i = 0; i < nf; i++) {
                BR_CHECK_OK(br_future_result(fs[i], tp_guard(), NULL, NULL));
                br_future_release(fs[i]);
            }
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
    BR_CHECK_EQ(atomic_load(&tp_bso.bad), 0);
}

/* Many batches from several submitting threads at once, with single submits between
 * them, on 2 and 3 workers: every task runs exactly once, with its own argument. */
enum { MS_THREADS = 3, MS_PER = 2000 };
static _Atomic int tp_ms_count[MS_THREADS * MS_PER];
static int64_t tp_ms_idx[MS_THREADS * MS_PER];
static br_executor *tp_ms_ex;

static int tp_ms_task(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    atomic_fetch_add(&tp_ms_count[i], 1);
    return br_task_return_i64(t, i + 1);
}

static void *tp_ms_submitter(void *arg) {
    int id = (int)(intptr_t)arg;
    unsigned seed = 1000u + (unsigned)id;
    int base = id * MS_PER, per = (int)br_test_scaled(MS_PER, MS_PER / 4);
    static br_future *fs[MS_THREADS][MS_PER];
    for (int n = 0; n < per;) {
        int k = 1 + (int)(rand_r(&seed) % 200);
        if (k > per - n)
            k = per - n;
        if (rand_r(&seed) % 4 == 0) {
            BR_CHECK_OK(br_submit_i64(tp_ms_ex, tp_ms_task, base + n, &fs[id][n]));
            n++;
            continue;
        }
        size_t q;
        BR_CHECK_OK(br_submit_batch(tp_ms_ex, tp_ms_task, tp_ms_idx + base + n, (size_t)k,
                                    sizeof tp_ms_idx[0], &fs[id][n], &q));
        BR_CHECK_EQ(q, k);
        n += k;
    }
    for (int n = 0; n < per; n++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(fs[id][n], tp_guard(), &v));
        BR_CHECK_EQ(v, base + n + 1);
        br_future_release(fs[id][n]);
    }
    return (void *)(intptr_t)per;
}

static void threadpool_runs_many_submitters(void **state) {
    (void)state;
    for (int i = 0; i < MS_THREADS * MS_PER; i++)
        tp_ms_idx[i] = i;
    int rounds = (int)br_test_scaled(10, 2);
    for (int workers = 2; workers <= 3; workers++) {
        for (int round = 0; round < rounds; round++) {
            tp_ms_ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
            for (int i = 0; i < MS_THREADS * MS_PER; i++)
                atomic_store(&tp_ms_count[i], 0);
            pthread_t th[MS_THREADS];
            for (int i = 0; i < MS_THREADS; i++)
                BR_CHECK_EQ(pthread_create(&th[i], NULL, tp_ms_submitter, (void *)(intptr_t)i),
                            0);
            int per = 0;
            for (int i = 0; i < MS_THREADS; i++) {
                void *r;
                BR_CHECK_EQ(pthread_join(th[i], &r), 0);
                per = (int)(intptr_t)r;
            }
            BR_CHECK_OK(br_executor_free(tp_ms_ex));
            for (int id = 0; id < MS_THREADS; id++)
                for (int n = 0; n < MS_PER; n++) {
                    int c = atomic_load(&tp_ms_count[id * MS_PER + n]);
                    if (c != (n < per ? 1 : 0))
                        fail_msg("%d workers, round %d: task %d of submitter %d ran %d times",
                                 workers, round, n, id, c);
                }
        }
    }
}

/* br_submit_batch from inside a task: onto the worker's deque (stolen by the others),
 * or through the injection stack with one worker; every leaf runs once. */
static int64_t tp_leaf_args[4096];

static int tp_fan_out_batch(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    for (int64_t done = 0; done < n;) {
        size_t k = (size_t)(n - done < 4096 ? n - done : 4096);
        size_t q;
        int rc = br_submit_batch(tp_self_ex, tp_fan_leaf, tp_leaf_args, k,
                                 sizeof tp_leaf_args[0], NULL, &q);
        if (rc != 0)
            return rc;
        if (q != k)
            return BR_EINVAL;
        done += (int64_t)k;
    }
    return 0;
}

static void threadpool_batch_nested(void **state) {
    (void)state;
    for (int i = 0; i < 4096; i++)
        tp_leaf_args[i] = i + 1;
    int workers[] = {4, 1};
    for (int w = 0; w < 2; w++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers[w]});
        tp_self_ex = ex;
        atomic_store(&tp_fan_sum, 0);
        int64_t rounds = br_test_scaled(20, 2);
        br_future *f;
        BR_CHECK_OK(br_submit_i64(ex, tp_fan_out_batch, rounds * 4096, &f));
        BR_CHECK_OK(br_future_result(f, tp_guard(), NULL, NULL));
        br_future_release(f);
        BR_CHECK_OK(br_executor_free(ex)); /* waits for every leaf */
        BR_CHECK_EQ(atomic_load(&tp_fan_sum), rounds * (4096 * 4097 / 2));
    }
}

/* A batch to a shut-down pool queues nothing and makes no future. */
static void threadpool_batch_closed(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    br_future *fs[3] = {(br_future *)1, (br_future *)1, (br_future *)1};
    size_t q = 5;
    BR_CHECK_ERR(
        br_submit_batch(ex, tp_fan_leaf, tp_leaf_args, 3, sizeof tp_leaf_args[0], fs, &q),
        BR_ESHUTDOWN);
    BR_CHECK(q == 0 && fs[0] == NULL && fs[1] == NULL && fs[2] == NULL);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- parallel_for ---------------------------------------------------------------------- */

static void tp_pf_check(br_executor *ex, int64_t base, int64_t n, int64_t grain) {
    tp_pf p = {.base = base, .n = n};
    p.hits = calloc((size_t)n, 1);
    BR_CHECK_OK(br_parallel_for(ex, base, base + n, grain, tp_pf_body, &p));
    for (int64_t i = 0; i < n; i++)
        if (atomic_load(&p.hits[i]) != 1)
            fail_msg("range [%lld, +%lld) grain %lld: index %lld ran %d times",
                     (long long)base, (long long)n, (long long)grain, (long long)(base + i),
                     atomic_load(&p.hits[i]));
    int64_t chunks = grain > 0 ? (n + grain - 1) / grain : 0;
    if (grain > 0)
        BR_CHECK_EQ(atomic_load(&p.calls), chunks); /* chunks, not indices */
    else
        BR_CHECK(atomic_load(&p.calls) <= n);
    free(p.hits);
}

static void threadpool_parallel_for_exact(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 3});
    static const int64_t ns[] = {1, 2, 3, 7, 64, 999, 1000, 1001, 65537};
    static const int64_t grains[] = {0, 1, 2, 3, 10, 1000, 100000};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
            if (ns[i] > 5000 && grains[g] == 1 && br_test_scale() < 1)
                continue;
            tp_pf_check(ex, -17, ns[i], grains[g]);
            tp_pf_check(ex, 1000000007, ns[i], grains[g]);
        }
    /* Ranges near the ends of int64. */
    tp_pf_check(ex, INT64_MAX - 1000, 1000, 7);
    tp_pf_check(ex, INT64_MIN, 1000, 0);
    BR_CHECK_OK(br_executor_free(ex));
}

static int tp_pf_positive(int64_t begin, int64_t end, void *ctx) {
    (void)end;
    (void)ctx;
    return begin == 500 ? 5 : 0;
}

static void threadpool_parallel_for_error(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    int64_t n = 100000;
    tp_pf p = {.base = 0, .n = n, .fail = true, .fail_at = 500};
    p.hits = calloc((size_t)n, 1);
    BR_CHECK_ERR(br_parallel_for(ex, 0, n, 100, tp_pf_body, &p), BR_EIO);
    /* The failure stops the loop: far fewer chunks than 1000 ran (the ones already
     * claimed by others finish). */
    BR_CHECK(atomic_load(&p.calls) < 1000);
    free(p.hits);
    /* Any nonzero code is returned as is, positive ones too. */
    BR_CHECK_EQ(br_parallel_for(ex, 0, 1000, 10, tp_pf_positive, NULL), 5);
    BR_CHECK_OK(br_executor_free(ex));
}

typedef struct tp_pf_inner {
    int64_t n;
    int rc;
} tp_pf_inner;

static int tp_pf_from_worker(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    tp_pf p = {.base = 0, .n = n};
    p.hits = calloc((size_t)n, 1);
    int rc = br_parallel_for(tp_self_ex, 0, n, 3, tp_pf_body, &p);
    for (int64_t i = 0; rc == 0 && i < n; i++)
        if (atomic_load(&p.hits[i]) != 1)
            rc = -2000;
    free(p.hits);
    return rc;
}

static void threadpool_parallel_for_from_worker(void **state) {
    (void)state;
    for (int workers = 1; workers <= 3; workers++) {
        br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = workers});
        tp_self_ex = ex;
        /* Every worker busy with a task that itself runs a parallel_for. */
        br_future *fs[3];
        for (int i = 0; i < workers; i++)
            BR_CHECK_OK(br_submit_i64(ex, tp_pf_from_worker, 10007, &fs[i]));
        for (int i = 0; i < workers; i++) {
            BR_CHECK_OK(br_future_result(fs[i], tp_guard(), NULL, NULL));
            br_future_release(fs[i]);
        }
        BR_CHECK_OK(br_executor_free(ex));
    }
}

static void threadpool_parallel_for_shut_down(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    tp_pf p = {.base = 0, .n = 10};
    p.hits = calloc(10, 1);
    BR_CHECK_ERR(br_parallel_for(ex, 0, 10, 1, tp_pf_body, &p), BR_ESHUTDOWN);
    BR_CHECK_EQ(atomic_load(&p.calls), 0);
    free(p.hits);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- idle workers park ----------------------------------------------------------------- */

static void threadpool_idle_workers_park(void **state) {
    (void)state;
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 4});
    enum { N = 1000 };
    static br_future *fs[N];
    tp_echo_all(ex, fs, N);
    /* After the short spin every worker sleeps: an idle pool costs no CPU. */
    tp_until(tp_all_parked, ex);
    struct br__threadpool_stats st;
    br__threadpool_stats(ex, &st);
    BR_CHECK_EQ(st.spinning, 0);
    BR_CHECK(st.threads >= 1);
    /* And a parked pool still wakes for a submit. */
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 5, &f));
    BR_CHECK_EQ(tp_result(f), 5);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- the exit rule ------------------------------------------------------------------------
 *
 * A child process makes a pool, submits a task that waits for a byte from the parent
 * and then writes "done", and calls exit(0). Non-daemon: exit waits for the task, so
 * the parent reads "done". Daemon: the process ends at once and the read sees EOF. */

typedef struct tp_pipes {
    int go_r, done_w;
} tp_pipes;

static int tp_exit_task(br_task *t) {
    tp_pipes *pp = (tp_pipes *)(uintptr_t)br_task_arg_i64(t);
    char c;
    if (read(pp->go_r, &c, 1) != 1)
        return BR_EIO;
    if (write(pp->done_w, "done", 4) != 4)
        return BR_EIO;
    return 0;
}

static void tp_exit_case(bool daemon) {
    int go[2], done[2], ready[2];
    BR_CHECK_EQ(pipe(go), 0);
    BR_CHECK_EQ(pipe(done), 0);
    BR_CHECK_EQ(pipe(ready), 0);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        close(done[0]);
        close(ready[0]);
        static tp_pipes pp;
        pp.go_r = go[0];
        pp.done_w = done[1];
        br_executor *ex = NULL;
        if (br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1, .daemon = daemon}))
            _exit(3);
        if (br_submit_i64(ex, tp_exit_task, (int64_t)(uintptr_t)&pp, NULL))
            _exit(4);
        if (write(ready[1], "r", 1) != 1)
            _exit(5);
        exit(0); /* the pool is still alive */
    }
    close(go[0]);
    close(done[1]);
    close(ready[1]);
    char c;
    BR_CHECK_EQ(read(ready[0], &c, 1), 1);
    int status = 0;
    if (daemon) {
        /* The child doesn't wait for its task: it exits with the task still blocked. */
        status = br_test_wait_child(pid);
        BR_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        char buf[8];
        BR_CHECK_EQ(read(done[0], buf, sizeof buf), 0); /* EOF: the task never finished */
    } else {
        /* The child is stuck in exit() until its task finishes: let it. */
        BR_CHECK_EQ(write(go[1], "g", 1), 1);
        char buf[8];
        BR_CHECK_EQ(read(done[0], buf, sizeof buf), 4);
        status = br_test_wait_child(pid);
        BR_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    close(go[1]);
    close(done[0]);
    close(ready[0]);
}

static void threadpool_exit_waits_for_non_daemon(void **state) {
    (void)state;
    tp_exit_case(false);
}

static void threadpool_exit_abandons_daemon(void **state) {
    (void)state;
    tp_exit_case(true);
}

/* After fork() the child has the pool's memory but none of its workers: submits are
 * refused, and neither free nor the exit rule waits for threads that aren't there. */
static pid_t tp_fork_parent;

/* LeakSanitizer can't stop the parent's (absent) threads in a forked child and misses
 * thread-local caches there, so the child must not reach its check. Registered before
 * the first pool (so before the pool's exit rule, so it runs after it), it ends only
 * the child, once the exit rule is done. */
static void tp_child_skips_leak_check(void) {
    if (getpid() != tp_fork_parent)
        _exit(0);
}

static void threadpool_fork_child(void **state) {
    (void)state;
    tp_fork_parent = getpid();
#if defined(BRAID_ASAN)
    atexit(tp_child_skips_leak_check);
#else
    (void)tp_child_skips_leak_check;
#endif
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 1, &f));
    BR_CHECK_EQ(tp_result(f), 1);
    br_future_release(f);
    br_executor *kept = tp_new(&(br_threadpool_opts){.max_workers = 1}); /* left for exit */
    BR_CHECK_OK(br_submit_i64(kept, tp_echo, 2, &f));
    BR_CHECK_EQ(tp_result(f), 2);
    br_future_release(f);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_future *cf = NULL;
        if (br_submit_i64(ex, tp_echo, 3, &cf) != BR_ESHUTDOWN || cf != NULL)
            _exit(10);
        if (br_parallel_for(ex, 0, 10, 1, tp_pf_body, NULL) != BR_ESHUTDOWN)
            _exit(11);
        if (br_executor_free(ex) != 0)
            _exit(12);
        exit(0); /* `kept` is still registered for the exit rule */
    }
    int status = br_test_wait_child(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("child status %d", status);
    /* The parent's pools are untouched. */
    BR_CHECK_OK(br_submit_i64(ex, tp_echo, 4, &f));
    BR_CHECK_EQ(tp_result(f), 4);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_executor_free(kept));
}

/* Tasks queued in a forked child's copy of a pool can never run there: shutdown (and
 * free) must complete them anyway, from every queue (the injection stack, the shared
 * fifo, a worker's own deque), while the tasks running at the fork stay running. The
 * fork happens while every pool thread is parked on a gate (none inside malloc). */
typedef struct tp_fk {
    br_future *gate, *started;
    int nested;          /* children submitted to its worker's deque before blocking */
    br_future *kids[4];
} tp_fk;

/* The test's hang guard: a task still gated then fails with BR_ETIMEDOUT. */
static int64_t tp_fk_give_up;

static int tp_fk_task(br_task *t) {
    tp_fk *k = (tp_fk *)(uintptr_t)br_task_arg_i64(t);
    for (int i = 0; i < k->nested; i++)
        if (br_submit_i64(tp_self_ex, tp_echo, 100 + i, &k->kids[i]) != 0)
            return BR_EIO;
    br_future_set_result_i64(k->started, 1);
    return br_future_wait(k->gate, tp_fk_give_up);
}

enum { TP_FK_Q = 5 };

/* In the child: every queued future is done with `code` and only ours holds it; the
 * running ones are still running. Returns 0 or the number of the failed check. */
static int tp_fk_check(br_future **queued, int n, br_future **running, int code) {
    for (int i = 0; i < n; i++) {
        br_future *f = queued[i];
        if (!br_future_done(f))
            return 20 + i;
        if (code == BR_ECANCELED ? !br_future_cancelled(f)
                                 : br_future_result(f, BR_NOWAIT, NULL, NULL) != code)
            return 40 + i;
        if (atomic_load(&f->refs) != 1) /* the pool dropped its reference */
            return 60 + i;
    }
    for (int i = 0; i < 2; i++)
        if (br_future_state_of(running[i]) != BR_FUTURE_RUNNING)
            return 80 + i;
    return 0;
}

static void threadpool_fork_child_completes_queued(void **state) {
    (void)state;
    tp_fk_give_up = tp_guard();
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 2});
    tp_self_ex = ex;
    /* static: a task that starts after a failed check must not read a dead frame */
    static tp_fk g1, g2, b;
    g1 = (tp_fk){tp_future(), tp_future(), 0, {0}};
    g2 = (tp_fk){tp_future(), tp_future(), 0, {0}};
    b = (tp_fk){tp_future(), tp_future(), 4, {0}};
    br_future *fg1, *fg2, *fb, *t[TP_FK_Q], *u[TP_FK_Q];
    BR_CHECK_OK(br_submit_i64(ex, tp_fk_task, (int64_t)(uintptr_t)&g1, &fg1));
    BR_CHECK_OK(br_submit_i64(ex, tp_fk_task, (int64_t)(uintptr_t)&g2, &fg2));
    BR_CHECK_OK(br_future_wait(g1.started, tp_guard()));
    BR_CHECK_OK(br_future_wait(g2.started, tp_guard()));
    /* Both workers are busy: b and t[] wait on the injection stack. */
    BR_CHECK_OK(br_submit_i64(ex, tp_fk_task, (int64_t)(uintptr_t)&b, &fb));
    for (int i = 0; i < TP_FK_Q; i++)
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, i, &t[i]));
    /* g1's worker moves them to the fifo, keeps b (the oldest) and runs it: b fills
     * that worker's deque with its children and blocks. */
    cf_open(g1.gate);
    BR_CHECK_OK(br_future_wait(b.started, tp_guard()));
    for (int i = 0; i < TP_FK_Q; i++)
        BR_CHECK_OK(br_submit_i64(ex, tp_echo, 10 + i, &u[i]));
    BR_CHECK(br_test_until_listener(&g2.gate, 1)); /* both parked */
    BR_CHECK(br_test_until_listener(&b.gate, 1));
    br_future *queued[2 * TP_FK_Q + 4], *running[2] = {fg2, fb};
    int nq = 0;
    for (int i = 0; i < TP_FK_Q; i++) {
        queued[nq++] = t[i];
        queued[nq++] = u[i];
    }
    for (int i = 0; i < 4; i++)
        queued[nq++] = b.kids[i];
    int status[2] = {-1, -1};
    for (int mode = 0; mode < 2; mode++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            int rc;
            if (mode == 0) { /* shutdown(cancel_futures): cancelled at once */
                if (br_executor_shutdown(ex, false, true) != 0)
                    _exit(2);
                rc = tp_fk_check(queued, nq, running, BR_ECANCELED);
                if (rc == 0 && br_executor_free(ex) != 0)
                    rc = 3;
            } else { /* free, i.e. shutdown(wait): they fail with BR_ESHUTDOWN */
                if (br_executor_free(ex) != 0)
                    _exit(4);
                rc = tp_fk_check(queued, nq, running, BR_ESHUTDOWN);
            }
            _exit(rc); /* (not exit: the leak check can't see the parent's threads) */
        }
        status[mode] = br_test_wait_child(pid);
    }
    /* In the parent everything runs as usual (gates first: a failed check must not
     * leave the workers blocked for the exit rule to wait on). */
    cf_open(g2.gate);
    cf_open(b.gate);
    for (int mode = 0; mode < 2; mode++)
        if (status[mode] == -1 || !WIFEXITED(status[mode]) || WEXITSTATUS(status[mode]) != 0)
            fail_msg("child (mode %d) status %d, exit code %d", mode, status[mode],
                     status[mode] != -1 && WIFEXITED(status[mode]) ? WEXITSTATUS(status[mode])
                                                                 : -1);
    for (int i = 0; i < TP_FK_Q; i++) {
        BR_CHECK_EQ(tp_result(t[i]), i);
        BR_CHECK_EQ(tp_result(u[i]), 10 + i);
    }
    for (int i = 0; i < 4; i++)
        BR_CHECK_EQ(tp_result(b.kids[i]), 100 + i);
    BR_CHECK_OK(br_future_result(fg1, tp_guard(), NULL, NULL));
    BR_CHECK_OK(br_future_result(fg2, tp_guard(), NULL, NULL));
    BR_CHECK_OK(br_future_result(fb, tp_guard(), NULL, NULL));
    BR_CHECK_OK(br_executor_free(ex));
    br_test_futures_release(queued, nq);
    br_future_release(fg1);
    br_future_release(fg2);
    br_future_release(fb);
    tp_fk *all[3] = {&g1, &g2, &b};
    for (int i = 0; i < 3; i++) {
        br_future_release(all[i]->gate);
        br_future_release(all[i]->started);
    }
}

/* --- stress ------------------------------------------------------------------------------- */

typedef struct tp_stress {
    br_executor *ex;
    long n;          /* tasks per submitter */
    unsigned seed;
    br_future **fs;
    _Atomic long resolved; /* done-callbacks run */
    long failed;           /* calls that failed (checked in the test's thread) */
} tp_stress;

static _Atomic long tp_stress_sum;

static int tp_stress_task(br_task *t) {
    int64_t v = br_task_arg_i64(t);
    atomic_fetch_add(&tp_stress_sum, v);
    return br_task_return_i64(t, v);
}

static void tp_stress_done(br_future *f, void *arg) {
    (void)f;
    atomic_fetch_add(&((tp_stress *)arg)->resolved, 1);
}

static void *tp_stress_submitter(void *arg) {
    tp_stress *s = arg;
    unsigned seed = s->seed;
    for (long i = 0; i < s->n; i++) {
        if (br_submit_i64(s->ex, tp_stress_task, i + 1, &s->fs[i]) != 0) {
            s->failed = s->n - i; /* the rest were never submitted */
            break;
        }
        s->failed += br_future_add_done_callback(s->fs[i], tp_stress_done, s) != 0;
        if (rand_r(&seed) % 8 == 0) /* cancel a recent one: may or may not be running */
            br_future_cancel(s->fs[i - (i > 10 ? (long)(rand_r(&seed) % 10) : 0)]);
    }
    return NULL;
}

/* --- the FIFO's ring across pools (deque.c, rule 7) ---------------------------------- */

enum { RING_BACKLOG = 10000, RING_ROUNDS = 4, RING_THREADS = 3 };

typedef struct {
    br_future *started, *gate;
} ring_gate;

/* Says it started, holds its worker until the gate is done, then returns 7. */
static int ring_gate_task(br_task *t) {
    ring_gate *g = (ring_gate *)(uintptr_t)br_task_arg_i64(t);
    int rc = br_future_set_result_i64(g->started, 1);
    if (rc == 0)
        rc = br_future_wait(g->gate, br_deadline_after(br_test_hang_guard_ns()));
    return rc != 0 ? rc : br_task_return_i64(t, 7);
}

/* One pool of one worker, held by a gate task (started before anything else is
 * submitted) while RING_BACKLOG echoes of base + i queue behind it on the injection
 * stack, then let go: the worker moves them all to the FIFO at once, whose ring grows
 * to 16,384 slots. Returns the number of failed calls and wrong results (0), so that
 * threads other than the test's can use it. */
static size_t backlog_pool(int64_t base, br_future **f) {
    br_executor *ex = NULL;
    br_future *g = NULL;
    ring_gate rg = {NULL, NULL};
    br_future *gate = NULL;
    if (br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1}) != 0)
        return 1;
    size_t bad = br_future_new(&rg.started) != 0;
    bad += br_future_new(&rg.gate) != 0;
    gate = rg.gate;
    if (bad == 0)
        bad += br_submit_i64(ex, ring_gate_task, (int64_t)(uintptr_t)&rg, &g) != 0;
    if (bad == 0)
        bad += br_future_wait(rg.started, br_deadline_after(br_test_hang_guard_ns())) != 0;
    size_t n = 0;
    while (bad == 0 && n < RING_BACKLOG &&
           br_submit_i64(ex, tp_echo, base + (int64_t)n, &f[n]) == 0)
        n++;
    bad += n != RING_BACKLOG;
    if (gate != NULL)
        bad += br_future_set_result_i64(gate, 1) != 0;
    int64_t guard = br_deadline_after(br_test_hang_guard_ns());
    int64_t v = -1;
    if (g != NULL) {
        bad += br_future_result_i64(g, guard, &v) != 0 || v != 7;
        br_future_release(g);
    }
    for (size_t i = 0; i < n; i++) {
        v = -1;
        bad += br_future_result_i64(f[i], guard, &v) != 0 || v != base + (int64_t)i;
        br_future_release(f[i]);
    }
    bad += br_executor_free(ex) != 0; /* the gate task is done with rg */
    if (gate != NULL)
        br_future_release(gate);
    if (rg.started != NULL)
        br_future_release(rg.started);
    return bad;
}

/* The ring a pool's backlog grew is kept when the pool is freed, and the next pool
 * with that backlog takes it instead of fresh memory (a big ring is made once, in the
 * first pool, and taken by each later one); every task runs with its own value. */
static void threadpool_fifo_ring_reused_across_pools(void **state) {
    (void)state;
    br_future **f = malloc(RING_BACKLOG * sizeof *f);
    BR_CHECK(f != NULL);
    size_t made0, reused0, made1, reused1, made2, reused2;
    br__deque_ring_counts(&made0, &reused0);
    BR_CHECK_EQ(backlog_pool(0, f), 0);
    br__deque_ring_counts(&made1, &reused1);
    BR_CHECK(made1 + reused1 > made0 + reused0); /* the backlog needed a big ring */
    for (int r = 1; r <= 3; r++)
        BR_CHECK_EQ(backlog_pool((int64_t)r * RING_BACKLOG, f), 0);
    br__deque_ring_counts(&made2, &reused2);
    BR_CHECK_EQ(made2, made1); /* none made afresh after the first pool */
    BR_CHECK_EQ(reused2, reused1 + 3);
    free(f);
}

typedef struct {
    int id;
    size_t bad;
} ring_churn_arg;

static void *ring_churn(void *p) {
    ring_churn_arg *a = p;
    br_future **f = malloc(RING_BACKLOG * sizeof *f);
    if (f == NULL) {
        a->bad = 1;
        return NULL;
    }
    for (int round = 0; round < RING_ROUNDS; round++)
        a->bad += backlog_pool(((int64_t)a->id * RING_ROUNDS + round) * RING_BACKLOG, f);
    free(f);
    return NULL;
}

/* Threads making, filling and freeing pools at once trade the kept ring among
 * themselves (put and take race): every task of every pool runs once with its own
 * value, and nothing leaks (ASan). */
static void threadpool_fifo_ring_churn(void **state) {
    (void)state;
    pthread_t th[RING_THREADS];
    ring_churn_arg a[RING_THREADS];
    for (int i = 0; i < RING_THREADS; i++) {
        a[i] = (ring_churn_arg){.id = i};
        BR_CHECK_EQ(pthread_create(&th[i], NULL, ring_churn, &a[i]), 0);
    }
    for (int i = 0; i < RING_THREADS; i++) {
        pthread_join(th[i], NULL);
        BR_CHECK_EQ(a[i].bad, 0);
    }
    size_t made, reused;
    br__deque_ring_counts(&made, &reused);
    BR_CHECK(reused > 0); /* some pool grew into a ring another one left */
}

static void threadpool_stress(void **state) {
    (void)state;
    int before = br_test_thread_baseline();
    enum { S = 4 };
    long total = br_test_scaled(1000000, 20000);
    tp_stress s[S];
    pthread_t th[S];
    br_executor *ex = tp_new(&(br_threadpool_opts){.max_workers = 4});
    atomic_store(&tp_stress_sum, 0);
    for (int i = 0; i < S; i++) {
        s[i] = (tp_stress){.ex = ex, .n = total / S, .seed = 12345u + (unsigned)i};
        atomic_init(&s[i].resolved, 0);
        s[i].fs = calloc((size_t)s[i].n, sizeof *s[i].fs);
        BR_CHECK_EQ(pthread_create(&th[i], NULL, tp_stress_submitter, &s[i]), 0);
    }
    for (int i = 0; i < S; i++)
        BR_CHECK_EQ(pthread_join(th[i], NULL), 0);
    BR_CHECK_OK(br_executor_free(ex));
    for (int i = 0; i < S; i++)
        BR_CHECK_EQ(s[i].failed, 0);
    long finished_sum = 0, finished = 0, cancelled = 0;
    for (int i = 0; i < S; i++) {
        BR_CHECK_EQ(atomic_load(&s[i].resolved), s[i].n); /* each exactly once */
        for (long k = 0; k < s[i].n; k++) {
            br_future *f = s[i].fs[k];
            BR_CHECK(br_future_done(f));
            if (br_future_cancelled(f)) {
                cancelled++;
            } else {
                int64_t v = 0;
                BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
                BR_CHECK_EQ(v, k + 1);
                finished_sum += v;
                finished++;
            }
            br_future_release(f);
        }
        free(s[i].fs);
    }
    BR_CHECK_EQ(finished + cancelled, total / S * S);
    BR_CHECK_EQ(finished_sum, atomic_load(&tp_stress_sum)); /* ran xor cancelled */
    br_test_wait_threads(before);
}

BR_TEST_MAIN(BR_CONFORMANCE_TESTS, cmocka_unit_test(threadpool_lazy_start),
             cmocka_unit_test(threadpool_reuse_bounded),
             cmocka_unit_test(threadpool_second_worker_for_waiting_task),
             cmocka_unit_test(threadpool_default_max_workers),
             cmocka_unit_test(threadpool_name_prefix),
             cmocka_unit_test(threadpool_initializer_runs_once_per_worker),
             cmocka_unit_test(threadpool_initializer_failure_breaks_pool),
             cmocka_unit_test(threadpool_max_pending),
             cmocka_unit_test(threadpool_max_pending_shutdown_wakes),
             cmocka_unit_test(threadpool_max_pending_many),
             cmocka_unit_test(threadpool_free_with_blocked_submitters),
             cmocka_unit_test(threadpool_shutdown_nowait_then_free),
             cmocka_unit_test(threadpool_shutdown_cancel_futures),
             cmocka_unit_test(threadpool_shutdown_cancel_futures_cas),
             cmocka_unit_test(threadpool_cancel_requests_race),
             cmocka_unit_test(threadpool_shutdown_races_submit),
             cmocka_unit_test(threadpool_nested_submit),
             cmocka_unit_test(threadpool_single_worker_fifo),
             cmocka_unit_test(threadpool_fifo_start_order),
             cmocka_unit_test(threadpool_fifo_burst_to_idle_pool),
             cmocka_unit_test(threadpool_batch_start_order),
             cmocka_unit_test(threadpool_runs_no_loss),
             cmocka_unit_test(threadpool_run_not_held_by_long_task),
             cmocka_unit_test(threadpool_cancel_futures_claim_in_flight),
             cmocka_unit_test(threadpool_shutdown_wait_claim_in_flight),
             cmocka_unit_test(threadpool_shutdown_wait_mover_holds),
             cmocka_unit_test(threadpool_mover_waits_for_claims),
             cmocka_unit_test(threadpool_busy_mover_wakes_sleeper),
             cmocka_unit_test(threadpool_submit_while_the_worker_parks),
             cmocka_unit_test(threadpool_batch_then_submit_order),
             cmocka_unit_test(threadpool_runs_many_submitters),
             cmocka_unit_test(threadpool_batch_nested),
             cmocka_unit_test(threadpool_batch_closed),
             cmocka_unit_test(threadpool_parallel_for_exact),
             cmocka_unit_test(threadpool_parallel_for_error),
             cmocka_unit_test(threadpool_parallel_for_from_worker),
             cmocka_unit_test(threadpool_parallel_for_shut_down),
             cmocka_unit_test(threadpool_idle_workers_park),
             cmocka_unit_test(threadpool_exit_waits_for_non_daemon),
             cmocka_unit_test(threadpool_exit_abandons_daemon),
             cmocka_unit_test(threadpool_fork_child),
             cmocka_unit_test(threadpool_fork_child_completes_queued),
             cmocka_unit_test(threadpool_fifo_ring_reused_across_pools),
             cmocka_unit_test(threadpool_fifo_ring_churn),
             cmocka_unit_test(threadpool_stress))
