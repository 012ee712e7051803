/* The cross-process Queue, JoinableQueue and SimpleQueue (braid/mp_queue.h): one
 * shared-memory ring (process/mp_ring.c has the protocol) in a mapping of its own; the
 * handle is this process's view of it. The kind lives in the ring's flags, so that a
 * process attaching by descriptor gets the same queue. */
#include "braid/mp_queue.h"

#include "process/mp_ring.h"
#include "process/shm.h"

#include <sys/stat.h>

enum { KIND_JOINABLE = 1, KIND_SIMPLE = 2 };

struct br_mp_queue {
    br__shm shm;
    br__mpr_side side;
    uint32_t kind; /* KIND_* bits, from the ring */
    bool closed;
};

static int make(br_mp_queue **out, br__shm *shm) {
    br_mp_queue *q = br__calloc(1, sizeof *q);
    if (!q)
        return BR_ENOMEM;
    q->shm = *shm;
    q->side.r = (br__mpr *)shm->base;
    q->side.fd = -1;
    *out = q;
    return 0;
}

int br_mp_queue_new(br_mp_queue **out, const br_mp_queue_opts *opts) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_new: out is NULL");
    *out = NULL;
    br_mp_queue_opts o = opts ? *opts : (br_mp_queue_opts){0};
    if ((unsigned)o.kind > BR_MP_SIMPLE || (o.kind == BR_MP_SIMPLE && o.maxsize))
        return BR_EINVAL;
    size_t cap = br__mpr_cap_for(o.ring_bytes);
    if (!cap)
        return BR_EINVAL;
    uint32_t kind = o.kind == BR_MP_JOINABLE ? KIND_JOINABLE : o.kind == BR_MP_SIMPLE ? KIND_SIMPLE : 0;
    br__shm shm;
    int rc = br__shm_new(&shm, br__mpr_bytes(cap), "braid-mp-queue");
    if (rc)
        return rc;
    br__mpr_init((br__mpr *)shm.base, cap, o.maxsize, kind);
    rc = make(out, &shm);
    if (rc) {
        br__shm_close(&shm);
        return rc;
    }
    (*out)->kind = kind;
    return 0;
}

int br_mp_queue_attach(br_mp_queue **out, int fd) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_attach: out is NULL");
    *out = NULL;
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0)
        return BR_EINVAL;
    br__shm shm;
    int rc = br__shm_attach(&shm, fd, (size_t)st.st_size);
    if (rc)
        return rc;
    rc = br__mpr_check((const br__mpr *)shm.base, shm.size);
    if (rc == 0)
        rc = make(out, &shm);
    if (rc) {
        br__shm_close(&shm);
        return rc;
    }
    (void)br__mpr_pid();
    /* The kind as its creator made it (the ring's flags). */
    br_mp_queue *q = *out;
    q->kind = br__mpr_flags(q->side.r) & (KIND_JOINABLE | KIND_SIMPLE);
    return 0;
}

int br_mp_queue_free(br_mp_queue *q) {
    if (!q)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_free: q is NULL");
    br__shm_close(&q->shm);
    br__free_poisoned(q, sizeof *q);
    return 0;
}

int br_mp_queue_fd(const br_mp_queue *q) { return q ? q->shm.fd : -1; }

int br_mp_queue_put(br_mp_queue *q, const void *data, size_t len, int64_t deadline) {
    if (BR__UNLIKELY(!q || (!data && len)))
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_put: q is NULL, or data NULL with len > 0");
    if (BR__UNLIKELY(q->closed))
        return BR_ESTATE;
    return br__mpr_put(&q->side, data, len, deadline);
}

int br_mp_queue_get(br_mp_queue *q, void **data, size_t *len, int64_t deadline) {
    if (BR__UNLIKELY(!q || !data || !len))
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_get: q, data or len is NULL");
    if (BR__UNLIKELY(q->closed))
        return BR_ESTATE;
    *data = NULL;
    return br__mpr_get(&q->side, NULL, 0, data, len, deadline);
}

int br_mp_queue_get_into(br_mp_queue *q, void *buf, size_t cap, size_t *len,
                         int64_t deadline) {
    if (BR__UNLIKELY(!q || !len || (!buf && cap)))
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_get_into: q or len is NULL, or buf NULL with cap > 0");
    if (BR__UNLIKELY(q->closed))
        return BR_ESTATE;
    return br__mpr_get(&q->side, buf, cap, NULL, len, deadline);
}

size_t br_mp_queue_qsize(br_mp_queue *q) { return q ? br__mpr_qsize(q->side.r) : 0; }

bool br_mp_queue_empty(br_mp_queue *q) { return br_mp_queue_qsize(q) == 0; }

bool br_mp_queue_full(br_mp_queue *q) {
    if (!q)
        return false;
    uint64_t m = br__mpr_maxsize(q->side.r);
    return m && br__mpr_qsize(q->side.r) >= m;
}

size_t br_mp_queue_maxsize(const br_mp_queue *q) {
    return q ? (size_t)br__mpr_maxsize(q->side.r) : 0;
}

int br_mp_queue_task_done(br_mp_queue *q) {
    if (!q)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_task_done: q is NULL");
    if (!(q->kind & KIND_JOINABLE))
        return BR_ENOTSUP;
    return br__mpr_task_done(q->side.r);
}

int br_mp_queue_join(br_mp_queue *q, int64_t deadline) {
    if (!q)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_join: q is NULL");
    if (!(q->kind & KIND_JOINABLE))
        return BR_ENOTSUP;
    return br__mpr_join(q->side.r, deadline);
}

int br_mp_queue_close(br_mp_queue *q) {
    if (!q)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_close: q is NULL");
    q->closed = true;
    return 0;
}

int br_mp_queue_shutdown(br_mp_queue *q, bool immediate) {
    if (!q)
        return BR__MISUSE(BR_EINVAL, "br_mp_queue_shutdown: q is NULL");
    br__mpr_set_state(q->side.r, BR__MPR_SHUTDOWN | (immediate ? BR__MPR_SHUTDOWN_NOW : 0), -1);
    if (immediate)
        br__mpr_drain(&q->side);
    return 0;
}

bool br_mp_queue_is_shutdown(br_mp_queue *q) {
    return q && (br__mpr_state(q->side.r) & BR__MPR_SHUTDOWN);
}

uint64_t br_mp_queue_lost(br_mp_queue *q) { return q ? br__mpr_lost(q->side.r) : 0; }

br__mpr *br__mp_queue_ring(br_mp_queue *q) { return q->side.r; }
