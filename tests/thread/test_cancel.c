/* BR_ECANCELED through the thread layer: every blocking call, made in a cancellable
 * context (the tests' parker, tests/parker.h, standing in for a coroutine), against
 * the contract of core/lib.h:
 *  - cancelled while it waits: BR_ECANCELED, and the primitive is as if the call had
 *    never been made (no lock, unit or wake-up taken or lost, no waiter left linked,
 *    the state bits right), and it goes on working for others;
 *  - a cancel posted before the call: BR_ECANCELED at once if the call has to wait; no
 *    effect (0, the cancel stays pending) if it doesn't;
 *  - a wake and a cancel together, many times: exactly one of them ends the call, and
 *    when the wake wins the cancel stays pending; nothing is ever lost.
 * Sleeps and deadlines here are only hang guards or give a thread time to reach a
 * state that is then checked; no test measures speed.
 *
 * braid-test-timeout: 120
 */
#include "cancel_util.h"
#include "thread_util.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- a caller: one blocking call on its own thread, cancellable or plain -------------- */

typedef struct caller caller;
typedef int (*call_fn)(caller *c);

struct caller {
    br_test_ctx ctx;   /* the caller runs as this context unless started plain */
    br_test_call call; /* rc, and whether a cancel was pending when it returned */
    call_fn fn;
    void *obj;        /* what the call works on */
    void *obj2;       /* a second object, per call */
    int64_t deadline; /* BR_FOREVER unless set */
    unsigned levels;  /* RLock depth to take before a condition wait */
    /* Results, written by the caller's thread, read after it finished. */
    bool owned;     /* the caller held the lock when the call returned */
    unsigned depth; /* at this RLock depth */
    int ran;        /* a BR_WITH block ran */
};

static int caller_main(void *arg) {
    caller *c = arg;
    return c->fn(c);
}

/* Zeroes c and sets it up to call fn on obj (deadline BR_FOREVER); caller_run starts
 * it on a new thread, caller_start does both. */
static void caller_init(caller *c, call_fn fn, void *obj) {
    memset(c, 0, sizeof *c);
    c->fn = fn;
    c->obj = obj;
    c->deadline = BR_FOREVER;
}

/* Runs the call as c's context, with a cancel posted to it first if cancel_first. */
static void caller_run(caller *c, bool cancel_first) {
    br_test_call_start(&c->call, &c->ctx, caller_main, c, cancel_first);
}

/* Runs the call on a plain thread: never cancelled. */
static void caller_run_plain(caller *c) {
    br_test_call_start(&c->call, NULL, caller_main, c, false);
}

static void caller_start(caller *c, call_fn fn, void *obj) {
    caller_init(c, fn, obj);
    caller_run(c, false);
}

static void start_plain(caller *c, call_fn fn, void *obj) {
    caller_init(c, fn, obj);
    caller_run_plain(c);
}

/* Starts the call and returns once it sleeps in its first park. */
static void caller_park(caller *c, call_fn fn, void *obj) {
    caller_start(c, fn, obj);
    br_test_call_wait_parked(&c->call);
}

/* Runs the call with a cancel posted before it, until it returns. */
static void call_after_cancel(caller *c, call_fn fn, void *obj) {
    caller_init(c, fn, obj);
    caller_run(c, true);
    br_test_call_join(&c->call);
}

/* Starts the call and returns once it has entered its first park (not necessarily
 * asleep yet): for races. */
static void caller_enter(caller *c, call_fn fn, void *obj) {
    caller_start(c, fn, obj);
    int64_t give_up = br_test_hang_guard();
    while (atomic_load(&c->ctx.parks) < 1) {
        if (br_now() > give_up)
            fail_msg("the caller never parked");
        sched_yield();
    }
}

/* A cancel and a wake from this thread, in an order and with a gap that change with i:
 * sometimes the wake comes first, sometimes the cancel, sometimes both within a few
 * nanoseconds of each other. The call may return before the cancel is even posted, so
 * a race asks the context whether a cancel is pending once both are done
 * (br_test_wake_won; the call's own `pending` may predate the cancel). */
static void cancel_and_wake(br_test_ctx *ctx, long i, void (*wake)(void *), void *arg) {
    unsigned gap = (unsigned)(i % 7) * 40;
    if (i % 2 == 0) {
        br_test_ctx_cancel(ctx);
        for (unsigned k = 0; k < gap; k++)
            br__cpu_relax();
        wake(arg);
    } else {
        wake(arg);
        for (unsigned k = 0; k < gap; k++)
            br__cpu_relax();
        br_test_ctx_cancel(ctx);
    }
}

/* Round i of a race for a call that has entered its park: cancel_and_wake, then the
 * call's return. True if the wake won (counted in *won), false if the cancel did
 * (br_test_wake_won). */
static bool race_round(caller *a, long i, void (*wake)(void *), void *arg, long *won) {
    cancel_and_wake(&a->ctx, i, wake, arg);
    br_test_call_join(&a->call);
    bool wake_won = br_test_wake_won(&a->call);
    *won += wake_won;
    return wake_won;
}

/* --- Lock ----------------------------------------------------------------------------- */

static uint32_t lock_state(br_lock *l) {
    return atomic_load(&BR__LOCK_IMPL(l)->state);
}
static int lock_queued(br_lock *l) {
    return br__wq_len(&BR__LOCK_IMPL(l)->wq);
}

static int call_lock_acquire(caller *c) {
    int rc = br_lock_acquire(c->obj, c->deadline);
    if (rc == 0) {
        c->owned = br_lock_owned(c->obj);
        br_lock_release(c->obj);
    }
    return rc;
}

/* Cancelled while asleep in the queue: unlinked, WAITERS cleared, the lock untouched
 * and still usable by everyone. */
