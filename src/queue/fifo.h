/* queue/fifo.h: the FIFO's storage (Queue and SimpleQueue). Included by queue.c only,
 * so that the hot path inlines.
 *
 * A singly linked list of chunks of `chunk_cap` slots. Position t (the t-th item ever
 * put, from 0) lives in slot t % cap of the (t / cap)-th chunk. The producer side
 * (under plk) writes the item, then publishes it by storing slot.seq = t + 1 (release);
 * the consumer side (under clk) takes position h once slot.seq == h + 1 (acquire).
 * Producers and consumers share no lock and no counter: in the one-producer,
 * one-consumer case the only cache lines that travel are the slots themselves.
 *
 *   c.chunk/c.idx                      p.chunk/p.idx
 *        v                                  v
 *   [ . . . x x x ] -> [ x x x x x x ] -> [ x x . . . . ] -> NULL
 *      taken  queued                          free
 *
 * Chunk life: when the producer fills the LAST slot of a chunk it first links the
 * next chunk (taking it from the spare stack, or malloc), so a consumer that has read
 * the last slot always finds `next` set (it was stored before that slot's seq was
 * released) and moves on at once, handing the old chunk back to the spare stack. The
 * producer touches a chunk for the last time before that release, so the chunk is
 * the consumer's alone by then. A recycled chunk keeps stale seq values; they are all
 * below any position it will hold again, so they never look published.
 *
 * Bounded queues allocate their chunks up front, as one zeroed arena (an all-zero
 * chunk is a fresh one): the producer only counts on spares it is sure to see, those
 * returned before the head it last read, so it needs at most (maxsize - 1) / cap + 3
 * chunks at once, and put never mallocs. calloc gets a large arena straight from the
 * kernel, whose pages cost nothing until a chunk is first used.
 */
#ifndef BRAID_QUEUE_FIFO_H
#define BRAID_QUEUE_FIFO_H

#include "queue/private.h"

static inline br__qchunk *qchunk_new(br_queue *q) {
    br__qchunk *c = br__malloc(q->spare.chunk_bytes);
    if (c == NULL)
        return NULL;
    atomic_fetch_add_explicit(&q->spare.nmalloc, 1, memory_order_relaxed);
    atomic_init(&c->next, NULL);
    c->free_next = NULL;
    for (uint32_t i = 0; i < q->chunk_cap; i++) {
        atomic_init(&c->slots[i].seq, 0); /* positions start at 0: seq 0 is "never" */
        c->slots[i].item = NULL;
    }
    return c;
}

static inline bool in_arena(const br_queue *q, const br__qchunk *c) {
    const char *p = (const char *)c, *a = q->spare.arena;
    return a != NULL && p >= a && p < a + q->spare.arena_n * q->spare.chunk_bytes;
}

/* Returns a chunk the caller is done with to the spare stack (or frees it, when the
 * stack holds spare.max and may_free: false under the queue's wlock, where nothing
 * calls the allocator; the stack then holds one more, which a later take reuses). Any
 * number of threads may push at once. The release CAS publishes the caller's last
 * reads of the chunk before the next owner writes it. */
static inline void qchunk_give(br_queue *q, br__qchunk *c, bool may_free) {
    if (!in_arena(q, c)) {
        if (may_free &&
            atomic_load_explicit(&q->spare.n, memory_order_relaxed) >= q->spare.max) {
            br__free(c);
            return;
        }
        atomic_fetch_add_explicit(&q->spare.n, 1, memory_order_relaxed);
    }
    br__qchunk *top = atomic_load_explicit(&q->spare.top, memory_order_relaxed);
    do
        c->free_next = top;
    while (!atomic_compare_exchange_weak_explicit(&q->spare.top, &top, c,
                                                  memory_order_release,
                                                  memory_order_relaxed));
}

/* Takes a spare chunk, else the next unused arena chunk, else mallocs one (NULL if
 * that fails). One taker at a time (under plk, or the queue's sole owner): a chunk on
 * the stack can't be popped and pushed back between our load and our CAS, so there
 * is no ABA. */
