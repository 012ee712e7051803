/* braid/executor.h: concurrent.futures.Executor and ThreadPoolExecutor, for C.
 *
 *   ThreadPoolExecutor(max_workers, thread_name_prefix, initializer, initargs)
 *                                    br_threadpool_new(&ex, &(br_threadpool_opts){...})
 *   ex.submit(fn, x)                 br_submit(ex, fn, &x, sizeof x, &fut)
 *                                    br_submit_i64(ex, fn, 42, &fut)
 *   ex.map(fn, xs, timeout, chunksize, buffersize)
 *                                    br_map_new(&m, ex, fn, xs, n, sizeof xs[0], &opts)
 *                                    + br_map_next / br_map_next_i64 + br_map_free
 *   ex.shutdown(wait, cancel_futures) br_executor_shutdown(ex, wait, cancel_futures)
 *   with ThreadPoolExecutor() as ex:  ... br_executor_free(ex)   (shutdown(wait) + free)
 *
 * One task, any executor. Moving work from the thread pool to the process pool (a later
 * layer) means changing the constructor and nothing else, so a task sees its argument
 * and produces its result as bytes:
 *
 *   static int is_prime_task(br_task *t) {
 *       int64_t n = br_task_arg_i64(t);
 *       return br_task_return_i64(t, is_prime(n));
 *   }
 *
 * What a task function sees is in braid/task.h. The thread pool passes the argument bytes by
 * pointer, without copying: they must stay valid until the task's future is done
 * (BR_CALL_COPY_ARG copies them instead, as the process pool always does).
 * br_task_return_ptr is the in-process fast path for results that are pointers; it
 * fails with BR_ENOTSUP on executors that cross a process boundary.
 */
#ifndef BRAID_EXECUTOR_H
#define BRAID_EXECUTOR_H

#include "braid/core.h"
#include "braid/future.h"
#include "braid/task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_executor br_executor;

/* --- submitting --------------------------------------------------------------------- */

enum {
    /* Copy the argument at submit (the caller may reuse its buffer at once). */
    BR_CALL_COPY_ARG = 1u << 0,
    /* On a pool with max_pending, fail with BR_ETIMEDOUT instead of waiting for room. */
    BR_CALL_NOWAIT = 1u << 1
};

/* A submission with every option. Zeroed fields keep the defaults. */
typedef struct br_call {
    br_task_fn fn;
    const void *arg; /* borrowed until the future is done, unless BR_CALL_COPY_ARG */
    size_t len;
    /* The task's deadline (absolute; 0 = none): a task not started by then never runs
     * and its future fails with BR_ETIMEDOUT; a running task sees br_task_cancelled()
     * turn true. */
    int64_t deadline;
    /* How long submit may wait for room on a pool with max_pending (absolute; 0 =
     * forever; see BR_CALL_NOWAIT). */
    int64_t submit_deadline;
    unsigned flags; /* BR_CALL_* */
    /* More fields may be added at any time; zero always keeps the default. */
} br_call;

/* Submits fn with the argument bytes arg[0..len). On success, if out is not NULL, *out
 * is the task's future (you own a reference); with out NULL the task still runs and
 * its result is dropped. On a pool with max_pending that is full, waits for room (from
 * outside the pool; its own workers never wait). Returns 0, BR_EINVAL (ex not a live
 * executor, fn NULL, or arg NULL with len > 0), BR_ESHUTDOWN (the executor is shut
 * down, also while waiting for room), BR_EBROKEN (a worker initializer failed),
 * BR_ENOMEM, BR_ECANCELED (the calling coroutine was cancelled while waiting for
 * room, never for a thread; nothing happened). On error nothing runs and no future
 * exists. A submit that finds room doesn't wait, so a pending cancel doesn't stop it
 * (the cancel stays pending). A submit blocked waiting for room may overlap
 * br_executor_free (it returns BR_ESHUTDOWN, and free waits for it to leave); one that
 * begins after free began is a use after free. */
BR_API int br_submit(br_executor *ex, br_task_fn fn, const void *arg, size_t len,
                     br_future **out);
/* Submits fn with an int64 argument (stored in the task: nothing to keep alive). As
 * br_submit. */
