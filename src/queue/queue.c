/* Python's queue: Queue, LifoQueue, PriorityQueue, SimpleQueue (braid/queue.h).
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
 * Shutdown states (q->state, only ever increasing): OPEN -> DRAINING -> IMMEDIATE.
 * The state changes under wlock and plk. Under plk: try_put checks it there, so no
 * put succeeds after br_queue_shutdown returns, and the tail is final from then on.
 * Under wlock: a getter or putter reads the state while registering, so it either
 * sees the shutdown or is linked when br_queue_shutdown wakes every getter and
 * putter; nobody sleeps through it. A getter returns BR_ESHUTDOWN when the state it
 * read *before* finding the queue empty was not OPEN (empty then means empty for
 * good). IMMEDIATE: try_get checks the state under clk and gives up, so once the
 * shutdown has passed through clk once, the stored items belong to it alone; it hands
 * them to dispose outside every lock (dispose may call back into the queue), adds them
 * to done and wakes joiners whose condition now holds. Exactly one shutdown call moves
 * to IMMEDIATE, so exactly one drains: no item is both got and disposed.
 *
 * Spinning. Before a thread registers as a waiter it spins for br__park_spin_ns,
 * re-trying (a FIFO getter polls its next slot, which the producer writes anyway; the
 * others watch the counts); a producer running on another CPU usually delivers within
 * that time, and registration would cost the producer a trip through wlock and a
 * futex wake. Coroutines never spin.
 *
 * Freeing. br_queue_free must never free the queue under a call that another thread
 * may still be inside, when the caller of free can't know that: a call that blocks, or
 * one that still touches the queue after another thread could have seen its effect (a
 * put whose item was got, the task_done that let join return, a shutdown whose
 * BR_ESHUTDOWN a getter saw). w.nbusy counts those calls:
 *  - a put or get past its fast path (spinning, registering, parked, or woken and on
 *    its way out), from before its first spin;
 *  - a put or get that must wake a waiter of the other side after dropping its side
 *    lock, counted inside that lock (whose release is what publishes its effect);
 *  - the task_done that brings done up to tail, counted before its CAS (any other
 *    task_done touches the queue last with its CAS);
 *  - every shutdown, from its start.
 * Each decrements it (release) as its very last touch of the queue. Any other call
 * touches the queue last inside a side lock, so free first takes and drops plk and
 * clk, which waits such a call out, then answers BR_EBUSY while nbusy isn't zero.
 * What free can't see is a call that hasn't done anything yet; ruling those out is
 * the caller's part (queue.h). The fast path pays nothing: the counts are taken only
 * where a wait or a trip through wlock already costs far more.
 *
 * br_queue_free then sets nbusy to 1 for good (a free from dispose is BR_EBUSY) and
 * moves the state to IMMEDIATE under plk, as a shutdown does, before the first
 * dispose: a dispose that calls put or get is refused.
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

static bool is_fifo(const br_queue *q) {
    return q->kind == BR_QUEUE_FIFO || q->kind == BR_QUEUE_SIMPLE;
}

static int state_of(br_queue *q) {
    return atomic_load_explicit(&q->state, memory_order_acquire);
}

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
    if (BR__LIKELY(is_fifo(q))) {
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
    if (BR__LIKELY(is_fifo(q))) {
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

/* Takes the next item with no lock: only for the queue's sole owner (an immediate
 * shutdown's drain, or free). 0 or BR__QAGAIN. */
static int take_owned(br_queue *q, void **item) {
    if (is_fifo(q))
        return fifo_pop(q, item, true);
    uint64_t h = atomic_load_explicit(&q->c.head, memory_order_relaxed);
    if (atomic_load_explicit(&q->p.tail, memory_order_relaxed) == h)
        return BR__QAGAIN;
    int64_t prio;
    br__qstore_pop(q, item, &prio, true);
    atomic_store_explicit(&q->c.head, h + 1, memory_order_release);
    return 0;
}

static uint64_t size_now(br_queue *q) {
    uint64_t t = atomic_load_explicit(&q->p.tail, memory_order_acquire);
    uint64_t h = atomic_load_explicit(&q->c.head, memory_order_acquire);
    return h >= t ? 0 : t - h; /* read apart, so h may have passed the t we read */
}

/* --- waking and parking ---------------------------------------------------------- */

/* A wait list and its count of linked waiters (p.ngetw, c.nputw, w.njoinw). */
typedef struct qlist {
    br__wq *wq;
    _Atomic uint32_t *count;
} qlist;

