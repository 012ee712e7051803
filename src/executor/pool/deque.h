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
/* Owner only. Pushes the chain head, head->next, ... (n tasks, linked through
 * `next`) in reverse, so that the last task of the chain ends nearest the top: for a
 * newest-first list, the oldest is taken first. Reads the links only (the tasks' lines
 * stay shared). 0, or BR_ENOMEM if the ring could not grow (nothing was pushed). */
int br__deque_push_reversed(br__deque *d, br_task *head, size_t n);
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
