/* The event loop: callbacks, timers, wake-ups from other threads, run/stop/free, and
 * the calls that need a coroutine. No test depends on timing: timers are ordered by
 * their deadlines (the loop fires them in that order whenever it wakes), and a
 * cross-thread wake is checked with the loop asleep (its sleeping flag observed). */
#include "harness.h"

#include "aio/io.h"
#include "aio/loop.h"

#include <fcntl.h>
#include <unistd.h>

#include <stdatomic.h>
#include <string.h>

/* --- callbacks ------------------------------------------------------------------------ */

typedef struct rec {
    br_loop *loop;
    int order[16];
    int n;
    int stop_after;
} rec;

typedef struct step {
    rec *r;
    int id;
} step;

static void record(void *arg) {
    step *s = arg;
    s->r->order[s->r->n++] = s->id;
    if (s->r->n == s->r->stop_after)
        BR_CHECK_OK(br_loop_stop(s->r->loop));
}

static void callbacks_in_order(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    rec r = {.loop = l, .stop_after = 5};
    step s[5];
    for (int i = 0; i < 5; i++) {
        s[i] = (step){&r, i};
        if (i % 2)
            BR_CHECK_OK(br_call_soon(l, record, &s[i]));
        else
            BR_CHECK_OK(br_call_soon_threadsafe(l, record, &s[i]));
    }
    BR_CHECK_OK(br_loop_run_forever(l));
    BR_CHECK_EQ(r.n, 5);
    for (int i = 0; i < 5; i++)
        BR_CHECK_EQ(r.order[i], i);
    BR_CHECK_OK(br_loop_free(l));
}

/* A callback scheduled by a callback runs in a later iteration, after those already
 * ready (asyncio's order). */
typedef struct chain {
    rec *r;
    step later;
} chain;

static void schedule_more(void *arg) {
    chain *c = arg;
    c->r->order[c->r->n++] = 100;
    BR_CHECK_OK(br_call_soon(c->r->loop, record, &c->later));
}

static void callback_from_callback_runs_after(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    rec r = {.loop = l, .stop_after = 3};
    chain c = {&r, {&r, 2}};
    step one = {&r, 1};
    BR_CHECK_OK(br_call_soon(l, schedule_more, &c));
    BR_CHECK_OK(br_call_soon(l, record, &one));
    BR_CHECK_OK(br_loop_run_forever(l));
    BR_CHECK_EQ(r.order[0], 100);
    BR_CHECK_EQ(r.order[1], 1);
    BR_CHECK_EQ(r.order[2], 2);
    BR_CHECK_OK(br_loop_free(l));
}

static void call_at_by_deadline(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    rec r = {.loop = l, .stop_after = 6};
    step s[6];
    int64_t base = br_now();
    /* Deadlines out of order; two share one (they fire in the order armed). */
    int64_t at[6] = {5, 1, 3, 3, 0, 2};
    int want[6] = {4, 1, 5, 2, 3, 0};
    for (int i = 0; i < 6; i++) {
        s[i] = (step){&r, i};
        BR_CHECK_OK(br_call_at(l, base + at[i] * BR_MSEC, record, &s[i], NULL));
    }
    BR_CHECK_OK(br_loop_run_forever(l));
    for (int i = 0; i < 6; i++)
        BR_CHECK_EQ(r.order[i], want[i]);
    BR_CHECK(br_now() >= base + 5 * BR_MSEC);
    BR_CHECK_OK(br_loop_free(l));
}

static void timer_cancel(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    rec r = {.loop = l, .stop_after = 2};
    step s[3] = {{&r, 0}, {&r, 1}, {&r, 2}};
    br_timer *t0, *t1;
    int64_t base = br_now();
    BR_CHECK_OK(br_call_at(l, base + 1 * BR_MSEC, record, &s[0], &t0));
    BR_CHECK_OK(br_call_at(l, base + 2 * BR_MSEC, record, &s[1], &t1));
    BR_CHECK_OK(br_call_at(l, base + 3 * BR_MSEC, record, &s[2], NULL));
    BR_CHECK_OK(br_timer_cancel(t1));
    BR_CHECK_OK(br_loop_run_forever(l));
    BR_CHECK_EQ(r.n, 2);
    BR_CHECK_EQ(r.order[0], 0);
    BR_CHECK_EQ(r.order[1], 2);
    BR_CHECK_ERR(br_timer_cancel(t0), BR_ESTATE); /* it ran; the handle is freed now */
    BR_CHECK_OK(br_loop_free(l));
}