static void wake_one(br_queue *q, qlist l) {
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
static BR__NOINLINE void wake_and_leave(br_queue *q, qlist l) {
    wake_one(q, l);
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
}

/* Pops every waiter of l onto *chain (linked through ->next) for br__wake_chain.
 * Under wlock. */
static void pop_all(qlist l, br__waiter **chain) {
    br__waiter *w;
    while ((w = br__wq_pop(l.wq)) != NULL) {
        atomic_fetch_sub_explicit(l.count, 1, memory_order_relaxed);
        w->next = *chain;
        *chain = w;
    }
}

/* br__waiter_park_or_leave_in's unlink, under wlock: a waiter whose deadline passed, or
 * whose context was cancelled, while still linked takes itself off its list. */
static void unlink_waiter(br__waiter *w, void *arg, int why) {
    (void)why;
    const qlist *l = arg;
    br__wq_remove(l->wq, w);
    atomic_fetch_sub_explicit(l->count, 1, memory_order_relaxed);
}

/* Parks w, which the caller linked into l under wlock and then released it (rule 2 of
 * core/lib.h). 0: popped by a waker (even if the deadline has passed or a cancel came
 * meanwhile: the cancel is posted again). BR_ETIMEDOUT or BR_ECANCELED: w unlinked
 * itself, having consumed no wake. */
static int park(br_queue *q, br__waiter *w, qlist l, int64_t deadline) {
    return br__waiter_park_or_leave_in(w, &q->w.lock, deadline, unlink_waiter, &l);
}

static qlist getters(br_queue *q) {
    return (qlist){&q->w.getters, &q->p.ngetw};
}
static qlist putters(br_queue *q) {
    return (qlist){&q->w.putters, &q->c.nputw};
}
static qlist joiners(br_queue *q) {
    return (qlist){&q->w.joiners, &q->w.njoinw};
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
    int s = state_of(q);
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
    int64_t until = br__spin_until(deadline);
    for (unsigned i = 1;; i++) {
        relax(8);
        /* A FIFO getter polls the slot itself (inside try_get), which leaves the
         * producer's own cache line alone; the others have no cheaper test than the
         * counts. */
        bool worth = state_of(q) != BR__QOPEN ||
                     (c->put ? size_now(q) < q->maxsize : is_fifo(q) || size_now(q) != 0);
        if (worth) {
            int rc = attempt(q, c, false);
            if (rc != BR__QAGAIN)
                return rc;
        }
        if (br__spin_over(i, until))
            return BR__QAGAIN;
    }
}

/* Registers on the call's own list (getters or putters) and parks, until an attempt
 * gives an answer, the deadline passes or the context is cancelled. The count goes up
 * under the other side's lock: see the lost wake-up argument. A wake always leads to
 * one more attempt, even with a cancel pending (see Cancellation). */
static int wait_turn(br_queue *q, qcall *c, int64_t deadline) {
    qlist mine = c->put ? putters(q) : getters(q);
    br__qlock *theirs = c->put ? q->clk : q->plk;
    br__waiter w;
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
        br__waiter_init(&w);
        br__wq_push(mine.wq, &w);
        br__ilock_unlock(&q->w.lock);
        int prc = park(q, &w, mine, deadline);
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
        wake_and_leave(q, c->put ? getters(q) : putters(q));
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
    int s = state_of(q);
    int rc = try_get(q, item, prio, &wake, true);
    if (BR__LIKELY(rc == 0)) {
        if (BR__UNLIKELY(wake))
            wake_and_leave(q, putters(q));
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
            wake_and_leave(q, getters(q));
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

static void wake_joiners(br_queue *q) {
    br__waiter *chain = NULL;
    br__ilock_lock(&q->w.lock);
    /* Re-checked here: a put since the caller's check means work is unfinished again. */
    if (!br__wq_empty(&q->w.joiners) && all_done(q))
        pop_all(joiners(q), &chain);
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
        wake_joiners(q);
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
    br__waiter w;
    atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
    br__ilock_lock(&q->w.lock);
    atomic_fetch_add_explicit(&q->w.njoinw, 1, memory_order_seq_cst);
    if (all_done(q)) {
        atomic_fetch_sub_explicit(&q->w.njoinw, 1, memory_order_relaxed);
        br__ilock_unlock(&q->w.lock);
        rc = 0;
    } else {
        br__waiter_init(&w);
        br__wq_push(&q->w.joiners, &w);
        br__ilock_unlock(&q->w.lock);
        rc = park(q, &w, joiners(q), deadline);
    }
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
    return rc;
}

/* --- shutdown ---------------------------------------------------------------------- */

/* Hands every stored item to dispose and counts it done. Caller owns the storage. */
static void drain(br_queue *q) {
    uint64_t n = 0;
    void *item;
    while (take_owned(q, &item) == 0) {
        if (q->dispose != NULL)
            q->dispose(item, q->dispose_ctx);
        n++;
    }
    if (n == 0 || q->kind == BR_QUEUE_SIMPLE)
        return;
    /* As Python: only while tasks are unfinished (task_done may have run ahead of
     * the gets). The tail is final: no put succeeds after the shutdown. */
    uint64_t t = atomic_load_explicit(&q->p.tail, memory_order_relaxed);
    uint64_t d = atomic_load_explicit(&q->w.done, memory_order_relaxed);
    while (d < t && !atomic_compare_exchange_weak_explicit(
                        &q->w.done, &d, (t - d < n ? t : d + n), memory_order_seq_cst,
                        memory_order_relaxed))
        ;
    if (atomic_load_explicit(&q->w.njoinw, memory_order_seq_cst) != 0)
        wake_joiners(q);
}

int br_queue_shutdown(br_queue *q, bool immediate) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_shutdown: queue is NULL");
    /* Busy throughout: a getter may see BR_ESHUTDOWN (and its thread free the queue)
     * while this call still wakes waiters and drains (Freeing). */
    atomic_fetch_add_explicit(&q->w.nbusy, 1, memory_order_relaxed);
    int want = immediate ? BR__QIMMEDIATE : BR__QDRAINING;
    br__waiter *chain = NULL;
    br__ilock_lock(&q->w.lock);
    br__qlock_lock(q->plk);
    int old = atomic_load_explicit(&q->state, memory_order_relaxed);
    if (want > old)
        atomic_store_explicit(&q->state, want, memory_order_release);
    br__qlock_unlock(q->plk);
    bool drains = want == BR__QIMMEDIATE && old != BR__QIMMEDIATE;
    if (drains && q->clk != q->plk) {
        /* Wait out a get inside clk; every later one sees IMMEDIATE and backs off. */
        br__qlock_lock(q->clk);
        br__qlock_unlock(q->clk);
    }
    pop_all(getters(q), &chain);
    pop_all(putters(q), &chain);
    br__ilock_unlock(&q->w.lock);
    br__wake_chain(chain);
    if (drains)
        drain(q);
    atomic_fetch_sub_explicit(&q->w.nbusy, 1, memory_order_release); /* last touch */
    return 0;
}

bool br_queue_is_shutdown(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_is_shutdown: queue is NULL");
        return false;
    }
    return state_of(q) != BR__QOPEN;
}

/* --- sizes ------------------------------------------------------------------------- */

size_t br_queue_qsize(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_qsize: queue is NULL");
        return 0;
    }
    uint64_t n = size_now(q);
    if (q->maxsize != 0 && n > q->maxsize)
        n = q->maxsize;
    return (size_t)n;
}

