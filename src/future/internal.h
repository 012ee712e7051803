/* future/internal.h: what executors need from the future layer. Never installed.
 *
 * An in-process executor never allocates on its own for a task: br__task_prepare (or
 * br__future_alloc_task) gives a pending future with its br_task embedded (one block,
 * from a per-thread cache backed by slabs, so submits don't call malloc). The executor queues the task through the
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

/* The part of a future's block that executors use (future/impl.h has the rest). The
 * argument, the flags and the owning future are reached through the functions below;
 * the fields here are the executor's to read and write while it owns the task. */
struct br_task {
    br_task *next;       /* the executor's queue link; the executor's while queued */
    br_task_fn fn;
    union {              /* the argument: the caller's bytes, a heap copy, or inline */
        struct {
            const void *ptr;
            size_t len;
        } ref;
        _Alignas(8) unsigned char bytes[16];
    } a;
    int64_t deadline;    /* BR_FOREVER if none */
    uintptr_t xdata;     /* free for the executor (the pool keeps the real fn here); a
                          * child task (BR__TASK_CHILD) keeps its parent's br_task */
};

/* Inline argument copies: up to this many bytes live in the task (no allocation). */
enum { BR__INLINE_ARG = 16 };

/* A pending future with its task zeroed (no argument, deadline BR_FOREVER), refs = 1.
 * NULL if out of memory. */
br_future *br__future_alloc_task(void);
br_task *br__future_task(br_future *f);
br_future *br__task_future(br_task *t);

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
br_future *br__task_prepare(br_task_fn fn, const void *arg, size_t len, unsigned how,
                            int64_t deadline, unsigned refs);
/* The argument, set after br__future_alloc_task: borrowed, or copied (0 or
 * BR_ENOMEM). */
void br__task_set_arg(br_task *t, const void *arg, size_t len);
int br__task_copy_arg(br_task *t, const void *arg, size_t len);
/* Pointer results allowed (in-process executors); off after br__future_alloc_task. */
void br__task_set_in_process(br_task *t, bool in_process);
/* t is run by another task, `parent` (br_map's chunk runner), and sees the parent's
 * cancellation (br_task_cancelled) as its own. Uses t->xdata. */
void br__task_set_parent(br_task *t, br_task *parent);

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
/* A listener: a node in a future's one list of waiters, watchers and callbacks
 * (future.c's design notes). Only the future layer looks inside. */
typedef struct br__lnode {
    struct br__lnode *next, *prev;
    uint32_t kind;   /* future.c: a watcher, a blocked waiter or a done-callback */
    uint32_t linked; /* under f's lock */
} br__lnode;

typedef struct br__watcher br__watcher;
struct br__watcher {
    br__lnode node;  /* first: the future's list links it */
    void (*fn)(br__watcher *w, br_future *f);
    void *arg;       /* free for the owner */
    uintptr_t data;  /* free for the owner */
};

/* Links w into f: true if linked (w->fn will run once when f is done, unless
 * unwatched first); false if f is done already (w->fn will not run). */
bool br__future_watch(br_future *f, br__watcher *w);
/* Unlinks w: true if it was still linked (fn never runs), false if fn already ran
 * (and has returned). */
bool br__future_unwatch(br_future *f, br__watcher *w);

#endif
