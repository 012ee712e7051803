/* multiprocessing.Pool's face (braid/processpool.h, "multiprocessing.Pool") over the
 * process pool's engine (process/pool.c) and the futures API: apply is a submit and a
 * wait; apply_async a submit with a done-callback that calls exactly one of the user's
 * callbacks (futures run a callback once, on the thread that completes them: the
 * pool's manager); map_async keeps every input's future; imap walks them in input
 * order, imap_unordered through br_as_completed (completion order). close / join /
 * terminate are the executor's shutdown / shutdown(wait) / terminate. */
#include "process/pool.h"

#include <stdatomic.h>
#include <string.h>

struct br_mp_pool {
    br_executor *ex;
    int processes;
    _Atomic int state; /* 0 running, 1 closed, 2 terminated */
};

int br_mp_pool_new(br_mp_pool **out, const br_mp_pool_opts *opts) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_new: out is NULL");
    *out = NULL;
    br_mp_pool_opts o = {0};
    if (opts)
        o = *opts;
    br_mp_pool *p = br__calloc(1, sizeof *p);
    if (p == NULL)
        return BR_ENOMEM;
    int rc = br_processpool_new(&p->ex, &(br_processpool_opts){
                                            .max_workers = o.processes,
                                            .initializer = o.initializer,
                                            .initarg = o.initarg,
                                            .initarg_len = o.initarg_len,
                                            .max_tasks_per_child = o.max_tasks_per_child,
                                            .start_method = o.start_method});
    if (rc != 0) {
        br__free(p);
        return rc;
    }
    p->processes = br_executor_max_workers(p->ex);
    *out = p;
    return 0;
}

br_executor *br_mp_pool_executor(br_mp_pool *p) { return p ? p->ex : NULL; }

static int open_check(br_mp_pool *p, const char *who) {
    if (p == NULL)
        return BR__MISUSE(BR_EINVAL, who);
    return atomic_load(&p->state) ? BR_ESTATE : 0;
}

static int submit_rc(int rc) { return rc == BR_ESHUTDOWN ? BR_ESTATE : rc; }

int br_mp_pool_apply(br_mp_pool *p, br_task_fn fn, const void *arg, size_t len,
                     br_future **out) {
    if (out)
        *out = NULL;
    int rc = open_check(p, "br_mp_pool_apply: pool is NULL");
    if (rc)
        return rc;
    br_future *f;
    rc = br_submit_call(p->ex, &(br_call){.fn = fn, .arg = arg, .len = len}, &f);
    if (rc)
        return submit_rc(rc);
    rc = br_future_result(f, BR_FOREVER, NULL, NULL);
    if (out)
        *out = f;
    else
        br_future_release(f);
    return rc;
}

typedef struct cb_ctx {
    br_mp_callback cb;
    br_mp_error_callback ecb;
    void *ctx;
} cb_ctx;

static void on_done(br_future *f, void *arg) {
    cb_ctx *c = arg;
    const void *data = NULL;
    size_t len = 0;
    int rc = br_future_result(f, BR_NOWAIT, &data, &len);
    if (rc == 0) {
        if (c->cb)
            c->cb(data, len, c->ctx);
    } else if (c->ecb) {
        const char *m = NULL;
        int code = rc;
        if (rc != BR_ECANCELED)
            (void)br_future_exception(f, BR_NOWAIT, &code, &m);
        c->ecb(code, m, c->ctx);
    }
    br__free(c);
    br_future_release(f);
}

int br_mp_pool_apply_async(br_mp_pool *p, br_task_fn fn, const void *arg, size_t len,
                           br_mp_callback callback, br_mp_error_callback error_callback,
                           void *ctx, br_future **out) {
    if (out)
        *out = NULL;
    int rc = open_check(p, "br_mp_pool_apply_async: pool is NULL");
    if (rc)
        return rc;
    cb_ctx *c = br__malloc(sizeof *c);
    if (c == NULL)
        return BR_ENOMEM;
    c->cb = callback;
    c->ecb = error_callback;
    c->ctx = ctx;
    br_future *f;
    rc = br_submit_call(p->ex, &(br_call){.fn = fn, .arg = arg, .len = len}, &f);
    if (rc) {
        br__free(c);
        return submit_rc(rc);
    }
    br_future_retain(f); /* the callback's */
    rc = br_future_add_done_callback(f, on_done, c);
    if (rc) {
        /* out of memory for the callback node: the task runs, no callback */
        br_future_release(f);
        br__free(c);
        br_future_cancel(f);
        br_future_release(f);
        return rc;
    }
    if (out)
        *out = f;
    else
        br_future_release(f);
    return 0;
}

