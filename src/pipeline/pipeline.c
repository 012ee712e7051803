/* Pipelines (braid/pipeline.h): stages joined by bounded queues, N workers per stage.
 *
 * Design notes (the protocol a change must keep)
 *
 * Items. In this process an item is one allocation, a struct item (length, then the
 * bytes); the queues carry pointers to them and own what they hold. Every hand-off
 * copies: put copies the caller's bytes, emit the fn's, get copies out for the caller.
 *
 * Queues. Stage i reads queue in[i] (bounded: br_stage_opts.capacity); stage i's emits
 * go to in[i+1], the last stage's to the output queue (if any). A putter waits on a full
 * queue: that is the backpressure, from the last stage back to br_pipeline_put.
 *
 * Draining (close). br_pipeline_close shuts in[0] down without dropping anything
 * (br_queue_shutdown(q, false): puts fail, gets go on until the queue is empty and then
 * answer BR_ESHUTDOWN). A worker that meets BR_ESHUTDOWN stops; the last worker of stage
 * i to stop shuts in[i+1] down the same way, after which no worker of stage i can emit
 * again, so every item emitted is in in[i+1] before its getters can see the end. This is
 * the tutorial's "one None per consumer", without counting sentinels: the queue's own
 * shutdown state is the sentinel, and the live-worker count says when the stage is done.
 *
 * Cancelling. Sets `cancelled`, then shuts every queue down at once (immediate): the
 * queue hands each item it held to dispose, which frees it and counts it as the
 * stage's dropped; blocked putters and getters wake with BR_ESHUTDOWN. A worker that
 * took an item just before sees `cancelled` and drops it (counted). Process pools are
 * terminated (their workers killed); the items they held count as dropped.
 *
 * Processes. A process stage is a process pool of N workers, started by the stage's
 * start method (fork, spawn or forkserver: br_stage_opts.start_method), and N threads
 * here ("feeders"), each taking one item at a time: submit it to the pool, wait for the
 * reply, emit what it carries to the next stage (with backpressure), count. In the
 * worker, stage_task calls fn with a br_stage in collecting mode: emits append to a
 * buffer, returned as the task's result: [int32 fn's code][u64 count] then per item
 * [u64 len][bytes]. fn and arg reach the worker once, through the pool's initializer
 * (stage_init, before its first item), which keeps them in the worker's globals (a
 * worker process serves one stage): under fork as the pointer values, valid in the
 * forked copy; under spawn and forkserver fn as a function reference (its module and
 * offset, or its br_register_fn name: process/start.h), resolved there, and arg only as
 * bytes (arg_len > 0), copied; a pointer arg can't cross, br_pipeline_new refuses it.
 * An item's task carries the stage's index and the feeder's number before its bytes.
 *
 * Coroutines. On the stage's own loop: one thread makes the loop, creates the N worker
 * tasks, runs the loop until each is done, and frees it. On a given loop: the tasks are
 * created from a callback scheduled with br_call_soon_threadsafe (the loop's thread),
 * and the futures released at once; the live count tells when they end.
 *
 * Ending. Every worker (thread, coroutine or feeder) decrements the stage's live count
 * and the pipeline's; the last sets the `done` event that br_pipeline_join waits for.
 * Threads are reaped (br_thread_join) by join, after `done`.
 */
#include "core/lib.h"
#include "process/start.h"

#include <braid/executor.h>
#include <braid/pipeline.h>
#include <braid/processpool.h>
#include <braid/queue.h>
#include <braid/task.h>
#include <braid/thread.h>

#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    size_t len;
    unsigned char data[];
} item;

typedef struct stage stage;

struct br_stage {
    br_pipeline *p;    /* NULL in a process worker (collecting) */
    size_t index;
    int worker;
    /* collecting (a process worker): the reply being built */
    unsigned char *buf;
    size_t buf_len, buf_cap;
    uint64_t count;
    int oom;
};

