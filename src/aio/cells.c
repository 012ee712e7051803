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
 * Slabs (core/slab.c, whose notes say more). Each class is a class of core's slab
 * blocks: 2 MiB slabs, mapped aligned and marked MADV_HUGEPAGE, so that where
 * transparent huge pages are on one fault maps a slab's 4,095 small cells instead of
 * 512 faults of 4 KiB; cells carved in address order, a freed cell the next one taken
 * (LIFO: the warmest first). So a loop whose tasks come and go reuses warm cells and
 * touches fresh memory only while the number alive grows. A class keeps one empty
 * slab (warm, for the next burst) and unmaps any further one at once; br__cells_fini
 * unmaps the rest with the loop.
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

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  define CELLS_MALLOC 1
#endif

const size_t br__cell_size[BR__CELL_CLASSES] = {384, BR__CELL_SMALL, 768, 1024};
#define cell_size br__cell_size

#ifndef CELLS_MALLOC

/* A class of cells is a class of core/slab.c's blocks. */
void *br__cells_get(br__cells *cs, int cls) { return br__slab_get(&cs->cls[cls], cell_size[cls]); }

void br__cells_put(br__cells *cs, int cls, void *p) { br__slab_put(&cs->cls[cls], p); }

void br__cells_put_foreign(br__cells *cs, int cls, void *p) {
    (void)cs;
    (void)cls;
    (void)p; /* its slab goes with br__cells_fini */
}

size_t br__cells_slabs(const br__cells *cs, int cls) { return br__slab_count(&cs->cls[cls]); }

size_t br__cells_per_slab(int cls) { return br__slab_blocks(cell_size[cls]); }

void br__cells_fini(br__cells *cs) {
    for (int i = 0; i < BR__CELL_CLASSES; i++)
        br__slab_fini(&cs->cls[i]);
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