/* A timer not yet run when the loop is freed: its kept handle stays cancellable. */
static void timers_dropped_at_free(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    rec r = {.loop = l, .stop_after = 100};
    step s = {&r, 0};
    br_timer *kept;
    BR_CHECK_OK(br_call_at(l, br_deadline_after(3600 * BR_SEC), record, &s, &kept));
    BR_CHECK_OK(br_call_at(l, br_deadline_after(3600 * BR_SEC), record, &s, NULL));
    BR_CHECK_OK(br_call_soon(l, record, &s));
    BR_CHECK_OK(br_loop_free(l));
    BR_CHECK_EQ(r.n, 0);
    BR_CHECK_ERR(br_timer_cancel(kept), BR_ESTATE);
}

/* --- wake-ups from other threads ------------------------------------------------------------- */

typedef struct xwake {
    br_loop *loop;
    _Atomic int ran;
} xwake;

static bool loop_sleeping(br_loop *l) {
    br__ilock_lock(&l->inbox_lock);
    bool s = l->sleeping;
    br__ilock_unlock(&l->inbox_lock);
    return s;
}

static void stop_cb(void *arg) {
    xwake *x = arg;
    atomic_store(&x->ran, 1);
    BR_CHECK_OK(br_loop_stop(x->loop));
}

static void threadsafe_poster(void *arg) {
    xwake *x = arg;
    int64_t guard = br_test_hang_guard();
    while (!loop_sleeping(x->loop)) {
        if (br_now() > guard)
            fail_msg("the loop never went to sleep");
        br_sleep(100 * BR_USEC);
    }
    BR_CHECK_OK(br_call_soon_threadsafe(x->loop, stop_cb, x));
}

static void call_soon_threadsafe_wakes_sleeping_loop(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    xwake x = {.loop = l};
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, threadsafe_poster, &x, NULL));
    BR_CHECK_OK(br_loop_run_forever(l)); /* nothing else would ever wake it */
    BR_CHECK_EQ(atomic_load(&x.ran), 1);
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    BR_CHECK_OK(br_loop_free(l));
}

static void stopper(void *arg) {
    xwake *x = arg;
    int64_t guard = br_test_hang_guard();
    while (!loop_sleeping(x->loop)) {
        if (br_now() > guard)
            fail_msg("the loop never went to sleep");
        br_sleep(100 * BR_USEC);
    }
    BR_CHECK_OK(br_loop_stop(x->loop));
}

static void stop_from_another_thread(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    xwake x = {.loop = l};
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, stopper, &x, NULL));
    BR_CHECK_OK(br_loop_run_forever(l));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    /* A stopped loop runs again. */
    rec r = {.loop = l, .stop_after = 1};
    step s = {&r, 7};
    BR_CHECK_OK(br_call_soon(l, record, &s));
    BR_CHECK_OK(br_loop_run_forever(l));
    BR_CHECK_EQ(r.order[0], 7);
    BR_CHECK_OK(br_loop_free(l));
}

/* --- run_until_complete, free, misuse --------------------------------------------------- */

static int ret_i64(br_task *t) { return br_task_return_i64(t, br_task_arg_i64(t) * 2); }

static void until_complete_pool_future(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_executor *pool;
    BR_CHECK_OK(br_threadpool_new(&pool, &(br_threadpool_opts){.max_workers = 1}));
    br_future *f;
    BR_CHECK_OK(br_submit_i64(pool, ret_i64, 21, &f));
    BR_CHECK_OK(br_loop_run_until_complete(l, f)); /* woken by the pool's thread */
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 42);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(pool));
    BR_CHECK_OK(br_loop_free(l));
}

static int sleeper(br_task *t) {
    (void)t;
    return br_aio_sleep(BR_MSEC);
}

static void free_with_live_tasks_is_busy(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *f;
    BR_CHECK_OK(br_create_task(l, sleeper, NULL, 0, &f));
    BR_CHECK_ERR(br_loop_free(l), BR_EBUSY);
    BR_CHECK_OK(br_loop_run_until_complete(l, f));
    BR_CHECK_OK(br_future_wait(f, BR_NOWAIT));
    BR_CHECK(!br_future_failed(f));
    br_future_release(f);
    BR_CHECK_OK(br_loop_free(l));
}

