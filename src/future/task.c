/* The task: its home. Preparing one (the block, the argument), what its function sees
 * (braid/task.h), and running it in two steps for an executor: begin (claim) and
 * finish (settle, publish, notify, release), with abandon for a task that never runs
 * (future/for_executors.h; braid/executor_impl.h is the same contract, public).
 *
 * Design notes.
 *
 * The task lives in its future's block (future/private.h): while it runs it writes the
 * future's outcome directly (outcome.c), with no claim and no lock, because between
 * br__task_begin and br__task_finish the state word has INTASK and nobody else may
 * (future.c's design notes). Begin is one CAS, PENDING -> RUNNING|INTASK; finish is one
 * RMW that moves RUNNING|INTASK to the final state and keeps the other flags, and takes
 * f->lock only if a listener registered meanwhile. So a task nobody waits on costs one
 * CAS, one RMW and its reference drop.
 *
 * Settling (br__task_finish) turns the function's return value into the final state,
 * as braid/task.h's table says. Two rules need the state word: BR_ECANCELED means
 * CANCELLED only if a cancel was requested (on the task, or on the task running it:
 * `parent`, a chunk runner), and otherwise, if the deadline passed, a timeout.
 *
 * Nothing here knows where the function ran. An in-process executor calls
 * br__task_call between begin and finish; a process pool ships fn and the argument to
 * another process and, when the outcome comes back, stores it with br_task_return /
 * br_task_fail (allowed for a begun task from any thread: the executor owns it) and
 * finishes; a coroutine task begins, suspends and resumes many times, and finishes.
 */
#include "future/cache.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static inline br_future *fut(const br_task *t) {
    return br__task_future((br_task *)t);
}

/* True while t is begun and not finished (the only time its outcome may be written). */
static bool in_task(const br_task *t) {
    return t != NULL &&
           (atomic_load_explicit(&fut(t)->st, memory_order_relaxed) & BR__FF_INTASK) != 0;
}

bool br__task_begun(const br_task *t) { return in_task(t); }

static bool cancel_requested(const br_task *t);

/* --- preparing ------------------------------------------------------------------------- */

br_future *br__task_prepare(br_task_fn fn, const void *arg, size_t len, unsigned how,
                            int64_t deadline, unsigned refs) {
    br_future *f = br__future_alloc(refs);
    if (BR__UNLIKELY(f == NULL))
        return NULL;
    br_task *t = &f->task;
    t->fn = fn;
    t->deadline = deadline;
    uint16_t tf = (how & BR__ARG_IN_PROCESS) ? BR__TF_IN_PROCESS : 0;
    /* A borrowed argument on the running shared-stack coroutine's stack would not be at
     * its address while that coroutine waits for the task (its frames are copied out:
     * core/lib.h, park memory): it is copied instead. */
    if (BR__UNLIKELY(len > 0 && br__on_shared_stack(arg)))
        how |= BR__ARG_COPY;
    if (!(how & BR__ARG_COPY) || len == 0) {
        t->a.ref.ptr = arg;
        t->a.ref.len = len;
    } else if (len <= BR__INLINE_ARG) {
        memcpy(t->a.bytes, arg, len);
        tf |= (uint16_t)(BR__TF_ARG_INLINE | (len << BR__TF_ARG_LEN_SHIFT));
    } else {
        void *heap = br__malloc(len);
        if (heap == NULL) {
            br__future_unalloc(f);
            return NULL;
        }
        memcpy(heap, arg, len);
        t->a.ref.ptr = heap;
        t->a.ref.len = len;
        tf |= BR__TF_ARG_HEAP;
    }
    f->tflags = tf;
    return f;
}

void br__task_set_arg(br_task *t, const void *arg, size_t len) {
    br_future *f = fut(t);
    if (f->tflags & BR__TF_ARG_HEAP)
        br__free((void *)t->a.ref.ptr);
    f->tflags &= (uint16_t) ~(BR__TF_ARG_INLINE | BR__TF_ARG_HEAP |
                              (0xffu << BR__TF_ARG_LEN_SHIFT));
    t->a.ref.ptr = arg;
    t->a.ref.len = len;
}

int br__task_copy_arg(br_task *t, const void *arg, size_t len) {
    br_future *f = fut(t);
    if (len <= BR__INLINE_ARG) {
        br__task_set_arg(t, NULL, 0);
        if (len)
            memcpy(t->a.bytes, arg, len);
        f->tflags |= (uint16_t)(BR__TF_ARG_INLINE | (len << BR__TF_ARG_LEN_SHIFT));
        return 0;
    }
    void *heap = br__malloc(len);
    if (heap == NULL)
        return BR_ENOMEM;
    memcpy(heap, arg, len);
    br__task_set_arg(t, heap, len);
    f->tflags |= BR__TF_ARG_HEAP;
    return 0;
}

int br__task_own_arg(br_task *t) {
    br_future *f = fut(t);
    if (f->tflags & (BR__TF_ARG_INLINE | BR__TF_ARG_HEAP))
        return 0;
    return br__task_copy_arg(t, t->a.ref.ptr, t->a.ref.len);
}