static void lock_cancel_while_parked(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    caller c;
    caller_park(&c, call_lock_acquire, &l);
    BR_CHECK_EQ(lock_queued(&l), 1);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED | BR__LOCK_WAITERS);

    br_test_call_cancel(&c.call); /* BR_ECANCELED, the cancel consumed */
    BR_CHECK_EQ(lock_queued(&l), 0);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED); /* WAITERS went with the last sleeper */
    BR_CHECK(br_lock_owned(&l));                  /* still ours */

    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK_EQ(lock_state(&l), 0);
    caller d; /* another context takes it normally */
    caller_start(&d, call_lock_acquire, &l);
    br_test_call_join(&d.call);
    BR_CHECK_OK(d.call.rc);
    BR_CHECK(d.owned);
    BR_CHECK_OK(br_lock_destroy(&l)); /* nobody queued, nobody holds it */
}

/* A cancel posted before the call: BR_ECANCELED at once on a held lock; on a free
 * lock the acquire doesn't wait, so it succeeds and the cancel stays pending. */
static void lock_cancel_before_the_call(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    caller c;
    call_after_cancel(&c, call_lock_acquire, &l);
    br_test_check_cancelled_at_once(&c.call); /* one park, which returned at once */
    BR_CHECK_EQ(lock_queued(&l), 0);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED);
    BR_CHECK_OK(br_lock_release(&l));

    call_after_cancel(&c, call_lock_acquire, &l);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK(c.owned);
    br_test_check_cancel_kept(&c.call); /* never looked at */
    BR_CHECK_EQ(lock_state(&l), 0);
}

/* The retry path: a sleeper woken by a release that a barger beat to the lock queues
 * again, asking for the lock to be handed over (a coroutine asks at once). A cancel ends that second wait too, and a cancel that arrives
 * together with the wake is not lost across the retry. br__lock_wake_slow with the
 * lock held is exactly "released, and at once re-taken by a barger". */
static void lock_cancel_after_losing_to_a_barger(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    struct br__lock *L = BR__LOCK_IMPL(&l);
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));

    caller c;
    caller_park(&c, call_lock_acquire, &l);
    br__lock_wake_slow(L);             /* woken; the lock is still held */
    br_test_ctx_wait_parks(&c.ctx, 2); /* so it retried, lost, and sleeps again */
    BR_CHECK_EQ(lock_queued(&l), 1);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED | BR__LOCK_WAITERS | BR__LOCK_HANDOFF);
    br_test_call_cancel(&c.call);
    BR_CHECK_EQ(lock_queued(&l), 0);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED);

    /* The cancel and the wake together: whichever the sleeper sees first, the lock is
     * still held when it retries, so its wait must end in BR_ECANCELED, not hang. */
    caller_park(&c, call_lock_acquire, &l);
    br_test_ctx_cancel(&c.ctx);
    br__lock_wake_slow(L);
    br_test_call_join(&c.call);
    br_test_check_cancelled(&c.call);
    BR_CHECK_EQ(lock_queued(&l), 0);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED);
    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK_EQ(lock_state(&l), 0);
}

static void release_lock(void *l) {
    BR_CHECK_OK(br_lock_release(l));
}

/* A release and a cancel together, with a plain thread queued behind the cancelled
 * one. Either the context got the lock (the cancel is pending) or BR_ECANCELED (not
 * pending); either way the thread behind it gets the lock: a wake the context was
 * given is never dropped with the sleepers behind it left asleep on a free lock. */
static void lock_release_or_cancel_race(void **state) {
    (void)state;
    long rounds = br_test_scaled(2000, 200), won = 0;
    for (long i = 0; i < rounds; i++) {
        br_lock l = BR_LOCK_INIT;
        BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
        caller a, b;
        caller_enter(&a, call_lock_acquire, &l);
        TU_WAIT_FOR(lock_queued(&l) == 1);
        start_plain(&b, call_lock_acquire, &l);
        TU_WAIT_FOR(lock_queued(&l) == 2);

        if (race_round(&a, i, release_lock, &l, &won))
            BR_CHECK(a.owned);
        br_test_call_join(&b.call);
        BR_CHECK_OK(b.call.rc);
        BR_CHECK(b.owned);
        BR_CHECK_EQ(lock_queued(&l), 0);
        BR_CHECK_EQ(lock_state(&l), 0);
    }
    print_message("lock: the wake won %ld of %ld rounds\n", won, rounds);
}

/* --- RLock ---------------------------------------------------------------------------- */

static int call_rlock_acquire(caller *c) {
    int rc = br_rlock_acquire(c->obj, c->deadline);
    c->owned = br_rlock_owned(c->obj);
    c->depth = br_rlock_count(c->obj);
    if (rc == 0)
        br_rlock_release(c->obj);
    return rc;
}

/* Re-entering: never waits, so a pending cancel is not looked at. */
static int call_rlock_reenter(caller *c) {
    int rc = br_rlock_acquire(c->obj, c->deadline);
    if (rc != 0)
        return rc;
    rc = br_rlock_acquire(c->obj, c->deadline);
    c->depth = br_rlock_count(c->obj);
    br_rlock_release(c->obj);
    if (rc == 0)
        br_rlock_release(c->obj);
    return rc;
}

static void rlock_cancel_while_parked(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    struct br__rlock *R = BR__RLOCK_IMPL(&r);
    BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    caller c;
    caller_park(&c, call_rlock_acquire, &r);
    BR_CHECK_EQ(br__wq_len(&R->lock.wq), 1);
    br_test_call_cancel(&c.call);
    BR_CHECK(!c.owned);
    BR_CHECK_EQ(c.depth, 0);
    BR_CHECK_EQ(br__wq_len(&R->lock.wq), 0);
    BR_CHECK_EQ(atomic_load(&R->lock.state), BR__LOCK_LOCKED);
    BR_CHECK_EQ(br_rlock_count(&r), 2); /* ours, untouched */
    BR_CHECK_OK(br_rlock_release(&r));
    BR_CHECK_OK(br_rlock_release(&r));
    BR_CHECK_EQ(atomic_load(&R->lock.state), 0);

    caller_start(&c, call_rlock_acquire, &r); /* still works */
    br_test_call_join(&c.call);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK_EQ(c.depth, 1);

    call_after_cancel(&c, call_rlock_reenter, &r); /* pending cancel, nothing to wait for */
    BR_CHECK_OK(c.call.rc);
    BR_CHECK_EQ(c.depth, 2);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_OK(br_rlock_destroy(&r));
}

