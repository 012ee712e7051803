/* future/impl.h: the future's layout and state word, shared by the future layer's own
 * files (future.c, task.c, wait.c, as_completed.c) and nobody else. The protocol is
 * described in the design notes at the top of future.c. */
#ifndef BRAID_FUTURE_IMPL_H
#define BRAID_FUTURE_IMPL_H

#include "future/internal.h"

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
    /* Running inside br__task_run: only the task writes the result, and the public
     * set_* calls are refused (BR_ESTATE). */
    BR__FF_INTASK = 1u << 5,
    /* A pointer result was moved out by br_future_take_ptr: the caller owns it, so the
     * future won't call its dtor. Set once, after the future is done; the result
     * fields themselves are never written after completion, so readers need no lock. */
    BR__FF_TAKEN = 1u << 6
};

#define BR__FUTURE_MAGIC 0x66757475u /* "futu" */
#define BR__FUTURE_DEAD 0xdeadf00du

/* What r holds. A result and a failure message never coexist (setting one clears the
 * other), so they share the same 32 bytes. */
enum {
    BR__R_NONE = 0,
    BR__R_INLINE,  /* rlen bytes in r.buf */
    BR__R_HEAP,    /* r.heap.p, r.heap.len bytes */
    BR__R_PTR,     /* r.ptr */
    BR__R_MSG,     /* a failure message in r.buf (NUL-terminated) */
    BR__R_MSGHEAP  /* a failure message at r.heap.p */
};
enum { BR__INLINE_RESULT = 32, BR__INLINE_MSG = 32 };

/* tflags: the task's bits (the low byte) and the inline argument's length (above). */
enum {
    BR__TF_CHILD = 1u << 0,      /* run by another task (br__task_set_parent) */
    BR__TF_IN_PROCESS = 1u << 1, /* pointer results allowed */
    BR__TF_ARG_INLINE = 1u << 2, /* the argument is in task.a.bytes */
    BR__TF_ARG_HEAP = 1u << 3,   /* task.a.ref.ptr is our heap copy */
    BR__TF_ARG_LEN_SHIFT = 8
};

/* Listener kinds (br__lnode.kind). */
enum { BR__LN_WATCH = 1, BR__LN_WAIT, BR__LN_CB };

struct br__cb {
    br__lnode node;
    br_done_fn fn;
    void *arg;
};

/* A future and its task: one 128-byte block, two cache lines.
 *
 *   line 0: lst | magic st | refs lock | code rkind rlen tflags | r (32)
 *   line 1: task (next fn a deadline xdata: 48) | cb0 (16)
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

    /* The outcome. Written by whoever owns the completion (the claimer, or the task
     * while INTASK), read by anyone after an acquire load sees a done state. */
    int32_t code;              /* 0, or the failure code (< 0) */
    uint8_t rkind;             /* BR__R_* */
    uint8_t rlen;              /* BR__R_INLINE: bytes in r.buf */
    uint16_t tflags;           /* BR__TF_* */
    union {
        _Alignas(8) unsigned char buf[BR__INLINE_RESULT];
        struct {
            void *p;
            size_t len;
        } heap;
        struct {
            void *p;
            void (*dtor)(void *p);
        } ptr;
    } r;

    br_task task;
    /* The first done-callback needs no allocation (br_map relies on it). */
    br_done_fn cb0_fn;
    void *cb0_arg;
};

_Static_assert(sizeof(struct br_future) == 128, "a future block is two cache lines");

/* The failure message, or NULL. */
static inline const char *br__future_msg(const br_future *f) {
    if (f->rkind == BR__R_MSG)
        return (const char *)f->r.buf;
    if (f->rkind == BR__R_MSGHEAP)
        return f->r.heap.p;
    return NULL;
}

static inline bool br__fs_done(uint32_t s) {
    uint32_t st = s & BR__FS_MASK;
    return st == BR__FS_FINISHED || st == BR__FS_CANCELLED;
}

static inline bool br__future_ok(const br_future *f) {
    return f != NULL && f->magic == BR__FUTURE_MAGIC;
}

/* Wakes waiters, runs watchers and callbacks of a future that just became done and had
 * BR__FF_LISTENERS. temp_ref: hold a reference of our own while callbacks run (the
 * caller's may be dropped by one of them). */
void br__future_notify(br_future *f, bool temp_ref);
/* Blocks until f is done or the deadline: 0 or BR_ETIMEDOUT (f must be live). */
int br__future_wait_done(br_future *f, int64_t deadline);
/* Frees f (its last reference is gone). */
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

/* Drops the result or message (the caller owns the completion): rkind becomes NONE. */
void br__result_clear(br_future *f);
/* Stores a copy of the failure message (NULL: none), after dropping what r held. An
 * allocation failure keeps what fits inline, truncated. */
void br__msg_set(br_future *f, const char *msg, size_t len);

/* --- the block allocator (future.c per thread, blocks.c shared) --------------------- */

/* Blocks per chain moved between a thread's cache and the shared layer. */
enum { BR__BLOCK_BATCH = 64 };

/* A chain of free blocks (linked through u.cache_next, *n of them, at least one), or
 * NULL if out of memory. Their bodies are poisoned under ASan. */
br_future *br__blocks_get(uint32_t *n);
/* Takes back a chain of n free blocks. */
void br__blocks_put(br_future *chain, uint32_t n);
/* Takes the shared layer's lock, and releases it (fork handlers). */
void br__blocks_lock(void);
void br__blocks_unlock(void);

/* Tests: a snapshot of the shared layer. */
struct br__blocks_stats {
    size_t slabs;       /* slabs with memory (carved from, or fully free and kept) */
    size_t empty;       /* fully free slabs kept for reuse */
    size_t bare;        /* slabs whose memory went back to the kernel, kept as address space */
    size_t free_blocks; /* free blocks in the shared layer */
    size_t slab_blocks; /* blocks per slab */
};
void br__blocks_stats(struct br__blocks_stats *st);

/* Tests: consumers blocked in br_as_completed_next on `it` (as_completed.c). */
size_t br__as_completed_blocked(br_as_completed *it);

#endif
