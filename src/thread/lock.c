/* threading.Lock: an owner-checked, unfair, spinning futex-style lock on braid's waiter.
 *
 * Design notes.
 *
 * State. One 32-bit word holds LOCKED and WAITERS; `owner` holds br__self() of the
 * holder (0 when free); `wq` holds the sleepers. Invariant, true whenever wq.lock is
 * free: WAITERS is set exactly when wq is non-empty. WAITERS is set (before the push)
 * and cleared (when the queue empties: a wake that took the last sleeper, or a sleeper
 * that timed out or was cancelled, through br__waiter_park_or_leave's `left` hook)
 * only under wq.lock. DESTROYED is a poison value with LOCKED set.
 *
 * Acquire. Fast path: one CAS 0 -> LOCKED, then store owner (plain stores while the
 * process is single-threaded, see thread/private.h). Otherwise spin briefly (a few
 * hundred ns, reading the word) and take the lock with a CAS that keeps WAITERS when it
 * stays free across one relax; spinning stops early if others already sleep. The lock
 * is not fair: a running thread may take it ahead of woken sleepers ("barging"), which
 * keeps it fast under contention (Python's Lock makes no fairness promise either).
 * Then, under wq.lock: if LOCKED is clear take it, else set WAITERS with a CAS on the
 * same word, link ourselves and park. A sleeper woken by a release retries under
 * wq.lock; if a barger got there first it goes back to the FRONT of the queue (it has
 * waited longest) and parks with BR__WAITER_NOSPIN: the lock is being re-taken in a
 * tight loop, and sleeping in the kernel gives the holder long uncontended runs instead
 * of bouncing the lock's cache line between CPUs (the reason glibc's mutex does well on
 * a 2-thread counter; spinning again made ours 2x slower there).
 *
 * Release. Check the owner (BR_EPERM), clear owner, then one RMW that clears LOCKED
 * and returns the old word. If WAITERS was set, take wq.lock, pop one sleeper (clear
 * WAITERS if that emptied the queue) and wake it; it retries.
 *
 * Lost wake-ups (core/lib.h rule 3). The sleeper sets WAITERS with a CAS that
 * expects LOCKED set, under wq.lock, and links itself before dropping wq.lock. The
 * releaser's RMW is on the same word, so in its modification order it either comes
 * before that CAS (the CAS then fails, the sleeper re-reads the word, sees LOCKED clear
 * and takes the lock instead of parking) or after it (the RMW returns WAITERS, and the
 * releaser takes wq.lock, which orders it after the link). Once set, WAITERS can only
 * be cleared under wq.lock, by someone who saw the queue empty.
 *
 * Ownership. Only a context stores its own br__self() into owner, and it clears it
 * before its releasing RMW; so a context that reads owner == br__self() (it always sees
 * its own last store) does hold the lock, and relaxed order suffices for owner.
 *
 * Cancellation (a coroutine's, core/lib.h). A sleeper cancelled while still queued
 * leaves the queue (br__waiter_park_or_leave, which clears WAITERS through
 * sleeper_left if the queue emptied) and returns BR_ECANCELED: it held nothing, took
 * nothing, and the releases that come later wake the sleepers still queued. A sleeper
 * whose wake overtook the cancel has been popped by a release, and that wake is the
 * only one the release made: if it left now, the sleepers behind it would stay asleep
 * with the lock free. So it retries as any woken sleeper does, with the cancel posted
 * again (rule 2): it either takes the lock (0, the cancel stays pending for the
 * context's next park) or, having lost to a barger, queues again and its next park
 * reports the cancel at once; the barger's release then wakes whoever is still queued.
 * A cancel is only looked at in a park: an acquire that doesn't need to sleep (the
 * lock is free, or comes free while it spins) returns 0 and leaves the cancel pending,
 * as asyncio.Lock.acquire() on a free lock does. A condition takes its lock back with
 * BR__WAITER_NOCANCEL (br__lock_acquire_nocancel): that wait ignores cancels.
 *
 * Destroy takes wq.lock so that it cannot succeed while a releaser is still inside
 * the wake path. Like most mutexes it cannot protect a releaser that saw WAITERS from
 * a concurrent free by a thread that never waited: free a lock only when nobody can
 * still be releasing it.
 */
