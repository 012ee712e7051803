/* threading.Lock: an owner-checked, spinning futex-style lock on braid's waiter, unfair
 * for short waits and fair for long ones.
 *
 * Design notes.
 *
 * State. One 32-bit word holds LOCKED, WAITERS and HANDOFF; `owner` holds br__self()
 * of the holder (0 when free, and while a handed-off lock waits for its new holder to
 * run); `wq` holds the sleepers. Invariants, true whenever wq.lock is free: WAITERS is
 * set exactly when wq is non-empty; HANDOFF is set exactly when the first sleeper
 * asked for the lock to be handed to it ("askers" always form a prefix of wq, in the
 * order they asked). Both bits are set (before the push) and cleared only under
 * wq.lock. DESTROYED is a poison value with LOCKED set.
 *
 * Costs, and so the policy, are this machine's own (core/calib.c): rtt, a cache
 * line's round trip between CPUs; wake, a futex wake until the woken thread runs
 * (~0.15 us and ~5 us on an Intel Xeon guest; ~0.8 us and ~20 us on an AMD EPYC guest,
 * where the waker also spends ~10 us in the system call). Every budget below is one of
 * those, in time.
 *
 * Acquire. Fast path: one CAS 0 -> LOCKED, then store owner (plain stores while the
 * process is single-threaded, see thread/private.h). Otherwise a thread spins on the
 * word for up to 4 rtt (never longer than the spin budget; not at all on one CPU, nor
 * if others already sleep) and takes the lock only if it stayed free for one rtt after
 * it was first seen free. A holder that releases and re-takes the lock in a tight loop
 * leaves it free for a few ns, but the spinner sees that only after the line's trip,
 * and a CAS in that gap steals the lock just to lose it again: each such hand-over
 * costs two round trips (measured on the EPYC: 3/4 of the contended acquires were
 * steals, ~1 us each, 2-3x slower than glibc's mutex, which never spins). Then, under
 * wq.lock: if LOCKED is clear take it, else set WAITERS with a CAS on the same word,
 * link ourselves at the back and park (the thread parker spins on the waiter's own
 * word first, which costs the holder nothing).
 *
 * Barging, naps and hand-off. A woken sleeper retries, and a running thread may have
 * taken the lock first ("barging": it keeps a contended lock fast, since the lock is
 * not left idle while the woken thread gets going). A thread that lost that way does
 * not queue again: queued, it would cost the holder a wake on its very next release,
 * a futex system call of up to ~10 us on the EPYC, on every round of a tight loop.
 * It naps instead, unregistered, for one `wake` at a time (a nap ends about when a
 * wake would have reached it anyway), retrying the lock after each nap. Once it has
 * waited FAIR (64 wakes, 50 us .. 2 ms) since it first queued it asks: it queues with
 * HANDOFF, behind earlier askers only, and the next release hands the lock over
 * instead of freeing it (LOCKED stays set; the new holder stores its owner when it
 * runs). So no thread waits much longer than FAIR plus one hold of each asker ahead of
 * it, and in a tight loop the lock changes CPUs about once per FAIR, each holder
 * running uncontended in between (Go's sync.Mutex starvation mode and WebKit's
 * eventual fairness bound waits the same way). A coroutine (its parker never spins
 * nor naps a thread) asks as soon as it has lost once.
 *
 * Release. Check the owner (BR_EPERM), clear owner, then one CAS LOCKED -> 0. If more
 * was set (WAITERS), take wq.lock, pop the first sleeper (clearing WAITERS or HANDOFF
 * if that emptied the queue or the askers), and only then free the lock (unless it is
 * handed over), drop wq.lock and wake the sleeper. Freeing after the pop keeps the
 * lock busy while the releaser works in the wake path, so the woken thread doesn't
 * steal it just to hand it back; a releaser that loops re-takes it long before the
 * woken thread runs.
 *
 * Lost wake-ups (core/lib.h rule 3). The sleeper sets WAITERS (and HANDOFF) with a
 * CAS that expects LOCKED set, under wq.lock, and links itself before dropping
 * wq.lock. The releaser's CAS is on the same word, so in its modification order it
 * either comes before that CAS (which then fails: the sleeper re-reads the word, sees
 * LOCKED clear and takes the lock instead of parking) or after it (it fails, and the
 * releaser takes wq.lock, which orders it after the link). Once set, WAITERS can only
 * be cleared under wq.lock, by someone who saw the queue empty. A napping thread is
 * in no queue and needs no wake: its nap has a deadline.
 *
 * Ownership. Only a context stores its own br__self() into owner, and it clears it
 * before its releasing CAS; so a context that reads owner == br__self() (it always
 * sees its own last store) does hold the lock, and relaxed order suffices for owner. A
 * handed-off lock's new holder stores owner after its wake (the wake's release/acquire
 * pair orders the old holder's critical section before it).
 *
 * Cancellation (a coroutine's, core/lib.h). A sleeper cancelled while still queued
 * leaves the queue (br__waiter_park_or_leave, which fixes WAITERS and HANDOFF through
 * sleeper_left) and returns BR_ECANCELED: it held nothing, took nothing, and the
 * releases that come later wake the sleepers still queued. A sleeper whose wake
 * overtook the cancel has been popped by a release, and that wake is the only one the
 * release made: if it left now, the sleepers behind it would stay asleep with the
 * lock free. So it keeps what the wake gave it: a handed-over lock (0, the cancel
 * stays pending for the context's next park), or a retry with the cancel posted again
 * (rule 2): it either takes the lock (0) or, having lost to a barger, queues again and
 * its next park reports the cancel at once; the barger's release then wakes whoever
 * is still queued. A cancel is only looked at in a park: an acquire that doesn't need
 * to sleep (the lock is free, or comes free while it spins) returns 0 and leaves the
 * cancel pending, as asyncio.Lock.acquire() on a free lock does. A condition takes its
 * lock back with BR__WAITER_NOCANCEL (br__lock_acquire_nocancel): that wait ignores
 * cancels.
 *
 * Destroy takes wq.lock so that it cannot succeed while a releaser is still inside
 * the wake path. Like most mutexes it cannot protect a releaser that saw WAITERS from
 * a concurrent free by a thread that never waited, nor a thread still spinning or
 * napping on it: free a lock only when nobody can still be using it.
 */
