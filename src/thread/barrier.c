/* threading.Barrier: rounds, an action, and breaking.
 *
 * Design notes.
 *
 * Everything is under wq.lock, which is never held across the action or a park. A
 * round is the set of waiters in wq plus `count` (arrivals so far). The last arrival
 * (index parties-1) pops the whole round off the queue, resets count for the next
 * round, then runs the action with no lock held, and finally hands every popped waiter
 * its outcome in w->data (PASS or BROKEN) and wakes it. Each waiter returns the index it
 * was given on arrival, so indices are 0..parties-1 per round, as in Python.
 *
 * Arrivals for the next round may queue while the action runs: they belong to the new
 * round. If the action fails, the barrier is broken and they are woken with BROKEN too
 * (Python makes them wait for the action and then raise BrokenBarrierError).
 *
 * A waiter whose deadline passes while still queued breaks the barrier from inside
 * br__waiter_park_or_leave's `unlinked` hook, atomically with its unlinking: the other
 * waiters of its round are popped and woken with BROKEN, and the timing-out caller
 * returns BR_ETIMEDOUT, as Python's raises BrokenBarrierError in the others. A waiter
 * already popped by the tripping thread has passed, whatever its deadline says.
 *
 * abort() breaks it (waiters and later callers get BR_EBROKEN until reset);
 * reset() empties it, wakes the waiters with BROKEN and clears the broken state.
 */
#include "thread/private.h"

#include <limits.h>
#include <string.h>

/* What a popped waiter is told in w->data. */
enum { OUT_PASS = 1, OUT_BROKEN = 2 };

BR__CHECK_STORAGE(br_barrier, struct br__barrier);

int br_barrier_init(br_barrier *pub, unsigned parties, br_barrier_action action,
                    void *arg) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_barrier_init: NULL barrier");
    if (parties == 0 || parties > INT_MAX) /* wait() returns the index as an int */
        return BR__MISUSE(BR_EINVAL, "br_barrier_init: parties == 0 or > INT_MAX");
    memset(pub, 0, sizeof *pub);
    struct br__barrier *b = BR__BARRIER_IMPL(pub);
    b->parties = parties;
    b->action = action;
    b->arg = arg;
    atomic_store_explicit(&b->magic, BR__BARRIER_ALIVE, memory_order_release);
    return 0;
}

static bool alive(const struct br__barrier *b) {
    return atomic_load_explicit(&b->magic, memory_order_acquire) == BR__BARRIER_ALIVE;
}

int br_barrier_destroy(br_barrier *pub) {
    struct br__barrier *b = BR__BARRIER_IMPL(pub);
    if (!pub || !alive(b))
        return BR__MISUSE(BR_EINVAL,
                          "br_barrier_destroy: NULL, destroyed or never initialised");
    br__ilock_lock(&b->wq.lock);
    int rc = 0;
    if (!alive(b))
        rc = BR_EINVAL;
    else if (!br__wq_empty(&b->wq) || b->busy > 0 ||
             atomic_load_explicit(&b->count, memory_order_relaxed) > 0)
        rc = BR_EBUSY;
    else
        atomic_store_explicit(&b->magic, BR__BARRIER_DESTROYED, memory_order_relaxed);
    br__ilock_unlock(&b->wq.lock);
    return rc == BR_EINVAL ? BR__MISUSE(rc, "br_barrier_destroy: destroyed twice") : rc;
}

/* Breaks the barrier; under wq.lock. Returns the waiters to wake with BROKEN. */
static br__waiter *break_locked(struct br__barrier *b) {
    atomic_store_explicit(&b->broken, 1, memory_order_relaxed);
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
    return br__wq_pop_all(&b->wq, OUT_BROKEN);
}

/* The `unlinked` hook: a waiter timed out while queued. Waking under wq.lock is
 * allowed (core/lib.h) and keeps the break atomic with the unlink. */
static void timed_out(br__wq *q, void *arg, int why) {
    (void)why;
    (void)q;
    br__wake_chain(break_locked(arg));
}

