/* braid/processpool.h: concurrent.futures.ProcessPoolExecutor and multiprocessing.Pool,
 * for C. Both faces run on one engine: N worker processes fed through shared memory.
 *
 *   ProcessPoolExecutor(max_workers, initializer=, max_tasks_per_child=, mp_context=)
 *                                    br_processpool_new(&ex, &(br_processpool_opts){...})
 *   then everything in braid/executor.h, unchanged: br_submit, br_submit_i64,
 *   br_submit_call, br_submit_batch, br_map_new (chunksize packs a chunk into one
 *   message), br_executor_shutdown, br_executor_free; and br_wait / br_as_completed
 *   over process-pool and thread-pool futures together.
 *
 *   Pool(processes, initializer, initargs, maxtasksperchild)
 *                                    br_mp_pool_new(&pool, &(br_mp_pool_opts){...})
 *   pool.apply(f, (x,))              br_mp_pool_apply(pool, f, &x, sizeof x, &fut)
 *   pool.apply_async(f, (x,), callback, error_callback)
 *                                    br_mp_pool_apply_async(pool, f, &x, sizeof x,
 *                                                           cb, err_cb, ctx, &fut)
 *   pool.map / starmap / map_async   br_mp_pool_map / br_mp_pool_map_async -> br_mp_result
 *   pool.imap / imap_unordered       br_mp_pool_imap / br_mp_pool_imap_unordered
 *                                    -> br_mp_iter (br_mp_iter_next)
 *   pool.close() / join() / terminate()
 *                                    br_mp_pool_close / br_mp_pool_join /
 *                                    br_mp_pool_terminate, then br_mp_pool_free
 *
 * One task, any executor: a task is the same br_task_fn as on the thread pool
 * (braid/task.h). It sees a copy of its argument bytes and returns its result as bytes;
 * br_task_return_ptr fails with BR_ENOTSUP (a pointer means nothing in the parent).
 * Arguments are copied at submit (the caller may reuse its buffer at once). Workers
 * start by the process layer's start methods (braid/process.h): under fork a task's
 * function pointer is passed as it is; under spawn it crosses once per worker as a
 * reference (its module and offset, or a br_register_fn name), and a function that
 * can't cross is BR_EINVAL at submit.
 *
 * Worker death. A worker that dies while it holds tasks (SIGKILL, a segfault, abort(),
 * the OOM killer) fails the one task it was running with BR_EWORKERDIED and a message
 * naming the worker and how it ended ("worker 12345 killed by signal 9"); the tasks it
 * had been handed but had not started go to another worker; a replacement starts and
 * the pool goes on. No call waits on a worker without watching that it is alive.
 *
 * Cancelling. A task is handed to a worker a little ahead of time (up to `prefetch`
 * tasks per worker): from then on it counts as running, so br_future_cancel refuses it
 * (as Python's call queue does) while br_future_request_cancel reaches it: the worker
 * skips it if it hasn't started, and a running one sees br_task_cancelled() turn true
 * (within a millisecond or so). With kill_on_cancel, a cancel request on a running task
 * kills its worker instead (the future is CANCELLED) and a replacement starts.
 * Deadlines (br_call.deadline) are checked by the worker as by the thread pool.
 * br_executor_shutdown with cancel_futures returns once every task still queued is
 * cancelled; those handed to a worker ahead of time are asked to stop, as running ones.
 *
 * The pool's own thread. Futures complete, and their done-callbacks run, on the pool's
 * manager thread in the submitting process: there br_executor_shutdown with wait is
 * BR_EDEADLK (the shutdown happens, the wait doesn't), as from a thread pool's worker.
 * A task can't reach its executor from a worker process: the handle is the parent's
 * (in a forked worker br_executor_shutdown on the copy does nothing and returns 0); a
 * task that wants the pool shut down asks the submitting process (a result, or shared
 * memory: braid/mp_sync.h, braid/mp_shared.h).
 */
#ifndef BRAID_PROCESSPOOL_H
#define BRAID_PROCESSPOOL_H

#include "braid/executor.h"
#include "braid/process.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a worker's death does to the pool. */
typedef enum br_worker_death {
    /* The task it was running fails with BR_EWORKERDIED, a replacement starts. */
    BR_WORKER_DEATH_REPLACE = 0,
    /* Python's BrokenProcessPool: the running task fails with BR_EWORKERDIED, every
     * other pending task with BR_EBROKEN, later submits return BR_EBROKEN. */
    BR_WORKER_DEATH_BREAK = 1
} br_worker_death;

