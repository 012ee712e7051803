/* Cancellation at every blocking point of the executor layer: a submit waiting for
 * room on a pool with max_pending (br_submit, br_submit_i64, br_submit_call), br_map_new
 * waiting for room for its first chunks, br_map_next / br_map_next_i64 waiting for the
 * head input or for room to top up; and the waits that must not be cancelled:
 * br_map_free, br_parallel_for, shutdown(wait).
 *
 * The calls run in a cancellable test context (tests/parker.h), a stand-in for a
 * coroutine. A cancelled submit returns BR_ECANCELED with nothing queued, no future and
 * the pool's bounded-submission counts (pending, bp_waiters, bp_inside) as before; a
 * cancelled next consumes no input, doesn't time the map out, and the next call reads
 * the same input; every input runs exactly once and is read exactly once. Tasks block
 * on gates (futures the test completes), never on sleeps; time limits are hang guards.
 *
 * braid-test-timeout: 120
 */
#include "cancel_util.h"

#include "executor/pool/for_tests.h"
#include "future/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static br_executor *pool_new(int workers, size_t max_pending) {
    br_executor *ex = NULL;
    BR_CHECK_OK(br_threadpool_new(
        &ex, &(br_threadpool_opts){.max_workers = workers, .max_pending = max_pending}));
    return ex;
}

static br_future *mk(void) {
    br_future *f = NULL;
    BR_CHECK_OK(br_future_new(&f));
    return f;
}

static void stats(br_executor *ex, struct br__threadpool_stats *st) {
    br__threadpool_stats(ex, st);
}

/* Polls until the pool has exactly `waiters` submitters parked for room. */
static void wait_bp_waiters(br_executor *ex, int waiters) {
    int64_t give_up = br_test_hang_guard();
    struct br__threadpool_stats st;
    for (;;) {
        stats(ex, &st);
        if (st.bp_waiters == waiters)
            return;
        if (br_now() > give_up)
            fail_msg("bp_waiters %d, want %d", st.bp_waiters, waiters);
        br_sleep(50 * BR_USEC);
    }
}

/* The pool's bounded-submission counts at rest: `pending` tasks queued, and no
 * submitter waiting for room or inside a bounded submit. */
static void check_bounded(br_executor *ex, int64_t pending) {
    struct br__threadpool_stats st;
    stats(ex, &st);
    BR_CHECK_EQ(st.pending, pending);
    BR_CHECK_EQ(st.bp_waiters, 0);
    BR_CHECK_EQ(st.bp_inside, 0);
}

/* --- tasks ------------------------------------------------------------------------ */

static _Atomic long runs; /* counted by count_task */

static int count_task(br_task *t) {
    (void)t;
    atomic_fetch_add(&runs, 1);
    return 0;
}

/* A blocker: reports that it started, then waits for its gate (a worker thread, so an
 * ordinary wait; the hang guard ends it if a failed check never opens the gate). */
typedef struct blocker {
    br_future *gate, *started;
} blocker;

static int blocker_task(br_task *t) {
    blocker *b = (blocker *)(uintptr_t)br_task_arg_i64(t);
    br_future_set_result_i64(b->started, 1);
    return br_future_wait(b->gate, br_test_hang_guard());
}

/* The pool's one worker kept busy by a blocker (bf its future, until b->gate opens);
 * filled, also a noop (filler) in the one pending slot behind it, so that the next
 * submit from outside has to wait for room. */
typedef struct busy {
    blocker *b;
    br_future *bf, *filler;
} busy;

static void busy_start(busy *w, br_executor *ex, bool fill) {
    w->b = calloc(1, sizeof *w->b);
    assert_non_null(w->b);
    w->b->gate = mk();
    w->b->started = mk();
    w->bf = w->filler = NULL;
    BR_CHECK_OK(br_submit_i64(ex, blocker_task, (int64_t)(uintptr_t)w->b, &w->bf));
    BR_CHECK_OK(br_future_wait(w->b->started, br_test_hang_guard()));
    if (fill) {
        BR_CHECK_OK(br_submit(ex, count_task, NULL, 0, &w->filler));
        struct br__threadpool_stats st;
        stats(ex, &st);
        BR_CHECK_EQ(st.pending, 1);
    }
}

/* Opens the blocker's gate: the worker goes on to what is queued. */
static void busy_open(busy *w) {
    BR_CHECK_OK(br_future_set_result_i64(w->b->gate, 1));
}

/* Releases the futures and the blocker (its task done or never to run). */
static void busy_end(busy *w) {
    if (w->filler)
        br_future_release(w->filler);
    br_future_release(w->bf);
    br_future_release(w->b->gate);
    br_future_release(w->b->started);
    free(w->b);
}

