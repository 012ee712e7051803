/* multiprocessing.Pool's face (braid/processpool.h, "multiprocessing.Pool") over the
 * process pool's engine (process/pool.c) and the futures API: apply is a submit and a
 * wait; apply_async a submit with a done-callback that calls exactly one of the user's
 * callbacks (futures run a callback once, on the thread that completes them: the
 * pool's manager). map_async and imap keep a future per input with chunksize 1 (one
 * batch submit), and per chunk otherwise: a chunk is one task (the runner map_chunk,
 * below, over the chunk's inputs) and comes back as one result holding a record per
 * input, as Python's Pool ships a chunk as one pickled task and gets one result. imap
 * walks the futures in input order, imap_unordered through br_as_completed (completion
 * order), a chunk's inputs together and in order. close / join / terminate are the
 * executor's shutdown / shutdown(wait) / terminate. */
#include "process/pool.h"

#include "future/for_executors.h"
#include "process/start.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

struct br_mp_pool {
    br_executor *ex;
    int processes;
    int method; /* the start method: a map chunk names its function by reference unless fork */
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
    p->method = o.start_method ? (int)o.start_method : (int)br_get_start_method();
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

/* --- map ------------------------------------------------------------------------------ */

/* A map chunk crosses as one task: the runner map_chunk with an argument of a map_hdr,
 * under spawn and forkserver the function's reference (br__fnref), then the chunk's
 * inputs (at hdr_size, a multiple of 16). The worker runs fn over them in order and
 * returns one result for the chunk: a record per input run, {int32 code, uint32 len}
 * and len bytes (the result, or the failure's message with its NUL) padded to 8. It
 * stops after the first input that fails (Python's mapstar stops at the first
 * exception): the inputs after it in the chunk are not run. The chunk's future fails
 * as a whole only if the chunk never ran or was cut short (a dead worker, a cancel, a
 * pool terminated). */
enum { MAP_MAGIC = 0x6b6e6863706d7262ull }; /* "brmpchnk" */

typedef struct map_hdr {
    uint64_t magic;
    uint64_t fn;       /* fork: the function as it is */
    uint64_t elem;     /* bytes per input */
    uint64_t n;        /* inputs in this chunk */
    uint64_t hdr_size; /* where the inputs start */
    uint32_t has_ref;  /* spawn, forkserver: a br__fnref follows the header */
    uint32_t pad;
} map_hdr;

typedef struct map_rec {
    int32_t code;
    uint32_t len;
} map_rec;

static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }
static size_t up8(size_t n) { return (n + 7) & ~(size_t)7; }

/* The worker's last resolved reference (one map's chunks all name the same function). */
static _Thread_local struct {
    bool ok;
    br__fnref ref;
    br_task_fn fn;
} map_fn_cache;

static br_task_fn map_resolve(const br__fnref *ref, char *why, size_t whylen) {
    if (map_fn_cache.ok && memcmp(&map_fn_cache.ref, ref, sizeof *ref) == 0)
        return map_fn_cache.fn;
    br__fnptr f = NULL;
    if (br__fnref_resolve(ref, &f, why, whylen) != 0)
        return NULL;
    memcpy(&map_fn_cache.ref, ref, sizeof *ref);
    map_fn_cache.fn = (br_task_fn)f;
    map_fn_cache.ok = true;
    return (br_task_fn)f;
}

typedef struct recbuf {
    unsigned char *b;
    size_t used, cap;
} recbuf;

static int rec_put(recbuf *rb, int code, const void *data, size_t len) {
    if (len > UINT32_MAX) {
        static const char big[] = "a result of 4 GiB or more can't come back in a chunk";
        code = BR_ERANGE;
        data = big;
        len = sizeof big;
    }
    size_t need = sizeof(map_rec) + up8(len);
    if (rb->cap - rb->used < need) {
        size_t cap = rb->cap ? rb->cap : 256;
        while (cap - rb->used < need)
            cap *= 2;
        unsigned char *nb = br__realloc(rb->b, cap);
        if (nb == NULL)
            return BR_ENOMEM;
        rb->b = nb;
        rb->cap = cap;
    }
    map_rec r = {.code = code, .len = (uint32_t)len};
    unsigned char *at = rb->b + rb->used;
    memcpy(at, &r, sizeof r);
    if (len)
        memcpy(at + sizeof r, data, len);
    memset(at + sizeof r + len, 0, up8(len) - len);
    rb->used += need;
    return 0;
}