void br__task_swap_arg(br_task *t, void *handle, size_t len) {
    br__task_set_arg(t, handle, len);
}

bool br__task_cancel_requested(const br_task *t) { return cancel_requested(t); }

void br__task_set_in_process(br_task *t, bool in_process) {
    br_future *f = fut(t);
    if (in_process)
        f->tflags |= BR__TF_IN_PROCESS;
    else
        f->tflags &= (uint16_t)~BR__TF_IN_PROCESS;
}

void br__task_set_parent(br_task *t, br_task *parent) { t->parent = parent; }

/* --- what the function sees ------------------------------------------------------------ */

const void *br_task_arg(const br_task *t, size_t *len) {
    if (t == NULL) {
        if (len)
            *len = 0;
        return NULL;
    }
    uint16_t tf = fut(t)->tflags;
    if (tf & BR__TF_ARG_INLINE) {
        if (len)
            *len = (size_t)(tf >> BR__TF_ARG_LEN_SHIFT);
        return t->a.bytes;
    }
    if (len)
        *len = t->a.ref.len;
    return t->a.ref.ptr;
}

int64_t br_task_arg_i64(const br_task *t) {
    int64_t v = 0;
    size_t len;
    const void *arg = br_task_arg(t, &len);
    if (len == sizeof v && arg != NULL)
        memcpy(&v, arg, sizeof v);
    return v;
}

int br_task_return(br_task *t, const void *data, size_t len) {
    if (!in_task(t) || (data == NULL && len > 0))
        return BR__MISUSE(BR_EINVAL, "br_task_return: not inside a running task, or bad data");
    /* A message from an earlier br_task_fail goes with the old result: success is
     * intended. On BR_ENOMEM nothing changes. */
    br__outcome o;
    if (br__outcome_bytes(&o, data, len) != 0)
        return BR_ENOMEM;
    br__outcome_put(fut(t), &o);
    return 0;
}

int br__task_result_adopt(br_task *t, void *heap, size_t len) {
    if (!in_task(t) || heap == NULL || len == 0)
        return BR_ESTATE;
    br_future *f = fut(t);
    br__outcome o;
    if (len <= BR__INLINE_RESULT) {
        (void)br__outcome_bytes(&o, heap, len); /* inline: can't fail */
        br__free(heap);
    } else {
        br__outcome_heap(&o, heap, len);
    }
    br__outcome_put(f, &o);
    return 0;
}

int br_task_return_str(br_task *t, const char *s) {
    if (s == NULL)
        return BR__MISUSE(BR_EINVAL, "br_task_return_str: NULL string");
    return br_task_return(t, s, strlen(s) + 1);
}

int br_task_return_i64(br_task *t, int64_t value) {
    if (!in_task(t))
        return BR__MISUSE(BR_EINVAL, "br_task_return_i64: not inside a running task");
    br__outcome o;
    (void)br__outcome_bytes(&o, &value, sizeof value); /* inline: can't fail */
    br__outcome_put(fut(t), &o);
    return 0;
}

int br_task_return_ptr(br_task *t, void *ptr, void (*dtor)(void *ptr)) {
    if (!in_task(t))
        return BR__MISUSE(BR_EINVAL, "br_task_return_ptr: not inside a running task");
    br_future *f = fut(t);
    if (!(f->tflags & BR__TF_IN_PROCESS))
        return BR_ENOTSUP;
    br__outcome o;
    br__outcome_ptr(&o, ptr, dtor);
    br__outcome_put(f, &o);
    return 0;
}

int br_task_fail(br_task *t, int code, const char *fmt, ...) {
    if (code >= 0)
        code = BR_EINVAL;
    if (!in_task(t))
        return BR__MISUSE(BR_EINVAL, "br_task_fail: not inside a running task");
    br_future *f = fut(t);
    br__outcome_clear(f); /* failure intended: no result (and no older message) */
    if (fmt == NULL)
        return code;
    br__outcome o;
    va_list ap;
    va_start(ap, fmt);
    br__outcome_msgv(&o, fmt, ap);
    va_end(ap);
    br__outcome_put(f, &o);
    return code;
}

/* --- a task's home (for_executors.h) ----------------------------------------------- */

void (*_Atomic br__task_home_cancel)(void *home);

void br__task_mark_home(br_task *t, bool cancel_requests) {
    fut(t)->tflags |= (uint16_t)(BR__TF_HOME | (cancel_requests ? BR__TF_CANCEL_REQUESTS : 0));
}

void br__task_set_home(br_task *t, void *home) {
    br_future *f = fut(t);
    br__ilock_lock(&f->lock);
    t->next = home;
    br__ilock_unlock(&f->lock);
}

/* br_future_request_cancel reached t, or the task running it. */
static bool cancel_requested(const br_task *t) {
    for (; t != NULL; t = t->parent)
        if (atomic_load_explicit(&fut(t)->st, memory_order_relaxed) & BR__FF_CANCEL_REQ)
            return true;
    return false;
}

