/* The Chase-Lev work-stealing deque (executor/deque.h).
 *
 * Design notes: memory ordering.
 *
 * The algorithm is Chase and Lev's ("Dynamic circular work-stealing deque", SPAA 2005)
 * with the C11 orderings of Le, Pop, Cohen and Zappa Nardelli ("Correct and efficient
 * work-stealing for weak memory models", PPoPP 2013), adjusted so that every
 * happens-before edge that carries task data is a release/acquire pair on an atomic
 * variable (ThreadSanitizer does not model fences, and does not need to: the fences
 * below only decide who gets the last task, they publish nothing).
 *
 * Indices grow forever (int64_t; 2^63 pushes never happen); slot i lives at
 * ring[i & mask]. Tasks live in [top, bottom).
 *
 * 1. Publishing a task. The owner stores the slot (relaxed) and then bottom (release).
 *    A thief loads bottom with acquire before it reads the slot, so the slot value and
 *    everything written to the task before the push (by the owner, or by the thread
 *    that handed the task to the owner with its own release/acquire) happen-before the
 *    thief runs it. Every store to bottom is a release store, including the two in
 *    take(): a thief may read bottom from one of those, and release sequences no
 *    longer extend through plain stores (C++20 / C2x), so each must publish on its own.
 *    On x86 and arm64 a release store costs nothing extra.
 *
 * 2. Reusing a slot. After a thief reads slot t it claims it by CAS top t -> t+1. The
 *    owner reads top with acquire before it decides the ring has room, so a thief's
 *    read of slot t happens-before the owner's later overwrite of that slot (the CAS
 *    is a release); a thief whose CAS fails may have read a newer task, which it
 *    ignores.
 *
 * 3. The last task. take() first reserves slot b by storing bottom = b, then a
 *    seq_cst fence, then reads top; steal() reads top, a seq_cst fence, then bottom.
 *    The fences order these in one total order: either the thief sees the reserved
 *    bottom (and doesn't take slot b), or the owner sees the thief's top and
 *    competes for the last task with its own CAS on top. Exactly one CAS wins. With
 *    two or more tasks left (top < b) a thief can only claim slot top < b, so the
 *    owner takes slot b without a CAS.
 *
 * 4. Growing. The owner copies [top, bottom) into a ring twice the size and stores
 *    the ring pointer with release before any later bottom store; a thief loads the
 *    ring pointer with acquire after its acquire load of bottom, so if it saw a
 *    bottom from after the grow it sees the new ring. A thief holding the old ring
 *    reads a slot that was copied unchanged, and its CAS on top decides as before.
 *    Old rings stay allocated until br__deque_destroy (total at most twice the
 *    largest ring), which is what makes that read safe without reclamation schemes.
 *
 * 5. FIFO use. When the owner never takes (only pushes), rule 3's race can't happen:
 *    top only moves by CASes of takers at the top, and a taker that read top = t and
 *    bottom > t (acquire, rule 1) reads a published slot t that the owner can't reuse
 *    before top passes it (rule 2); its CAS decides which taker gets it. So
 *    br__deque_pop_fifo is a steal without the fence. The owner's role (the pushes,
 *    growing, the retired list) may pass between threads if a lock serializes it: the
 *    lock's release/acquire carries bottom, ring and retired from one holder to the
 *    next.
 *
 * 6. Runs and pieces (FIFO use). A taker may take n slots at once: it reads top = t
 *    (acquire), bottom b > t (acquire, rule 1), the ring (rule 4), and slots
 *    [t, t+n) with t+n <= b, then CASes top from t to t+n. Rule 2 holds for each of
 *    the n slots as for one, and rule 5's argument is unchanged: top moves only by
 *    takers' CASes, so a successful CAS from t means nobody took any of those slots.
 *    The owner may write slots past bottom ahead of publishing them (br__deque_stage)
 *    once br__deque_reserve has made room for all of them: staged slots are never
 *    read (takers stop at bottom), the room check read top with acquire (rule 2), and
 *    no grow happens between the reserve and the last publish, so nothing staged is
 *    left out of a copy. Each br__deque_publish is a release store of bottom (rule 1).
 *    Slots may carry a tag in bit 0 (BR__DEQUE_CONT); every function here strips it.
 */
#include "executor/pool/deque.h"


struct br__deque_ring {
    int64_t mask;
    br__deque_ring *retired_next;
    _Atomic(br_task *) slot[];
};

static br__deque_ring *ring_new(int64_t cap) {
    br__deque_ring *r = br__malloc(sizeof *r + (size_t)cap * sizeof r->slot[0]);
    if (r == NULL)
        return NULL;
    r->mask = cap - 1;
    r->retired_next = NULL;
    return r;
}

int br__deque_init(br__deque *d, size_t cap) {
    int64_t c = 16;
    while ((size_t)c < cap)
        c <<= 1;
    br__deque_ring *r = ring_new(c);
    if (r == NULL)
        return BR_ENOMEM;
    atomic_init(&d->top, 0);
    atomic_init(&d->bottom, 0);
    atomic_init(&d->ring, r);
    d->retired = NULL;
    return 0;
}

void br__deque_destroy(br__deque *d) {
    br__free(atomic_load_explicit(&d->ring, memory_order_relaxed));
    while (d->retired) {
        br__deque_ring *n = d->retired->retired_next;
        br__free(d->retired);
        d->retired = n;
    }
    atomic_store_explicit(&d->ring, NULL, memory_order_relaxed);
}

