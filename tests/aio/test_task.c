/* Coroutine tasks on a loop: results, awaiting, the ordinary primitives suspending
 * only the calling coroutine (woken from the same loop, another thread, another loop),
 * cancellation at every kind of blocking call, deadlines, timeout scopes and their
 * composition with outer cancels, ownership per coroutine, and many tasks at once.
 *
 * No test depends on timing. Where a test needs a coroutine to be parked before it
 * acts, it relies on the loop's order: a coroutine that set a flag and then blocks is
 * suspended by the time any other coroutine of the same loop runs again.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "aio/loop.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static br_loop *new_loop(void) {
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    return l;
}

/* Runs fn(arg) as the main task of a new loop; returns its final code. */
static int run_main(br_task_fn fn, void *arg) {
    int code = 1;
    BR_CHECK_OK(br_aio_run(fn, arg, 0, &code));
    return code;
}

/* Yields until *flag is set (within the hang guard). */
static void yield_until(_Atomic int *flag, int want) {
    int64_t guard = br_test_hang_guard();
    while (atomic_load(flag) < want) {
        if (br_now() > guard)
            fail_msg("flag %d never reached %d", atomic_load(flag), want);
        BR_CHECK_OK(br_aio_yield());
    }
}

/* --- results, awaiting ------------------------------------------------------------------- */

static int square(br_task *t) {
    int64_t v = br_task_arg_i64(t);
    return br_task_return_i64(t, v * v);
}

static int fails(br_task *t) { return br_task_fail(t, BR_ERANGE, "no %d", 7); }

static void task_results(void **state) {
    (void)state;
    br_loop *l = new_loop();
    int64_t arg = 12;
    br_future *a, *b;
    BR_CHECK_OK(br_create_task(l, square, &arg, sizeof arg, &a));
    arg = 0; /* copied at create */
    BR_CHECK_OK(br_create_task_opts(l, fails, NULL, 0, &(br_task_opts){.name = "failing"},
                                    &b));
    BR_CHECK_OK(br_loop_run_until_complete(l, a));
    BR_CHECK_OK(br_loop_run_until_complete(l, b));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(a, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 144);
    int code;
    const char *msg;
    BR_CHECK_OK(br_future_exception(b, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_ERANGE);
    BR_CHECK(strcmp(msg, "no 7") == 0);
    br_future_release(a);
    br_future_release(b);
    BR_CHECK_OK(br_loop_free(l));
}

static int awaits_two(br_task *t) {
    (void)t;
    BR_CHECK(br_aio_current_task() != NULL);
    br_future *x, *y;
    int64_t three = 3, four = 4;
    BR_CHECK_OK(br_create_task(NULL, square, &three, sizeof three, &x));
    BR_CHECK_OK(br_create_task(NULL, square, &four, sizeof four, &y));
    int64_t vx, vy;
    BR_CHECK_OK(br_future_result_i64(y, BR_FOREVER, &vx)); /* suspends */
    BR_CHECK_OK(br_future_result_i64(x, BR_FOREVER, &vy));
    br_future_release(x);
    br_future_release(y);
    return br_task_return_i64(t, vx + vy);
}

static void task_awaits_tasks(void **state) {
    (void)state;
    br_loop *l = new_loop();
    br_future *f;
    BR_CHECK_OK(br_create_task(l, awaits_two, NULL, 0, &f));
    BR_CHECK_OK(br_loop_run_until_complete(l, f));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 25);
    br_future_release(f);
    BR_CHECK_OK(br_loop_free(l));
}

/* A thread waits for a task of a loop running on another thread. */
static void loop_thread(void *arg) { BR_CHECK_OK(br_loop_run_forever(arg)); }

static void thread_waits_for_task(void **state) {
    (void)state;
    br_loop *l = new_loop();
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, loop_thread, l, NULL));
    br_future *fs[8];
    for (int64_t i = 0; i < 8; i++)
        BR_CHECK_OK(br_create_task(l, square, &i, sizeof i, &fs[i]));
    for (int64_t i = 0; i < 8; i++) {
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, i * i);
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_loop_stop(l));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    BR_CHECK_OK(br_loop_free(l));
}

/* --- a blocking call suspends only its coroutine --------------------------------------- */

typedef struct shared {
    br_event ev, ev2;
    br_lock lock;
    br_rlock rlock;
    br_queue *q;
    _Atomic int flag, progress;
    br_future *other;
    br_executor *pool;
    br_loop *loop2;
} shared;

static int pool_waits_event(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_event_wait(&s->ev, br_test_hang_guard()));
    return br_task_return_i64(t, 99);
}

