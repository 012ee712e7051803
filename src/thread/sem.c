/* threading.Semaphore and BoundedSemaphore, FIFO, with direct hand-off to waiters.
 *
 * Design notes.
 *
 * State. One word holds value << 1 | W, W meaning "the wait-queue is not empty"
 * (exactly, whenever wq.lock is free: W is set before a push and cleared when the queue
 * empties, both under wq.lock). value fits 31 bits (the documented 2^31-1 limit).
 *
 * Invariant: value > 0 implies no waiters. A release that finds W set hands its units
 * directly to the first waiters (w->data = 1, under wq.lock) and adds only the rest to
 * value, and only once the queue is empty; a waiter queues only when it sees value == 0
 * under wq.lock. So the fast acquire (a CAS decrementing a positive value) never
 * overtakes a waiter, and service is FIFO, unlike Python's (which lets a newcomer take a
 * unit a woken waiter was about to get).
 *
 * Lost wake-ups (core/lib.h rule 3). A waiter sets W by a CAS on the word that
 * expects value == 0, under wq.lock, and links itself before dropping wq.lock. A
 * releaser's CAS on the same word either comes first (the waiter's CAS fails, and it
 * re-reads a positive value and takes a unit) or sees W and goes to the slow path,
 * which takes wq.lock and so finds the waiter linked.
 *
 * A waiter whose deadline passes just as it was handed a unit keeps the unit
 * (br__waiter_park_or_leave returns 0), so no unit is ever lost.
 *
 * Cancellation (a coroutine's, core/lib.h) follows from the hand-off. A waiter is
 * either still queued, and then it holds no unit: a cancel unlinks it (waiter_left
 * clears W if the queue emptied) and it returns BR_ECANCELED, leaving value as it was
 * and the units of later releases to the waiters behind it. Or a release has popped it
 * and handed it a unit: the unit is its own, so it returns 0 and the cancel stays
 * pending for the context's next park (rule 2). Never both, never neither. An acquire
 * that finds value > 0 doesn't park and so doesn't look at a pending cancel.
 */
#include "thread/private.h"

#include <string.h>

BR__CHECK_STORAGE(br_sem, struct br__sem);

static int init(br_sem *pub, unsigned value, bool bounded) {
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_sem_init: NULL semaphore");
    if (value > BR__SEM_MAX)
        return BR__MISUSE(BR_EINVAL, "br_sem_init: value above 2^31-1");
    memset(pub, 0, sizeof *pub);
    struct br__sem *s = BR__SEM_IMPL(pub);
    s->bound = value;
    atomic_store_explicit(&s->flags, bounded ? BR__SEM_BOUNDED : 0, memory_order_relaxed);
    atomic_store_explicit(&s->state, value * BR__SEM_ONE, memory_order_relaxed);
    return 0;
}

int br_sem_init(br_sem *s, unsigned value) {
    return init(s, value, false);
}
int br_sem_init_bounded(br_sem *s, unsigned value) {
    return init(s, value, true);
}

int br_sem_destroy(br_sem *pub) {
    struct br__sem *s = BR__SEM_IMPL(pub);
    if (!pub)
        return BR__MISUSE(BR_EINVAL, "br_sem_destroy: NULL semaphore");
    br__ilock_lock(&s->wq.lock);
    int rc = 0;
    if (atomic_load_explicit(&s->flags, memory_order_relaxed) == BR__SEM_DESTROYED)
        rc = BR_EINVAL;
    else if (!br__wq_empty(&s->wq))
        rc = BR_EBUSY;
    else {
        atomic_store_explicit(&s->flags, BR__SEM_DESTROYED, memory_order_relaxed);
        atomic_store_explicit(&s->state, 0, memory_order_relaxed);
    }
    br__ilock_unlock(&s->wq.lock);
    return rc == BR_EINVAL ? BR__MISUSE(rc, "br_sem_destroy: destroyed twice") : rc;
}

/* The `left` hook: a waiter timed out or was cancelled and left; under wq.lock. */
static void waiter_left(br__wq *q, void *arg, int why) {
    (void)why;
    struct br__sem *s = arg;
    if (br__wq_empty(q))
        atomic_fetch_and_explicit(&s->state, ~BR__SEM_W, memory_order_relaxed);
}