/* --- Condition ------------------------------------------------------------------------ */

/* Does the caller hold the condition's lock, and at what depth (1 for a br_lock)? */
static bool cond_lock_held(br_cond *cv, unsigned *depth) {
    struct br__cond *c = BR__COND_IMPL(cv);
    uint32_t kind = atomic_load(&c->kind);
    if (kind == BR__COND_LOCK) {
        bool held = br_lock_owned(c->lock);
        *depth = held ? 1 : 0;
        return held;
    }
    br_rlock *r = kind == BR__COND_OWN ? (br_rlock *)(void *)&c->own : c->lock;
    *depth = br_rlock_count(r);
    return br_rlock_owned(r);
}

static bool flag_pred(void *arg) {
    return atomic_load((atomic_bool *)arg);
}

/* Takes the lock `levels` times, waits (wait_for if obj2 is a flag), records whether
 * it holds the lock and how deep, and lets go. */
static int call_cond_wait(caller *c) {
    br_cond *cv = c->obj;
    unsigned levels = c->levels ? c->levels : 1;
    for (unsigned i = 0; i < levels; i++)
        if (br_cond_acquire(cv, BR_FOREVER) != 0)
            return 98;
    int rc = c->obj2 ? br_cond_wait_for(cv, flag_pred, c->obj2, c->deadline)
                     : br_cond_wait(cv, c->deadline);
    c->owned = cond_lock_held(cv, &c->depth);
    for (unsigned i = 0; c->owned && i < c->depth; i++)
        br_cond_release(cv);
    return rc;
}

static int cond_queued(br_cond *cv) {
    return br__wq_len(&BR__COND_IMPL(cv)->wq);
}

/* Cancelled while waiting, over each kind of lock: BR_ECANCELED only once the lock is
 * held again at the same depth; taking it back waits for the holder and can't be
 * cancelled (a second cancel then stays pending). */
static void cond_wait_cancel_takes_the_lock_back(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        br_lock l = BR_LOCK_INIT;
        br_rlock r = BR_RLOCK_INIT;
        br_cond cv = BR_COND_INIT;
        if (kind == 1)
            BR_CHECK_OK(br_cond_init(&cv, &l));
        if (kind == 2)
            BR_CHECK_OK(br_cond_init(&cv, &r));
        unsigned levels = kind == 1 ? 1 : 3;

        caller c;
        caller_init(&c, call_cond_wait, &cv);
        c.levels = levels;
        caller_run(&c, false);
        br_test_call_wait_parked(&c.call); /* its only park so far: the wait */
        BR_CHECK_EQ(cond_queued(&cv), 1);
        BR_CHECK_OK(br_cond_acquire(&cv, BR_FOREVER)); /* released by the waiter */

        br_test_ctx_cancel(&c.ctx);
        br_test_ctx_wait_parks(&c.ctx, 2); /* unlinked, now waiting for the lock */
        BR_CHECK_EQ(br_test_call_cancelled(&c.call), 1);
        BR_CHECK_EQ(cond_queued(&cv), 0);
        BR_CHECK_EQ(atomic_load(&c.ctx.nocancel), 1); /* that wait ignores cancels */
        br_test_ctx_cancel(&c.ctx);                   /* so this one stays pending */
        BR_CHECK(!br_test_call_returned(&c.call));
        BR_CHECK_OK(br_cond_release(&cv));

        br_test_call_join(&c.call);
        BR_CHECK_ERR(c.call.rc, BR_ECANCELED);
        BR_CHECK(c.owned);
        BR_CHECK_EQ(c.depth, levels);
        BR_CHECK(c.call.pending); /* the second cancel */
        BR_CHECK_EQ(br_test_call_cancelled(&c.call), 1);
        BR_CHECK_OK(br_cond_destroy(&cv)); /* no waiter, lock free */
    }
}

static void notify_one_locked(br_cond *cv) {
    BR_CHECK_OK(br_cond_acquire(cv, BR_FOREVER));
    BR_CHECK_OK(br_cond_notify(cv, 1));
    BR_CHECK_OK(br_cond_release(cv));
}

/* A waiter cancelled while queued takes no notify: notify(1) still wakes the next. */
static void cond_cancelled_waiter_takes_no_notify(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond cv;
    BR_CHECK_OK(br_cond_init(&cv, &l));
    caller a, b;
    caller_park(&a, call_cond_wait, &cv);
    caller_park(&b, call_cond_wait, &cv);
    BR_CHECK_EQ(cond_queued(&cv), 2);

    br_test_call_cancel(&a.call);
    BR_CHECK(a.owned);
    BR_CHECK_EQ(cond_queued(&cv), 1);

    notify_one_locked(&cv);
    br_test_call_join(&b.call);
    BR_CHECK_OK(b.call.rc);
    BR_CHECK(b.owned);
    BR_CHECK(!b.call.pending);
    BR_CHECK_EQ(cond_queued(&cv), 0);
    BR_CHECK_EQ(lock_state(&l), 0);
    BR_CHECK_OK(br_cond_destroy(&cv));
}

/* A cancel posted before the call: the wait (which always waits) returns BR_ECANCELED
 * at once, with the lock held; the uncontended acquire before it didn't look at it. */
static void cond_wait_cancel_before_the_call(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    br_cond cv;
    BR_CHECK_OK(br_cond_init(&cv, &r));
    caller c;
    caller_init(&c, call_cond_wait, &cv);
    c.levels = 2;
    caller_run(&c, true);
    br_test_call_join(&c.call);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK(c.owned);
    BR_CHECK_EQ(c.depth, 2);
    BR_CHECK_EQ(cond_queued(&cv), 0);
    BR_CHECK_OK(br_cond_destroy(&cv));
}