static int awaits_pool(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    br_future *f;
    BR_CHECK_OK(br_submit(s->pool, pool_waits_event, s, 0, &f));
    atomic_store(&s->flag, 1);
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v)); /* suspends only us */
    br_future_release(f);
    BR_CHECK_EQ(atomic_load(&s->progress), 1);
    return br_task_return_i64(t, v);
}

static int makes_progress(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    yield_until(&s->flag, 1);
    atomic_store(&s->progress, 1); /* only possible if awaits_pool didn't block the thread */
    BR_CHECK_OK(br_event_set(&s->ev));
    return 0;
}

static void pool_future_suspends_only_the_coroutine(void **state) {
    (void)state;
    shared s = {0};
    BR_CHECK_OK(br_event_init(&s.ev));
    BR_CHECK_OK(br_threadpool_new(&s.pool, &(br_threadpool_opts){.max_workers = 1}));
    br_loop *l = new_loop();
    br_future *a, *b;
    BR_CHECK_OK(br_create_task(l, awaits_pool, &s, 0, &a));
    BR_CHECK_OK(br_create_task(l, makes_progress, &s, 0, &b));
    BR_CHECK_OK(br_loop_run_until_complete(l, a));
    BR_CHECK_OK(br_loop_run_until_complete(l, b));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(a, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 99);
    br_future_release(a);
    br_future_release(b);
    BR_CHECK_OK(br_loop_free(l));
    BR_CHECK_OK(br_executor_free(s.pool));
    br_event_destroy(&s.ev);
}

static int waits_event(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    atomic_fetch_add(&s->flag, 1);
    return br_event_wait(&s->ev, br_test_hang_guard());
}

static void setter_thread(void *arg) {
    shared *s = arg;
    int64_t guard = br_test_hang_guard();
    while (atomic_load(&s->flag) < 1) {
        if (br_now() > guard)
            fail_msg("the coroutine never waited");
        br_sleep(100 * BR_USEC);
    }
    br_sleep(BR_MSEC); /* most often it is asleep by now; either way must work */
    BR_CHECK_OK(br_event_set(&s->ev));
}

static void woken_by_another_thread(void **state) {
    (void)state;
    shared s = {0};
    BR_CHECK_OK(br_event_init(&s.ev));
    br_loop *l = new_loop();
    br_future *f;
    BR_CHECK_OK(br_create_task(l, waits_event, &s, 0, &f));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, setter_thread, &s, NULL));
    BR_CHECK_OK(br_loop_run_until_complete(l, f));
    BR_CHECK_OK(br_future_wait(f, BR_NOWAIT));
    BR_CHECK(!br_future_failed(f));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    br_future_release(f);
    BR_CHECK_OK(br_loop_free(l));
    br_event_destroy(&s.ev);
}

/* Ping-pong between coroutines of two loops on two threads, through two queues. */
typedef struct pp {
    br_queue *a2b, *b2a;
    int rounds;
} pp;

static int ping(br_task *t) {
    pp *p = (pp *)br_task_arg(t, NULL);
    for (intptr_t i = 0; i < p->rounds; i++) {
        BR_CHECK_OK(br_queue_put(p->a2b, (void *)(i + 1), BR_FOREVER));
        void *back;
        BR_CHECK_OK(br_queue_get(p->b2a, &back, br_test_hang_guard()));
        BR_CHECK_EQ((intptr_t)back, -(i + 1));
    }
    return 0;
}

static int pong(br_task *t) {
    pp *p = (pp *)br_task_arg(t, NULL);
    for (intptr_t i = 0; i < p->rounds; i++) {
        void *x;
        BR_CHECK_OK(br_queue_get(p->a2b, &x, br_test_hang_guard()));
        BR_CHECK_EQ((intptr_t)x, i + 1);
        BR_CHECK_OK(br_queue_put(p->b2a, (void *)-(intptr_t)x, BR_FOREVER));
    }
    return 0;
}

static void woken_by_another_loop(void **state) {
    (void)state;
    pp p = {.rounds = 2000};
    BR_CHECK_OK(br_queue_new(&p.a2b, NULL));
    BR_CHECK_OK(br_queue_new(&p.b2a, NULL));
    br_loop *l1 = new_loop(), *l2 = new_loop();
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, loop_thread, l2, NULL));
    br_future *fb, *fa;
    BR_CHECK_OK(br_create_task(l2, pong, &p, 0, &fb)); /* from this thread: the inbox */
    BR_CHECK_OK(br_create_task(l1, ping, &p, 0, &fa));
    BR_CHECK_OK(br_loop_run_until_complete(l1, fa));
    BR_CHECK_OK(br_future_wait(fb, br_test_hang_guard()));
    BR_CHECK(!br_future_failed(fa));
    BR_CHECK(!br_future_failed(fb));
    BR_CHECK_OK(br_loop_stop(l2));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    br_future_release(fa);
    br_future_release(fb);
    BR_CHECK_OK(br_loop_free(l1));
    BR_CHECK_OK(br_loop_free(l2));
    BR_CHECK_OK(br_queue_free(p.a2b));
    BR_CHECK_OK(br_queue_free(p.b2a));
}

