/* future/for_executors.h: what the executor layer (src/executor/) needs from the future
 * layer: a task's block, and running it in two steps. Never installed; the public face
 * of the same contract, for executors written outside braid, is braid/executor_impl.h.
 *
 * A task lives inside its future's block (future/private.h): br__task_prepare gives a
 * pending future with the task filled in, from a per-thread cache (no malloc in steady
 * state). The executor queues the task through the intrusive `next` link.
 *
 * Running is two steps, so that the function may run somewhere else, or in pieces:
 *
 *   if (br__task_begin(t)) {       claim: PENDING -> RUNNING (skips a cancelled task,
 *                                  and finishes one whose deadline passed unrun)
 *       ... publish t for cancel requests, if the executor does that ...
 *       int rc = br__task_call(t); or run t->fn elsewhere (another process) and store
 *                                  the outcome that came back with br_task_return* /
 *                                  br_task_fail, which work for a begun task;
 *                                  or suspend and resume it many times (a coroutine)
 *       br__task_finish(t, rc);    settle: the outcome, the state, waiters, callbacks
 *   }
 *
 * br__task_run(t) is the three in one call. Between begin and finish the future is
 * RUNNING with the INTASK flag: only the task (or its executor) writes the outcome, and
 * the public set_* calls are refused (future/future.c's design notes).
 *
 * References: br_submit_call hands the executor one reference on the future along with
 * the task (vt->submit). The executor gives it up exactly once: br__task_begin (when it
 * answers false), br__task_finish, or br__task_abandon (a task that will never run).
 */
#ifndef BRAID_FUTURE_FOR_EXECUTORS_H
#define BRAID_FUTURE_FOR_EXECUTORS_H

#include "braid/future.h"
#include "braid/task.h"
#include "core/lib.h"

/* The part of a future's block that the task owns (future/private.h has the rest). The
 * argument and the owning future are reached through the functions below. */
struct br_task {
    br_task *next;       /* the executor's queue link, the executor's while it owns t */
    br_task_fn fn;
    union {              /* the argument: the caller's bytes, a heap copy, or inline */
        struct {
            const void *ptr;
            size_t len;
        } ref;
        _Alignas(8) unsigned char bytes[16];
    } a;
    int64_t deadline;    /* BR_FOREVER if none */
    br_task *parent;     /* the task running this one, or NULL (br__task_set_parent) */
};

/* Inline argument copies: up to this many bytes live in the task (no allocation). */
enum { BR__INLINE_ARG = 16 };

/* A task sits at this offset in its future's block (checked in future/private.h), so
 * going from one to the other is pointer arithmetic. */
enum { BR__TASK_OFFSET = 64 };
static inline br_future *br__task_future(br_task *t) {
    return (br_future *)(void *)((char *)t - BR__TASK_OFFSET);
}
static inline br_task *br__future_task(br_future *f) {
    return (br_task *)(void *)((char *)f + BR__TASK_OFFSET);
}

/* How br__task_prepare stores the argument. */
enum {
    BR__ARG_BORROW = 0,    /* keep the caller's pointer */
    BR__ARG_COPY = 1,      /* copy the bytes (inline up to BR__INLINE_ARG, else heap) */
    BR__ARG_IN_PROCESS = 2 /* the executor is in-process: pointer results allowed */
};

/* Submit's one call: a pending future with refs references (1 or 2: the executor's,
 * and the caller's when it keeps the future) and its task ready to queue: fn, the
 * argument (how: BR__ARG_*), deadline (BR_FOREVER or absolute). NULL if out of memory
 * (the block, or the heap copy of a big argument). */
BR__EXT br_future *br__task_prepare(br_task_fn fn, const void *arg, size_t len,
                                    unsigned how, int64_t deadline, unsigned refs);

/* t is run by another task, `parent` (a chunk runner, executor/chunk.c), and sees the
 * parent's cancellation (br_task_cancelled) as its own. */
void br__task_set_parent(br_task *t, br_task *parent);

/* For an executor that runs t here on behalf of another process (a process pool's
 * worker): until the next call on this thread, br_task_cancelled(t) is also true once
 * *word is nonzero (a flag the other process raises in shared memory). word NULL
 * clears it. Per thread: only the task this thread runs sees it. */
BR__EXT void br__task_set_external_cancel(const br_task *t, const _Atomic uint32_t *word);

/* For executors that cross a process boundary, which copy every argument at submit:
 * makes t's argument its own copy if it was borrowed (inline up to BR__INLINE_ARG,
 * else on the heap). 0 or BR_ENOMEM (the argument stays borrowed). */