/* --- map ---------------------------------------------------------------------------- */

struct br_mp_result {
    size_t n;
    br_future **fs;
};

static int submit_all(br_mp_pool *p, br_task_fn fn, const void *args, size_t count,
                      size_t size, size_t chunksize, br_future ***fsp) {
    int rc = open_check(p, "br_mp_pool_map: pool is NULL");
    if (rc)
        return rc;
    if (fn == NULL || (args == NULL && count && size))
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_map: fn NULL or args NULL");
    br_future **fs = br__calloc(count ? count : 1, sizeof *fs);
    if (fs == NULL)
        return BR_ENOMEM;
    rc = br__processpool_submit_chunked(p->ex, fn, args, count, size, chunksize, fs);
    if (rc != 0) {
        for (size_t i = 0; i < count; i++)
            if (fs[i]) {
                br_future_wait(fs[i], BR_FOREVER);
                br_future_release(fs[i]);
            }
        br__free(fs);
        return submit_rc(rc);
    }
    *fsp = fs;
    return 0;
}

int br_mp_pool_map_async(br_mp_result **out, br_mp_pool *p, br_task_fn fn,
                         const void *args, size_t count, size_t size, size_t chunksize) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_map_async: out is NULL");
    *out = NULL;
    br_mp_result *r = br__calloc(1, sizeof *r);
    if (r == NULL)
        return BR_ENOMEM;
    if (p && chunksize == 0 && p->processes > 0) {
        size_t per = (size_t)p->processes * 4;
        chunksize = (count + per - 1) / per; /* Python's default */
    }
    int rc = submit_all(p, fn, args, count, size, chunksize, &r->fs);
    if (rc) {
        br__free(r);
        return rc;
    }
    r->n = count;
    *out = r;
    return 0;
}

int br_mp_result_get(br_mp_result *r, int64_t deadline) {
    if (r == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_result_get: NULL");
    /* From the last input back: the last is handed out last, so one sleep on it covers
     * nearly all (in input order, the caller would sleep, and be woken, input by input
     * as it caught up with the workers) */
    for (size_t i = r->n; i-- > 0;) {
        int rc = br_future_wait(r->fs[i], deadline);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < r->n; i++) {
        int rc = br_future_result(r->fs[i], BR_NOWAIT, NULL, NULL);
        if (rc)
            return rc;
    }
    return 0;
}

int br_mp_pool_map(br_mp_result **out, br_mp_pool *p, br_task_fn fn, const void *args,
                   size_t count, size_t size, size_t chunksize) {
    int rc = br_mp_pool_map_async(out, p, fn, args, count, size, chunksize);
    if (rc)
        return rc;
    return br_mp_result_get(*out, BR_FOREVER);
}

bool br_mp_result_ready(br_mp_result *r) {
    if (r == NULL)
        return false;
    for (size_t i = 0; i < r->n; i++)
        if (!br_future_done(r->fs[i]))
            return false;
    return true;
}

int br_mp_result_successful(br_mp_result *r) {
    if (r == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_result_successful: NULL");
    if (!br_mp_result_ready(r))
        return BR_ESTATE;
    return br_mp_result_get(r, BR_NOWAIT) == 0 ? 1 : 0;
}

size_t br_mp_result_count(const br_mp_result *r) { return r ? r->n : 0; }

static int outcome(br_future *f, int64_t deadline, const void **data, size_t *len) {
    const void *d = NULL;
    size_t l = 0;
    int rc = br_future_result(f, deadline, &d, &l);
    if (rc != 0 && br_future_done(f)) {
        const char *m = NULL;
        int code = rc;
        if (rc != BR_ECANCELED && br_future_exception(f, BR_NOWAIT, &code, &m) == 0)
            d = m, l = m ? strlen(m) + 1 : 0;
        else
            d = NULL, l = 0;
    }
    if (data)
        *data = d;
    if (len)
        *len = l;
    return rc;
}

int br_mp_result_item(br_mp_result *r, size_t i, const void **data, size_t *len) {
    if (r == NULL || i >= r->n)
        return BR__MISUSE(BR_EINVAL, "br_mp_result_item: NULL or index out of range");
    return outcome(r->fs[i], BR_NOWAIT, data, len);
}

void br_mp_result_free(br_mp_result *r) {
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        br_future_wait(r->fs[i], BR_FOREVER);
        br_future_release(r->fs[i]);
    }
    br__free(r->fs);
    br__free(r);
}

/* --- imap --------------------------------------------------------------------------------- */

struct br_mp_iter {
    size_t n, next;
    br_future **fs;
    br_as_completed *ac; /* imap_unordered */
};

static int imap_new(br_mp_iter **out, br_mp_pool *p, br_task_fn fn, const void *args,
                    size_t count, size_t size, size_t chunksize, bool ordered) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_imap: out is NULL");
    *out = NULL;
    br_mp_iter *it = br__calloc(1, sizeof *it);
    if (it == NULL)
        return BR_ENOMEM;
    int rc = submit_all(p, fn, args, count, size, chunksize ? chunksize : 1, &it->fs);
    if (rc) {
        br__free(it);
        return rc;
    }
    it->n = count;
    if (!ordered) {
        rc = br_as_completed_new(&it->ac, it->fs, count, BR_FOREVER);
        if (rc) {
            it->ac = NULL;
            br_mp_iter_free(it);
            return rc;
        }
    }
    *out = it;
    return 0;
}