struct stage {
    br_pipeline *p;
    size_t index;
    br_stage_opts o;
    char *name;
    void *arg_copy;          /* arg_len > 0: the stage's copy of arg (o.arg points to it) */
    br_queue *in;
    _Atomic int live;        /* workers still running */
    _Atomic int next_worker; /* hands out worker numbers */
    _Atomic uint64_t n_in, n_out, n_errors, n_dropped;
    br_thread **threads;     /* workers (threads), feeders (processes), or the loop thread */
    int nthreads;
    br_executor *pool;       /* processes */
    bool spawned;            /* coroutines: their loop thread or spawning callback is on */
    br_event ready;          /* own loop: its coroutines are running (or failed) */
    _Atomic int started;     /* own loop: coroutines that began */
    struct coro_slot *slots; /* coroutines: one per worker */
    _Atomic int spawn_rc;    /* own loop: the first failure to start a coroutine */
};

struct br_pipeline {
    stage *stages;
    size_t n;
    br_queue *out;           /* NULL: no output */
    _Atomic uint64_t out_taken, out_dropped;
    _Atomic int cancelled;
    _Atomic int closed;
    _Atomic int live;        /* every worker of every stage */
    _Atomic int exiting;     /* the same, decremented as a worker's very last touch of p:
                              * a coroutine on a given loop can't be joined, so free waits
                              * for this instead */
    br_event done;
    _Atomic int joined;
};

static _Thread_local br_pipeline *current_pipeline; /* set in this pipeline's threads */

/* --- items and queues ------------------------------------------------------------------ */

static item *item_new(const void *data, size_t len) {
    if (len > SIZE_MAX - sizeof(item) - 1)
        return NULL;
    item *x = br__malloc(sizeof *x + len + 1);
    if (x == NULL)
        return NULL;
    x->len = len;
    if (len)
        memcpy(x->data, data, len);
    x->data[len] = 0;
    return x;
}

static void dispose_stage(void *it, void *ctx) {
    stage *s = ctx;
    atomic_fetch_add(&s->n_dropped, 1);
    br__free(it);
}

static void dispose_output(void *it, void *ctx) {
    br_pipeline *p = ctx;
    atomic_fetch_add(&p->out_dropped, 1);
    br__free(it);
}

/* The queue stage i emits into (NULL: the last stage, without output). */
static br_queue *next_queue(br_pipeline *p, size_t i) {
    return i + 1 < p->n ? p->stages[i + 1].in : p->out;
}

/* A worker of s is done: the last one closes the next queue (draining), the pipeline's
 * last sets `done`. */
static void worker_exit(stage *s) {
    br_pipeline *p = s->p;
    if (atomic_fetch_sub(&s->live, 1) == 1) {
        br_queue *next = next_queue(p, s->index);
        if (next != NULL)
            br_queue_shutdown(next, false);
    }
    if (atomic_fetch_sub(&p->live, 1) == 1)
        br_event_set(&p->done);
    atomic_fetch_sub_explicit(&p->exiting, 1, memory_order_release); /* the last touch */
}

/* --- emitting ------------------------------------------------------------------------------ */

static int collect(br_stage *st, const void *data, size_t len) {
    size_t need = st->buf_len + 8 + len;
    if (need > st->buf_cap) {
        size_t cap = st->buf_cap ? st->buf_cap : 256;
        while (cap < need)
            cap *= 2;
        unsigned char *b = br__realloc(st->buf, cap);
        if (b == NULL) {
            st->oom = 1;
            return BR_ENOMEM;
        }
        st->buf = b;
        st->buf_cap = cap;
    }
    uint64_t l = len;
    memcpy(st->buf + st->buf_len, &l, 8);
    if (len)
        memcpy(st->buf + st->buf_len + 8, data, len);
    st->buf_len += 8 + len;
    st->count++;
    return 0;
}

/* Puts a copy of data into the queue after stage i (or counts it, without output). */
static int emit_to(br_pipeline *p, size_t i, const void *data, size_t len) {
    stage *s = &p->stages[i];
    if (atomic_load(&p->cancelled))
        return BR_ESHUTDOWN;
    br_queue *q = next_queue(p, i);
    if (q == NULL) {
        atomic_fetch_add(&s->n_out, 1);
        return 0;
    }
    item *x = item_new(data, len);
    if (x == NULL)
        return BR_ENOMEM;
    int rc = br_queue_put(q, x, BR_FOREVER);
    if (rc != 0) {
        br__free(x);
        return rc;
    }
    atomic_fetch_add(&s->n_out, 1);
    return 0;
}

