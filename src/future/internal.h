/* future/internal.h: what executors need from the future layer. Never installed.
 *
 * An in-process executor never allocates on its own for a task: br__future_alloc_task
 * gives a pending future with its br_task embedded (one block, from a per-thread cache,
 * so steady-state submits don't call malloc). The executor queues the task through the
 * intrusive `next` link, and a worker calls br__task_run, which does everything else:
 * the PENDING -> RUNNING step (skipping cancelled tasks), the deadline check, calling
 * fn, storing the result or failure, waking waiters and running callbacks.
 *
 * References: br_submit_call hands the executor one reference on the future along with
 * the task (vt->submit). The executor gives it up exactly once, by calling either
 * br__task_run (after the task ran or was skipped) or br__task_abandon (a task that will
 * never run: the pool broke or shut down with cancel_futures).
 */
#ifndef BRAID_FUTURE_INTERNAL_H
#define BRAID_FUTURE_INTERNAL_H

#include "braid/executor.h"
#include "braid/future.h"
#include "core/internal.h"

struct br_task {
    br_task *next;       /* the executor's queue link; the executor's while queued */
    br_task_fn fn;
    const void *arg;     /* points at argbuf, argheap or the caller's bytes */
    size_t len;
    int64_t deadline;    /* BR_FOREVER if none */
    void *executor;      /* the executor that runs it; opaque here */
    uintptr_t xdata;     /* free for the executor (e.g. a worker hint) */
    unsigned flags;      /* BR_CALL_* */
    unsigned in_process; /* 1: pointer results allowed */
    void *argheap;       /* heap copy of a big BR_CALL_COPY_ARG argument, or NULL */
    _Alignas(8) unsigned char argbuf[32]; /* inline argument copies up to 32 bytes */
};

/* A bit of br_task.flags kept for the future layer, never a BR_CALL_* flag: the task
 * is run by another task (br_map's chunk runner), whose br_task is in xdata. The child
 * sees the parent's cancellation (br_task_cancelled) as its own. */
#define BR__TASK_CHILD (1u << 31)

/* A pending future with its task zeroed (deadline BR_FOREVER), refs = 1. NULL if out
 * of memory. */
br_future *br__future_alloc_task(void);
br_task *br__future_task(br_future *f);
br_future *br__task_future(br_task *t);

/* Runs t on the calling thread as described above and drops the executor's reference.
 * Returns the task's status (0, the failure code, BR_ECANCELED if it was skipped). */
int br__task_run(br_task *t);
/* Completes a task that will never run with `code` (BR_ECANCELED: the future becomes
 * CANCELLED; anything else: it fails with code) and drops the executor's reference. */
void br__task_abandon(br_task *t, int code);

/* --- watchers ----------------------------------------------------------------------
 *
 * A watcher is the internal, allocation-free cousin of a done-callback, for code that
 * watches many futures at once (br_wait, br_as_completed, later the event loop). The
 * caller owns the node (on its stack, or in an array it allocated once).
 *
 * w->fn runs exactly once, when f becomes done, on the completing thread, WHILE f's
 * internal lock is held: it must be short, must not call into f (reading its state
 * with br_future_done/failed is fine) and may take only leaf locks (a lock under which
 * nothing else is taken). Holding the lock is what makes unwatching safe: once
 * br__future_unwatch returns, fn is not running and never will, so the node and
 * whatever fn touches may go. */
typedef struct br__watcher br__watcher;
struct br__watcher {
    br__watcher *next, *prev;
    void (*fn)(br__watcher *w, br_future *f);
    void *arg;       /* free for the owner */
    uintptr_t data;  /* free for the owner */
    uint32_t linked; /* under f's lock */
};

/* Links w into f: true if linked (w->fn will run once when f is done, unless
 * unwatched first); false if f is done already (w->fn will not run). */
bool br__future_watch(br_future *f, br__watcher *w);
/* Unlinks w: true if it was still linked (fn never runs), false if fn already ran
 * (and has returned). */
bool br__future_unwatch(br_future *f, br__watcher *w);

#endif