static inline br__qchunk *qchunk_take(br_queue *q) {
    br__qchunk *c = atomic_load_explicit(&q->spare.top, memory_order_acquire);
    while (c != NULL && !atomic_compare_exchange_weak_explicit(&q->spare.top, &c,
                                                               c->free_next,
                                                               memory_order_acquire,
                                                               memory_order_acquire))
        ;
    if (c != NULL) {
        if (!in_arena(q, c))
            atomic_fetch_sub_explicit(&q->spare.n, 1, memory_order_relaxed);
        atomic_store_explicit(&c->next, NULL, memory_order_relaxed);
        return c;
    }
    if (q->spare.arena_next < q->spare.arena_n) {
        /* Zeroed: a fresh chunk as it is. Aligned: calloc's block is, and chunk_bytes
         * is a multiple of the slot size (16). */
        char *p = q->spare.arena + q->spare.arena_next++ * q->spare.chunk_bytes;
        return (br__qchunk *)(void *)p;
    }
    return qchunk_new(q);
}

/* Appends item at position t (== p.tail). Caller holds plk and checked room and
 * state. 0 or BR_ENOMEM (the next chunk couldn't be allocated; nothing changed). */
static inline int fifo_push(br_queue *q, uint64_t t, void *item) {
    br__qchunk *c = q->p.chunk, *n = NULL;
    uint32_t i = q->p.idx;
    if (BR__UNLIKELY(i == q->chunk_cap - 1)) {
        n = qchunk_take(q);
        if (n == NULL)
            return BR_ENOMEM;
        /* Ordered before the consumer's read by the seq release below. */
        atomic_store_explicit(&c->next, n, memory_order_relaxed);
    }
    c->slots[i].item = item;
    /* tail before seq: whoever takes this item (acquire on seq) sees the put counted,
     * so its task_done never looks like one too many. */
    atomic_store_explicit(&q->p.tail, t + 1, memory_order_relaxed);
    atomic_store_explicit(&c->slots[i].seq, t + 1, memory_order_release);
    if (n != NULL) {
        q->p.chunk = n;
        q->p.idx = 0;
    } else {
        q->p.idx = i + 1;
    }
    return 0;
}

/* Takes the item at c.head if it is published: 0 or BR__QAGAIN (empty). Caller holds
 * clk, or owns the queue outright (drain, free). may_free: as qchunk_give's. */
static inline int fifo_pop(br_queue *q, void **item, bool may_free) {
    br__qchunk *c = q->c.chunk;
    uint32_t i = q->c.idx;
    uint64_t h = atomic_load_explicit(&q->c.head, memory_order_relaxed);
    if (atomic_load_explicit(&c->slots[i].seq, memory_order_acquire) != h + 1)
        return BR__QAGAIN;
    *item = c->slots[i].item;
    if (BR__UNLIKELY(i == q->chunk_cap - 1)) {
        /* Never NULL: stored before this slot's seq (see fifo_push). */
        q->c.chunk = atomic_load_explicit(&c->next, memory_order_acquire);
        q->c.idx = 0;
        /* Before the head store, so a bounded producer that sees the new head also
         * sees the chunk back on the stack. */
        qchunk_give(q, c, may_free);
    } else {
        q->c.idx = i + 1;
    }
    atomic_store_explicit(&q->c.head, h + 1, memory_order_release);
    return 0;
}

/* Frees every chunk (the queue must be empty and owned by the caller). */
static inline void fifo_fini(br_queue *q) {
    br__qchunk *c = q->c.chunk;
    while (c != NULL) { /* c.chunk == p.chunk once drained; its next is NULL */
        br__qchunk *n = atomic_load_explicit(&c->next, memory_order_relaxed);
        if (!in_arena(q, c))
            br__free(c);
        c = n;
    }
    c = atomic_load_explicit(&q->spare.top, memory_order_acquire);
    while (c != NULL) {
        br__qchunk *n = c->free_next;
        if (!in_arena(q, c))
            br__free(c);
        c = n;
    }
    br__free(q->spare.arena);
}

#endif