BR_API int br_submit_i64(br_executor *ex, br_task_fn fn, int64_t arg, br_future **out);
/* Submits with every option. As br_submit, and BR_ETIMEDOUT: no room by
 * call->submit_deadline, or at once with BR_CALL_NOWAIT. BR_EINVAL also for call NULL
 * or call->fn NULL. */
BR_API int br_submit_call(br_executor *ex, const br_call *call, br_future **out);

/* Submits `count` tasks of fn in one call (beyond Python: one call and one wake-up
 * instead of count of each). Task i gets the `size` argument bytes at args + i*size
 * (borrowed, as br_submit's: valid until its future is done; args may be NULL when size
 * is 0, and every task then gets no argument). The tasks are queued in index order. On
 * a thread pool, from outside, the batch starts as one submit would: after every task
 * submitted before the call, before every task submitted after it returned; among
 * themselves its tasks may start in any order (workers take runs of up to 32 of them
 * at once and take halves of each other's runs; Python has no batch submit to compare
 * with: count submits there start in index order). On success, if out is not NULL,
 * out[i] is task i's future (you own a reference on each); with out NULL the tasks
 * still run and their results are dropped. *queued (if not NULL) is the number of
 * tasks queued: count on success.
 *
 * The futures are made and queued 256 at a time, so that the workers start on the
 * first ones while the call makes the rest. A failure leaves the tasks queued before
 * it queued, as Python's Executor.map leaves the futures it submitted before a submit
 * raised (they may have run already: nothing can take them back): out[0..k) are their
 * futures, out[k..count) are NULL and *queued is k. That covers BR_ENOMEM (no memory
 * for the futures of the next 256: k is a multiple of 256, 0 if the first ones failed),
 * a pool shut down or broken meanwhile (BR_ESHUTDOWN, BR_EBROKEN; found so at the call:
 * k is 0), and, on a pool with max_pending, a failure of the wait for room
 * (BR_ESHUTDOWN, BR_EBROKEN, BR_ECANCELED for a cancelled coroutine): such a batch
 * waits for room like a loop of br_submit, taking the room as it frees up. An executor
 * may also fail part-way for its own reasons (braid's pool only in the same races).
 * Returns 0 (count 0 included), BR_EINVAL (ex not a live executor, fn NULL, or args
 * NULL with count and size > 0; nothing queued), BR_ESHUTDOWN, BR_EBROKEN, BR_ENOMEM,
 * BR_ECANCELED. Executors written before the extension API's version 2 get the batch
 * as a loop of their vt->submit. */
BR_API int br_submit_batch(br_executor *ex, br_task_fn fn, const void *args, size_t count,
                           size_t size, br_future **out, size_t *queued);

/* --- map --------------------------------------------------------------------------- */

typedef struct br_map br_map;

typedef struct br_map_opts {
    /* Inputs per task (Python's chunksize); 0 means 1. */
    size_t chunksize;
    /* At most this many chunks are submitted ahead of the one being read (Python
     * 3.14's buffersize), so a long input doesn't flood the pool; 0 means
     * 2 x max_workers. */
    size_t buffersize;
    /* Bounds the whole map (absolute; 0 = none), like Python's timeout. */
    int64_t deadline;
    /* More fields may be added at any time; zero always keeps the default. */
} br_map_opts;

/* Executor.map: runs fn on each of the `count` inputs of `size` bytes at args (input i
 * is args + i*size; borrowed until br_map_free), lazily, with results read in input
 * order. Submits the first chunks at once (and so may wait for room, as br_submit).
 * Returns 0 (*out is yours: br_map_free), BR_EINVAL (out NULL, ex not a live executor,
 * fn NULL, or args NULL with count and size > 0), BR_ESHUTDOWN, BR_EBROKEN, BR_ENOMEM,
 * BR_ECANCELED (the calling coroutine was cancelled waiting for room for the first
 * chunk, never for a thread); on error nothing has run. A later chunk that can't be
 * submitted doesn't fail the map: its inputs fail with that code (below); if the
 * coroutine is cancelled waiting for room for a later chunk, the map is made with the
 * chunks queued so far (br_map_next submits the rest) and the cancel stays pending. */
BR_API int br_map_new(br_map **out, br_executor *ex, br_task_fn fn, const void *args,
                      size_t count, size_t size, const br_map_opts *opts);