#include "thread/private.h"

#include <string.h>

BR__CHECK_STORAGE(br_lock, struct br__lock);

/* w.data2 of a sleeper that asked for the lock; w.data once a release handed it over. */
#define ASKED 1u
#define HANDED 1u

/* How long a waiter that lost to a barger waits before it asks: 64 wakes' worth. */
static int64_t fair_ns(void) {
    int64_t f = 64 * br__calib_wake_ns();
    return f < 50 * BR_USEC ? 50 * BR_USEC : f > 2 * BR_MSEC ? 2 * BR_MSEC : f;
}

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

/* Spins up to 4 rtt (bounded by the spin budget) for the lock to come free; true once
 * we hold it. It takes the lock only once it has stayed free for one rtt (see the
 * design notes), and stops early when others already sleep on the lock (WAITERS): the
 * lock is contended enough that spinning only adds traffic. */
static bool spin_take(struct br__lock *l) {
    int64_t budget = br__calib_spin_ns();
    if (budget <= 0)
        return false;
    int64_t rtt = br__calib_rtt_ns();
    if (budget > 4 * rtt)
        budget = 4 * rtt;
    int64_t start = br_now(), free_since = -1;
    for (unsigned i = 1;; i++) {
        uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (s == BR__LOCK_DESTROYED || (s & BR__LOCK_WAITERS))
            return false;
        if (!(s & BR__LOCK_LOCKED)) {
            int64_t now = br_now();
            if (free_since < 0)
                free_since = now;
            else if (now - free_since >= rtt && try_take(l, &s))
                return true;
        } else {
            free_since = -1;
        }
        br__cpu_relax();
        if ((i & 7) == 0 && br_now() - start >= budget) /* the clock: every 8 rounds */
            return false;
    }
}

/* A thread that lost the lock to a barger: retries it after naps of one wake each
 * (design notes), unqueued, until `ask_at`. 0 (took it), 1 (time to ask), BR_ETIMEDOUT
 * or BR_EINVAL (destroyed meanwhile). */
static int nap_take(struct br__lock *l, int64_t deadline, int64_t ask_at) {
    int64_t nap = br__calib_wake_ns();
    for (;;) {
        uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
        if (s == BR__LOCK_DESTROYED)
            return BR_EINVAL;
        if (try_take(l, &s))
            return 0;
        int64_t now = br_now();
        if (now >= ask_at)
            return 1;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        /* The nap: a waiter nobody signals, parked until its deadline (without the
         * parker's spin: the point is to leave the CPU). */
        BR__PARKED(br__waiter, w);
        br__waiter_init(w);
        w->flags = BR__WAITER_NOSPIN;
        int64_t until = br_deadline_min(br_deadline_min(now + nap, ask_at), deadline);
        (void)br__waiter_park(w, until);
    }
}

/* Clears WAITERS and HANDOFF when the queue no longer justifies them; under wq.lock. */
static void sync_bits(struct br__lock *l) {
    br__waiter *h = l->wq.head;
    uint32_t clear = h == NULL           ? BR__LOCK_WAITERS | BR__LOCK_HANDOFF
                     : h->data2 != ASKED ? BR__LOCK_HANDOFF
                                         : 0;
    if (clear && (atomic_load_explicit(&l->state, memory_order_relaxed) & clear))
        atomic_fetch_and_explicit(&l->state, ~clear, memory_order_relaxed);
}