/* wait_for: cancelled while the predicate is false → BR_ECANCELED, lock held; a true
 * predicate never waits, so a pending cancel stays pending. */
static void cond_wait_for_cancel(void **state) {
    (void)state;
    br_cond cv = BR_COND_INIT;
    atomic_bool flag = false;
    caller c;
    caller_init(&c, call_cond_wait, &cv);
    c.obj2 = &flag;
    caller_run(&c, false);
    br_test_call_wait_parked(&c.call);
    br_test_call_cancel(&c.call);
    BR_CHECK(c.owned);
    BR_CHECK_EQ(c.depth, 1);
    BR_CHECK_EQ(cond_queued(&cv), 0);

    atomic_store(&flag, true);
    caller_init(&c, call_cond_wait, &cv);
    c.obj2 = &flag;
    caller_run(&c, true);
    br_test_call_join(&c.call);
    BR_CHECK_OK(c.call.rc);
    br_test_check_cancel_kept(&c.call);

    /* Notified, but the predicate is still false: the next wait reports the cancel
     * that arrived with the notify. */
    atomic_store(&flag, false);
    caller_init(&c, call_cond_wait, &cv);
    c.obj2 = &flag;
    caller_run(&c, false);
    br_test_call_wait_parked(&c.call);
    BR_CHECK_OK(br_cond_acquire(&cv, BR_FOREVER));
    BR_CHECK_OK(br_cond_notify(&cv, 1)); /* pops it: the wake is its own */
    br_test_ctx_cancel(&c.ctx);
    BR_CHECK_OK(br_cond_release(&cv));
    br_test_call_join(&c.call);
    br_test_check_cancelled(&c.call);
    BR_CHECK(c.owned);
    BR_CHECK_EQ(cond_queued(&cv), 0);
    BR_CHECK_OK(br_cond_destroy(&cv));
}

static void notify_one_held(void *arg) {
    BR_CHECK_OK(br_cond_notify(arg, 1));
}

/* notify(1) and a cancel together, with a second waiter queued behind: exactly one of
 * them takes the notify. The context got it (0, cancel pending, the other still
 * queued), or BR_ECANCELED (not pending) and the other got it. */
static void cond_notify_or_cancel_race(void **state) {
    (void)state;
    long rounds = br_test_scaled(1000, 100), won = 0;
    for (long i = 0; i < rounds; i++) {
        br_lock l = BR_LOCK_INIT;
        br_cond cv;
        BR_CHECK_OK(br_cond_init(&cv, &l));
        caller a, b;
        caller_enter(&a, call_cond_wait, &cv);
        start_plain(&b, call_cond_wait, &cv);
        TU_WAIT_FOR(cond_queued(&cv) == 2);

        BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
        cancel_and_wake(&a.ctx, i, notify_one_held, &cv);
        BR_CHECK_OK(br_lock_release(&l));
        br_test_call_join(&a.call);
        BR_CHECK(a.owned); /* whatever happened */
        if (br_test_wake_won(&a.call)) {
            won++;
            BR_CHECK_EQ(cond_queued(&cv), 1); /* b didn't get it */
            notify_one_locked(&cv);
        } else {
            BR_CHECK_EQ(cond_queued(&cv), 0); /* b got it */
        }
        br_test_call_join(&b.call);
        BR_CHECK_OK(b.call.rc);
        BR_CHECK_EQ(lock_state(&l), 0);
        BR_CHECK_OK(br_cond_destroy(&cv));
    }
    print_message("cond: the notify won %ld of %ld rounds\n", won, rounds);
}

/* --- Semaphore ------------------------------------------------------------------------ */

static uint32_t sem_state(br_sem *s) {
    return atomic_load(&BR__SEM_IMPL(s)->state);
}
static int sem_queued(br_sem *s) {
    return br__wq_len(&BR__SEM_IMPL(s)->wq);
}

static int call_sem_acquire(caller *c) {
    return br_sem_acquire(c->obj, c->deadline);
}

/* Cancelled while queued: unlinked, W cleared, value unchanged; the next release goes
 * to the semaphore (nobody is queued), and a later acquire takes it. */
static void sem_cancel_while_parked(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT;
    caller c;
    caller_park(&c, call_sem_acquire, &s);
    BR_CHECK_EQ(sem_queued(&s), 1);
    BR_CHECK_EQ(sem_state(&s), BR__SEM_W);
    br_test_call_cancel(&c.call);
    BR_CHECK_EQ(sem_queued(&s), 0);
    BR_CHECK_EQ(sem_state(&s), 0); /* value 0, W clear */

    BR_CHECK_OK(br_sem_release(&s, 1));
    BR_CHECK_EQ(br_sem_value(&s), 1);
    caller_start(&c, call_sem_acquire, &s);
    br_test_call_join(&c.call);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK_EQ(br_test_call_parks(&c.call), 0);
    BR_CHECK_EQ(sem_state(&s), 0);
    BR_CHECK_OK(br_sem_destroy(&s));
}

/* The waiter behind a cancelled one gets the next unit. */
static void sem_cancelled_waiter_passes_the_unit_on(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT;
    caller a, b;
    caller_park(&a, call_sem_acquire, &s);
    caller_park(&b, call_sem_acquire, &s);
    BR_CHECK_EQ(sem_queued(&s), 2);
    br_test_call_cancel(&a.call);
    BR_CHECK_EQ(sem_queued(&s), 1);
    BR_CHECK_EQ(sem_state(&s), BR__SEM_W);
    BR_CHECK_OK(br_sem_release(&s, 1));
    br_test_call_join(&b.call);
    BR_CHECK_OK(b.call.rc);
    BR_CHECK(!b.call.pending);
    BR_CHECK_EQ(sem_state(&s), 0);
    BR_CHECK_OK(br_sem_destroy(&s));
}