/* The next result in input order, waiting for it: 0 with its bytes (valid until the
 * next call or br_map_free), or that input's own failure code (then the message is in
 * *data as a NUL-terminated string, or *data is NULL); the map goes on after a failure.
 * An input's code is the task's own failure, BR_ECANCELED (cancelled: shutdown with
 * cancel_futures), or, for an input that never got to run, BR_ESHUTDOWN, BR_EBROKEN or
 * BR_ENOMEM (its chunk couldn't be submitted). BR_EOF after the last input.
 *
 * The deadline (br_map_opts.deadline), as Python's timeout: an input already done is
 * returned even after the deadline has passed, as concurrent.futures' result iterator
 * returns a done future's result with no time left. BR_ETIMEDOUT when the deadline
 * passes while the input to read isn't done, or when that input's task was stopped or
 * never started by the deadline (each task carries it: such an input is done, failed
 * with BR_ETIMEDOUT, and is the one Python would still be waiting for). The map is then
 * over: the inputs not started are cancelled and every later call returns BR_ETIMEDOUT,
 * never BR_EOF. So a map made with a deadline already past runs nothing and returns
 * BR_ETIMEDOUT at once. A task's own BR_ETIMEDOUT is an input failure like any other
 * when read before the deadline, and ends the map when read after it (the two can't be
 * told apart).
 *
 * BR_ECANCELED: the calling coroutine was cancelled while waiting (for the input, or
 * for room to submit more; never for a thread): nothing happened, the map isn't timed
 * out and the next call reads the same input. A result already there is returned even
 * with a cancel pending (which stays pending). In a coroutine the two BR_ECANCELEDs
 * look alike, as asyncio's CancelledError does: an input's own (the map went on past
 * it) and the caller's (it didn't). BR_EINVAL if m is NULL. */
BR_API int br_map_next(br_map *m, const void **data, size_t *len);
/* The same, with the result read as an int64: BR_EINVAL also when an input's result
 * isn't 8 bytes (and the map goes on). */
BR_API int br_map_next_i64(br_map *m, int64_t *value);
/* Cancels the inputs not started, waits for the running ones (they borrow args) and
 * frees the map. The wait can't be cancelled: a cancel of the calling coroutine stays
 * pending until free has returned. 0 or BR_EINVAL (m NULL). A second br_map_free, like
 * any call on a freed map, is a use after free: the "not a live map" check that may
 * answer BR_EINVAL is a debugging aid only (debug builds poison the freed map). */
BR_API int br_map_free(br_map *m);

/* --- executors ------------------------------------------------------------------------ */

/* Executor.shutdown: no new submissions from now on (BR_ESHUTDOWN), and submitters
 * waiting for room are woken with it. With cancel_futures, every task not yet started
 * is cancelled by the time it returns, with wait or without (running ones finish,
 * though br_task_cancelled() turns true for them).
 * With wait, returns once every task has finished, the workers have exited and the
 * woken submitters have left; that wait can't be cancelled (a cancel of the calling
 * coroutine stays pending, and it blocks the coroutine's thread while it joins the
 * workers). Calling it again is fine. 0, BR_EINVAL (not a live
 * executor), BR_EDEADLK (with wait, from one of the executor's own workers: the
 * shutdown happened, only the wait didn't).
 *
 * In a child made by fork() the parent's pool has no workers: there, shutdown (and
 * free) completes every task still queued at the fork at once (cancelled with
 * cancel_futures, else failed with BR_ESHUTDOWN); tasks that were running at the fork
 * never complete in the child. */
BR_API int br_executor_shutdown(br_executor *ex, bool wait, bool cancel_futures);
/* shutdown(wait=true) and free: Python's `with` block exit; never cancelled, as
 * shutdown(wait) isn't. Futures you still hold stay valid. 0, BR_EINVAL (ex NULL, which
 * doesn't count as misuse), BR_EDEADLK (from one of the executor's own workers; nothing
 * is freed).
 *
 * A second br_executor_free of the same executor, like any call on a freed one, is a
 * use after free (AddressSanitizer reports it): its memory is gone. The "not a live
 * executor" check may still answer BR_EINVAL while that memory isn't reused, a
 * debugging aid only; debug builds poison a freed thread pool so that a stale handle
 * fails at once. */