#include "thread/private.h"

#include <string.h>

BR__CHECK_STORAGE(br_lock, struct br__lock);

/* How long a contended acquire spins before it queues (a few hundred ns). */
#define SPIN_NS 400

/* Takes the lock if LOCKED is clear in *s (re-read on a failed CAS), keeping WAITERS as
 * it is: the sleepers stay queued. False once LOCKED is seen set. */
static inline bool try_take(struct br__lock *l, uint32_t *s) {
    while (!(*s & BR__LOCK_LOCKED)) {
        if (atomic_compare_exchange_weak_explicit(&l->state, s, *s | BR__LOCK_LOCKED,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
            atomic_store_explicit(&l->owner, br__self(), memory_order_relaxed);
            return true;
        }
    }
    return false;
}

/* Spins up to SPIN_NS for the lock to come free; true once we hold it.
 *
 * It takes the lock only if it is still free one relax after it was seen free. A
 * holder that releases and re-acquires in a tight loop leaves the lock free for a few
 * ns; stealing it in that gap just bounces the cache line between the two CPUs on
 * every iteration (measured: 2x slower than glibc on a 2-thread counter). A lock that
 * stays free for ~30 ns is really free. It stops early when others already sleep on
 * the lock (WAITERS): the lock is contended enough that spinning only adds traffic. */
static bool spin_take(struct br__lock *l) {
    int64_t until = 0;
    for (unsigned i = 1;; i++) {
        uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (s == BR__LOCK_DESTROYED)
            return false;
        if (!(s & BR__LOCK_LOCKED)) {
            br__cpu_relax();
            s = atomic_load_explicit(&l->state, memory_order_relaxed);
            if (try_take(l, &s))
                return true;
        } else if (s & BR__LOCK_WAITERS) {
            return false;
        }
        br__cpu_relax();
        if ((i & 7) == 0) { /* the clock costs ~20 ns: read it every 8 rounds */
            int64_t now = br_now();
            if (until == 0)
                until = now + SPIN_NS;
            else if (now >= until)
                return false;
        }
    }
}

/* The `left` hook: a sleeper timed out or was cancelled and left; runs under wq.lock. */
static void sleeper_left(br__wq *q, void *arg, int why) {
    (void)why;
    struct br__lock *l = arg;
    if (br__wq_empty(q))
        atomic_fetch_and_explicit(&l->state, ~BR__LOCK_WAITERS, memory_order_relaxed);
}

int br__lock_acquire_slow(struct br__lock *l, int64_t deadline, uint32_t wflags) {
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    if (s == BR__LOCK_DESTROYED)
        return BR_EINVAL;
    if (br__deadline_passed(deadline)) /* BR_NOWAIT, or a deadline in the past */
        return try_take(l, &s) ? 0 : BR_ETIMEDOUT;
    /* Only a thread spins here; a coroutine's parker suspends it at once. */
    if (br__tls_v.parker == NULL && spin_take(l))
        return 0;

    /* The first park may spin in the parker (on the waiter's own word, which costs the
     * holder nothing). A sleeper that was woken and then lost the lock to a barger
     * parks with NOSPIN: the lock is being re-taken in a tight loop, and sleeping in
     * the kernel gives the holder a long uncontended run, as glibc's mutex does. */
    bool woken = false;
    for (;;) {
        br__waiter w;
        br__waiter_init(&w);
        w.flags = wflags | (woken ? BR__WAITER_NOSPIN : 0);
        br__ilock_lock(&l->wq.lock);
        s = atomic_load_explicit(&l->state, memory_order_relaxed);
        for (;;) {
            if (s == BR__LOCK_DESTROYED) {
                br__ilock_unlock(&l->wq.lock);
                return BR_EINVAL;
            }
            if (try_take(l, &s)) {
                br__ilock_unlock(&l->wq.lock);
                return 0;
            }
            /* LOCKED is set. Publish WAITERS with a CAS that expects it set: see the
             * lost-wake argument in the design notes. */
            if ((s & BR__LOCK_WAITERS) || atomic_compare_exchange_weak_explicit(
                                              &l->state, &s, s | BR__LOCK_WAITERS,
                                              memory_order_relaxed, memory_order_relaxed))
                break;
        }
        if (woken) /* woken before: it has waited longest, back to the front */
            br__wq_push_front(&l->wq, &w);
        else
            br__wq_push(&l->wq, &w);
        br__ilock_unlock(&l->wq.lock);

        int rc = br__waiter_park_or_leave(&w, &l->wq, deadline, sleeper_left, l);
        if (rc != 0)
            return rc; /* timed out or cancelled, unlinked; sleeper_left fixed WAITERS */
        /* Woken by a release: retry, even if a cancel arrived too (it was posted again
         * and the next park reports it; see the design notes). */
        woken = true;
    }
}

void br__lock_wake_slow(struct br__lock *l) {
    br__ilock_lock(&l->wq.lock);
    br__waiter *w = br__wq_pop(&l->wq);
    if (br__wq_empty(&l->wq))
        atomic_fetch_and_explicit(&l->state, ~BR__LOCK_WAITERS, memory_order_relaxed);
    br__ilock_unlock(&l->wq.lock);
    if (w) /* NULL: every sleeper timed out in the meantime */
        br__waiter_wake(w);
}

int br__lock_destroy(struct br__lock *l) {
    br__ilock_lock(&l->wq.lock);
    uint32_t s = 0;
    bool ok = atomic_compare_exchange_strong_explicit(
        &l->state, &s, BR__LOCK_DESTROYED, memory_order_acq_rel, memory_order_relaxed);
    br__ilock_unlock(&l->wq.lock);
    if (ok)
        return 0;
    if (s == BR__LOCK_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_lock_destroy/br_rlock_destroy: destroyed twice");
    return BR_EBUSY; /* held, or sleepers queued (WAITERS) */
}

/* --- the public Lock ---------------------------------------------------------------- */

int br_lock_init(br_lock *pub) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_lock_init: NULL lock");
    memset(pub, 0, sizeof *pub);
    return 0;
}

int br_lock_destroy(br_lock *pub) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_lock_destroy: NULL lock");
    return br__lock_destroy(BR__LOCK_IMPL(pub));
}

