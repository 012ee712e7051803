/* br_lock: threading.Lock, owner-checked, with deadlines. */
#include "thread_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- basics ---------------------------------------------------------------------- */

static void zero_storage_is_unlocked(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK(!br_lock_locked(&l));
    BR_CHECK(!br_lock_owned(&l));
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    BR_CHECK(br_lock_locked(&l));
    BR_CHECK(br_lock_owned(&l));
    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK(!br_lock_locked(&l));
    BR_CHECK(!br_lock_owned(&l));
    BR_CHECK_OK(br_lock_init(&l));
    BR_CHECK_OK(br_lock_acquire(&l, BR_NOWAIT));
    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK_OK(br_lock_destroy(&l));
}

static void reacquire_is_edeadlk(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    BR_CHECK_ERR(br_lock_acquire(&l, BR_FOREVER), BR_EDEADLK);
    BR_CHECK_ERR(br_lock_acquire(&l, BR_NOWAIT), BR_EDEADLK);
    BR_CHECK_ERR(br_lock_acquire(&l, br_deadline_after(BR_MSEC)), BR_EDEADLK);
    BR_CHECK(br_lock_owned(&l)); /* still ours, once */
    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK_ERR(br_lock_release(&l), BR_EPERM);
}

/* --- a lock held by another thread ------------------------------------------------- */

typedef struct {
    br_lock *lock;
    br_event held, go; /* holder: `held` once it has the lock; releases on `go` */
    int rc;
} holder_ctx;

static void holder(void *arg) {
    holder_ctx *h = arg;
    h->rc = br_lock_acquire(h->lock, BR_FOREVER);
    br_event_set(&h->held);
    br_event_wait(&h->go, BR_FOREVER);
    if (h->rc == 0)
        h->rc = br_lock_release(h->lock);
}

static br_thread *start_holder(holder_ctx *h, br_lock *l) {
    *h = (holder_ctx){.lock = l, .rc = 99};
    br_thread *t = tu_spawn(holder, h);
    BR_CHECK_OK(br_event_wait(&h->held, br_test_hang_guard()));
    BR_CHECK_OK(h->rc);
    return t;
}

static void stop_holder(holder_ctx *h, br_thread *t) {
    BR_CHECK_OK(br_event_set(&h->go));
    tu_join(t);
    BR_CHECK_OK(h->rc);
}

static void nowait_on_held_lock_fails_at_once(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    holder_ctx h;
    br_thread *t = start_holder(&h, &l);
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_lock_acquire(&l, BR_NOWAIT), BR_ETIMEDOUT);
    TU_CHECK_QUICK(t0);
    /* a deadline already in the past behaves the same */
    BR_CHECK_ERR(br_lock_acquire(&l, br_now() - BR_SEC), BR_ETIMEDOUT);
    BR_CHECK(br_lock_locked(&l));
    BR_CHECK(!br_lock_owned(&l));
    stop_holder(&h, t);
    BR_CHECK(!br_lock_locked(&l));
}

static void deadline_fires_never_early(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    holder_ctx h;
    br_thread *t = start_holder(&h, &l);
    static const int64_t waits[] = {1 * BR_MSEC, 20 * BR_MSEC, 50 * BR_MSEC};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        int64_t t0 = br_now();
        BR_CHECK_ERR(br_lock_acquire(&l, t0 + waits[i]), BR_ETIMEDOUT);
        TU_CHECK_NOT_EARLY(t0, waits[i]);
    }
    /* the timed-out waiters left nothing behind */
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 0);
    BR_CHECK_EQ(atomic_load(&BR__LOCK_IMPL(&l)->state), BR__LOCK_LOCKED);
    stop_holder(&h, t);
    BR_CHECK_EQ(atomic_load(&BR__LOCK_IMPL(&l)->state), 0);
}

typedef struct {
    br_lock *lock;
    int rc;
    atomic_int got;
} blocked_ctx;