/* Owner only: a ring twice as big holding [t, b) (rule 4). NULL if out of memory. */
static br__deque_ring *grow(br__deque *d, br__deque_ring *r, int64_t t, int64_t b) {
    br__deque_ring *n = ring_new((r->mask + 1) * 2);
    if (n == NULL)
        return NULL;
    for (int64_t i = t; i < b; i++)
        atomic_store_explicit(&n->slot[i & n->mask],
                              atomic_load_explicit(&r->slot[i & r->mask],
                                                   memory_order_relaxed),
                              memory_order_relaxed);
    atomic_store_explicit(&d->ring, n, memory_order_release);
    r->retired_next = d->retired;
    d->retired = r;
    return n;
}

int br__deque_push(br__deque *d, br_task *t) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t top = atomic_load_explicit(&d->top, memory_order_acquire); /* rule 2 */
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_relaxed);
    if (BR__UNLIKELY(b - top > r->mask)) {
        r = grow(d, r, top, b);
        if (r == NULL)
            return BR_ENOMEM;
    }
    atomic_store_explicit(&r->slot[b & r->mask], t, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b + 1, memory_order_release); /* rule 1 */
    return 0;
}

br_task *br__deque_push_chain(br__deque *d, br_task *head) {
    int64_t b0 = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t b = b0;
    int64_t top = atomic_load_explicit(&d->top, memory_order_acquire);
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_relaxed);
    br_task *t = head;
    while (t != NULL) {
        if (BR__UNLIKELY(b - top > r->mask)) {
            top = atomic_load_explicit(&d->top, memory_order_acquire);
            if (b - top > r->mask) {
                br__deque_ring *n = grow(d, r, top, b); /* copies the unpublished too */
                if (n == NULL)
                    break;
                r = n;
            }
        }
        br_task *next = t->next; /* read before anything is published */
        atomic_store_explicit(&r->slot[b & r->mask], t, memory_order_relaxed);
        b++;
        t = next;
    }
    if (b != b0)
        atomic_store_explicit(&d->bottom, b, memory_order_release); /* rule 1 */
    return t;
}

int br__deque_reserve(br__deque *d, size_t n) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t top = atomic_load_explicit(&d->top, memory_order_acquire); /* rule 2 */
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_relaxed);
    while (BR__UNLIKELY(b - top + (int64_t)n > r->mask + 1)) {
        r = grow(d, r, top, b);
        if (r == NULL)
            return BR_ENOMEM;
    }
    return 0;
}

void br__deque_stage(br__deque *d, int64_t i, br_task *t) {
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_relaxed);
    atomic_store_explicit(&r->slot[i & r->mask], t, memory_order_relaxed);
}

br_task *br__deque_take(br__deque *d) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed) - 1;
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_relaxed);
    atomic_store_explicit(&d->bottom, b, memory_order_release);
    br__fence_sc(); /* rule 3 */
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    if (t > b) { /* empty: undo the reservation */
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
        return NULL;
    }
    br_task *x = atomic_load_explicit(&r->slot[b & r->mask], memory_order_relaxed);
    if (t == b) { /* the last task: race the thieves for it */
        if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed))
            x = NULL;
        atomic_store_explicit(&d->bottom, b + 1, memory_order_release);
    }
    return x;
}

br_task *br__deque_peek(br__deque *d) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    if (t >= b)
        return NULL;
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_relaxed);
    return atomic_load_explicit(&r->slot[(b - 1) & r->mask], memory_order_relaxed);
}

br_task *br__deque_peek_top(br__deque *d) {
    int64_t t = atomic_load_explicit(&d->top, memory_order_relaxed);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire);
    if (t >= b)
        return NULL;
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_acquire);
    return br__deque_untag(atomic_load_explicit(&r->slot[t & r->mask], memory_order_relaxed));
}

/* Takes the task at top t, given bottom b read after t: the common end of steal and
 * pop_fifo. */
static int take_top(br__deque *d, int64_t t, int64_t b, br_task **out) {
    if (t >= b)
        return BR__STEAL_EMPTY;
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_acquire); /* rule 4 */
    br_task *x = atomic_load_explicit(&r->slot[t & r->mask], memory_order_relaxed);
    if (!atomic_compare_exchange_strong_explicit(&d->top, &t, t + 1, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return BR__STEAL_RETRY;
    *out = br__deque_untag(x);
    return BR__STEAL_OK;
}

int br__deque_steal(br__deque *d, br_task **out) {
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    br__fence_sc(); /* rule 3 */
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire); /* rule 1 */
    return take_top(d, t, b, out);
}

int br__deque_pop_fifo(br__deque *d, br_task **out) {
    int64_t t = atomic_load_explicit(&d->top, memory_order_acquire);
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire); /* rule 1 */
    return take_top(d, t, b, out);
}

int br__deque_peek_run(br__deque *d, int64_t t, br_task **out, int max) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_acquire); /* rule 1 */
    if (t >= b)
        return 0;
    br__deque_ring *r = atomic_load_explicit(&d->ring, memory_order_acquire); /* rule 4 */
    out[0] = br__deque_untag(atomic_load_explicit(&r->slot[t & r->mask], memory_order_relaxed));
    int n = 1;
    while (n < max && t + n < b) {
        br_task *x = atomic_load_explicit(&r->slot[(t + n) & r->mask], memory_order_relaxed);
        if (!((uintptr_t)x & BR__DEQUE_CONT))
            break;
        out[n++] = br__deque_untag(x);
    }
    return n;
}