/* --- one call in a cancellable context, on its own thread ------------------------- */

/* A context must outlive every wake-up sent to it (core/lib.h, the parker contract):
 * here a worker thread may still be inside the parker's unpark, on the context, when
 * the call it woke has returned and the test has moved on. So contexts are never
 * freed: each comes from the heap and stays on a list (reachable, so not a leak). */
typedef struct ctx_node {
    struct ctx_node *next;
    br_test_ctx ctx;
} ctx_node;

static ctx_node *all_ctx;

static br_test_ctx *ctx_new(void) {
    ctx_node *n = calloc(1, sizeof *n); /* zeroed: BR_TEST_CTX_INIT */
    assert_non_null(n);
    n->next = all_ctx;
    all_ctx = n;
    return &n->ctx;
}

typedef struct ecall ecall;
struct ecall {
    br_test_ctx *ctx;  /* may be shared by calls made one after the other */
    br_test_call call; /* rc, and whether a cancel was pending when it returned */
    int (*fn)(ecall *c);
    br_executor *ex;
    int how; /* which submit */
    br_map *map;
    const int64_t *args;
    size_t count;
    br_map_opts opts;
    /* what came out */
    br_future *f;
    int64_t value;
    br_future **futs; /* br_submit_batch's out, `count` of them */
    size_t queued;
};

static int ecall_run(void *arg) {
    ecall *c = arg;
    return c->fn(c);
}

/* Starts fn in c's context (a new one unless c->ctx was set); with cancel_first, a
 * cancel is posted to that context first. */
static void ecall_start(ecall *c, int (*fn)(ecall *), bool cancel_first) {
    if (c->ctx == NULL)
        c->ctx = ctx_new();
    c->fn = fn;
    br_test_call_start(&c->call, c->ctx, ecall_run, c, cancel_first);
}

/* Starts fn and returns once it sleeps in a park. */
static void ecall_park(ecall *c, int (*fn)(ecall *)) {
    ecall_start(c, fn, false);
    br_test_call_wait_parked(&c->call);
}

/* Runs fn to its return: as is, or with a cancel posted before the call. */
static void ecall_run_to_end(ecall *c, int (*fn)(ecall *), bool cancel_first) {
    ecall_start(c, fn, cancel_first);
    br_test_call_join(&c->call);
}

enum { SUBMIT, SUBMIT_I64, SUBMIT_CALL, NSUBMITS };

static int do_submit(ecall *c) {
    c->f = (br_future *)(uintptr_t)1; /* each must set it */
    switch (c->how) {
    case SUBMIT:
        return br_submit(c->ex, count_task, NULL, 0, &c->f);
    case SUBMIT_I64:
        return br_submit_i64(c->ex, count_task, 5, &c->f);
    default:
        return br_submit_call(
            c->ex, &(br_call){.fn = count_task, .flags = BR_CALL_COPY_ARG}, &c->f);
    }
}

/* A batch of c->count count_tasks with futures in c->futs. */
static int do_batch(ecall *c) {
    c->queued = 12345;
    return br_submit_batch(c->ex, count_task, NULL, c->count, 0, c->futs, &c->queued);
}

/* --- submit waiting for room ------------------------------------------------------ */

/* Cancelled while parked for room: BR_ECANCELED, no future, nothing queued, the counts
 * as before; the pool goes on (a later submit waits for room and gets it), and only
 * the tasks that were submitted run. */
static void submit_cancelled_while_waiting(void **state) {
    (void)state;
    for (int how = 0; how < NSUBMITS; how++) {
        atomic_store(&runs, 0);
        br_executor *ex = pool_new(1, 1);
        busy w;
        busy_start(&w, ex, true);
        ecall c = {.ex = ex, .how = how};
        ecall_park(&c, do_submit);
        wait_bp_waiters(ex, 1);
        struct br__threadpool_stats st;
        stats(ex, &st);
        BR_CHECK_EQ(st.bp_inside, 1);
        br_test_call_cancel(&c.call);
        BR_CHECK(c.f == NULL);
        check_bounded(ex, 1);
        /* The pool goes on: another submit waits for the room the filler leaves. */
        ecall d = {.ex = ex, .how = how};
        ecall_park(&d, do_submit);
        wait_bp_waiters(ex, 1);
        busy_open(&w);
        br_test_call_join(&d.call);
        BR_CHECK_OK(d.call.rc);
        BR_CHECK(d.f != NULL);
        BR_CHECK_OK(br_future_wait(d.f, br_test_hang_guard()));
        BR_CHECK_OK(br_executor_shutdown(ex, true, false));
        BR_CHECK_EQ(atomic_load(&runs), 2); /* the filler and d's; never c's */
        check_bounded(ex, 0);
        BR_CHECK_OK(br_executor_free(ex));
        br_future_release(d.f);
        busy_end(&w);
    }
}

