/* future/private.h: the future's block, its state word and its outcome, for the future
 * layer's own files (src/future/) and the tests. Never installed. The state machine is
 * described at the top of future.c, the outcome module in outcome.c, listening and
 * waiting in listen.c, the block cache in cache.c and blocks.c.
 */
#ifndef BRAID_FUTURE_PRIVATE_H
#define BRAID_FUTURE_PRIVATE_H

#include "future/for_executors.h"

#include <stdarg.h>
#include <string.h>

/* The state word: the state in the low 3 bits, flags above. */
enum {
    BR__FS_PENDING = 0,
    BR__FS_RUNNING = 1,
    BR__FS_FINISHED = 2,
    BR__FS_CANCELLED = 3,
    BR__FS_COMPLETING = 4, /* claimed by a completer that is writing the result */
    BR__FS_MASK = 7,
    /* Someone linked a waiter, watcher or callback (sticky): the completer must take
     * the lock and notify. Without it, completing is one atomic RMW. */
    BR__FF_LISTENERS = 1u << 3,
    /* br_future_request_cancel was called while running. */
    BR__FF_CANCEL_REQ = 1u << 4,
    /* Begun by br__task_begin and not yet finished: only the task (or its executor)
     * writes the outcome, and the public set_* calls are refused (BR_ESTATE). */
    BR__FF_INTASK = 1u << 5,
    /* A pointer result was moved out by br_future_take_ptr: the caller owns it, so the
     * future won't call its dtor. Set once, after the future is done; the result
     * fields themselves are never written after completion, so readers need no lock. */
    BR__FF_TAKEN = 1u << 6
};

#define BR__FUTURE_MAGIC 0x66757475u /* "futu" */
#define BR__FUTURE_DEAD 0xdeadf00du

/* --- the outcome (outcome.c) ----------------------------------------------------------
 *
 * What a finished future holds besides its code: a result (bytes, inline or on the
 * heap, or an in-process pointer) or a failure message (inline or heap). The two never
 * coexist, so they share 32 bytes. */
enum {
    BR__R_NONE = 0,
    BR__R_INLINE,  /* len bytes in r.buf */
    BR__R_HEAP,    /* r.heap.p, r.heap.len bytes */
    BR__R_PTR,     /* r.ptr */
    BR__R_MSG,     /* a failure message in r.buf (NUL-terminated) */
    BR__R_MSGHEAP  /* a failure message at r.heap.p */
};
enum { BR__INLINE_RESULT = 32, BR__INLINE_MSG = 32 };

typedef union br__rval {
    _Alignas(8) unsigned char buf[BR__INLINE_RESULT];
    struct {
        void *p;
        size_t len;
    } heap;
    struct {
        void *p;
        void (*dtor)(void *p);
    } ptr;
} br__rval;

/* tflags: the task's bits (the low byte) and the inline argument's length (above). */
enum {
    BR__TF_IN_PROCESS = 1u << 1, /* pointer results allowed */
    BR__TF_ARG_INLINE = 1u << 2, /* the argument is in task.a.bytes */
    BR__TF_ARG_HEAP = 1u << 3,   /* task.a.ref.ptr is our heap copy */
    BR__TF_HOME = 1u << 4,       /* a coroutine task: cancel requests go to its home */
    BR__TF_CANCEL_REQUESTS = 1u << 5, /* br_future_cancel of it running is a request
                                       * (asyncio's Task.cancel(); not br_submit's) */
    BR__TF_ARG_LEN_SHIFT = 8
};

/* A listener: a node in a future's one list of waiters, watchers and callbacks
 * (listen.c's design notes). */
typedef struct br__lnode {
    struct br__lnode *next, *prev;
    uint32_t kind;   /* BR__LN_*: a watcher, a blocked waiter or a done-callback */
    uint32_t linked; /* under f's lock */
} br__lnode;

enum { BR__LN_WATCH = 1, BR__LN_WAIT, BR__LN_CB };

struct br__cb {
    br__lnode node;
    br_done_fn fn;
    void *arg;
};

/* A future and its task: one 128-byte block, two cache lines.
 *
 *   line 0: lst | magic st | refs lock | code rkind rlen tflags | r (32)
 *   line 1: task (next fn a deadline parent: 48) | cb0 (16)
 *
 * Line 0 is what completing and waiting touch; line 1 is what running reads. While the
 * block sits in a free list, its first word links it (cache_next) and everything from
 * st on is poisoned under ASan: magic stays readable, so a stale handle finds
 * BR__FUTURE_DEAD. */
struct br_future {
    union {
        br__lnode *lst;        /* waiters, watchers and callbacks (newest first) */
        br_future *cache_next; /* while free: the next free block */
    } u;
    uint32_t magic;
    _Atomic uint32_t st;       /* BR__FS_* | BR__FF_* */
    _Atomic uint32_t refs;
    br__ilock lock;            /* guards lst and cb0 */

    /* The outcome. Written only through outcome.c, by whoever owns the completion (a
     * claimer, or the task between begin and finish); read by anyone after an acquire
     * load sees a done state. */
    int32_t code;              /* 0, or the failure code (< 0) */
    uint8_t rkind;             /* BR__R_* */
    uint8_t rlen;              /* BR__R_INLINE: bytes in r.buf */
    uint16_t tflags;           /* BR__TF_* */
    br__rval r;

