/* braid/future.h: concurrent.futures.Future, wait and as_completed, for C.
 *
 * One future type for every executor: the thread pool, later the process pool, MPI
 * and the event loop's tasks. Waiting works the same on all of them, and br_wait and
 * br_as_completed take any mix.
 *
 *   fut.done() / running() / cancelled()   br_future_done(f) / _running / _cancelled
 *   fut.cancel()                            br_future_cancel(f)
 *   fut.result(timeout)                     br_future_result(f, deadline, &data, &len)
 *                                           br_future_result_i64 / _ptr
 *   fut.exception(timeout)                  br_future_exception(f, deadline, &code, &msg)
 *   fut.add_done_callback(fn)               br_future_add_done_callback(f, fn, arg)
 *   wait(fs, timeout, return_when)          br_wait(fs, n, when, deadline, sets, &nd, &nn)
 *   as_completed(fs, timeout)               br_as_completed_new / _next / _free
 *   Future() + set_result / set_exception   br_future_new + br_future_set_result / ...
 *
 * States, as in Python: PENDING -> RUNNING -> FINISHED, or PENDING -> CANCELLED. Only a
 * pending future can be cancelled. A finished future holds either a result (bytes, an
 * int64, or an in-process pointer) or a failure (a negative code and an optional
 * message). Done means finished or cancelled.
 *
 * Cancellation of the caller: every call here that waits (br_future_wait, the
 * result and exception calls, br_wait, br_as_completed_next) returns BR_ECANCELED when
 * the calling coroutine is cancelled while it waits (never for a thread), and then
 * nothing happened: the future is as it was (a take took nothing), the iterator keeps
 * every future for a later next(). A call that doesn't have to wait (the future is
 * done, BR_NOWAIT) answers as usual and leaves a pending cancel pending, and so does
 * one whose wake-up won the race against the cancel. For the result calls BR_ECANCELED
 * also means "the future was cancelled", as asyncio raises CancelledError for both;
 * br_future_cancelled(f) tells a cancelled future.
 *
 * Ownership: futures are reference-counted. Whoever gets a future from a constructor
 * or a submit owns one reference and drops it with br_future_release. Result bytes and
 * messages belong to the future and stay valid while you hold a reference. Every
 * function is thread-safe. A future used after its last release is a use after free:
 * its block goes back to braid's cache and may be another future's at once. A magic
 * check refuses it (BR_EINVAL, a misuse) while the block is unused: a debugging aid,
 * never a promise.
 */
#ifndef BRAID_FUTURE_H
#define BRAID_FUTURE_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_future br_future;

typedef enum br_future_state {
    BR_FUTURE_PENDING = 0,
    BR_FUTURE_RUNNING,
    BR_FUTURE_FINISHED,
    BR_FUTURE_CANCELLED
} br_future_state;

/* A pending future with no executor behind it, for code that completes it itself (the
 * executor side below). Returns 0, BR_EINVAL or BR_ENOMEM. */
BR_API int br_future_new(br_future **out);
BR_API void br_future_retain(br_future *f);
/* Drops a reference; the last one frees the future and its result. Safe from a
 * done-callback, even the last reference. Releasing more references than you own is a
 * use after free: the block may already be another future's, whose reference you would
 * then drop. The refusal described above is a debugging aid, not a promise. */
BR_API void br_future_release(br_future *f);

/* The state queries read one atomic word and never block. Given a dead handle (misuse)
 * they return BR_FUTURE_PENDING or false. */
BR_API br_future_state br_future_state_of(const br_future *f);
/* "PENDING", "RUNNING", "FINISHED", "CANCELLED" (Python's names), or "UNKNOWN". */
BR_API const char *br_future_state_name(br_future_state state);
BR_API bool br_future_done(const br_future *f);
BR_API bool br_future_running(const br_future *f);
BR_API bool br_future_cancelled(const br_future *f);
/* True if the future finished with a failure (a code < 0). */
BR_API bool br_future_failed(const br_future *f);

/* Python's cancel(): a pending future becomes cancelled (and its task never runs);
 * returns true if the future is cancelled now (or already was), false if it is running
 * or finished. */
BR_API bool br_future_cancel(br_future *f);
/* Beyond Python: cancel if pending, and if running, ask the task to stop:
 * br_task_cancelled() turns true inside it; if the task then returns BR_ECANCELED, the
 * future ends CANCELLED. Returns false only if the future had already finished. */
BR_API bool br_future_request_cancel(br_future *f);

/* Waits until done. 0, BR_ETIMEDOUT (still not done), BR_ECANCELED (the calling
 * coroutine was cancelled, never for a thread; nothing happened), BR_EINVAL (not a live
 * future). */
