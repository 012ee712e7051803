/* br_cond: threading.Condition over a Lock, an RLock, or its own RLock. */
#include "thread_util.h"

#include <string.h>

static int cond_waiters(br_cond *c) {
    return br__wq_len(&BR__COND_IMPL(c)->wq);
}

/* --- misuse --------------------------------------------------------------------- */

static void needs_the_lock(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    BR_CHECK_ERR(br_cond_wait(&c, BR_NOWAIT), BR_EPERM);
    BR_CHECK_ERR(br_cond_wait(&c, BR_FOREVER), BR_EPERM); /* returns, doesn't wait */
    BR_CHECK_ERR(br_cond_notify(&c, 1), BR_EPERM);
    BR_CHECK_ERR(br_cond_notify_all(&c), BR_EPERM);
    BR_CHECK_ERR(br_cond_release(&c), BR_EPERM);
    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    BR_CHECK(br_lock_owned(&l));
    BR_CHECK_ERR(br_cond_acquire(&c, BR_FOREVER), BR_EDEADLK); /* a plain Lock */
    BR_CHECK_ERR(br_cond_notify(&c, 0), BR_EINVAL);
    BR_CHECK_OK(br_cond_notify(&c, 1)); /* nobody waits: nothing happens */
    BR_CHECK_OK(br_cond_notify_all(&c));
    BR_CHECK_OK(br_cond_release(&c));
    BR_CHECK(!br_lock_locked(&l));
    BR_CHECK_OK(br_cond_destroy(&c));
    BR_CHECK_ERR(br_cond_destroy(&c), BR_EINVAL);
    BR_CHECK_ERR(br_cond_acquire(&c, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_cond_wait(&c, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_cond_notify(&c, 1), BR_EINVAL);
}

static bool always_true(void *arg) {
    (void)arg;
    return true;
}

static void null_handles(void **state) {
    (void)state;
    BR_CHECK_ERR(br_cond_init_lock(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_cond_init_rlock(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_cond_destroy(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_cond_acquire(NULL, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_cond_release(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_cond_wait(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_cond_wait_for(NULL, always_true, NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_cond_notify(NULL, 1), BR_EINVAL);
    BR_CHECK_ERR(br_cond_notify_all(NULL), BR_EINVAL);
    br_cond c = BR_COND_INIT;
    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    BR_CHECK_ERR(br_cond_wait_for(&c, NULL, NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_OK(br_cond_release(&c));
}

/* --- timeouts ----------------------------------------------------------------------- */

static void wait_times_out_never_early_and_keeps_the_lock(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_cond_wait(&c, BR_NOWAIT), BR_ETIMEDOUT);
    TU_CHECK_QUICK(t0);
    BR_CHECK(br_lock_owned(&l));
    for (int64_t ms = 1; ms <= 40; ms *= 4) {
        t0 = br_now();
        BR_CHECK_ERR(br_cond_wait(&c, t0 + ms * BR_MSEC), BR_ETIMEDOUT);
        TU_CHECK_NOT_EARLY(t0, ms * BR_MSEC);
        BR_CHECK(br_lock_owned(&l));
    }
    BR_CHECK_EQ(cond_waiters(&c), 0);
    BR_CHECK_OK(br_lock_release(&l));
}

/* The lock destroyed under a waiter: it times out and can't take the lock back, so
 * br_cond_wait says BR_EINVAL (misuse) and returns without the lock. */
typedef struct {
    br_cond *c;
    br_lock *l;
    int64_t wait_ns;
    int rc;
    int held_after;
    atomic_int finished;
} orphan_ctx;

static void orphan_waiter(void *arg) {
    orphan_ctx *o = arg;
    o->rc = br_lock_acquire(o->l, BR_FOREVER);
    if (o->rc == 0)
        o->rc = br_cond_wait(o->c, br_deadline_after(o->wait_ns));
    o->held_after = br_lock_owned(o->l);
    atomic_store(&o->finished, 1);
}

static void wait_einval_when_the_lock_is_destroyed(void **state) {
    (void)state;
    /* The destroy must land while the waiter waits; if a loaded machine lets its wait
     * end first, try again with a longer one. */
    for (int attempt = 0;; attempt++) {
        BR_CHECK(attempt < 8);
        br_lock l = BR_LOCK_INIT;
        br_cond c;
        BR_CHECK_OK(br_cond_init(&c, &l));
        orphan_ctx o = {.c = &c, .l = &l, .wait_ns = (20 * BR_MSEC) << attempt, .rc = 99};
        br_thread *t = tu_spawn(orphan_waiter, &o);
        TU_WAIT_FOR((cond_waiters(&c) == 1 && !br_lock_locked(&l)) ||
                    atomic_load(&o.finished));
        int rc = atomic_load(&o.finished) ? BR_EBUSY : br_lock_destroy(&l);
        tu_join(t);
        if (rc == BR_EBUSY) /* its wait ended before the destroy */
            continue;
        BR_CHECK_OK(rc);
        BR_CHECK_ERR(o.rc, BR_EINVAL);
        BR_CHECK_EQ(o.held_after, 0);
        BR_CHECK_EQ(cond_waiters(&c), 0);
        BR_CHECK_OK(br_cond_destroy(&c));
        break;
    }
}

/* --- the poem: two threads speak in strict alternation ------------------------------- */

static const char *const poem[] = {
    "Two roads diverged in a yellow wood,", "And sorry I could not travel both",
    "And be one traveler, long I stood",    "And looked down one as far as I could",
    "To where it bent in the undergrowth;", "Then took the other, as just as fair,",
    "And having perhaps the better claim,", "Because it was grassy and wanted wear;",
};
#define POEM_LINES ((int)(sizeof poem / sizeof poem[0]))

typedef struct {
    br_cond *c;
    int turn; /* whose line is next: 0 or 1; under the condition's lock */
    int next; /* the next line */
    const char *said[POEM_LINES];
    int who[POEM_LINES];
    int rounds; /* for the ping-pong stress: lines to speak in total */
    int rc[2];
} dialogue;

typedef struct {
    dialogue *d;
    int me;
} speaker_arg;

static void speaker(void *arg) {
    speaker_arg *s = arg;
    dialogue *d = s->d;
    int rc = br_cond_acquire(d->c, BR_FOREVER);
    while (rc == 0 && d->next < d->rounds) {
        while (rc == 0 && d->turn != s->me && d->next < d->rounds)
            rc = br_cond_wait(d->c, BR_FOREVER);
        if (rc != 0 || d->next >= d->rounds)
            break;
        if (d->next < POEM_LINES) {
            d->said[d->next] = poem[d->next];
            d->who[d->next] = s->me;
        }
        d->next++;
        d->turn = 1 - s->me;
        rc = br_cond_notify(d->c, 1);
    }
    if (rc == 0)
        rc = br_cond_release(d->c);
    d->rc[s->me] = rc;
}

static void run_dialogue(br_cond *c, int rounds) {
    dialogue d = {.c = c, .rounds = rounds};
    speaker_arg a[2] = {{&d, 0}, {&d, 1}};
    br_thread *t1 = tu_spawn(speaker, &a[1]); /* the second speaker starts first */
    br_thread *t0 = tu_spawn(speaker, &a[0]);
    tu_join(t0);
    tu_join(t1);
    BR_CHECK_OK(d.rc[0]);
    BR_CHECK_OK(d.rc[1]);
    BR_CHECK_EQ(d.next, rounds);
    for (int i = 0; i < POEM_LINES && i < rounds; i++) {
        BR_CHECK_EQ(d.who[i], i % 2);
        BR_CHECK(strcmp(d.said[i], poem[i]) == 0);
    }
}

static void poem_in_strict_alternation(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_rlock r = BR_RLOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    run_dialogue(&c, POEM_LINES);
    BR_CHECK_OK(br_cond_init(&c, &r));
    run_dialogue(&c, POEM_LINES);
    br_cond own = BR_COND_INIT;
    run_dialogue(&own, POEM_LINES);
    BR_CHECK_OK(br_cond_destroy(&own));
}

/* Strict alternation for many rounds: a lost notify would hang it. */
static void ping_pong_stress(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    run_dialogue(&c, (int)br_test_scaled(100000, 2000));
    br_cond own = BR_COND_INIT;
    run_dialogue(&own, (int)br_test_scaled(100000, 2000));
}

/* --- notify(n) wakes exactly n ----------------------------------------------------------
 */

enum { WAITERS = 6 };

typedef struct {
    br_cond *c;
    atomic_int woken;
    int rc[WAITERS];
    int next_id;
} crowd;

static void crowd_waiter(void *arg) {
    crowd *k = arg;
    int rc = br_cond_acquire(k->c, BR_FOREVER);
    int id = k->next_id++; /* under the lock */
    if (rc == 0)
        rc = br_cond_wait(k->c, BR_FOREVER);
    if (rc == 0) {
        atomic_fetch_add(&k->woken, 1);
        rc = br_cond_release(k->c);
    }
    k->rc[id] = rc;
}

static void notify_n_wakes_exactly_n(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    crowd k = {.c = &c};
    br_thread *t[WAITERS];
    tu_spawn_n(t, WAITERS, crowd_waiter, &k);
    TU_WAIT_FOR(cond_waiters(&c) == WAITERS);

    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    BR_CHECK_OK(br_cond_notify(&c, 2));
    BR_CHECK_EQ(cond_waiters(&c), WAITERS - 2); /* popped at once, under our lock */
    BR_CHECK_OK(br_cond_release(&c));
    TU_WAIT_FOR(atomic_load(&k.woken) == 2);

    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    BR_CHECK_OK(br_cond_notify(&c, 3));
    BR_CHECK_EQ(cond_waiters(&c), WAITERS - 5);
    BR_CHECK_OK(br_cond_release(&c));
    TU_WAIT_FOR(atomic_load(&k.woken) == 5);
    /* A waiter is woken only by being popped, so the queue says exactly who was: one
     * still waits, and nobody else can wake without a notify. */
    BR_CHECK_EQ(cond_waiters(&c), 1);
    BR_CHECK_EQ(atomic_load(&k.woken), 5);

    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    BR_CHECK_ERR(br_cond_destroy(&c), BR_EBUSY); /* one still waits */
    BR_CHECK_OK(br_cond_notify(&c, 100));        /* more than there are */
    BR_CHECK_OK(br_cond_release(&c));
    tu_join_n(t, WAITERS);
    for (int i = 0; i < WAITERS; i++)
        BR_CHECK_OK(k.rc[i]);
    BR_CHECK_EQ(atomic_load(&k.woken), WAITERS);
    BR_CHECK_OK(br_cond_destroy(&c));
}

static void notify_all_wakes_everyone(void **state) {
    (void)state;
    br_cond c = BR_COND_INIT;
    crowd k = {.c = &c};
    br_thread *t[WAITERS];
    tu_spawn_n(t, WAITERS, crowd_waiter, &k);
    TU_WAIT_FOR(cond_waiters(&c) == WAITERS);
    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    BR_CHECK_OK(br_cond_notify_all(&c));
    BR_CHECK_EQ(cond_waiters(&c), 0);
    BR_CHECK_OK(br_cond_release(&c));
    tu_join_n(t, WAITERS);
    for (int i = 0; i < WAITERS; i++)
        BR_CHECK_OK(k.rc[i]);
    BR_CHECK_EQ(atomic_load(&k.woken), WAITERS);
}

/* --- wait_for
 * ------------------------------------------------------------------------------ */

typedef struct {
    br_cond *c;
    int value; /* under the lock */
    int evals; /* how many times box_full ran; under the lock */
    int rc;
} box;

static bool box_full(void *arg) {
    box *b = arg;
    b->evals++;
    return b->value >= 3;
}

static void box_filler(void *arg) {
    box *b = arg;
    for (int i = 0; i < 3 && b->rc == 0; i++) {
        /* Each increment only once the waiter waits again, so that it goes through a
         * wake-up with the predicate still false (no checks here: not the test's
         * thread; the hang guard is the test's join). */
        int64_t give_up = br_test_hang_guard();
        while (cond_waiters(b->c) != 1 && br_now() < give_up)
            br_sleep(50 * BR_USEC);
        b->rc = br_cond_acquire(b->c, BR_FOREVER);
        if (b->rc != 0)
            break;
        b->value++;
        b->rc = br_cond_notify_all(b->c);
        if (b->rc == 0)
            b->rc = br_cond_release(b->c);
    }
}

static void wait_for_predicate(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    box b = {.c = &c};
    BR_CHECK_OK(br_cond_acquire(&c, BR_FOREVER));
    /* false, and the deadline passes: BR_ETIMEDOUT, never early, lock held */
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_cond_wait_for(&c, box_full, &b, t0 + 20 * BR_MSEC), BR_ETIMEDOUT);
    TU_CHECK_NOT_EARLY(t0, 20 * BR_MSEC);
    BR_CHECK(br_lock_owned(&l));
    BR_CHECK_ERR(br_cond_wait_for(&c, box_full, &b, BR_NOWAIT), BR_ETIMEDOUT);
    /* true at once: no wait even under NOWAIT */
    BR_CHECK_OK(br_cond_wait_for(&c, always_true, NULL, BR_NOWAIT));

    b.evals = 0;
    br_thread *t = tu_spawn(box_filler, &b);
    BR_CHECK_OK(br_cond_wait_for(&c, box_full, &b, br_test_hang_guard()));
    BR_CHECK_EQ(b.value, 3);
    BR_CHECK_EQ(b.evals, 4); /* once before waiting, once after each of the 3 wake-ups */
    BR_CHECK(br_lock_owned(&l));
    BR_CHECK_OK(br_cond_release(&c));
    tu_join(t);
    BR_CHECK_OK(b.rc);
}

/* --- RLock levels survive a wait
 * ------------------------------------------------------------ */

typedef struct {
    br_cond *c;
    br_rlock *r;
    int rc;
} notifier_ctx;

static void late_notifier(void *arg) {
    notifier_ctx *n = arg;
    /* The waiter released all its levels, so we can take the RLock. */
    n->rc = br_rlock_acquire(n->r, BR_FOREVER);
    if (n->rc == 0)
        n->rc = br_cond_notify(n->c, 1);
    if (n->rc == 0)
        n->rc = br_rlock_release(n->r);
}

static void rlock_levels_restored_after_wait(void **state) {
    (void)state;
    br_rlock r = BR_RLOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &r));
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_rlock_acquire(&r, BR_FOREVER));
    /* timed out: still three levels */
    BR_CHECK_ERR(br_cond_wait(&c, br_deadline_after(2 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_rlock_count(&r), 3);
    /* notified: three levels again, and the notifier could take the lock meanwhile */
    notifier_ctx n = {.c = &c, .r = &r};
    br_thread *t = tu_spawn(late_notifier, &n);
    BR_CHECK_OK(br_cond_wait(&c, br_test_hang_guard()));
    BR_CHECK_EQ(br_rlock_count(&r), 3);
    tu_join(t);
    BR_CHECK_OK(n.rc);
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_rlock_release(&r));
    BR_CHECK(!br_rlock_owned(&r));

    /* the same through a zero-initialised condition's own RLock */
    br_cond own = BR_COND_INIT;
    BR_CHECK_OK(br_cond_acquire(&own, BR_FOREVER));
    BR_CHECK_OK(br_cond_acquire(&own, BR_FOREVER)); /* an RLock: nesting is fine */
    BR_CHECK_ERR(br_cond_destroy(&own), BR_EBUSY);  /* held */
    BR_CHECK_ERR(br_cond_wait(&own, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_cond_release(&own));
    BR_CHECK_OK(br_cond_release(&own));
    BR_CHECK_ERR(br_cond_release(&own), BR_EPERM);
    BR_CHECK_OK(br_cond_destroy(&own));
}

/* --- producers and consumers on one condition --------------------------------------------
 */

enum { PC_THREADS = 4 };

typedef struct {
    br_cond *c;
    long items;    /* under the lock */
    long produced; /* under the lock */
    long per_thread;
    long consumed[PC_THREADS];
    int rc[2 * PC_THREADS];
} market;

typedef struct {
    market *m;
    int id;
} market_arg;

static bool have_items(void *arg) {
    return ((market *)arg)->items > 0;
}

static void producer(void *arg) {
    market_arg *a = arg;
    market *m = a->m;
    int rc = 0;
    for (long i = 0; i < m->per_thread && rc == 0; i++) {
        rc = br_cond_acquire(m->c, BR_FOREVER);
        if (rc != 0)
            break;
        m->items++;
        m->produced++;
        rc = br_cond_notify(m->c, 1);
        if (rc == 0)
            rc = br_cond_release(m->c);
    }
    m->rc[a->id] = rc;
}

static void consumer(void *arg) {
    market_arg *a = arg;
    market *m = a->m;
    int rc = 0;
    for (long i = 0; i < m->per_thread && rc == 0; i++) {
        rc = br_cond_acquire(m->c, BR_FOREVER);
        if (rc == 0)
            rc = br_cond_wait_for(m->c, have_items, m, BR_FOREVER);
        if (rc != 0)
            break;
        m->items--;
        m->consumed[a->id - PC_THREADS]++;
        rc = br_cond_release(m->c);
    }
    m->rc[a->id] = rc;
}

static void producers_consumers_lose_no_wakeup(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    br_cond c;
    BR_CHECK_OK(br_cond_init(&c, &l));
    market m = {.c = &c, .per_thread = br_test_scaled(20000, 500)};
    market_arg a[2 * PC_THREADS];
    br_thread *t[2 * PC_THREADS];
    for (int i = 0; i < 2 * PC_THREADS; i++) {
        a[i] = (market_arg){&m, i};
        t[i] = tu_spawn(i < PC_THREADS ? producer : consumer, &a[i]);
    }
    for (int i = 0; i < 2 * PC_THREADS; i++)
        tu_join(t[i]);
    for (int i = 0; i < 2 * PC_THREADS; i++)
        BR_CHECK_OK(m.rc[i]);
    BR_CHECK_EQ(m.produced, PC_THREADS * m.per_thread);
    for (int i = 0; i < PC_THREADS; i++)
        BR_CHECK_EQ(m.consumed[i], m.per_thread);
    BR_CHECK_EQ(m.items, 0);
    BR_CHECK_EQ(cond_waiters(&c), 0);
}

BR_TEST_MAIN(cmocka_unit_test(needs_the_lock), cmocka_unit_test(null_handles),
             cmocka_unit_test(wait_times_out_never_early_and_keeps_the_lock),
             cmocka_unit_test(wait_einval_when_the_lock_is_destroyed),
             cmocka_unit_test(poem_in_strict_alternation),
             cmocka_unit_test(ping_pong_stress), cmocka_unit_test(notify_n_wakes_exactly_n),
             cmocka_unit_test(notify_all_wakes_everyone),
             cmocka_unit_test(wait_for_predicate),
             cmocka_unit_test(rlock_levels_restored_after_wait),
             cmocka_unit_test(producers_consumers_lose_no_wakeup))