int br_stage_emit(br_stage *st, const void *data, size_t len) {
    if (st == NULL || (data == NULL && len > 0))
        return BR_EINVAL;
    if (st->p == NULL)
        return collect(st, data, len);
    return emit_to(st->p, st->index, data, len);
}

size_t br_stage_index(const br_stage *st) { return st ? st->index : 0; }

int br_stage_worker(const br_stage *st) { return st ? st->worker : -1; }

/* --- threads and coroutines ------------------------------------------------------------------ */

/* Takes items until the input ends (or the pipeline is cancelled), running fn on each.
 * The caller then calls worker_exit. */
static void work(stage *s) {
    br_pipeline *p = s->p;
    br_stage st = {.p = p, .index = s->index, .worker = atomic_fetch_add(&s->next_worker, 1)};
    for (;;) {
        void *it;
        int rc = br_queue_get(s->in, &it, BR_FOREVER);
        if (rc != 0)
            break; /* BR_ESHUTDOWN: drained or cancelled; BR_ECANCELED: the coroutine */
        item *x = it;
        if (atomic_load(&p->cancelled)) {
            atomic_fetch_add(&s->n_dropped, 1);
            br__free(x);
            continue;
        }
        atomic_fetch_add(&s->n_in, 1);
        if (s->o.fn(&st, x->data, x->len, s->o.arg) != 0)
            atomic_fetch_add(&s->n_errors, 1);
        br__free(x);
    }
}

static void thread_worker(void *arg) {
    stage *s = arg;
    current_pipeline = s->p;
    work(s);
    worker_exit(s);
}

/* A coroutine worker's slot: whether it ran, so that one that never did (its start
 * failed, or it was cancelled first) is counted out by its done callback instead. */
typedef struct coro_slot {
    stage *s;
    _Atomic int ran;
} coro_slot;

static int coro_worker(br_task *t) {
    coro_slot *slot = *(coro_slot *const *)br_task_arg(t, NULL);
    stage *s = slot->s;
    atomic_store(&slot->ran, 1);
    if (s->o.loop == NULL && atomic_fetch_add(&s->started, 1) + 1 == s->o.workers)
        br_event_set(&s->ready); /* its own loop: every coroutine is running */
    work(s);
    return 0; /* worker_exit: in coro_done, once the task is done */
}

/* Own loop: a coroutine couldn't be made or started; br_pipeline_new hears of the
 * first such failure. */
static void spawn_failed(stage *s, int rc) {
    int zero = 0;
    atomic_compare_exchange_strong(&s->spawn_rc, &zero, rc);
    br_event_set(&s->ready);
}

/* A worker that will never run: with no other left, nothing would ever take the
 * stage's input, so it is dropped (counted). */
static void worker_never_ran(stage *s) {
    if (atomic_load(&s->live) == 1)
        br_queue_shutdown(s->in, true);
    worker_exit(s);
}

/* Every coroutine worker ends here, on the thread that completes its task: after its
 * last touch of the stage (so `done` never fires while a coroutine is still inside
 * work()). */
static void coro_done(br_future *f, void *arg) {
    coro_slot *slot = arg;
    stage *s = slot->s;
    if (atomic_load(&slot->ran)) {
        worker_exit(s);
        return;
    }
    if (s->o.loop == NULL) /* its own loop: br_pipeline_new is waiting to hear */
        spawn_failed(s, br_future_cancelled(f) ? BR_ECANCELED : BR_ENOMEM);
    worker_never_ran(s);
}

/* Creates the stage's coroutines on loop; fs (or NULL: released) gets their futures,
 * *made how many were created. The workers that couldn't be created count as ended at
 * once. 0 or the first creation's error. */
