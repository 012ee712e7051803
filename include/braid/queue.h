/* braid/queue.h: Python's `queue`, for C.
 *
 *   queue.Queue(maxsize)        br_queue_new(&q, &(br_queue_opts){.maxsize = n})
 *   queue.LifoQueue             .kind = BR_QUEUE_LIFO
 *   queue.PriorityQueue         .kind = BR_QUEUE_PRIORITY, br_queue_put_prio
 *   queue.SimpleQueue           .kind = BR_QUEUE_SIMPLE
 *   q.put(x, timeout=t)         br_queue_put(q, x, br_deadline_after_s(t))
 *   q.put_nowait(x)             br_queue_put(q, x, BR_NOWAIT)     -> BR_ETIMEDOUT if full
 *   q.get()                     br_queue_get(q, &x, BR_FOREVER)
 *   q.get_nowait()              br_queue_get(q, &x, BR_NOWAIT)    -> BR_ETIMEDOUT if empty
 *   q.task_done(), q.join()     br_queue_task_done(q), br_queue_join(q, deadline)
 *   q.shutdown(immediate)       br_queue_shutdown(q, immediate)   (Python 3.13)
 *
 * Items are pointers (void *); the queue never looks at what they point to. Pass small
 * integers with (void *)(uintptr_t)n. Blocking calls block a thread, or (with the aio
 * layer) suspend only the calling coroutine.
 *
 * Cancellation: put, get and join return BR_ECANCELED when the calling coroutine is
 * cancelled while they wait (never for a thread). Nothing happened then: no item was
 * put or taken, and the queue is as if the call had never been made. A call that
 * doesn't have to wait succeeds even with a cancel pending (a get from a non-empty
 * queue returns its item), and the cancel stays pending for the next call that waits;
 * so does one whose wake-up won the race against the cancel.
 *
 * Shutdown, as in Python 3.13:
 *  - br_queue_shutdown(q, false): put fails with BR_ESHUTDOWN from now on, and putters
 *    blocked on a full queue wake with BR_ESHUTDOWN (their item stays theirs). get goes
 *    on returning the items already queued; once the queue is empty, get returns
 *    BR_ESHUTDOWN, and blocked getters wake with it.
 *  - br_queue_shutdown(q, true) (immediate): as above, and the queued items are removed
 *    at once and handed to opts.dispose (in queue order) if set; each drained item
 *    counts as task_done, so join() returns once the items taken before the shutdown
 *    are done. get returns BR_ESHUTDOWN at once.
 * Every item put successfully is either returned by exactly one get or handed to
 * dispose exactly once: none is lost, none is delivered twice.
 */
#ifndef BRAID_QUEUE_H
#define BRAID_QUEUE_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_queue br_queue;

typedef enum br_queue_kind {
    BR_QUEUE_FIFO = 0,  /* queue.Queue */
    BR_QUEUE_LIFO,      /* queue.LifoQueue */
    BR_QUEUE_PRIORITY,  /* queue.PriorityQueue: lowest priority first; FIFO among equals */
    BR_QUEUE_SIMPLE     /* queue.SimpleQueue: unbounded FIFO, no task_done/join */
} br_queue_kind;

typedef struct br_queue_opts {
    br_queue_kind kind;
    /* Python's maxsize: 0 is unbounded; put blocks while the queue holds maxsize items.
     * Must be 0 for BR_QUEUE_SIMPLE.
     *
     * Unlike Python's, a bounded queue reserves room for all maxsize items when it is
     * made, so that put never allocates (and never fails for memory). The reservation,
     * on 64-bit systems: FIFO, about 16 bytes per item (chunks of up to 256 slots of
     * 16 bytes, plus 3 spare chunks: (maxsize - 1) / 256 + 3 chunks of 4112 bytes for
     * maxsize >= 256), zeroed; LIFO and PRIORITY, 24 bytes per item, one array. That is
     * address space, not memory: a large reservation comes from mmap, whose pages cost
     * nothing until first written, and the queue writes only the chunks (or the part of
     * the array) that its items have occupied at once, so the memory touched follows
     * the most items ever queued together, not maxsize. Small reservations (below the
     * C library's mmap threshold, 128 KiB by default with glibc) come from the heap and
     * may be touched at once.
     * A reservation that can't be made is BR_ENOMEM from br_queue_new (nothing is
     * created): a maxsize whose size doesn't fit in size_t, one beyond the address
     * space, or one the kernel's overcommit policy refuses (by default, far more than
     * RAM plus swap). Under AddressSanitizer and ThreadSanitizer an allocation above
     * their limit (1 TiB) is reported as an error unless allocator_may_return_null=1. */
    size_t maxsize;
    /* Called with each item an immediate shutdown drains, and with each item still
     * queued when the queue is freed. NULL: those items are simply dropped (fine for
     * items that own nothing, such as integers). */
    void (*dispose)(void *item, void *ctx);
    void *dispose_ctx;
    /* More fields may be added at any time; zero always keeps the default. */
} br_queue_opts;

