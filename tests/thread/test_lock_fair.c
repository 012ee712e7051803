/* br_lock under contention: the hand-off that bounds a waiter's wait (a sleeper that
 * lost the lock to a barger asks for it, and the next release hands it over instead of
 * freeing it), the state bits it keeps, and that a thread re-taking the lock in a
 * tight loop can't starve another. The protocol is in src/thread/lock.c. */
#include "thread_util.h"

static uint32_t state_of(br_lock *l) {
    return atomic_load(&BR__LOCK_IMPL(l)->state);
}

typedef struct {
    br_lock *lock;
    int64_t deadline;
    int rc;
    atomic_int got;   /* 1 once it holds the lock */
    atomic_int leave; /* holders: release once set */
    atomic_int done;  /* 1 once the thread has finished */
} waiter_ctx;

static void acquire_then_wait(void *arg) {
    waiter_ctx *w = arg;
    w->rc = br_lock_acquire(w->lock, w->deadline);
    if (w->rc == 0) {
        atomic_store(&w->got, 1);
        while (!atomic_load(&w->leave))
            br_sleep(100 * BR_USEC);
        w->rc = br_lock_release(w->lock);
    }
    atomic_store(&w->done, 1);
}

/* Queues w's thread behind the lock we hold, then wakes it without releasing (as if a
 * barger had re-taken the lock at once): it loses, naps, and asks. (A thread with a
 * deadline may time out first, on a busy machine: then the wake finds nobody.) */
static br_thread *start_asker(waiter_ctx *w, br_lock *l, int64_t deadline) {
    *w = (waiter_ctx){.lock = l, .deadline = deadline, .rc = 99};
    br_thread *t = tu_spawn(acquire_then_wait, w);
    TU_WAIT_FOR(br__wq_len(&BR__LOCK_IMPL(l)->wq) == 1 || atomic_load(&w->done));
    br__lock_wake_slow(BR__LOCK_IMPL(l));
    return t;
}

/* An asker gets the lock from the next release, with no window for anyone else. */
static void release_hands_the_lock_to_an_asker(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    waiter_ctx w;
    br_thread *t = start_asker(&w, &l, BR_FOREVER);
    TU_WAIT_FOR(state_of(&l) == (BR__LOCK_LOCKED | BR__LOCK_WAITERS | BR__LOCK_HANDOFF));
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 1);
    BR_CHECK_OK(br_lock_release(&l));
    /* Handed over: held at once, not ours, and nobody else can take it. */
    BR_CHECK(br_lock_locked(&l));
    BR_CHECK(!br_lock_owned(&l));
    BR_CHECK_ERR(br_lock_acquire(&l, BR_NOWAIT), BR_ETIMEDOUT);
    TU_WAIT_FOR(atomic_load(&w.got) == 1);
    BR_CHECK_EQ(state_of(&l), BR__LOCK_LOCKED); /* queue empty: both bits cleared */
    atomic_store(&w.leave, 1);
    tu_join(t);
    BR_CHECK_OK(w.rc);
    BR_CHECK_EQ(state_of(&l), 0);
    BR_CHECK_OK(br_lock_destroy(&l));
}

/* An asker whose deadline passes leaves, clearing HANDOFF and WAITERS; the next
 * release frees the lock. */
static void an_asker_that_times_out_clears_its_bits(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    waiter_ctx w;
    /* A deadline far beyond any wait before asking (at most 2 ms): it asks, and it
     * is seen asking (HANDOFF set) before it times out and leaves. */
    br_thread *t = start_asker(&w, &l, br_deadline_after(2 * BR_SEC));
    TU_WAIT_FOR((state_of(&l) & BR__LOCK_HANDOFF) || atomic_load(&w.done));
    BR_CHECK(state_of(&l) & BR__LOCK_HANDOFF);
    tu_join(t);
    BR_CHECK_ERR(w.rc, BR_ETIMEDOUT);
    BR_CHECK_EQ(atomic_load(&w.got), 0);
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 0);
    BR_CHECK_EQ(state_of(&l), BR__LOCK_LOCKED);
    BR_CHECK_OK(br_lock_release(&l));
    BR_CHECK_EQ(state_of(&l), 0);
    BR_CHECK_OK(br_lock_destroy(&l));
}

