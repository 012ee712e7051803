/* Python's queue: Queue, LifoQueue, PriorityQueue, SimpleQueue (braid/queue.h): put,
 * get, task_done and join, and how they wait. Creating, shutting down and freeing a
 * queue are in life.c.
 *
 * Design notes.
 *
 * Storage. The FIFO kinds (Queue, SimpleQueue) keep items in a chunked list with a
 * lock per side (fifo.h): producers serialize on plk, consumers on clk, and the two
 * sides meet only in the slots. LIFO and priority queues keep an array under one lock
 * (store.c), and both plk and clk point at it. plk and clk are side locks (br__qlock,
 * queue/private.h): one locked instruction to take, a plain store to release.
 * Everything below is written against try_put (under plk) and try_get (under clk) and
 * holds for every kind.
 *
 * Counters. p.tail counts items ever put and c.head items ever taken out (got, or
 * drained by an immediate shutdown); qsize is their difference. w.done counts
 * task_done calls plus drained items; join waits for done == tail. Python's
 * unfinished_tasks is tail - done, and task_done fails with BR_EOVERFLOW when it would
 * go negative.
 *
 * Who waits where. Three wait lists under one lock, wlock: getters (queue empty),
 * putters (bounded queue full), joiners (tasks unfinished). Each has a count of
 * linked waiters that the other side reads without wlock: p.ngetw, c.nputw, w.njoinw.
 * A successful put that saw ngetw > 0 wakes one getter; a get that saw nputw > 0 (on a
 * bounded queue) wakes one putter; the task_done that brings done up to tail wakes
 * every joiner. On the common path no count is set and nobody touches wlock.
 *
 * A woken getter or putter is not handed anything: it is told "try again" and retries
 * from the top (a fast-path caller may have taken the item meanwhile, and then it
 * waits again). A woken joiner returns 0: the waker saw done == tail under wlock.
 *
 * The lost wake-up argument (rule 3 of core/lib.h). A getter registers while
 * holding wlock: it increments ngetw *under plk*, then re-tries the get, and only if
 * that fails links itself and releases wlock. A putter reads ngetw under plk, in the
 * same critical section that publishes its item. So either the getter's plk section
 * came first, and the putter sees ngetw > 0 and goes to wlock, where it finds the
 * getter linked (the getter held wlock from before its increment until after it
 * linked); or the putter's came first, and the getter's re-try, which follows its own
 * plk section, sees the item. Putters register the same way with nputw under clk.
 * Counts go down under wlock alone (a waker popping, a waiter leaving): a putter
 * that reads a count not yet lowered only pays a useless trip to wlock. Joiners: the
 * joiner increments njoinw and then reads done; task_done increments done and then
 * reads njoinw; all four are seq_cst, so one of them sees the other.
 *
 * Shutdown and freeing are in life.c's notes. Two of their rules bind the code here: a
 * getter returns BR_ESHUTDOWN when the state it read *before* finding the queue empty
 * was not OPEN (empty then means empty for good), and a call that may still touch the
 * queue after another thread could have seen its effect, or that blocks, counts itself
 * in w.nbusy and drops that count as its very last touch of the queue (life.c,
 * "Freeing", lists them).
 *
 * Ownership of a waiter: linked waiters are counted in their list's count; a waker
 * pops one and decrements the count under wlock, then wakes it after releasing wlock.
 * A waiter whose deadline passes takes wlock: still linked, it unlinks itself and
 * reports BR_ETIMEDOUT; popped, it waits for the wake-up (rule 2) and retries
 * (br__waiter_park_or_leave_in does both).
 *
 * Cancellation (a coroutine's, core/lib.h). A cancelled park is treated as a timeout
 * with its own code: a getter, putter or joiner still linked unlinks itself and lowers
 * its count under wlock, and the call returns BR_ECANCELED having taken or put nothing
 * (nbusy drops as on any return). A waiter that a waker popped first keeps the wake and
 * the cancel is posted again (rule 2): a joiner then returns 0; a getter or putter
 * makes its one more attempt, under wlock as always, and either succeeds (the cancel
 * stays pending for the context's next blocking call) or finds nothing, links itself
 * again and parks, and that park reports the cancel at once. No wake is lost by giving
 * up then: a wake only says "try again", and a failed attempt under wlock and the
 * other side's lock means whatever the wake announced has been taken, while anything
 * put (or made room for) later is announced to the waiters linked then, which no
 * longer include one that left. A call that doesn't need to wait (an item is there,
 * there is room, the tasks are done) succeeds even with a cancel pending, and leaves
 * it pending: only parks report cancels.
 *
 * Spinning. Before a thread registers as a waiter it spins for its adaptive budget
 * (br__spin_budget, at most br__calib_spin_ns()), re-trying (a FIFO getter polls its
 * next slot, which the producer writes anyway; the others watch the counts); a
 * producer running on another CPU usually delivers within that time, and registration
 * would cost the producer a trip through wlock and a futex wake. Coroutines never spin.
 *
 * Locking: wlock before plk, wlock before clk; plk and clk are never held together.
 * dispose runs with no lock held.
 *
 * wlock is a br__ilock, promised to be short, yet it is held while a side lock is
 * taken: in wait_turn (the count goes up under the other side's lock, then attempt
 * takes the caller's own), in all_done (under wlock from join and wake_joiners) and in
 * br_queue_shutdown. This is the documented exception to the ilock's rule
 * (core/lib.h, docs/conventions.md): br__qlock_lock_slow may sched_yield and nap
 * (<= 250 us a nap) while wlock is held, when the side lock's holder lost its CPU. The
 * bound is that holder's one critical section (a few dozen instructions, a heap sift,
 * or a growth or shrink of an unbounded LIFO/priority array), plus at most one nap past
 * its release. Keeping the registration under both locks is what the lost wake-up
 * argument above rests on. The LIFO/priority array is never resized under wlock: a
 * put there is a bounded queue's (all its room exists from creation) and a get there
 * pops with shrink false (store.c), and a FIFO get there that leaves a chunk puts it on
 * the spare stack even when the stack is full instead of freeing it (fifo.h).
 */
