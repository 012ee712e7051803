/* br_map: Executor.map over any executor, lazy and bounded.
 *
 * Design notes.
 *
 * Inputs are grouped in chunks of `chunksize`. Every input gets its own future with its
 * task (from the future layer's block cache, so no malloc in steady state): fn, the
 * argument args + i*size (borrowed), the map's deadline. The map holds one reference on
 * each input future; the task's "executor reference" (future/for_executors.h) goes to
 * the executor with the submit.
 *
 * Chunks go through the executor interface: a chunk of more than one input is handed
 * to vt->submit_chunk, which runs its tasks in order as one unit and gives each its own
 * outcome, deadline and cancel (the thread pool's is the in-process runner of chunk.c;
 * an executor that crosses a process boundary packs the chunk into one message). An
 * executor without submit_chunk gets each input as its own task (chunksize 1), and so
 * does every executor with chunksize 1 (the default, as in Python, unless the
 * executor's vt->map_chunksize gives another for chunksize 0): each input's own
 * task is submitted, as br_submit would, except that the inputs submitted together
 * (all of br_map_new's first `buffersize`, or a top-up) go in batches through
 * vt->submit_batch (br_submit_batch's path: one push and one wake-up in the pool, so
 * feeding the pool costs less than a loop of br_submit), of BR__BATCH_SLICE inputs at
 * most (the workers start on one while the map makes the futures of the next) and
 * split where the ring of slots wraps. Nothing here reads an input's future
 * in another thread's place, so the map works the same whatever runs the tasks.
 *
 * A chunk is submitted whole or not at all: if one of its futures can't be allocated
 * or the submit fails, every input of the chunk fails with that code without running
 * (a br_map_new whose first chunk fails returns the code and has run nothing; a later
 * chunk's inputs read back as the code, in order). In a batch of one-input chunks the
 * executor queues a prefix: the first input it refused carries the code, and those
 * after it are taken back unrun (released, `submitted` steps back) for a later call;
 * an input whose future can't be made reads BR_ENOMEM and ends the batch before it.
 *
 * Bounding (Python 3.14's buffersize): chunks live in a ring of buffersize + 1 slots
 * of the slab (chunksize task pointers each; a chunk's slot and size follow from its
 * number, so nothing else is kept per chunk).
 * br_map_new submits `buffersize` chunks; each time br_map_next starts reading a chunk
 * it tops up so that at most buffersize chunks are in flight ahead of the one being
 * read. A chunk's slot is reused once all its inputs were read.
 *
 * Deadline, as Python's map(timeout=) reads it (each result is awaited with what is left
 * of the timeout, and a future already done returns its result even when nothing is
 * left): next() returns a head input that is done, whatever the clock says, and waits
 * on one that isn't with the map's deadline. When that wait times out the map is over:
 * every input in flight that hasn't started is cancelled, and every later call returns
 * BR_ETIMEDOUT. Tasks still running are left to finish. Each input's task carries the
 * map's deadline too, so an input that hadn't started by then never runs and is done
 * with BR_ETIMEDOUT: read after the deadline, it ends the map the same way (it is the
 * input Python would still be waiting for), whereas read before, it can only be the
 * task's own failure and the map goes on.
 *
 * Cancellation (a coroutine's, core/lib.h). next() parks in two places: waiting for the
 * head input, and in a top-up's submit, which may wait for room (a pool's
 * max_pending). A cancel in either returns BR_ECANCELED and leaves the map as it was:
 * the head input is neither consumed nor failed, the map isn't timed out, and the
 * next call reads the same input. A top-up submit that is cancelled has queued
 * nothing (the executor contract), so its chunk is taken back whole: its futures are
 * released unrun (nobody else has seen them) and `submitted` steps back, so a later
 * call submits the chunk again; its inputs never carry the code, as they would any
 * other submit failure's. br_map_new submits the first chunks the same way: a cancel
 * of the first returns BR_ECANCELED with nothing run; a cancel of a later one can't
 * undo the chunks already queued, so the map is made with fewer chunks in flight
 * (next() tops up) and the cancel is posted again, for the coroutine's next wait.
 *
 * br_map_free cancels the inputs not started, then waits for every input to be done
 * (the running ones borrow the caller's args) and frees. That wait can't be cancelled
 * (br__future_wait_done_nocancel): a cancel stays pending until it is over.
 */
