/* The executor-generic entry points: submitting (br_submit*), shutdown and free, and
 * dispatch to the backend's vtable (braid/executor_impl.h); br_executor_init.
 *
 * A submit costs one block from the future layer's per-thread cache (no malloc in
 * steady state), the stores that fill the future and its task (one call,
 * br__task_prepare, which also sets the caller's reference: no atomic increment), and
 * whatever the backend's vt->submit costs. The backend receives one reference with the
 * task and gives it up through br__task_begin/finish (or br__task_run) or
 * br__task_abandon.
 *
 * br_submit_batch makes the futures one slice of BR__BATCH_SLICE at a time and hands
 * each slice to the backend as soon as it is made, through vt->submit_batch (one push,
 * one wake-up per slice in the pool), or a loop of vt->submit for executors without it
 * (version-1 vtables end before the field and never have it): the workers start on the
 * first slice while the next is made. A backend queues a prefix of each slice; the
 * batch stops at the first failure (BR_ENOMEM making a slice's futures included) and
 * drops the futures of every task not queued, so a failure leaves a prefix queued. */
#include "executor/private.h"

#include <string.h>

/* Inlined in each of its callers: br_submit's copy, the hot one, folds the constants
 * (no call, no flags, no deadline) and is one call frame, not two. */
static inline __attribute__((always_inline)) int
submit_task(br_executor *ex, br_task_fn fn, const void *arg, size_t len, int64_t deadline,
            unsigned flags, const br_call *call, br_future **out) {
    unsigned how = ((flags & BR_CALL_COPY_ARG) ? BR__ARG_COPY : BR__ARG_BORROW) |
                   (ex->vt->in_process ? BR__ARG_IN_PROCESS : 0);
    /* Two references when the caller keeps the future (the executor gets one). */
    br_future *f = br__task_prepare(fn, arg, len, how, deadline > 0 ? deadline : BR_FOREVER,
                                    out ? 2 : 1);
    if (BR__UNLIKELY(f == NULL))
        return BR_ENOMEM;
    br_call dflt;
    if (call == NULL) {
        memset(&dflt, 0, sizeof dflt);
        dflt.fn = fn;
        dflt.arg = arg;
        dflt.len = len;
        call = &dflt;
    }
    int rc = ex->vt->submit(ex, br__future_task(f), call);
    if (BR__UNLIKELY(rc != 0)) {
        /* Not queued: both references are still ours. */
        if (out)
            br_future_release(f);
        br_future_release(f);
        return rc;
    }
    if (out)
        *out = f;
    return 0;
}

int br_submit(br_executor *ex, br_task_fn fn, const void *arg, size_t len,
              br_future **out) {
    if (out)
        *out = NULL;
    if (!br__executor_ok(ex) || fn == NULL || (arg == NULL && len > 0))
        return BR__MISUSE(BR_EINVAL, "br_submit: bad executor, fn or arg");
    return submit_task(ex, fn, arg, len, 0, 0, NULL, out);
}

int br_submit_i64(br_executor *ex, br_task_fn fn, int64_t arg, br_future **out) {
    if (out)
        *out = NULL;
    if (!br__executor_ok(ex) || fn == NULL)
        return BR__MISUSE(BR_EINVAL, "br_submit_i64: bad executor or fn");
    return submit_task(ex, fn, &arg, sizeof arg, 0, BR_CALL_COPY_ARG, NULL, out);
}

int br_submit_call(br_executor *ex, const br_call *call, br_future **out) {
    if (out)
        *out = NULL;
    if (!br__executor_ok(ex) || call == NULL || call->fn == NULL ||
        (call->arg == NULL && call->len > 0))
        return BR__MISUSE(BR_EINVAL, "br_submit_call: bad executor or call");
    return submit_task(ex, call->fn, call->arg, call->len, call->deadline, call->flags, call,
                       out);
}

/* Queues tasks[0..n) through the backend: vt->submit_batch where the executor has one
 * (version 2 and up: a version-1 vtable ends before the field, so it is never read
 * there), else vt->submit for each, with the task's own argument in its call. Queues a
 * prefix: *queued tasks are the executor's, the rest are still the caller's. A single
 * task takes vt->submit, the path br_submit takes. */
int br__executor_submit_tasks(br_executor *ex, br_task *const tasks[], size_t n,
                              const br_call *call, size_t *queued) {
    *queued = 0;
    if (n > 1 && ex->version >= 2 && ex->vt->submit_batch != NULL) {
        size_t k = 0;
        int rc = ex->vt->submit_batch(ex, tasks, n, call, &k);
        if (rc == 0)
            k = n;
        else if (k >= n)
            return BR__MISUSE(BR_EINVAL, "vt->submit_batch failed with every task queued");
        *queued = k;
        return rc;
    }
    br_call one = *call;
    for (size_t i = 0; i < n; i++) {
        one.fn = tasks[i]->fn;
        one.arg = br_task_arg(tasks[i], &one.len);
        int rc = ex->vt->submit(ex, tasks[i], &one);
        if (rc != 0)
            return rc;
        *queued = i + 1;
    }
    return 0;
}