/* A cancel posted before: with room the submit goes through and the cancel stays
 * pending; on a full pool it is cancelled at its first park. */
static void submit_pending_cancel(void **state) {
    (void)state;
    atomic_store(&runs, 0);
    br_executor *ex = pool_new(1, 2);
    busy w;
    busy_start(&w, ex, true);
    ecall c = {.ex = ex, .how = SUBMIT};
    ecall_run_to_end(&c, do_submit, true); /* one slot left */
    BR_CHECK_OK(c.call.rc);
    br_test_check_cancel_kept(&c.call);
    br_future *first = c.f;
    for (int how = 0; how < NSUBMITS; how++) {
        c = (ecall){.ex = ex, .how = how};
        ecall_run_to_end(&c, do_submit, true); /* full */
        br_test_check_cancelled_at_once(&c.call);
        BR_CHECK(c.f == NULL);
    }
    check_bounded(ex, 2);
    busy_open(&w);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&runs), 2);
    BR_CHECK(br_future_done(first));
    br_future_release(first);
    busy_end(&w);
}

/* Two submitters parked for room, the first at the head; the first is cancelled as the
 * worker frees a slot. Either its task is queued (the cancel stays pending), or it is
 * cancelled having consumed no wake-up and the second gets the room. Both cases end
 * with every submitted task run once and no submitter stranded. */
static void submit_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(150, 20);
    for (long r = 0; r < rounds; r++) {
        atomic_store(&runs, 0);
        br_executor *ex = pool_new(1, 1);
        busy w;
        busy_start(&w, ex, true);
        ecall s1 = {.ex = ex, .how = (int)(r % NSUBMITS)}, s2 = {.ex = ex, .how = SUBMIT};
        ecall_park(&s1, do_submit);
        wait_bp_waiters(ex, 1);
        ecall_park(&s2, do_submit);
        wait_bp_waiters(ex, 2);
        BR_TEST_RACE_CANCEL(s1.ctx, r, busy_open(&w)); /* the filler's slot frees */
        br_test_call_join(&s1.call);
        br_test_call_join(&s2.call); /* never stranded: if s1 left, the room went to s2 */
        BR_CHECK_OK(s2.call.rc);
        long want = 2; /* the filler and s2's */
        if (br_test_wake_won(&s1.call)) {
            BR_CHECK(s1.f != NULL);
            want++;
        } else {
            BR_CHECK(s1.f == NULL);
        }
        BR_CHECK_OK(br_executor_shutdown(ex, true, false));
        BR_CHECK_EQ(atomic_load(&runs), want);
        check_bounded(ex, 0);
        BR_CHECK_OK(br_executor_free(ex));
        if (s1.f)
            br_future_release(s1.f);
        br_future_release(s2.f);
        busy_end(&w);
    }
}

/* A submitter with a cancel pending meets a full pool just as a slot frees: it gets
 * the slot (room at its first look, or at its second, after it linked itself: then it
 * leaves the queue by a park that must not consume the cancel) with the cancel still
 * pending, or it parks and is cancelled. Never a submit that both went through and
 * ate the cancel. */