/* --- ownership follows the coroutine ---------------------------------------------------- */

static int holds_lock(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_lock_acquire(&s->lock, BR_FOREVER));
    BR_CHECK(br_lock_owned(&s->lock));
    atomic_store(&s->flag, 1);
    yield_until(&s->progress, 1); /* the other one is suspended on the lock now */
    BR_CHECK_OK(br_lock_release(&s->lock));
    return 0;
}

static int wants_lock(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    yield_until(&s->flag, 1);
    BR_CHECK(!br_lock_owned(&s->lock)); /* same thread, another coroutine */
    BR_CHECK_ERR(br_lock_release(&s->lock), BR_EPERM);
    BR_CHECK_ERR(br_lock_acquire(&s->lock, BR_NOWAIT), BR_ETIMEDOUT);
    atomic_store(&s->progress, 1);
    BR_CHECK_OK(br_lock_acquire(&s->lock, br_test_hang_guard())); /* suspends */
    BR_CHECK(br_lock_owned(&s->lock));
    BR_CHECK_OK(br_lock_release(&s->lock));
    return 0;
}

static void lock_owned_per_coroutine(void **state) {
    (void)state;
    shared s = {0};
    BR_CHECK_OK(br_lock_init(&s.lock));
    br_loop *l = new_loop();
    br_future *a, *b;
    BR_CHECK_OK(br_create_task(l, holds_lock, &s, 0, &a));
    BR_CHECK_OK(br_create_task(l, wants_lock, &s, 0, &b));
    BR_CHECK_OK(br_loop_run_until_complete(l, b));
    BR_CHECK_OK(br_loop_run_until_complete(l, a));
    BR_CHECK(!br_future_failed(a));
    BR_CHECK(!br_future_failed(b));
    br_future_release(a);
    br_future_release(b);
    BR_CHECK_OK(br_loop_free(l));
    br_lock_destroy(&s.lock);
}

static int holds_rlock(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_rlock_acquire(&s->rlock, BR_FOREVER));
    BR_CHECK_OK(br_rlock_acquire(&s->rlock, BR_FOREVER));
    BR_CHECK_EQ(br_rlock_count(&s->rlock), 2);
    atomic_store(&s->flag, 1);
    yield_until(&s->progress, 1);
    BR_CHECK_OK(br_rlock_release(&s->rlock));
    BR_CHECK_OK(br_aio_yield()); /* still held once: the other stays suspended */
    BR_CHECK_EQ(atomic_load(&s->progress), 1);
    BR_CHECK_OK(br_rlock_release(&s->rlock));
    return 0;
}

static int wants_rlock(br_task *t) {
    shared *s = (shared *)br_task_arg(t, NULL);
    yield_until(&s->flag, 1);
    BR_CHECK(!br_rlock_owned(&s->rlock));
    BR_CHECK_ERR(br_rlock_release(&s->rlock), BR_EPERM);
    BR_CHECK_ERR(br_rlock_acquire(&s->rlock, BR_NOWAIT), BR_ETIMEDOUT);
    atomic_store(&s->progress, 1);
    BR_CHECK_OK(br_rlock_acquire(&s->rlock, br_test_hang_guard()));
    atomic_store(&s->progress, 2);
    BR_CHECK_EQ(br_rlock_count(&s->rlock), 1);
    BR_CHECK_OK(br_rlock_release(&s->rlock));
    return 0;
}

static void rlock_counts_per_coroutine(void **state) {
    (void)state;
    shared s = {0};
    BR_CHECK_OK(br_rlock_init(&s.rlock));
    br_loop *l = new_loop();
    br_future *a, *b;
    BR_CHECK_OK(br_create_task(l, holds_rlock, &s, 0, &a));
    BR_CHECK_OK(br_create_task(l, wants_rlock, &s, 0, &b));
    BR_CHECK_OK(br_loop_run_until_complete(l, b));
    BR_CHECK_OK(br_loop_run_until_complete(l, a));
    BR_CHECK_EQ(atomic_load(&s.progress), 2);
    BR_CHECK(!br_future_failed(a));
    BR_CHECK(!br_future_failed(b));
    br_future_release(a);
    br_future_release(b);
    BR_CHECK_OK(br_loop_free(l));
    br_rlock_destroy(&s.rlock);
}

