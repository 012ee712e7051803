/* threading.Condition over a br_lock, a br_rlock, or its own RLock.
 *
 * Design notes.
 *
 * A waiter links itself into the condition's wait-queue BEFORE it releases the user
 * lock. Notify requires the user lock, so a notifier runs either before the waiter
 * took the lock (and the waiter has not started waiting: nothing to wake, as in
 * Python) or after the waiter linked itself (and pops it). So no notify is lost in the
 * window between the release and the park: the queue, not the park, is what a notify
 * finds. notify(n) pops n waiters and hands each the wake-up; a waiter whose deadline
 * passes at the same moment keeps a wake it was given (br__waiter_park_or_leave), so
 * "wakes exactly n" holds even against timeouts.
 *
 * The waiter releases the lock completely (an RLock at any depth: it saves the count),
 * parks, and then takes the lock back at the same level whatever happened: notified,
 * timed out, cancelled. The reacquire waits as long as it takes, like Python's, and
 * ignores cancels (br__lock_acquire_nocancel): the caller holds the lock on every
 * return but misuse, as asyncio.Condition.wait() takes it back before it lets
 * CancelledError out.
 *
 * Cancellation (a coroutine's, core/lib.h). A waiter cancelled while still queued
 * unlinks itself and returns BR_ECANCELED (after taking the lock back): it took no
 * notify, so notify(n) still wakes n others. A waiter that a notify popped first keeps
 * that wake and returns 0, and the cancel stays pending for the context's next park
 * (rule 2): reporting the cancel instead would lose the notify, which notify(n) counted
 * as one of its n. A cancel that arrives while the lock is being taken back stays
 * pending too. wait_for returns BR_ECANCELED as soon as a wait does, without asking
 * the predicate again (asyncio's wait_for lets CancelledError out of its wait too).
 *
 * Locking: the user lock is taken before the condition's wq.lock (notify holds the
 * user lock and takes wq.lock inside br__wq_wake); wq.lock is never held while taking
 * the user lock.
 */
#include "thread/private.h"

#include <limits.h>
#include <string.h>

BR__CHECK_STORAGE(br_cond, struct br__cond);

static struct br__rlock *rlock_of(struct br__cond *c, uint32_t kind) {
    return kind == BR__COND_OWN ? &c->own : c->lock;
}

static struct br__lock *lock_of(struct br__cond *c, uint32_t kind) {
    return kind == BR__COND_LOCK ? c->lock : &rlock_of(c, kind)->lock;
}

/* 0 if the caller may use c with its lock held; BR_EINVAL or BR_EPERM otherwise. */
static int check_held(struct br__cond *c, uint32_t *kind, const char *fn) {
    if (!c)
        return BR__MISUSE(BR_EINVAL, fn);
    *kind = atomic_load_explicit(&c->kind, memory_order_relaxed);
    if (*kind == BR__COND_DESTROYED)
        return BR__MISUSE(BR_EINVAL, fn);
    if (!br__lock_owned(lock_of(c, *kind)))
        return BR__MISUSE(BR_EPERM, fn);
    return 0;
}

static int init(br_cond *pub, uint32_t kind, void *lock) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_cond_init: NULL condition");
    memset(pub, 0, sizeof *pub);
    struct br__cond *c = BR__COND_IMPL(pub);
    c->lock = lock;
    atomic_store_explicit(&c->kind, lock ? kind : BR__COND_OWN, memory_order_relaxed);
    return 0;
}

int br_cond_init_lock(br_cond *c, br_lock *lock) {
    return init(c, BR__COND_LOCK, lock);
}
int br_cond_init_rlock(br_cond *c, br_rlock *lock) {
    return init(c, BR__COND_RLOCK, lock);
}

int br_cond_destroy(br_cond *pub) {
    struct br__cond *c = BR__COND_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_cond_destroy: NULL condition");
    br__ilock_lock(&c->wq.lock);
    uint32_t kind = atomic_load_explicit(&c->kind, memory_order_relaxed);
    int rc = 0;
    if (kind == BR__COND_DESTROYED)
        rc = BR_EINVAL;
    else if (!br__wq_empty(&c->wq))
        rc = BR_EBUSY;
    else if (kind == BR__COND_OWN)
        rc = br__lock_destroy(&c->own.lock); /* BR_EBUSY while held */
    if (rc == 0)
        atomic_store_explicit(&c->kind, BR__COND_DESTROYED, memory_order_relaxed);
    br__ilock_unlock(&c->wq.lock);
    if (rc == BR_EINVAL)
        return BR__MISUSE(rc, "br_cond_destroy: destroyed twice");
    return rc;
}