/* A cancel flag outside the future (a process pool worker's, in shared memory), for
 * the one task this thread runs for another process (br__task_set_external_cancel). */
static _Thread_local struct {
    const br_task *t;
    const _Atomic uint32_t *word;
} ext_cancel;

void br__task_set_external_cancel(const br_task *t, const _Atomic uint32_t *word) {
    ext_cancel.t = word ? t : NULL;
    ext_cancel.word = word;
}

bool br_task_cancelled(const br_task *t) {
    for (; t != NULL; t = t->parent)
        if ((atomic_load_explicit(&fut(t)->st, memory_order_relaxed) & BR__FF_CANCEL_REQ) ||
            br__deadline_passed(t->deadline) ||
            (BR__UNLIKELY(t == ext_cancel.t) &&
             atomic_load_explicit(ext_cancel.word, memory_order_relaxed) != 0))
            return true;
    return false;
}

int64_t br_task_deadline(const br_task *t) { return t ? t->deadline : BR_FOREVER; }

/* --- running: begin, finish, abandon ---------------------------------------------------- */

/* RUNNING|INTASK -> `to`, flags kept: one RMW that publishes the outcome; then the
 * listeners, and the executor's reference goes (it covers the callbacks). */
static void publish_and_release(br_future *f, uint32_t to) {
    uint32_t old = atomic_fetch_add_explicit(
        &f->st, to - (uint32_t)(BR__FS_RUNNING | BR__FF_INTASK), memory_order_release);
    if (BR__UNLIKELY(old & BR__FF_LISTENERS))
        br__future_notify(f, false);
    br__future_unref(f);
}

bool br__task_begin(br_task *t) {
    br_future *f = fut(t);
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    do {
        if (BR__UNLIKELY((s & BR__FS_MASK) != BR__FS_PENDING)) {
            /* Cancelled while queued (or completed from outside): skip it. */
            br__future_unref(f);
            return false;
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &f->st, &s, s | BR__FS_RUNNING | BR__FF_INTASK, memory_order_acquire,
        memory_order_relaxed));
    if (BR__UNLIKELY(br__deadline_passed(t->deadline))) {
        f->code = BR_ETIMEDOUT; /* expired in the queue: never runs */
        publish_and_release(f, BR__FS_FINISHED);
        return false;
    }
    return true;
}

/* Turns the function's return value into the final state, fixing the outcome. */
static uint32_t settle(br_future *f, int *rcp) {
    int rc = *rcp;
    if (BR__LIKELY(rc == 0)) {
        if (BR__UNLIKELY(f->rkind >= BR__R_MSG))
            br__outcome_clear(f); /* a message from br_task_fail, then success */
        f->code = 0;
        return BR__FS_FINISHED;
    }
    br__outcome_clear_result(f);
    if (rc > 0) {
        char m[BR__INLINE_MSG];
        int n = snprintf(m, sizeof m, "task returned %d (> 0)", rc);
        br__outcome o;
        (void)br__outcome_msg(&o, m, (size_t)n, false);
        br__outcome_put(f, &o);
        rc = BR_EINVAL;
    } else if (rc == BR_ECANCELED) {
        if (cancel_requested(&f->task)) {
            br__outcome_clear(f);
            f->code = 0;
            *rcp = rc;
            return BR__FS_CANCELLED;
        }
        if (br__deadline_passed(f->task.deadline)) {
            br__outcome_clear(f);
            rc = BR_ETIMEDOUT;
        }
    }
    f->code = rc;
    *rcp = rc;
    return BR__FS_FINISHED;
}

int br__task_finish(br_task *t, int rc) {
    br_future *f = fut(t);
    uint32_t to = settle(f, &rc);
    publish_and_release(f, to);
    return rc;
}

int br__task_run(br_task *t) {
    int64_t dl = t->deadline;
    if (!br__task_begin(t))
        return br__deadline_passed(dl) ? BR_ETIMEDOUT : BR_ECANCELED;
    return br__task_finish(t, br__task_call(t));
}

void br__task_abandon(br_task *t, int code) {
    br_future *f = fut(t);
    if (code >= 0)
        code = BR__MISUSE(BR_EINVAL, "br__task_abandon: code must be < 0");
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    while ((s & BR__FS_MASK) == BR__FS_PENDING) {
        uint32_t to = code == BR_ECANCELED ? BR__FS_CANCELLED : BR__FS_COMPLETING;
        if (atomic_compare_exchange_weak_explicit(&f->st, &s,
                                                  (s & ~(uint32_t)BR__FS_MASK) | to,
                                                  memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (to == BR__FS_COMPLETING) {
                f->code = code;
                s = atomic_fetch_add_explicit(
                    &f->st, (uint32_t)BR__FS_FINISHED - (uint32_t)BR__FS_COMPLETING,
                    memory_order_release);
            }
            if (s & BR__FF_LISTENERS)
                br__future_notify(f, false);
            break;
        }
    }
    br__future_unref(f);
}
