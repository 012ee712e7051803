/* process/shm.h: shared mappings, for the process layer's files (never installed).
 *
 * Every object the process layer shares between processes (process-shared locks, the
 * cross-process queue's ring, a pool worker's channel, the shared dict) lives in a
 * br__shm: memory from br__shm_fd (platform/platform.h: anonymous, freed by the kernel
 * with its last user, so a crash leaves nothing behind) mapped MAP_SHARED.
 *
 * Rules for what goes in one:
 *   - no pointers: each process may map it at another address; link by offsets;
 *   - futex words are waited on and woken with shared = true (no private flag);
 *   - a forked child inherits the mapping at the same address (and the descriptor);
 *     a spawned child gets the descriptor (inherited or passed) and maps it with
 *     br__shm_attach;
 *   - whoever maps it unmaps it with br__shm_close; the memory lives on while any
 *     process still maps it or holds its descriptor.
 */
#ifndef BRAID_PROCESS_SHM_H
#define BRAID_PROCESS_SHM_H

#include "core/lib.h"

#include <stddef.h>

typedef struct br__shm {
    void *base;  /* the mapping, size bytes */
    size_t size;
    int fd;      /* the descriptor (close-on-exec), or -1 once dropped */
} br__shm;

/* Creates and maps size (> 0) zero-filled bytes; label names it in /proc/<pid>/fd.
 * 0, BR_EINVAL (s NULL, size 0), BR_ENOMEM (the allocation seam, or mmap), BR_EMFILE,
 * BR_ENFILE, or another -errno. On error *s is {NULL, 0, -1}. */
int br__shm_new(br__shm *s, size_t size, const char *label);

/* Maps the object behind fd (size bytes, as its creator made it) in this process: a
 * spawned child's side. Takes a duplicate of fd (the caller keeps its own). 0,
 * BR_EINVAL, BR_ENOMEM, or another -errno. */
int br__shm_attach(br__shm *s, int fd, size_t size);

/* Closes the descriptor but keeps the mapping (when nothing needs to be passed on: a
 * forked child inherits the mapping anyway, and the descriptor costs a slot). */
void br__shm_drop_fd(br__shm *s);

/* Unmaps and closes; *s becomes {NULL, 0, -1}. Safe on a zeroed or closed br__shm
 * whose fd is -1. */
void br__shm_close(br__shm *s);

#endif
