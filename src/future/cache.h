/* future/cache.h: the fast paths of the per-thread block cache (cache.c), inlined into
 * the future layer's allocating and freeing paths. For src/future/ only.
 *
 * Each thread keeps two lists of free blocks: `fl`, the blocks it freed (up to BATCH -
 * 1, newest first, so a thread that allocates right after freeing gets a block still
 * in its cache), and `al`, a chain it took from the shared layer (blocks.c) for
 * allocating. Alloc pops fl, then al, then takes a chain from the shared layer. Free
 * pushes on fl; when fl reaches BATCH it becomes al if al is empty, and otherwise goes
 * back to the shared layer as one chain. So a thread that only frees (a worker
 * completing fire-and-forget tasks) and a thread that only allocates (the submitter)
 * trade whole chains through one short lock per chain, and the common path takes no
 * lock. A thread's lists go back to the shared layer when it exits. Under ASan the
 * cached blocks are poisoned except their first word (the link) and magic.
 */
#ifndef BRAID_FUTURE_CACHE_H
#define BRAID_FUTURE_CACHE_H

#include "future/private.h"

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  include <sanitizer/asan_interface.h>
#  define BR__UNPOISON_BODY(f)                                                        \
      ASAN_UNPOISON_MEMORY_REGION((char *)(f) + offsetof(br_future, st),             \
                                  sizeof(br_future) - offsetof(br_future, st))
#  define BR__POISON_BODY(f)                                                          \
      ASAN_POISON_MEMORY_REGION((char *)(f) + offsetof(br_future, st),               \
                                sizeof(br_future) - offsetof(br_future, st))
#else
#  define BR__UNPOISON_BODY(f) ((void)(f))
#  define BR__POISON_BODY(f) ((void)(f))
#endif

typedef struct br__fcache {
    br_future *fl;  /* blocks this thread freed, up to BR__BLOCK_BATCH - 1 */
    br_future *al;  /* a chain from the shared layer, for allocating */
    uint32_t nfl, nal;
    uint8_t state;  /* 0 not registered for thread exit, 1 registered, 2 exiting */
} br__fcache;

extern BR__TLS br__fcache br__tcache;

/* The slow paths (cache.c): the shared layer, and registration for thread exit. */
br_future *br__cache_get_slow(br__fcache *c);
void br__cache_put_slow(br__fcache *c, br_future *f);
void br__cache_flush_fl(br__fcache *c);

static inline br_future *br__block_get(void) {
    br__fcache *c = &br__tcache;
    br_future *f = c->fl;
    if (BR__LIKELY(f != NULL)) {
        c->fl = f->u.cache_next;
        c->nfl--;
        BR__UNPOISON_BODY(f);
        return f;
    }
    f = c->al;
    if (BR__LIKELY(f != NULL)) {
        c->al = f->u.cache_next;
        c->nal--;
        BR__UNPOISON_BODY(f);
        return f;
    }
    return br__cache_get_slow(c);
}

static inline void br__block_put(br_future *f) {
    br__fcache *c = &br__tcache;
    BR__POISON_BODY(f);
    if (BR__UNLIKELY(c->state != 1)) {
        br__cache_put_slow(c, f);
        return;
    }
    f->u.cache_next = c->fl;
    c->fl = f;
    if (BR__UNLIKELY(++c->nfl == BR__BLOCK_BATCH))
        br__cache_flush_fl(c);
}

/* A pending future with refs references and everything cleared (no task function, no
 * argument, deadline BR_FOREVER). NULL if out of memory. */
static inline br_future *br__future_alloc(uint32_t refs) {
    br_future *f = br__block_get();
    if (BR__UNLIKELY(f == NULL))
        return NULL;
    f->u.lst = NULL;
    f->magic = BR__FUTURE_MAGIC;
    atomic_init(&f->st, BR__FS_PENDING);
    atomic_init(&f->refs, refs);
    atomic_init(&f->lock.word, 0);
    f->code = 0;
    f->rkind = BR__R_NONE;
    f->rlen = 0;
    f->tflags = 0;
    f->task.next = NULL;
    f->task.fn = NULL;
    f->task.a.ref.ptr = NULL;
    f->task.a.ref.len = 0;
    f->task.deadline = BR_FOREVER;
    f->task.parent = NULL;
    f->cb0_fn = NULL;
    f->cb0_arg = NULL;
    return f;
}

/* Gives back a block that br__future_alloc handed out and that never became a future
 * anyone saw. */
static inline void br__future_unalloc(br_future *f) {
    f->magic = BR__FUTURE_DEAD;
    br__block_put(f);
}

#endif