#include "queue/private.h"
#include "queue/fifo.h"

#include <sched.h>
#include <string.h>

/* --- the side lock's slow path (see queue/private.h) ---------------------------- */

void br__qlock_lock_slow(br__qlock *l) {
    int64_t nap = 20 * BR_USEC;
    for (unsigned spins = 256;; spins = 32) {
        for (unsigned i = 0; i < spins; i++) {
            uint32_t z = 0;
            if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
                atomic_compare_exchange_weak_explicit(&l->word, &z, 1,
                                                      memory_order_acquire,
                                                      memory_order_relaxed))
                return;
            br__cpu_relax();
        }
        /* The holder lost its CPU. First offer ours: it may be waiting for it on this
         * very CPU. Then nap; the futex wait returns at once if the word is already 0.
         * Naps stay short (<= 250 us): nobody wakes a napper, so a long one would idle
         * this thread well past the holder's release when threads outnumber CPUs. */
        sched_yield();
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0)
            continue;
        (void)br__futex_wait(&l->word, 1, br_deadline_after(nap), false);
        if (nap < 250 * BR_USEC)
            nap *= 2;
    }
}

/* --- one attempt ------------------------------------------------------------------ */

/* 0, BR__QAGAIN (full), BR_ESHUTDOWN or BR_ENOMEM. Sets *wake (and counts the call
 * in nbusy) when the put succeeded and a getter is linked: the caller must then
 * wake_and_leave. */
static inline int try_put(br_queue *q, void *item, int64_t prio, bool *wake) {
    br__qlock_lock(q->plk);
    if (BR__UNLIKELY(atomic_load_explicit(&q->state, memory_order_relaxed) != BR__QOPEN)) {
        br__qlock_unlock(q->plk);
        return BR_ESHUTDOWN;
    }
    uint64_t t = atomic_load_explicit(&q->p.tail, memory_order_relaxed);
    if (q->maxsize != 0 && t - q->p.head_cache >= q->maxsize) {
        /* head only grows, so an old value only makes the queue look fuller */
        q->p.head_cache = atomic_load_explicit(&q->c.head, memory_order_acquire);
        if (t - q->p.head_cache >= q->maxsize) {
            br__qlock_unlock(q->plk);
            return BR__QAGAIN;
        }
    }
    int rc;
    if (BR__LIKELY(br__queue_is_fifo(q))) {
        rc = fifo_push(q, t, item);
    } else {
        rc = br__qstore_push(q, item, prio, t);
        if (rc == 0)
            atomic_store_explicit(&q->p.tail, t + 1, memory_order_relaxed);
    }
    if (rc == 0 && atomic_load_explicit(&q->p.ngetw, memory_order_relaxed) != 0) {
        /* This put wakes a getter after dropping plk: busy from in here (Freeing). */
        atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
        *wake = true;
    }
    br__qlock_unlock(q->plk);
    return rc;
}