static int coro_spawn(stage *s, br_loop *loop, br_future **fs, int *made) {
    int rc = 0;
    *made = 0;
    for (int i = 0; i < s->o.workers; i++) {
        coro_slot *slot = &s->slots[i];
        slot->s = s;
        br_future *f;
        rc = br_create_task(loop, coro_worker, &slot, sizeof slot, &f);
        if (rc != 0)
            break;
        if (br_future_add_done_callback(f, coro_done, slot) != 0 && br_future_cancel(f)) {
            /* cancelled before it started, and no callback to say so */
            if (s->o.loop == NULL)
                spawn_failed(s, BR_ENOMEM);
            worker_never_ran(s);
        }
        if (fs != NULL)
            fs[*made] = f;
        else
            br_future_release(f);
        (*made)++;
    }
    for (int i = *made; i < s->o.workers; i++)
        worker_never_ran(s);
    return rc;
}

/* The stage's own loop: created, its coroutines created and started (the outcome
 * handed to start_stage through `ready`: set by the last coroutine to start, or by a
 * failure), run until each is done, freed. */
static void loop_thread(void *arg) {
    stage *s = arg;
    current_pipeline = s->p;
    br_loop *loop = NULL;
    br_future **fs = br__calloc((size_t)s->o.workers, sizeof *fs);
    int made = 0;
    int rc = fs == NULL ? BR_ENOMEM : br_loop_new(&loop);
    if (rc == 0) {
        rc = coro_spawn(s, loop, fs, &made);
    } else {
        for (int i = 0; i < s->o.workers; i++)
            worker_never_ran(s);
    }
    if (rc != 0)
        spawn_failed(s, rc);
    for (int i = 0; i < made; i++) {
        br_loop_run_until_complete(loop, fs[i]);
        br_future_release(fs[i]);
    }
    if (loop != NULL)
        br_loop_free(loop);
    br__free(fs);
}

static void coro_spawn_cb(void *arg) {
    int made;
    coro_spawn(arg, br_loop_current(), NULL, &made);
}

/* --- processes ------------------------------------------------------------------------------- */

typedef struct proc_head {
    size_t index;
    int worker;
} proc_head;

/* What stage_init hands a worker: fn and arg as pointers (fork) or as a reference and
 * bytes (the arg_len bytes follow the struct). */
typedef struct proc_init {
    br_stage_fn fn;       /* by_ref false */
    void *arg;            /* by_ref false and arg_len 0 */
    uint64_t arg_len;
    uint32_t by_ref;
    br__fnref ref;        /* by_ref true */
} proc_init;

/* In a worker process: the stage's fn and arg, set by stage_init. */
static br_stage_fn worker_fn;
static void *worker_arg;

/* A task's argument starts with a fixed head: copies it into head; the bytes after it
 * (*rest of them), or NULL if the argument is too short. */
static const unsigned char *task_head(br_task *t, void *head, size_t size, size_t *rest) {
    size_t len;
    const unsigned char *a = br_task_arg(t, &len);
    if (len < size)
        return NULL;
    memcpy(head, a, size);
    *rest = len - size;
    return a + size;
}

/* A pool worker's initializer: fn and arg from the initarg. */
static int stage_init(br_task *t) {
    proc_init in;
    size_t rest = 0;
    const unsigned char *bytes = task_head(t, &in, sizeof in, &rest);
    if (bytes == NULL || in.arg_len != rest)
        return br_task_fail(t, BR_EINVAL, "pipeline: a malformed stage");
    br_stage_fn fn = in.fn;
    if (in.by_ref) {
        char why[160];
        br__fnptr f = NULL;
        int rc = br__fnref_resolve(&in.ref, &f, why, sizeof why);
        if (rc != 0)
            return br_task_fail(t, rc, "pipeline: the stage's function: %s", why);
        fn = (br_stage_fn)f;
    }
    void *arg = in.arg;
    if (in.arg_len > 0) {
        /* kept for the worker's life: worker_arg holds it */
        if ((arg = br__malloc(in.arg_len)) == NULL)
            return br_task_fail(t, BR_ENOMEM, "pipeline: no memory for the stage's arg");
        memcpy(arg, bytes, in.arg_len);
    }
    worker_fn = fn;
    worker_arg = arg;
    return 0;
}

