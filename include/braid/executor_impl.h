/* braid/executor_impl.h: writing an executor. The extension API, version 2.
 *
 * braid's executors (the thread pool; later the process pool, MPI, the event loop) are
 * built on this header, and so can yours: an executor written against it works with
 * br_submit*, br_map*, br_executor_shutdown/free, br_parallel_for, br_wait and
 * br_as_completed like the built-in ones. docs/futures.md ("Writing an executor")
 * walks through one; tests/executor/mini_executor.h is a complete small example.
 *
 * Versioning. This interface may change between minor versions of braid before 1.0;
 * BR_EXECUTOR_IMPL_VERSION says which one a program was built against, and
 * br_executor_init refuses a vtable built for one it can't read (BR_ENOTSUP) instead
 * of misreading it. A version that only appends optional fields keeps accepting the
 * older ones (version 2 appended submit_batch, version 3 map_chunksize; a version-1 or
 * version-2 vtable still works). Code that
 * only submits and waits needs none of this: it uses braid/executor.h.
 *
 * The shape:
 *
 *   struct my_pool { br_executor base; ... };          base first
 *   static const br_executor_vt my_vt = {.kind = "mine", .submit = my_submit, ...};
 *   br_executor_init(&p->base, &my_vt);                before handing &p->base out
 *
 * The generic layer validates every call, takes a future+task block, fills in the task
 * (function, argument, deadline) and hands it to vt->submit WITH ONE REFERENCE on its
 * future. The executor queues the task (br_task_link gives it an intrusive link) and
 * gives that reference up exactly once, by one of:
 *
 *   br_task_run(t)              on a worker: begin + call + finish, below; or
 *   br_task_begin(t) ... br_task_finish(t, rc)
 *                               the same in two steps, when the function runs
 *                               elsewhere or in pieces (begin here; call it, or ship
 *                               br_task_function(t) and br_task_arg(t) to another
 *                               process and store what comes back with
 *                               br_task_return* / br_task_fail; then finish here);
 *   br_task_abandon(t, code)    for a task that will never run (shutdown with
 *                               cancel_futures: BR_ECANCELED; a broken pool:
 *                               BR_EBROKEN).
 *
 * If vt->submit fails it must not have queued the task: the caller keeps the
 * reference, and nothing runs. All of these may be called from any thread; a task is
 * the executor's from submit until it gives the reference up.
 */
#ifndef BRAID_EXECUTOR_IMPL_H
#define BRAID_EXECUTOR_IMPL_H

#include "braid/executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version 2 appended vt->submit_batch, version 3 vt->map_chunksize. A vtable built
 * against an older version is the same struct without the later fields, so
 * br_executor_init still accepts versions 1 and 2 and never reads the fields such an
 * executor lacks (br_submit_batch and br_map then loop over vt->submit; br_map's
 * default chunksize is 1). */
#define BR_EXECUTOR_IMPL_VERSION 3

typedef struct br_executor_vt {
    /* "thread", "process", ...: what br_executor_kind returns. Required. */
    const char *kind;
    /* true if tasks run in this process: pointer results (br_task_return_ptr) and
     * borrowed arguments are allowed. false: every argument is copied at submit. */
    bool in_process;
    /* Queues t. `call` is the submission (flags, submit_deadline). 0, or BR_ESHUTDOWN,
     * BR_EBROKEN, BR_ETIMEDOUT (no room by call->submit_deadline, or BR_CALL_NOWAIT),
     * BR_ECANCELED (only: the calling coroutine was cancelled while waiting for room),
     * BR_ENOMEM: on error t was not queued. Required. */
    int (*submit)(br_executor *ex, br_task *t, const br_call *call);
    /* Optional: queues tasks[0..n) (n >= 2) as one unit that runs them in order (the
     * chunks of br_map); on success the executor owns one reference on each task and
     * gives each up once, as above; on error none was queued. The array is read during
     * the call only. NULL: br_map submits each input on its own. In-process executors
     * can use br_executor_chunk_runner; one that crosses a process boundary packs the
     * chunk into one message. */
    int (*submit_chunk)(br_executor *ex, br_task *const tasks[], size_t n,
                        const br_call *call);
    /* Executor.shutdown (braid/executor.h has the contract). Called again is fine.
     * Required. */
    int (*shutdown)(br_executor *ex, bool wait, bool cancel_futures);
    /* Frees the executor; called once, after shutdown(wait=true) returned 0. Required. */
    void (*destroy)(br_executor *ex);
    /* The worker count (> 0). Required. */
    int (*max_workers)(const br_executor *ex);
    /* Optional: br_parallel_for. NULL: BR_ENOTSUP. */
    int (*parallel_for)(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                        br_range_fn fn, void *ctx);
    /* Version 2. Optional: queues tasks[0..n) (n >= 1) in index order, as n calls of
     * vt->submit with `call` in a row would, with one wake-up where it can
     * (br_submit_batch, and br_map's inputs). Queues a prefix: on return *queued = k, and
     * tasks[0..k) are the executor's (one reference each, given up once, as above) while
     * tasks[k..n) were not queued (the caller keeps theirs). 0 with k == n, or submit's
     * codes with k < n (k should be 0 whenever nothing was queued yet, e.g. the executor
     * was shut down at the call). The array is read during the call only. NULL: the generic
     * layer calls vt->submit for each task. */
    int (*submit_batch)(br_executor *ex, br_task *const tasks[], size_t n,
                        const br_call *call, size_t *queued);
    /* Version 3. Optional: br_map's chunksize for `count` inputs of `size` bytes when
     * the caller leaves br_map_opts.chunksize at 0 (for an executor whose messages cost
     * more than its tasks: the MPI executor answers Pool.map's
     * ceil(count / (4 x workers))). 0 or 1: one input per task. NULL: 1, as Python's
     * Executor.map. Only read when submit_chunk is set. */
    size_t (*map_chunksize)(const br_executor *ex, size_t count, size_t size);
    /* More fields may be added with a new BR_EXECUTOR_IMPL_VERSION. */
} br_executor_vt;