static void blocked_acquirer(void *arg) {
    blocked_ctx *b = arg;
    b->rc = br_lock_acquire(b->lock, BR_FOREVER);
    if (b->rc == 0) {
        atomic_store(&b->got, 1);
        b->rc = br_lock_release(b->lock);
    }
}

/* A sleeper (queued, past the parker's spin) gets the lock when it is released. */
static void release_wakes_a_sleeper(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    blocked_ctx b = {.lock = &l, .rc = 99};
    br_thread *t = tu_spawn(blocked_acquirer, &b);
    /* Past the parker's spin: asleep in the futex (the thread parker sets 2 then). */
    TU_WAIT_FOR(tu_first_waiter_state(&BR__LOCK_IMPL(&l)->wq) == 2);
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 1);
    BR_CHECK_EQ(atomic_load(&b.got), 0);
    BR_CHECK_OK(br_lock_release(&l));
    tu_join(t);
    BR_CHECK_OK(b.rc);
    BR_CHECK_EQ(atomic_load(&b.got), 1);
    BR_CHECK(!br_lock_locked(&l));
}

/* --- misuse ------------------------------------------------------------------------- */

static void release_by_non_owner_is_eperm(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_ERR(br_lock_release(&l), BR_EPERM); /* unlocked */
    holder_ctx h;
    br_thread *t = start_holder(&h, &l);
    BR_CHECK_ERR(br_lock_release(&l), BR_EPERM); /* held by another thread */
    BR_CHECK(br_lock_locked(&l));                /* and nothing happened */
    stop_holder(&h, t);
}

