/* The LIFO stack and the priority heap: one array of entries, guarded by the queue's
 * one lock (plk == clk for these kinds). Count = p.tail - c.head, exact under it.
 *
 * Bounded queues get all their room at creation, so put never fails for memory.
 * Unbounded ones double when full and halve when three quarters empty (above 64): a
 * growth that fails is BR_ENOMEM with the array as it was, a shrink that fails keeps
 * the larger array. Memory comes from br__realloc (core/lib.h), so tests can fail it.
 * Neither happens under wlock (a br__ilock, which must stay short): a put that runs
 * there is a bounded queue's, which never grows, and a get that runs there (a getter's
 * retry while it registers) pops with shrink false; the next pop outside wlock shrinks,
 * as its test is the same on every pop.
 * The heap orders by (prio, seq): seq is the put order, which makes equal priorities
 * come out first in, first out, as Python's PriorityQueue does with (prio, count)
 * tuples. */
#include "queue/private.h"

enum { STORE_MIN = 16, STORE_SHRINK_ABOVE = 64 };

static size_t count_of(br_queue *q) {
    return (size_t)(atomic_load_explicit(&q->p.tail, memory_order_relaxed) -
                    atomic_load_explicit(&q->c.head, memory_order_relaxed));
}

static bool resize(br_queue *q, size_t cap) {
    if (cap > SIZE_MAX / sizeof(br__qentry))
        return false;
    br__qentry *a = br__realloc(q->p.arr, cap * sizeof *a);
    if (a == NULL)
        return false;
    q->p.arr = a;
    q->p.cap = cap;
    return true;
}

int br__qstore_init(br_queue *q) {
    q->p.arr = NULL;
    q->p.cap = 0;
    return resize(q, q->maxsize ? q->maxsize : STORE_MIN) ? 0 : BR_ENOMEM;
}

void br__qstore_fini(br_queue *q) {
    br__free(q->p.arr);
    q->p.arr = NULL;
    q->p.cap = 0;
}

static bool before(const br__qentry *a, const br__qentry *b) {
    return a->prio < b->prio || (a->prio == b->prio && a->seq < b->seq);
}

int br__qstore_push(br_queue *q, void *item, int64_t prio, uint64_t seq) {
    size_t n = count_of(q);
    if (n == q->p.cap && (q->p.cap > SIZE_MAX / 2 || !resize(q, q->p.cap * 2)))
        return BR_ENOMEM;
    br__qentry e = {prio, seq, item}, *a = q->p.arr;
    if (q->kind == BR_QUEUE_PRIORITY) {
        while (n > 0) { /* sift up */
            size_t parent = (n - 1) / 2;
            if (!before(&e, &a[parent]))
                break;
            a[n] = a[parent];
            n = parent;
        }
    }
    a[n] = e;
    return 0;
}

void br__qstore_pop(br_queue *q, void **item, int64_t *prio, bool shrink) {
    size_t n = count_of(q) - 1; /* entries left after this one */
    br__qentry *a = q->p.arr;
    if (q->kind == BR_QUEUE_PRIORITY) {
        *item = a[0].item;
        *prio = a[0].prio;
        br__qentry last = a[n];
        size_t i = 0;
        for (;;) { /* sift the last entry down from the root */
            size_t l = 2 * i + 1, m = i;
            const br__qentry *best = &last;
            if (l < n && before(&a[l], best))
                best = &a[m = l];
            if (l + 1 < n && before(&a[l + 1], best))
                best = &a[m = l + 1];
            if (m == i)
                break;
            a[i] = a[m];
            i = m;
        }
        a[i] = last;
    } else {
        *item = a[n].item;
        *prio = 0;
    }
    if (shrink && q->maxsize == 0 && q->p.cap > STORE_SHRINK_ABOVE && n < q->p.cap / 4)
        (void)resize(q, q->p.cap / 2); /* on failure keep the bigger array */
}