    br_task task;
    /* The first done-callback needs no allocation (a chunk runner relies on it). */
    br_done_fn cb0_fn;
    void *cb0_arg;
};

_Static_assert(sizeof(struct br_future) == 128, "a future block is two cache lines");
_Static_assert(offsetof(struct br_future, task) == BR__TASK_OFFSET,
               "BR__TASK_OFFSET (future/for_executors.h) is where the task sits");

static inline bool br__fs_done(uint32_t s) {
    uint32_t st = s & BR__FS_MASK;
    return st == BR__FS_FINISHED || st == BR__FS_CANCELLED;
}

static inline bool br__future_ok(const br_future *f) {
    return f != NULL && f->magic == BR__FUTURE_MAGIC;
}

static inline uint32_t br__future_state(const br_future *f) {
    return atomic_load_explicit(&((br_future *)f)->st, memory_order_acquire);
}

/* --- the outcome module (outcome.c) ----------------------------------------------------
 *
 * The one place that writes code/rkind/rlen/r. Two ways in:
 *  - a staged outcome, built before a completion is claimed so that an allocation
 *    failure changes nothing (br_future_set_result and friends: stage, claim, put);
 *  - in place, by the owner of a completion that may keep its old outcome on failure
 *    (the task's br_task_return*, br_task_fail): each call stages and puts.
 * Reading needs no lock once the done state was seen (future.c's publication rule). */

typedef struct br__outcome {
    uint8_t kind; /* BR__R_* */
    uint8_t len;  /* BR__R_INLINE: bytes in r.buf */
    br__rval r;
} br__outcome;

/* Staging: each fills o from scratch (o need not be initialised). Results up to 32
 * bytes are the common case and inline here; longer ones and messages are in
 * outcome.c. */
int br__outcome_bytes_heap(br__outcome *o, const void *data, size_t len); /* 0, BR_ENOMEM */
/* o is heap's len bytes, heap (from br__malloc) owned by o from now on. */
void br__outcome_heap(br__outcome *o, void *heap, size_t len);
static inline int br__outcome_bytes(br__outcome *o, const void *data, size_t len) {
    if (BR__UNLIKELY(len > BR__INLINE_RESULT))
        return br__outcome_bytes_heap(o, data, len);
    o->kind = BR__R_INLINE;
    o->len = (uint8_t)len;
    if (len)
        memcpy(o->r.buf, data, len);
    return 0;
}
void br__outcome_ptr(br__outcome *o, void *ptr, void (*dtor)(void *ptr));
/* A failure message: a copy of msg[0..len) (msg NULL: none). exact: BR_ENOMEM if a
 * long message can't be copied; otherwise a long message that can't be copied is kept
 * cut to what fits inline. */
int br__outcome_msg(br__outcome *o, const char *msg, size_t len, bool exact);
/* printf-style, cut to what fits inline if the heap copy can't be made. */
void br__outcome_msgv(br__outcome *o, const char *fmt, va_list ap);
/* Frees what a staged outcome holds, if it is never put. */
void br__outcome_drop(br__outcome *o);

/* Drops whatever f holds (outcome.c): a heap copy is freed, a pointer result's dtor
 * runs unless it was taken. */
void br__outcome_clear_held(br_future *f);

/* The future's result or message goes (the code stays). */
static inline void br__outcome_clear(br_future *f) {
    if (BR__UNLIKELY(f->rkind != BR__R_NONE))
        br__outcome_clear_held(f);
}
/* The same, but a failure message stays (a failing task drops its result only). */
static inline void br__outcome_clear_result(br_future *f) {
    if (f->rkind != BR__R_MSG && f->rkind != BR__R_MSGHEAP)
        br__outcome_clear(f);
}

/* Putting: the future's old result or message is dropped (a pointer result's dtor
 * runs), o moves in. The caller owns the completion. Never fails. All 32 bytes are
 * copied, whatever o uses of them: a fixed copy is cheaper than a sized one. */
static inline void br__outcome_put(br_future *f, br__outcome *o) {
    br__outcome_clear(f);
    f->rkind = o->kind;
    f->rlen = o->len;
    f->r = o->r;
    o->kind = BR__R_NONE; /* moved */
}

/* Reading: the failure message, or NULL; the result's bytes (a pointer result gives
 * its pointer and length 0, or NULL once taken). */
static inline const char *br__future_msg(const br_future *f) {
    if (f->rkind == BR__R_MSG)
        return (const char *)f->r.buf;
    if (f->rkind == BR__R_MSGHEAP)
        return f->r.heap.p;
    return NULL;
}
const void *br__outcome_data(const br_future *f, size_t *len);

/* --- listeners (listen.c) ------------------------------------------------------------- */

/* Wakes waiters, runs watchers and callbacks of a future that just became done and had
 * BR__FF_LISTENERS. temp_ref: hold a reference of our own while callbacks run (the
 * caller's may be dropped by one of them). */
