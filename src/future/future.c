/* The future: its state machine, references, cancellation, the executor side
 * (set_running_or_notify_cancel, set_result, set_exception) and reading the outcome.
 * Listening and blocking waits are in listen.c, the outcome's representation in
 * outcome.c, tasks in task.c, the block cache in cache.c and blocks.c.
 *
 * Design notes.
 *
 * State. One 32-bit word, f->st: the state in the low 3 bits and three flags above
 * (future/private.h).
 *
 *     PENDING --cancel (CAS)------------------------------------> CANCELLED
 *        |  \--set_result/set_exception claim (CAS)--> COMPLETING --> FINISHED
 *        |                                                  ^     \-> CANCELLED (abandon)
 *        +--start (CAS) --> RUNNING --claim (CAS)-----------+
 *        |
 *        +--br__task_begin (CAS) --> RUNNING|INTASK --br__task_finish (RMW)--> FINISHED
 *                                                                         \--> CANCELLED
 *
 * Every change of the state bits is one CAS or one RMW, so the races Python resolves
 * with a lock resolve here by which CAS lands first: cancel against start (exactly one
 * of them moves PENDING on), two completers against each other (one claims
 * COMPLETING, the other gets BR_ESTATE). COMPLETING reads as RUNNING from outside; it
 * exists so that a completer can write the result before anyone may read it. Between
 * br__task_begin and br__task_finish (INTASK) only the task, or its executor, writes
 * the result (br_task_return); the public set_* calls are refused, so the task needs
 * no claim: it finishes with a single fetch_add that moves RUNNING|INTASK to FINISHED
 * (or CANCELLED) and leaves the other flags as they are. Begin and finish may be far
 * apart, and on different threads: a coroutine task suspends in between, and a
 * process pool runs the function in another process and finishes here with the
 * outcome that came back (future/for_executors.h).
 *
 * Publication. The completer writes the outcome (code, and the result or the message,
 * which share r: outcome.c) with plain stores and then publishes the done state with a release
 * RMW; readers load the state with acquire and read the outcome only after seeing
 * done. Nothing writes the outcome after that, until the block is freed.
 *
 * Listeners: waiters, watchers and done-callbacks, and how a completion reaches them
 * without a lock when nobody listens, are in listen.c's design notes.
 *
 * References. refs starts at 1 (2 when a submit keeps one for its caller). The release
 * that takes it to 0 (acq_rel, so it sees every other holder's writes) frees the
 * result and returns the block to the cache.
 *
 * The block. A future and its task are one 128-byte block (private.h has the layout):
 * every live future costs that much memory, and a fresh block costs the first touch of
 * its memory too (the kernel zeroes a page per 32 blocks), so the block holds only
 * what most futures use: a 32-byte result or message (they never coexist), a 16-byte
 * argument copy, one callback. Bigger ones go to the heap.
 */
#include "future/cache.h"

#include <string.h>

void br__future_free(br_future *f) {
    br__outcome_clear(f);
    /* A future released while still pending drops its callbacks unrun; nothing else
     * can be listening (a waiter or watcher holds, or borrows, a reference). */
    for (br__lnode *n = f->u.lst; n;) {
        br__lnode *next = n->next;
        if (n->kind == BR__LN_CB)
            br__free(n);
        n = next;
    }
    if (f->tflags & BR__TF_ARG_HEAP)
        br__free((void *)f->task.a.ref.ptr);
    br__future_unalloc(f);
}

/* --- references ---------------------------------------------------------------------- */

int br_future_new(br_future **out) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_future_new: out is NULL");
    br_future *f = br__future_alloc(1);
    if (f == NULL)
        return BR_ENOMEM;
    *out = f;
    return 0;
}

void br_future_retain(br_future *f) {
    if (!br__future_ok(f)) {
        BR__MISUSE(BR_EINVAL, "br_future_retain: not a live future");
        return;
    }
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
}

void br_future_release(br_future *f) {
    if (!br__future_ok(f)) {
        BR__MISUSE(BR_EINVAL, "br_future_release: not a live future");
        return;
    }
    br__future_unref(f);
}

/* --- state queries -------------------------------------------------------------------- */

const char *br_future_state_name(br_future_state state) {
    switch (state) {
    case BR_FUTURE_PENDING:
        return "PENDING";
    case BR_FUTURE_RUNNING:
        return "RUNNING";
    case BR_FUTURE_FINISHED:
        return "FINISHED";
    case BR_FUTURE_CANCELLED:
        return "CANCELLED";
    }
    return "UNKNOWN";
}

br_future_state br_future_state_of(const br_future *f) {
    if (!br__future_ok(f)) {
        BR__MISUSE(BR_EINVAL, "br_future_state_of: not a live future");
        return BR_FUTURE_PENDING;
    }
    uint32_t s = br__future_state(f) & BR__FS_MASK;
    return s == BR__FS_COMPLETING ? BR_FUTURE_RUNNING : (br_future_state)s;
}