static void submit_pending_cancel_races_room(void **state) {
    (void)state;
    long rounds = br_test_scaled(300, 30);
    atomic_store(&runs, 0);
    br_executor *ex = pool_new(1, 1);
    long want = 0;
    for (long r = 0; r < rounds; r++) {
        struct br__threadpool_stats st;
        int64_t give_up = br_test_hang_guard();
        do { /* the last round's tasks are out of the queue */
            BR_CHECK(br_now() < give_up);
            stats(ex, &st);
        } while (st.pending != 0);
        busy w;
        busy_start(&w, ex, true);
        ecall c = {.ex = ex, .how = (int)(r % NSUBMITS)};
        ecall_start(&c, do_submit, true);
        int64_t until = br_now() + (r % 5) * 10 * BR_USEC;
        while (br_now() < until)
            br__cpu_relax();
        busy_open(&w);
        br_test_call_join(&c.call);
        want++; /* the filler */
        if (c.call.rc == 0) {
            BR_CHECK(c.call.pending);
            BR_CHECK(c.f != NULL);
            BR_CHECK_OK(br_future_wait(c.f, br_test_hang_guard()));
            br_future_release(c.f);
            want++;
        } else {
            br_test_check_cancelled(&c.call);
            BR_CHECK(c.f == NULL);
        }
        BR_CHECK_OK(br_future_wait(w.filler, br_test_hang_guard()));
        busy_end(&w);
    }
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    BR_CHECK_EQ(atomic_load(&runs), want);
    check_bounded(ex, 0);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- map -------------------------------------------------------------------------- */

/* Input i: waits for gates[i] if that gate is set, counts its run, returns 100 + i. */
enum { MAXIN = 64 };
static br_future *gates[MAXIN];
static _Atomic int started[MAXIN], ran[MAXIN];

static int input_task(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    if (i < 0 || i >= MAXIN)
        return BR_EINVAL;
    atomic_store(&started[i], 1);
    if (gates[i] != NULL) {
        int rc = br_future_wait(gates[i], br_test_hang_guard());
        if (rc != 0)
            return rc;
    }
    atomic_fetch_add(&ran[i], 1);
    return br_task_return_i64(t, 100 + i);
}

static int64_t inputs[MAXIN];

static void map_reset(bool gated, size_t n) {
    for (size_t i = 0; i < MAXIN; i++) {
        inputs[i] = (int64_t)i;
        atomic_store(&started[i], 0);
        atomic_store(&ran[i], 0);
        gates[i] = NULL;
        if (gated && i < n)
            gates[i] = mk();
    }
}

static void map_unset_gates(void) {
    for (size_t i = 0; i < MAXIN; i++) {
        if (gates[i]) {
            br_future_set_result_i64(gates[i], 1); /* BR_ESTATE if already open: fine */
            br_future_release(gates[i]);
            gates[i] = NULL;
        }
    }
}

static int do_map_new(ecall *c) {
    return br_map_new(&c->map, c->ex, input_task, c->args, c->count, sizeof(int64_t),
                      &c->opts);
}

static int do_map_next_i64(ecall *c) {
    c->value = -1;
    return br_map_next_i64(c->map, &c->value);
}

static int do_map_next(ecall *c) {
    const void *data = NULL;
    size_t len = 0;
    c->value = -1;
    int rc = br_map_next(c->map, &data, &len);
    if (rc == 0 && data != NULL && len == sizeof(int64_t))
        memcpy(&c->value, data, sizeof c->value);
    return rc;
}

/* Each of inputs 0..n-1 ran `times` times. */
static void check_ran(size_t n, int times) {
    for (size_t i = 0; i < n; i++)
        BR_CHECK_EQ(atomic_load(&ran[i]), times);
}

/* Reads the rest of m in ctx (no cancel pending), from input `from` to BR_EOF, frees
 * it, and checks that every one of its n inputs ran once. */
static void finish_map(br_map *m, br_test_ctx *ctx, size_t from, size_t n) {
    for (size_t i = from; i < n; i++) {
        ecall c = {.ctx = ctx, .map = m};
        ecall_run_to_end(&c, (i & 1) ? do_map_next : do_map_next_i64, false);
        BR_CHECK_OK(c.call.rc);
        BR_CHECK_EQ(c.value, 100 + (int64_t)i);
    }
    ecall c = {.ctx = ctx, .map = m};
    ecall_run_to_end(&c, do_map_next_i64, false);
    BR_CHECK_ERR(c.call.rc, BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    check_ran(n, 1);
}

/* next() cancelled while it waits for the head input: BR_ECANCELED, and the next call
 * reads the same input; the map isn't timed out (it has a deadline, far off), no input
 * is skipped, cancelled or run twice. */
static void map_next_cancelled_waiting_for_input(void **state) {
    (void)state;
    enum { N = 6 };
    for (size_t chunksize = 1; chunksize <= 2; chunksize++) {
        map_reset(false, N);
        gates[0] = mk();
        br_executor *ex = pool_new(2, 0);
        br_map *m = NULL;
        BR_CHECK_OK(br_map_new(
            &m, ex, input_task, inputs, N, sizeof(int64_t),
            &(br_map_opts){.chunksize = chunksize, .deadline = br_test_hang_guard()}));
        br_test_ctx *ctx = ctx_new();
        for (int round = 0; round < 2; round++) { /* twice: a cancel changes nothing */
            ecall c = {.ctx = ctx, .map = m};
            ecall_park(&c, round ? do_map_next : do_map_next_i64);
            br_test_call_cancel(&c.call);
        }
        BR_CHECK_EQ(atomic_load(&ran[0]), 0);
        BR_CHECK_OK(br_future_set_result_i64(gates[0], 1));
        finish_map(m, ctx, 0, N);
        BR_CHECK_OK(br_executor_free(ex));
        map_unset_gates();
    }
}

/* next() cancelled in a top-up's submit, waiting for room: BR_ECANCELED; the chunk it
 * was submitting is taken back and submitted again by a later call; every input runs
 * once and is read once, in order. */
static void map_next_cancelled_in_topup(void **state) {
    (void)state;
    enum { N = 6 };
    for (size_t chunksize = 1; chunksize <= 2; chunksize++) {
        map_reset(false, N);
        br_executor *ex = pool_new(1, 1);
        busy w;
        busy_start(&w, ex, false);
        /* buffersize 1: new() submits the first chunk (which takes the one slot), the
         * first next() tops up with the second and has to wait for room. */
        br_map *m = NULL;
        BR_CHECK_OK(br_map_new(&m, ex, input_task, inputs, N, sizeof(int64_t),
                               &(br_map_opts){.chunksize = chunksize, .buffersize = 1}));
        br_test_ctx *ctx = ctx_new();
        ecall c = {.ctx = ctx, .map = m};
        ecall_park(&c, do_map_next_i64);
        wait_bp_waiters(ex, 1);
        br_test_call_cancel(&c.call);
        check_bounded(ex, 1); /* the first chunk only */
        busy_open(&w);
        finish_map(m, ctx, 0, N);
        BR_CHECK_OK(br_executor_free(ex));
        busy_end(&w);
    }
}

/* br_map_new cancelled waiting for room for its first chunk: BR_ECANCELED, no map,
 * nothing run. Cancelled at a later chunk: the map is made with what was queued, the
 * cancel stays pending (and ends the next wait), and the map then reads every input
 * once, in order. */
static void map_new_cancelled_waiting_for_room(void **state) {
    (void)state;
    enum { N = 6 };
    map_reset(false, N);
    br_executor *ex = pool_new(1, 1);
    busy w;
    busy_start(&w, ex, true);
    ecall c = {.ex = ex, .args = inputs, .count = N, .opts = {.buffersize = 3}};
    ecall_park(&c, do_map_new);
    wait_bp_waiters(ex, 1);
    br_test_call_cancel(&c.call);
    BR_CHECK(c.map == NULL);
    busy_open(&w);
    BR_CHECK_OK(br_executor_free(ex));
    check_ran(N, 0);
    busy_end(&w);

    /* Room for one chunk: the second one waits. */
    map_reset(false, N);
    ex = pool_new(1, 1);
    busy_start(&w, ex, false);
    br_test_ctx *ctx = ctx_new();
    c = (ecall){
        .ctx = ctx, .ex = ex, .args = inputs, .count = N, .opts = {.buffersize = 3}};
    ecall_park(&c, do_map_new);
    wait_bp_waiters(ex, 1);
    br_test_ctx_cancel(ctx);
    br_test_call_join(&c.call);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK(c.map != NULL);
    BR_CHECK(c.call.pending); /* posted again: br_map_new could not report it */
    check_bounded(ex, 1);
    br_map *m = c.map;
    ecall d = {.ctx = ctx, .map = m};
    ecall_run_to_end(&d, do_map_next_i64, false); /* the pending cancel ends its wait */
    br_test_check_cancelled(&d.call);
    busy_open(&w);
    finish_map(m, ctx, 0, N);
    BR_CHECK_OK(br_executor_free(ex));
    busy_end(&w);
}

/* A cancel posted before next(): a result already there is returned and the cancel
 * stays pending; a next() that must wait is cancelled at once, and the input is read
 * by the call after. */
static void map_next_pending_cancel(void **state) {
    (void)state;
    enum { N = 3 };
    map_reset(false, N);
    gates[1] = mk();
    br_executor *ex = pool_new(2, 0);
    br_map *m = NULL;
    BR_CHECK_OK(br_map_new(&m, ex, input_task, inputs, N, sizeof(int64_t), NULL));
    br_test_ctx *ctx = ctx_new();
    int64_t give_up = br_test_hang_guard();
    while (atomic_load(&ran[0]) == 0) { /* input 0 done (its result a moment later) */
        BR_CHECK(br_now() < give_up);
        br_sleep(50 * BR_USEC);
    }
    ecall c;
    do { /* until input 0's future is done: a next() that parks takes nothing */
        BR_CHECK(br_now() < give_up);
        c = (ecall){.ctx = ctx, .map = m};
        ecall_run_to_end(&c, do_map_next_i64, true);
    } while (c.call.rc == BR_ECANCELED);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK_EQ(c.value, 100);
    BR_CHECK(c.call.pending);
    /* Input 1 is gated: this next() parks, and the cancel still pending ends it. */
    c = (ecall){.ctx = ctx, .map = m};
    ecall_run_to_end(&c, do_map_next_i64, false);
    br_test_check_cancelled(&c.call);
    BR_CHECK_OK(br_future_set_result_i64(gates[1], 1));
    finish_map(m, ctx, 1, N);
    BR_CHECK_OK(br_executor_free(ex));
    map_unset_gates();
}

/* Each input's completion races a cancel of the next() waiting for it: the next()
 * reads it with the cancel pending, or is cancelled and the next call reads it. Every
 * input is read exactly once, in order. */
static void map_next_wake_races_cancel(void **state) {
    (void)state;
    size_t n = (size_t)br_test_scaled(MAXIN, 16);
    if (n > MAXIN)
        n = MAXIN;
    for (size_t chunksize = 1; chunksize <= 2; chunksize++) {
        map_reset(true, n);
        br_executor *ex = pool_new(2, 0);
        br_map *m = NULL;
        BR_CHECK_OK(br_map_new(&m, ex, input_task, inputs, n, sizeof(int64_t),
                               &(br_map_opts){.chunksize = chunksize, .buffersize = 4}));
        for (size_t i = 0; i < n; i++) {
            ecall c = {.map = m}; /* a fresh context for each input */
            ecall_park(&c, do_map_next_i64);
            BR_TEST_RACE_CANCEL(c.ctx, (long)i,
                                BR_CHECK_OK(br_future_set_result_i64(gates[i], 1)));
            br_test_call_join(&c.call);
            if (br_test_wake_won(&c.call)) {
                BR_CHECK_EQ(c.value, 100 + (int64_t)i);
            } else {
                ecall d = {.map = m}; /* the same input, next time */
                ecall_run_to_end(&d, do_map_next_i64, false);
                BR_CHECK_OK(d.call.rc);
                BR_CHECK_EQ(d.value, 100 + (int64_t)i);
            }
        }
        finish_map(m, ctx_new(), n, n); /* nothing left to read: BR_EOF */
        BR_CHECK_OK(br_executor_free(ex));
        map_unset_gates();
    }
}

/* --- the waits that can't be cancelled -------------------------------------------- */

static int do_map_free(ecall *c) {
    return br_map_free(c->map);
}

/* br_map_free in a context with a cancel pending (and another posted while it waits)
 * still waits for the running input, which borrows the args; the cancel stays
 * pending. */
static void map_free_is_not_cancelled(void **state) {
    (void)state;
    enum { N = 4 };
    map_reset(false, N);
    gates[0] = mk();
    br_executor *ex = pool_new(1, 0);
    br_map *m = NULL;
    BR_CHECK_OK(br_map_new(&m, ex, input_task, inputs, N, sizeof(int64_t), NULL));
    int64_t give_up = br_test_hang_guard();
    while (!atomic_load(&started[0])) { /* running: free can't cancel it, must wait */
        BR_CHECK(br_now() < give_up);
        br_sleep(50 * BR_USEC);
    }
    ecall c = {.map = m};
    ecall_start(&c, do_map_free, true);
    br_test_call_wait_nocancel_park(&c.call);
    br_test_ctx_cancel(c.ctx);
    BR_CHECK_OK(br_future_set_result_i64(gates[0], 1));
    br_test_call_join(&c.call);
    br_test_check_cancel_ignored(&c.call);
    BR_CHECK_EQ(atomic_load(&ran[0]), 1); /* it ran to the end before free returned */
    BR_CHECK_OK(br_executor_free(ex));
    for (size_t i = 1; i < N; i++)
        BR_CHECK(atomic_load(&ran[i]) <= 1); /* the rest: cancelled unrun, or run once */
    map_unset_gates();
}

/* br_parallel_for in a context with a cancel pending waits for its started helpers
 * (they use its stack) however many cancels come; every index is done once. */
typedef struct pfor_job {
    pthread_t caller;
    _Atomic int helper_started;
    br_future *gate;
    _Atomic int done[64];
} pfor_job;

static pfor_job pj;

static int pfor_chunk(int64_t lo, int64_t hi, void *ctx) {
    pfor_job *j = ctx;
    if (!pthread_equal(pthread_self(), j->caller)) {
        if (atomic_exchange(&j->helper_started, 1) == 0)
            br_future_wait(j->gate,
                           br_test_hang_guard()); /* the first helper chunk holds on */
    } else {
        int64_t give_up =
            br_test_hang_guard(); /* the caller lets a helper take a chunk first */
        while (!atomic_load(&j->helper_started) && br_now() < give_up)
            sched_yield();
    }
    for (int64_t i = lo; i < hi; i++)
        atomic_fetch_add(&j->done[i], 1);
    return 0;
}

static int do_pfor(ecall *c) {
    pj.caller = pthread_self();
    return br_parallel_for(c->ex, 0, 64, 1, pfor_chunk, &pj);
}

static void parallel_for_is_not_cancelled(void **state) {
    (void)state;
    if (br_cpu_count() < 2)
        skip(); /* no helpers with one CPU: nothing to wait for */
    memset(&pj, 0, sizeof pj);
    pj.gate = mk();
    br_executor *ex = pool_new(2, 0);
    ecall c = {.ex = ex};
    ecall_start(&c, do_pfor, true);
    br_test_call_wait_nocancel_park(&c.call);
    br_test_ctx_cancel(c.ctx);
    BR_CHECK_OK(br_future_set_result_i64(pj.gate, 1));
    br_test_call_join(&c.call);
    br_test_check_cancel_ignored(&c.call);
    for (int i = 0; i < 64; i++)
        BR_CHECK_EQ(atomic_load(&pj.done[i]), 1);
    BR_CHECK_OK(br_executor_free(ex));
    br_future_release(pj.gate);
}

/* shutdown(wait) in a context with a cancel pending: it waits (uncancellably) for a
 * submitter that its shutdown woke to leave the pool, and returns 0 with the cancel
 * still pending. */
static _Atomic int hook_hold, hook_entered;

static void holding_hook(void) {
    atomic_store(&hook_entered, 1);
    int64_t give_up = br_test_hang_guard();
    while (atomic_load(&hook_hold) && br_now() < give_up)
        sched_yield();
}

static int submit_noop(void *ex) {
    return br_submit(ex, count_task, NULL, 0, NULL);
}

static int do_shutdown_wait(ecall *c) {
    return br_executor_shutdown(c->ex, true, false);
}

static void shutdown_wait_is_not_cancelled(void **state) {
    (void)state;
    atomic_store(&runs, 0);
    br_executor *ex = pool_new(1, 1);
    busy w;
    busy_start(&w, ex, true);
    atomic_store(&hook_hold, 1);
    atomic_store(&hook_entered, 0);
    br__pool_bp_woken_hook = holding_hook;
    br_test_call s; /* a plain thread's submit, waiting for room */
    br_test_call_start(&s, NULL, submit_noop, ex, false);
    wait_bp_waiters(ex, 1);
    ecall c = {.ex = ex};
    ecall_start(&c, do_shutdown_wait, true); /* wakes s, which then holds in the hook */
    int64_t give_up = br_test_hang_guard();
    while (!atomic_load(&hook_entered)) { /* woken by the shutdown: the pool is closed */
        BR_CHECK(br_now() < give_up);
        br_sleep(50 * BR_USEC);
    }
    busy_open(&w);                            /* the worker can finish */
    br_test_call_wait_nocancel_park(&c.call); /* shutdown waits for s to leave */
    br_test_ctx_cancel(c.ctx);
    atomic_store(&hook_hold, 0);
    br_test_call_join(&c.call);
    br_test_call_join(&s);
    br__pool_bp_woken_hook = NULL;
    br_test_check_cancel_ignored(&c.call);
    BR_CHECK_ERR(s.rc, BR_ESHUTDOWN);
    check_bounded(ex, 0);
    BR_CHECK_EQ(atomic_load(&runs), 1); /* the filler */
    BR_CHECK_OK(br_executor_free(ex));
    busy_end(&w);
}

/* --- br_submit_batch waiting for room ---------------------------------------------- */

enum { BATCH_N = 7 };

/* A batch bigger than the room: it queues what fits (max_pending 2 behind the busy
 * worker), parks for the rest and takes the room as it frees up; every task runs
 * once. */
static void batch_waits_for_room(void **state) {
    (void)state;
    atomic_store(&runs, 0);
    br_executor *ex = pool_new(1, 2);
    busy w;
    busy_start(&w, ex, false);
    br_future *futs[BATCH_N];
    ecall c = {.ex = ex, .count = BATCH_N, .futs = futs};
    ecall_park(&c, do_batch);
    wait_bp_waiters(ex, 1);
    struct br__threadpool_stats st;
    stats(ex, &st);
    busy_open(&w);
    br_test_call_join(&c.call); /* joined before any check: a failed one leaks no thread */
    BR_CHECK_EQ(st.pending, 2); /* the first two went in at once */
    BR_CHECK_OK(c.call.rc);
    BR_CHECK_EQ(c.queued, BATCH_N);
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    for (int i = 0; i < BATCH_N; i++) {
        BR_CHECK(futs[i] != NULL && br_future_done(futs[i]));
        BR_CHECK_OK(br_future_result(futs[i], BR_NOWAIT, NULL, NULL));
        br_future_release(futs[i]);
    }
    BR_CHECK_EQ(atomic_load(&runs), BATCH_N);
    check_bounded(ex, 0);
    BR_CHECK_OK(br_executor_free(ex));
    busy_end(&w);
}

/* Cancelled, or the pool shut down, while the batch waits for room: the tasks queued
 * before stay queued and run (their futures in out, *queued says how many); the rest
 * never run and have no future; the counts are back at rest. */
static void batch_interrupted_while_waiting(void **state) {
    (void)state;
    for (int shut = 0; shut < 2; shut++) {
        atomic_store(&runs, 0);
        br_executor *ex = pool_new(1, 2);
        busy w;
        busy_start(&w, ex, false);
        br_future *futs[BATCH_N];
        ecall c = {.ex = ex, .count = BATCH_N, .futs = futs};
        ecall_park(&c, do_batch);
        wait_bp_waiters(ex, 1);
        if (shut) {
            BR_CHECK_OK(br_executor_shutdown(ex, false, false));
            br_test_call_join(&c.call);
            BR_CHECK_ERR(c.call.rc, BR_ESHUTDOWN);
        } else {
            br_test_call_cancel(&c.call);
            check_bounded(ex, 2);
        }
        BR_CHECK_EQ(c.queued, 2);
        for (int i = 2; i < BATCH_N; i++)
            BR_CHECK(futs[i] == NULL);
        busy_open(&w);
        BR_CHECK_OK(br_executor_shutdown(ex, true, false));
        for (int i = 0; i < 2; i++) {
            BR_CHECK(futs[i] != NULL);
            BR_CHECK_OK(br_future_result(futs[i], BR_NOWAIT, NULL, NULL));
            br_future_release(futs[i]);
        }
        BR_CHECK_EQ(atomic_load(&runs), 2);
        check_bounded(ex, 0);
        BR_CHECK_OK(br_executor_free(ex));
        busy_end(&w);
    }
}

/* A cancel posted before: a batch that finds room for all goes through and leaves the
 * cancel pending; one that finds the pool full is cancelled at its first park, with
 * nothing queued. */
static void batch_pending_cancel(void **state) {
    (void)state;
    atomic_store(&runs, 0);
    br_executor *ex = pool_new(1, 3);
    busy w;
    busy_start(&w, ex, false);
    br_future *futs[BATCH_N];
    ecall c = {.ex = ex, .count = 3, .futs = futs};
    ecall_run_to_end(&c, do_batch, true);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK_EQ(c.queued, 3);
    br_test_check_cancel_kept(&c.call);
    br_future *kept[3] = {futs[0], futs[1], futs[2]};
    c = (ecall){.ex = ex, .count = 2, .futs = futs};
    ecall_run_to_end(&c, do_batch, true);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK_EQ(c.queued, 0);
    BR_CHECK(futs[0] == NULL && futs[1] == NULL);
    check_bounded(ex, 3);
    busy_open(&w);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&runs), 3);
    for (int i = 0; i < 3; i++) {
        BR_CHECK(br_future_done(kept[i]));
        br_future_release(kept[i]);
    }
    busy_end(&w);
}

BR_TEST_MAIN(cmocka_unit_test(batch_waits_for_room),
             cmocka_unit_test(batch_interrupted_while_waiting),
             cmocka_unit_test(batch_pending_cancel),
             cmocka_unit_test(submit_cancelled_while_waiting),
             cmocka_unit_test(submit_pending_cancel),
             cmocka_unit_test(submit_wake_races_cancel),
             cmocka_unit_test(submit_pending_cancel_races_room),
             cmocka_unit_test(map_next_cancelled_waiting_for_input),
             cmocka_unit_test(map_next_cancelled_in_topup),
             cmocka_unit_test(map_new_cancelled_waiting_for_room),
             cmocka_unit_test(map_next_pending_cancel),
             cmocka_unit_test(map_next_wake_races_cancel),
             cmocka_unit_test(map_free_is_not_cancelled),
             cmocka_unit_test(parallel_for_is_not_cancelled),
             cmocka_unit_test(shutdown_wait_is_not_cancelled))