int br_mp_pool_imap(br_mp_iter **out, br_mp_pool *p, br_task_fn fn, const void *args,
                    size_t count, size_t size, size_t chunksize) {
    return imap_new(out, p, fn, args, count, size, chunksize, true);
}

int br_mp_pool_imap_unordered(br_mp_iter **out, br_mp_pool *p, br_task_fn fn,
                              const void *args, size_t count, size_t size,
                              size_t chunksize) {
    return imap_new(out, p, fn, args, count, size, chunksize, false);
}

int br_mp_iter_next(br_mp_iter *it, int64_t deadline, const void **data, size_t *len,
                    size_t *index) {
    if (it == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_iter_next: NULL");
    if (it->next >= it->n)
        return BR_EOF;
    br_future *f;
    size_t i;
    if (it->ac) {
        br_as_completed_set_deadline(it->ac, deadline);
        int rc = br_as_completed_next_index(it->ac, &f, &i);
        if (rc)
            return rc == BR_EOF ? BR_EOF : rc;
    } else {
        i = it->next;
        f = it->fs[i];
        int rc = br_future_wait(f, deadline);
        if (rc)
            return rc;
    }
    it->next++;
    if (index)
        *index = i;
    return outcome(f, BR_NOWAIT, data, len);
}

void br_mp_iter_free(br_mp_iter *it) {
    if (it == NULL)
        return;
    if (it->ac)
        br_as_completed_free(it->ac);
    for (size_t i = 0; i < it->n; i++) {
        br_future_wait(it->fs[i], BR_FOREVER);
        br_future_release(it->fs[i]);
    }
    br__free(it->fs);
    br__free(it);
}

/* --- lifetime ------------------------------------------------------------------------------- */

int br_mp_pool_close(br_mp_pool *p) {
    if (p == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_close: NULL");
    int zero = 0;
    atomic_compare_exchange_strong(&p->state, &zero, 1);
    return br_executor_shutdown(p->ex, false, false);
}

int br_mp_pool_join(br_mp_pool *p) {
    if (p == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_join: NULL");
    if (atomic_load(&p->state) == 0)
        return BR_ESTATE; /* Python: ValueError("Pool is still running") */
    return br_executor_shutdown(p->ex, true, false);
}

int br_mp_pool_terminate(br_mp_pool *p) {
    if (p == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_terminate: NULL");
    atomic_store(&p->state, 2);
    return br_processpool_terminate(p->ex);
}

int br_mp_pool_free(br_mp_pool *p) {
    if (p == NULL)
        return BR_EINVAL;
    if (atomic_load(&p->state) == 0)
        br_mp_pool_terminate(p);
    int rc = br_executor_free(p->ex);
    br__free(p);
    return rc;
}
