/* executor/internal.h: the executor interface. Never installed.
 *
 * Every executor (the thread pool now; the process pool, MPI and the loop later) is a
 * struct whose first member is `struct br_executor` and whose vtable says how to queue
 * a task and how to shut down. The generic parts, br_submit*, br_map*,
 * br_executor_shutdown/free and br_parallel_for, dispatch through it.
 */
#ifndef BRAID_EXECUTOR_INTERNAL_H
#define BRAID_EXECUTOR_INTERNAL_H

#include "braid/executor.h"
#include "future/internal.h"

struct br__executor_vt {
    const char *kind; /* "thread" */
    bool in_process;  /* may pass pointers (br_task_return_ptr, zero-copy arguments) */
    /* Queues a prepared task (the executor now owns one reference on its future, see
     * future/internal.h). `call` is the original submission (for submit_deadline and
     * flags). Returns 0, or BR_ESHUTDOWN, BR_EBROKEN, BR_ETIMEDOUT (no room), BR_ENOMEM:
     * on error the task was not queued and the caller still owns the reference. */
    int (*submit)(br_executor *ex, br_task *t, const br_call *call);
    int (*shutdown)(br_executor *ex, bool wait, bool cancel_futures);
    /* Frees the executor; called after shutdown(wait=true) succeeded. */
    void (*destroy)(br_executor *ex);
    int (*max_workers)(const br_executor *ex);
    /* NULL: BR_ENOTSUP. */
    int (*parallel_for)(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                        br_range_fn fn, void *ctx);
};

struct br_executor {
    const struct br__executor_vt *vt;
    uint32_t magic; /* BR__EXECUTOR_MAGIC while alive */
};

#define BR__EXECUTOR_MAGIC 0x65786563u /* "exec" */
#define BR__EXECUTOR_DEAD 0xdeadec00u

/* True if ex looks like a live executor. */
static inline bool br__executor_ok(const br_executor *ex) {
    return ex != NULL && ex->magic == BR__EXECUTOR_MAGIC;
}

#endif