#include "executor/private.h"

#include <string.h>

#define MAP_MAGIC 0x6d617070u /* "mapp" */
#define MAP_DEAD 0xdead3a90u

/* A chunk, as seen through its ring slot (slot()): its inputs' tasks in the slab (NULL
 * where a future couldn't be made, or once read) and how many there are. Both follow
 * from the chunk's number, so nothing per chunk is stored but the slab's entries. */
typedef struct chunk {
    br_task **tasks;
    size_t n;
} chunk;

struct br_map {
    uint32_t magic;
    bool chunked;   /* chunks of more than one input go to vt->submit_chunk */
    bool timed_out;
    br_executor *ex;
    br_task_fn fn;
    const unsigned char *args;
    size_t count, size, chunksize, nchunks;
    int64_t deadline; /* BR_FOREVER if none */
    size_t ring;      /* slots: buffersize + 1, at most nchunks */
    br_task **slab;   /* ring * chunksize: chunk k's inputs at slot k % ring */
    size_t head;      /* the chunk being read (absolute number) */
    size_t pos;       /* the next input of the head chunk */
    size_t submitted; /* chunks submitted so far */
    br_future *cur;   /* the input whose result was returned last */
};

static chunk slot(const br_map *m, size_t k) {
    size_t first = k * m->chunksize;
    chunk c = {m->slab + (k % m->ring) * m->chunksize,
               m->count - first < m->chunksize ? m->count - first : m->chunksize};
    return c;
}

static br_future *input(const chunk *c, size_t j) {
    return c->tasks[j] ? br__task_future(c->tasks[j]) : NULL;
}

/* Releases a prepared input that was never queued (both references: nobody else has
 * seen it). */
static void take_back(br_task *t) {
    br_future *f = br__task_future(t);
    br_future_release(f); /* the executor's reference, never given */
    br_future_release(f); /* the map's */
}

/* Submits chunk k (= m->submitted). Failures are recorded in the inputs (they fail
 * with the code, or stay NULL where a future couldn't be allocated), so the map reads
 * them in order like any other outcome; the code is also returned. A chunk is
 * submitted whole or not at all: if one of its futures can't be allocated, none of its
 * inputs runs, so a br_map_new that fails has run nothing. BR_ECANCELED (the caller
 * was cancelled waiting for room) records nothing: the chunk is as if never
 * submitted. */
static int submit_chunk(br_map *m) {
    size_t k = m->submitted++;
    chunk cs = slot(m, k), *c = &cs;
    size_t first = k * m->chunksize;
    int rc = 0;
    unsigned how = BR__ARG_BORROW | (m->ex->vt->in_process ? BR__ARG_IN_PROCESS : 0);
    for (size_t j = 0; j < c->n; j++) {
        /* Two references: the map's, and the executor's (given with the submit). */
        br_future *f =
            rc == 0
                ? br__task_prepare(m->fn, m->size ? m->args + (first + j) * m->size : NULL,
                                   m->size, how, m->deadline, 2)
                : NULL;
        c->tasks[j] = f ? br__future_task(f) : NULL;
        if (f == NULL)
            rc = BR_ENOMEM;
    }
    if (rc == 0) {
        br_task *t = c->tasks[0];
        size_t len;
        const void *arg = br_task_arg(t, &len);
        br_call call = {.fn = t->fn,
                        .arg = arg,
                        .len = len,
                        .deadline = m->deadline == BR_FOREVER ? 0 : m->deadline};
        rc = c->n > 1 ? m->ex->vt->submit_chunk(m->ex, c->tasks, c->n, &call)
                      : m->ex->vt->submit(m->ex, t, &call);
        if (rc == 0)
            return 0;
        if (rc == BR_ECANCELED) {
            /* The caller's context was cancelled while the executor waited for room;
             * nothing was queued. Take the chunk back unrun (notes). */
            for (size_t j = 0; j < c->n; j++) {
                if (c->tasks[j])
                    take_back(c->tasks[j]);
                c->tasks[j] = NULL;
            }
            m->submitted--;
            return BR_ECANCELED;
        }
    }
    for (size_t j = 0; j < c->n; j++)
        if (c->tasks[j])
            br__task_abandon(c->tasks[j], rc);
    return rc;
}