typedef struct br_processpool_opts {
    /* 0: br_cpu_count(). */
    int max_workers;
    /* Runs once in each worker before its first task, as a task with the argument
     * bytes initarg[0..initarg_len) (copied at br_processpool_new); a failure (a
     * nonzero return, or the worker dying in it) breaks the pool (Python's
     * BrokenProcessPool): pending tasks fail with BR_EBROKEN and later submits return
     * BR_EBROKEN. */
    br_task_fn initializer;
    const void *initarg;
    size_t initarg_len;
    /* A worker leaves after this many tasks and a fresh one takes its place (it is
     * started before the old one leaves). 0: never. */
    int max_tasks_per_child;
    /* BR_START_FORK, BR_START_SPAWN or BR_START_FORKSERVER (braid/process.h);
     * BR_START_DEFAULT (zero): br_get_start_method(). spawn and forkserver need
     * br_process_main at the top of main (else BR_ESTATE). */
    br_start_method start_method;
    /* Tasks handed to each worker ahead of the one it runs. 0: adapts to the tasks'
     * length, about 250 us of work per worker, from 32 (tasks of 8 us or more) up to
     * 512 (quick ones). 1 keeps every queued task cancellable with br_future_cancel but
     * pays a round trip per task; any other value is kept as it is. */
    int prefetch;
    br_worker_death on_worker_death;
    /* A cancel request (br_future_request_cancel, or shutdown with cancel_futures) on a
     * running task kills its worker (the future is CANCELLED) instead of waiting for
     * the task to poll br_task_cancelled(). */
    bool kill_on_cancel;
    /* More fields may be added at any time; zero always keeps the default. */
} br_processpool_opts;

/* ProcessPoolExecutor. Starts the workers at once (on the pool's manager thread, which
 * forks them); under fork it returns only once they are forked, so a pool made before
 * the program starts threads has workers forked from a process that runs none of them
 * (a worker that replaces a dead one is forked later, while they run). Returns 0 (*out is yours: br_executor_free), BR_EINVAL (out NULL,
 * max_workers < 0, max_tasks_per_child < 0, prefetch < 0 or > 512, initarg NULL with
 * initarg_len > 0, an unknown start_method, under spawn or forkserver an initializer
 * that can't cross), BR_ESTATE (spawn or forkserver without br_process_main), BR_ENOMEM,
 * BR_EAGAIN (the manager thread couldn't start). A worker that can't be
 * forked later breaks the pool if none is left. br_executor_kind says "process". */
BR_API int br_processpool_new(br_executor **out, const br_processpool_opts *opts);

/* Pool.terminate for the executor face: no more submits (BR_ESHUTDOWN), tasks not
 * started are cancelled, running ones are cancelled and their workers killed at once;
 * returns when every worker is gone. Then br_executor_free. 0 or BR_EINVAL (not a
 * process pool). */
BR_API int br_processpool_terminate(br_executor *ex);

/* The pids of the live workers (tests, diagnostics): up to cap of them into pids;
 * returns how many there are (>= 0) or BR_EINVAL. */
BR_API int br_processpool_pids(br_executor *ex, int *pids, int cap);

/* --- multiprocessing.Pool ---------------------------------------------------------- */

typedef struct br_mp_pool br_mp_pool;

typedef struct br_mp_pool_opts {
    int processes;              /* 0: br_cpu_count() */
    br_task_fn initializer;     /* as br_processpool_opts */
    const void *initarg;
    size_t initarg_len;
    int max_tasks_per_child;    /* maxtasksperchild; 0: never */
    br_start_method start_method; /* as br_processpool_opts */
} br_mp_pool_opts;

/* Pool(). 0, or br_processpool_new's codes. *out is yours: br_mp_pool_free. */
BR_API int br_mp_pool_new(br_mp_pool **out, const br_mp_pool_opts *opts);
/* The pool's executor (borrowed): br_submit & co work on it too. */
BR_API br_executor *br_mp_pool_executor(br_mp_pool *p);

/* apply: runs fn(arg) and waits. Returns the task's code (0, or its failure); *out (if
 * not NULL) is its done future (yours: the result, or the failure's message). Also
 * BR_EINVAL, BR_ESTATE (the pool is closed), BR_EBROKEN, BR_ENOMEM. */
BR_API int br_mp_pool_apply(br_mp_pool *p, br_task_fn fn, const void *arg, size_t len,
                            br_future **out);

/* apply_async's callbacks: exactly one of them runs, once, on the pool's manager
 * thread (keep them short; Python runs them on the result-handler thread). The bytes
 * belong to the future. */
typedef void (*br_mp_callback)(const void *data, size_t len, void *ctx);
typedef void (*br_mp_error_callback)(int code, const char *msg, void *ctx);

