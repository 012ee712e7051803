/* The combinators (br_gather, br_wait_for, br_shield, TaskGroup, br_to_thread) from
 * threads, on thread-pool futures and hand-completed ones; and from coroutines, on
 * tasks of a loop. No sleep decides an outcome: a task that must still be running when
 * something happens waits on an event the test sets afterwards. */
#include "harness.h"

#include <braid/aio.h>

#include <string.h>


static br_executor *pool_new(int workers) {
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = workers}));
    return ex;
}

/* Returns its argument * 10, or fails with it if negative. */
static int times_ten(br_task *t) {
    int64_t v = br_task_arg_i64(t);
    if (v < 0)
        return br_task_fail(t, (int)v, "negative %lld", (long long)v);
    return br_task_return_i64(t, v * 10);
}

/* Waits for the event whose address is its argument, then returns 7; BR_ECANCELED once
 * cancelled (a pool task is a thread: it looks at br_task_cancelled between waits). */
static int gate_task(br_task *t) {
    br_event *ev = *(br_event *const *)br_task_arg(t, NULL);
    while (!br_event_is_set(ev)) {
        if (br_task_cancelled(t))
            return BR_ECANCELED;
        (void)br_event_wait(ev, br_deadline_after(1000000));
    }
    return br_task_return_i64(t, 7);
}

static br_future *submit_gate(br_executor *ex, br_event **evp) {
    br_future *f;
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = gate_task, .arg = evp, .len = sizeof *evp,
                                              .flags = BR_CALL_COPY_ARG},
                               &f));
    return f;
}

static int64_t result_i64(br_future *f) {
    int64_t v = -1;
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    return v;
}

/* --- gather -------------------------------------------------------------------- */

static void gather_all_succeed(void **state) {
    (void)state;
    enum { N = 16 };
    br_executor *ex = pool_new(4);
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, times_ten, i, &fs[i]));
    BR_CHECK_OK(br_gather(fs, N, false, br_test_hang_guard()));
    for (int i = 0; i < N; i++) {
        BR_CHECK(br_future_done(fs[i]));
        BR_CHECK_EQ(result_i64(fs[i]), i * 10);
    }
    BR_CHECK_OK(br_gather(fs, N, true, BR_NOWAIT));
    br_test_futures_release(fs, N);
    BR_CHECK_OK(br_executor_free(ex));
}

static void gather_first_failure_returns_early(void **state) {
    (void)state;
    br_executor *ex = pool_new(2);
    br_event ev;
    BR_CHECK_OK(br_event_init(&ev));
    br_event *evp = &ev;
    br_future *fs[2];
    fs[0] = submit_gate(ex, &evp);
    BR_CHECK_OK(br_submit_i64(ex, times_ten, BR_EIO, &fs[1]));
    /* returns with the failure while the other is still blocked on the event */
    BR_CHECK_ERR(br_gather(fs, 2, false, br_test_hang_guard()), BR_EIO);
    BR_CHECK(!br_future_done(fs[0]));
    BR_CHECK(!br_future_cancelled(fs[0])); /* the others keep running */
    BR_CHECK_OK(br_event_set(&ev));
    /* return_errors: waits for all, then 0; each outcome is the future's */
    BR_CHECK_OK(br_gather(fs, 2, true, br_test_hang_guard()));
    BR_CHECK_EQ(result_i64(fs[0]), 7);
    BR_CHECK_ERR(br_future_result(fs[1], BR_NOWAIT, NULL, NULL), BR_EIO);
    br_test_futures_release(fs, 2);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&ev));
}

static void gather_deadline_cancels_nothing(void **state) {
    (void)state;
    br_future *fs[3];
    br_test_futures_new(fs, 3);
    BR_CHECK_OK(br_future_set_result_i64(fs[1], 1));
    for (int mode = 0; mode < 2; mode++) {
        BR_CHECK_ERR(br_gather(fs, 3, mode, BR_NOWAIT), BR_ETIMEDOUT);
        BR_CHECK_ERR(br_gather(fs, 3, mode, br_deadline_after(1000000)), BR_ETIMEDOUT);
        BR_CHECK_EQ(br_future_state_of(fs[0]), BR_FUTURE_PENDING);
        BR_CHECK_EQ(br_future_state_of(fs[2]), BR_FUTURE_PENDING);
    }
    /* completing them afterwards: the callbacks of the timed-out gathers run harmlessly */
    BR_CHECK_OK(br_future_set_result_i64(fs[0], 0));
    BR_CHECK_OK(br_future_set_result_i64(fs[2], 2));
    BR_CHECK_OK(br_gather(fs, 3, false, BR_NOWAIT));
    br_test_futures_release(fs, 3);
}