/* The runner, in a worker: each input is a local task whose parent is the chunk's, so a
 * cancel request on the chunk (terminate) is seen by the input running. */
static int map_chunk(br_task *t) {
    size_t len;
    const unsigned char *a = br_task_arg(t, &len);
    map_hdr h;
    if (a == NULL || len < sizeof h)
        return br_task_fail(t, BR_EINVAL, "not a map chunk");
    memcpy(&h, a, sizeof h);
    if (h.magic != MAP_MAGIC || h.hdr_size > len ||
        (h.has_ref && h.hdr_size < sizeof h + sizeof(br__fnref)) ||
        (h.elem && h.n > (len - h.hdr_size) / h.elem))
        return br_task_fail(t, BR_EINVAL, "not a map chunk");
    br_task_fn fn = (br_task_fn)(uintptr_t)h.fn;
    if (h.has_ref) {
        char why[128] = "";
        fn = map_resolve((const br__fnref *)(const void *)(a + sizeof h), why, sizeof why);
        if (fn == NULL)
            return br_task_fail(t, BR_ENOENT, "the mapped function can't be found in the "
                                              "worker: %s", why);
    }
    const unsigned char *items = a + h.hdr_size;
    recbuf rb = {0};
    int rc = 0;
    for (uint64_t i = 0; i < h.n && rc == 0; i++) {
        if (br_task_cancelled(t)) {
            br__free(rb.b);
            return br_task_fail(t, BR_ECANCELED, "the map was cancelled");
        }
        br_future *f = br__task_prepare(fn, h.elem ? items + i * h.elem : NULL,
                                        (size_t)h.elem, BR__ARG_BORROW, BR_FOREVER, 2);
        if (f == NULL) {
            rc = BR_ENOMEM;
            break;
        }
        br_task *it = br__future_task(f);
        br__task_set_parent(it, t);
        if (br__task_begin(it))
            br__task_finish(it, br__task_call(it));
        const void *d = NULL;
        size_t dl = 0;
        int code = br__pool_outcome(f, &d, &dl);
        rc = rec_put(&rb, code, d, dl);
        br_future_release(f);
        if (code != 0)
            break; /* Python's chunk stops at its first exception */
    }
    if (rc != 0) {
        br__free(rb.b);
        return br_task_fail(t, rc, "out of memory in a map chunk");
    }
    rc = br_task_return(t, rb.b, rb.used);
    br__free(rb.b);
    return rc;
}

/* One map's futures, shared by map_async's result and imap's iterator: a future per
 * input (cs 1), or per chunk of cs inputs whose result holds the chunk's records. */
typedef struct mapjob {
    size_t n;  /* inputs */
    size_t cs; /* inputs per future */
    size_t nf; /* futures */
    br_future **fs;
    _Atomic(uint32_t *) *offs; /* cs > 1: per chunk, [records, offset of each...],
                                * made on the first look at a done chunk */
} mapjob;

static const char not_run[] = "not run: an earlier input of its chunk failed";

static size_t chunk_len(const mapjob *j, size_t c) {
    size_t left = j->n - c * j->cs;
    return left < j->cs ? left : j->cs;
}

static int submit_chunks(mapjob *j, br_mp_pool *p, br_task_fn fn, const unsigned char *args,
                         size_t size, size_t *queued) {
    bool ref = p->method != BR_START_FORK;
    size_t hs = up16(sizeof(map_hdr) + (ref ? sizeof(br__fnref) : 0));
    if (j->cs > (SIZE_MAX - hs) / (size ? size : 1) / j->nf)
        return BR_ENOMEM;
    size_t stride = hs + j->cs * size;
    unsigned char *buf = br__calloc(j->nf, stride);
    if (buf == NULL)
        return BR_ENOMEM;
    map_hdr h = {.magic = MAP_MAGIC, .fn = (uint64_t)(uintptr_t)fn, .elem = size,
                 .hdr_size = hs, .has_ref = ref};
    if (ref && br__fnref_make((br__fnref *)(void *)(buf + sizeof h), (br__fnptr)fn, NULL,
                              0) != 0) {
        br__free(buf);
        return BR_EINVAL; /* fn can't cross to a spawned worker */
    }
    for (size_t c = 0; c < j->nf; c++) {
        unsigned char *at = buf + c * stride;
        h.n = chunk_len(j, c);
        memcpy(at, &h, sizeof h);
        if (ref && c)
            memcpy(at + sizeof h, buf + sizeof h, sizeof(br__fnref));
        if (size)
            memcpy(at + hs, args + c * j->cs * size, h.n * size);
    }
    /* the pool copies each argument at submit */
    int rc = br_submit_batch(p->ex, map_chunk, buf, j->nf, stride, j->fs, queued);
    br__free(buf);
    return rc;
}