bool br_future_done(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_done: not a live future"), false;
    return br__fs_done(br__future_state(f));
}

bool br_future_running(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_running: not a live future"), false;
    uint32_t s = br__future_state(f) & BR__FS_MASK;
    return s == BR__FS_RUNNING || s == BR__FS_COMPLETING;
}

bool br_future_cancelled(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_cancelled: not a live future"), false;
    return (br__future_state(f) & BR__FS_MASK) == BR__FS_CANCELLED;
}

bool br_future_failed(const br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_failed: not a live future"), false;
    return (br__future_state(f) & BR__FS_MASK) == BR__FS_FINISHED && f->code < 0;
}

/* --- cancellation ----------------------------------------------------------------------- */

/* PENDING -> CANCELLED. Returns 1 if this call cancelled, 0 if it was already
 * cancelled, -1 if it is running or finished (*s holds the state seen). */
static int cancel_pending(br_future *f, uint32_t *sp) {
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if (st == BR__FS_CANCELLED) {
            *sp = s;
            return 0;
        }
        if (st != BR__FS_PENDING) {
            *sp = s;
            return -1;
        }
        if (atomic_compare_exchange_weak_explicit(&f->st, &s,
                                                  (s & ~(uint32_t)BR__FS_MASK) |
                                                      BR__FS_CANCELLED,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (s & BR__FF_LISTENERS)
                br__future_notify(f, true);
            return 1;
        }
    }
}

/* A running coroutine task (BR__TF_HOME): the request goes to its coroutine too
 * (for_executors.h, "A task's home"). */
static void cancel_home(br_future *f) {
    br__ilock_lock(&f->lock);
    void *home = (void *)f->task.next;
    if (home != NULL)
        atomic_load_explicit(&br__task_home_cancel, memory_order_acquire)(home);
    br__ilock_unlock(&f->lock);
}

bool br_future_cancel(br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_cancel: not a live future"), false;
    uint32_t s;
    if (cancel_pending(f, &s) >= 0)
        return true;
    /* A running coroutine task is cancelled as asyncio's Task.cancel(): a request. */
    if (BR__UNLIKELY(f->tflags & BR__TF_CANCEL_REQUESTS))
        return br_future_request_cancel(f);
    return false;
}

bool br_future_request_cancel(br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_request_cancel: not a live future"), false;
    uint32_t s;
    if (cancel_pending(f, &s) >= 0)
        return true;
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if (st == BR__FS_FINISHED)
            return false;
        if (st == BR__FS_CANCELLED)
            return true;
        /* RUNNING or COMPLETING: raise the flag the task polls. */
        if (atomic_compare_exchange_weak_explicit(&f->st, &s, s | BR__FF_CANCEL_REQ,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed)) {
            if (BR__UNLIKELY(f->tflags & BR__TF_HOME))
                cancel_home(f);
            return true;
        }
    }
}

/* --- the executor side ---------------------------------------------------------------- */

bool br_future_set_running_or_notify_cancel(br_future *f) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_set_running_or_notify_cancel: not a live future"),
               false;
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if (st == BR__FS_CANCELLED)
            return false;
        if (st != BR__FS_PENDING)
            return BR__MISUSE(BR_EINVAL,
                              "br_future_set_running_or_notify_cancel: already running or done"),
                   false;
        if (atomic_compare_exchange_weak_explicit(&f->st, &s, s | BR__FS_RUNNING,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    }
}

/* Claims the completion: PENDING or RUNNING (not inside a task) -> COMPLETING. */
static int claim(br_future *f) {
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    for (;;) {
        uint32_t st = s & BR__FS_MASK;
        if ((st != BR__FS_PENDING && st != BR__FS_RUNNING) || (s & BR__FF_INTASK))
            return BR_ESTATE;
        if (atomic_compare_exchange_weak_explicit(&f->st, &s,
                                                  (s & ~(uint32_t)BR__FS_MASK) |
                                                      BR__FS_COMPLETING,
                                                  memory_order_acquire,
                                                  memory_order_relaxed))
            return 0;
    }
}

/* COMPLETING -> `to`, publishing the outcome written since the claim. */
static void publish(br_future *f, uint32_t to) {
    uint32_t old = atomic_fetch_add_explicit(&f->st, to - (uint32_t)BR__FS_COMPLETING,
                                             memory_order_release);
    if (old & BR__FF_LISTENERS)
        br__future_notify(f, true);
}

/* Claims, puts the staged outcome and publishes; o is dropped if the claim fails. */
static int complete(br_future *f, br__outcome *o, int code) {
    int rc = claim(f);
    if (rc != 0) {
        br__outcome_drop(o);
        return rc;
    }
    br__outcome_put(f, o);
    f->code = code;
    publish(f, BR__FS_FINISHED);
    return 0;
}