/* apply_async: submits fn(arg); when it is done, callback(result) if it succeeded,
 * else error_callback(code, message) (a cancelled task counts as an error with
 * BR_ECANCELED); either may be NULL. *out (if not NULL) is the future (yours). 0,
 * BR_EINVAL, BR_ESTATE (closed), BR_EBROKEN, BR_ENOMEM: on error no callback runs. */
BR_API int br_mp_pool_apply_async(br_mp_pool *p, br_task_fn fn, const void *arg,
                                  size_t len, br_mp_callback callback,
                                  br_mp_error_callback error_callback, void *ctx,
                                  br_future **out);

/* map_async's AsyncResult: the results of fn over count inputs of size bytes each
 * (copied at the call), chunksize inputs to a task (0: Python's default,
 * ceil(count / (4 * processes)); more than count: one chunk). starmap is the same call
 * with a struct per input. A chunk of more than one input is one task and comes back
 * as one result, as Python's: its inputs run in order in one worker, and it stops at
 * its first failure (Python's chunk stops at its first exception), so the inputs after
 * that one in its chunk report BR_ECANCELED with the message "not run: an earlier input
 * of its chunk failed". A chunk that fails whole (its worker died: BR_EWORKERDIED; the
 * pool terminated: BR_ECANCELED) gives its code and message to each of its inputs. */
typedef struct br_mp_result br_mp_result;
BR_API int br_mp_pool_map_async(br_mp_result **out, br_mp_pool *p, br_task_fn fn,
                                const void *args, size_t count, size_t size,
                                size_t chunksize);
/* map: map_async + br_mp_result_get(BR_FOREVER). Returns what get returns; *out is
 * made whenever the inputs were submitted (yours: br_mp_result_free). */
BR_API int br_mp_pool_map(br_mp_result **out, br_mp_pool *p, br_task_fn fn,
                          const void *args, size_t count, size_t size, size_t chunksize);
/* AsyncResult.get(timeout): waits for every input; 0 if all succeeded, else the code of
 * the first failed input in input order (Python raises the first); BR_ETIMEDOUT. */
BR_API int br_mp_result_get(br_mp_result *r, int64_t deadline);
/* AsyncResult.ready() / successful() (successful: BR_ESTATE if not ready). */
BR_API bool br_mp_result_ready(br_mp_result *r);
BR_API int br_mp_result_successful(br_mp_result *r);
/* Input i's outcome once ready: 0 with its bytes (the result's until free), or its
 * failure code with *data its message (or NULL). BR_EINVAL if i >= count,
 * BR_ETIMEDOUT if not done yet. */
BR_API int br_mp_result_item(br_mp_result *r, size_t i, const void **data, size_t *len);
BR_API size_t br_mp_result_count(const br_mp_result *r);
/* Waits for what is still running and frees. */
BR_API void br_mp_result_free(br_mp_result *r);

/* imap (ordered: input order) and imap_unordered (completion order). Everything is
 * submitted at once, chunksize inputs to a task (0 means 1), chunks as in map_async;
 * imap_unordered hands out a done chunk's inputs together, in input order. */
typedef struct br_mp_iter br_mp_iter;
BR_API int br_mp_pool_imap(br_mp_iter **out, br_mp_pool *p, br_task_fn fn,
                           const void *args, size_t count, size_t size, size_t chunksize);
BR_API int br_mp_pool_imap_unordered(br_mp_iter **out, br_mp_pool *p, br_task_fn fn,
                                     const void *args, size_t count, size_t size,
                                     size_t chunksize);
/* next(timeout): 0 with the next result's bytes (valid until the next call) and *index
 * its input's index (may be NULL), or that input's failure code (with *data its
 * message or NULL; the iteration goes on: Python's imap raises for a failed chunk and
 * stops), BR_EOF after the last, BR_ETIMEDOUT. */
BR_API int br_mp_iter_next(br_mp_iter *it, int64_t deadline, const void **data,
                           size_t *len, size_t *index);
BR_API void br_mp_iter_free(br_mp_iter *it);

/* close: no more tasks (BR_ESTATE after it). join: waits for the workers to finish
 * everything and exit (BR_ESTATE unless closed or terminated first). terminate: stops
 * at once (tasks not done are cancelled, workers killed). free: terminate if still
 * running (as Pool.__exit__), join, free. All 0 or BR_EINVAL. */
BR_API int br_mp_pool_close(br_mp_pool *p);
BR_API int br_mp_pool_join(br_mp_pool *p);
BR_API int br_mp_pool_terminate(br_mp_pool *p);
BR_API int br_mp_pool_free(br_mp_pool *p);

#ifdef __cplusplus
}
#endif
#endif