/* In a pool worker: runs fn on the item, collecting what it emits; the reply is
 * [int32 code][u64 count] + per item [u64 len][bytes]. */
static int stage_task(br_task *t) {
    proc_head h;
    size_t len = 0;
    const unsigned char *bytes = task_head(t, &h, sizeof h, &len);
    if (bytes == NULL)
        return br_task_fail(t, BR_EINVAL, "pipeline: a malformed item");
    br_stage st = {.p = NULL, .index = h.index, .worker = h.worker};
    st.buf_cap = 256;
    st.buf = br__malloc(st.buf_cap);
    if (st.buf == NULL)
        return br_task_fail(t, BR_ENOMEM, "pipeline: no memory for the reply");
    st.buf_len = 12; /* the header, written below */
    if (worker_fn == NULL)
        return br_task_fail(t, BR_ESTATE, "pipeline: a worker without its stage");
    int32_t code = worker_fn(&st, bytes, len, worker_arg);
    if (st.oom)
        code = BR_ENOMEM;
    memcpy(st.buf, &code, 4);
    uint64_t count = st.count;
    memcpy(st.buf + 4, &count, 8);
    int rc = br_task_return(t, st.buf, st.buf_len);
    br__free(st.buf);
    return rc;
}

/* Items a feeder keeps in its pool at once: the next ones travel while one runs. */
enum { FEED_AHEAD = 4 };

typedef struct feed_slot {
    br_future *f;
    unsigned char *msg; /* the task's argument: the head, then the item */
    size_t cap;
} feed_slot;

/* Submits item x through slot sl: false if it couldn't be (cancelled, no memory). */
static bool feed_submit(stage *s, const proc_head *h, feed_slot *sl, const item *x) {
    sl->f = NULL;
    if (atomic_load(&s->p->cancelled))
        return false;
    size_t need = sizeof *h + x->len;
    if (sl->cap < need) {
        unsigned char *m = br__realloc(sl->msg, need);
        if (m == NULL)
            return false;
        sl->msg = m;
        sl->cap = need;
    }
    memcpy(sl->msg, h, sizeof *h);
    if (x->len)
        memcpy(sl->msg + sizeof *h, x->data, x->len);
    return br_submit(s->pool, stage_task, sl->msg, need, &sl->f) == 0;
}

/* An item's outcome: its reply's emits handed on (f NULL: it was never submitted). */
static void feed_reply(stage *s, br_future *f) {
    br_pipeline *p = s->p;
    const unsigned char *r = NULL;
    size_t rlen = 0;
    int rc = f != NULL ? br_future_result(f, BR_FOREVER, (const void **)&r, &rlen)
                       : BR_ESHUTDOWN;
    if (atomic_load(&p->cancelled) && rc != 0) {
        atomic_fetch_add(&s->n_dropped, 1);
    } else {
        atomic_fetch_add(&s->n_in, 1);
        int32_t code = rc;
        uint64_t count = 0;
        if (rc == 0 && rlen >= 12) {
            memcpy(&code, r, 4);
            memcpy(&count, r + 4, 8);
        }
        if (code != 0)
            atomic_fetch_add(&s->n_errors, 1);
        size_t off = 12;
        for (uint64_t k = 0; rc == 0 && k < count && off + 8 <= rlen; k++) {
            uint64_t l;
            memcpy(&l, r + off, 8);
            off += 8;
            if (l > rlen - off)
                break;
            emit_to(p, s->index, r + off, (size_t)l);
            off += (size_t)l;
        }
    }
    if (f != NULL)
        br_future_release(f);
}

/* A feeder: items through the pool, up to FEED_AHEAD at once, their replies taken in
 * the order submitted and their emits handed on to the next stage. */
