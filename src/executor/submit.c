/* The executor-generic entry points: submitting (br_submit*), shutdown and free, and
 * dispatch to the backend's vtable (braid/executor_impl.h); br_executor_init.
 *
 * A submit costs one block from the future layer's per-thread cache (no malloc in
 * steady state), the stores that fill the future and its task (one call,
 * br__task_prepare, which also sets the caller's reference: no atomic increment), and
 * whatever the backend's vt->submit costs. The backend receives one reference with the
 * task and gives it up through br__task_begin/finish (or br__task_run) or
 * br__task_abandon. */
#include "executor/private.h"

#include <string.h>

static int submit_task(br_executor *ex, br_task_fn fn, const void *arg, size_t len,
                       int64_t deadline, unsigned flags, const br_call *call,
                       br_future **out) {
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
    if (version != BR_EXECUTOR_IMPL_VERSION)
        return BR_ENOTSUP;
    ex->vt = vt;
    ex->version = version;
    ex->magic = BR__EXECUTOR_MAGIC;
    return 0;
}