/* --- cancellation at every kind of wait ---------------------------------------------------- */

enum { AT_LOCK, AT_QUEUE, AT_EVENT, AT_FUTURE, AT_SLEEP, AT_JOIN };

typedef struct cx {
    int where;
    shared *s;
    _Atomic int parked;
    int rc;
} cx;

static void idle_thread(void *arg) {
    shared *s = arg;
    BR_CHECK_OK(br_event_wait(&s->ev2, br_test_hang_guard()));
}

static int blocks_somewhere(br_task *t) {
    cx *c = (cx *)br_task_arg(t, NULL);
    shared *s = c->s;
    void *item;
    br_thread *th = NULL;
    if (c->where == AT_JOIN)
        BR_CHECK_OK(br_thread_start(&th, idle_thread, s, NULL));
    atomic_store(&c->parked, 1);
    switch (c->where) {
    case AT_LOCK:
        c->rc = br_lock_acquire(&s->lock, BR_FOREVER);
        break;
    case AT_QUEUE:
        c->rc = br_queue_get(s->q, &item, BR_FOREVER);
        break;
    case AT_EVENT:
        c->rc = br_event_wait(&s->ev, BR_FOREVER);
        break;
    case AT_FUTURE:
        c->rc = br_future_wait(s->other, BR_FOREVER);
        break;
    case AT_SLEEP:
        c->rc = br_aio_sleep(3600 * BR_SEC);
        break;
    case AT_JOIN:
        c->rc = br_thread_join(th, BR_FOREVER);
        BR_CHECK_OK(br_event_set(&s->ev2));
        BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
        br_thread_free(th);
        break;
    }
    return c->rc;
}

static int cancels_it(br_task *t) {
    cx *c = (cx *)br_task_arg(t, NULL);
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, blocks_somewhere, c, 0, &f));
    yield_until(&c->parked, 1);
    BR_CHECK_OK(br_aio_yield()); /* the loop has run it into its wait by now */
    BR_CHECK(br_future_running(f));
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_ERR(br_future_wait(f, br_test_hang_guard()), 0);
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    return 0;
}

static void cancel_at(int where) {
    shared s = {0};
    BR_CHECK_OK(br_lock_init(&s.lock));
    BR_CHECK_OK(br_event_init(&s.ev));
    BR_CHECK_OK(br_event_init(&s.ev2));
    BR_CHECK_OK(br_queue_new(&s.q, NULL));
    BR_CHECK_OK(br_future_new(&s.other));
    BR_CHECK_OK(br_lock_acquire(&s.lock, BR_NOWAIT)); /* held by this thread */
    cx c = {.where = where, .s = &s};
    BR_CHECK_EQ(run_main(cancels_it, &c), 0);
    BR_CHECK_EQ(c.rc, BR_ECANCELED);
    /* Nothing was consumed: the primitives are as they were. */
    BR_CHECK(br_lock_locked(&s.lock));
    BR_CHECK_OK(br_lock_release(&s.lock));
    BR_CHECK(br_queue_empty(s.q));
    BR_CHECK(!br_event_is_set(&s.ev));
    BR_CHECK(!br_future_done(s.other));
    br_future_release(s.other);
    BR_CHECK_OK(br_queue_free(s.q));
    br_event_destroy(&s.ev);
    br_event_destroy(&s.ev2);
    br_lock_destroy(&s.lock);
}

static void cancel_at_lock(void **state) { (void)state, cancel_at(AT_LOCK); }
static void cancel_at_queue(void **state) { (void)state, cancel_at(AT_QUEUE); }
static void cancel_at_event(void **state) { (void)state, cancel_at(AT_EVENT); }
static void cancel_at_future(void **state) { (void)state, cancel_at(AT_FUTURE); }
static void cancel_at_sleep(void **state) { (void)state, cancel_at(AT_SLEEP); }
static void cancel_at_join(void **state) { (void)state, cancel_at(AT_JOIN); }

/* A cancel from another thread reaches a coroutine asleep in a loop that sleeps. */
typedef struct xc {
    br_loop *loop;
    br_future *f;
    cx c;
} xc;