static void job_release(mapjob *j) {
    for (size_t c = 0; c < j->nf; c++)
        if (j->fs[c]) {
            br_future_wait(j->fs[c], BR_FOREVER);
            br_future_release(j->fs[c]);
        }
    if (j->offs)
        for (size_t c = 0; c < j->nf; c++)
            br__free(atomic_load(&j->offs[c]));
    br__free(j->fs);
    br__free(j->offs);
}

static int job_submit(mapjob *j, br_mp_pool *p, br_task_fn fn, const void *args,
                      size_t count, size_t size, size_t chunksize) {
    int rc = open_check(p, "br_mp_pool_map: pool is NULL");
    if (rc)
        return rc;
    if (fn == NULL || (args == NULL && count && size))
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_map: fn NULL or args NULL");
    size_t cs = chunksize ? chunksize : 1;
    if (cs > count)
        cs = count ? count : 1; /* one chunk of them all */
    *j = (mapjob){.n = count, .cs = cs, .nf = count ? (count + cs - 1) / cs : 0};
    j->fs = br__calloc(j->nf ? j->nf : 1, sizeof *j->fs);
    if (j->fs == NULL)
        return BR_ENOMEM;
    if (cs > 1 && (j->offs = br__calloc(j->nf, sizeof *j->offs)) == NULL) {
        br__free(j->fs);
        return BR_ENOMEM;
    }
    size_t queued = 0;
    if (cs == 1)
        rc = br_submit_batch(p->ex, fn, args, count, size, j->fs, &queued);
    else
        rc = submit_chunks(j, p, fn, args, size, &queued);
    if (rc != 0) {
        job_release(j); /* waits for those queued before the failure */
        return submit_rc(rc);
    }
    return 0;
}

/* Record k of a done chunk's result (d, l); the offsets table is made once. */
static bool chunk_rec(mapjob *j, size_t c, const unsigned char *d, size_t l, size_t k,
                      map_rec *r, const unsigned char **data) {
    uint32_t *o = atomic_load_explicit(&j->offs[c], memory_order_acquire);
    if (o == NULL) {
        size_t cl = chunk_len(j, c);
        uint32_t *t = br__malloc((cl + 1) * sizeof *t);
        uint32_t nrec = 0;
        for (size_t off = 0; nrec < cl && l - off >= sizeof(map_rec);) {
            map_rec rr;
            memcpy(&rr, d + off, sizeof rr);
            if (up8(rr.len) > l - off - sizeof rr)
                break;
            if (t)
                t[1 + nrec] = (uint32_t)off;
            nrec++;
            off += sizeof rr + up8(rr.len);
        }
        if (t == NULL) { /* out of memory: walk to it */
            size_t off = 0;
            if (k >= nrec)
                return false;
            for (size_t i = 0; i < k; i++) {
                memcpy(r, d + off, sizeof *r);
                off += sizeof *r + up8(r->len);
            }
            memcpy(r, d + off, sizeof *r);
            *data = d + off + sizeof *r;
            return true;
        }
        t[0] = nrec;
        uint32_t *none = NULL;
        if (atomic_compare_exchange_strong(&j->offs[c], &none, t))
            o = t;
        else {
            br__free(t);
            o = none;
        }
    }
    if (k >= o[0])
        return false;
    memcpy(r, d + o[1 + k], sizeof *r);
    *data = d + o[1 + k] + sizeof *r;
    return true;
}

/* Input i's outcome, its future done: as outcome() below. */
static int outcome(br_future *f, int64_t deadline, const void **data, size_t *len);