void br__future_notify(br_future *f, bool temp_ref);
/* Blocks until f is done or the deadline: 0, BR_ETIMEDOUT, or BR_ECANCELED (the
 * waiter's context was cancelled: core/lib.h; nothing changed, f stays as it was).
 * f must be live. br__future_wait_done_nocancel (for_executors.h) can't be cancelled. */
int br__future_wait_done(br_future *f, int64_t deadline);

/* A watcher is the internal, allocation-free cousin of a done-callback, for code that
 * watches many futures at once (br_wait, br_as_completed; later the event loop). The
 * caller owns the node (on its stack, or in an array it allocated once).
 *
 * w->fn runs exactly once, when f becomes done, on the completing thread, WHILE f's
 * internal lock is held: it must be short, must not call into f (reading its state
 * with br_future_done/failed is fine) and may take only leaf locks (a lock under which
 * nothing else is taken). Holding the lock is what makes unwatching safe: once
 * br__future_unwatch returns, fn is not running and never will, so the node and
 * whatever fn touches may go. */
typedef struct br__watcher br__watcher;
struct br__watcher {
    br__lnode node;  /* first: the future's list links it */
    void (*fn)(br__watcher *w, br_future *f);
    void *arg;       /* free for the owner */
    uintptr_t data;  /* free for the owner */
};

/* Links w into f: true if linked (w->fn will run once when f is done, unless
 * unwatched first); false if f is done already (w->fn will not run). */
bool br__future_watch(br_future *f, br__watcher *w);
/* Unlinks w: true if it was still linked (fn never runs), false if fn already ran
 * (and has returned). */
bool br__future_unwatch(br_future *f, br__watcher *w);

/* --- references and blocks (future.c, cache.c, blocks.c) ------------------------------ */

/* Frees f (its last reference is gone). Allocating is br__future_alloc (cache.h). */
void br__future_free(br_future *f);

/* Drops a reference. Seeing refs == 1 means ours is the only one left: nobody else can
 * retain (that takes a reference), so the block is freed without the RMW (the acquire
 * load pairs with the release in every earlier holder's decrement). That saves the
 * fire-and-forget path one atomic RMW. */
static inline void br__future_unref(br_future *f) {
    if (atomic_load_explicit(&f->refs, memory_order_acquire) == 1 ||
        atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        br__future_free(f);
}

/* Sets dup[i] = 1 for the entries of fs[0..n) that repeat an earlier entry, 0 for the
 * others, in O(n) (wait.c). 0 or BR_ENOMEM. */
int br__future_dedupe(br_future *const fs[], size_t n, unsigned char *dup);

/* Blocks per chain moved between a thread's cache and the shared layer. */
enum { BR__BLOCK_BATCH = 64 };

/* The shared layer (blocks.c). A chain of free blocks (linked through u.cache_next, *n
 * of them, at least one), or NULL if out of memory. Their bodies are poisoned under
 * ASan. */
br_future *br__blocks_get(uint32_t *n);
/* Takes back a chain of n free blocks. */
void br__blocks_put(br_future *chain, uint32_t n);
/* Takes the shared layer's lock, and releases it (fork hooks). */
void br__blocks_lock(void);
void br__blocks_unlock(void);
void br__blocks_fork_parent(void);
void br__blocks_fork_child(void);

/* Tests: a snapshot of the shared layer. */
struct br__blocks_stats {
    size_t slabs;       /* slabs with memory (carved from, or fully free and kept) */
    size_t empty;       /* fully free slabs kept for reuse */
    size_t bare;        /* slabs whose memory went back to the kernel, kept as address space */
    size_t free_blocks; /* free blocks in the shared layer */
    size_t slab_blocks; /* blocks per slab */
    size_t mapped;      /* slabs ever mapped (address space never given back) */
    size_t carving;     /* 1 if a slab is being carved, else 0 (counted in slabs) */
    size_t uncarved;    /* blocks of that slab not carved yet */
    size_t spares;      /* slabs grown ahead, not carved yet (not counted in slabs) */
    size_t grown;       /* slabs ever grown ahead (by br__blocks_grow_ahead) */
    size_t spares_taken; /* spares a get took to carve */
    size_t grow_declined; /* growths wanted, taken by a grower, and not made */
    size_t get_started; /* slabs a get started from untouched memory (new or bare) */
};
void br__blocks_stats(struct br__blocks_stats *st);
/* Tests: sets how long an empty slab keeps its memory (ns; 0: given back at once beyond
 * the floor; < 0: the default), returns the previous value. */
int64_t br__blocks_set_decay(int64_t ns);

/* Tests: consumers blocked in br_as_completed_next on `it` (as_completed.c). */
size_t br__as_completed_blocked(br_as_completed *it);

/* Tests: the argument, set after br__future_alloc: borrowed (br__task_set_arg) or
 * copied (br__task_copy_arg: 0 or BR_ENOMEM); pointer results allowed or not. */
void br__task_set_arg(br_task *t, const void *arg, size_t len);
int br__task_copy_arg(br_task *t, const void *arg, size_t len);
void br__task_set_in_process(br_task *t, bool in_process);

#endif
