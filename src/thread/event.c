/* threading.Event: a flag and a wait-queue.
 *
 * set() changes the flag and pops every waiter in one critical section of wq.lock, and
 * a waiter checks the flag and links itself in one critical section too. So a waiter
 * either sees the flag set, or is linked before set() pops: no lost wake-up (rule 3),
 * and, as with Python's Event (whose set() notifies under the condition's lock), a
 * clear() that follows a set() cannot strand the waiters that set() released, nor wake
 * a waiter that arrived after the clear().
 *
 * Cancellation (a coroutine's, core/lib.h). A waiter cancelled while still linked
 * unlinks itself and returns BR_ECANCELED; the flag and the other waiters are as they
 * were. A waiter that set() popped first returns 0 (the cancel stays pending for the
 * context's next park, rule 2): set() released it, as it does every waiter it pops.
 * A wait on a set event doesn't park and returns 0 whatever is pending.
 */
#include "thread/private.h"

#include <string.h>

BR__CHECK_STORAGE(br_event, struct br__event);

int br_event_init(br_event *pub) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_event_init: NULL event");
    memset(pub, 0, sizeof *pub);
    return 0;
}

int br_event_destroy(br_event *pub) {
    struct br__event *e = BR__EVENT_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_event_destroy: NULL event");
    br__ilock_lock(&e->wq.lock);
    int rc = 0;
    if (atomic_load_explicit(&e->state, memory_order_relaxed) == BR__EV_DESTROYED)
        rc = BR_EINVAL;
    else if (!br__wq_empty(&e->wq))
        rc = BR_EBUSY;
    else
        atomic_store_explicit(&e->state, BR__EV_DESTROYED, memory_order_relaxed);
    br__ilock_unlock(&e->wq.lock);
    return rc == BR_EINVAL ? BR__MISUSE(rc, "br_event_destroy: destroyed twice") : rc;
}

int br_event_set(br_event *pub) {
    struct br__event *e = BR__EVENT_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_event_set: NULL event");
    /* Already set: nothing to do, and no waiter can be queued (waiters queue only while
     * the flag is clear, and the set that set it popped them all). acquire: whoever
     * set it published its writes; we promise the same to our caller's readers. */
    uint32_t st = atomic_load_explicit(&e->state, memory_order_acquire);
    if (st == BR__EV_SET)
        return 0;
    if (st == BR__EV_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_event_set: destroyed event");
    br__ilock_lock(&e->wq.lock);
    st = atomic_load_explicit(&e->state, memory_order_relaxed);
    if (st == BR__EV_DESTROYED) {
        br__ilock_unlock(&e->wq.lock);
        return BR__MISUSE(BR_EINVAL, "br_event_set: destroyed event");
    }
    /* release: a waiter that sees BR__EV_SET on its fast path sees our writes. */
    atomic_store_explicit(&e->state, BR__EV_SET, memory_order_release);
    br__waiter *chain = br__wq_pop_all(&e->wq, 0);
    br__ilock_unlock(&e->wq.lock);
    br__wake_chain(chain);
    return 0;
}

int br_event_clear(br_event *pub) {
    struct br__event *e = BR__EVENT_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_event_clear: NULL event");
    uint32_t st = BR__EV_SET;
    /* CAS, not a store, so that a destroyed event stays poisoned. */
    if (!atomic_compare_exchange_strong_explicit(
            &e->state, &st, BR__EV_CLEAR, memory_order_relaxed, memory_order_relaxed) &&
        st == BR__EV_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_event_clear: destroyed event");
    return 0;
}

bool br_event_is_set(const br_event *pub) {
    return pub && atomic_load_explicit(&BR__EVENT_IMPL(pub)->state, memory_order_acquire) ==
                      BR__EV_SET;
}

int br_event_wait(br_event *pub, int64_t deadline) {
    struct br__event *e = BR__EVENT_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_event_wait: NULL event");
    /* acquire: pairs with the release store in set(). */
    uint32_t st = atomic_load_explicit(&e->state, memory_order_acquire);
    if (st == BR__EV_SET)
        return 0;
    if (st == BR__EV_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_event_wait: destroyed event");
    bool passed = br__deadline_passed(deadline); /* read the clock outside wq.lock */
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    br__ilock_lock(&e->wq.lock);
    st = atomic_load_explicit(&e->state, memory_order_acquire);
    if (st != BR__EV_CLEAR || passed) {
        br__ilock_unlock(&e->wq.lock);
        if (st == BR__EV_DESTROYED)
            return BR__MISUSE(BR_EINVAL, "br_event_wait: destroyed event");
        return st == BR__EV_SET ? 0 : BR_ETIMEDOUT;
    }
    br__wq_push(&e->wq, w);
    br__ilock_unlock(&e->wq.lock);
    return br__waiter_park_or_leave(w, &e->wq, deadline, NULL, NULL);
}