BR__NOINLINE static int acquire_slow(struct br__sem *s, int64_t deadline) {
    if (atomic_load_explicit(&s->flags, memory_order_relaxed) == BR__SEM_DESTROYED)
        return BR__MISUSE(BR_EINVAL, "br_sem_acquire: destroyed semaphore");
    bool passed = br__deadline_passed(deadline); /* read the clock outside wq.lock */
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    br__ilock_lock(&s->wq.lock);
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    for (;;) {
        if (st >= BR__SEM_ONE) {
            /* acquire: pairs with the releasing CAS, as in the fast path. */
            if (atomic_compare_exchange_weak_explicit(&s->state, &st, st - BR__SEM_ONE,
                                                      memory_order_acquire,
                                                      memory_order_relaxed)) {
                br__ilock_unlock(&s->wq.lock);
                return 0;
            }
            continue;
        }
        if (passed) { /* BR_NOWAIT, or a deadline already in the past */
            br__ilock_unlock(&s->wq.lock);
            return BR_ETIMEDOUT;
        }
        /* value == 0: publish W with a CAS expecting that (design notes). */
        if ((st & BR__SEM_W) ||
            atomic_compare_exchange_weak_explicit(
                &s->state, &st, st | BR__SEM_W, memory_order_relaxed, memory_order_relaxed))
            break;
    }
    br__wq_push(&s->wq, w);
    br__ilock_unlock(&s->wq.lock);
    /* 0: a releaser handed us a unit (w->data == 1); its wake orders its writes before
     * our return, like the acquire CAS would. BR_ETIMEDOUT, BR_ECANCELED: unlinked,
     * no unit. */
    return br__waiter_park_or_leave(w, &s->wq, deadline, waiter_left, s);
}

int br_sem_acquire(br_sem *pub, int64_t deadline) {
    struct br__sem *s = BR__SEM_IMPL(pub);
    if (BR__UNLIKELY(!pub))
        return BR__MISUSE(BR_EINVAL, "br_sem_acquire: NULL semaphore");
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    while (st >= BR__SEM_ONE) /* value > 0, so no waiters: take a unit */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st - BR__SEM_ONE,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    return acquire_slow(s, deadline);
}

/* 0 if value + n stays within the limits. */
static int check_room(const struct br__sem *s, uint32_t flags, uint32_t value, unsigned n) {
    if (n > BR__SEM_MAX - value)
        return BR_EOVERFLOW;
    if ((flags & BR__SEM_BOUNDED) && value + n > s->bound)
        return BR_EOVERFLOW;
    return 0;
}

BR__NOINLINE static int release_slow(struct br__sem *s, uint32_t flags, unsigned n) {
    br__waiter *chain = NULL, **tail = &chain;
    br__ilock_lock(&s->wq.lock);
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    int rc = check_room(s, flags, st >> 1, n);
    if (rc != 0) {
        br__ilock_unlock(&s->wq.lock);
        return rc;
    }
    unsigned left = n;
    while (left > 0 && !br__wq_empty(&s->wq)) {
        br__waiter *w = br__wq_pop(&s->wq);
        w->data = 1; /* one unit, handed over */
        *tail = w;
        tail = &w->next;
        left--;
    }
    if (br__wq_empty(&s->wq)) {
        /* Clear W and add what is left. Fast acquirers may be decrementing value
         * concurrently (it can be positive if W was stale when we looked), so CAS. */
        while (!atomic_compare_exchange_weak_explicit(
            &s->state, &st, ((st >> 1) + left) * BR__SEM_ONE, memory_order_release,
            memory_order_relaxed))
            ;
    }
    br__ilock_unlock(&s->wq.lock);
    br__wake_chain(chain);
    return 0;
}

int br_sem_release(br_sem *pub, unsigned n) {
    struct br__sem *s = BR__SEM_IMPL(pub);
    if (BR__UNLIKELY(!pub))
        return BR__MISUSE(BR_EINVAL, "br_sem_release: NULL semaphore");
    if (BR__UNLIKELY(n == 0))
        return BR__MISUSE(BR_EINVAL, "br_sem_release: n == 0");
    uint32_t flags = atomic_load_explicit(&s->flags, memory_order_relaxed);
    if (BR__UNLIKELY(flags == BR__SEM_DESTROYED))
        return BR__MISUSE(BR_EINVAL, "br_sem_release: destroyed semaphore");
    uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
    while (!(st & BR__SEM_W)) {
        int rc = check_room(s, flags, st >> 1, n);
        if (rc != 0)
            return rc;
        /* release: pairs with the acquiring CAS of whoever takes these units. */
        if (atomic_compare_exchange_weak_explicit(&s->state, &st, st + n * BR__SEM_ONE,
                                                  memory_order_release,
                                                  memory_order_relaxed))
            return 0;
    }
    return release_slow(s, flags, n);
}

unsigned br_sem_value(const br_sem *pub) {
    if (!pub)
        return 0;
    const struct br__sem *s = BR__SEM_IMPL(pub);
    if (atomic_load_explicit(&s->flags, memory_order_relaxed) == BR__SEM_DESTROYED)
        return 0;
    return atomic_load_explicit(&s->state, memory_order_relaxed) >> 1;
}