static void feeder(void *arg) {
    stage *s = arg;
    current_pipeline = s->p;
    proc_head h = {.index = s->index, .worker = atomic_fetch_add(&s->next_worker, 1)};
    feed_slot slots[FEED_AHEAD] = {{0}};
    int head = 0, count = 0;
    bool input_done = false;
    for (;;) {
        /* Take more while there is room: wait only with nothing in flight. */
        while (!input_done && count < FEED_AHEAD) {
            void *it;
            int rc = br_queue_get(s->in, &it, count == 0 ? BR_FOREVER : BR_NOWAIT);
            if (rc == BR_ETIMEDOUT)
                break;
            if (rc != 0) {
                input_done = true;
                break;
            }
            feed_slot *sl = &slots[(head + count) % FEED_AHEAD];
            bool ok = feed_submit(s, &h, sl, it);
            br__free(it);
            if (ok)
                count++;
            else
                feed_reply(s, NULL);
        }
        if (count == 0) {
            if (input_done)
                break;
            continue;
        }
        feed_reply(s, slots[head].f);
        head = (head + 1) % FEED_AHEAD;
        count--;
    }
    for (int i = 0; i < FEED_AHEAD; i++)
        br__free(slots[i].msg);
    worker_exit(s);
}

/* The stage's process pool, its workers given fn and arg by stage_init. */
static int start_pool(stage *s) {
    br_start_method m = s->o.start_method ? s->o.start_method : br_get_start_method();
    size_t len = sizeof(proc_init) + s->o.arg_len;
    proc_init *in = br__calloc(1, len);
    if (in == NULL)
        return BR_ENOMEM;
    in->arg_len = s->o.arg_len;
    if (s->o.arg_len > 0)
        memcpy(in + 1, s->o.arg, s->o.arg_len);
    int rc = 0;
    if (m == BR_START_FORK) {
        in->fn = s->o.fn;
        in->arg = s->o.arg_len > 0 ? NULL : s->o.arg;
    } else {
        in->by_ref = 1;
        rc = br__fnref_make(&in->ref, (br__fnptr)s->o.fn, NULL, 0);
    }
    if (rc == 0) {
        br_processpool_opts po = {.max_workers = s->o.workers, .start_method = m,
                                  .prefetch = 1, .initializer = stage_init,
                                  .initarg = in, .initarg_len = len};
        rc = br_processpool_new(&s->pool, &po);
    }
    br__free(in);
    return rc;
}

/* --- the pipeline ------------------------------------------------------------------------------ */

static int start_stage(stage *s) {
    int n = s->o.workers;
    switch (s->o.model) {
    case BR_STAGE_THREADS:
    case BR_STAGE_PROCESSES:
        s->threads = br__calloc((size_t)n, sizeof *s->threads);
        if (s->threads == NULL)
            return BR_ENOMEM;
        for (int i = 0; i < n; i++) {
            char name[32];
            snprintf(name, sizeof name, "%.20s-%d", s->name, i);
            br_thread_opts to = {.name = name};
            int rc = br_thread_start(&s->threads[i],
                                     s->o.model == BR_STAGE_THREADS ? thread_worker : feeder, s,
                                     &to);
            if (rc != 0)
                return rc;
            s->nthreads++;
        }
        return 0;
    case BR_STAGE_COROUTINES:
        s->slots = br__calloc((size_t)n, sizeof *s->slots);
        if (s->slots == NULL)
            return BR_ENOMEM;
        if (s->o.loop != NULL) {
            int crc = br_call_soon_threadsafe(s->o.loop, coro_spawn_cb, s);
            s->spawned = crc == 0;
            return crc;
        }
        s->threads = br__calloc(1, sizeof *s->threads);
        if (s->threads == NULL)
            return BR_ENOMEM;
        char name[32];
        snprintf(name, sizeof name, "%.20s-loop", s->name);
        br_thread_opts to = {.name = name};
        int rc = br_thread_start(&s->threads[0], loop_thread, s, &to);
        if (rc != 0)
            return rc;
        s->nthreads = 1;
        s->spawned = true; /* the thread accounts for every worker, made or not */
        br_event_wait(&s->ready, BR_FOREVER);
        return atomic_load(&s->spawn_rc);
    }
    return BR_EINVAL;
}

static void reap(br_pipeline *p) {
    for (size_t i = 0; i < p->n; i++) {
        stage *s = &p->stages[i];
        for (int k = 0; k < s->nthreads; k++) {
            br_thread_join(s->threads[k], BR_FOREVER);
            br_thread_free(s->threads[k]);
        }
        s->nthreads = 0;
        if (s->pool != NULL) {
            br_executor_free(s->pool);
            s->pool = NULL;
        }
    }
}