static void sem_cancel_before_the_call(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT;
    caller c;
    call_after_cancel(&c, call_sem_acquire, &s);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK_EQ(sem_state(&s), 0);
    BR_CHECK_EQ(sem_queued(&s), 0);

    BR_CHECK_OK(br_sem_release(&s, 2)); /* a unit there: no wait, cancel untouched */
    call_after_cancel(&c, call_sem_acquire, &s);
    BR_CHECK_OK(c.call.rc);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_EQ(br_sem_value(&s), 1);
}

static void release_one(void *s) {
    BR_CHECK_OK(br_sem_release(s, 1));
}

/* release(1) and a cancel together: the acquirer got the unit and the cancel is
 * pending, or BR_ECANCELED and the unit is in the semaphore. Never both, never
 * neither. */
static void sem_release_or_cancel_race(void **state) {
    (void)state;
    long rounds = br_test_scaled(2000, 200), won = 0;
    for (long i = 0; i < rounds; i++) {
        br_sem s = BR_SEM_INIT;
        caller c;
        caller_enter(&c, call_sem_acquire, &s);
        TU_WAIT_FOR(sem_queued(&s) == 1);
        bool took = race_round(&c, i, release_one, &s, &won);
        BR_CHECK_EQ(sem_queued(&s), 0);
        if (took)
            BR_CHECK_EQ(sem_state(&s), 0); /* value 0, W clear */
        else
            BR_CHECK_EQ(sem_state(&s), BR__SEM_ONE); /* value 1, W clear */
    }
    print_message("sem: the release won %ld of %ld rounds\n", won, rounds);
}

/* --- Event ---------------------------------------------------------------------------- */

static int call_event_wait(caller *c) {
    return br_event_wait(c->obj, c->deadline);
}
static int event_queued(br_event *e) {
    return br__wq_len(&BR__EVENT_IMPL(e)->wq);
}

static void event_cancel_while_parked(void **state) {
    (void)state;
    br_event e = BR_EVENT_INIT;
    caller a, b;
    caller_park(&a, call_event_wait, &e);
    caller_park(&b, call_event_wait, &e);
    BR_CHECK_EQ(event_queued(&e), 2);
    br_test_call_cancel(&a.call);
    BR_CHECK_EQ(event_queued(&e), 1);
    BR_CHECK(!br_event_is_set(&e));
    BR_CHECK_OK(br_event_set(&e)); /* the other waiter is woken normally */
    br_test_call_join(&b.call);
    BR_CHECK_OK(b.call.rc);
    BR_CHECK_EQ(event_queued(&e), 0);
    BR_CHECK_OK(br_event_destroy(&e));
}

static void event_cancel_before_the_call(void **state) {
    (void)state;
    br_event e = BR_EVENT_INIT;
    caller c;
    call_after_cancel(&c, call_event_wait, &e);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK_EQ(event_queued(&e), 0);

    BR_CHECK_OK(br_event_set(&e)); /* set: no wait, cancel untouched */
    call_after_cancel(&c, call_event_wait, &e);
    BR_CHECK_OK(c.call.rc);
    br_test_check_cancel_kept(&c.call);
}

static void set_event(void *e) {
    BR_CHECK_OK(br_event_set(e));
}

static void event_set_or_cancel_race(void **state) {
    (void)state;
    long rounds = br_test_scaled(2000, 200), won = 0;
    for (long i = 0; i < rounds; i++) {
        br_event e = BR_EVENT_INIT;
        caller c;
        caller_enter(&c, call_event_wait, &e);
        TU_WAIT_FOR(event_queued(&e) == 1);
        race_round(&c, i, set_event, &e, &won);
        BR_CHECK_EQ(event_queued(&e), 0);
        BR_CHECK(br_event_is_set(&e));
    }
    print_message("event: the set won %ld of %ld rounds\n", won, rounds);
}

/* --- Barrier -------------------------------------------------------------------------- */

static int call_barrier_wait(caller *c) {
    return br_barrier_wait(c->obj, c->deadline);
}
static int barrier_queued(br_barrier *b) {
    return br__wq_len(&BR__BARRIER_IMPL(b)->wq);
}

/* Each of 0..n-1 exactly once among idx[0..n-1]. */
static void check_indices(const int *idx, int n) {
    unsigned seen = 0;
    for (int i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= n)
            fail_msg("barrier index %d (%s) out of 0..%d", idx[i], br_err_name(idx[i]),
                     n - 1);
        if (seen & (1u << idx[i]))
            fail_msg("barrier index %d given twice", idx[i]);
        seen |= 1u << idx[i];
    }
}

/* A cancelled arrival withdraws: not broken, one fewer waiting; the round then needs
 * one more party and trips with unique indices; so does the next round. The cancelled
 * one arrived first, so an index given on arrival would be handed out twice. */
static void barrier_cancel_withdraws_the_arrival(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, 3, NULL, NULL));
    caller x, a, y;
    caller_park(&a, call_barrier_wait, &b);
    start_plain(&x, call_barrier_wait, &b);
    TU_WAIT_FOR(barrier_queued(&b) == 2);
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 2);

    br_test_call_cancel(&a.call);
    BR_CHECK(!br_barrier_broken(&b));
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 1);
    BR_CHECK_EQ(barrier_queued(&b), 1);

    start_plain(&y, call_barrier_wait, &b); /* the second party again, not the last */
    TU_WAIT_FOR(barrier_queued(&b) == 2);
    BR_CHECK(!br_test_call_returned(&x.call));
    int idx[3];
    idx[2] = br_barrier_wait(&b, br_test_hang_guard()); /* the third trips it */
    br_test_call_join(&x.call);
    br_test_call_join(&y.call);
    idx[0] = x.call.rc;
    idx[1] = y.call.rc;
    check_indices(idx, 3);
    BR_CHECK_EQ(idx[2], 2);    /* the last arrival */
    BR_CHECK_EQ(x.call.rc, 0); /* then queue order */
    BR_CHECK_EQ(y.call.rc, 1);
    BR_CHECK(!br_barrier_broken(&b));
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);

    start_plain(&x, call_barrier_wait, &b); /* a full round after it */
    start_plain(&y, call_barrier_wait, &b);
    TU_WAIT_FOR(barrier_queued(&b) == 2);
    idx[2] = br_barrier_wait(&b, br_test_hang_guard());
    br_test_call_join(&x.call);
    br_test_call_join(&y.call);
    idx[0] = x.call.rc;
    idx[1] = y.call.rc;
    check_indices(idx, 3);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