BR_API int br_executor_free(br_executor *ex);
/* "thread" (later: "process", "mpi", "loop"); NULL if ex is not a live executor. */
BR_API const char *br_executor_kind(const br_executor *ex);
/* The worker count (> 0), or BR_EINVAL. */
BR_API int br_executor_max_workers(const br_executor *ex);

/* --- the thread pool ------------------------------------------------------------------ */

/* Runs once in each worker thread before its first task; a nonzero return breaks the
 * pool (Python's BrokenThreadPool): queued tasks fail with BR_EBROKEN and later
 * submits return BR_EBROKEN. */
typedef int (*br_initializer_fn)(void *arg);

/* max_pending values from this one up mean "unbounded", as 0 does (SIZE_MAX too). */
#define BR_THREADPOOL_UNBOUNDED ((size_t)1 << 62)

typedef struct br_threadpool_opts {
    /* 0: Python's default, min(32, br_cpu_count() + 4). Any positive int is accepted:
     * workers start lazily and the pool's bookkeeping grows with them (a few hundred
     * bytes per worker started), so a large limit costs nothing until reached. Past
     * what the system allows (ulimit -u, threads-max), a submit that would start
     * another worker leaves its task to the existing ones. */
    int max_workers;
    /* Workers are named "<prefix>_<i>"; NULL gives "ThreadPoolExecutor-<n>". */
    const char *thread_name_prefix;
    br_initializer_fn initializer;
    void *initarg;
    /* Bounded submission: at most this many tasks queued (not yet running); submit
     * then waits (br_call.submit_deadline, BR_CALL_NOWAIT). 0, or any value from
     * BR_THREADPOOL_UNBOUNDED (2^62) up: unbounded. */
    size_t max_pending;
    /* false (Python's behaviour): a pool still running at process exit is shut down
     * with wait before the process ends. true: it is abandoned. */
    bool daemon;
    /* More fields may be added at any time; zero always keeps the default. */
} br_threadpool_opts;

/* ThreadPoolExecutor. Workers start lazily, one per submit while none is idle, up to
 * max_workers, and are reused. Returns 0 (*out is yours: br_executor_free), BR_EINVAL
 * (out NULL, max_workers < 0), BR_ENOMEM. The first submit, which starts the first
 * worker, fails with BR_ENOMEM if that thread can't be made.
 *
 * Start order, as in Python: tasks submitted from outside the pool (from any thread
 * that isn't one of its workers) are started in submission order. A worker that looks
 * for work takes the oldest such task that no worker has taken yet, so task B never
 * starts before task A when A's submit returned before B's began (same thread, or
 * ordered by any synchronization), however many workers there are. ("Starts" means
 * taken by a worker: two tasks taken at the same moment by two workers may begin to
 * run in either order, as in Python. The tasks of one br_submit_batch or br_map slice
 * count as one submit: among themselves they start in any order.) Tasks submitted from inside the pool's own tasks
 * run LIFO on the submitting worker (depth-first, mostly before that worker goes back
 * to outside submissions, which still get their turn: docs/executor.md) and may be
 * stolen by idle workers, oldest first; with max_workers == 1 they, too, run in
 * submission order. */
BR_API int br_threadpool_new(br_executor **out, const br_threadpool_opts *opts);

/* Beyond Python: runs fn over [begin, end) split into chunks of about `grain` indices
 * (0: picked from the range and the worker count), never one task per index. The
 * caller takes part and returns when every chunk is done: 0, or the first nonzero code
 * a chunk returned (the remaining chunks are skipped). Errors before any chunk runs:
 * BR_EINVAL (ex not a live executor, fn NULL, grain < 0 or end < begin), BR_ENOTSUP
 * (executors that aren't in-process), BR_ESHUTDOWN (shut down, or a forked child's
 * copy of a pool), BR_EBROKEN (a worker initializer failed). Helpers are queued
 * without waiting for room (max_pending) and without failing on out of memory (the
 * caller does the chunks they can't). The wait for the helpers can't be cancelled (they
 * use the caller's stack): a cancel of the calling coroutine stays pending. */
typedef int (*br_range_fn)(int64_t begin, int64_t end, void *ctx);
BR_API int br_parallel_for(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                           br_range_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif
#endif