/* Creates a queue (NULL opts: an unbounded FIFO). Returns 0, BR_EINVAL (bad kind, or
 * maxsize on a SimpleQueue) or BR_ENOMEM (out of memory, or a bounded queue's room for
 * maxsize items couldn't be reserved: see br_queue_opts.maxsize). */
BR_API int br_queue_new(br_queue **out, const br_queue_opts *opts);
/* Frees the queue. It first shuts the queue down at once, then hands the items still in
 * it to opts.dispose; a dispose that calls back into the queue finds it shut down (put
 * and get answer BR_ESHUTDOWN) and a br_queue_free from there answers BR_EBUSY.
 *
 * Call it only once no other thread or coroutine can start a call on q. A call already
 * started elsewhere must have returned, or have had an effect the caller has seen (a
 * put whose item was got, a task_done after which join returned, a shutdown after
 * which get answered BR_ESHUTDOWN). Such a call may still be finishing (waking a
 * waiter, draining): free waits a moment for it or returns BR_EBUSY. BR_EBUSY also
 * covers every call blocked in put, get or join (shut the queue down to release them).
 * On BR_EBUSY nothing happened; try again later. A call free can't know about (one
 * another thread is just entering) is a use after free, as with any free, and so is a
 * second br_queue_free of the same queue: neither is detected. Returns 0, BR_EBUSY or
 * BR_EINVAL (q NULL). Debug builds poison a freed queue, so that a stale handle faults
 * instead of working on freed memory; AddressSanitizer reports the use. */
BR_API int br_queue_free(br_queue *q);

/* Appends item, waiting for room until the deadline on a bounded queue. The queue owns
 * the item on success; on error the caller keeps it. Returns 0, BR_ETIMEDOUT (full),
 * BR_ESHUTDOWN, BR_ENOMEM (an unbounded queue couldn't grow; nothing changed),
 * BR_ECANCELED (the calling coroutine was cancelled while waiting for room, never for
 * a thread; nothing happened) or BR_EINVAL. On a priority queue this is
 * br_queue_put_prio with priority 0. */
BR_API int br_queue_put(br_queue *q, void *item, int64_t deadline);
/* Priority queues only (BR_EINVAL otherwise): lower values come out first; equal
 * priorities come out in put order. */
BR_API int br_queue_put_prio(br_queue *q, void *item, int64_t priority, int64_t deadline);

/* Removes the next item into *item, waiting until the deadline while empty. Returns
 * 0, BR_ETIMEDOUT (empty), BR_ESHUTDOWN (shut down and empty, or shut down
 * immediately), BR_ECANCELED (the calling coroutine was cancelled while waiting, never
 * for a thread; nothing happened: no item taken) or BR_EINVAL. */
BR_API int br_queue_get(br_queue *q, void **item, int64_t deadline);
/* The same, also giving the item's priority (0 for the other kinds); prio may be NULL. */
BR_API int br_queue_get_prio(br_queue *q, void **item, int64_t *prio, int64_t deadline);

/* Approximate, as in Python: another thread may change them right after. */
BR_API size_t br_queue_qsize(br_queue *q);
BR_API bool br_queue_empty(br_queue *q);
BR_API bool br_queue_full(br_queue *q);
BR_API size_t br_queue_maxsize(const br_queue *q);

/* Marks one item taken by get as processed. Returns 0, BR_EOVERFLOW (called more times
 * than items were put: Python's ValueError) or BR_ENOTSUP (SimpleQueue). */
BR_API int br_queue_task_done(br_queue *q);
/* Waits until every item put has been marked done (or drained by an immediate
 * shutdown). 0, BR_ETIMEDOUT, BR_ENOTSUP (SimpleQueue), BR_ECANCELED (the calling
 * coroutine was cancelled, never for a thread; nothing happened). */
BR_API int br_queue_join(br_queue *q, int64_t deadline);

/* Shuts the queue down (see the top of this file). Calling it again is allowed, and
 * can upgrade a draining shutdown to an immediate one. Returns 0 or BR_EINVAL. */
BR_API int br_queue_shutdown(br_queue *q, bool immediate);
BR_API bool br_queue_is_shutdown(br_queue *q);

#ifdef __cplusplus
}
#endif
#endif