/* A cancel posted before the call: an arrival that would wait withdraws at once; the
 * last arrival doesn't wait, trips the barrier and leaves the cancel pending. */
static void barrier_cancel_before_the_call(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, 2, NULL, NULL));
    caller c, x;
    call_after_cancel(&c, call_barrier_wait, &b);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);
    BR_CHECK(!br_barrier_broken(&b));

    start_plain(&x, call_barrier_wait, &b);
    TU_WAIT_FOR(barrier_queued(&b) == 1);
    call_after_cancel(&c, call_barrier_wait, &b);
    br_test_call_join(&x.call);
    BR_CHECK_EQ(c.call.rc, 1);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_EQ(x.call.rc, 0);
    BR_CHECK(!br_barrier_broken(&b));
    BR_CHECK_OK(br_barrier_destroy(&b));
}

/* A timeout in a context still breaks the barrier (threading's rule); only a cancel
 * withdraws. */
static void barrier_timeout_in_a_context_still_breaks(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, 3, NULL, NULL));
    caller x, c;
    start_plain(&x, call_barrier_wait, &b);
    TU_WAIT_FOR(barrier_queued(&b) == 1);
    caller_init(&c, call_barrier_wait, &b);
    c.deadline = br_deadline_after(20 * BR_MSEC);
    caller_run(&c, false);
    br_test_call_join(&c.call);
    br_test_call_join(&x.call);
    BR_CHECK_ERR(c.call.rc, BR_ETIMEDOUT);
    BR_CHECK_ERR(x.call.rc, BR_EBROKEN);
    BR_CHECK(br_barrier_broken(&b));
    BR_CHECK_EQ(barrier_queued(&b), 0);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

static void arrive_plain(void *c) {
    caller_run_plain(c);
}

/* The trip and a cancel together, parties = 3: the context queued, x queued, then y
 * arrives as the cancel is posted. Either y tripped the round with the context in it
 * (the context passed, cancel pending), or the context withdrew first and y queued;
 * then this thread completes the round. Indices are unique every round and the
 * barrier is never broken. */
static void barrier_trip_or_cancel_race(void **state) {
    (void)state;
    long rounds = br_test_scaled(1000, 100), won = 0;
    for (long i = 0; i < rounds; i++) {
        br_barrier b;
        BR_CHECK_OK(br_barrier_init(&b, 3, NULL, NULL));
        caller x, a, y;
        caller_enter(&a, call_barrier_wait, &b);
        start_plain(&x, call_barrier_wait, &b);
        TU_WAIT_FOR(barrier_queued(&b) == 2);
        caller_init(&y, call_barrier_wait, &b); /* arrives plain, as the wake */

        cancel_and_wake(&a.ctx, i, arrive_plain, &y);
        br_test_call_join(&a.call);
        int idx[3];
        if (a.call.rc >= 0) { /* its index: the wake won */
            won++;
            BR_CHECK(br_test_ctx_cancel_pending(&a.ctx));
            idx[1] = a.call.rc;
        } else {
            br_test_check_cancelled(&a.call);
            idx[1] = br_barrier_wait(&b, br_test_hang_guard());
        }
        br_test_call_join(&x.call);
        br_test_call_join(&y.call);
        idx[0] = x.call.rc;
        idx[2] = y.call.rc;
        check_indices(idx, 3);
        BR_CHECK(!br_barrier_broken(&b));
        BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);
        BR_CHECK_EQ(barrier_queued(&b), 0);
        BR_CHECK_OK(br_barrier_destroy(&b));
    }
    print_message("barrier: the trip won %ld of %ld rounds\n", won, rounds);
}

/* --- Thread join ---------------------------------------------------------------------- */

static int call_join(caller *c) {
    return br_thread_join(c->obj, c->deadline);
}

static void gated_fn(void *arg) {
    (void)br_event_wait(arg, br_test_hang_guard());
}

static uint32_t joiners_of(struct br_thread *t) {
    br__ilock_lock(&t->wq.lock);
    uint32_t n = t->joiners;
    br__ilock_unlock(&t->wq.lock);
    return n;
}

/* Cancelled while fn still runs: nothing changes; a later join reaps it. */
static void join_cancel_while_waiting_for_done(void **state) {
    (void)state;
    static br_event gate;
    BR_CHECK_OK(br_event_init(&gate));
    br_thread *t = tu_spawn(gated_fn, &gate);
    caller c;
    caller_park(&c, call_join, t);
    BR_CHECK_EQ(br__wq_len(&t->wq), 1);
    BR_CHECK_EQ(joiners_of(t), 1);

    br_test_call_cancel(&c.call);
    BR_CHECK_EQ(br__wq_len(&t->wq), 0);
    BR_CHECK_EQ(joiners_of(t), 0);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_NONE);
    BR_CHECK(br_thread_is_alive(t));

    BR_CHECK_OK(br_event_set(&gate));
    tu_join(t);
}

/* The thread's br_local destructor blocks, so the first joiner stays in the reap
 * (reap BUSY); a second, cancellable joiner waits for that reap and is cancelled. */
static br_event dtor_gate;
static void blocking_dtor(void *v) {
    (void)v;
    (void)br_event_wait(&dtor_gate, br_test_hang_guard());
}
static void set_local_fn(void *arg) {
    (void)br_local_set(arg, (void *)1);
}