int br_barrier_wait(br_barrier *pub, int64_t deadline) {
    struct br__barrier *b = BR__BARRIER_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_barrier_wait: NULL barrier");
    br__waiter w;
    br__waiter_init(&w);
    br__ilock_lock(&b->wq.lock);
    if (!alive(b)) {
        br__ilock_unlock(&b->wq.lock);
        return BR__MISUSE(BR_EINVAL, "br_barrier_wait: destroyed or never initialised");
    }
    if (atomic_load_explicit(&b->broken, memory_order_relaxed)) {
        br__ilock_unlock(&b->wq.lock);
        return BR_EBROKEN;
    }
    uint32_t index = atomic_load_explicit(&b->count, memory_order_relaxed);
    if (index + 1 < b->parties) {
        atomic_store_explicit(&b->count, index + 1, memory_order_relaxed);
        br__wq_push(&b->wq, &w);
        br__ilock_unlock(&b->wq.lock);
        int rc = br__waiter_park_or_leave(&w, &b->wq, deadline, timed_out, b);
        if (rc != 0)
            return rc; /* BR_ETIMEDOUT, and the barrier is broken */
        return w.data == OUT_PASS ? (int)index : BR_EBROKEN;
    }

    /* The last arrival: take the round off the queue, run the action unlocked. */
    br__waiter *round = br__wq_pop_all(&b->wq, OUT_PASS);
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
    b->busy++;
    br__ilock_unlock(&b->wq.lock);

    int arc = b->action ? b->action(b->arg) : 0;

    br__waiter *next_round = NULL;
    br__ilock_lock(&b->wq.lock);
    b->busy--;
    if (arc != 0)
        next_round = break_locked(b);
    br__ilock_unlock(&b->wq.lock);
    if (arc != 0)
        for (br__waiter *p = round; p; p = p->next)
            p->data = OUT_BROKEN; /* still ours: popped, not yet woken */
    br__wake_chain(round);
    br__wake_chain(next_round);
    return arc != 0 ? BR_EBROKEN : (int)index;
}

int br_barrier_abort(br_barrier *pub) {
    struct br__barrier *b = BR__BARRIER_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_barrier_abort: NULL barrier");
    br__ilock_lock(&b->wq.lock);
    if (!alive(b)) {
        br__ilock_unlock(&b->wq.lock);
        return BR__MISUSE(BR_EINVAL, "br_barrier_abort: destroyed or never initialised");
    }
    br__waiter *chain = break_locked(b);
    br__ilock_unlock(&b->wq.lock);
    br__wake_chain(chain);
    return 0;
}

int br_barrier_reset(br_barrier *pub) {
    struct br__barrier *b = BR__BARRIER_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_barrier_reset: NULL barrier");
    br__ilock_lock(&b->wq.lock);
    if (!alive(b)) {
        br__ilock_unlock(&b->wq.lock);
        return BR__MISUSE(BR_EINVAL, "br_barrier_reset: destroyed or never initialised");
    }
    br__waiter *chain = br__wq_pop_all(&b->wq, OUT_BROKEN);
    atomic_store_explicit(&b->count, 0, memory_order_relaxed);
    atomic_store_explicit(&b->broken, 0, memory_order_relaxed);
    br__ilock_unlock(&b->wq.lock);
    br__wake_chain(chain);
    return 0;
}

bool br_barrier_broken(const br_barrier *pub) {
    return pub && alive(BR__BARRIER_IMPL(pub)) &&
           atomic_load_explicit(&BR__BARRIER_IMPL(pub)->broken, memory_order_relaxed);
}

unsigned br_barrier_parties(const br_barrier *pub) {
    return pub && alive(BR__BARRIER_IMPL(pub)) ? BR__BARRIER_IMPL(pub)->parties : 0;
}

unsigned br_barrier_n_waiting(const br_barrier *pub) {
    if (!pub || !alive(BR__BARRIER_IMPL(pub)) ||
        atomic_load_explicit(&BR__BARRIER_IMPL(pub)->broken, memory_order_relaxed))
        return 0;
    return atomic_load_explicit(&BR__BARRIER_IMPL(pub)->count, memory_order_relaxed);
}
