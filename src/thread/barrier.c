/* threading.Barrier: rounds, an action, and breaking.
 *
 * Design notes.
 *
 * Everything is under wq.lock, which is never held across the action or a park. A
 * round is the set of waiters in wq, and `count` is their number (so a reader without
 * the lock, n_waiting, can see it): whenever wq.lock is free, count == the length of wq,
 * since every change of one changes the other in the same critical section. The
 * arrival that makes count reach parties is the last: it pops the whole round off the
 * queue, resets count for the next round, then runs the action with no lock held, and
 * finally hands every popped waiter its outcome in w->data (PASS or BROKEN) and wakes
 * it. Indices are handed out then, in queue order: the popped waiters get 0..parties-2
 * in w->data2 and the last arrival parties-1. Without cancels that is the arrival order,
 * Python's index; with them, the order of the arrivals that stayed, and every index of
 * 0..parties-1 still goes to exactly one caller per round.
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
 * Cancellation (a coroutine's, core/lib.h) withdraws the arrival instead, as
 * asyncio.Barrier's wait does: a waiter cancelled while still queued is unlinked and,
 * in the same `left` hook (told apart from a timeout by its `why`), takes itself off
 * count; it returns BR_ECANCELED and the barrier is neither broken nor changed: the
 * round waits for one more arrival, and the indices, given out at the trip, stay
 * unique. A waiter already popped by the tripping thread has passed: it returns its
 * index, and the cancel stays pending for the context's next park (rule 2). The last
 * arrival doesn't park, so it never reports a cancel.
 *
 * abort() breaks it (waiters and later callers get BR_EBROKEN until reset);
 * reset() empties it, wakes the waiters with BROKEN and clears the broken state.
 */
#include "thread/private.h"

#include <limits.h>
#include <string.h>

/* What a popped waiter is told in w->data (and, on PASS, its index in w->data2). */
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

/* The `left` hook: a waiter left while queued (it is unlinked already). Timed out:
 * break the barrier; waking under wq.lock is allowed (core/lib.h) and keeps the break
 * atomic with the unlink. Cancelled: withdraw the arrival from the round. */
static void waiter_left(br__wq *q, void *arg, int why) {
    (void)q;
    struct br__barrier *b = arg;
    if (why == BR_ECANCELED) {
        uint32_t n = atomic_load_explicit(&b->count, memory_order_relaxed);
        atomic_store_explicit(&b->count, n - 1, memory_order_relaxed); /* n >= 1: ours */
        return;
    }
    br__wake_chain(break_locked(b));
}

int br_barrier_wait(br_barrier *pub, int64_t deadline) {
    struct br__barrier *b = BR__BARRIER_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_barrier_wait: NULL barrier");
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    br__ilock_lock(&b->wq.lock);
    if (!alive(b)) {
        br__ilock_unlock(&b->wq.lock);
        return BR__MISUSE(BR_EINVAL, "br_barrier_wait: destroyed or never initialised");
    }
    if (atomic_load_explicit(&b->broken, memory_order_relaxed)) {
        br__ilock_unlock(&b->wq.lock);
        return BR_EBROKEN;
    }
    uint32_t count = atomic_load_explicit(&b->count, memory_order_relaxed);
    if (count + 1 < b->parties) {
        atomic_store_explicit(&b->count, count + 1, memory_order_relaxed);
        br__wq_push(&b->wq, w);
        br__ilock_unlock(&b->wq.lock);
        int rc = br__waiter_park_or_leave(w, &b->wq, deadline, waiter_left, b);
        if (rc != 0)
            return rc; /* BR_ETIMEDOUT (barrier broken) or BR_ECANCELED (withdrawn) */
        return w->data == OUT_PASS ? (int)w->data2 : BR_EBROKEN;
    }

    /* The last arrival: take the round off the queue, number it in queue order (they
     * are ours until woken, rule 1), run the action unlocked. The queue holds count ==
     * parties-1 waiters: they get 0..parties-2, and index ends at parties-1, ours. */
    br__waiter *round = br__wq_pop_all(&b->wq, OUT_PASS);
    uint32_t index = 0;
    for (br__waiter *p = round; p; p = p->next)
        p->data2 = index++;
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
