/* A task as its function sees it (br_task_*), and how an executor runs or drops one
 * (br__task_run, br__task_abandon). The task lives inside its future's block; while it
 * runs (the future's state has INTASK) it writes the future's outcome directly, with
 * no claim and no lock, because nobody else may (see future.c's design notes).
 *
 * Outcome of a task that returned rc:
 *   0                          FINISHED with the result set by br_task_return* (or none)
 *   > 0                        FINISHED, failed with BR_EINVAL (a task must return <= 0)
 *   BR_ECANCELED, after br_future_request_cancel (on it, or on the task running it)
 *                              CANCELLED
 *   BR_ECANCELED, its deadline passed and no cancel was requested
 *                              FINISHED, failed with BR_ETIMEDOUT
 *   other < 0                  FINISHED, failed with rc and the br_task_fail message
 * A task whose deadline passed before it started never runs: FINISHED, BR_ETIMEDOUT.
 */
#include "future/impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static inline br_future *fut(const br_task *t) {
    return br__task_future((br_task *)t);
}

/* True while t runs inside br__task_run (the only time it may write its outcome). */
static bool in_task(const br_task *t) {
    return t != NULL &&
           (atomic_load_explicit(&fut(t)->st, memory_order_relaxed) & BR__FF_INTASK) != 0;
}

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

/* Drops a result the task set, keeping a failure message. */
static void drop_result(br_future *f) {
    if (f->rkind != BR__R_MSG && f->rkind != BR__R_MSGHEAP)
        br__result_clear(f);
}

int br_task_return(br_task *t, const void *data, size_t len) {
    if (!in_task(t) || (data == NULL && len > 0))
        return BR__MISUSE(BR_EINVAL, "br_task_return: not inside a running task, or bad data");
    br_future *f = fut(t);
    /* A message from an earlier br_task_fail goes with the old result: success is
     * intended. */
    if (len > BR__INLINE_RESULT) {
        void *heap = br__malloc(len);
        if (heap == NULL)
            return BR_ENOMEM;
        memcpy(heap, data, len);
        br__result_clear(f);
        f->rkind = BR__R_HEAP;
        f->r.heap.p = heap;
        f->r.heap.len = len;
    } else {
        br__result_clear(f);
        f->rkind = BR__R_INLINE;
        f->rlen = (uint8_t)len;
        if (len)
            memcpy(f->r.buf, data, len);
    }
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
    br_future *f = fut(t);
    if (BR__UNLIKELY(f->rkind > BR__R_INLINE))
        br__result_clear(f);
    f->rkind = BR__R_INLINE;
    memcpy(f->r.buf, &value, sizeof value);
    f->rlen = sizeof value;
    return 0;
}

int br_task_return_ptr(br_task *t, void *ptr, void (*dtor)(void *ptr)) {
    if (!in_task(t))
        return BR__MISUSE(BR_EINVAL, "br_task_return_ptr: not inside a running task");
    br_future *f = fut(t);
    if (!(f->tflags & BR__TF_IN_PROCESS))
        return BR_ENOTSUP;
    br__result_clear(f);
    f->rkind = BR__R_PTR;
    f->r.ptr.p = ptr;
    f->r.ptr.dtor = dtor;
    return 0;
}

int br_task_fail(br_task *t, int code, const char *fmt, ...) {
    if (code >= 0)
        code = BR_EINVAL;
    if (!in_task(t))
        return BR__MISUSE(BR_EINVAL, "br_task_fail: not inside a running task");
    br_future *f = fut(t);
    br__result_clear(f); /* failure intended: no result (and no older message) */
    if (fmt == NULL)
        return code;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    char *buf = (char *)f->r.buf;
    int n = vsnprintf(buf, BR__INLINE_MSG, fmt, ap);
    va_end(ap);
    if (n >= 0)
        f->rkind = BR__R_MSG;
    if (n >= BR__INLINE_MSG) {
        char *heap = br__malloc((size_t)n + 1);
        if (heap) { /* else keep the truncated inline copy */
            vsnprintf(heap, (size_t)n + 1, fmt, ap2);
            f->r.heap.p = heap;
            f->r.heap.len = (size_t)n;
            f->rkind = BR__R_MSGHEAP;
        }
    }
    va_end(ap2);
    return code;
}