BR__NOINLINE static int acquire_contended(struct br__lock *l, int64_t deadline) {
    if (br__lock_owned(l))
        return BR__MISUSE(BR_EDEADLK, "br_lock_acquire: the caller already holds it");
    int rc = br__lock_acquire_slow(l, deadline, 0);
    if (rc == BR_EINVAL)
        return BR__MISUSE(BR_EINVAL, "br_lock_acquire: destroyed lock");
    return rc;
}

int br_lock_acquire(br_lock *pub, int64_t deadline) {
    struct br__lock *l = BR__LOCK_IMPL(pub);
    if (BR__UNLIKELY(!pub))
        return BR__MISUSE(BR_EINVAL, "br_lock_acquire: NULL lock");
    if (BR__LIKELY(br__lock_try_fast(l)))
        return 0;
    return acquire_contended(l, deadline);
}

BR__NOINLINE static int release_misuse(struct br__lock *l) {
    if (atomic_load_explicit(&l->state, memory_order_relaxed) == BR__LOCK_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_lock_release: destroyed lock");
    return BR__MISUSE(BR_EPERM, "br_lock_release: the caller doesn't hold the lock");
}

int br_lock_release(br_lock *pub) {
    struct br__lock *l = BR__LOCK_IMPL(pub);
    if (BR__UNLIKELY(!pub))
        return BR__MISUSE(BR_EINVAL, "br_lock_release: NULL lock");
    if (BR__UNLIKELY(!br__lock_owned(l)))
        return release_misuse(l);
    br__lock_release(l);
    return 0;
}

bool br_lock_locked(const br_lock *pub) {
    if (!pub)
        return false;
    uint32_t s = atomic_load_explicit(&BR__LOCK_IMPL(pub)->state, memory_order_relaxed);
    return s != BR__LOCK_DESTROYED && (s & BR__LOCK_LOCKED);
}

bool br_lock_owned(const br_lock *pub) {
    return pub && br__lock_owned(BR__LOCK_IMPL(pub));
}
