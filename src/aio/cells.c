/* aio/cells.c: the loop's task cells, fixed-size blocks that hold a task's record, its
 * coroutine and (shared-stack tasks) the first bytes of its copied-out frames, and the
 * blocks its frames spill to when they outgrow that room.
 *
 * Design notes.
 *
 * Sizes (aio/loop.h). A task takes one 512-byte cell: its record (176 bytes), its
 * coroutine (160) and 176 bytes of room, which holds what a task suspended in a yield
 * copies out (144 bytes). Frames that outgrow the room take a cell of the smallest of
 * four classes that holds them (384, 512, 768, 1024 bytes: a sleep copies out 352, a
 * semaphore's wait 480), beyond that a heap block (aio/task.c's frames ops). So fresh
 * memory follows what tasks really copy out: the cell used to be 1 KiB for every
 * shared-stack task, 592 bytes of it reserved for frames that were mostly 144.
 *
 * Why. A task made and run to its first suspension used to take three or four heap
 * blocks (the record, the coroutine, the frames' copy) from malloc: on a guest where a
 * fresh 4 KiB page costs ~10 us to touch, 100,000 tasks alive at once paid ~17,000 page
 * faults, and glibc's _int_malloc spent a third of a burst sorting its bins. A cell is
 * one block for all of it, from a slab of the loop's own.
 *
 * Slabs. SLAB bytes (2 MiB, one huge page), mapped SLAB-aligned and marked
 * MADV_HUGEPAGE: where transparent huge pages are on ("always" or "madvise") one fault
 * maps a slab's 2,048 shared-stack cells instead of 512 faults of 4 KiB (a 2 MiB fault
 * cost 0.25-1 us per 4 KiB of it here against ~20 us for a 4 KiB one). The slab of a
 * cell is its address rounded down; slot 0 holds the slab's header. Cells are carved
 * in address order; a freed cell goes on its slab's free list (LIFO: the warmest first)
 * and a slab with a free or uncarved cell is on its class's `avail` list, the slab a
 * cell was last freed into first. So a loop whose tasks come and go reuses warm cells
 * and touches fresh memory only while the number alive grows.
 *
 * Giving memory back. A slab whose cells are all free again is empty; a class keeps
 * KEEP empty slabs (warm, for the next burst) and unmaps any further one at once. So
 * the memory a loop holds beyond its live tasks is at most KEEP slabs per class plus
 * the free cells of slabs still in use; br__cells_fini unmaps the rest with the loop.
 *
 * Threads. A loop's cells are its thread's: taken on the loop's thread (br__atask_start
 * there; a task made from another thread takes a plain heap record instead, so no lock
 * is needed) and given back on it, or in br_loop_free when no thread runs the loop. A
 * spilled frames block that must go back from another thread (task.c's frames ops: a
 * thread whose shared stack holds a suspended task of a loop it no longer runs) is
 * left in its slab until the loop's end (br__cells_put_foreign), a rare leak bounded by
 * the loop's life rather than a race with the thread running the loop.
 *
 * AddressSanitizer builds take every cell from br__malloc instead (as the future blocks
 * do), so that ASan sees each one. Mapping a slab counts as one allocation of the seam
 * (br__alloc_should_fail), so the fault-injection tests reach its failure (NULL).
 */
#include "aio/loop.h"

#include <string.h>
#include <sys/mman.h>

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  define CELLS_MALLOC 1
#endif

const size_t br__cell_size[BR__CELL_CLASSES] = {384, BR__CELL_SMALL, 768, 1024};
#define cell_size br__cell_size

#ifndef CELLS_MALLOC

enum { SLAB = 2 * 1024 * 1024, KEEP = 1 };

typedef struct cslab {
    struct cslab *next, *prev; /* on its class's avail list */
    struct cslab *anext, *aprev; /* on its class's list of all slabs */
    void *free;                /* freed cells, each holding the next one's address */
    uint32_t live, carved, cap;
    bool on_avail;
} cslab;

static cslab *slab_of(void *p) { return (cslab *)((uintptr_t)p & ~(uintptr_t)(SLAB - 1)); }

static void avail_unlink(br__cell_class *c, cslab *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        c->avail = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->on_avail = false;
}

static void avail_push(br__cell_class *c, cslab *s) {
    s->prev = NULL;
    s->next = c->avail;
    if (c->avail)
        c->avail->prev = s;
    c->avail = s;
    s->on_avail = true;
}

/* A fresh SLAB-aligned slab, or NULL. */
static cslab *slab_map(size_t cell) {
    if (br__alloc_should_fail()) /* tests: the out-of-memory paths */
        return NULL;
    cslab *s = br__map_aligned(SLAB, true);
    if (s == NULL)
        return NULL;
    s->cap = (uint32_t)(SLAB / cell - 1); /* slot 0: this header */
    return s;
}

void *br__cells_get(br__cells *cs, int cls) {
    br__cell_class *c = &cs->cls[cls];
    size_t cell = cell_size[cls];
    cslab *s = c->avail;
    if (s == NULL) {
        s = slab_map(cell);
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
        p = (char *)s + (size_t)(++s->carved) * cell;
    }
    if (s->free == NULL && s->carved == s->cap)
        avail_unlink(c, s);
    return p;
}

void br__cells_put(br__cells *cs, int cls, void *p) {
    br__cell_class *c = &cs->cls[cls];
    cslab *s = slab_of(p);
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
    if (s->aprev)
        s->aprev->anext = s->anext;
    else
        c->all = s->anext;
    if (s->anext)
        s->anext->aprev = s->aprev;
    munmap(s, SLAB);
}

void br__cells_put_foreign(br__cells *cs, int cls, void *p) {
    (void)cs;
    (void)cls;
    (void)p; /* its slab goes with br__cells_fini */
}

size_t br__cells_slabs(const br__cells *cs, int cls) {
    size_t n = 0;
    for (const cslab *s = cs->cls[cls].all; s; s = s->anext)
        n++;
    return n;
}

size_t br__cells_per_slab(int cls) { return SLAB / cell_size[cls] - 1; }

void br__cells_fini(br__cells *cs) {
    for (int i = 0; i < BR__CELL_CLASSES; i++) {
        br__cell_class *c = &cs->cls[i];
        for (cslab *s = c->all, *next; s; s = next) {
            next = s->anext;
            munmap(s, SLAB);
        }
        c->avail = c->all = NULL;
        c->nempty = 0;
    }
}

#else /* CELLS_MALLOC */

void *br__cells_get(br__cells *cs, int cls) {
    (void)cs;
    return br__aligned_alloc(16, cell_size[cls]);
}

void br__cells_put(br__cells *cs, int cls, void *p) {
    (void)cs;
    (void)cls;
    br__free(p);
}

void br__cells_put_foreign(br__cells *cs, int cls, void *p) { br__cells_put(cs, cls, p); }

void br__cells_fini(br__cells *cs) { (void)cs; }

size_t br__cells_slabs(const br__cells *cs, int cls) {
    (void)cs;
    (void)cls;
    return 0;
}

size_t br__cells_per_slab(int cls) {
    (void)cls;
    return 0;
}

#endif