static void gather_cancelled_child(void **state) {
    (void)state;
    br_future *fs[3];
    br_test_futures_new(fs, 3);
    BR_CHECK(br_future_cancel(fs[1]));
    /* as asyncio.gather: a cancelled child ends a gather without return_exceptions */
    BR_CHECK_ERR(br_gather(fs, 3, false, br_test_hang_guard()), BR_ECANCELED);
    BR_CHECK_EQ(br_future_state_of(fs[0]), BR_FUTURE_PENDING);
    BR_CHECK_OK(br_future_set_exception(fs[0], BR_EIO, NULL));
    BR_CHECK_OK(br_future_set_result_i64(fs[2], 2));
    BR_CHECK_OK(br_gather(fs, 3, true, BR_NOWAIT));
    br_test_futures_release(fs, 3);
}

static void gather_duplicates_and_bad_input(void **state) {
    (void)state;
    br_future *f;
    BR_CHECK_OK(br_future_new(&f));
    br_future *fs[3] = {f, f, f};
    BR_CHECK_ERR(br_gather(fs, 3, false, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_future_set_result_i64(f, 5));
    BR_CHECK_OK(br_gather(fs, 3, false, BR_NOWAIT));
    BR_CHECK_OK(br_gather(NULL, 0, false, BR_NOWAIT));
    BR_CHECK_ERR(br_gather(NULL, 2, false, BR_NOWAIT), BR_EINVAL);
    br_future *withnull[2] = {f, NULL};
    BR_CHECK_ERR(br_gather(withnull, 2, true, BR_NOWAIT), BR_EINVAL);
    br_future_release(f);
}

/* A future completed by another thread while gather waits: the gather wakes. */
static void complete_later(void *p) {
    br_future **fs = p;
    (void)br_test_until_listener(fs, 1);
    (void)br_future_set_result_i64(fs[0], 1);
}

static void gather_woken_by_thread(void **state) {
    (void)state;
    br_future *fs[2];
    br_test_futures_new(fs, 2);
    BR_CHECK_OK(br_future_set_result_i64(fs[1], 2));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, complete_later, fs, NULL));
    BR_CHECK_OK(br_gather(fs, 2, false, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_join(th, BR_FOREVER));
    BR_CHECK_OK(br_thread_free(th));
    BR_CHECK_EQ(result_i64(fs[0]) + result_i64(fs[1]), 3);
    br_test_futures_release(fs, 2);
}

/* --- wait_for ------------------------------------------------------------------- */

static void wait_for_outcomes(void **state) {
    (void)state;
    br_executor *ex = pool_new(2);
    br_future *ok, *bad;
    BR_CHECK_OK(br_submit_i64(ex, times_ten, 4, &ok));
    BR_CHECK_OK(br_submit_i64(ex, times_ten, BR_EPIPE, &bad));
    BR_CHECK_OK(br_wait_for(ok, br_test_hang_guard()));
    BR_CHECK_EQ(result_i64(ok), 40);
    BR_CHECK_ERR(br_wait_for(bad, br_test_hang_guard()), BR_EPIPE);
    BR_CHECK_ERR(br_wait_for(NULL, BR_NOWAIT), BR_EINVAL);
    br_future_release(ok);
    br_future_release(bad);
    BR_CHECK_OK(br_executor_free(ex));
}

static void wait_for_timeout_cancels(void **state) {
    (void)state;
    br_executor *ex = pool_new(1);
    br_event ev;
    BR_CHECK_OK(br_event_init(&ev));
    br_event *evp = &ev;
    br_future *f = submit_gate(ex, &evp);
    BR_CHECK_ERR(br_wait_for(f, br_deadline_after(1000000)), BR_ETIMEDOUT);
    /* the cancel has landed when wait_for returns */
    BR_CHECK(br_future_done(f));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);

    /* a hand future, never started: cancelled at once */
    BR_CHECK_OK(br_future_new(&f));
    BR_CHECK_ERR(br_wait_for(f, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&ev));
}

