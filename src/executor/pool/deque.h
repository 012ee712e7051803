/* executor/pool/deque.h: a Chase-Lev work-stealing deque of tasks, for the thread pool.
 * Never installed.
 *
 * One owner thread pushes and takes at the bottom (LIFO); any number of thieves steal
 * at the top (FIFO). Used as a FIFO queue, the owner only pushes and everyone takes at
 * the top (br__deque_pop_fifo); "the owner" may then be whoever holds a lock that
 * serializes the pushes. The owner's operations are wait-free; a steal is one CAS and may
 * fail spuriously (BR__STEAL_RETRY) when it races with another thief or with the
 * owner taking the last task. The ring grows on demand; a grown-out ring is kept until
 * br__deque_destroy, because a thief may still be reading it. The memory-ordering
 * argument is at the top of deque.c.
 */
#ifndef BRAID_EXECUTOR_POOL_DEQUE_H
#define BRAID_EXECUTOR_POOL_DEQUE_H

#include "future/for_executors.h"

typedef struct br__deque_ring br__deque_ring;

typedef struct br__deque {
    /* top is written by thieves (and the owner taking the last task), bottom only by
     * the owner: separate lines, so that the owner's pushes don't bounce the line that
     * thieves CAS. */
    _Alignas(BR__CACHELINE) _Atomic int64_t top;
    _Alignas(BR__CACHELINE) _Atomic int64_t bottom;
    _Atomic(br__deque_ring *) ring;
    br__deque_ring *retired; /* owner only: rings grown out of, freed at destroy */
} br__deque;

enum { BR__STEAL_EMPTY = 0, BR__STEAL_OK = 1, BR__STEAL_RETRY = 2 };

/* A seq_cst fence. ThreadSanitizer doesn't model fences (gcc warns -Wtsan), so its
 * builds use a seq_cst RMW on a private word instead: on x86 and arm64 that is the
 * same full barrier, and TSan understands it. The fences here never carry
 * happens-before for plain data (deque.c; the pool's sched.c and cancel.c design notes), only
 * store-load ordering. */
static inline void br__fence_sc(void) {
#if defined(BRAID_TSAN)
    static _Atomic int word;
    atomic_fetch_add_explicit(&word, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* An empty deque with room for `cap` tasks (rounded up to a power of two, at least
 * 16). 0 or BR_ENOMEM. */
int br__deque_init(br__deque *d, size_t cap);
/* Frees the rings. The deque must be empty or its tasks owned elsewhere, and no thief
 * may be inside a steal. */
void br__deque_destroy(br__deque *d);

/* Owner only. Pushes t at the bottom; 0, or BR_ENOMEM if the ring was full and could
 * not grow (t was not pushed). */
int br__deque_push(br__deque *d, br_task *t);
/* Owner only. Pushes the chain head, head->next, ... (linked through `next`, NULL
 * terminated) so that the last task of the chain ends at the bottom, and publishes
 * them all with one store. Returns NULL, or on BR_ENOMEM the first task not pushed
 * (the rest of the chain follows it). */
br_task *br__deque_push_chain(br__deque *d, br_task *head);
/* Owner only: makes room for n more tasks without growing again, so that slots past
 * bottom can be written (br__deque_stage) and published in pieces (br__deque_publish).
 * 0, or BR_ENOMEM (nothing changed). */
int br__deque_reserve(br__deque *d, size_t n);
/* Owner only, after br__deque_reserve: the current bottom, the index pieces count from. */
static inline int64_t br__deque_bottom(br__deque *d) {
    return atomic_load_explicit(&d->bottom, memory_order_relaxed);
}
/* Owner only: writes slot i (bottom <= i < bottom + the room reserved), unpublished. */
void br__deque_stage(br__deque *d, int64_t i, br_task *t);
/* Owner only: publishes every slot below b (b >= bottom), with one release store. */
static inline void br__deque_publish(br__deque *d, int64_t b) {
    atomic_store_explicit(&d->bottom, b, memory_order_release); /* rule 1 */
}
/* Owner only: true if the deque is certainly empty (thieves only ever shrink it), so
 * that a take, with its fence, can be skipped. */
static inline bool br__deque_owner_empty(br__deque *d) {
    return atomic_load_explicit(&d->top, memory_order_relaxed) >=
           atomic_load_explicit(&d->bottom, memory_order_relaxed);
}
/* Owner only. Takes the bottom task, or NULL if empty. */
br_task *br__deque_take(br__deque *d);

/* Owner only: the task a take would return next (NULL if none), for prefetching. It
 * may be stolen meanwhile; never use it for more than a prefetch hint. */
br_task *br__deque_peek(br__deque *d);

/* Any thread. Steals the top task into *out: BR__STEAL_OK, BR__STEAL_EMPTY, or
 * BR__STEAL_RETRY (lost a race; the deque may still hold tasks). */
int br__deque_steal(br__deque *d, br_task **out);

/* Any thread, on a deque used as a FIFO queue: one whose owner only pushes (never
 * calls br__deque_take). Takes the top (oldest) task like a steal, without the fence
 * that a steal needs only against the owner's take (deque.c, rule 5). */
int br__deque_pop_fifo(br__deque *d, br_task **out);

/* A slot's tag (bit 0 of the task pointer stored in a FIFO-used deque): the task
 * belongs to the same batch as the task in the slot before it (sched.c, "Runs"). The
 * functions here hand out untagged pointers. */
enum { BR__DEQUE_CONT = 1 };
static inline br_task *br__deque_untag(br_task *t) {
    return (br_task *)((uintptr_t)t & ~(uintptr_t)BR__DEQUE_CONT);
}
/* Any thread, FIFO use: the top index, for br__deque_peek_run (acquire). */
static inline int64_t br__deque_top(br__deque *d) {
    return atomic_load_explicit(&d->top, memory_order_acquire);
}
/* Any thread, FIFO use: reads the run that starts at index t (the task there, and the
 * ones after it tagged BR__DEQUE_CONT, at most max, published ones only) into out,
 * untagged, without taking it. Returns its length, 0 if nothing is published at t.
 * The tasks are the caller's only if br__deque_claim(d, t, n) then succeeds. */
int br__deque_peek_run(br__deque *d, int64_t t, br_task **out, int max);
/* Any thread, FIFO use: takes slots [t, t+n) with one CAS of top from t; false if top
 * had moved (then nothing was taken). */
static inline bool br__deque_claim(br__deque *d, int64_t t, int n) {
    return atomic_compare_exchange_strong_explicit(&d->top, &t, t + n, memory_order_seq_cst,
                                                   memory_order_relaxed);
}

/* Any thread: the task at the top (the next br__deque_pop_fifo), or NULL; a hint for
 * prefetching only (it may be taken at once). */
br_task *br__deque_peek_top(br__deque *d);

/* Any thread: a snapshot of the number of tasks (may be stale at once; 0 may also be
 * seen transiently while the owner takes the last task). */
static inline int64_t br__deque_size(br__deque *d) {
    int64_t b = atomic_load_explicit(&d->bottom, memory_order_seq_cst);
    int64_t t = atomic_load_explicit(&d->top, memory_order_seq_cst);
    return b > t ? b - t : 0;
}

#endif