/* Askers are served in the order they asked, ahead of sleepers that never lost. */
static void askers_are_served_first_in_order(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    struct br__lock *L = BR__LOCK_IMPL(&l);
    BR_CHECK_OK(br_lock_acquire(&l, BR_FOREVER));
    waiter_ctx a, b;
    br_thread *ta = start_asker(&a, &l, BR_FOREVER);
    TU_WAIT_FOR(state_of(&l) & BR__LOCK_HANDOFF);
    /* b queues behind a and then asks too: it goes behind a, not in front. */
    b = (waiter_ctx){.lock = &l, .deadline = BR_FOREVER, .rc = 99};
    br_thread *tb = tu_spawn(acquire_then_wait, &b);
    TU_WAIT_FOR(br__wq_len(&L->wq) == 2);
    /* Wake b (the second) alone: unlink it by hand, as a release would pop it. */
    br__ilock_lock(&L->wq.lock);
    br__waiter *wb = L->wq.tail;
    br__wq_remove(&L->wq, wb);
    br__ilock_unlock(&L->wq.lock);
    br__waiter_wake(wb);
    TU_WAIT_FOR(br__wq_len(&L->wq) == 2); /* b asked and queued again */
    BR_CHECK_OK(br_lock_release(&l));
    TU_WAIT_FOR(atomic_load(&a.got) == 1);
    BR_CHECK_EQ(atomic_load(&b.got), 0);
    BR_CHECK(state_of(&l) & BR__LOCK_HANDOFF); /* b is still an asker */
    atomic_store(&a.leave, 1);
    tu_join(ta);
    BR_CHECK_OK(a.rc);
    TU_WAIT_FOR(atomic_load(&b.got) == 1);
    atomic_store(&b.leave, 1);
    tu_join(tb);
    BR_CHECK_OK(b.rc);
    BR_CHECK_EQ(state_of(&l), 0);
    BR_CHECK_OK(br_lock_destroy(&l));
}

/* A thread that re-takes the lock in a tight loop, forever, can't keep another out:
 * the other gets the lock (and the looper stops only once it has). */
typedef struct {
    br_lock *lock;
    atomic_int stop;
    long rounds;
} looper_ctx;

static void looper(void *arg) {
    looper_ctx *c = arg;
    while (!atomic_load_explicit(&c->stop, memory_order_relaxed)) {
        BR_CHECK_OK(br_lock_acquire(c->lock, BR_FOREVER));
        c->rounds++;
        BR_CHECK_OK(br_lock_release(c->lock));
    }
}

static void a_tight_loop_cannot_starve_a_waiter(void **state) {
    (void)state;
    br_lock l = BR_LOCK_INIT;
    looper_ctx c = {.lock = &l};
    br_thread *t = tu_spawn(looper, &c);
    for (int i = 0; i < 20; i++) {
        BR_CHECK_OK(br_lock_acquire(&l, br_test_hang_guard()));
        BR_CHECK(br_lock_owned(&l));
        BR_CHECK_OK(br_lock_release(&l));
    }
    atomic_store(&c.stop, 1);
    tu_join(t);
    BR_CHECK_EQ(state_of(&l), 0);
    BR_CHECK_OK(br_lock_destroy(&l));
}

/* Two threads counting under the lock, with spinning off (BRAID_SPIN_NS=0 would do
 * the same): every increment lands, and the lock ends free and empty. */
typedef struct {
    br_lock *lock;
    long n, *counter;
} count_ctx;

static void counter_worker(void *arg) {
    count_ctx *c = arg;
    for (long i = 0; i < c->n; i++) {
        BR_CHECK_OK(br_lock_acquire(c->lock, BR_FOREVER));
        (*c->counter)++;
        BR_CHECK_OK(br_lock_release(c->lock));
    }
}

static void counts_exactly_without_spinning(void **state) {
    (void)state;
    br__calib_set_spin_ns(0);
    BR_CHECK(!br__may_spin());
    br_lock l = BR_LOCK_INIT;
    long counter = 0;
    count_ctx c = {.lock = &l, .n = br_test_scaled(200000, 20000), .counter = &counter};
    br_thread *t[3];
    tu_spawn_n(t, 3, counter_worker, &c);
    for (int i = 0; i < 3; i++)
        tu_join(t[i]);
    BR_CHECK_EQ(counter, 3 * c.n);
    BR_CHECK_EQ(state_of(&l), 0);
    BR_CHECK_EQ(br__wq_len(&BR__LOCK_IMPL(&l)->wq), 0);
    BR_CHECK_OK(br_lock_destroy(&l));
}

BR_TEST_MAIN(cmocka_unit_test(release_hands_the_lock_to_an_asker),
             cmocka_unit_test(an_asker_that_times_out_clears_its_bits),
             cmocka_unit_test(askers_are_served_first_in_order),
             cmocka_unit_test(a_tight_loop_cannot_starve_a_waiter),
             cmocka_unit_test(counts_exactly_without_spinning))
