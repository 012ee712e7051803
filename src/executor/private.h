/* executor/private.h: the executor layer's own internals, for src/executor/ (the
 * generic layer and the built-in backends) and the tests. Never installed.
 *
 * Every executor is a struct whose first member is `br_executor`, with a vtable
 * (br_executor_vt): the public extension API, braid/executor_impl.h, is the contract,
 * and braid's own executors use it like anyone's. The generic parts (submit.c: br_submit*,
 * shutdown, free; map.c: br_map*; chunk.c: the in-process chunk runner) dispatch
 * through it; they reach the future layer through future/for_executors.h.
 */
#ifndef BRAID_EXECUTOR_PRIVATE_H
#define BRAID_EXECUTOR_PRIVATE_H

#include "braid/executor_impl.h"
#include "future/for_executors.h"

#define BR__EXECUTOR_MAGIC 0x65786563u /* "exec" */
#define BR__EXECUTOR_DEAD 0xdeadec00u

/* True if ex looks like a live executor: a debugging aid, not a guarantee (a freed
 * executor's memory may hold anything: braid/executor.h). */
static inline bool br__executor_ok(const br_executor *ex) {
    return ex != NULL && ex->magic == BR__EXECUTOR_MAGIC;
}

/* br_executor_chunk_runner, for braid's own in-process executors. */
int br__chunk_runner_submit(br_executor *ex, br_task *const tasks[], size_t n,
                            const br_call *call);

/* Tasks per backend call of br_submit_batch (a stack array in the caller). */
enum { BR__BATCH_SLICE = 256 };

/* Queues tasks[0..n) through vt->submit_batch, or a loop of vt->submit where the
 * executor has none (submit.c). Queues a prefix: *queued of them, in order; 0 when all
 * were queued, else the code of the first that wasn't. */
int br__executor_submit_tasks(br_executor *ex, br_task *const tasks[], size_t n,
                              const br_call *call, size_t *queued);

#endif