static int job_item(mapjob *j, size_t i, const void **data, size_t *len) {
    size_t c = i / j->cs;
    if (j->cs == 1)
        return outcome(j->fs[c], BR_NOWAIT, data, len);
    const void *d;
    size_t l;
    int rc = outcome(j->fs[c], BR_NOWAIT, &d, &l);
    if (rc == 0) {
        map_rec r;
        const unsigned char *rd;
        if (chunk_rec(j, c, d, l, i % j->cs, &r, &rd)) {
            rc = r.code;
            d = r.len ? rd : NULL;
            l = r.len;
        } else {
            rc = BR_ECANCELED;
            d = not_run;
            l = sizeof not_run;
        }
    }
    if (data)
        *data = d;
    if (len)
        *len = l;
    return rc;
}

/* The code of the chunk's first failed input (0: none), its future done. */
static int job_chunk_code(mapjob *j, size_t c) {
    int rc = br_future_result(j->fs[c], BR_NOWAIT, NULL, NULL);
    if (rc != 0 || j->cs == 1)
        return rc;
    size_t cl = chunk_len(j, c);
    for (size_t k = 0; k < cl; k++) {
        rc = job_item(j, c * j->cs + k, NULL, NULL);
        if (rc != 0)
            return rc;
    }
    return 0;
}

struct br_mp_result {
    mapjob j;
};

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
    int rc = job_submit(&r->j, p, fn, args, count, size, chunksize);
    if (rc) {
        br__free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int br_mp_result_get(br_mp_result *r, int64_t deadline) {
    if (r == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_result_get: NULL");
    mapjob *j = &r->j;
    /* From the last future back: the last is handed out last, so one sleep on it covers
     * nearly all (in input order, the caller would sleep, and be woken, input by input
     * as it caught up with the workers) */
    for (size_t c = j->nf; c-- > 0;) {
        int rc = br_future_wait(j->fs[c], deadline);
        if (rc)
            return rc;
    }
    for (size_t c = 0; c < j->nf; c++) {
        int rc = job_chunk_code(j, c);
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
    for (size_t c = 0; c < r->j.nf; c++)
        if (!br_future_done(r->j.fs[c]))
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

size_t br_mp_result_count(const br_mp_result *r) { return r ? r->j.n : 0; }

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
    if (r == NULL || i >= r->j.n)
        return BR__MISUSE(BR_EINVAL, "br_mp_result_item: NULL or index out of range");
    return job_item(&r->j, i, data, len);
}

void br_mp_result_free(br_mp_result *r) {
    if (r == NULL)
        return;
    job_release(&r->j);
    br__free(r);
}

/* --- imap --------------------------------------------------------------------------------- */

struct br_mp_iter {
    mapjob j;
    size_t next;         /* results handed out */
    br_as_completed *ac; /* imap_unordered: the futures in completion order */
    size_t cur, left;    /* imap_unordered: the chunk being handed out, inputs left in it */
};

static int imap_new(br_mp_iter **out, br_mp_pool *p, br_task_fn fn, const void *args,
                    size_t count, size_t size, size_t chunksize, bool ordered) {
    if (out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_mp_pool_imap: out is NULL");
    *out = NULL;
    br_mp_iter *it = br__calloc(1, sizeof *it);
    if (it == NULL)
        return BR_ENOMEM;
    int rc = job_submit(&it->j, p, fn, args, count, size, chunksize ? chunksize : 1);
    if (rc) {
        br__free(it);
        return rc;
    }
    if (!ordered) {
        rc = br_as_completed_new(&it->ac, it->j.fs, it->j.nf, BR_FOREVER);
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
    mapjob *j = &it->j;
    if (it->next >= j->n)
        return BR_EOF;
    size_t i;
    if (it->ac) {
        if (it->left == 0) { /* the next chunk done: its inputs go out together, in order */
            br_future *f;
            size_t c;
            br_as_completed_set_deadline(it->ac, deadline);
            int rc = br_as_completed_next_index(it->ac, &f, &c);
            if (rc)
                return rc;
            it->cur = c;
            it->left = chunk_len(j, c);
        }
        i = it->cur * j->cs + (chunk_len(j, it->cur) - it->left);
        it->left--;
    } else {
        i = it->next;
        int rc = br_future_wait(j->fs[i / j->cs], deadline);
        if (rc)
            return rc;
    }
    it->next++;
    if (index)
        *index = i;
    return job_item(j, i, data, len);
}

void br_mp_iter_free(br_mp_iter *it) {
    if (it == NULL)
        return;
    if (it->ac)
        br_as_completed_free(it->ac);
    job_release(&it->j);
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