static void join_cancel_while_another_joiner_reaps(void **state) {
    (void)state;
    BR_CHECK_OK(br_event_init(&dtor_gate));
    br_local *loc;
    BR_CHECK_OK(br_local_new(&loc, blocking_dtor));
    br_thread *t = tu_spawn(set_local_fn, loc);
    caller r, c;
    start_plain(&r, call_join, t);
    TU_WAIT_FOR(atomic_load(&t->reap) == BR__REAP_BUSY); /* r is in pthread_join */

    caller_park(&c, call_join, t);
    BR_CHECK_EQ(br__wq_len(&t->wq), 1);
    BR_CHECK_EQ(joiners_of(t), 2);
    br_test_call_cancel(&c.call);
    BR_CHECK_EQ(br__wq_len(&t->wq), 0);
    BR_CHECK_EQ(joiners_of(t), 1);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_BUSY); /* r's reap goes on */

    BR_CHECK_OK(br_event_set(&dtor_gate));
    br_test_call_join(&r.call);
    BR_CHECK_OK(r.call.rc);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_DONE);
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_OK(br_local_free(loc));
}

/* The handle is freed while a cancellable join waits; the join is then cancelled. As
 * the last join to leave it must detach the thread nobody reaped. */
static void join_cancel_last_joiner_detaches(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    static br_event gate;
    BR_CHECK_OK(br_event_init(&gate));
    br_thread *t = tu_spawn(gated_fn, &gate);
    br__thread_ref(t); /* keep the block, to look at it after br_thread_free */
    caller c;
    caller_park(&c, call_join, t); /* registered as a joiner */
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_NONE); /* a join is in progress */

    br_test_call_cancel(&c.call);
    BR_CHECK_EQ(joiners_of(t), 0);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_DETACHED);

    BR_CHECK_OK(br_event_set(&gate));
    TU_WAIT_FOR(atomic_load(&t->done) == 1);
    br__thread_unref(t);
    br_test_wait_threads(threads_before); /* it ended on its own */
}

/* A cancel posted before the call: a join that has to wait returns BR_ECANCELED at
 * once; one that finds the thread finished reaps it (the reap isn't cancellable) or
 * finds it reaped, and leaves the cancel pending. */
static void join_cancel_before_the_call(void **state) {
    (void)state;
    static br_event gate;
    BR_CHECK_OK(br_event_init(&gate));
    br_thread *t = tu_spawn(gated_fn, &gate);
    caller c;
    call_after_cancel(&c, call_join, t);
    br_test_check_cancelled_at_once(&c.call);
    BR_CHECK_EQ(joiners_of(t), 0);
    BR_CHECK_EQ(br__wq_len(&t->wq), 0);

    BR_CHECK_OK(br_event_set(&gate));
    TU_WAIT_FOR(!br_thread_is_alive(t));
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_NONE);
    call_after_cancel(&c, call_join, t); /* finished, not reaped: this join reaps it */
    BR_CHECK_OK(c.call.rc);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_DONE);

    call_after_cancel(&c, call_join, t); /* reaped: returns at once */
    BR_CHECK_OK(c.call.rc);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_OK(br_thread_free(t));
}

/* The thread's end and a cancel together: the join returned 0 (reaped, cancel
 * pending) or BR_ECANCELED (not pending, nothing changed: a later join reaps it). */
static void join_done_or_cancel_race(void **state) {
    (void)state;
    long rounds = br_test_scaled(500, 50), won = 0;
    static br_event gate;
    for (long i = 0; i < rounds; i++) {
        BR_CHECK_OK(br_event_init(&gate));
        br_thread *t = tu_spawn(gated_fn, &gate);
        caller c;
        caller_enter(&c, call_join, t);
        bool reaped = race_round(&c, i, set_event, &gate, &won);
        BR_CHECK_EQ(joiners_of(t), 0);
        if (reaped) {
            BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_DONE);
        } else {
            BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_NONE);
            BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
        }
        BR_CHECK_EQ(br__wq_len(&t->wq), 0);
        BR_CHECK_OK(br_thread_free(t));
    }
    print_message("join: the thread's end won %ld of %ld rounds\n", won, rounds);
}

/* exit() in a cancelled context still waits for every non-daemon thread, and its wait
 * leaves the cancel pending. In a child: the context posts a cancel to itself, starts
 * a non-daemon probe thread and exits; the probe waits until exit's handler sleeps in
 * its wait and reports what it sees on a pipe: 'T' (an uncancellable park, the cancel
 * still pending), 'F' (the wait consumed the cancel) or 'H' (hang guard). */
typedef struct {
    int fd;
    br_test_ctx *ctx;
} exit_probe;

static void exit_probe_fn(void *arg) {
    exit_probe *p = arg;
    int64_t give_up = br_test_hang_guard();
    char verdict = 'T';
    while (!(atomic_load(&p->ctx->parks) >= 1 && atomic_load(&p->ctx->asleep))) {
        if (br_now() > give_up) {
            verdict = 'H';
            break;
        }
        br_sleep(100 * BR_USEC);
    }
    if (verdict == 'T' &&
        !(br_test_ctx_cancel_pending(p->ctx) && atomic_load(&p->ctx->nocancel) >= 1 &&
          atomic_load(&p->ctx->cancelled) == 0))
        verdict = 'F';
    (void)!write(p->fd, &verdict, 1);
}

