/* process/mp_region.h: a growable shared region with a robust lock and an allocator,
 * for the shared dict and list (mp_shared.c); and the process-shared lock wrapper that
 * the Value and Array (mp_value.c) use too. Internal to the process layer.
 *
 * Design (the rules a change must keep):
 *
 * One memfd (br__shm_fd) holds everything. Its first BR__MPR_HDR bytes are the header
 * (the lock, the sizes, the allocator's free lists, four words for the kind that uses
 * it); the rest is the heap. Each process maps it twice: the header page once, at a
 * fixed address for the handle's life (the lock never moves: glibc links a held robust
 * mutex into its thread's robust list by address), and the whole file, `mapped` bytes,
 * which it maps again, larger, when it finds h->size grown. Everything inside is linked
 * by offsets from the start of the file, never by pointers.
 *
 * Locking: every read and write of the header and heap happens with the lock held
 * (br__mpr_lock .. br__mpr_unlock). br__mpr_lock also brings this process's mapping up
 * to h->size, so a pointer into the heap is valid until the next br__mpr_alloc (which
 * may grow and remap) or the unlock: take offsets, not pointers, across an allocation.
 *
 * Growth: br__mpr_alloc, finding no free block and no room below h->size, enlarges the
 * file (ftruncate, then posix_fallocate so that the pages exist: running out of memory
 * is BR_ENOMEM here rather than SIGBUS later), maps it, and only then publishes the new
 * h->size. The file never shrinks.
 *
 * Crashes: a process may die (SIGKILL) at any instruction, lock held. The rules that keep
 * the region sound whatever the instruction:
 *   - every change is prepared in memory nothing refers to yet (a fresh or free block,
 *     or the file past h->size), then made visible with ONE aligned 8-byte store,
 *     BR__MPR_PUBLISH (a compiler barrier on each side keeps the preparation before it
 *     and the freeing after it). Then the old data is freed. Dying before the store:
 * nothing happened; after it: the operation happened. Either way at worst one block is
 * leaked (never reused, never corrupt).
 *   - the allocator follows the same rule: a pop publishes the list head's next, a push
 *     writes the block's next and then publishes the head, the bump pointer is published
 *     after the block header is written.
 *   - counters that can be recomputed (a dict's len) may be left stale by a crash. When
 *     the lock comes back EOWNERDEAD, br__mpr_lock sets h->dirty, marks the mutex
 *     consistent, and runs the repair: the allocator's own checks (bounds, free lists)
 *     and the kind's repair function (recount; drop what fails a check), then clears
 *     dirty. A crash during the repair leaves dirty set, so the next locker repairs again
 *     (a repair is idempotent).
 */
#ifndef BRAID_PROCESS_MP_REGION_H
#define BRAID_PROCESS_MP_REGION_H

#include "core/lib.h"

#include <pthread.h>
#include <stdint.h>

/* --- the lock ----------------------------------------------------------------------
 *
 * The platform's robust process-shared mutex (platform.h, "robust": the one under
 * br_mp_lock), behind the calls the region and the Value/Array need. A taken lock is
 * spun for (the parker's budget) before the caller sleeps in the kernel. */
typedef struct br__mplock {
    pthread_mutex_t m;
} br__mplock;

/* Initialises a lock in shared memory. 0 or a negative errno. */
int br__mplock_init(br__mplock *l);
/* Takes the lock by deadline (absolute monotonic ns, BR_FOREVER, BR_NOWAIT).
 * 0; BR__MPLOCK_OWNERDEAD: taken, but its last owner died holding it (the caller
 * repairs what it protects, then calls br__mplock_consistent); BR_ETIMEDOUT; BR_EBROKEN
 * (the lock was left unrecoverable); BR_EDEADLK. */
#define BR__MPLOCK_OWNERDEAD 1
int br__mplock_lock(br__mplock *l, int64_t deadline);
void br__mplock_consistent(br__mplock *l);
void br__mplock_unlock(br__mplock *l);

/* --- the region ----------------------------------------------------------------------- */

#define BR__MPR_HDR 4096
#define BR__MPR_NCLASS 160
/* The one store that makes a change visible: the compiler may move no store across it,
 * either way (a crash must see the preparation before it, and the freeing of the old
 * block after it). All of it runs under the lock, so no hardware fence is needed: a
 * dead process's retired stores are all there for the next locker. */
#define BR__MPR_PUBLISH(p, v)                                                              \
    do {                                                                                   \
        __atomic_signal_fence(__ATOMIC_SEQ_CST);                                           \
        __atomic_store_n((p), (v), __ATOMIC_RELAXED);                                      \
        __atomic_signal_fence(__ATOMIC_SEQ_CST);                                           \
    } while (0)

typedef struct br__mpr_hdr {
    uint64_t magic;
    uint32_t kind;
    uint32_t dirty; /* a repair is due (an owner died) */
    br__mplock lock;
    uint64_t size;                 /* the file's size, as far as anyone may map it */
    uint64_t top;                  /* the heap's bump pointer: [top, size) is unused */
    uint64_t user[4];              /* the kind's words */
    uint64_t free[BR__MPR_NCLASS]; /* a free list of blocks per size class */
} br__mpr_hdr;

typedef struct br__mpr {
    br__mpr_hdr *h;      /* the header page, mapped for the handle's life */
    unsigned char *base; /* the whole file, mapped bytes */
    size_t mapped;
    int fd;
} br__mpr;

/* A kind's repair, with the lock held and the mapping current: fix or drop whatever of
 * its structures fails a check (br__mpr_valid says whether an offset is a live-looking
 * block), and recompute its counters. */
typedef void (*br__mpr_repair_fn)(br__mpr *r);

/* A new region of `kind` (nonzero), at least `initial` bytes. 0, BR_ENOMEM, BR_EMFILE,
 * BR_ENFILE, -errno. */
int br__mpr_new(br__mpr *r, uint32_t kind, size_t initial, const char *label);
/* Maps the region behind fd (duplicated), checking it is one of `kind`. 0, BR_EINVAL,
 * BR_ENOMEM, -errno. */
int br__mpr_attach(br__mpr *r, int fd, uint32_t kind);
/* Unmaps and closes this process's view. Safe on a zeroed region with fd -1. */
void br__mpr_close(br__mpr *r);

/* Locks, repairs if due, brings the mapping up to date. 0, BR_ENOMEM (a remap failed:
 * the lock is released again), BR_EBROKEN. */
int br__mpr_lock(br__mpr *r, br__mpr_repair_fn repair);
void br__mpr_unlock(br__mpr *r);

/* A block of at least n bytes; *off is the offset of its first usable byte (8-aligned).
 * May grow the region and remap (pointers into the heap die). 0 or BR_ENOMEM. */
int br__mpr_alloc(br__mpr *r, size_t n, uint64_t *off);
/* Gives back a block from br__mpr_alloc. */
void br__mpr_free(br__mpr *r, uint64_t off);
/* Usable bytes of the block at off. */
size_t br__mpr_block_size(br__mpr *r, uint64_t off);
/* True if off looks like a block: in the heap, aligned, a valid block header, the whole
 * block below the top, and at least `need` usable bytes. For repairs. */
bool br__mpr_valid(br__mpr *r, uint64_t off, uint64_t need);

/* The region under a dict's or a list's handle (mp_shared.c), for the tests. */
struct br_mp_dict;
struct br_mp_list;
br__mpr *br__mp_dict_region(struct br_mp_dict *d);
br__mpr *br__mp_list_region(struct br_mp_list *l);

static inline void *br__mpr_at(br__mpr *r, uint64_t off) {
    return r->base + off;
}

#endif