/* A task that ignores the cancel and finishes: wait_for reports its result, not a
 * timeout (nothing is lost). It says it started first, so that the timeout finds it
 * running (a pending one would simply be cancelled). */
typedef struct two_events {
    br_event *started, *idle;
} two_events;

static int ignores_cancel(br_task *t) {
    const two_events *e = br_task_arg(t, NULL);
    BR_CHECK_OK(br_event_set(e->started));
    while (!br_task_cancelled(t))
        (void)br_event_wait(e->idle, br_deadline_after(1000000));
    return br_task_return_i64(t, 99);
}

static void wait_for_result_after_cancel_kept(void **state) {
    (void)state;
    br_executor *ex = pool_new(1);
    br_event started, idle;
    BR_CHECK_OK(br_event_init(&started));
    BR_CHECK_OK(br_event_init(&idle));
    two_events e = {&started, &idle};
    br_future *f;
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = ignores_cancel, .arg = &e,
                                              .len = sizeof e, .flags = BR_CALL_COPY_ARG},
                               &f));
    BR_CHECK_OK(br_event_wait(&started, br_test_hang_guard()));
    BR_CHECK_OK(br_wait_for(f, br_deadline_after(1000000)));
    BR_CHECK_EQ(result_i64(f), 99);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&started));
    BR_CHECK_OK(br_event_destroy(&idle));
}

/* --- shield ----------------------------------------------------------------------- */

static void shield_cancel_outer_keeps_inner(void **state) {
    (void)state;
    br_future *inner, *outer;
    BR_CHECK_OK(br_future_new(&inner));
    BR_CHECK_OK(br_shield(inner, &outer));
    BR_CHECK(br_future_cancel(outer));
    BR_CHECK(br_future_cancelled(outer));
    BR_CHECK_EQ(br_future_state_of(inner), BR_FUTURE_PENDING);
    BR_CHECK_OK(br_future_set_result_i64(inner, 3));
    BR_CHECK_EQ(result_i64(inner), 3);
    BR_CHECK(br_future_cancelled(outer));
    br_future_release(outer);
    br_future_release(inner);
}

static void shield_passes_outcomes(void **state) {
    (void)state;
    br_future *inner, *outer;
    /* bytes, longer than the inline buffer */
    char text[100];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = 0;
    BR_CHECK_OK(br_future_new(&inner));
    BR_CHECK_OK(br_shield(inner, &outer));
    BR_CHECK_OK(br_future_set_result(inner, text, sizeof text));
    const char *s = NULL;
    BR_CHECK_OK(br_future_result_str(outer, BR_NOWAIT, &s));
    BR_CHECK(strcmp(s, text) == 0);
    br_future_release(inner); /* outer's bytes are its own */
    BR_CHECK_OK(br_future_result_str(outer, BR_NOWAIT, &s));
    BR_CHECK(strcmp(s, text) == 0);
    br_future_release(outer);

    /* a failure with its message; inner already done when shielded */
    BR_CHECK_OK(br_future_new(&inner));
    BR_CHECK_OK(br_future_set_exception(inner, BR_EIO, "disk"));
    BR_CHECK_OK(br_shield(inner, &outer));
    int code = 0;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(outer, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EIO);
    BR_CHECK(msg != NULL && strcmp(msg, "disk") == 0);
    br_future_release(outer);
    br_future_release(inner);

    /* a cancelled inner cancels outer */
    BR_CHECK_OK(br_future_new(&inner));
    BR_CHECK_OK(br_shield(inner, &outer));
    BR_CHECK(br_future_cancel(inner));
    BR_CHECK(br_future_cancelled(outer));
    br_future_release(outer);
    br_future_release(inner);

    /* a pointer result is passed on, borrowed */
    static int target;
    BR_CHECK_OK(br_future_new(&inner));
    BR_CHECK_OK(br_shield(inner, &outer));
    BR_CHECK_OK(br_future_set_result_ptr(inner, &target, NULL));
    void *p = NULL;
    BR_CHECK_OK(br_future_result_ptr(outer, BR_NOWAIT, &p));
    BR_CHECK(p == &target);
    br_future_release(outer);
    br_future_release(inner);

    BR_CHECK_ERR(br_shield(NULL, &outer), BR_EINVAL);
}