/* Chunks of one input, from m->submitted up to `limit`, as one batch per contiguous
 * run of ring slots (br__executor_submit_tasks: vt->submit_batch, one push and one
 * wake-up in the pool). Failures as submit_chunk's, input by input: an input whose
 * future can't be made reads BR_ENOMEM and ends the batch before it; the first input
 * the executor refused carries the code (BR_ECANCELED: taken back instead), and the
 * inputs after it are taken back unrun, for a later call to submit again. Returns 0
 * with every chunk up to limit submitted, or the code. */
static int submit_singles(br_map *m, size_t limit) {
    unsigned how = BR__ARG_BORROW | (m->ex->vt->in_process ? BR__ARG_IN_PROCESS : 0);
    br_call call = {.fn = m->fn, .deadline = m->deadline == BR_FOREVER ? 0 : m->deadline};
    while (m->submitted < limit) {
        size_t k0 = m->submitted, s0 = k0 % m->ring;
        size_t n = limit - k0;
        if (n > m->ring - s0)
            n = m->ring - s0; /* up to the ring's end: the slots are contiguous */
        if (n > BR__BATCH_SLICE)
            n = BR__BATCH_SLICE; /* the workers start on a slice while we make the next */
        br_task **ts = m->slab + s0;
        size_t made = 0;
        int rc = 0;
        for (; made < n; made++) {
            size_t i = k0 + made;
            /* Two references: the map's, and the executor's (given with the submit). */
            br_future *f = br__task_prepare(m->fn, m->size ? m->args + i * m->size : NULL,
                                            m->size, how, m->deadline, 2);
            ts[made] = f ? br__future_task(f) : NULL;
            if (f == NULL) {
                rc = BR_ENOMEM;
                break;
            }
        }
        size_t q = 0;
        int src = made > 0 ? br__executor_submit_tasks(m->ex, ts, made, &call, &q) : 0;
        m->submitted = k0 + q;
        if (src == 0 && rc == 0)
            continue;
        size_t from = q; /* the first input not queued */
        if (src != 0 && src != BR_ECANCELED) {
            br__task_abandon(ts[q], src); /* it carries the code */
            m->submitted++;
            from = q + 1;
        } else if (src == 0) {
            m->submitted++; /* the input whose future couldn't be made reads BR_ENOMEM */
            return rc;
        }
        for (size_t j = from; j < made; j++) {
            take_back(ts[j]);
            ts[j] = NULL;
        }
        return src;
    }
    return 0;
}

/* Submits every chunk from m->submitted up to `limit`: in batches of single inputs, or
 * chunk by chunk through vt->submit_chunk. 0, or the first failure's code (notes). */
