/* A queue's life: creating it, shutting it down (Python 3.13's shutdown), its sizes,
 * and freeing it. Putting, getting and waiting are in queue.c, whose design notes
 * describe the storage, the counters and the wait lists this file uses.
 *
 * Design notes.
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
 */
#include "queue/private.h"
#include "queue/fifo.h"

#include <string.h>

/* Takes the next item with no lock: only for the queue's sole owner (an immediate
 * shutdown's drain, or free). 0 or BR__QAGAIN. */
static int take_owned(br_queue *q, void **item) {
    if (br__queue_is_fifo(q))
        return fifo_pop(q, item, true);
    uint64_t h = atomic_load_explicit(&q->c.head, memory_order_relaxed);
    if (atomic_load_explicit(&q->p.tail, memory_order_relaxed) == h)
        return BR__QAGAIN;
    int64_t prio;
    br__qstore_pop(q, item, &prio, true);
    atomic_store_explicit(&q->c.head, h + 1, memory_order_release);
    return 0;
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
        br__queue_wake_joiners(q);
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
    br__queue_pop_all(br__queue_getters(q), &chain);
    br__queue_pop_all(br__queue_putters(q), &chain);
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
    return br__queue_state(q) != BR__QOPEN;
}

/* --- sizes ------------------------------------------------------------------------- */

size_t br_queue_qsize(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_qsize: queue is NULL");
        return 0;
    }
    uint64_t n = br__queue_size(q);
    if (q->maxsize != 0 && n > q->maxsize)
        n = q->maxsize;
    return (size_t)n;
}

bool br_queue_empty(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_empty: queue is NULL");
        return true;
    }
    return br__queue_size(q) == 0;
}

bool br_queue_full(br_queue *q) {
    if (BR__UNLIKELY(q == NULL)) {
        (void)BR__MISUSE(BR_EINVAL, "br_queue_full: queue is NULL");
        return false;
    }
    return q->maxsize != 0 && br__queue_size(q) >= q->maxsize;
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
    if (br__queue_is_fifo(q))
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
    q->clk = br__queue_is_fifo(q) ? &q->c.lock : &q->p.lock;
    int rc = br__queue_is_fifo(q) ? fifo_init(q) : br__qstore_init(q);
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