static void canceller_thread(void *arg) {
    xc *x = arg;
    int64_t guard = br_test_hang_guard();
    while (atomic_load(&x->c.parked) < 1) {
        if (br_now() > guard)
            fail_msg("never parked");
        br_sleep(100 * BR_USEC);
    }
    BR_CHECK(br_future_request_cancel(x->f));
}

static void cancel_from_another_thread(void **state) {
    (void)state;
    shared s = {0};
    BR_CHECK_OK(br_event_init(&s.ev));
    xc x = {.loop = new_loop(), .c = {.where = AT_EVENT, .s = &s}};
    BR_CHECK_OK(br_create_task(x.loop, blocks_somewhere, &x.c, 0, &x.f));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, canceller_thread, &x, NULL));
    BR_CHECK_OK(br_loop_run_until_complete(x.loop, x.f));
    BR_CHECK(br_future_cancelled(x.f));
    BR_CHECK_EQ(x.c.rc, BR_ECANCELED);
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    br_future_release(x.f);
    BR_CHECK_OK(br_loop_free(x.loop));
    br_event_destroy(&s.ev);
}

/* A cancel that arrives while the task runs (not parked) is reported by its next
 * suspension point, once; a park with BR_NOWAIT reports it too. */
static int self_cancel(br_task *t) {
    BR_CHECK(br_future_request_cancel(br_aio_current_task()));
    BR_CHECK(br_task_cancelled(t));
    BR_CHECK_ERR(br_aio_yield(), BR_ECANCELED);
    BR_CHECK_OK(br_aio_yield()); /* reported once */
    /* A call that parks with BR_NOWAIT reports a pending request too. */
    BR_CHECK(br_future_request_cancel(br_aio_current_task()));
    BR_CHECK_ERR(br_aio_sleep_until(BR_NOWAIT), BR_ECANCELED);
    BR_CHECK_OK(br_aio_sleep_until(BR_NOWAIT));
    return BR_ECANCELED;
}

static void cancel_reported_once(void **state) {
    (void)state;
    br_loop *l = new_loop();
    br_future *f;
    BR_CHECK_OK(br_create_task(l, self_cancel, NULL, 0, &f));
    BR_CHECK_OK(br_loop_run_until_complete(l, f));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    BR_CHECK_OK(br_loop_free(l));
}

/* A task cancelled before it starts never runs. */
static _Atomic int never_ran;
static int must_not_run(br_task *t) {
    (void)t;
    atomic_store(&never_ran, 1);
    return 0;
}

static void cancel_before_start(void **state) {
    (void)state;
    br_loop *l = new_loop();
    br_future *f, *g;
    BR_CHECK_OK(br_create_task(l, must_not_run, NULL, 0, &f));
    BR_CHECK_OK(br_create_task(l, square, NULL, 0, &g));
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_OK(br_loop_run_until_complete(l, g));
    BR_CHECK(br_future_cancelled(f));
    BR_CHECK_EQ(atomic_load(&never_ran), 0);
    br_future_release(f);
    br_future_release(g);
    BR_CHECK_OK(br_loop_free(l));
}

/* --- deadlines ------------------------------------------------------------------------------- */