/* --- TaskGroup on a thread pool ------------------------------------------------- */

static void taskgroup_all_succeed(void **state) {
    (void)state;
    enum { N = 20 };
    br_executor *ex = pool_new(4);
    br_taskgroup *g;
    BR_CHECK_OK(br_taskgroup_new_executor(&g, ex));
    br_future *fs[N];
    for (int64_t i = 0; i < N; i++)
        BR_CHECK_OK(br_taskgroup_create_task(g, times_ten, &i, sizeof i, &fs[i]));
    BR_CHECK_OK(br_taskgroup_wait(g));
    for (int i = 0; i < N; i++)
        BR_CHECK_EQ(result_i64(fs[i]), i * 10);
    BR_CHECK_EQ(br_taskgroup_errors(g, NULL, 0), 0);
    /* a finished group takes no more tasks */
    int64_t one = 1;
    BR_CHECK_ERR(br_taskgroup_create_task(g, times_ten, &one, sizeof one, NULL), BR_ESHUTDOWN);
    br_taskgroup_free(g);
    br_test_futures_release(fs, N);
    BR_CHECK_OK(br_executor_free(ex));
}

static void taskgroup_failure_cancels_siblings(void **state) {
    (void)state;
    enum { NGATE = 3 };
    br_executor *ex = pool_new(NGATE + 1);
    br_event ev;
    BR_CHECK_OK(br_event_init(&ev));
    br_event *evp = &ev;
    br_taskgroup *g;
    BR_CHECK_OK(br_taskgroup_new_executor(&g, ex));
    br_future *gates[NGATE];
    for (int i = 0; i < NGATE; i++)
        BR_CHECK_OK(br_taskgroup_create_task(g, gate_task, &evp, sizeof evp, &gates[i]));
    int64_t bad = BR_EPIPE;
    br_future *badf;
    BR_CHECK_OK(br_taskgroup_create_task(g, times_ten, &bad, sizeof bad, &badf));
    /* the event is never set: only the group's cancel ends the gates */
    BR_CHECK_ERR(br_taskgroup_wait(g), BR_EPIPE);
    for (int i = 0; i < NGATE; i++)
        BR_CHECK(br_future_cancelled(gates[i]));
    int codes[4] = {0};
    BR_CHECK_EQ(br_taskgroup_errors(g, codes, 4), 1);
    BR_CHECK_EQ(codes[0], BR_EPIPE);
    BR_CHECK_ERR(br_taskgroup_create_task(g, times_ten, &bad, sizeof bad, NULL), BR_ESHUTDOWN);
    br_taskgroup_free(g);
    br_test_futures_release(gates, NGATE);
    br_future_release(badf);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&ev));
}

static void taskgroup_errors_collected(void **state) {
    (void)state;
    br_executor *ex = pool_new(1);
    br_taskgroup *g;
    BR_CHECK_OK(br_taskgroup_new_executor(&g, ex));
    /* one worker: the tasks run in order, so both may fail before either cancel lands
     * or the second may be cancelled first; either way the first code is BR_EIO. */
    int64_t a = BR_EIO, b = BR_EPIPE;
    BR_CHECK_OK(br_taskgroup_create_task(g, times_ten, &a, sizeof a, NULL));
    int rc = br_taskgroup_create_task(g, times_ten, &b, sizeof b, NULL);
    BR_CHECK(rc == 0 || rc == BR_ESHUTDOWN);
    BR_CHECK_ERR(br_taskgroup_wait(g), BR_EIO);
    int codes[2] = {0};
    size_t n = br_taskgroup_errors(g, codes, 2);
    BR_CHECK(n == 1 || n == 2);
    BR_CHECK_EQ(codes[0], BR_EIO);
    if (n == 2)
        BR_CHECK_EQ(codes[1], BR_EPIPE);
    br_taskgroup_free(g);
    BR_CHECK_OK(br_executor_free(ex));
}