int br_future_set_result(br_future *f, const void *data, size_t len) {
    if (!br__future_ok(f) || (data == NULL && len > 0))
        return BR__MISUSE(BR_EINVAL, "br_future_set_result: bad future or data");
    br__outcome o;
    if (br__outcome_bytes(&o, data, len) != 0)
        return BR_ENOMEM;
    return complete(f, &o, 0);
}

int br_future_set_result_i64(br_future *f, int64_t value) {
    return br_future_set_result(f, &value, sizeof value);
}

int br_future_set_result_ptr(br_future *f, void *ptr, void (*dtor)(void *ptr)) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_set_result_ptr: not a live future");
    br__outcome o;
    br__outcome_ptr(&o, ptr, dtor);
    return complete(f, &o, 0);
}

int br_future_set_exception(br_future *f, int code, const char *msg) {
    if (!br__future_ok(f) || code >= 0)
        return BR__MISUSE(BR_EINVAL, "br_future_set_exception: bad future or code >= 0");
    br__outcome o;
    if (br__outcome_msg(&o, msg, msg ? strlen(msg) : 0, true) != 0)
        return BR_ENOMEM;
    return complete(f, &o, code);
}

/* --- reading ------------------------------------------------------------------------------ */

/* Waits, then returns 0 if f finished successfully, or its failure code, or
 * BR_ECANCELED. */
static int wait_outcome(br_future *f, int64_t deadline) {
    int rc = br__future_wait_done(f, deadline);
    if (rc != 0)
        return rc;
    if ((br__future_state(f) & BR__FS_MASK) == BR__FS_CANCELLED)
        return BR_ECANCELED;
    return f->code;
}

int br_future_result(br_future *f, int64_t deadline, const void **data, size_t *len) {
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_result: not a live future");
    int rc = wait_outcome(f, deadline);
    if (rc != 0)
        return rc;
    size_t l;
    const void *d = br__outcome_data(f, &l);
    if (data)
        *data = d;
    if (len)
        *len = l;
    return 0;
}

int br_future_result_i64(br_future *f, int64_t deadline, int64_t *out) {
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_result_i64: not a live future");
    int rc = wait_outcome(f, deadline);
    if (rc != 0)
        return rc;
    if (f->rkind != BR__R_INLINE || f->rlen != sizeof(int64_t))
        return BR_EINVAL; /* another kind of result: a probe, not misuse (no panic) */
    if (out)
        memcpy(out, f->r.buf, sizeof(int64_t));
    return 0;
}

/* Reads (or, with take, moves out) a pointer result. Taking is one fetch_or of
 * BR__FF_TAKEN on the state word, so of two racing takes exactly one wins; the result
 * fields were published by the completion (wait_outcome's acquire) and stay as they are. */
static int ptr_result(br_future *f, int64_t deadline, void **out, bool take,
                      const char *what) {
    if (out)
        *out = NULL;
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, what);
    int rc = wait_outcome(f, deadline);
    if (rc != 0)
        return rc;
    if (f->rkind != BR__R_PTR)
        return BR_EINVAL; /* another kind of result: a probe, not misuse (no panic) */
    uint32_t s = take ? atomic_fetch_or_explicit(&f->st, BR__FF_TAKEN, memory_order_acq_rel)
                      : br__future_state(f);
    if (s & BR__FF_TAKEN)
        return BR_ESTATE;
    if (out)
        *out = f->r.ptr.p;
    return 0;
}

int br_future_result_ptr(br_future *f, int64_t deadline, void **out) {
    return ptr_result(f, deadline, out, false, "br_future_result_ptr: not a live future");
}

int br_future_take_ptr(br_future *f, int64_t deadline, void **out) {
    return ptr_result(f, deadline, out, true, "br_future_take_ptr: not a live future");
}

int br_future_result_str(br_future *f, int64_t deadline, const char **out) {
    if (out)
        *out = NULL;
    const void *d;
    size_t len;
    int rc = br_future_result(f, deadline, &d, &len);
    if (rc != 0)
        return rc;
    if (len == 0 || ((const char *)d)[len - 1] != '\0')
        return BR_EINVAL; /* another kind of result: a probe, not misuse (no panic) */
    if (out)
        *out = d;
    return 0;
}

int br_future_exception(br_future *f, int64_t deadline, int *code, const char **msg) {
    if (code)
        *code = 0;
    if (msg)
        *msg = NULL;
    if (!br__future_ok(f))
        return BR__MISUSE(BR_EINVAL, "br_future_exception: not a live future");
    int rc = br__future_wait_done(f, deadline);
    if (rc != 0)
        return rc;
    if ((br__future_state(f) & BR__FS_MASK) == BR__FS_CANCELLED)
        return BR_ECANCELED;
    if (code)
        *code = f->code;
    if (msg)
        *msg = f->code < 0 ? br__future_msg(f) : NULL;
    return 0;
}