/* Links an asker behind the askers already queued (they are a prefix of wq). */
static void push_asker(br__wq *q, br__waiter *w) {
    br__waiter *last = NULL;
    for (br__waiter *x = q->head; x && x->data2 == ASKED; x = x->next)
        last = x;
    if (!last) {
        br__wq_push_front(q, w);
        return;
    }
    w->prev = last;
    w->next = last->next;
    if (last->next)
        last->next->prev = w;
    else
        q->tail = w;
    last->next = w;
    w->linked = 1;
}

/* The `left` hook: a sleeper timed out or was cancelled and left; runs under wq.lock. */
static void sleeper_left(br__wq *q, void *arg, int why) {
    (void)q;
    (void)why;
    sync_bits(arg);
}

int br__lock_acquire_slow(struct br__lock *l, int64_t deadline, uint32_t wflags) {
    return br__lock_acquire_slow_at(l, deadline, wflags, __FILE__, __func__);
}

int br__lock_acquire_slow_at(struct br__lock *l, int64_t deadline, uint32_t wflags,
                             const char *site_file, const char *site_func) {
    uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
    if (s == BR__LOCK_DESTROYED)
        return BR_EINVAL;
    if (br__deadline_passed(deadline)) /* BR_NOWAIT, or a deadline in the past */
        return try_take(l, &s) ? 0 : BR_ETIMEDOUT;
    /* Only a thread spins or naps; a coroutine's parker suspends it at once. */
    bool thread = br__tls_v.parker == NULL;
    if (thread && spin_take(l))
        return 0;

    int64_t ask_at = 0; /* set when we first queue */
    bool woken = false;
    for (;;) {
        if (woken && thread) {
            int rc = nap_take(l, deadline, ask_at);
            if (rc != 1)
                return rc;
        }
        bool ask = woken; /* a coroutine asks at once; a thread once it napped enough */
        BR__PARKED(br__waiter, w);
        br__waiter_init_at(w, site_file, site_func);
        w->flags = wflags;
        w->data2 = ask ? ASKED : 0;
        br__ilock_lock(&l->wq.lock);
        s = atomic_load_explicit(&l->state, memory_order_relaxed);
        uint32_t bits = BR__LOCK_WAITERS | (ask ? BR__LOCK_HANDOFF : 0);
        for (;;) {
            if (s == BR__LOCK_DESTROYED) {
                br__ilock_unlock(&l->wq.lock);
                return BR_EINVAL;
            }
            if (try_take(l, &s)) {
                br__ilock_unlock(&l->wq.lock);
                return 0;
            }
            /* LOCKED is set. Publish the bits with a CAS that expects it set: see the
             * lost-wake argument in the design notes. */
            if ((s & bits) == bits ||
                atomic_compare_exchange_weak_explicit(
                    &l->state, &s, s | bits, memory_order_relaxed, memory_order_relaxed))
                break;
        }
        if (ask)
            push_asker(&l->wq, w);
        else
            br__wq_push(&l->wq, w);
        br__ilock_unlock(&l->wq.lock);
        if (thread && ask_at == 0) /* only threads nap (and so measure fair_ns) */
            ask_at = br_now() + fair_ns();

        int rc = br__waiter_park_or_leave(w, &l->wq, deadline, sleeper_left, l);
        if (rc != 0)
            return rc; /* timed out or cancelled, unlinked; sleeper_left fixed the bits */
        if (w->data == HANDED) { /* the releaser kept LOCKED set for us */
            atomic_store_explicit(&l->owner, br__self(), memory_order_relaxed);
            return 0;
        }
        /* Woken by a release: retry, even if a cancel arrived too (it was posted again
         * and the next park reports it; see the design notes). */
        woken = true;
    }
}

/* Pops the first sleeper and wakes it. `release`: we are releasing the lock; hand it
 * over if that sleeper asked, else free it before the wake (see the design notes). */
static void wake_one(struct br__lock *l, bool release) {
    br__ilock_lock(&l->wq.lock);
    br__waiter *w = br__wq_pop(&l->wq);
    sync_bits(l);
    if (release) {
        if (w != NULL && w->data2 == ASKED)
            w->data = HANDED; /* LOCKED stays set, for w */
        else /* release: publishes the critical section to the next acquirer */
            atomic_fetch_sub_explicit(&l->state, BR__LOCK_LOCKED, memory_order_release);
    }
    br__ilock_unlock(&l->wq.lock);
    if (w) /* NULL: every sleeper timed out in the meantime */
        br__waiter_wake(w);
}

void br__lock_release_slow(struct br__lock *l) {
    wake_one(l, true);
}

void br__lock_wake_slow(struct br__lock *l) {
    wake_one(l, false);
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