static void exit_waits_despite_a_pending_cancel(void **state) {
    (void)state;
    int fds[2];
    BR_CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    fflush(NULL); /* the child's exit() flushes stdio: don't print cmocka's lines twice */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        static br_test_ctx ctx;
        static exit_probe p;
        p = (exit_probe){.fd = fds[1], .ctx = &ctx};
        br_test_ctx_enter(&ctx);
        br_test_ctx_cancel(&ctx);
        br_thread *t;
        if (br_thread_start(&t, exit_probe_fn, &p, NULL) != 0) /* non-daemon */
            _exit(10);
        br_thread_free(t);
        exit(0); /* the exit handler waits for the probe, in the cancelled context */
    }
    close(fds[1]);
    char got[8] = {0};
    size_t n = 0;
    int64_t give_up = br_test_hang_guard();
    for (;;) { /* until EOF: every writer in the child is gone */
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            char ch;
            if (read(fds[0], &ch, 1) <= 0)
                break;
            if (n < sizeof got - 1)
                got[n++] = ch;
        }
        if (br_now() > give_up) {
            kill(pid, SIGKILL);
            fail_msg("the child did not exit");
        }
    }
    close(fds[0]);
    int st = br_test_wait_child(pid);
    BR_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    BR_CHECK(strcmp(got, "T") == 0);
}

/* --- sleep ---------------------------------------------------------------------------- */

static int call_sleep_until(caller *c) {
    return br_sleep_until(c->deadline);
}
static int call_sleep_0(caller *c) {
    (void)c;
    return br_sleep(0);
}
static int call_sleep_s(caller *c) {
    (void)c;
    return br_sleep_s(3600);
}

static void sleep_cancel_while_sleeping(void **state) {
    (void)state;
    caller c;
    caller_park(&c, call_sleep_until, NULL); /* BR_FOREVER */
    br_test_call_cancel(&c.call);

    caller_init(&c, call_sleep_until, NULL); /* not cancelled: sleeps to the end */
    c.deadline = br_deadline_after(2 * BR_MSEC);
    caller_run(&c, false);
    br_test_call_join(&c.call);
    BR_CHECK_OK(c.call.rc);
    BR_CHECK(br_now() >= c.deadline);
}

/* A pending cancel ends any sleep at once, br_sleep(0) included (the tests' parker
 * reports a pending cancel even when the deadline has passed). */
static void sleep_cancel_before_the_call(void **state) {
    (void)state;
    call_fn fns[] = {call_sleep_until, call_sleep_0, call_sleep_s};
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
        caller c;
        call_after_cancel(&c, fns[i], NULL);
        br_test_check_cancelled_at_once(&c.call);
    }
}

/* --- BR_WITH -------------------------------------------------------------------------- */

static int call_with_lock(caller *c) {
    BR_WITH((br_lock *)c->obj) {
        c->ran = 1;
    }
    return 0;
}
static int call_with_sem(caller *c) {
    BR_WITH((br_sem *)c->obj) {
        c->ran = 1;
    }
    return 0;
}

/* A cancel while BR_WITH waits: the block doesn't run, and the cancel is not lost: it
 * is pending again for the next blocking call. */
static void with_block_skipped_and_cancel_kept(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    caller c;
    caller_park(&c, call_with_lock, &l);
    br_test_ctx_cancel(&c.ctx);
    br_test_call_join(&c.call);
    BR_CHECK_EQ(c.ran, 0);
    BR_CHECK_EQ(br_test_call_cancelled(&c.call), 1);
    BR_CHECK(c.call.pending);
    BR_CHECK_EQ(lock_queued(&l), 0);
    BR_CHECK_EQ(lock_state(&l), BR__LOCK_LOCKED);
    BR_CHECK_OK(br_lock_release(&l));

    br_sem s = BR_SEM_INIT;
    caller_park(&c, call_with_sem, &s);
    br_test_ctx_cancel(&c.ctx);
    br_test_call_join(&c.call);
    BR_CHECK_EQ(c.ran, 0);
    BR_CHECK(c.call.pending);
    BR_CHECK_EQ(sem_state(&s), 0);

    BR_CHECK_OK(br_sem_release(&s, 1)); /* no wait: the block runs */
    call_after_cancel(&c, call_with_sem, &s);
    BR_CHECK_EQ(c.ran, 1);
    br_test_check_cancel_kept(&c.call);
    BR_CHECK_EQ(br_sem_value(&s), 1); /* released at the end of the block */
}

BR_TEST_MAIN(cmocka_unit_test(lock_cancel_while_parked),
             cmocka_unit_test(lock_cancel_before_the_call),
             cmocka_unit_test(lock_cancel_after_losing_to_a_barger),
             cmocka_unit_test(lock_release_or_cancel_race),
             cmocka_unit_test(rlock_cancel_while_parked),
             cmocka_unit_test(cond_wait_cancel_takes_the_lock_back),
             cmocka_unit_test(cond_cancelled_waiter_takes_no_notify),
             cmocka_unit_test(cond_wait_cancel_before_the_call),
             cmocka_unit_test(cond_wait_for_cancel),
             cmocka_unit_test(cond_notify_or_cancel_race),
             cmocka_unit_test(sem_cancel_while_parked),
             cmocka_unit_test(sem_cancelled_waiter_passes_the_unit_on),
             cmocka_unit_test(sem_cancel_before_the_call),
             cmocka_unit_test(sem_release_or_cancel_race),
             cmocka_unit_test(event_cancel_while_parked),
             cmocka_unit_test(event_cancel_before_the_call),
             cmocka_unit_test(event_set_or_cancel_race),
             cmocka_unit_test(barrier_cancel_withdraws_the_arrival),
             cmocka_unit_test(barrier_cancel_before_the_call),
             cmocka_unit_test(barrier_timeout_in_a_context_still_breaks),
             cmocka_unit_test(barrier_trip_or_cancel_race),
             cmocka_unit_test(join_cancel_while_waiting_for_done),
             cmocka_unit_test(join_cancel_while_another_joiner_reaps),
             cmocka_unit_test(join_cancel_last_joiner_detaches),
             cmocka_unit_test(join_cancel_before_the_call),
             cmocka_unit_test(join_done_or_cancel_race),
             cmocka_unit_test(exit_waits_despite_a_pending_cancel),
             cmocka_unit_test(sleep_cancel_while_sleeping),
             cmocka_unit_test(sleep_cancel_before_the_call),
             cmocka_unit_test(with_block_skipped_and_cancel_kept))