/* 0, BR__QAGAIN (empty) or BR_ESHUTDOWN (immediate). Sets *wake (and counts the call
 * in nbusy) when it got an item and a putter is linked: the caller must then
 * wake_and_leave. shrink: false under wlock, so that a LIFO or priority store never
 * reallocates its array there (store.c) and a FIFO never frees a chunk there (fifo.h). */
static inline int try_get(br_queue *q, void **item, int64_t *prio, bool *wake,
                          bool shrink) {
    br__qlock_lock(q->clk);
    if (BR__UNLIKELY(atomic_load_explicit(&q->state, memory_order_relaxed) ==
                     BR__QIMMEDIATE)) {
        br__qlock_unlock(q->clk);
        return BR_ESHUTDOWN;
    }
    int64_t pr = 0;
    if (BR__LIKELY(br__queue_is_fifo(q))) {
        if (fifo_pop(q, item, shrink) != 0) {
            br__qlock_unlock(q->clk);
            return BR__QAGAIN;
        }
    } else {
        uint64_t h = atomic_load_explicit(&q->c.head, memory_order_relaxed);
        if (atomic_load_explicit(&q->p.tail, memory_order_relaxed) == h) {
            br__qlock_unlock(q->clk);
            return BR__QAGAIN;
        }
        br__qstore_pop(q, item, &pr, shrink);
        atomic_store_explicit(&q->c.head, h + 1, memory_order_release);
    }
    if (prio != NULL)
        *prio = pr;
    if (q->maxsize != 0 && atomic_load_explicit(&q->c.nputw, memory_order_relaxed) != 0) {
        /* This get wakes a putter after dropping clk: busy from in here (Freeing). */
        atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
        *wake = true;
    }
    br__qlock_unlock(q->clk);
    return 0;
}

/* --- waking and parking ---------------------------------------------------------- */

static void wake_one(br_queue *q, br__qlist l) {
    br__ilock_lock(&q->w.lock);
    br__waiter *w = br__wq_pop(l.wq);
    if (w != NULL)
        atomic_fetch_sub_explicit(l.count, 1, memory_order_relaxed);
    br__ilock_unlock(&q->w.lock);
    if (w != NULL)
        br__waiter_wake(w);
}

/* For a put or get whose try set *wake: wakes one waiter of l, then drops the count
 * the try took, as its last touch of the queue. */
static BR__NOINLINE void wake_and_leave(br_queue *q, br__qlist l) {
    wake_one(q, l);
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
}

/* br__waiter_park_or_leave_in's unlink, under wlock: a waiter whose deadline passed, or
 * whose context was cancelled, while still linked takes itself off its list. */
static void unlink_waiter(br__waiter *w, void *arg, int why) {
    (void)why;
    const br__qlist *l = arg;
    br__wq_remove(l->wq, w);
    atomic_fetch_sub_explicit(l->count, 1, memory_order_relaxed);
}

/* Parks w, which the caller linked into l under wlock and then released it (rule 2 of
 * core/lib.h). 0: popped by a waker (even if the deadline has passed or a cancel came
 * meanwhile: the cancel is posted again). BR_ETIMEDOUT or BR_ECANCELED: w unlinked
 * itself, having consumed no wake. */
static int park(br_queue *q, br__waiter *w, br__qlist l, int64_t deadline) {
    return br__waiter_park_or_leave_in(w, &q->w.lock, deadline, unlink_waiter, &l);
}

/* --- the slow part of put and get ---------------------------------------------------
 *
 * A put that found the queue full, or a get that found it empty (and may wait): it
 * spins for a while, then registers as a waiter and parks, retrying after each wake. */

typedef struct qcall {
    bool put;
    void *item;        /* put: the item */
    int64_t prio;      /* put: its priority */
    void **out;        /* get: where the item goes */
    int64_t *prio_out; /* get: where its priority goes, or NULL */
    bool wake;         /* set by a successful attempt: the other side has a waiter */
} qcall;

/* One try: 0, BR__QAGAIN, or the call's final error. in_wlock: the caller holds wlock
 * (a put there is a bounded queue's, which never allocates; a get must not shrink). */
static int attempt(br_queue *q, qcall *c, bool in_wlock) {
    if (c->put)
        return try_put(q, c->item, c->prio, &c->wake);
    int s = br__queue_state(q);
    int rc = try_get(q, c->out, c->prio_out, &c->wake, !in_wlock);
    /* Empty with a shutdown under way (read before the try) is empty for good. */
    return rc == BR__QAGAIN && s != BR__QOPEN ? BR_ESHUTDOWN : rc;
}

/* Polls are spaced out: each one reads a line the other side is writing, and a tight
 * loop of them slows that side down (a bounded put measured 1.4x faster with 8). */