BR_API int br_future_wait(br_future *f, int64_t deadline);

/* fut.result(timeout): waits until done, then returns 0 with the result in *data and
 * *len (either may be NULL; bytes owned by f), or the failure's code (< 0; the message
 * is in br_future_exception), or BR_ECANCELED (the future was cancelled; or the
 * calling coroutine was, while waiting, never for a thread, and then nothing
 * happened). BR_ETIMEDOUT if still not done at the deadline: a task that itself failed
 * with BR_ETIMEDOUT can be told apart by br_future_done(f). A pointer result
 * (br_task_return_ptr) comes back in *data with *len == 0. BR_EINVAL if f is not a
 * live future. */
BR_API int br_future_result(br_future *f, int64_t deadline, const void **data,
                            size_t *len);
/* The result as an int64 (br_task_return_i64 / br_future_set_result_i64, or any
 * 8-byte result). BR_EINVAL if the result isn't 8 bytes; otherwise as above.
 *
 * A result of another kind is a plain BR_EINVAL here and in _ptr, _take_ptr and _str,
 * never a misuse (br_set_panic_on_misuse doesn't abort on it), so these calls can probe
 * what a future holds. */
BR_API int br_future_result_i64(br_future *f, int64_t deadline, int64_t *out);
/* The pointer of a pointer result (br_task_return_ptr / br_future_set_result_ptr);
 * BR_EINVAL if the result isn't a pointer, BR_ESTATE if it was taken
 * (br_future_take_ptr); otherwise as br_future_result. The future still owns it. */
BR_API int br_future_result_ptr(br_future *f, int64_t deadline, void **out);

/* Moves a pointer result out of the future: *out = the pointer, which the caller owns
 * from now on (the future will not call its dtor). Once taken, br_future_result_ptr
 * and a second take return BR_ESTATE; br_future_result gives *data == NULL. Otherwise
 * as br_future_result_ptr: a take whose wait times out or is cancelled (BR_ECANCELED,
 * the calling coroutine; never for a thread) takes nothing. */
BR_API int br_future_take_ptr(br_future *f, int64_t deadline, void **out);
/* A string result (br_task_return_str, or any result whose last byte is NUL); the
 * string belongs to the future. BR_EINVAL if the result isn't NUL-terminated. */
BR_API int br_future_result_str(br_future *f, int64_t deadline, const char **out);

/* fut.exception(timeout): waits until done; returns 0 with *code = the failure code
 * (0 if the future succeeded) and *msg = its message or NULL (either out may be NULL);
 * BR_ECANCELED if cancelled (the future; or the calling coroutine, while waiting,
 * never for a thread: then nothing happened); BR_ETIMEDOUT if not done by the deadline;
 * BR_EINVAL if f is not a live future. */
BR_API int br_future_exception(br_future *f, int64_t deadline, int *code,
                               const char **msg);

/* A done-callback runs once, when the future becomes done, on the thread that
 * completes or cancels it; if the future is already done, it runs at once on the
 * calling thread. Callbacks run in the order they were added. A callback may release
 * the future (even its last reference), add callbacks and wait on other futures; it
 * must not block for long (it delays whoever completed the future). Returns 0,
 * BR_EINVAL or BR_ENOMEM; on error the callback never runs. */
typedef void (*br_done_fn)(br_future *f, void *arg);
BR_API int br_future_add_done_callback(br_future *f, br_done_fn fn, void *arg);

/* --- the executor side ------------------------------------------------------------
 * Python's set_running_or_notify_cancel / set_result / set_exception: how an executor
 * (or your own code) drives a future. Each completion wakes every waiter and runs the
 * callbacks, on the calling thread. */

/* PENDING -> RUNNING: true, go ahead and run. Cancelled: false, don't run (the
 * cancellation was already notified). Running or finished already: false, and it goes
 * through the misuse policy (an executor bug). */
BR_API bool br_future_set_running_or_notify_cancel(br_future *f);
/* Finish with a result; bytes are copied (no allocation up to 32 bytes). Returns 0,
 * BR_ESTATE if the future is already done or running a task (Python's
 * InvalidStateError), BR_ENOMEM (nothing changed), BR_EINVAL (not a live future, or
 * data NULL with len > 0). */
BR_API int br_future_set_result(br_future *f, const void *data, size_t len);
/* 0, BR_ESTATE or BR_EINVAL (never allocates). */
BR_API int br_future_set_result_i64(br_future *f, int64_t value);
/* Finish with an in-process pointer, which the future owns from now on: dtor(ptr) runs
 * when the future is freed (dtor may be NULL). 0, BR_ESTATE or BR_EINVAL; on error the
 * caller keeps ptr. */