bool br_queue_empty(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_empty: queue is NULL");
        return true;
    }
    return size_now(q) == 0;
}

bool br_queue_full(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_full: queue is NULL");
        return false;
    }
    return q->maxsize != 0 && size_now(q) >= q->maxsize;
}

size_t br_queue_maxsize(const br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_maxsize: queue is NULL");
        return 0;
    }
    return q->maxsize;
}

/* --- life -------------------------------------------------------------------------- */

enum { CHUNK_MIN = 16, CHUNK_MAX = 256, SPARE_UNBOUNDED = 4 };

/* Frees the storage and q itself: the queue holds no items (or is half-made). */
static void release(br_queue *q) {
    if (is_fifo(q))
        fifo_fini(q);
    else
        br__qstore_fini(q);
    br__free_poisoned(q, sizeof *q);
}

static int fifo_init(br_queue *q) {
    size_t cap = CHUNK_MAX;
    if (q->maxsize != 0)
        cap = q->maxsize < CHUNK_MIN ? CHUNK_MIN : q->maxsize > CHUNK_MAX ? CHUNK_MAX : q->maxsize;
    q->chunk_cap = (uint32_t)cap;
    q->spare.chunk_bytes = sizeof(br__qchunk) + cap * sizeof(br__qslot);
    q->spare.max = SPARE_UNBOUNDED;
    if (q->maxsize != 0) {
        q->spare.arena_n = (q->maxsize - 1) / cap + 3; /* see fifo.h */
        if (q->spare.arena_n > SIZE_MAX / q->spare.chunk_bytes)
            return BR_ENOMEM;
        q->spare.arena = br__calloc(q->spare.arena_n, q->spare.chunk_bytes);
        if (q->spare.arena == NULL)
            return BR_ENOMEM;
    }
    br__qchunk *c = qchunk_take(q);
    if (c == NULL)
        return BR_ENOMEM;
    q->p.chunk = q->c.chunk = c;
    return 0;
}