/* br_future_request_cancel reached t (or the task running it, for a child). */
static bool cancel_requested(const br_task *t) {
    if (atomic_load_explicit(&fut(t)->st, memory_order_relaxed) & BR__FF_CANCEL_REQ)
        return true;
    if (BR__UNLIKELY(fut(t)->tflags & BR__TF_CHILD))
        return cancel_requested((const br_task *)t->xdata);
    return false;
}

bool br_task_cancelled(const br_task *t) {
    if (t == NULL)
        return false;
    if (cancel_requested(t))
        return true;
    if (br__deadline_passed(t->deadline))
        return true;
    return BR__UNLIKELY(fut(t)->tflags & BR__TF_CHILD) &&
           br_task_cancelled((const br_task *)t->xdata);
}

int64_t br_task_deadline(const br_task *t) { return t ? t->deadline : BR_FOREVER; }

/* Turns the task's return value into the final state, fixing the outcome. */
static uint32_t settle(br_future *f, int *rcp) {
    int rc = *rcp;
    if (BR__LIKELY(rc == 0)) {
        if (BR__UNLIKELY(f->rkind >= BR__R_MSG))
            br__result_clear(f); /* a message from br_task_fail, then success */
        f->code = 0;
        return BR__FS_FINISHED;
    }
    drop_result(f);
    if (rc > 0) {
        char m[BR__INLINE_MSG];
        int n = snprintf(m, sizeof m, "task returned %d (> 0)", rc);
        br__msg_set(f, m, (size_t)n);
        rc = BR_EINVAL;
    } else if (rc == BR_ECANCELED) {
        if (cancel_requested(&f->task)) {
            br__result_clear(f);
            f->code = 0;
            *rcp = rc;
            return BR__FS_CANCELLED;
        }
        if (br__deadline_passed(f->task.deadline)) {
            br__result_clear(f);
            rc = BR_ETIMEDOUT;
        }
    }
    f->code = rc;
    *rcp = rc;
    return BR__FS_FINISHED;
}

int br__task_run(br_task *t) {
    br_future *f = br__task_future(t);
    uint32_t s = atomic_load_explicit(&f->st, memory_order_relaxed);
    do {
        if (BR__UNLIKELY((s & BR__FS_MASK) != BR__FS_PENDING)) {
            /* Cancelled while queued (or completed from outside): skip it. */
            br__future_unref(f);
            return BR_ECANCELED;
        }
    } while (!atomic_compare_exchange_weak_explicit(
        &f->st, &s, s | BR__FS_RUNNING | BR__FF_INTASK, memory_order_acquire,
        memory_order_relaxed));

    int rc;
    uint32_t to;
    if (BR__UNLIKELY(br__deadline_passed(t->deadline))) {
        rc = BR_ETIMEDOUT;
        f->code = rc;
        to = BR__FS_FINISHED;
    } else {
        rc = t->fn(t);
        to = settle(f, &rc);
    }
    /* RUNNING|INTASK -> `to`, flags kept: one RMW that publishes the outcome. */
    uint32_t old = atomic_fetch_add_explicit(
        &f->st, to - (uint32_t)(BR__FS_RUNNING | BR__FF_INTASK), memory_order_release);
    if (BR__UNLIKELY(old & BR__FF_LISTENERS))
        br__future_notify(f, false); /* the executor's reference covers the callbacks */
    br__future_unref(f);
    return rc;
}

void br__task_abandon(br_task *t, int code) {
    br_future *f = br__task_future(t);
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