static int deadlines(br_task *t) {
    (void)t;
    br_event e;
    BR_CHECK_OK(br_event_init(&e));
    BR_CHECK_ERR(br_event_wait(&e, BR_NOWAIT), BR_ETIMEDOUT);
    int64_t before = br_now();
    BR_CHECK_ERR(br_event_wait(&e, br_deadline_after(2 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK(br_now() >= before + 2 * BR_MSEC);
    br_queue *q;
    BR_CHECK_OK(br_queue_new(&q, NULL));
    void *x;
    BR_CHECK_ERR(br_queue_get(q, &x, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_queue_free(q));
    BR_CHECK_OK(br_aio_sleep_until(BR_NOWAIT));
    BR_CHECK_OK(br_aio_sleep(0));
    br_event_destroy(&e);
    return 0;
}

static void deadlines_in_coroutines(void **state) {
    (void)state;
    BR_CHECK_EQ(run_main(deadlines, NULL), 0);
}

/* --- timeout scopes ---------------------------------------------------------------------------- */

static int nested_scopes(br_task *t) {
    (void)t;
    br_timeout_scope outer, inner;
    /* The inner one fires: it reports BR_ETIMEDOUT, the outer nothing. */
    BR_CHECK_OK(br_timeout_enter(&outer, br_deadline_after(3600 * BR_SEC)));
    BR_CHECK_OK(br_timeout_enter(&inner, br_deadline_after(BR_MSEC)));
    BR_CHECK_ERR(br_aio_sleep(3600 * BR_SEC), BR_ECANCELED);
    BR_CHECK_ERR(br_timeout_leave(&outer), BR_EINVAL); /* not the innermost */
    BR_CHECK_ERR(br_timeout_leave(&inner), BR_ETIMEDOUT);
    BR_CHECK_OK(br_aio_sleep(BR_MSEC)); /* nothing pending any more */
    BR_CHECK_OK(br_timeout_leave(&outer));

    /* The outer one fires: the inner one reports BR_ECANCELED, the outer BR_ETIMEDOUT. */
    BR_CHECK_OK(br_timeout_enter(&outer, br_deadline_after(BR_MSEC)));
    BR_CHECK_OK(br_timeout_enter(&inner, br_deadline_after(3600 * BR_SEC)));
    BR_CHECK_ERR(br_aio_sleep(3600 * BR_SEC), BR_ECANCELED);
    BR_CHECK_ERR(br_timeout_leave(&inner), BR_ECANCELED);
    BR_CHECK_ERR(br_timeout_leave(&outer), BR_ETIMEDOUT);

    /* A scope that doesn't fire, and one rescheduled into the past. */
    BR_CHECK_OK(br_timeout_enter(&outer, br_deadline_after(3600 * BR_SEC)));
    BR_CHECK_OK(br_aio_sleep(BR_MSEC));
    BR_CHECK_OK(br_timeout_reschedule(&outer, br_deadline_after(BR_MSEC)));
    BR_CHECK_ERR(br_aio_sleep(3600 * BR_SEC), BR_ECANCELED);
    BR_CHECK_ERR(br_timeout_reschedule(&outer, BR_FOREVER), BR_ESTATE);
    BR_CHECK_ERR(br_timeout_leave(&outer), BR_ETIMEDOUT);
    BR_CHECK(!br_task_cancelled(t));
    return 0;
}

static void timeout_scopes_nest(void **state) {
    (void)state;
    BR_CHECK_EQ(run_main(nested_scopes, NULL), 0);
}

/* A scope's timeout and an outer cancel land together: leave reports BR_ECANCELED (the
 * outer cancel stays) and the task ends cancelled (cpython#86296, #116720). */
typedef struct both {
    _Atomic int parked;
    int sleep_rc, leave_rc, after_rc;
} both;

static int scope_sleeper(br_task *t) {
    both *b = (both *)br_task_arg(t, NULL);
    br_timeout_scope s;
    BR_CHECK_OK(br_timeout_enter(&s, br_now())); /* due at the loop's next timer step */
    atomic_store(&b->parked, 1);
    b->sleep_rc = br_aio_sleep(3600 * BR_SEC);
    b->leave_rc = br_timeout_leave(&s);
    return b->leave_rc;
}

static int cancels_scoped(br_task *t) {
    both *b = (both *)br_task_arg(t, NULL);
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, scope_sleeper, b, 0, &f));
    yield_until(&b->parked, 1); /* it is asleep: its scope fires before it runs again */
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_OK(br_future_wait(f, br_test_hang_guard()));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    return 0;
}

static void scope_and_outer_cancel_together(void **state) {
    (void)state;
    both b = {0};
    BR_CHECK_EQ(run_main(cancels_scoped, &b), 0);
    BR_CHECK_EQ(b.sleep_rc, BR_ECANCELED);
    BR_CHECK_EQ(b.leave_rc, BR_ECANCELED);
}

/* An outer cancel inside a scope that never fires: leave reports BR_ECANCELED. */
static int scope_outer_only(br_task *t) {
    both *b = (both *)br_task_arg(t, NULL);
    br_timeout_scope s;
    BR_CHECK_OK(br_timeout_enter(&s, br_deadline_after(3600 * BR_SEC)));
    atomic_store(&b->parked, 1);
    b->sleep_rc = br_aio_sleep(3600 * BR_SEC);
    b->leave_rc = br_timeout_leave(&s);
    return b->leave_rc;
}

static int cancels_unfired(br_task *t) {
    both *b = (both *)br_task_arg(t, NULL);
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, scope_outer_only, b, 0, &f));
    yield_until(&b->parked, 1);
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_OK(br_future_wait(f, br_test_hang_guard()));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    return 0;
}

static void outer_cancel_inside_scope(void **state) {
    (void)state;
    both b = {0};
    BR_CHECK_EQ(run_main(cancels_unfired, &b), 0);
    BR_CHECK_EQ(b.sleep_rc, BR_ECANCELED);
    BR_CHECK_EQ(b.leave_rc, BR_ECANCELED);
}