static void taskgroup_free_unwaited_cancels(void **state) {
    (void)state;
    br_executor *ex = pool_new(1);
    br_event ev;
    BR_CHECK_OK(br_event_init(&ev));
    br_event *evp = &ev;
    br_taskgroup *g;
    BR_CHECK_OK(br_taskgroup_new_executor(&g, ex));
    br_future *f;
    BR_CHECK_OK(br_taskgroup_create_task(g, gate_task, &evp, sizeof evp, &f));
    br_taskgroup_free(g);
    BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_OK(br_event_destroy(&ev));
}

static void taskgroup_bad_input(void **state) {
    (void)state;
    br_taskgroup *g;
    BR_CHECK_ERR(br_taskgroup_new(&g), BR_EPERM); /* no loop on this thread */
    BR_CHECK_ERR(br_taskgroup_new_executor(&g, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_taskgroup_wait(NULL), BR_EINVAL);
    BR_CHECK_EQ(br_taskgroup_errors(NULL, NULL, 0), 0);
    br_taskgroup_free(NULL);
}

/* --- to_thread --------------------------------------------------------------------- */

static void to_thread_runs_on_a_pool(void **state) {
    (void)state;
    enum { N = 8 };
    br_future *fs[N];
    for (int64_t i = 0; i < N; i++)
        BR_CHECK_OK(br_to_thread(times_ten, &i, sizeof i, &fs[i])); /* copied */
    BR_CHECK_OK(br_gather(fs, N, false, br_test_hang_guard()));
    for (int i = 0; i < N; i++)
        BR_CHECK_EQ(result_i64(fs[i]), i * 10);
    br_test_futures_release(fs, N);
    br_future *f;
    BR_CHECK_ERR(br_to_thread(NULL, NULL, 0, &f), BR_EINVAL);
}


/* --- from coroutines, on a loop's tasks ---------------------------------------------- */

static br_event co_ev; /* never set unless a test says so: tasks waiting on it end only
                        * when cancelled */

static int co_square(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    for (int64_t k = 0; k < i % 3; k++)
        BR_CHECK_OK(br_aio_yield());
    return br_task_return_i64(t, i * i);
}

static int co_wait_ev(br_task *t) {
    int rc = br_event_wait(&co_ev, br_test_hang_guard());
    return rc != 0 ? rc : br_task_return_i64(t, 7);
}

static int co_fail(br_task *t) { return (int)br_task_arg_i64(t); }

static int run_main(br_task_fn fn) {
    BR_CHECK_OK(br_event_init(&co_ev));
    int code = -1;
    BR_CHECK_OK(br_aio_run(fn, NULL, 0, &code));
    BR_CHECK_OK(br_event_destroy(&co_ev));
    return code;
}

static int gather_main(br_task *t) {
    (void)t;
    enum { N = 10 };
    br_future *fs[N];
    for (int64_t i = 0; i < N; i++)
        BR_CHECK_OK(br_create_task(NULL, co_square, &i, sizeof i, &fs[i]));
    BR_CHECK_OK(br_gather(fs, N, false, br_test_hang_guard()));
    for (int i = 0; i < N; i++)
        BR_CHECK_EQ(result_i64(fs[i]), i * i);
    br_test_futures_release(fs, N);
    return 0;
}

static void co_gather_of_tasks(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(gather_main));
}

static int wait_for_main(br_task *t) {
    (void)t;
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, co_wait_ev, NULL, 0, &f));
    BR_CHECK_ERR(br_wait_for(f, br_deadline_after(5 * 1000 * 1000)), BR_ETIMEDOUT);
    BR_CHECK(br_future_done(f));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    /* a task done in time: its value */
    int64_t three = 3;
    BR_CHECK_OK(br_create_task(NULL, co_square, &three, sizeof three, &f));
    BR_CHECK_OK(br_wait_for(f, br_test_hang_guard()));
    BR_CHECK_EQ(result_i64(f), 9);
    br_future_release(f);
    return 0;
}

static void co_wait_for_sleeping_task(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(wait_for_main));
}

static br_future *shield_outer;
static int await_outer(br_task *t) {
    (void)t;
    return br_future_result(shield_outer, br_test_hang_guard(), NULL, NULL);
}