static void coroutine_calls_outside_a_loop(void **state) {
    (void)state;
    BR_CHECK_ERR(br_aio_sleep(BR_MSEC), BR_EPERM);
    BR_CHECK_ERR(br_aio_sleep_until(BR_NOWAIT), BR_EPERM);
    BR_CHECK_ERR(br_aio_yield(), BR_EPERM);
    br_timeout_scope s;
    BR_CHECK_ERR(br_timeout_enter(&s, BR_FOREVER), BR_EPERM);
    BR_CHECK_ERR(br_timeout_leave(&s), BR_EPERM);
    BR_CHECK(br_aio_current_task() == NULL);
    BR_CHECK(br_loop_current() == NULL);
    br_future *f = NULL;
    BR_CHECK_ERR(br_create_task(NULL, sleeper, NULL, 0, &f), BR_EPERM);
    BR_CHECK(f == NULL);
}

static void stack_too_small(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *f = NULL;
    BR_CHECK_ERR(br_create_task_opts(l, sleeper, NULL, 0,
                                     &(br_task_opts){.stack_size = 4096}, &f),
                 BR_EINVAL);
    BR_CHECK(f == NULL);
    /* The shared stack is 1 MiB; a task is on it or on its own, not both. */
    BR_CHECK_ERR(br_create_task_opts(
                     l, sleeper, NULL, 0,
                     &(br_task_opts){.shared_stack = true, .stack_size = (size_t)2 << 20}, &f),
                 BR_EINVAL);
    BR_CHECK_ERR(br_create_task_opts(l, sleeper, NULL, 0,
                                     &(br_task_opts){.shared_stack = true, .own_stack = true},
                                     &f),
                 BR_EINVAL);
    BR_CHECK(f == NULL);
    BR_CHECK_ERR(br_loop_set_task_defaults(l, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_loop_set_task_defaults(NULL, &(br_task_opts){.shared_stack = true}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_loop_set_task_defaults(l, &(br_task_opts){.stack_size = 4096}), BR_EINVAL);
    BR_CHECK_ERR(br_loop_set_task_defaults(
                     l, &(br_task_opts){.shared_stack = true, .stack_size = (size_t)2 << 20}),
                 BR_EINVAL);
    BR_CHECK_OK(br_loop_free(l));
}

/* Running the loop from inside it, and freeing it from inside, are refused. */
typedef struct inside {
    br_loop *loop;
    int run_rc, free_rc;
} inside;

static void try_inside(void *arg) {
    inside *in = arg;
    in->run_rc = br_loop_run_forever(in->loop);
    in->free_rc = br_loop_free(in->loop);
    BR_CHECK_OK(br_loop_stop(in->loop));
}

static void reentry_refused(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    inside in = {.loop = l};
    BR_CHECK_OK(br_call_soon(l, try_inside, &in));
    BR_CHECK_OK(br_loop_run_forever(l));
    BR_CHECK_EQ(in.run_rc, BR_EPERM);
    BR_CHECK_EQ(in.free_rc, BR_EPERM);
    BR_CHECK_OK(br_loop_free(l));
}

/* br_aio_run: the main task's code comes back; a second loop can't run inside. */
static int main_fails(br_task *t) {
    (void)t;
    BR_CHECK(br_loop_current() != NULL);
    BR_CHECK(br_aio_current_task() != NULL);
    int code = 0;
    BR_CHECK_ERR(br_aio_run(sleeper, NULL, 0, &code), BR_EPERM);
    return BR_ERANGE;
}

static void aio_run_returns_main_code(void **state) {
    (void)state;
    int code = 1;
    BR_CHECK_OK(br_aio_run(main_fails, NULL, 0, &code));
    BR_CHECK_EQ(code, BR_ERANGE);
    BR_CHECK_OK(br_aio_run(sleeper, NULL, 0, &code));
    BR_CHECK_EQ(code, 0);
}

/* A task left running when main returns is cancelled by br_aio_run. */
static _Atomic int orphan_rc = 1;

static int orphan(br_task *t) {
    (void)t;
    int rc = br_aio_sleep(3600 * BR_SEC);
    atomic_store(&orphan_rc, rc);
    return rc;
}

static int main_leaves_orphan(br_task *t) {
    (void)t;
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, orphan, NULL, 0, &f));
    BR_CHECK_OK(br_aio_yield()); /* let it start and sleep */
    br_future_release(f);
    return 0;
}