/* The reverse: a cancel already pending when the scope is entered stays the outer's. */
static int cancelled_then_scope(br_task *t) {
    (void)t;
    BR_CHECK(br_future_request_cancel(br_aio_current_task()));
    br_timeout_scope s;
    BR_CHECK_OK(br_timeout_enter(&s, br_deadline_after(3600 * BR_SEC)));
    BR_CHECK_ERR(br_aio_sleep(3600 * BR_SEC), BR_ECANCELED);
    BR_CHECK_OK(br_timeout_leave(&s)); /* the request came before the scope: not its business */
    return BR_ECANCELED;
}

static void scope_inside_outer_cancel(void **state) {
    (void)state;
    BR_CHECK_EQ(run_main(cancelled_then_scope, NULL), BR_ECANCELED);
}

/* --- many tasks ----------------------------------------------------------------------------------- */

static int sleep_then_value(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    int rc = br_aio_sleep(BR_MSEC);
    if (rc != 0)
        return rc;
    return br_task_return_i64(t, i * 3 + 1);
}

typedef struct many {
    size_t n;
    br_future **fs;
} many;

static int spawns_many(br_task *t) {
    many *m = (many *)br_task_arg(t, NULL);
    br_task_opts o = {.stack_size = 64 << 10};
    for (size_t i = 0; i < m->n; i++) {
        int64_t v = (int64_t)i;
        BR_CHECK_OK(br_create_task_opts(NULL, sleep_then_value, &v, sizeof v, &o, &m->fs[i]));
    }
    BR_CHECK_OK(br_aio_yield()); /* all of them started: all alive, all asleep */
    int64_t sum = 0;
    for (size_t i = 0; i < m->n; i++) {
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(m->fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, (int64_t)i * 3 + 1);
        sum += v;
        br_future_release(m->fs[i]);
    }
    int64_t n = (int64_t)m->n;
    BR_CHECK_EQ(sum, 3 * n * (n - 1) / 2 + n);
    return 0;
}

static void hundred_thousand_tasks(void **state) {
    (void)state;
    many m = {.n = (size_t)br_test_scaled(100000, 100000)};
    /* The re-run with every task on a shared stack (tests/aio/tests.cmake) is there for
     * the parks, not the count: under a sanitizer it keeps 20,000 alive (as
     * test_shared_stacks.c does), not 100,000. */
    if (br__loop_shared_default)
        m.n = (size_t)br_test_scaled(100000, 20000);
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer counts each coroutine alive as a thread (8128 at most), and makes
     * each one's context at ~14 ms: 2,000 took 28 s of CI's time. */
    m.n = 500;
#elif defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer: 100,000 own-stack tasks took 44 s of CI's time there. The plain
     * build holds the whole count; this one checks the same code for memory errors. */
    m.n = 20000;
#endif
    m.fs = calloc(m.n, sizeof *m.fs);
    BR_CHECK(m.fs != NULL);
    BR_CHECK_EQ(run_main(spawns_many, &m), 0);
    free(m.fs);
}

/* --- the dump ------------------------------------------------------------------------------------ */

static int sleeper_long(br_task *t) {
    (void)t;
    return br_aio_sleep(3600 * BR_SEC);
}

static int dumps(br_task *t) {
    (void)t;
    br_future *f;
    BR_CHECK_OK(br_create_task_opts(NULL, sleeper_long, NULL, 0,
                                    &(br_task_opts){.name = "napper"}, &f));
    BR_CHECK_OK(br_aio_yield());
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    BR_CHECK(mem != NULL);
    size_t n = br_aio_dump(mem);
    fclose(mem);
    BR_CHECK_EQ(n, 2);
    BR_CHECK(strstr(buf, "napper suspended") != NULL);
    BR_CHECK(strstr(buf, "running") != NULL);
    free(buf);
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_OK(br_future_wait(f, br_test_hang_guard()));
    br_future_release(f);
    return 0;
}

static void dump_lists_coroutines(void **state) {
    (void)state;
    BR_CHECK_EQ(run_main(dumps, NULL), 0);
}

/* A task's name as the listing (br_aio_dump, br__atask_name) reports it and as its
 * coroutine reports it (br__coro_name: the overflow message, TSan's fiber) are one:
 * "Task-<n>" by default, n the task's number, made on demand by both; a given name cut
 * to 31 bytes. Tasks of both stack modes, named and not, and the main task. */
enum { NNAMED = 4 };
struct named {
    char listed[NNAMED + 1][40], coro[NNAMED + 1][40];
    uint64_t id[NNAMED + 1];
    _Atomic int in;
    br_event go;
};