static void destroy(br_pipeline *p) {
    /* Workers that set `done` may still be returning from br_event_set. */
    while (atomic_load_explicit(&p->exiting, memory_order_acquire) > 0)
        sched_yield();
    for (size_t i = 0; i < p->n; i++) {
        stage *s = &p->stages[i];
        if (s->in != NULL)
            br_queue_free(s->in);
        br__free(s->threads);
        br__free(s->slots);
        br__free(s->name);
        br__free(s->arg_copy);
        if (s->p != NULL)
            br_event_destroy(&s->ready);
    }
    if (p->out != NULL)
        br_queue_free(p->out);
    br_event_destroy(&p->done);
    br__free(p->stages);
    br__free(p);
}

/* A process stage of this start method is forked from this process (its pointers hold). */
static bool forks(br_start_method m) {
    return (m ? m : br_get_start_method()) == BR_START_FORK;
}

int br_pipeline_new(br_pipeline **out, const br_stage_opts *stages, size_t n,
                    const br_pipeline_opts *opts) {
    if (out == NULL || stages == NULL || n == 0 || n > 1024)
        return BR_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (stages[i].fn == NULL || stages[i].workers < 0 || stages[i].workers > 4096 ||
            (unsigned)stages[i].model > BR_STAGE_PROCESSES ||
            (unsigned)stages[i].start_method > BR_START_FORKSERVER ||
            (stages[i].arg_len > 0 && stages[i].arg == NULL) ||
            (stages[i].model == BR_STAGE_PROCESSES && stages[i].arg != NULL &&
             stages[i].arg_len == 0 && !forks(stages[i].start_method)))
            return BR_EINVAL;
    br_pipeline *p = br__calloc(1, sizeof *p);
    if (p == NULL)
        return BR_ENOMEM;
    br_event_init(&p->done);
    p->stages = br__calloc(n, sizeof *p->stages);
    if (p->stages == NULL) {
        destroy(p);
        return BR_ENOMEM;
    }
    p->n = n;
    int total = 0;
    for (size_t i = 0; i < n; i++) {
        stage *s = &p->stages[i];
        s->p = p;
        s->index = i;
        s->o = stages[i];
        if (s->o.workers == 0)
            s->o.workers = 1;
        if (s->o.capacity == 0)
            s->o.capacity = s->o.workers * 2 < 8 ? 8 : (size_t)s->o.workers * 2;
        atomic_init(&s->live, s->o.workers);
        br_event_init(&s->ready);
        total += s->o.workers;
    }
    atomic_init(&p->live, total);
    atomic_init(&p->exiting, total);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        stage *s = &p->stages[i];
        char def[32];
        snprintf(def, sizeof def, "stage-%zu", i);
        s->name = br__strdup(s->o.name ? s->o.name : def);
        s->o.name = s->name;
        br_queue_opts qo = {.maxsize = s->o.capacity, .dispose = dispose_stage, .dispose_ctx = s};
        rc = s->name == NULL ? BR_ENOMEM : br_queue_new(&s->in, &qo);
    }
    if (rc == 0 && opts != NULL && opts->output_capacity > 0) {
        br_queue_opts qo = {.maxsize = opts->output_capacity, .dispose = dispose_output,
                            .dispose_ctx = p};
        rc = br_queue_new(&p->out, &qo);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        stage *s = &p->stages[i];
        if (s->o.arg_len == 0)
            continue;
        if ((s->arg_copy = br__malloc(s->o.arg_len)) == NULL)
            rc = BR_ENOMEM;
        else
            s->o.arg = memcpy(s->arg_copy, s->o.arg, s->o.arg_len);
    }
    /* Process pools first, before this pipeline starts threads of its own. */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (p->stages[i].o.model == BR_STAGE_PROCESSES)
            rc = start_pool(&p->stages[i]);
    if (rc != 0) { /* nothing runs yet */
        atomic_store(&p->exiting, 0);
        reap(p);
        destroy(p);
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = start_stage(&p->stages[i]);
    if (rc != 0) {
        /* Stop what started: cancel, count out the workers that never started (the
         * ones that did end on their own), wait for the rest, reap. */
        br_pipeline_cancel(p);
        for (size_t i = 0; i < n; i++) {
            stage *s = &p->stages[i];
            int never = s->o.model == BR_STAGE_COROUTINES ? (s->spawned ? 0 : s->o.workers)
                                                          : s->o.workers - s->nthreads;
            for (int k = 0; k < never; k++)
                worker_exit(s);
        }
        br_event_wait(&p->done, BR_FOREVER);
        reap(p);
        destroy(p);
        return rc;
    }
    *out = p;
    return 0;
}