static void relax(int n) {
    for (int i = 0; i < n; i++)
        br__cpu_relax();
}

static int spin(br_queue *q, qcall *c, int64_t deadline) {
    br__spin sp; /* the thread's adaptive budget (core/lib.h) */
    br__spin_start(&sp, deadline);
    for (unsigned i = 1;; i++) {
        relax(8);
        /* A FIFO getter polls the slot itself (inside try_get), which leaves the
         * producer's own cache line alone; the others have no cheaper test than the
         * counts. */
        bool worth = br__queue_state(q) != BR__QOPEN ||
                     (c->put ? br__queue_size(q) < q->maxsize : br__queue_is_fifo(q) || br__queue_size(q) != 0);
        if (worth) {
            int rc = attempt(q, c, false);
            if (rc != BR__QAGAIN) {
                br__spin_done(&sp, true);
                return rc;
            }
        }
        if (br__spin_over(i, sp.until)) {
            br__spin_done(&sp, false);
            return BR__QAGAIN;
        }
    }
}

/* Registers on the call's own list (getters or putters) and parks, until an attempt
 * gives an answer, the deadline passes or the context is cancelled. The count goes up
 * under the other side's lock: see the lost wake-up argument. A wake always leads to
 * one more attempt, even with a cancel pending (see Cancellation). */
static int wait_turn(br_queue *q, qcall *c, int64_t deadline) {
    br__qlist mine = c->put ? br__queue_putters(q) : br__queue_getters(q);
    br__qlock *theirs = c->put ? q->clk : q->plk;
    BR__PARKED(br__waiter, w);
    for (;;) {
        /* Read the clock outside wlock. A deadline that passes between this read and
         * the park is caught by the park, which then times out at once. */
        bool passed = br__deadline_passed(deadline);
        br__ilock_lock(&q->w.lock);
        br__qlock_lock(theirs);
        atomic_fetch_add_explicit(mine.count, 1, memory_order_relaxed);
        br__qlock_unlock(theirs);
        int rc = attempt(q, c, true);
        if (rc == BR__QAGAIN && passed)
            rc = BR_ETIMEDOUT;
        if (rc != BR__QAGAIN) {
            atomic_fetch_sub_explicit(mine.count, 1, memory_order_relaxed);
            br__ilock_unlock(&q->w.lock);
            return rc;
        }
        br__waiter_init(w);
        br__wq_push(mine.wq, w);
        br__ilock_unlock(&q->w.lock);
        int prc = park(q, w, mine, deadline);
        if (prc != 0)
            return prc; /* BR_ETIMEDOUT or BR_ECANCELED, nothing consumed */
    }
}

/* The bracket around the slow part: counted in nblocked from before the first spin
 * to after the last touch (see Freeing). Out of line, so the fast paths stay small. */
static BR__NOINLINE int blocking(br_queue *q, qcall *c, int64_t deadline) {
    atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
    int rc = BR__QAGAIN;
    if (deadline != BR_NOWAIT && br__may_spin())
        rc = spin(q, c, deadline);
    if (rc == BR__QAGAIN)
        rc = wait_turn(q, c, deadline);
    if (rc == 0 && c->wake)
        wake_and_leave(q, c->put ? br__queue_getters(q) : br__queue_putters(q));
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
    return rc;
}

/* --- get ------------------------------------------------------------------------- */

static int get_impl(br_queue *q, void **item, int64_t *prio, int64_t deadline) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_get: queue is NULL");
    if (BR__UNLIKELY(item == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_get: item is NULL");
    bool wake = false;
    int s = br__queue_state(q);
    int rc = try_get(q, item, prio, &wake, true);
    if (BR__LIKELY(rc == 0)) {
        if (BR__UNLIKELY(wake))
            wake_and_leave(q, br__queue_putters(q));
        return 0;
    }
    if (rc != BR__QAGAIN || s != BR__QOPEN)
        return BR_ESHUTDOWN;
    if (br__deadline_passed(deadline))
        return BR_ETIMEDOUT;
    qcall c = {.put = false, .out = item, .prio_out = prio};
    return blocking(q, &c, deadline);
}

int br_queue_get(br_queue *q, void **item, int64_t deadline) {
    return get_impl(q, item, NULL, deadline);
}

int br_queue_get_prio(br_queue *q, void **item, int64_t *prio, int64_t deadline) {
    return get_impl(q, item, prio, deadline);
}

/* --- put ------------------------------------------------------------------------- */

static int put_impl(br_queue *q, void *item, int64_t prio, int64_t deadline) {
    bool wake = false;
    int rc = try_put(q, item, prio, &wake);
    if (BR__LIKELY(rc == 0)) {
        if (BR__UNLIKELY(wake))
            wake_and_leave(q, br__queue_getters(q));
        return 0;
    }
    if (rc != BR__QAGAIN)
        return rc;
    if (br__deadline_passed(deadline))
        return BR_ETIMEDOUT;
    qcall c = {.put = true, .item = item, .prio = prio};
    return blocking(q, &c, deadline);
}

int br_queue_put(br_queue *q, void *item, int64_t deadline) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_put: queue is NULL");
    return put_impl(q, item, 0, deadline);
}