static void note_name(struct named *nm, int i) {
    br__atask *a = br__atask_current();
    char nb[32], cb[BR__CORO_NAME_MAX];
    snprintf(nm->listed[i], sizeof nm->listed[i], "%s", br__atask_name(a, nb));
    snprintf(nm->coro[i], sizeof nm->coro[i], "%s", br__coro_name(a->co, cb));
    nm->id[i] = a->id;
}

static int named_task(br_task *t) {
    struct named *nm = *(struct named *const *)br_task_arg(t, NULL);
    int i = atomic_fetch_add(&nm->in, 1);
    note_name(nm, i);
    return br_event_wait(&nm->go, br_test_hang_guard());
}

static int names_main(br_task *t) {
    struct named *nm = *(struct named *const *)br_task_arg(t, NULL);
    const char *given = "a-name-of-more-than-thirty-one-bytes";
    br_task_opts opts[NNAMED] = {{.shared_stack = true}, {.own_stack = true},
                                 {.shared_stack = true, .name = given},
                                 {.own_stack = true, .name = "worker"}};
    br_future *fs[NNAMED];
    for (int i = 0; i < NNAMED; i++) {
        BR_CHECK_OK(br_create_task_opts(NULL, named_task, &nm, sizeof nm, &opts[i], &fs[i]));
        while (atomic_load(&nm->in) <= i) /* in order: slot i is task i */
            BR_CHECK_OK(br_aio_yield());
    }
    note_name(nm, NNAMED); /* the main task's */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    BR_CHECK(mem != NULL);
    BR_CHECK_EQ(br_aio_dump(mem), NNAMED + 1);
    fclose(mem);
    for (int i = 0; i <= NNAMED; i++) {
        BR_CHECK(strcmp(nm->listed[i], nm->coro[i]) == 0);
        char want[40];
        if (i == 2)
            snprintf(want, sizeof want, "%.31s", given);
        else if (i == 3)
            snprintf(want, sizeof want, "worker");
        else
            snprintf(want, sizeof want, "Task-%llu", (unsigned long long)nm->id[i]);
        if (strcmp(nm->coro[i], want) != 0)
            fail_msg("task %d is named '%s', want '%s'", i, nm->coro[i], want);
        char line[64];
        snprintf(line, sizeof line, "%s %s", want, i == NNAMED ? "running" : "suspended");
        if (strstr(buf, line) == NULL)
            fail_msg("no '%s' in the listing:\n%s", line, buf);
    }
    BR_CHECK(nm->id[0] != nm->id[1]);
    free(buf);
    BR_CHECK_OK(br_event_set(&nm->go));
    for (int i = 0; i < NNAMED; i++) {
        BR_CHECK_OK(br_future_result(fs[i], br_test_hang_guard(), NULL, NULL));
        br_future_release(fs[i]);
    }
    return 0;
}

static void names_of_tasks_and_their_coroutines(void **state) {
    (void)state;
    struct named nm;
    memset(&nm, 0, sizeof nm);
    atomic_init(&nm.in, 0);
    BR_CHECK_OK(br_event_init(&nm.go));
    struct named *p = &nm;
    BR_CHECK_EQ(run_main(names_main, &p), 0);
    br_event_destroy(&nm.go);
}

BR_TEST_MAIN(cmocka_unit_test(task_results), cmocka_unit_test(names_of_tasks_and_their_coroutines),
             cmocka_unit_test(task_awaits_tasks),
             cmocka_unit_test(thread_waits_for_task),
             cmocka_unit_test(pool_future_suspends_only_the_coroutine),
             cmocka_unit_test(woken_by_another_thread),
             cmocka_unit_test(woken_by_another_loop),
             cmocka_unit_test(lock_owned_per_coroutine),
             cmocka_unit_test(rlock_counts_per_coroutine), cmocka_unit_test(cancel_at_lock),
             cmocka_unit_test(cancel_at_queue), cmocka_unit_test(cancel_at_event),
             cmocka_unit_test(cancel_at_future), cmocka_unit_test(cancel_at_sleep),
             cmocka_unit_test(cancel_at_join), cmocka_unit_test(cancel_from_another_thread),
             cmocka_unit_test(cancel_reported_once), cmocka_unit_test(cancel_before_start),
             cmocka_unit_test(deadlines_in_coroutines), cmocka_unit_test(timeout_scopes_nest),
             cmocka_unit_test(scope_and_outer_cancel_together),
             cmocka_unit_test(outer_cancel_inside_scope),
             cmocka_unit_test(scope_inside_outer_cancel),
             cmocka_unit_test(hundred_thousand_tasks),
             cmocka_unit_test(dump_lists_coroutines))