int br_queue_new(br_queue **out, const br_queue_opts *opts) {
    if (BR__UNLIKELY(out == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_new: out is NULL");
    *out = NULL;
    br_queue_opts o = {0};
    if (opts != NULL)
        o = *opts;
    if ((unsigned)o.kind > (unsigned)BR_QUEUE_SIMPLE)
        return BR__MISUSE(BR_EINVAL, "br_queue_new: unknown kind");
    if (o.kind == BR_QUEUE_SIMPLE && o.maxsize != 0)
        return BR__MISUSE(BR_EINVAL, "br_queue_new: a SimpleQueue has no maxsize");

    br_queue *q = br__aligned_alloc(BR__CACHELINE, sizeof *q);
    if (q == NULL)
        return BR_ENOMEM;
    memset(q, 0, sizeof *q); /* every atomic and list starts at zero */
    q->kind = o.kind;
    q->maxsize = o.maxsize;
    q->dispose = o.dispose;
    q->dispose_ctx = o.dispose_ctx;
    q->plk = &q->p.lock;
    q->clk = is_fifo(q) ? &q->c.lock : &q->p.lock;
    int rc = is_fifo(q) ? fifo_init(q) : br__qstore_init(q);
    if (rc != 0) {
        release(q);
        return rc;
    }
    *out = q;
    return 0;
}

int br_queue_free(br_queue *q) {
    if (BR__UNLIKELY(q == NULL))
        return BR__MISUSE(BR_EINVAL, "br_queue_free: queue is NULL");
    /* Wait out a put or get still inside its side lock: its item (or the room it
     * made) may be visible already, and the lock's release is its last touch. Every
     * call that touches the queue after that, or that blocks, is counted in nbusy
     * before its side lock's release or before its effect. */
    br__qlock_lock(q->plk);
    br__qlock_unlock(q->plk);
    if (q->clk != q->plk) {
        br__qlock_lock(q->clk);
        br__qlock_unlock(q->clk);
    }
    /* Acquire: pairs with the release decrement that is each counted call's last
     * touch, so when it reads 0 they are all gone. */
    if (atomic_load_explicit(&q->w.nbusy, memory_order_acquire) != 0)
        return BR_EBUSY;
    /* q is ours now. Busy from here on, so a free from a dispose callback answers
     * BR_EBUSY instead of freeing twice. */
    atomic_store_explicit(&q->w.nbusy, 1, memory_order_relaxed);
    /* Shut down at once before the first dispose, under plk as br_queue_shutdown
     * does: a dispose that calls put or get is refused with BR_ESHUTDOWN (a put that
     * succeeded would be drained and disposed again, forever if dispose always puts
     * its item back), and a shutdown from it finds nothing to do. */
    br__qlock_lock(q->plk);
    atomic_store_explicit(&q->state, BR__QIMMEDIATE, memory_order_release);
    br__qlock_unlock(q->plk);
    void *item;
    while (take_owned(q, &item) == 0)
        if (q->dispose != NULL)
            q->dispose(item, q->dispose_ctx);
    release(q);
    return 0;
}

/* --- test hooks ---------------------------------------------------------------------- */

size_t br__queue_busy(br_queue *q) {
    return atomic_load_explicit(&q->w.nbusy, memory_order_acquire);
}

void br__queue_waiters(br_queue *q, size_t *getters, size_t *putters, size_t *joiners) {
    size_t g = 0, p = 0, j = 0;
    br__ilock_lock(&q->w.lock);
    for (br__waiter *w = q->w.getters.head; w != NULL; w = w->next)
        g++;
    for (br__waiter *w = q->w.putters.head; w != NULL; w = w->next)
        p++;
    for (br__waiter *w = q->w.joiners.head; w != NULL; w = w->next)
        j++;
    br__ilock_unlock(&q->w.lock);
    if (getters)
        *getters = g;
    if (putters)
        *putters = p;
    if (joiners)
        *joiners = j;
}

size_t br__queue_chunk_mallocs(br_queue *q) {
    return atomic_load_explicit(&q->spare.nmalloc, memory_order_relaxed);
}
