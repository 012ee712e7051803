/* process/pool.h: the process pool's engine, for process/mp_pool.c (never installed).
 * The public faces are in braid/processpool.h. */
#ifndef BRAID_PROCESS_POOL_H
#define BRAID_PROCESS_POOL_H

#include "braid/processpool.h"
#include "core/lib.h"

/* Submits fn over count inputs of size bytes (args + i*size, copied), chunksize inputs
 * to a message; futs[i] is input i's future (yours). 0, or the code of the first
 * submit that failed: the inputs from it on have futs[i] NULL (earlier ones were
 * queued). BR_EINVAL (not a process pool, fn NULL...), BR_ESHUTDOWN, BR_EBROKEN,
 * BR_ENOMEM. */
int br__processpool_submit_chunked(br_executor *ex, br_task_fn fn, const void *args,
                                   size_t count, size_t size, size_t chunksize,
                                   br_future **futs);

/* A pool worker's main, as the task its process runs (under every start method). */
int br__pool_worker_task(br_task *t);

#endif