static int submit_upto(br_map *m, size_t limit) {
    if (!m->chunked)
        return submit_singles(m, limit);
    while (m->submitted < limit) {
        int rc = submit_chunk(m);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Posts again a cancel that a submit consumed and this call can't report (notes). */
static void repost_cancel(void) {
    BR__PARKED(br__waiter, w);
    br__waiter_init(w); /* binds the calling context */
    br__waiter_repost_cancel(w);
}

/* Cancels every input in flight that hasn't started. */
static void cancel_in_flight(br_map *m) {
    for (size_t k = m->head; k < m->submitted; k++) {
        chunk cs = slot(m, k), *c = &cs;
        for (size_t j = (k == m->head ? m->pos : 0); j < c->n; j++)
            if (c->tasks[j])
                br_future_cancel(input(c, j));
    }
}

int br_map_new(br_map **out, br_executor *ex, br_task_fn fn, const void *args, size_t count,
               size_t size, const br_map_opts *opts) {
    if (out)
        *out = NULL;
    if (out == NULL || !br__executor_ok(ex) || fn == NULL ||
        (args == NULL && count > 0 && size > 0))
        return BR__MISUSE(BR_EINVAL, "br_map_new: bad out, executor, fn or args");
    br_map_opts o = {0};
    if (opts)
        o = *opts;
    br_map *m = br__calloc(1, sizeof *m);
    if (m == NULL)
        return BR_ENOMEM;
    m->magic = MAP_MAGIC;
    m->ex = ex;
    m->fn = fn;
    m->args = args;
    m->count = count;
    m->size = size;
    /* chunksize 0: the executor's default for count inputs (vt->map_chunksize, version
     * 3), else 1. One input per chunk is the input's own task, submitted as br_submit
     * would. */
    size_t cs = o.chunksize;
    if (cs == 0 && ex->version >= 3 && ex->vt->map_chunksize != NULL)
        cs = ex->vt->map_chunksize(ex, count, size);
    m->chunked = ex->vt->submit_chunk != NULL && cs > 1;
    m->chunksize = (cs == 0 || !m->chunked) ? 1 : cs;
    if (m->chunksize > count && count > 0)
        m->chunksize = count;
    m->nchunks = count ? (count - 1) / m->chunksize + 1 : 0;
    m->deadline = o.deadline > 0 ? o.deadline : BR_FOREVER;
    size_t buffersize = o.buffersize;
    if (buffersize == 0) {
        int w = ex->vt->max_workers(ex);
        buffersize = 2 * (size_t)(w > 0 ? w : 1);
    }
    m->ring = buffersize < m->nchunks ? buffersize + 1 : m->nchunks;
    if (m->ring == 0)
        m->ring = 1;
    /* ring * chunksize can wrap when huge counts come with size 0 (no args to read) */
    m->slab = m->chunksize <= SIZE_MAX / m->ring
                  ? br__calloc(m->ring * m->chunksize, sizeof *m->slab)
                  : NULL;
    if (m->slab == NULL) {
        br__free(m);
        return BR_ENOMEM;
    }
    size_t first = buffersize < m->nchunks ? buffersize : m->nchunks;
    int rc = submit_upto(m, first);
    /* Failed at the first chunk (cancelled: nothing submitted; else it carries the
     * code): nothing is running, so free just frees. */
    if (rc != 0 && m->submitted <= (rc == BR_ECANCELED ? 0u : 1u)) {
        br_map_free(m);
        return rc;
    }
    if (rc == BR_ECANCELED)
        repost_cancel(); /* the chunks before it are queued: the map goes on */
    /* Any other failure: the failed chunk's inputs carry the code; no more for now. */
    *out = m;
    return 0;
}

/* The map's deadline has passed (or expired the head input): cancel what hasn't
 * started; every later call returns BR_ETIMEDOUT. */
static int time_out(br_map *m) {
    m->timed_out = true;
    cancel_in_flight(m);
    return BR_ETIMEDOUT;
}

/* True if f, done, failed with BR_ETIMEDOUT after the map's deadline passed: its task
 * expired (never ran, or was stopped by the deadline), so Python would have been still
 * waiting for it. A task's own BR_ETIMEDOUT read after the deadline counts too: the
 * two can't be told apart, and either way the map is out of time. */
static bool expired(const br_map *m, br_future *f) {
    if (m->deadline == BR_FOREVER || !br_future_failed(f))
        return false;
    int code = 0;
    return br_future_exception(f, BR_NOWAIT, &code, NULL) == 0 && code == BR_ETIMEDOUT &&
           br__deadline_passed(m->deadline);
}

/* The next input's future, done, or an error (BR_EOF, BR_ETIMEDOUT, BR_ENOMEM, or
 * BR_ECANCELED with the map as it was). */
static int advance(br_map *m, br_future **fp) {
    *fp = NULL;
    if (m->cur) {
        br_future_release(m->cur);
        m->cur = NULL;
    }
    if (m->timed_out)
        return BR_ETIMEDOUT;
    if (m->head == m->nchunks)
        return BR_EOF;
    if (m->pos == 0) {
        size_t limit = m->head + m->ring < m->nchunks ? m->head + m->ring : m->nchunks;
        /* Another failure is recorded in the chunk's inputs; the rest later. */
        if (submit_upto(m, limit) == BR_ECANCELED)
            return BR_ECANCELED; /* taken back: the map is as it was (notes) */
    }
    chunk cs = slot(m, m->head), *c = &cs;
    br_future *f = input(c, m->pos);
    int rc = 0;
    if (f != NULL) {
        /* A done input is returned even past the deadline: br_future_wait answers 0
         * for it without looking at the clock. */
        rc = br_future_wait(f, m->deadline);
        if (rc == BR_ECANCELED)
            return BR_ECANCELED; /* the same input, next time */
        if (rc == BR_ETIMEDOUT || (rc == 0 && expired(m, f)))
            return time_out(m); /* the input stays in place: br_map_free releases it */
    } else {
        rc = BR_ENOMEM;
    }
    c->tasks[m->pos] = NULL;
    if (++m->pos == c->n) {
        m->head++;
        m->pos = 0;
    }
    m->cur = f;
    *fp = f;
    return rc;
}

int br_map_next(br_map *m, const void **data, size_t *len) {
    if (data)
        *data = NULL;
    if (len)
        *len = 0;
    if (m == NULL || m->magic != MAP_MAGIC)
        return BR__MISUSE(BR_EINVAL, "br_map_next: not a live map");
    br_future *f;
    int rc = advance(m, &f);
    if (rc != 0)
        return rc;
    rc = br_future_result(f, BR_NOWAIT, data, len);
    if (rc < 0 && rc != BR_ECANCELED) {
        const char *msg = NULL;
        int code;
        br_future_exception(f, BR_NOWAIT, &code, &msg);
        if (data)
            *data = msg;
        if (len)
            *len = msg ? strlen(msg) : 0;
    }
    return rc;
}

int br_map_next_i64(br_map *m, int64_t *value) {
    if (value)
        *value = 0;
    if (m == NULL || m->magic != MAP_MAGIC)
        return BR__MISUSE(BR_EINVAL, "br_map_next_i64: not a live map");
    br_future *f;
    int rc = advance(m, &f);
    if (rc != 0)
        return rc;
    return br_future_result_i64(f, BR_NOWAIT, value);
}

int br_map_free(br_map *m) {
    if (m == NULL || m->magic != MAP_MAGIC)
        return BR__MISUSE(BR_EINVAL, "br_map_free: not a live map");
    cancel_in_flight(m);
    for (size_t k = m->head; k < m->submitted; k++) {
        chunk cs = slot(m, k), *c = &cs;
        for (size_t j = (k == m->head ? m->pos : 0); j < c->n; j++) {
            br_future *f = input(c, j);
            if (f) {
                br__future_wait_done_nocancel(f); /* it borrows the caller's args */
                br_future_release(f);
            }
        }
    }
    if (m->cur)
        br_future_release(m->cur);
    m->magic = MAP_DEAD;
    br__free(m->slab);
    br__free_poisoned(m, sizeof *m);
    return 0;
}