int br_queue_put_prio(br_queue *q, void *item, int64_t priority, int64_t deadline) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_put_prio: queue is NULL");
    if (BR__UNLIKELY(q->kind != BR_QUEUE_PRIORITY))
        return BR__MISUSE(BR_EINVAL, "br_queue_put_prio: not a priority queue");
    return put_impl(q, item, priority, deadline);
}

/* --- task_done and join ------------------------------------------------------------ */

/* done == tail, exactly at some instant during the call: done is read first and tail
 * under plk (so every put that returned before is counted); both only grow and
 * done <= tail always, so done_then >= tail_later would force them equal at the later
 * read. Caller may hold wlock (wlock before plk). */
static bool all_done(br_queue *q) {
    uint64_t d = atomic_load_explicit(&q->w.done, memory_order_seq_cst);
    br__qlock_lock(q->plk);
    uint64_t t = atomic_load_explicit(&q->p.tail, memory_order_relaxed);
    br__qlock_unlock(q->plk);
    return d == t;
}

void br__queue_wake_joiners(br_queue *q) {
    br__waiter *chain = NULL;
    br__ilock_lock(&q->w.lock);
    /* Re-checked here: a put since the caller's check means work is unfinished again. */
    if (!br__wq_empty(&q->w.joiners) && all_done(q))
        br__queue_pop_all(br__queue_joiners(q), &chain);
    br__ilock_unlock(&q->w.lock);
    br__wake_chain(chain);
}

int br_queue_task_done(br_queue *q) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_task_done: queue is NULL");
    if (q->kind == BR_QUEUE_SIMPLE)
        return BR_ENOTSUP;
    /* d is read (acquire) before t, so d >= t means done >= tail held when t was
     * read: nothing unfinished, Python's ValueError. The caller took its item with a
     * get that acquired the put's tail store, so a legitimate call always sees it. */
    uint64_t d = atomic_load_explicit(&q->w.done, memory_order_acquire);
    bool last;
    for (;;) {
        uint64_t t = atomic_load_explicit(&q->p.tail, memory_order_relaxed);
        if (d >= t)
            return BR_EOVERFLOW;
        /* The call that brings done up to tail lets a join return the moment its CAS
         * lands, and still looks for joiners after it: busy from before the CAS
         * (Freeing). Any other call touches the queue last with its CAS. */
        last = d + 1 == t;
        if (last)
            atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&q->w.done, &d, d + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_acquire))
            break;
        if (last)
            atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_relaxed);
    }
    if (!last) /* done == d + 1 < t <= tail: no join can be satisfied by this call */
        return 0;
    /* seq_cst CAS above, seq_cst load here: pairs with br_queue_join's increment of
     * njoinw and then load of done. */
    if (d + 1 == atomic_load_explicit(&q->p.tail, memory_order_relaxed) &&
        atomic_load_explicit(&q->w.njoinw, memory_order_seq_cst) != 0)
        br__queue_wake_joiners(q);
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
    return 0;
}

int br_queue_join(br_queue *q, int64_t deadline) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_join: queue is NULL");
    if (q->kind == BR_QUEUE_SIMPLE)
        return BR_ENOTSUP;
    if (all_done(q))
        return 0;
    if (br__deadline_passed(deadline))
        return BR_ETIMEDOUT;
    int rc;
    BR__PARKED(br__waiter, w);
    atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
    br__ilock_lock(&q->w.lock);
    atomic_fetch_add_explicit(&q->w.njoinw, 1, memory_order_seq_cst);
    if (all_done(q)) {
        atomic_fetch_sub_explicit(&q->w.njoinw, 1, memory_order_relaxed);
        br__ilock_unlock(&q->w.lock);
        rc = 0;
    } else {
        br__waiter_init(w);
        br__wq_push(&q->w.joiners, w);
        br__ilock_unlock(&q->w.lock);
        rc = park(q, w, br__queue_joiners(q), deadline);
    }
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
    return rc;
}