int br_pipeline_put(br_pipeline *p, const void *data, size_t len, int64_t deadline) {
    if (p == NULL || (data == NULL && len > 0))
        return BR_EINVAL;
    if (atomic_load(&p->cancelled) || atomic_load(&p->closed))
        return BR_ESHUTDOWN;
    item *x = item_new(data, len);
    if (x == NULL)
        return BR_ENOMEM;
    int rc = br_queue_put(p->stages[0].in, x, deadline);
    if (rc != 0)
        br__free(x);
    return rc;
}

int br_pipeline_close(br_pipeline *p) {
    if (p == NULL)
        return BR_EINVAL;
    atomic_store(&p->closed, 1);
    return br_queue_shutdown(p->stages[0].in, false);
}

int br_pipeline_cancel(br_pipeline *p) {
    if (p == NULL)
        return BR_EINVAL;
    atomic_store(&p->cancelled, 1);
    for (size_t i = 0; i < p->n; i++)
        br_queue_shutdown(p->stages[i].in, true);
    if (p->out != NULL)
        br_queue_shutdown(p->out, true);
    for (size_t i = 0; i < p->n; i++)
        if (p->stages[i].pool != NULL)
            br_processpool_terminate(p->stages[i].pool);
    return 0;
}

int br_pipeline_get(br_pipeline *p, void **data, size_t *len, int64_t deadline) {
    if (p == NULL || data == NULL || len == NULL || p->out == NULL)
        return BR_EINVAL;
    void *it;
    int rc = br_queue_get(p->out, &it, deadline);
    if (rc == BR_ESHUTDOWN)
        return BR_EOF;
    if (rc != 0)
        return rc;
    item *x = it;
    size_t l = x->len;
    /* The caller frees with free(): the bytes move to the start of the block. */
    memmove(x, x->data, l + 1);
    *data = x;
    *len = l;
    atomic_fetch_add(&p->out_taken, 1);
    return 0;
}

int br_pipeline_join(br_pipeline *p, int64_t deadline) {
    if (p == NULL)
        return BR_EINVAL;
    int rc = br_event_wait(&p->done, deadline);
    if (rc != 0)
        return rc;
    if (atomic_exchange(&p->joined, 1) == 0)
        reap(p);
    return 0;
}

int br_pipeline_stats(const br_pipeline *p, size_t i, br_stage_stats *out) {
    if (p == NULL || out == NULL || i > p->n)
        return BR_EINVAL;
    if (i == p->n) {
        br_pipeline *q = (br_pipeline *)p;
        *out = (br_stage_stats){.in = atomic_load(&q->out_taken),
                                .dropped = atomic_load(&q->out_dropped)};
        return 0;
    }
    stage *s = &p->stages[i];
    *out = (br_stage_stats){.in = atomic_load(&s->n_in), .out = atomic_load(&s->n_out),
                            .errors = atomic_load(&s->n_errors),
                            .dropped = atomic_load(&s->n_dropped)};
    return 0;
}

int br_pipeline_free(br_pipeline *p) {
    if (p == NULL)
        return BR_EINVAL;
    if (current_pipeline == p)
        return BR_EDEADLK;
    if (!br_event_is_set(&p->done))
        br_pipeline_cancel(p);
    br_pipeline_join(p, BR_FOREVER);
    destroy(p);
    return 0;
}