static void aio_run_cancels_the_rest(void **state) {
    (void)state;
    int code = 1;
    BR_CHECK_OK(br_aio_run(main_leaves_orphan, NULL, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK_EQ(atomic_load(&orphan_rc), BR_ECANCELED);
}

/* SIGINT cancels the main task. */
static int main_raises_sigint(br_task *t) {
    (void)t;
    raise(SIGINT);
    return br_aio_sleep(3600 * BR_SEC);
}

static void aio_run_sigint_cancels_main(void **state) {
    (void)state;
    int code = 0;
    BR_CHECK_OK(br_aio_run(main_raises_sigint, NULL, 0, &code));
    BR_CHECK_EQ(code, BR_ECANCELED);
}

/* br__io_wait in a coroutine: suspends until the descriptor is ready (another
 * coroutine writes), times out, and refuses a second reader of the same descriptor. */
typedef struct iop {
    int fds[2];
    _Atomic int waiting;
    int rc, busy_rc;
} iop;

static int io_reader(br_task *t) {
    iop *p = (iop *)br_task_arg(t, NULL);
    BR_CHECK_ERR(br__io_wait(p->fds[0], BR__IO_READ, br_deadline_after(BR_MSEC)),
                 BR_ETIMEDOUT);
    atomic_store(&p->waiting, 1);
    p->rc = br__io_wait(p->fds[0], BR__IO_READ, br_test_hang_guard());
    char c = 0;
    BR_CHECK_EQ(read(p->fds[0], &c, 1), 1);
    BR_CHECK_EQ(c, 'x');
    return 0;
}

static int io_writer(br_task *t) {
    iop *p = (iop *)br_task_arg(t, NULL);
    while (!atomic_load(&p->waiting))
        BR_CHECK_OK(br_aio_yield());
    p->busy_rc = br__io_wait(p->fds[0], BR__IO_READ, BR_NOWAIT);
    BR_CHECK_EQ(write(p->fds[1], "x", 1), 1);
    return 0;
}

static int io_main(br_task *t) {
    iop *p = (iop *)br_task_arg(t, NULL);
    br_future *r, *w;
    BR_CHECK_OK(br_create_task(NULL, io_reader, p, 0, &r));
    BR_CHECK_OK(br_create_task(NULL, io_writer, p, 0, &w));
    BR_CHECK_OK(br_future_wait(r, br_test_hang_guard()));
    BR_CHECK_OK(br_future_wait(w, br_test_hang_guard()));
    BR_CHECK(!br_future_failed(r) && !br_future_failed(w));
    br_future_release(r);
    br_future_release(w);
    return 0;
}

static void io_wait_in_coroutines(void **state) {
    (void)state;
    iop p = {0};
    BR_CHECK_EQ(pipe(p.fds), 0);
    int code = 1;
    BR_CHECK_OK(br_aio_run(io_main, &p, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK_OK(p.rc);
    BR_CHECK_EQ(p.busy_rc, BR_EBUSY);
    close(p.fds[0]);
    close(p.fds[1]);
}

/* --- hand-offs: a suspending task runs the next one itself (loop.c, "Hand-offs") ------- */

/* Three yielding tasks and a callback: the order is the loop's, round by round (a
 * task's yield puts it behind the others' and the callback it scheduled before it). */
typedef struct rr rr;
typedef struct rr_arg {
    rr *r;
    int id;
} rr_arg;

struct rr {
    int order[64];
    int n;
    rr_arg a[3]; /* not main's locals: a shared-stack task lends none (aio-loop.md) */
};

static void rr_note(void *arg) {
    rr *r = arg;
    r->order[r->n++] = 9;
}

static int rr_yielder(br_task *t) {
    rr_arg *a = (rr_arg *)br_task_arg(t, NULL);
    for (int i = 0; i < 5; i++) {
        a->r->order[a->r->n++] = a->id;
        if (a->id == 0 && i == 2)
            BR_CHECK_OK(br_call_soon(br_loop_current(), rr_note, a->r));
        BR_CHECK_OK(br_aio_yield());
    }
    return 0;
}

static int rr_main(br_task *t) {
    rr *r = (rr *)br_task_arg(t, NULL);
    br_future *f[3];
    for (int i = 0; i < 3; i++) {
        r->a[i] = (rr_arg){r, i};
        BR_CHECK_OK(br_create_task(NULL, rr_yielder, &r->a[i], 0, &f[i]));
    }
    for (int i = 0; i < 3; i++) {
        BR_CHECK_OK(br_future_wait(f[i], br_test_hang_guard()));
        br_future_release(f[i]);
    }
    return 0;
}

static void yielders_keep_the_loops_order(void **state) {
    (void)state;
    rr r = {0};
    int code = 1;
    BR_CHECK_OK(br_aio_run(rr_main, &r, 0, &code));
    BR_CHECK_EQ(code, 0);
    /* Rounds 0 1 2; task 0 schedules the callback in round 2, before its yield. */
    int want[] = {0, 1, 2, 0, 1, 2, 0, 1, 2, 9, 0, 1, 2, 0, 1, 2};
    BR_CHECK_EQ(r.n, (int)(sizeof want / sizeof want[0]));
    for (int i = 0; i < r.n; i++)
        BR_CHECK_EQ(r.order[i], want[i]);
}

/* Two tasks that only yield, each until a descriptor's readiness, then a callback from
 * another thread, then a timer have been seen, each arriving once the one before is
 * over: the loop's poller, inbox and timers still run between their yields (while
 * main's wait keeps a timer armed that isn't due). */
typedef struct busy {
    br_loop *loop;
    int fds[2];
    _Atomic int timer_ran, ts_ran, io_ran;
    br_event started, io_seen; /* set by a yielder's start, by the reader */
    bool armed;
    long yields;
} busy;

static void busy_timer(void *arg) { atomic_store(&((busy *)arg)->timer_ran, 1); }
static void busy_ts(void *arg) { atomic_store(&((busy *)arg)->ts_ran, 1); }

static void busy_poster(void *arg) {
    busy *b = arg;
    BR_CHECK_OK(br_event_wait(&b->started, br_test_hang_guard()));
    BR_CHECK_EQ(write(b->fds[1], "x", 1), 1);
    /* Then the callback, once no coroutine waits for a descriptor (so the loop's own
     * iteration doesn't run for the poll's sake). */
    BR_CHECK_OK(br_event_wait(&b->io_seen, br_test_hang_guard()));
    BR_CHECK_OK(br_call_soon_threadsafe(b->loop, busy_ts, b));
}

static int busy_reader(br_task *t) {
    busy *b = (busy *)br_task_arg(t, NULL);
    BR_CHECK_OK(br__io_wait(b->fds[0], BR__IO_READ | BR__IO_NEW, br_test_hang_guard()));
    char c = 0;
    BR_CHECK_EQ(read(b->fds[0], &c, 1), 1);
    atomic_store(&b->io_ran, 1);
    BR_CHECK_OK(br_event_set(&b->io_seen));
    return 0;
}

static bool busy_all_seen(busy *b) {
    return atomic_load(&b->timer_ran) && atomic_load(&b->ts_ran) && atomic_load(&b->io_ran);
}

static int busy_yielder(br_task *t) {
    busy *b = (busy *)br_task_arg(t, NULL);
    int64_t guard = br_test_hang_guard();
    BR_CHECK_OK(br_event_set(&b->started));
    while (!busy_all_seen(b)) {
        if (br_now() > guard)
            fail_msg("yielding tasks kept the timer, the threadsafe callback or the "
                     "descriptor from running (%d %d %d)",
                     atomic_load(&b->timer_ran), atomic_load(&b->ts_ran),
                     atomic_load(&b->io_ran));
        /* The timer once the rest is over: from then on only a due timer can make
         * the loop's own iteration run (no descriptor wait, nothing handed over). */
        if (!b->armed && atomic_load(&b->ts_ran) && atomic_load(&b->io_ran)) {
            b->armed = true;
            BR_CHECK_OK(br_call_at(b->loop, br_deadline_after(BR_MSEC), busy_timer, b, NULL));
        }
        BR_CHECK_OK(br_aio_yield());
        b->yields++;
    }
    return 0;
}

static int busy_main(br_task *t) {
    busy *b = (busy *)br_task_arg(t, NULL);
    b->loop = br_loop_current();
    br_future *f[3];
    BR_CHECK_OK(br_create_task(NULL, busy_reader, b, 0, &f[0]));
    BR_CHECK_OK(br_create_task(NULL, busy_yielder, b, 0, &f[1]));
    BR_CHECK_OK(br_create_task(NULL, busy_yielder, b, 0, &f[2]));
    for (int i = 0; i < 3; i++) {
        BR_CHECK_OK(br_future_wait(f[i], br_test_hang_guard()));
        BR_CHECK(!br_future_failed(f[i]));
        br_future_release(f[i]);
    }
    return 0;
}

static void yielders_let_timers_callbacks_and_io_run(void **state) {
    (void)state;
    busy b = {0};
    BR_CHECK_OK(br_event_init(&b.started));
    BR_CHECK_OK(br_event_init(&b.io_seen));
    BR_CHECK_EQ(pipe2(b.fds, O_CLOEXEC), 0);
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, busy_poster, &b, NULL));
    int code = 1;
    BR_CHECK_OK(br_aio_run(busy_main, &b, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK(busy_all_seen(&b));
    BR_CHECK(b.yields > 0);
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    close(b.fds[0]);
    close(b.fds[1]);
    BR_CHECK_OK(br_event_destroy(&b.started));
    BR_CHECK_OK(br_event_destroy(&b.io_seen));
}

/* A task that does nothing but yield is cancelled at its next yield: by a task of its
 * loop (exactly its next call) and by another thread. */
typedef struct spin {
    long n, n_at_cancel;
    br_event running; /* set when it starts yielding */
    br_future *f;
} spin;

static int spinner(br_task *t) {
    spin *s = (spin *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_event_set(&s->running));
    int rc;
    while ((rc = br_aio_yield()) == 0)
        s->n++;
    return rc; /* BR_ECANCELED: ends CANCELLED */
}

static void spin_thread_cancels(void *arg) {
    spin *s = arg;
    /* Once it yields: it does nothing else from then on. */
    BR_CHECK_OK(br_event_wait(&s->running, br_test_hang_guard()));
    BR_CHECK(br_future_cancel(s->f));
}

static int spin_canceller(br_task *t) {
    spin *s = (spin *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_create_task(NULL, spinner, &s[0], 0, &s[0].f));
    BR_CHECK_OK(br_create_task(NULL, spinner, &s[1], 0, &s[1].f));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, spin_thread_cancels, &s[1], NULL));
    for (int i = 0; i < 10; i++)
        BR_CHECK_OK(br_aio_yield());
    s[0].n_at_cancel = s[0].n;
    BR_CHECK(br_future_cancel(s[0].f));
    BR_CHECK_OK(br_future_wait(s[0].f, br_test_hang_guard()));
    BR_CHECK(br_future_cancelled(s[0].f));
    /* The yield it was suspended in returned 0 (a yield checks for a request when it
     * is called, as it always did); the next one said BR_ECANCELED. */
    BR_CHECK_EQ(s[0].n, s[0].n_at_cancel + 1);
    BR_CHECK(s[0].n >= 9);
    /* The second one: cancelled by the other thread. */
    BR_CHECK_OK(br_future_wait(s[1].f, br_test_hang_guard()));
    BR_CHECK(br_future_cancelled(s[1].f));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    return 0;
}

static void yielding_tasks_are_cancelled_at_a_yield(void **state) {
    (void)state;
    spin s[2] = {0};
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_event_init(&s[i].running));
    int code = 1;
    BR_CHECK_OK(br_aio_run(spin_canceller, s, 0, &code));
    BR_CHECK_EQ(code, 0);
    br_future_release(s[0].f);
    br_future_release(s[1].f);
    for (int i = 0; i < 2; i++)
        BR_CHECK_OK(br_event_destroy(&s[i].running));
}

BR_TEST_MAIN(cmocka_unit_test(io_wait_in_coroutines), cmocka_unit_test(callbacks_in_order),
             cmocka_unit_test(yielders_keep_the_loops_order),
             cmocka_unit_test(yielders_let_timers_callbacks_and_io_run),
             cmocka_unit_test(yielding_tasks_are_cancelled_at_a_yield),
             cmocka_unit_test(callback_from_callback_runs_after),
             cmocka_unit_test(call_at_by_deadline), cmocka_unit_test(timer_cancel),
             cmocka_unit_test(timers_dropped_at_free),
             cmocka_unit_test(call_soon_threadsafe_wakes_sleeping_loop),
             cmocka_unit_test(stop_from_another_thread),
             cmocka_unit_test(until_complete_pool_future),
             cmocka_unit_test(free_with_live_tasks_is_busy),
             cmocka_unit_test(coroutine_calls_outside_a_loop),
             cmocka_unit_test(stack_too_small), cmocka_unit_test(reentry_refused),
             cmocka_unit_test(aio_run_returns_main_code),
             cmocka_unit_test(aio_run_cancels_the_rest),
             cmocka_unit_test(aio_run_sigint_cancels_main))
