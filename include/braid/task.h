/* braid/task.h: what a task function sees. One task, any executor.
 *
 * A task is a function and its argument bytes, run by an executor (the thread pool
 * today; the process pool, MPI ranks and the event loop as those layers land). So that
 * moving work between executors means changing the executor's constructor and nothing
 * else, a task sees its argument and produces its result as bytes:
 *
 *   static int is_prime_task(br_task *t) {
 *       int64_t n = br_task_arg_i64(t);
 *       return br_task_return_i64(t, is_prime(n));
 *   }
 *
 * It is submitted with br_submit / br_submit_i64 / br_submit_call / br_map_new
 * (braid/executor.h) and its outcome is read from its future (braid/future.h).
 *
 * What the task's return value makes of its future:
 *   0                        FINISHED, with the result set by br_task_return* (or none)
 *   > 0                      FINISHED, failed with BR_EINVAL (a task returns <= 0) and
 *                            the message "task returned N (> 0)"
 *   BR_ECANCELED after br_future_request_cancel (or a shutdown with cancel_futures)
 *                            CANCELLED
 *   BR_ECANCELED when only its deadline passed
 *                            FINISHED, failed with BR_ETIMEDOUT
 *   any other code < 0       FINISHED, failed with that code and the br_task_fail
 *                            message, if any
 * A task whose deadline passed before it started never runs: FINISHED, BR_ETIMEDOUT.
 * A result set before a failure is dropped; a message recorded before a success is too.
 */
#ifndef BRAID_TASK_H
#define BRAID_TASK_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_task br_task;

/* A task function: returns 0 or a negative code (above). */
typedef int (*br_task_fn)(br_task *t);

/* The argument bytes (len may be NULL). Valid while the task runs. The thread pool
 * passes the submitter's bytes by pointer unless they were copied at submit
 * (BR_CALL_COPY_ARG, br_submit_i64); executors that cross a process boundary always
 * pass a copy. */
BR_API const void *br_task_arg(const br_task *t, size_t *len);
/* The argument as an int64 (br_submit_i64, or any 8-byte argument); 0 otherwise. */
BR_API int64_t br_task_arg_i64(const br_task *t);

/* The br_task_return* and br_task_fail calls may only be made for a running task: by
 * the task itself (t is its own argument), or by the executor running it
 * (braid/executor_impl.h). Anywhere else they return BR_EINVAL (misuse).
 *
 * Sets the result to a copy of data[0..len) (no allocation up to 32 bytes). A later
 * call replaces an earlier one. 0, BR_ENOMEM (the earlier result, if any, stays),
 * BR_EINVAL (also: data NULL with len > 0). */
BR_API int br_task_return(br_task *t, const void *data, size_t len);
/* 0 or BR_EINVAL (never allocates). */
BR_API int br_task_return_i64(br_task *t, int64_t value);
/* Sets the result to a copy of the NUL-terminated string s, NUL included (read it back
 * with br_future_result_str). 0, BR_ENOMEM or BR_EINVAL (also: s NULL). */
BR_API int br_task_return_str(br_task *t, const char *s);
/* Sets the result to ptr; the future owns it and calls dtor(ptr) (if not NULL) when
 * freed. In-process executors only: BR_ENOTSUP elsewhere (the caller keeps ptr).
 * 0, BR_ENOTSUP or BR_EINVAL. */
BR_API int br_task_return_ptr(br_task *t, void *ptr, void (*dtor)(void *ptr));
/* Records a failure message (printf-style, copied; fmt may be NULL for none) and
 * returns code, so that a task can `return br_task_fail(t, BR_EINVAL, "bad n: %d", n);`.
 * code must be < 0: a code >= 0 is turned into BR_EINVAL, which is returned (and the
 * message recorded), so the task still fails. Messages up to 31 bytes live in the
 * future; a longer one that can't be copied (out of memory) is kept cut to its first
 * 31 bytes. Outside a running task: BR_EINVAL (misuse) and nothing is recorded. */
BR_API int br_task_fail(br_task *t, int code, const char *fmt, ...) BR_PRINTF(3, 4);

/* True once the task should stop: br_future_request_cancel was called, its deadline
 * (br_call.deadline) passed, or the executor is shutting down with cancel_futures.
 * Cheap (one atomic load; the deadline check reads the clock): poll it in long loops. A
 * task that stops should return BR_ECANCELED. */
BR_API bool br_task_cancelled(const br_task *t);
/* The task's deadline (BR_FOREVER if none). */
BR_API int64_t br_task_deadline(const br_task *t);

#ifdef __cplusplus
}
#endif
#endif