BR_API int br_future_set_result_ptr(br_future *f, void *ptr, void (*dtor)(void *ptr));
/* Finish with a failure: code < 0, msg copied (may be NULL; no allocation up to 31
 * bytes). 0, BR_ESTATE if already done, BR_ENOMEM (a longer message couldn't be copied;
 * nothing changed), BR_EINVAL (not a live future, or code >= 0). */
BR_API int br_future_set_exception(br_future *f, int code, const char *msg);

/* --- waiting on many ------------------------------------------------------------ */

typedef enum br_return_when {
    BR_ALL_COMPLETED = 0,
    BR_FIRST_COMPLETED,
    BR_FIRST_EXCEPTION /* the first failure (not cancellation); else all completed */
} br_return_when;

/* concurrent.futures.wait. Waits on fs[0..n) (a future listed twice counts once) until
 * `when` holds or the deadline passes. If sets is not NULL (room for n), it receives
 * Python's (done, not_done): sets[0 .. *ndone) are the done futures and
 * sets[*ndone .. *ndone + *nnot_done) the others, each once, in input order (sets may
 * be fs itself). No
 * references are taken or dropped. Returns 0 when `when` holds, BR_ETIMEDOUT if the
 * deadline passed first (the sets are filled either way), BR_EINVAL (fs NULL with
 * n > 0, a NULL future in fs, or a `when` that is none of BR_ALL_COMPLETED,
 * BR_FIRST_COMPLETED and BR_FIRST_EXCEPTION: nothing is waited for, and *ndone and
 * *nnot_done are 0), BR_ENOMEM, or BR_ECANCELED (the calling coroutine was cancelled
 * while waiting, never for a thread; nothing happened: the sets are not filled and the
 * counts are 0; if a completion met `when` before the wait could leave, the call
 * returns 0 instead and the cancel stays pending). One waiter registration per future
 * per call; futures done on entry cost nothing. */
BR_API int br_wait(br_future *const fs[], size_t n, br_return_when when, int64_t deadline,
                   br_future *sets[], size_t *ndone, size_t *nnot_done);

/* concurrent.futures.as_completed: yields the futures of fs[0..n) as they become done,
 * those already done first; each once, even if listed twice. The iterator takes its own
 * reference on each future (you may release yours) and registers one watcher per
 * future for its whole life, not one per call. `deadline` bounds the whole iteration,
 * as Python's timeout does. Several threads may call next() on one iterator; each
 * future goes to one of them. Returns 0 (*out is yours: br_as_completed_free),
 * BR_EINVAL (out NULL, fs NULL with n > 0, or a dead future in fs) or BR_ENOMEM. */
typedef struct br_as_completed br_as_completed;
BR_API int br_as_completed_new(br_as_completed **out, br_future *const fs[], size_t n,
                               int64_t deadline);
/* 0 and *f = the next done future (borrowed: valid until br_as_completed_free, or
 * retain it); BR_EOF when every future has been yielded; BR_ETIMEDOUT when the deadline
 * passes first (call again with a later deadline via br_as_completed_set_deadline, or
 * free it); BR_ECANCELED when the calling coroutine is cancelled while it waits (never
 * for a thread; nothing happened: no future was taken, a later next() yields them
 * all); BR_EINVAL (it or f NULL; a freed iterator is a use after free). Blocks until
 * then. */
BR_API int br_as_completed_next(br_as_completed *it, br_future **f);
/* The same, also giving the future's position in the fs array passed to
 * br_as_completed_new (its first position, if it was listed twice): what Python code
 * gets from a {future: input} dict. index may be NULL. */
BR_API int br_as_completed_next_index(br_as_completed *it, br_future **f, size_t *index);
/* Moves the deadline of the whole iteration; consumers blocked in next() see the new
 * one at once. 0 or BR_EINVAL. */
BR_API int br_as_completed_set_deadline(br_as_completed *it, int64_t deadline);
/* Frees the iterator and drops its references. Futures not yet done keep running.
 * BR_EBUSY, and nothing happens, while a thread is blocked in br_as_completed_next on
 * it (wake it first: complete its futures or move the deadline); a call on `it` that
 * begins after the free is a use after free, and so is a second free: not detected (the
 * magic check that may answer BR_EINVAL is a debugging aid; debug builds poison the
 * freed iterator). Never waits (so never BR_ECANCELED). 0, BR_EBUSY or BR_EINVAL (it
 * NULL). */
BR_API int br_as_completed_free(br_as_completed *it);

#ifdef __cplusplus
}
#endif
#endif
