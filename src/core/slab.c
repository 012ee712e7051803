/* core/slab.c: classes of fixed-size blocks carved from 2 MiB slabs, for one thread
 * (no lock). The loop's task cells (aio/cells.c) and the park memory of shared-stack
 * coroutines (core/waiter.c) are made of them. The contract is in core/lib.h ("slabs").
 *
 * Design notes.
 *
 * A slab is SLAB bytes (2 MiB, one huge page), mapped SLAB-aligned and marked
 * MADV_HUGEPAGE (br__map_aligned): where transparent huge pages are on ("always" or
 * "madvise") one fault maps a slab's blocks instead of 512 faults of 4 KiB (a 2 MiB
 * fault cost 0.25-1 us per 4 KiB of it on the AMD EPYC guest against ~10-20 us for a
 * 4 KiB one). The slab of a block is its address rounded down; slot 0 holds the slab's
 * header, so the smallest block is the header's size rounded up (64 bytes). Blocks are
 * carved in address order; a freed block goes on its slab's free list (LIFO: the
 * warmest first) and a slab with a free or uncarved block is on its class's `avail`
 * list, the slab a block was last freed into first. So a user whose blocks come and go
 * reuses warm ones and touches fresh memory only while the number in use grows.
 *
 * Giving memory back. A slab whose blocks are all free again is empty; a class keeps
 * KEEP empty slabs (warm, for the next burst) and unmaps any further one at once. So
 * the memory a class holds beyond its blocks in use is at most KEEP slabs plus the
 * free blocks of slabs still in use. br__slab_fini unmaps every slab (its owner knows
 * none is in use); br__slab_fini_unused only the empty ones, and forgets the others,
 * whose blocks will never be given back (a thread that ended with coroutines bound to
 * it still parked: what they linked must stay valid memory).
 *
 * Mapping a slab counts as one allocation of the seam (br__alloc_should_fail), so the
 * fault-injection tests reach its failure (NULL).
 */
#include "core/lib.h"

#include <sys/mman.h>

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  include <sanitizer/asan_interface.h>
#  define SLAB_UNPOISON(s) ASAN_UNPOISON_MEMORY_REGION((s), SLAB)
#else
#  define SLAB_UNPOISON(s) ((void)(s))
#endif

enum { SLAB = 2 * 1024 * 1024, KEEP = 1 };

struct br__slab {
    struct br__slab *next, *prev;   /* on its class's avail list */
    struct br__slab *anext, *aprev; /* on its class's list of all slabs */
    void *free;                     /* freed blocks, each holding the next one's address */
    uint32_t live, carved, cap;
    bool on_avail;
};
_Static_assert(sizeof(struct br__slab) <= BR__SLAB_MIN_BLOCK, "a slab's header fits slot 0");

typedef struct br__slab slab;

static slab *slab_of(void *p) { return (slab *)((uintptr_t)p & ~(uintptr_t)(SLAB - 1)); }

static void avail_unlink(br__slab_class *c, slab *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        c->avail = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->on_avail = false;
}

static void avail_push(br__slab_class *c, slab *s) {
    s->prev = NULL;
    s->next = c->avail;
    if (c->avail)
        c->avail->prev = s;
    c->avail = s;
    s->on_avail = true;
}

static void all_unlink(br__slab_class *c, slab *s) {
    if (s->aprev)
        s->aprev->anext = s->anext;
    else
        c->all = s->anext;
    if (s->anext)
        s->anext->aprev = s->aprev;
}

/* A user may poison its free blocks (park memory under ASan): the shadow must be clean
 * again before the range can be mapped anew. */
static void slab_unmap(slab *s) {
    SLAB_UNPOISON(s);
    munmap(s, SLAB);
}

/* A fresh SLAB-aligned slab, or NULL. */
static slab *slab_map(size_t block) {
    if (br__alloc_should_fail()) /* tests: the out-of-memory paths */
        return NULL;
    slab *s = br__map_aligned(SLAB);
    if (s == NULL)
        return NULL;
    s->cap = (uint32_t)(SLAB / block - 1); /* slot 0: this header */
    return s;
}

void *br__slab_get(br__slab_class *c, size_t block) {
    slab *s = c->avail;
    if (s == NULL) {
        s = slab_map(block);
        if (s == NULL)
            return NULL;
        avail_push(c, s);
        s->anext = c->all;
        if (c->all)
            c->all->aprev = s;
        c->all = s;
    }
    void *p;
    if (s->live++ == 0 && s->carved > 0)
        c->nempty--; /* a kept empty slab in use again */
    if (s->free) {
        p = s->free;
        s->free = *(void **)p;
    } else {
        p = (char *)s + (size_t)(++s->carved) * block;
    }
    if (s->free == NULL && s->carved == s->cap)
        avail_unlink(c, s);
    return p;
}

void br__slab_put(br__slab_class *c, void *p) {
    slab *s = slab_of(p);
    *(void **)p = s->free;
    s->free = p;
    if (!s->on_avail)
        avail_push(c, s);
    if (--s->live != 0)
        return;
    if (c->nempty < KEEP) {
        c->nempty++;
        return;
    }
    avail_unlink(c, s);
    all_unlink(c, s);
    slab_unmap(s);
}

size_t br__slab_live(const br__slab_class *c) {
    size_t n = 0;
    for (const slab *s = c->all; s; s = s->anext)
        n += s->live;
    return n;
}

size_t br__slab_count(const br__slab_class *c) {
    size_t n = 0;
    for (const slab *s = c->all; s; s = s->anext)
        n++;
    return n;
}

size_t br__slab_blocks(size_t block) { return SLAB / block - 1; }

void br__slab_fini(br__slab_class *c) {
    for (slab *s = c->all, *next; s; s = next) {
        next = s->anext;
        slab_unmap(s);
    }
    c->avail = c->all = NULL;
    c->nempty = 0;
}

size_t br__slab_fini_unused(br__slab_class *c) {
    size_t kept = 0;
    for (slab *s = c->all, *next; s; s = next) {
        next = s->anext;
        if (s->live == 0)
            slab_unmap(s);
        else
            kept++;
    }
    c->avail = c->all = NULL;
    c->nempty = 0;
    return kept;
}
