/* process/pool.h: the process pool's engine, for process/mp_pool.c (never installed).
 * The public faces are in braid/processpool.h. */
#ifndef BRAID_PROCESS_POOL_H
#define BRAID_PROCESS_POOL_H

#include "braid/processpool.h"
#include "core/lib.h"

/* A done future's outcome as it crosses back to the parent: 0 with its result's bytes,
 * or its failure code with *data its message (NUL included in *len) or NULL. */
int br__pool_outcome(br_future *f, const void **data, size_t *len);

/* A pool worker's main, as the task its process runs (under every start method). */
int br__pool_worker_task(br_task *t);

#endif
