/* braid/aio.h: asyncio for C. Coroutines on an event loop, tasks that are futures.
 *
 *   asyncio.run(main())                    br_aio_run(main_fn, arg, len, &code)
 *   loop = asyncio.new_event_loop()        br_loop_new(&loop)
 *   loop.run_until_complete(fut)           br_loop_run_until_complete(loop, fut)
 *   loop.run_forever() / stop() / close()  br_loop_run_forever / br_loop_stop / br_loop_free
 *   asyncio.get_running_loop()             br_loop_current()
 *   loop.call_soon(cb) / call_later(d, cb) br_call_soon(loop, fn, arg) / br_call_later(...)
 *   loop.call_soon_threadsafe(cb)          br_call_soon_threadsafe(loop, fn, arg)
 *   asyncio.create_task(coro())            br_create_task(NULL, fn, arg, len, &fut)
 *   await task                             br_future_result(task, deadline, &data, &len)
 *   await asyncio.sleep(s) / sleep(0)      br_aio_sleep(ns) / br_aio_yield()
 *   asyncio.gather(*aws)                   br_gather(fs, n, return_errors, deadline)
 *   asyncio.wait(aws, timeout, when)       br_wait(fs, n, when, deadline, ...) (future.h)
 *   asyncio.wait_for(aw, timeout)          br_wait_for(task, deadline)
 *   async with asyncio.timeout(d):         br_timeout_enter(&scope, deadline) ... _leave
 *   asyncio.shield(aw)                     br_shield(task, &outer)
 *   async with asyncio.TaskGroup() as tg:  br_taskgroup_new / _create_task / _wait / _free
 *   asyncio.to_thread(fn)                  br_to_thread(fn, arg, len, &fut)
 *   asyncio.Lock / Queue / Event ...       the ordinary br_lock, br_queue, br_event...:
 *                                          called in a coroutine they suspend it
 *
 * A coroutine is a br_task_fn (braid/task.h) run on its own stack by a loop: it reads
 * its argument with br_task_arg, returns with br_task_return*, fails with
 * br_task_fail, and asks br_task_cancelled. Inside it, every blocking call of braid
 * (locks, queues, futures, br_wait, br_thread_join, br_aio_sleep, stream I/O)
 * suspends only this coroutine; the loop runs others meanwhile, and any thread or
 * other loop may wake it.
 *
 * One loop per thread. A loop runs on the thread that called br_loop_run_* (or
 * br_aio_run); its coroutines run there, one at a time.
 *
 * Cancellation: br_future_cancel(task) (from anywhere) cancels a task that hasn't
 * started; for a running one made by br_create_task it is a request (as asyncio's
 * Task.cancel()), as br_future_request_cancel is for any coroutine task: the
 * coroutine's current blocking call (if it may be cancelled), else its next one,
 * returns BR_ECANCELED, once per request; a coroutine that then returns BR_ECANCELED
 * ends CANCELLED (br_future_cancelled), any other code ends it as usual. A task
 * submitted through br_loop_executor keeps concurrent.futures' answer: br_future_cancel
 * of it running is false (br_future_request_cancel still reaches it). Requests are
 * counted, so that a timeout scope and an outer cancel compose: a scope converts only
 * its own request into BR_ETIMEDOUT.
 *
 * Thread-safety: br_call_soon_threadsafe, br_loop_stop, br_future_* on tasks and
 * br_create_task on another thread's loop (it is handed over as by
 * call_soon_threadsafe) may be called from any thread; the rest from the loop's own
 * thread.
 */
#ifndef BRAID_AIO_H
#define BRAID_AIO_H

#include "braid/core.h"
#include "braid/executor.h"
#include "braid/future.h"
#include "braid/task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_loop br_loop;
typedef struct br_timer br_timer;

/* --- the loop --------------------------------------------------------------------- */

/* A new loop, not yet running. 0, BR_ENOMEM, or -errno (BR_EMFILE). */
BR_API int br_loop_new(br_loop **out);
/* Frees a loop that isn't running. BR_EBUSY (and nothing freed) while tasks on it
 * are unfinished; BR_EPERM from inside the loop. Callbacks not yet run are dropped. */
BR_API int br_loop_free(br_loop *loop);
/* The loop running on this thread, or NULL. */
BR_API br_loop *br_loop_current(void);
/* Runs the loop on this thread until f is done (f may be any future: a task, a pool
 * future). 0, BR_EPERM (called from inside a running loop), BR_EBUSY (the loop runs
 * on another thread). */
BR_API int br_loop_run_until_complete(br_loop *loop, br_future *f);
/* Runs until br_loop_stop. */
BR_API int br_loop_run_forever(br_loop *loop);
/* Makes the running loop return after the callbacks already ready. Any thread. */
BR_API int br_loop_stop(br_loop *loop);

