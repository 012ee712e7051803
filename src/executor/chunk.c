/* The in-process chunk runner: vt->submit_chunk for executors whose workers share the
 * submitter's memory (braid/executor_impl.h, br_executor_chunk_runner). br_map hands
 * chunks to whatever vt->submit_chunk an executor has; this is the thread pool's.
 *
 * Design notes.
 *
 * A chunk is n prepared tasks, each with its own future (the map's inputs). One runner
 * task, submitted through vt->submit like any task, runs them in order: its argument is
 * a copy of the n task pointers (the runner's own argument copy, freed with its
 * future, so the caller's array is read during the call only). For each task it calls
 * br__task_run, so every task keeps its own outcome, deadline check and cancel; each
 * task's parent is the runner (br__task_set_parent), so a cancel request on the runner
 * (shutdown with cancel_futures) is seen by the running task too, and once the runner
 * is asked to stop it abandons the tasks it hasn't started (cancelled).
 *
 * Exactly-once. Each task's reference is given up exactly once: by the runner (run or
 * abandoned) if the runner ran, else by the runner's done-callback, which abandons
 * them all with the runner's own code (BR_ECANCELED for a runner the executor
 * cancelled: they end cancelled too). The runner ran iff its future finished with code
 * 0, and then it handled every task itself, so the callback does nothing. The callback
 * is added after the submit: if the runner is done by then, it runs at once on the
 * submitting thread; the first callback lives in the future's block, so adding it
 * can't fail.
 *
 * A task cancelled while the runner waits in the queue (br_map's timeout) is skipped by
 * br__task_run when its turn comes: the runner only looks at it.
 */
#include "executor/private.h"

#include <string.h>

/* The runner's copy of the task pointers. */
static size_t runner_tasks(br_task *runner, br_task ***out) {
    size_t len;
    br_task **tasks = (br_task **)(uintptr_t)br_task_arg(runner, &len);
    *out = tasks;
    return len / sizeof *tasks;
}

static int run_chunk(br_task *runner) {
    br_task **tasks;
    size_t n = runner_tasks(runner, &tasks);
    for (size_t i = 0; i < n; i++) {
        br_task *t = tasks[i];
        if (br_task_cancelled(runner)) {
            /* The executor asked the chunk to stop (shutdown with cancel_futures): the
             * tasks not started yet are cancelled, not run. */
            br__task_abandon(t, BR_ECANCELED);
            continue;
        }
        br__task_set_parent(t, runner); /* the task sees the chunk's cancellation */
        br__task_run(t);
    }
    return 0;
}

/* The runner's done-callback: if it never ran, nobody will run its tasks. */
static void runner_done(br_future *rf, void *arg) {
    (void)arg;
    if (br_future_state_of(rf) == BR_FUTURE_FINISHED && !br_future_failed(rf))
        return;
    int code = BR_ECANCELED;
    if (!br_future_cancelled(rf))
        br_future_exception(rf, BR_NOWAIT, &code, NULL);
    if (code >= 0)
        code = BR_ECANCELED;
    br_task **tasks;
    size_t n = runner_tasks(br__future_task(rf), &tasks);
    for (size_t i = 0; i < n; i++)
        br__task_abandon(tasks[i], code);
}

int br__chunk_runner_submit(br_executor *ex, br_task *const tasks[], size_t n,
                            const br_call *call) {
    (void)call;
    /* Two references: the executor's, and ours for the callback. The runner has no
     * deadline of its own: each task carries its own. */
    br_future *rf = br__task_prepare(run_chunk, tasks, n * sizeof *tasks,
                                     BR__ARG_COPY | BR__ARG_IN_PROCESS, BR_FOREVER, 2);
    if (rf == NULL)
        return BR_ENOMEM;
    br_call rc_call = {.fn = run_chunk, .arg = tasks, .len = n * sizeof *tasks,
                       .flags = call ? call->flags : 0,
                       .submit_deadline = call ? call->submit_deadline : 0};
    int rc = ex->vt->submit(ex, br__future_task(rf), &rc_call);
    if (rc != 0) {
        br_future_release(rf);
        br_future_release(rf);
        return rc;
    }
    (void)br_future_add_done_callback(rf, runner_done, NULL);
    br_future_release(rf);
    return 0;
}

int br_executor_chunk_runner(br_executor *ex, br_task *const tasks[], size_t n,
                             const br_call *call) {
    if (!br__executor_ok(ex) || (tasks == NULL && n > 0))
        return BR__MISUSE(BR_EINVAL, "br_executor_chunk_runner: bad executor or tasks");
    for (size_t i = 0; i < n; i++)
        if (tasks[i] == NULL)
            return BR__MISUSE(BR_EINVAL, "br_executor_chunk_runner: a NULL task");
    if (n == 0)
        return 0;
    return br__chunk_runner_submit(ex, tasks, n, call);
}
