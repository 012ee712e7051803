/* queue/private.h: the queue's layout, for src/queue/ and the tests: shared by queue.c
 * (put, get, join: the protocol), life.c (new, shutdown, free), fifo.h (the chunked FIFO
 * storage, the hot path) and store.c (the LIFO stack and priority heap). The protocol
 * is described in the design notes at the top of queue.c and life.c. Never installed. */
#ifndef BRAID_QUEUE_PRIVATE_H
#define BRAID_QUEUE_PRIVATE_H

#include "braid/queue.h"
#include "core/lib.h"

/* try_put / try_get answer BR__QAGAIN for "full" / "empty" (never returned to users). */
#define BR__QAGAIN 1

/* Shutdown states (br_queue.state). Only ever increase. */
enum { BR__QOPEN = 0, BR__QDRAINING = 1, BR__QIMMEDIATE = 2 };

/* --- the side locks ---------------------------------------------------------------
 *
 * plk and clk guard a few dozen instructions each (claim a slot, move an index; more
 * for a heap's sift or an array's growth) and are taken on every put and get, so their
 * cost is the queue's cost. br__ilock's
 * unlock is an atomic exchange, which it needs to see whether someone sleeps on the
 * word; that second locked instruction made a put or get ~1.5x slower. This lock
 * unlocks with a plain release store instead, and so can't know about sleepers: a
 * contender never sleeps waiting to be woken. It spins (the holder is on a CPU almost
 * always), and if the holder was preempted it polls with short timed sleeps (futex
 * waits, which return at once if the word is no longer 1) until it gets in.
 * No wake-up exists, so none can be lost. Never held while waiting for anything.
 * Taken under wlock (an ilock) in a few places: the one exception to the ilock's rule,
 * described in queue.c's design notes ("Locking"). */
typedef struct br__qlock {
    _Atomic uint32_t word; /* 0 free, 1 held */
} br__qlock;

void br__qlock_lock_slow(br__qlock *l);

static inline void br__qlock_lock(br__qlock *l) {
    uint32_t z = 0;
    if (BR__LIKELY(atomic_compare_exchange_strong_explicit(&l->word, &z, 1,
                                                           memory_order_acquire,
                                                           memory_order_relaxed)))
        return;
    br__qlock_lock_slow(l);
}

static inline void br__qlock_unlock(br__qlock *l) {
    atomic_store_explicit(&l->word, 0, memory_order_release);
}

/* --- the FIFO's storage: a singly linked list of fixed-size chunks -------------- */

typedef struct br__qslot {
    _Atomic uint64_t seq; /* position + 1 once the item at `position` is written */
    void *item;
} br__qslot;

typedef struct br__qchunk {
    _Atomic(struct br__qchunk *) next; /* set by the producer before the last slot */
    struct br__qchunk *free_next;      /* link in the free list */
    br__qslot slots[];
} br__qchunk;

/* --- LIFO and priority storage: an array of entries under one lock ------------- */

typedef struct br__qentry {
    int64_t prio;
    uint64_t seq; /* put order: ties between equal priorities go to the older one */
    void *item;
} br__qentry;

struct br_queue {
    /* Read-mostly: set at creation, or (state) changed once or twice in a lifetime. */
    br_queue_kind kind;
    uint32_t chunk_cap; /* FIFO: slots per chunk */
    size_t maxsize;     /* 0: unbounded */
    void (*dispose)(void *item, void *ctx);
    void *dispose_ctx;
    _Atomic int state;  /* BR__QOPEN, BR__QDRAINING, BR__QIMMEDIATE */
    br__qlock *plk;     /* the put side's lock: &p.lock */
    br__qlock *clk;     /* the get side's lock: &c.lock (FIFO) or &p.lock (others) */

    /* The put side. Under plk, except the atomics readers look at. */
    _Alignas(BR__CACHELINE) struct {
        br__qlock lock;
        _Atomic uint32_t ngetw;   /* getters linked in w.getters; +1 under wlock+plk */
        _Atomic uint64_t tail;    /* items ever put (FIFO: the next position) */
        uint64_t head_cache;      /* FIFO bounded: a lower bound of c.head */
        br__qchunk *chunk;        /* FIFO: the chunk being written */
        uint32_t idx;             /* FIFO: next slot in it */
        br__qentry *arr;          /* LIFO / priority: the entries */
        size_t cap;               /* ... and room for that many */
    } p;

    /* The get side. Under clk, except the atomics. */
    _Alignas(BR__CACHELINE) struct {
        br__qlock lock;           /* FIFO only */
        _Atomic uint32_t nputw;   /* putters linked in w.putters; +1 under wlock+clk */
        _Atomic uint64_t head;    /* items ever taken out (got or drained) */
        br__qchunk *chunk;        /* FIFO: the chunk being read */
        uint32_t idx;             /* FIFO: next slot in it */
    } c;