/* Callbacks run on the loop's thread, outside any coroutine, in the order scheduled
 * (call_later ones by deadline, then order). They must not block (they may create
 * tasks). */
BR_API int br_call_soon(br_loop *loop, void (*fn)(void *arg), void *arg);
BR_API int br_call_soon_threadsafe(br_loop *loop, void (*fn)(void *arg), void *arg);
/* fn runs once `deadline` (absolute, br_deadline_after) has passed. *out (may be NULL)
 * cancels it with br_timer_cancel, which frees the handle; a timer that has run frees
 * its handle itself only if out was NULL, else br_timer_cancel (returns BR_ESTATE
 * then) frees it. */
BR_API int br_call_at(br_loop *loop, int64_t deadline, void (*fn)(void *arg), void *arg,
                      br_timer **out);
BR_API int br_timer_cancel(br_timer *t);

/* --- tasks ---------------------------------------------------------------------------- */

typedef struct br_task_opts {
    size_t stack_size;   /* 0: the loop's default (256 KiB); at least 16 KiB: else BR_EINVAL;
                          * at most 1 MiB on a shared stack */
    bool shared_stack;   /* run on the loop thread's shared stack: while suspended, only
                          * the frames in use are kept (copied out), so a mass of idle
                          * tasks costs a few hundred bytes each instead of a page or
                          * more; each switch copies them. Pointers to a suspended
                          * task's locals are invalid for other tasks and threads
                          * (docs/aio-coro.md) */
    bool own_stack;      /* a stack of its own, whatever the loop's default */
    const char *name;    /* copied; NULL: "Task-<n>" as asyncio */
} br_task_opts;

/* The stack choice of the loop's tasks made without one (NULL opts, or neither
 * shared_stack nor own_stack set), tasks submitted to its executor included: uses
 * opts->shared_stack and opts->stack_size. Set it before making tasks. By default a
 * loop's tasks have their own stacks. 0; BR_EINVAL (both flags, or a size out of
 * range). */
BR_API int br_loop_set_task_defaults(br_loop *loop, const br_task_opts *opts);

/* Schedules fn(arg) as a coroutine on `loop` (NULL: the current loop; BR_EPERM if
 * none) and returns its task, a future that the caller owns one reference on. arg
 * is copied (len bytes; len 0 with arg non-NULL borrows the pointer, as br_submit).
 * From another thread, the task starts once the loop runs. */
BR_API int br_create_task(br_loop *loop, br_task_fn fn, const void *arg, size_t len,
                          br_future **out);
BR_API int br_create_task_opts(br_loop *loop, br_task_fn fn, const void *arg, size_t len,
                               const br_task_opts *opts, br_future **out);
/* asyncio.run: a new loop on this thread, runs fn as the main task to completion,
 * cancels what is left, frees the loop. *code (may be NULL) gets the main task's
 * code (0 when it returned normally); the return value is 0 or the run's own error
 * (BR_EPERM inside a running loop). SIGINT cancels the main task while it runs. */
BR_API int br_aio_run(br_task_fn fn, const void *arg, size_t len, int *code);
/* The loop as an executor: br_submit runs the task as a coroutine on it. Owned by
 * the loop (don't free it; shutdown only stops new submits). */
BR_API br_executor *br_loop_executor(br_loop *loop);

/* In a coroutine: suspend for ns (br_aio_sleep(0) == br_aio_yield: let the others
 * run; the yielding coroutine runs again in the loop's next iteration, after those
 * already ready). 0, BR_ECANCELED (a pending request, reported and consumed); BR_EPERM
 * outside a coroutine. */
BR_API int br_aio_sleep(int64_t ns);
BR_API int br_aio_sleep_until(int64_t deadline);
BR_API int br_aio_yield(void);
/* The task running this coroutine, or NULL outside one (borrowed). */
BR_API br_future *br_aio_current_task(void);

/* --- combining tasks ------------------------------------------------------------------ */

/* Waits for all of fs (any futures). return_errors false: returns the first failure's
 * code as soon as one fails, or BR_ECANCELED as soon as one is cancelled (the others
 * keep running, as asyncio.gather); true: waits for all and returns 0 (read each one's
 * outcome). BR_ETIMEDOUT at the deadline (nothing cancelled), BR_ECANCELED if the
 * caller was cancelled: then every future in fs not yet done gets
 * br_future_request_cancel (gather's own rule; gather doesn't wait for them). BR_EINVAL
 * (fs NULL with n > 0, a NULL future), BR_ENOMEM. Results stay in the futures. From a
 * thread too. */