/* Drops the references br_submit_batch holds on a task it didn't queue. */
static void batch_drop(br_task *t, unsigned refs) {
    br_future *f = br__task_future(t);
    if (refs == 2)
        br_future_release(f);
    br_future_release(f);
}

int br_submit_batch(br_executor *ex, br_task_fn fn, const void *args, size_t count,
                    size_t size, br_future **out, size_t *queued) {
    if (queued)
        *queued = 0;
    if (out)
        for (size_t i = 0; i < count; i++)
            out[i] = NULL;
    if (!br__executor_ok(ex) || fn == NULL || (args == NULL && count > 0 && size > 0))
        return BR__MISUSE(BR_EINVAL, "br_submit_batch: bad executor, fn or args");
    if (count == 0)
        return 0;
    /* One slice at a time: make its futures, then queue it. The slice lives on the
     * stack, so a batch of any size costs no allocation beyond its futures. */
    unsigned how = BR__ARG_BORROW | (ex->vt->in_process ? BR__ARG_IN_PROCESS : 0);
    unsigned refs = out ? 2 : 1;
    const unsigned char *a = args;
    br_task *slice[BR__BATCH_SLICE];
    br_call call = {.fn = fn, .arg = args, .len = size};
    size_t done = 0;
    int rc = 0;
    while (done < count) {
        size_t n = count - done < BR__BATCH_SLICE ? count - done : BR__BATCH_SLICE;
        for (size_t j = 0; j < n; j++) {
            size_t i = done + j;
            br_future *f = br__task_prepare(fn, size ? a + i * size : NULL, size, how,
                                            BR_FOREVER, refs);
            if (BR__UNLIKELY(f == NULL)) {
                while (j-- > 0)
                    batch_drop(slice[j], refs);
                rc = BR_ENOMEM;
                break;
            }
            slice[j] = br__future_task(f);
        }
        if (rc != 0)
            break;
        size_t k;
        rc = br__executor_submit_tasks(ex, slice, n, &call, &k);
        if (out)
            for (size_t j = 0; j < k; j++)
                out[done + j] = br__task_future(slice[j]);
        done += k;
        if (rc != 0) {
            for (size_t j = k; j < n; j++)
                batch_drop(slice[j], refs);
            break;
        }
    }
    if (queued)
        *queued = done;
    return rc;
}

int br_executor_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    if (!br__executor_ok(ex))
        return BR__MISUSE(BR_EINVAL, "br_executor_shutdown: not a live executor");
    return ex->vt->shutdown(ex, wait, cancel_futures);
}

int br_executor_free(br_executor *ex) {
    if (ex == NULL)
        return BR_EINVAL; /* not a misuse panic: cleanup paths pass NULL */
    if (!br__executor_ok(ex))
        return BR__MISUSE(BR_EINVAL, "br_executor_free: not a live executor");
    int rc = ex->vt->shutdown(ex, true, false);
    if (rc != 0)
        return rc;
    ex->magic = BR__EXECUTOR_DEAD;
    ex->vt->destroy(ex);
    return 0;
}

const char *br_executor_kind(const br_executor *ex) {
    if (!br__executor_ok(ex)) {
        BR__MISUSE(BR_EINVAL, "br_executor_kind: not a live executor");
        return NULL;
    }
    return ex->vt->kind;
}

int br_executor_max_workers(const br_executor *ex) {
    if (!br__executor_ok(ex))
        return BR__MISUSE(BR_EINVAL, "br_executor_max_workers: not a live executor");
    return ex->vt->max_workers(ex);
}

int br_parallel_for(br_executor *ex, int64_t begin, int64_t end, int64_t grain,
                    br_range_fn fn, void *ctx) {
    if (!br__executor_ok(ex) || fn == NULL || grain < 0 || end < begin)
        return BR__MISUSE(BR_EINVAL, "br_parallel_for: bad executor, fn, range or grain");
    if (ex->vt->parallel_for == NULL)
        return BR_ENOTSUP;
    if (begin == end)
        return 0;
    return ex->vt->parallel_for(ex, begin, end, grain, fn, ctx);
}

int br_executor_init_version(br_executor *ex, const br_executor_vt *vt, unsigned version) {
    if (ex == NULL || vt == NULL || vt->kind == NULL || vt->submit == NULL ||
        vt->shutdown == NULL || vt->destroy == NULL || vt->max_workers == NULL)
        return BR__MISUSE(BR_EINVAL, "br_executor_init: NULL executor, vtable or operation");
    /* Each version only appended fields: an older vtable is a prefix of ours. */
    if (version < 1 || version > BR_EXECUTOR_IMPL_VERSION)
        return BR_ENOTSUP;
    ex->vt = vt;
    ex->version = version;
    ex->magic = BR__EXECUTOR_MAGIC;
    return 0;
}