    /* Waiting: the three wait lists, under wlock (their own .lock fields are unused). */
    _Alignas(BR__CACHELINE) struct {
        br__ilock lock;
        br__wq getters, putters, joiners;
        _Atomic uint32_t njoinw;  /* joiners linked */
        _Atomic uint32_t nbusy;   /* calls free must not overtake (queue.c, Freeing) */
        _Atomic uint64_t done;    /* task_done calls + items an immediate shutdown drained */
    } w;

    /* FIFO: spare chunks, a Treiber stack. Popped only under plk (one popper at a time,
     * so no ABA), pushed by getters, drains and free. A bounded FIFO also owns an arena
     * of chunks, allocated at creation and handed out in order (under plk) before any
     * spare: untouched arena pages cost no memory, so a large maxsize is cheap until
     * it fills. */
    _Alignas(BR__CACHELINE) struct {
        _Atomic(br__qchunk *) top;
        _Atomic uint32_t n;       /* malloc'd chunks on the stack */
        _Atomic uint32_t nmalloc; /* chunks ever malloc'd (a bounded FIFO: never) */
        uint32_t max;             /* keep at most this many malloc'd ones */
        char *arena;              /* bounded: arena_n chunks of chunk_bytes, or NULL */
        size_t arena_n, arena_next, chunk_bytes;
    } spare;
};


/* --- shared by queue.c (put, get, join) and life.c (new, shutdown, free) ---------- */

static inline bool br__queue_is_fifo(const br_queue *q) {
    return q->kind == BR_QUEUE_FIFO || q->kind == BR_QUEUE_SIMPLE;
}

static inline int br__queue_state(br_queue *q) {
    return atomic_load_explicit(&q->state, memory_order_acquire);
}

/* Items in the queue now (approximate: the two counters are read apart). */
static inline uint64_t br__queue_size(br_queue *q) {
    uint64_t t = atomic_load_explicit(&q->p.tail, memory_order_acquire);
    uint64_t h = atomic_load_explicit(&q->c.head, memory_order_acquire);
    return h >= t ? 0 : t - h; /* read apart, so h may have passed the t we read */
}

/* A wait list and its count of linked waiters (p.ngetw, c.nputw, w.njoinw). */
typedef struct br__qlist {
    br__wq *wq;
    _Atomic uint32_t *count;
} br__qlist;

static inline br__qlist br__queue_getters(br_queue *q) {
    return (br__qlist){&q->w.getters, &q->p.ngetw};
}
static inline br__qlist br__queue_putters(br_queue *q) {
    return (br__qlist){&q->w.putters, &q->c.nputw};
}
static inline br__qlist br__queue_joiners(br_queue *q) {
    return (br__qlist){&q->w.joiners, &q->w.njoinw};
}

/* Pops every waiter of l onto *chain (linked through ->next) for br__wake_chain.
 * Under wlock. */
static inline void br__queue_pop_all(br__qlist l, br__waiter **chain) {
    br__waiter *w;
    while ((w = br__wq_pop(l.wq)) != NULL) {
        atomic_fetch_sub_explicit(l.count, 1, memory_order_relaxed);
        w->next = *chain;
        *chain = w;
    }
}

/* Wakes the joiners if every task is done now (queue.c). */
void br__queue_wake_joiners(br_queue *q);

/* LIFO and priority storage (store.c). Callers hold plk (== clk for these kinds). */
int br__qstore_init(br_queue *q);  /* 0 or BR_ENOMEM; bounded: all the room at once */
void br__qstore_fini(br_queue *q);
/* 0, BR_ENOMEM. The caller checked room. */
int br__qstore_push(br_queue *q, void *item, int64_t prio, uint64_t seq);
/* Takes the next item out; the store must not be empty. shrink: an unbounded store may
 * halve its array (br__realloc, which copies) if it is three quarters empty; pass false
 * under wlock, which is held only briefly. */
void br__qstore_pop(br_queue *q, void **item, int64_t *prio, bool shrink);

/* Test hooks: how many calls on q free would wait for (w.nbusy: blocked, or finishing
 * after their effect), and how many are linked as getters, putters, joiners. */
size_t br__queue_busy(br_queue *q);
void br__queue_waiters(br_queue *q, size_t *getters, size_t *putters, size_t *joiners);
/* FIFO kinds: how many chunks were malloc'd after creation (0 for a bounded queue). */
size_t br__queue_chunk_mallocs(br_queue *q);

#endif