static int shield_main(br_task *t) {
    (void)t;
    br_future *inner, *awaiter;
    BR_CHECK_OK(br_create_task(NULL, co_wait_ev, NULL, 0, &inner));
    BR_CHECK_OK(br_shield(inner, &shield_outer));
    /* a coroutine awaiting the shield is cancelled: inner runs on */
    BR_CHECK_OK(br_create_task(NULL, await_outer, NULL, 0, &awaiter));
    BR_CHECK_OK(br_aio_yield()); /* the awaiter suspends on outer */
    BR_CHECK(br_future_request_cancel(awaiter));
    BR_CHECK_ERR(br_future_result(awaiter, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(awaiter));
    BR_CHECK(!br_future_done(inner));
    /* cancelling outer itself: inner runs on */
    BR_CHECK(br_future_cancel(shield_outer));
    BR_CHECK(!br_future_done(inner));
    BR_CHECK_OK(br_event_set(&co_ev));
    BR_CHECK_OK(br_future_result(inner, br_test_hang_guard(), NULL, NULL));
    BR_CHECK_EQ(result_i64(inner), 7);
    BR_CHECK(br_future_cancelled(shield_outer));
    br_future_release(awaiter);
    br_future_release(shield_outer);
    br_future_release(inner);
    return 0;
}

static void co_shield(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(shield_main));
}

static int taskgroup_main(br_task *t) {
    (void)t;
    br_taskgroup *g;
    BR_CHECK_OK(br_taskgroup_new(&g));
    br_future *waiters[3];
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_taskgroup_create_task(g, co_wait_ev, NULL, 0, &waiters[i]));
    int64_t code = BR_EPIPE;
    BR_CHECK_OK(br_taskgroup_create_task(g, co_fail, &code, sizeof code, NULL));
    BR_CHECK_ERR(br_taskgroup_wait(g), BR_EPIPE);
    for (int i = 0; i < 3; i++)
        BR_CHECK(br_future_cancelled(waiters[i]));
    int codes[4];
    BR_CHECK_EQ(br_taskgroup_errors(g, codes, 4), 1);
    BR_CHECK_EQ(codes[0], BR_EPIPE);
    br_taskgroup_free(g);
    br_test_futures_release(waiters, 3);

    /* all succeed */
    BR_CHECK_OK(br_taskgroup_new(&g));
    br_future *sq[5];
    for (int64_t i = 0; i < 5; i++)
        BR_CHECK_OK(br_taskgroup_create_task(g, co_square, &i, sizeof i, &sq[i]));
    BR_CHECK_OK(br_taskgroup_wait(g));
    for (int i = 0; i < 5; i++)
        BR_CHECK_EQ(result_i64(sq[i]), i * i);
    br_taskgroup_free(g);
    br_test_futures_release(sq, 5);
    return 0;
}

static void co_taskgroup(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(taskgroup_main));
}

static br_future *kids[3];
static int gathering(br_task *t) {
    (void)t;
    return br_gather(kids, 3, false, br_test_hang_guard());
}
static int tg_owner(br_task *t) {
    (void)t;
    br_taskgroup *g;
    BR_CHECK_OK(br_taskgroup_new(&g));
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_taskgroup_create_task(g, co_wait_ev, NULL, 0, &kids[i]));
    int rc = br_taskgroup_wait(g);
    br_taskgroup_free(g);
    return rc;
}

static int cancel_main(br_task *t) {
    (void)t;
    /* a cancelled gather cancels its children */
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_create_task(NULL, co_wait_ev, NULL, 0, &kids[i]));
    br_future *g;
    BR_CHECK_OK(br_create_task(NULL, gathering, NULL, 0, &g));
    BR_CHECK_OK(br_aio_yield()); /* everyone suspends */
    BR_CHECK(br_future_request_cancel(g));
    BR_CHECK_ERR(br_future_result(g, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(g));
    BR_CHECK_OK(br_gather(kids, 3, true, br_test_hang_guard()));
    for (int i = 0; i < 3; i++)
        BR_CHECK(br_future_cancelled(kids[i]));
    br_future_release(g);
    br_test_futures_release(kids, 3);

    /* a cancelled TaskGroup owner: the group's tasks are cancelled and waited for */
    BR_CHECK_OK(br_create_task(NULL, tg_owner, NULL, 0, &g));
    BR_CHECK_OK(br_aio_yield());
    BR_CHECK_OK(br_aio_yield());
    BR_CHECK(br_future_request_cancel(g));
    BR_CHECK_ERR(br_future_result(g, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    for (int i = 0; i < 3; i++) {
        BR_CHECK(br_future_cancelled(kids[i]));
        br_future_release(kids[i]);
    }
    br_future_release(g);
    return 0;
}

static void co_cancel_gather_and_taskgroup(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(cancel_main));
}

static int to_thread_main(br_task *t) {
    (void)t;
    br_future *f;
    int64_t six = 6;
    BR_CHECK_OK(br_to_thread(times_ten, &six, sizeof six, &f));
    BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), NULL, NULL));
    BR_CHECK_EQ(result_i64(f), 60);
    br_future_release(f);
    return 0;
}

