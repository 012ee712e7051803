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

enum { BR__R_NONE = 0, BR__R_INLINE, BR__R_HEAP, BR__R_PTR };
enum { BR__INLINE_RESULT = 32, BR__INLINE_MSG = 32 };

struct br__cb {
    struct br__cb *next;
    br_done_fn fn;
    void *arg;
};

struct br_future {
    /* Header: stays readable while the block sits in a free-list cache (ASan poisons
     * everything after it), so a stale handle finds BR__FUTURE_DEAD. */
    uint32_t magic;
    uint32_t batch_len;     /* cache: blocks in the chain this block heads */
    br_future *cache_next;  /* cache: the next free block */
    br_future *batch_next;  /* cache: the next chain in the global pool */

    _Atomic uint32_t st;    /* BR__FS_* | BR__FF_* */
    _Atomic uint32_t refs;
    br__wq wq;              /* blocked waiters; wq.lock also guards the two lists below */
    br__watcher *wat_head, *wat_tail;
    struct br__cb *cb_head, *cb_tail;
    struct br__cb cb0;      /* the first callback needs no allocation */
    bool cb0_used;

    /* The outcome. Written by whoever owns the completion (the claimer, or the task
     * while INTASK), read by anyone after an acquire load sees a done state. */
    uint8_t rkind;          /* BR__R_* */
    int32_t code;           /* 0, or the failure code (< 0) */
    size_t rlen;
    union {
        _Alignas(8) unsigned char buf[BR__INLINE_RESULT];
        void *heap;
        struct {
            void *p;
            void (*dtor)(void *p);
        } ptr;
    } r;
    char *msg;              /* NULL, mbuf, or a heap copy */
    char mbuf[BR__INLINE_MSG];

    br_task task;
};

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
 * others (wait.c). 0 or BR_ENOMEM. */
int br__future_dedupe(br_future *const fs[], size_t n, unsigned char *dup);

/* Result and message storage (the caller owns the completion). */
void br__result_clear(br_future *f);
void br__msg_clear(br_future *f);

#endif