static void null_handles_are_einval(void **state) {
    (void)state;
    BR_CHECK_ERR(br_lock_init(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_lock_destroy(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_lock_acquire(NULL, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_lock_release(NULL), BR_EINVAL);
    BR_CHECK(!br_lock_locked(NULL));
    BR_CHECK(!br_lock_owned(NULL));
}

static void destroy_rules(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    /* held: busy */
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    BR_CHECK_ERR(br_lock_destroy(&l), BR_EBUSY);
    BR_CHECK(br_lock_owned(&l));
    /* waited on (and held): busy */
    blocked_ctx b = {.lock = &l, .rc = 99};
    br_thread *t = tu_spawn(blocked_acquirer, &b);
    TU_WAIT_FOR(br__wq_len(&BR__LOCK_IMPL(&l)->wq) == 1);
    BR_CHECK_ERR(br_lock_destroy(&l), BR_EBUSY);
    BR_CHECK_OK(br_lock_release(&l));
    tu_join(t);
    BR_CHECK_OK(b.rc);
    /* free: destroyed, then poisoned */
    BR_CHECK_OK(br_lock_destroy(&l));
    BR_CHECK_ERR(br_lock_destroy(&l), BR_EINVAL);
    BR_CHECK_ERR(br_lock_acquire(&l, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_lock_acquire(&l, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_lock_release(&l), BR_EINVAL);
    BR_CHECK(!br_lock_locked(&l));
    BR_CHECK(!br_lock_owned(&l));
    /* init brings it back */
    BR_CHECK_OK(br_lock_init(&l));
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    BR_CHECK_OK(br_lock_release(&l));
}

/* With panic_on_misuse, releasing a lock you don't hold aborts (in a child process). */
static void panic_on_misuse_aborts(void **state) {
    (void)state;
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_lock l = BR_LOCK_INIT;
        br_set_panic_on_misuse(true);
        /* EDEADLK is not one of the panicking codes */
        br_lock_acquire(&l, BR_FOREVER);
        if (br_lock_acquire(&l, BR_NOWAIT) != BR_EDEADLK)
            _exit(3);
        br_lock_release(&l);
        br_lock_release(&l); /* aborts here */
        _exit(4);
    }
    int st = br_test_wait_child(pid);
    BR_CHECK(WIFSIGNALED(st));
    BR_CHECK_EQ(WTERMSIG(st), SIGABRT);
}

/* --- stress --------------------------------------------------------------------------- */

enum { STRESS_THREADS = 8 };

typedef struct {
    br_lock *lock;
    long iters;
    long *counter; /* plain: only the lock protects it (TSan checks that) */
    int rc;
} counter_ctx;

static void count_worker(void *arg) {
    counter_ctx *c = arg;
    for (long i = 0; i < c->iters; i++) {
        int rc = br_lock_acquire(c->lock, BR_FOREVER);
        if (rc != 0) {
            c->rc = rc;
            return;
        }
        ++*c->counter;
        rc = br_lock_release(c->lock);
        if (rc != 0) {
            c->rc = rc;
            return;
        }
    }
}

static void many_threads_count_exactly(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    long counter = 0;
    long iters = br_test_scaled(200000, 2000);
    counter_ctx c[STRESS_THREADS];
    br_thread *t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        c[i] = (counter_ctx){.lock = &l, .iters = iters, .counter = &counter};
        t[i] = tu_spawn(count_worker, &c[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(c[i].rc);
    }
    BR_CHECK_EQ(counter, STRESS_THREADS * iters);
    BR_CHECK_EQ(atomic_load(&BR__LOCK_IMPL(&l)->state), 0);
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 0);
}

/* Acquires with tiny deadlines racing with releases: every success is counted, every
 * timeout leaves the queue and the WAITERS bit consistent, and nobody hangs. */
typedef struct {
    br_lock *lock;
    long iters;
    long *counter;
    long wins, timeouts;
    int rc;
} timed_ctx;

static void timed_worker(void *arg) {
    timed_ctx *c = arg;
    for (long i = 0; i < c->iters; i++) {
        int rc = br_lock_acquire(c->lock, br_deadline_after((i % 20) * BR_USEC));
        if (rc == BR_ETIMEDOUT) {
            c->timeouts++;
            continue;
        }
        if (rc != 0) {
            c->rc = rc;
            return;
        }
        ++*c->counter;
        for (volatile int k = 0; k < 50; k++)
            ; /* hold it a little, so that others queue */
        c->wins++;
        rc = br_lock_release(c->lock);
        if (rc != 0) {
            c->rc = rc;
            return;
        }
    }
}

static void timeouts_race_with_releases(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    long counter = 0, wins = 0, timeouts = 0;
    long iters = br_test_scaled(50000, 1000);
    timed_ctx c[STRESS_THREADS];
    br_thread *t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) {
        c[i] = (timed_ctx){.lock = &l, .iters = iters, .counter = &counter};
        t[i] = tu_spawn(timed_worker, &c[i]);
    }
    for (int i = 0; i < STRESS_THREADS; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(c[i].rc);
        wins += c[i].wins;
        timeouts += c[i].timeouts;
    }
    BR_CHECK_EQ(counter, wins);
    BR_CHECK_EQ(wins + timeouts, STRESS_THREADS * iters);
    BR_CHECK_EQ(atomic_load(&BR__LOCK_IMPL(&l)->state), 0);
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 0);
    /* still a working lock */
    BR_CHECK_OK(br_lock_acquire(&l, BR_NOWAIT));
    BR_CHECK_OK(br_lock_release(&l));
}

BR_TEST_MAIN(cmocka_unit_test(zero_storage_is_unlocked),
             cmocka_unit_test(reacquire_is_edeadlk),
             cmocka_unit_test(nowait_on_held_lock_fails_at_once),
             cmocka_unit_test(deadline_fires_never_early),
             cmocka_unit_test(release_wakes_a_sleeper),
             cmocka_unit_test(release_by_non_owner_is_eperm),
             cmocka_unit_test(null_handles_are_einval), cmocka_unit_test(destroy_rules),
             cmocka_unit_test(panic_on_misuse_aborts),
             cmocka_unit_test(many_threads_count_exactly),
             cmocka_unit_test(timeouts_race_with_releases))