int br_cond_acquire(br_cond *pub, int64_t deadline) {
    struct br__cond *c = BR__COND_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_cond_acquire: NULL condition");
    uint32_t kind = atomic_load_explicit(&c->kind, memory_order_relaxed);
    if (kind == BR__COND_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_cond_acquire: destroyed condition");
    if (kind == BR__COND_LOCK)
        return br_lock_acquire(c->lock, deadline);
    return br_rlock_acquire((br_rlock *)(void *)rlock_of(c, kind), deadline);
}

int br_cond_release(br_cond *pub) {
    struct br__cond *c = BR__COND_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_cond_release: NULL condition");
    uint32_t kind = atomic_load_explicit(&c->kind, memory_order_relaxed);
    if (kind == BR__COND_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_cond_release: destroyed condition");
    if (kind == BR__COND_LOCK)
        return br_lock_release(c->lock);
    return br_rlock_release((br_rlock *)(void *)rlock_of(c, kind));
}

/* The wait proper; the caller holds the lock (checked). */
static int wait_held(struct br__cond *c, uint32_t kind, int64_t deadline) {
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    br__ilock_lock(&c->wq.lock);
    br__wq_push(&c->wq, w); /* before the release: see the design notes */
    br__ilock_unlock(&c->wq.lock);

    struct br__lock *l = lock_of(c, kind);
    struct br__rlock *r = kind == BR__COND_LOCK ? NULL : rlock_of(c, kind);
    uint32_t depth = 0;
    if (r) {
        depth = r->count;
        r->count = 0;
    }
    br__lock_release(l);

    /* 0 notified, BR_ETIMEDOUT, or BR_ECANCELED: unlinked either way but 0. */
    int rc = br__waiter_park_or_leave(w, &c->wq, deadline, NULL, NULL);

    /* Whatever happened, back at the same level; a cancel can't cut this short. */
    int lrc = br__lock_acquire_nocancel(l);
    if (lrc != 0) /* only if someone destroyed the lock under a waiter */
        return BR__MISUSE(lrc, "br_cond_wait: the lock was destroyed during the wait");
    if (r)
        r->count = depth;
    return rc;
}

int br_cond_wait(br_cond *pub, int64_t deadline) {
    struct br__cond *c = BR__COND_IMPL(pub);
    uint32_t kind;
    int rc = check_held(c, &kind, "br_cond_wait: NULL/destroyed, or lock not held");
    if (rc != 0)
        return rc;
    return wait_held(c, kind, deadline);
}

int br_cond_wait_for(br_cond *pub, br_pred_fn pred, void *arg, int64_t deadline) {
    struct br__cond *c = BR__COND_IMPL(pub);
    if (!pred)
        return BR__MISUSE(BR_EINVAL, "br_cond_wait_for: NULL predicate");
    uint32_t kind;
    int rc = check_held(c, &kind, "br_cond_wait_for: NULL/destroyed, or lock not held");
    if (rc != 0)
        return rc;
    while (!pred(arg)) {
        rc = wait_held(c, kind, deadline);
        if (rc == BR_ETIMEDOUT)
            return pred(arg) ? 0 : BR_ETIMEDOUT; /* Python returns the last value */
        if (rc != 0)
            return rc; /* BR_ECANCELED (lock held), or misuse */
    }
    return 0;
}

static int notify(br_cond *pub, int n, const char *what) {
    struct br__cond *c = BR__COND_IMPL(pub);
    uint32_t kind;
    int rc = check_held(c, &kind, what);
    if (rc != 0)
        return rc;
    br__wq_wake(&c->wq, n, 0);
    return 0;
}

int br_cond_notify(br_cond *c, unsigned n) {
    if (n == 0)
        return BR__MISUSE(BR_EINVAL, "br_cond_notify: n == 0");
    return notify(c, n > INT_MAX ? -1 : (int)n,
                  "br_cond_notify: NULL/destroyed, or lock not held");
}

int br_cond_notify_all(br_cond *c) {
    return notify(c, -1, "br_cond_notify_all: NULL/destroyed, or lock not held");
}