BR_API int br_gather(br_future *const fs[], size_t n, bool return_errors, int64_t deadline);
/* Waits for f until the deadline; then cancels it (br_future_request_cancel), waits
 * without a deadline for the cancel to land, and returns BR_ETIMEDOUT; if f finished
 * normally all the same (too late to stop), its code instead: nothing is lost. Done in
 * time: f's code (0, its failure, BR_ECANCELED if it was cancelled). The caller
 * cancelled while waiting: f is cancelled and waited for the same way, BR_ECANCELED.
 * BR_EINVAL (f NULL). */
BR_API int br_wait_for(br_future *f, int64_t deadline);

/* Timeout scopes (asyncio.timeout), nestable: after enter, the coroutine's blocking
 * calls return BR_ECANCELED once the deadline passes (the scope posts a cancel request
 * of its own); leave withdraws that request and returns BR_ETIMEDOUT if this scope's
 * deadline fired and no other request arrived since enter, else 0. A request that
 * arrived meanwhile (an outer cancel, an outer scope's timeout) stays counted and
 * leave returns BR_ECANCELED for it, fired or not, so the caller propagates it.
 * Coroutines only (BR_EPERM); enter: BR_ENOMEM; leave of a scope that isn't the
 * innermost entered one: BR_EINVAL. The scope lives on the caller's stack, entered and
 * left in LIFO order. */
typedef struct br_timeout_scope {
    void *_opaque[8];
} br_timeout_scope;
BR_API int br_timeout_enter(br_timeout_scope *s, int64_t deadline);
BR_API int br_timeout_leave(br_timeout_scope *s);
/* Moves the deadline of an entered scope (asyncio.Timeout.reschedule); BR_FOREVER
 * disarms it. BR_ESTATE once it has fired. */
BR_API int br_timeout_reschedule(br_timeout_scope *s, int64_t deadline);

/* asyncio.shield: *outer is a new future that completes with inner's outcome (bytes
 * copied; a pointer result passed on borrowed: inner keeps owning it); cancelling
 * *outer doesn't cancel inner; a cancelled inner cancels *outer. The caller owns *outer
 * and keeps its own reference on inner. 0, BR_EINVAL, BR_ENOMEM. */
BR_API int br_shield(br_future *inner, br_future **outer);

/* TaskGroup: tasks created in it; the first failure (not a cancel) cancels the
 * others; wait waits for all (those created meanwhile too) and returns 0, or the first
 * failure's code (all failures in br_taskgroup_errors); BR_ECANCELED if the caller was
 * cancelled in wait (the group's tasks are cancelled and waited for first). new:
 * tasks on the loop running this thread (BR_EPERM if none). create_task copies arg
 * as br_create_task; BR_ESHUTDOWN after the first failure or once wait returned
 * (*out, if not NULL, is the caller's reference). free before wait requests cancellation
 * of the tasks still running and doesn't wait for them. */
typedef struct br_taskgroup br_taskgroup;
BR_API int br_taskgroup_new(br_taskgroup **out);
/* A group whose tasks are submitted to ex (a thread pool, ...) instead of the loop,
 * so that threads get TaskGroup too; ex must outlive the group's tasks. */
BR_API int br_taskgroup_new_executor(br_taskgroup **out, br_executor *ex);
BR_API int br_taskgroup_create_task(br_taskgroup *g, br_task_fn fn, const void *arg,
                                    size_t len, br_future **out /* may be NULL */);
BR_API int br_taskgroup_wait(br_taskgroup *g);
/* Failures collected, in the order they happened: codes[i] for i < *n (up to cap). */
BR_API size_t br_taskgroup_errors(const br_taskgroup *g, int *codes, size_t cap);
BR_API void br_taskgroup_free(br_taskgroup *g);

/* asyncio.to_thread: runs fn on a thread pool braid makes on first use (Python's
 * default size, shut down with wait at exit); arg copied as br_create_task's; the
 * caller owns *out, awaited like a task. */
BR_API int br_to_thread(br_task_fn fn, const void *arg, size_t len, br_future **out);

/* --- introspection ------------------------------------------------------------------- */

/* Writes one line per live coroutine task of every loop to f (a FILE *; NULL: stderr):
 * "Task-3 running", "Task-4 ready", "Task-5 suspended in a park (cancellable) called
 * from 0x..." (the address is the primitive's code that parked: addr2line names it).
 * The count of lines. Meant for debugging: a line for a coroutine of another thread's
 * loop is read without that loop's cooperation and may be stale. */
BR_API size_t br_aio_dump(void *file);

#ifdef __cplusplus
}
#endif

#endif
