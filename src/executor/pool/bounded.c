/* Bounded submission: the thread pool's max_pending (braid/executor.h).
 *
 * Design notes.
 *
 * pending counts tasks pushed and not yet dequeued (only when max_pending > 0). A
 * submitter reserves a slot with a CAS before it pushes; a worker releases it when it
 * dequeues. A submitter that finds no room links a waiter into `bp`, bumps
 * nbp_waiters (seq_cst) and tries again before it parks; a worker decrements pending
 * (seq_cst) and then reads nbp_waiters: Dekker again, so no release goes unnoticed. A
 * woken submitter retries and may lose the slot to a newcomer, which is fine: pending
 * is then full again and its next release wakes the next waiter.
 *
 * Leaving before the pool is freed. Shutdown wakes every waiting submitter, and they
 * go on reading the pool (the CLOSED bit, pending, and for one that got a slot, the
 * whole push) after the wake. So bp_inside, under bp.lock, counts the submitters past
 * the fast path: one joins it when it first links its waiter (its own later reads of
 * the pool happen before it leaves), and leaves it at the very end of pool_submit (pool.c),
 * under bp.lock; that unlock is its last access to the pool. shutdown(wait) waits,
 * after joining the workers, until bp_inside is 0: it links a waiter of its own on
 * `drainers` and the submitter that takes bp_inside to 0 wakes the list after its
 * unlock (core rule 1: the drainers can't leave before they are signalled). A submit
 * that begins after br_executor_free began is a use after free like any other; one that
 * is blocked when it begins is safe.
 *
 * Cancellation (a coroutine's, core/lib.h). A submitter whose park is cancelled while
 * it is still linked unlinks itself (lowering nbp_waiters under bp.lock) and returns
 * BR_ECANCELED: it reserved nothing and queued nothing, and pool_submit still calls
 * bp_leave, so bp_inside is right; the submit layer drops the future it made. It
 * consumed no wake-up, so none is lost: a release that counted it before it left wakes
 * whoever is linked by then. A submitter that a release popped first keeps the wake
 * (core rule 2, the cancel posted again) and retries as after any wake: it takes a
 * free slot and queues its task, or finds none, links itself again and parks, and
 * that park reports the cancel at once. A submit that finds room never parks and
 * leaves a pending cancel pending. The park that only leaves the queue (after a
 * successful retry, or on seeing the pool closed) is NOCANCEL: it can't report a
 * cancel, so it must not consume one. The drainers' wait (shutdown with wait) can't be
 * cancelled either: the pool's memory depends on it. */
#include "executor/pool/private.h"

bool br__pool_pending_try_reserve(struct pool *p) {
    int64_t n = atomic_load_explicit(&p->pending, memory_order_relaxed);
    while (n < p->max_pending)
        if (atomic_compare_exchange_weak_explicit(&p->pending, &n, n + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_relaxed))
            return true;
    return false;
}

void br__pool_bp_wake(struct pool *p, int n) {
    br__waiter *chain = NULL, **tail = &chain;
    br__ilock_lock(&p->bp.lock);
    while ((n < 0 || n-- > 0) && !br__wq_empty(&p->bp)) {
        br__waiter *w = br__wq_pop(&p->bp);
        atomic_fetch_sub_explicit(&p->nbp_waiters, 1, memory_order_relaxed);
        *tail = w;
        tail = &w->next;
    }
    br__ilock_unlock(&p->bp.lock);
    br__wake_chain(chain);
}

void br__pool_pending_release(struct pool *p) {
    atomic_fetch_sub_explicit(&p->pending, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->nbp_waiters, memory_order_seq_cst) > 0)
        br__pool_bp_wake(p, 1);
}

/* A waiting submitter leaves `bp` by itself (timed out, got room, or the pool closed).
 * Under bp.lock. */
static void bp_unlink(br__waiter *w, void *arg, int why) {
    (void)why;
    struct pool *p = arg;
    br__wq_remove(&p->bp, w);
    atomic_fetch_sub_explicit(&p->nbp_waiters, 1, memory_order_relaxed);
}

void (*br__pool_bp_woken_hook)(void);
_Atomic long br__pool_drain_parks;

int br__pool_pending_reserve(struct pool *p, int64_t deadline, bool *inside) {
    for (;;) {
        uintptr_t h = atomic_load_explicit(&p->inject, memory_order_acquire);
        if (h & INJ_FLAGS)
            return br__pool_closed_code(h);
        if (br__pool_pending_try_reserve(p))
            return 0;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        BR__PARKED(br__waiter, w);
        br__waiter_init(w);
        br__ilock_lock(&p->bp.lock);
        br__wq_push(&p->bp, w);
        atomic_fetch_add_explicit(&p->nbp_waiters, 1, memory_order_seq_cst);
        if (!*inside) {
            p->bp_inside++;
            *inside = true;
        }
        br__ilock_unlock(&p->bp.lock);
        h = atomic_load_explicit(&p->inject, memory_order_seq_cst);
        bool got = !(h & INJ_FLAGS) && br__pool_pending_try_reserve(p);
        if (got || (h & INJ_FLAGS)) {
            /* Leave the queue at once; if a waker popped us already, its wake is ours
             * (core rule 2), and with a slot in hand we pass it on. This park only
             * leaves: it must not consume a cancel it couldn't report. */
            w->flags |= BR__WAITER_NOCANCEL;
            if (br__waiter_park_or_leave_in(w, &p->bp.lock, BR_NOWAIT, bp_unlink, p) == 0 &&
                got)
                br__pool_bp_wake(p, 1);
            return got ? 0 : br__pool_closed_code(h);
        }
        int rc = br__waiter_park_or_leave_in(w, &p->bp.lock, deadline, bp_unlink, p);
        if (BR__UNLIKELY(br__pool_bp_woken_hook != NULL))
            br__pool_bp_woken_hook();
        if (rc != 0)
            return rc; /* BR_ETIMEDOUT or BR_ECANCELED: unlinked, no wake consumed */
    }
}

/* The end of a submit that joined bp_inside: its last access to the pool. */
void br__pool_bp_leave(struct pool *p) {
    br__waiter *chain = NULL;
    br__ilock_lock(&p->bp.lock);
    if (--p->bp_inside == 0) {
        chain = p->drainers;
        p->drainers = NULL;
    }
    br__ilock_unlock(&p->bp.lock); /* from here on a drainer may free the pool */
    br__wake_chain(chain);
}

/* Waits until no submitter is inside the pool's slow path (shutdown with wait). Can't
 * be cancelled (br__waiter_park_until_signalled): the free that may follow depends on
 * it. */
void br__pool_bp_drain(struct pool *p) {
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    br__ilock_lock(&p->bp.lock);
    if (p->bp_inside == 0) {
        br__ilock_unlock(&p->bp.lock);
        return;
    }
    w->next = p->drainers;
    p->drainers = w;
    br__ilock_unlock(&p->bp.lock);
    atomic_fetch_add_explicit(&br__pool_drain_parks, 1, memory_order_relaxed);
    /* Only br__pool_bp_leave pops the list, and it signals everyone it popped. */
    br__waiter_park_until_signalled(w);
}