static void co_to_thread(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(to_thread_main));
}

/* A gather inside a timeout scope: the scope's expiry reaches gather as the caller's
 * cancel, which cancels the children; leave reports BR_ETIMEDOUT. A wait_for whose
 * caller is cancelled cancels its task and waits for it. */
static br_future *wf_child;
static int wait_for_forever(br_task *t) {
    (void)t;
    return br_wait_for(wf_child, BR_FOREVER);
}

static int scope_main(br_task *t) {
    (void)t;
    br_future *fs[2];
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_create_task(NULL, co_wait_ev, NULL, 0, &fs[i]));
    br_timeout_scope sc;
    BR_CHECK_OK(br_timeout_enter(&sc, br_deadline_after(2 * 1000 * 1000)));
    BR_CHECK_ERR(br_gather(fs, 2, false, br_test_hang_guard()), BR_ECANCELED);
    BR_CHECK_ERR(br_timeout_leave(&sc), BR_ETIMEDOUT);
    BR_CHECK_OK(br_gather(fs, 2, true, br_test_hang_guard()));
    for (int i = 0; i < 2; i++)
        BR_CHECK(br_future_cancelled(fs[i]));
    br_test_futures_release(fs, 2);

    BR_CHECK_OK(br_create_task(NULL, co_wait_ev, NULL, 0, &wf_child));
    br_future *w;
    BR_CHECK_OK(br_create_task(NULL, wait_for_forever, NULL, 0, &w));
    BR_CHECK_OK(br_aio_yield());
    BR_CHECK(br_future_request_cancel(w));
    BR_CHECK_ERR(br_future_result(w, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(w));
    BR_CHECK(br_future_cancelled(wf_child)); /* landed before wait_for returned */
    br_future_release(w);
    br_future_release(wf_child);
    return 0;
}

static void co_gather_in_a_timeout_scope(void **state) {
    (void)state;
    BR_CHECK_OK(run_main(scope_main));
}


BR_TEST_MAIN(cmocka_unit_test(gather_all_succeed),
                 cmocka_unit_test(gather_first_failure_returns_early),
                 cmocka_unit_test(gather_deadline_cancels_nothing),
                 cmocka_unit_test(gather_cancelled_child),
                 cmocka_unit_test(gather_duplicates_and_bad_input),
                 cmocka_unit_test(gather_woken_by_thread),
                 cmocka_unit_test(wait_for_outcomes),
                 cmocka_unit_test(wait_for_timeout_cancels),
                 cmocka_unit_test(wait_for_result_after_cancel_kept),
                 cmocka_unit_test(shield_cancel_outer_keeps_inner),
                 cmocka_unit_test(shield_passes_outcomes),
                 cmocka_unit_test(taskgroup_all_succeed),
                 cmocka_unit_test(taskgroup_failure_cancels_siblings),
                 cmocka_unit_test(taskgroup_errors_collected),
                 cmocka_unit_test(taskgroup_free_unwaited_cancels),
                 cmocka_unit_test(taskgroup_bad_input),
                 cmocka_unit_test(to_thread_runs_on_a_pool),
                 cmocka_unit_test(co_gather_of_tasks),
                 cmocka_unit_test(co_wait_for_sleeping_task),
                 cmocka_unit_test(co_shield),
                 cmocka_unit_test(co_taskgroup),
                 cmocka_unit_test(co_cancel_gather_and_taskgroup),
                 cmocka_unit_test(co_to_thread),
                 cmocka_unit_test(co_gather_in_a_timeout_scope));