BR__EXT int br__task_own_arg(br_task *t);
/* Replaces t's argument with (handle, len), freeing a heap copy it held: the executor
 * then owns whatever handle points to (a process pool's shared-memory copy) and must
 * put the argument back to (NULL, 0) before the task's future can be freed. */
void br__task_swap_arg(br_task *t, void *handle, size_t len);
/* For an executor that receives a begun task's result from elsewhere (an MPI rank) into
 * a buffer of its own: makes heap (len bytes from br__malloc, len > 0) t's result, as
 * br_task_return's copy would be, without the copy; the future owns heap from then on
 * and frees it with its block (a result of up to 32 bytes is copied inline and heap
 * freed at once). The buffer stays the executor's until this call, so an executor that
 * can't know whether the transfer into it is over (a cancelled MPI receive) can fail t
 * and keep the buffer. 0, or BR_ESTATE if t isn't begun (heap is still the caller's). */
BR__EXT int br__task_result_adopt(br_task *t, void *heap, size_t len);
/* True once br_future_request_cancel reached t (or the task running it). */
BR__EXT bool br__task_cancel_requested(const br_task *t);

/* A task's home (the aio layer: the coroutine running it). A cancel request on a
 * RUNNING task that has one must reach the coroutine, whose current blocking call then
 * returns BR_ECANCELED (core/lib.h, the parker's cancel). br__task_mark_home flags t as
 * such a task (cancel_requests: br_future_cancel of it running is a request too, as
 * asyncio's Task.cancel(); a br_submit task keeps concurrent.futures' answer, false);
 * call it before the future is shared (the flags are read without a lock).
 * br__task_set_home(t, home) sets the home (NULL clears it) under the future's lock;
 * br_future_request_cancel (and br_future_cancel of a running task) then calls
 * br__task_home_cancel(home) under that same lock, so once the home is cleared no call
 * is running or will run, and the home may be freed. The hook is set once by the aio
 * layer; it must be short and take only leaf locks. */
void br__task_mark_home(br_task *t, bool cancel_requests);
void br__task_set_home(br_task *t, void *home);
extern void (*_Atomic br__task_home_cancel)(void *home);

/* The claim. true: t is RUNNING (INTASK) and the caller must end it with
 * br__task_finish. false: t was not pending (cancelled while queued) or its deadline
 * had passed (it is now FINISHED with BR_ETIMEDOUT, unrun); either way the executor's
 * reference is dropped and t must not be touched again. */
BR__EXT bool br__task_begin(br_task *t);
/* True between br__task_begin and br__task_finish (checks for the extension API). */
bool br__task_begun(const br_task *t);
/* Calls the task's function on the calling thread: its return value. */
static inline int br__task_call(br_task *t) { return t->fn(t); }
/* Ends a begun task whose function returned rc: settles the outcome (braid/task.h's
 * table), publishes the state, wakes waiters, runs callbacks, drops the executor's
 * reference. Returns the code the future ended with (0, the failure, BR_ECANCELED). */
BR__EXT int br__task_finish(br_task *t, int rc);
/* begin + call + finish on the calling thread. Returns the final code, or BR_ECANCELED
 * for a task that was skipped (BR_ETIMEDOUT: expired unrun). */
BR__EXT int br__task_run(br_task *t);
/* Completes a task that will never run with `code` (BR_ECANCELED: the future becomes
 * CANCELLED; anything else: it fails with code) and drops the executor's reference. A
 * task that is no longer pending (cancelled meanwhile) only loses the reference. */
BR__EXT void br__task_abandon(br_task *t, int code);

/* Blocks until f is done, with no deadline and no cancel: a pending cancel of the
 * calling coroutine stays pending. For waits that protect memory (the inputs a map's
 * free waits for borrow the caller's arguments; parallel_for's helpers use its stack),
 * which must not end early whatever happens. f must be live. */
void br__future_wait_done_nocancel(br_future *f);

/* For a worker with nothing to do, before it spins, or after a task when
 * br__blocks_growth_wanted() (blocks.c, "Growing ahead"): if
 * the future blocks started a slab since the last call, faults in the next one ahead
 * of need, so that a submitter outrunning the recycling doesn't pay for fresh pages.
 * True if it did that (it took a while: up to a few ms); false at once otherwise. */
bool br__blocks_grow_ahead(void);
/* Whether a call of br__blocks_grow_ahead would have something to do (a relaxed load:
 * cheap enough for a worker to ask after every task). */
extern _Atomic int br__blocks_grow_wanted[];
static inline bool br__blocks_growth_wanted(void) {
    return atomic_load_explicit(&br__blocks_grow_wanted[0], memory_order_relaxed) != 0;
}

#endif