/* The head of every executor. Set by br_executor_init; don't touch the fields. */
struct br_executor {
    const br_executor_vt *vt;
    uint32_t magic;
    uint32_t version;
};

/* Makes ex a live executor with vtable vt (which must outlive it). Use the macro,
 * which passes the version this program was built against. 0, BR_EINVAL (ex or vt
 * NULL, or a required operation missing), BR_ENOTSUP (built for a version this braid
 * can't read: 0, or newer than BR_EXECUTOR_IMPL_VERSION). Versions 1 to 3 are
 * accepted: only the fields of the version given are read. */
BR_API int br_executor_init_version(br_executor *ex, const br_executor_vt *vt,
                                    unsigned version);
#define br_executor_init(ex, vt) br_executor_init_version((ex), (vt), BR_EXECUTOR_IMPL_VERSION)

/* A vt->submit_chunk for in-process executors: one runner task, submitted through
 * vt->submit, runs tasks[0..n) in order on whichever worker takes it. Each task keeps
 * its own outcome, deadline and cancel; a cancel request on the runner (shutdown with
 * cancel_futures) reaches the running task and drops those not started, and if the
 * runner itself never runs (abandoned), its tasks are abandoned with the same code. */
BR_API int br_executor_chunk_runner(br_executor *ex, br_task *const tasks[], size_t n,
                                    const br_call *call);

/* --- tasks, from the executor's side ----------------------------------------------- */

/* The task's intrusive link: the executor's to use while it owns t. */
BR_API br_task **br_task_link(br_task *t);
/* The task's future (borrowed: the executor's reference keeps it alive). */
BR_API br_future *br_task_future(br_task *t);
/* The task's function, for an executor that runs it somewhere else. */
BR_API br_task_fn br_task_function(const br_task *t);

/* The claim: PENDING -> RUNNING. true: call the function (br_task_call, or elsewhere)
 * and end with br_task_finish. false: the task was cancelled while queued, or its
 * deadline passed (its future now fails with BR_ETIMEDOUT); either way the reference
 * is gone and t must not be touched again. */
BR_API bool br_task_begin(br_task *t);
/* Calls the function on this thread; returns its return value. Only between begin and
 * finish. */
BR_API int br_task_call(br_task *t);
/* Ends a begun task whose function returned rc: the future's outcome follows
 * braid/task.h's table, waiters wake and callbacks run on this thread, and the
 * reference is given up. Returns the code the future ended with. BR_EINVAL (misuse) if
 * t isn't begun. */
BR_API int br_task_finish(br_task *t, int rc);
/* begin + call + finish. Returns the final code, or BR_ECANCELED / BR_ETIMEDOUT for a
 * task that didn't run. */
BR_API int br_task_run(br_task *t);
/* Completes a task that will never run with code (< 0; BR_ECANCELED makes its future
 * CANCELLED) and gives the reference up. A task no longer pending (cancelled meanwhile)
 * only loses the reference. */
BR_API void br_task_abandon(br_task *t, int code);

#ifdef __cplusplus
}
#endif
#endif
