/* The extension API (braid/executor_impl.h), from an executor's side and nothing else:
 * besides the test harness, this file (and task_fifo.h, which it shares with
 * mini_executor.h) includes only the installed headers.
 *
 * - A split executor, shaped like a process pool: a dispatcher thread begins each task,
 *   a worker (the remote side) calls its function, and the dispatcher finishes it with
 *   the return code the worker sent back through a queue. The whole executor
 *   conformance suite runs over it.
 * - The misuse answers of the task steps and of br_executor_init, through a probe
 *   executor whose tasks the test drives by hand.
 * - br_executor_chunk_runner (br_map's chunks): a chunk runs in order with an outcome
 *   per task; a runner that never runs takes its tasks with it; shutdown with
 *   cancel_futures in the middle of a chunk. */
#include "harness.h"

#include <braid.h>
#include <braid/executor_impl.h>

#include "task_fifo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- the split executor ---------------------------------------------------------------
 *
 * Tasks wait in the executor's own FIFO until a worker is free for them; then the
 * dispatcher begins one (br_task_begin: false if it was cancelled meanwhile or its
 * deadline passed), puts it in a slot and the slot's number in the job queue. A worker
 * takes the job, calls the function (br_task_call: the one step that would happen in
 * another process) and puts the slot, now holding the return code, in the result
 * queue. The dispatcher finishes the task (br_task_finish), so its outcome is published,
 * waiters wake and callbacks run on the dispatcher. Beginning only when a worker is
 * free keeps queued tasks cancellable, as Python's pools do. Chunks go through
 * br_executor_chunk_runner: the runner is one task like any other.
 *
 * Locking: one mutex over the FIFO, the slots and both queues; begin, call, finish and
 * abandon run without it (they may run callbacks, which may submit). */

typedef struct sx_slot {
    br_task *t;
    br_future *f; /* our reference while the task is begun: shutdown may ask it to stop */
    int rc;       /* the function's return value, sent back by the worker */
} sx_slot;

/* A FIFO of slot numbers: never more than the slots. */
typedef struct sx_ring {
    int *idx;
    int head, len, cap;
} sx_ring;

static void ring_push(sx_ring *r, int i) { r->idx[(r->head + r->len++) % r->cap] = i; }

static int ring_pop(sx_ring *r) {
    int i = r->idx[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return i;
}

typedef struct sx {
    br_executor base;
    pthread_mutex_t mu;
    pthread_cond_t disp_cv, work_cv;
    task_fifo queue;      /* submitted, not begun */
    br_task *last;        /* the last task submitted (the chunk tests look at it) */
    int nworkers;
    sx_slot *slots;       /* one per worker: at most that many tasks begun */
    sx_ring free_slots, jobs, results;
    bool shutdown, cancelling, stop_workers, joined;
    pthread_t dispatcher;
    pthread_t *workers;
    int nthreads; /* workers started */
    pthread_mutex_t join_mu;
    _Atomic long submits; /* tasks accepted by vt->submit */
} sx;

static _Thread_local sx *sx_current; /* the executor whose thread this is */

static void *sx_dispatch(void *p) {
    sx *m = p;
    sx_current = m;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        if (m->results.len > 0) {
            int i = ring_pop(&m->results);
            sx_slot s = m->slots[i];
            pthread_mutex_unlock(&m->mu);
            br_task_finish(s.t, s.rc); /* the outcome, the waiters, the callbacks: here */
            br_future_release(s.f);
            pthread_mutex_lock(&m->mu);
            m->slots[i] = (sx_slot){0};
            ring_push(&m->free_slots, i);
            continue;
        }
        if (m->queue.head != NULL && m->free_slots.len > 0) {
            br_task *t = task_fifo_pop(&m->queue);
            int i = ring_pop(&m->free_slots);
            pthread_mutex_unlock(&m->mu);
            bool begun = br_task_begin(t); /* false: the reference is gone already */
            br_future *f = begun ? br_task_future(t) : NULL;
            if (begun)
                br_future_retain(f);
            pthread_mutex_lock(&m->mu);
            if (!begun) {
                ring_push(&m->free_slots, i);
                continue;
            }
            m->slots[i] = (sx_slot){.t = t, .f = f};
            if (m->cancelling) /* popped just before a shutdown with cancel_futures */
                br_future_request_cancel(f);
            ring_push(&m->jobs, i);
            pthread_cond_signal(&m->work_cv);
            continue;
        }
        if (m->shutdown && m->queue.head == NULL && m->free_slots.len == m->nworkers)
            break;
        pthread_cond_wait(&m->disp_cv, &m->mu);
    }
    m->stop_workers = true;
    pthread_cond_broadcast(&m->work_cv);
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

/* The remote side: it sees the task only to call its function. */
static void *sx_work(void *p) {
    sx *m = p;
    sx_current = m;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->jobs.len == 0 && !m->stop_workers)
            pthread_cond_wait(&m->work_cv, &m->mu);
        if (m->jobs.len == 0)
            break;
        int i = ring_pop(&m->jobs);
        br_task *t = m->slots[i].t;
        pthread_mutex_unlock(&m->mu);
        int rc = br_task_call(t);
        pthread_mutex_lock(&m->mu);
        m->slots[i].rc = rc;
        ring_push(&m->results, i);
        pthread_cond_signal(&m->disp_cv);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int sx_submit(br_executor *ex, br_task *t, const br_call *call) {
    (void)call;
    sx *m = (sx *)ex;
    pthread_mutex_lock(&m->mu);
    if (m->shutdown) {
        pthread_mutex_unlock(&m->mu);
        return BR_ESHUTDOWN;
    }
    task_fifo_push(&m->queue, t);
    m->last = t;
    atomic_fetch_add(&m->submits, 1);
    pthread_cond_signal(&m->disp_cv);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

/* Gives up every task still waiting in the FIFO with `code`, as a broken pool would. */
static void sx_abandon_queued(sx *m, int code) {
    pthread_mutex_lock(&m->mu);
    br_task *list = task_fifo_take_all(&m->queue);
    pthread_mutex_unlock(&m->mu);
    task_abandon_all(list, code);
}

static void sx_join(sx *m) {
    pthread_mutex_lock(&m->join_mu);
    if (!m->joined) {
        pthread_join(m->dispatcher, NULL);
        for (int i = 0; i < m->nthreads; i++)
            pthread_join(m->workers[i], NULL);
        m->joined = true;
    }
    pthread_mutex_unlock(&m->join_mu);
}

static int sx_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    sx *m = (sx *)ex;
    if (wait && sx_current == m)
        return BR_EDEADLK; /* a task or a callback waiting for its own executor */
    br_task *dropped = NULL;
    pthread_mutex_lock(&m->mu);
    m->shutdown = true;
    if (cancel_futures) {
        /* In the same critical section as the flags: a task finishing now frees its
         * slot, and the dispatcher must not begin a queued task in it meanwhile. */
        m->cancelling = true;
        dropped = task_fifo_take_all(&m->queue);
        for (int i = 0; i < m->nworkers; i++)
            if (m->slots[i].f) /* begun: running, so this only asks it to stop */
                br_future_request_cancel(m->slots[i].f);
    }
    pthread_cond_broadcast(&m->disp_cv);
    pthread_mutex_unlock(&m->mu);
    task_abandon_all(dropped, BR_ECANCELED);
    if (wait)
        sx_join(m);
    return 0;
}

static void sx_destroy(br_executor *ex) {
    sx *m = (sx *)ex;
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->join_mu);
    pthread_cond_destroy(&m->disp_cv);
    pthread_cond_destroy(&m->work_cv);
    free(m->slots);
    free(m->free_slots.idx);
    free(m->jobs.idx);
    free(m->results.idx);
    free(m->workers);
    free(m);
}

static int sx_max_workers(const br_executor *ex) { return ((const sx *)ex)->nworkers; }

static const br_executor_vt sx_vt = {
    .kind = "split-test",
    .in_process = true,
    .submit = sx_submit,
    .submit_chunk = br_executor_chunk_runner,
    .shutdown = sx_shutdown,
    .destroy = sx_destroy,
    .max_workers = sx_max_workers,
};

static int sx_new(br_executor **out, int nworkers) {
    sx *m = calloc(1, sizeof *m);
    if (m == NULL)
        return BR_ENOMEM;
    int rc = br_executor_init(&m->base, &sx_vt);
    if (rc != 0) {
        free(m);
        return rc;
    }
    int n = nworkers > 0 ? nworkers : 1;
    m->nworkers = n;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->join_mu, NULL);
    pthread_cond_init(&m->disp_cv, NULL);
    pthread_cond_init(&m->work_cv, NULL);
    m->slots = calloc((size_t)n, sizeof *m->slots);
    m->workers = calloc((size_t)n, sizeof *m->workers);
    sx_ring *rings[] = {&m->free_slots, &m->jobs, &m->results};
    for (int k = 0; k < 3; k++) {
        rings[k]->idx = calloc((size_t)n, sizeof(int));
        rings[k]->cap = n;
    }
    if (!m->slots || !m->workers || !m->free_slots.idx || !m->jobs.idx || !m->results.idx) {
        sx_destroy(&m->base);
        return BR_ENOMEM;
    }
    for (int i = 0; i < n; i++)
        ring_push(&m->free_slots, i);
    for (; m->nthreads < n; m->nthreads++)
        if (pthread_create(&m->workers[m->nthreads], NULL, sx_work, m) != 0)
            break;
    if (m->nthreads < n || pthread_create(&m->dispatcher, NULL, sx_dispatch, m) != 0) {
        pthread_mutex_lock(&m->mu);
        m->stop_workers = true;
        pthread_cond_broadcast(&m->work_cv);
        pthread_mutex_unlock(&m->mu);
        for (int i = 0; i < m->nthreads; i++)
            pthread_join(m->workers[i], NULL);
        sx_destroy(&m->base);
        return BR_EAGAIN;
    }
    *out = &m->base;
    return 0;
}

static long sx_submits(br_executor *ex) { return atomic_load(&((sx *)ex)->submits); }

static br_task *sx_last(br_executor *ex) {
    sx *m = (sx *)ex;
    pthread_mutex_lock(&m->mu);
    br_task *t = m->last;
    pthread_mutex_unlock(&m->mu);
    return t;
}

/* --- the conformance suite over it ---------------------------------------------------- */

static int conformance_make(br_executor **out, int max_workers) {
    return sx_new(out, max_workers);
}

#include "conformance_executor.h"

/* --- the split, seen from the task -------------------------------------------------- */

typedef struct where {
    br_future *gate;
    pthread_t called_on, completed_on;
} where;

static int where_task(br_task *t) {
    where *w = *(where *const *)br_task_arg(t, NULL);
    w->called_on = pthread_self();
    if (br_future_wait(w->gate, br_test_hang_guard()) != 0)
        return BR_ETIMEDOUT;
    return br_task_return_i64(t, 11);
}

static void where_cb(br_future *f, void *arg) {
    (void)f;
    ((where *)arg)->completed_on = pthread_self();
}

/* The function runs on a worker; the task finishes (callbacks run) on the dispatcher. */
static void split_calls_on_a_worker_finishes_on_the_dispatcher(void **state) {
    (void)state;
    br_executor *ex = NULL;
    BR_CHECK_OK(sx_new(&ex, 2));
    where w = {0};
    BR_CHECK_OK(br_future_new(&w.gate));
    where *wp = &w;
    br_future *f = NULL;
    BR_CHECK_OK(br_submit_call(
        ex, &(br_call){.fn = where_task, .arg = &wp, .len = sizeof wp, .flags = BR_CALL_COPY_ARG},
        &f));
    BR_CHECK_OK(br_future_add_done_callback(f, where_cb, &w)); /* before it can finish */
    BR_CHECK_OK(br_future_set_result_i64(w.gate, 1));
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 11);
    pthread_t dispatcher = ((sx *)ex)->dispatcher;
    BR_CHECK_OK(br_executor_free(ex)); /* joins the dispatcher: the callback has run */
    BR_CHECK(pthread_equal(w.completed_on, dispatcher));
    BR_CHECK(!pthread_equal(w.called_on, dispatcher));
    BR_CHECK(!pthread_equal(w.called_on, pthread_self()));
    br_future_release(f);
    br_future_release(w.gate);
}

/* --- the probe executor: tasks driven by hand ---------------------------------------- */

/* Its submit only keeps the task; the test then begins, calls, finishes or abandons it
 * itself. One thread at a time. */
enum { PROBE_MAX = 8 };

typedef struct probe {
    br_executor base;
    br_task *held[PROBE_MAX];
    int n;
} probe;

static int probe_submit(br_executor *ex, br_task *t, const br_call *call) {
    (void)call;
    probe *p = (probe *)ex;
    if (p->n == PROBE_MAX)
        return BR_ENOMEM;
    p->held[p->n++] = t;
    return 0;
}

static int probe_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    (void)wait;
    (void)cancel_futures;
    probe *p = (probe *)ex;
    while (p->n > 0)
        br_task_abandon(p->held[--p->n], BR_ECANCELED);
    return 0;
}

static void probe_destroy(br_executor *ex) { free(ex); }

static int probe_max_workers(const br_executor *ex) {
    (void)ex;
    return 1;
}

static const br_executor_vt probe_vt = {
    .kind = "probe",
    .in_process = true,
    .submit = probe_submit,
    .shutdown = probe_shutdown,
    .destroy = probe_destroy,
    .max_workers = probe_max_workers,
};

static br_executor *probe_new(void) {
    probe *p = calloc(1, sizeof *p);
    BR_CHECK(p != NULL);
    BR_CHECK_OK(br_executor_init(&p->base, &probe_vt));
    return &p->base;
}

/* The task the last submit handed over (the test owns the executor's side of it). */
static br_task *probe_take(br_executor *ex) {
    probe *p = (probe *)ex;
    BR_CHECK(p->n > 0);
    return p->held[--p->n];
}

static int echo_task(br_task *t) { return br_task_return_i64(t, br_task_arg_i64(t)); }

static int never_called(br_task *t) {
    (void)t;
    return BR_EFAILED;
}

/* The task steps refuse what isn't their turn (BR_EINVAL, nothing changes), and take
 * NULL. */
static void task_steps_misuse(void **state) {
    (void)state;
    br_executor *ex = probe_new();
    br_future *f = NULL;
    BR_CHECK_OK(br_submit_i64(ex, echo_task, 5, &f));
    br_task *t = probe_take(ex);
    BR_CHECK(br_task_future(t) == f);
    BR_CHECK(br_task_function(t) == echo_task);
    BR_CHECK(br_task_link(t) != NULL);
    /* not begun */
    BR_CHECK_ERR(br_task_finish(t, 0), BR_EINVAL);
    BR_CHECK_ERR(br_task_call(t), BR_EINVAL);
    BR_CHECK_ERR(br_task_return_i64(t, 1), BR_EINVAL);
    BR_CHECK_ERR(br_task_fail(t, BR_EIO, "no"), BR_EINVAL);
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_PENDING);
    /* begun: abandon is refused, the task stays running */
    BR_CHECK(br_task_begin(t));
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_RUNNING);
    br_task_abandon(t, BR_EBROKEN);
    BR_CHECK_EQ(br_future_state_of(f), BR_FUTURE_RUNNING);
    BR_CHECK_OK(br_task_call(t));
    BR_CHECK_OK(br_task_finish(t, 0));
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 5);
    /* finished: not begun any more (our reference keeps the block) */
    BR_CHECK_ERR(br_task_finish(t, 0), BR_EINVAL);
    BR_CHECK_ERR(br_task_call(t), BR_EINVAL);
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 5);
    br_future_release(f);
    /* NULL */
    BR_CHECK(!br_task_begin(NULL));
    BR_CHECK_ERR(br_task_call(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_task_finish(NULL, 0), BR_EINVAL);
    BR_CHECK_ERR(br_task_run(NULL), BR_EINVAL);
    br_task_abandon(NULL, BR_ECANCELED);
    BR_CHECK(br_task_link(NULL) == NULL);
    BR_CHECK(br_task_future(NULL) == NULL);
    BR_CHECK(br_task_function(NULL) == NULL);
    BR_CHECK_OK(br_executor_free(ex));
}

/* What a process pool does with an outcome that comes back from elsewhere: between
 * begin and finish the executor stores it (any thread may), without calling the
 * function; begin refuses a task cancelled or expired in the queue. */
static void outcome_stored_by_the_executor(void **state) {
    (void)state;
    br_executor *ex = probe_new();
    br_future *f = NULL;
    /* a result */
    BR_CHECK_OK(br_submit_i64(ex, never_called, 0, &f));
    br_task *t = probe_take(ex);
    BR_CHECK(br_task_begin(t));
    BR_CHECK_OK(br_task_return_i64(t, 42));
    BR_CHECK_EQ(br_task_finish(t, 0), 0);
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 42);
    br_future_release(f);
    /* a failure with its message */
    BR_CHECK_OK(br_submit_i64(ex, never_called, 0, &f));
    t = probe_take(ex);
    BR_CHECK(br_task_begin(t));
    BR_CHECK_ERR(br_task_fail(t, BR_EIO, "remote %d", 7), BR_EIO);
    BR_CHECK_ERR(br_task_finish(t, BR_EIO), BR_EIO);
    int code = 0;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EIO);
    BR_CHECK(msg != NULL && strcmp(msg, "remote 7") == 0);
    br_future_release(f);
    /* cancelled in the queue: begin says no and gives the reference up */
    BR_CHECK_OK(br_submit_i64(ex, never_called, 0, &f));
    t = probe_take(ex);
    BR_CHECK(br_future_cancel(f));
    BR_CHECK(!br_task_begin(t));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    /* expired in the queue: begin says no, the future fails with BR_ETIMEDOUT */
    int64_t dl = br_deadline_after(BR_MSEC);
    int64_t zero = 0;
    BR_CHECK_OK(br_submit_call(ex,
                               &(br_call){.fn = never_called, .arg = &zero,
                                          .len = sizeof zero, .deadline = dl,
                                          .flags = BR_CALL_COPY_ARG},
                               &f));
    t = probe_take(ex);
    BR_CHECK_EQ(br_task_deadline(t), dl);
    br_sleep_until(dl); /* the condition under test */
    BR_CHECK(!br_task_begin(t));
    BR_CHECK_ERR(br_future_result(f, BR_NOWAIT, NULL, NULL), BR_ETIMEDOUT);
    br_future_release(f);
    /* abandoned: the code becomes the future's */
    BR_CHECK_OK(br_submit_i64(ex, never_called, 0, &f));
    br_task_abandon(probe_take(ex), BR_EBROKEN);
    BR_CHECK_ERR(br_future_result(f, BR_NOWAIT, NULL, NULL), BR_EBROKEN);
    br_future_release(f);
    /* br_task_run: begin + call + finish */
    BR_CHECK_OK(br_submit_i64(ex, echo_task, 9, &f));
    BR_CHECK_OK(br_task_run(probe_take(ex)));
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 9);
    br_future_release(f);
    /* left queued: the executor's shutdown gives it up */
    BR_CHECK_OK(br_submit_i64(ex, never_called, 0, &f));
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
}

/* br_executor_init refuses a vtable without a required operation (BR_EINVAL) or built
 * for another version of the interface (BR_ENOTSUP), and leaves the executor dead. */
static void executor_init_misuse(void **state) {
    (void)state;
    br_executor e;
    const br_executor_vt good = probe_vt; /* no submit_chunk, no parallel_for: optional */
    memset(&e, 0, sizeof e);
    BR_CHECK_OK(br_executor_init(&e, &good));
    BR_CHECK(br_executor_kind(&e) != NULL && strcmp(br_executor_kind(&e), "probe") == 0);
    BR_CHECK_EQ(br_executor_max_workers(&e), 1);

    br_executor_vt v[5];
    for (int i = 0; i < 5; i++)
        v[i] = good;
    v[0].kind = NULL;
    v[1].submit = NULL;
    v[2].shutdown = NULL;
    v[3].destroy = NULL;
    v[4].max_workers = NULL;
    for (int i = 0; i < 5; i++) {
        memset(&e, 0, sizeof e);
        BR_CHECK_ERR(br_executor_init(&e, &v[i]), BR_EINVAL);
        BR_CHECK(br_executor_kind(&e) == NULL); /* not a live executor */
        br_future *f = (br_future *)1;
        BR_CHECK_ERR(br_submit_i64(&e, echo_task, 1, &f), BR_EINVAL);
        BR_CHECK(f == NULL);
    }
    BR_CHECK_ERR(br_executor_init(NULL, &good), BR_EINVAL);
    BR_CHECK_ERR(br_executor_init(&e, NULL), BR_EINVAL);

    unsigned versions[] = {0, BR_EXECUTOR_IMPL_VERSION + 1, ~0u}; /* 1 to 3 are read */
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        memset(&e, 0, sizeof e);
        BR_CHECK_ERR(br_executor_init_version(&e, &good, versions[i]), BR_ENOTSUP);
        BR_CHECK(br_executor_kind(&e) == NULL);
    }
    memset(&e, 0, sizeof e);
    BR_CHECK_OK(br_executor_init_version(&e, &good, BR_EXECUTOR_IMPL_VERSION));
    /* the chunk runner refuses what isn't a live executor or a task */
    br_executor dead;
    memset(&dead, 0, sizeof dead);
    br_task *none[2] = {NULL, NULL};
    BR_CHECK_ERR(br_executor_chunk_runner(&dead, none, 0, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_executor_chunk_runner(&e, NULL, 2, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_executor_chunk_runner(&e, none, 2, NULL), BR_EINVAL);
    BR_CHECK_OK(br_executor_chunk_runner(&e, none, 0, NULL)); /* nothing to do */
}

/* --- the chunk runner ------------------------------------------------------------------ */

enum { CHUNK_N = 12 };

static int32_t chunk_in[CHUNK_N];
static _Atomic int chunk_ran;       /* inputs whose function ran */
static int32_t chunk_order[CHUNK_N]; /* the inputs in the order they ran */

static void chunk_reset(void) {
    for (int i = 0; i < CHUNK_N; i++)
        chunk_in[i] = i;
    atomic_store(&chunk_ran, 0);
    memset(chunk_order, 0xff, sizeof chunk_order);
}

/* Input x: fails (BR_ERANGE, "no x") for x % 4 == 3, else returns 10 x. */
static int chunk_fn(br_task *t) {
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    int k = atomic_fetch_add(&chunk_ran, 1);
    if (k < CHUNK_N)
        chunk_order[k] = x;
    if (x % 4 == 3)
        return br_task_fail(t, BR_ERANGE, "no %d", (int)x);
    return br_task_return_i64(t, 10 * (int64_t)x);
}

/* Reads a map of chunk_fn over inputs 0..n-1: every input its own outcome. */
static void chunk_check_results(br_map *m, int n) {
    for (int i = 0; i < n; i++) {
        const void *d = NULL;
        size_t len = 0;
        int rc = br_map_next(m, &d, &len);
        if (i % 4 == 3) {
            BR_CHECK_ERR(rc, BR_ERANGE);
            char want[16];
            snprintf(want, sizeof want, "no %d", i);
            BR_CHECK(d != NULL && strcmp(d, want) == 0);
        } else {
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(len, sizeof(int64_t));
            int64_t v;
            memcpy(&v, d, sizeof v);
            BR_CHECK_EQ(v, 10 * (int64_t)i);
        }
    }
    BR_CHECK_ERR(br_map_next(m, NULL, NULL), BR_EOF);
}

/* A chunk is one task for the executor (its runner) and runs its inputs in order, each
 * with its own outcome. */
static void chunk_runs_in_order(void **state) {
    (void)state;
    br_executor *ex = NULL;
    BR_CHECK_OK(sx_new(&ex, 2));
    size_t sizes[] = {CHUNK_N, 5};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        chunk_reset();
        size_t cs = sizes[c];
        long before = sx_submits(ex);
        br_map *m = NULL;
        BR_CHECK_OK(br_map_new(&m, ex, chunk_fn, chunk_in, CHUNK_N, sizeof chunk_in[0],
                               &(br_map_opts){.chunksize = cs, .buffersize = CHUNK_N}));
        chunk_check_results(m, CHUNK_N);
        BR_CHECK_OK(br_map_free(m));
        BR_CHECK_EQ(sx_submits(ex) - before, (CHUNK_N + (long)cs - 1) / (long)cs);
        BR_CHECK_EQ(atomic_load(&chunk_ran), CHUNK_N);
        /* within a chunk, in input order (chunks may interleave on two workers) */
        int last[CHUNK_N];
        for (int i = 0; i < CHUNK_N; i++)
            last[i] = -1;
        bool seen[CHUNK_N] = {false};
        for (int k = 0; k < CHUNK_N; k++) {
            int x = chunk_order[k];
            BR_CHECK(x >= 0 && x < CHUNK_N && !seen[x]);
            seen[x] = true;
            int chunk = x / (int)cs;
            BR_CHECK(x > last[chunk]);
            last[chunk] = x;
        }
    }
    BR_CHECK_OK(br_executor_free(ex));
}

/* A task that holds the executor's only worker until `gate` is set. */
static int hold_task(br_task *t) {
    br_future *const *gs = br_task_arg(t, NULL);
    br_future_set_result_i64(gs[1], 1); /* started */
    return br_future_wait(gs[0], br_test_hang_guard());
}

typedef struct holder {
    br_future *gs[2]; /* gate, started */
    br_future *f;
} holder;

static void hold_worker(br_executor *ex, holder *h) {
    BR_CHECK_OK(br_future_new(&h->gs[0]));
    BR_CHECK_OK(br_future_new(&h->gs[1]));
    BR_CHECK_OK(br_submit_call(ex,
                               &(br_call){.fn = hold_task, .arg = h->gs,
                                          .len = sizeof h->gs, .flags = BR_CALL_COPY_ARG},
                               &h->f));
    BR_CHECK_OK(br_future_wait(h->gs[1], br_test_hang_guard()));
}

static void release_worker(holder *h) {
    BR_CHECK_OK(br_future_set_result_i64(h->gs[0], 1));
    BR_CHECK_OK(br_future_result(h->f, br_test_hang_guard(), NULL, NULL));
    br_future_release(h->f);
    br_test_futures_release(h->gs, 2);
}

/* How a runner waiting in the queue can be given up. */
enum { GIVE_UP_CANCEL, GIVE_UP_ABANDON, GIVE_UP_SHUTDOWN };

/* A runner that never runs takes its tasks with it: each ends with the runner's code
 * (BR_ECANCELED for a cancelled runner), and none runs. */
static void chunk_runner_given_up(int how, int want) {
    br_executor *ex = NULL;
    BR_CHECK_OK(sx_new(&ex, 1));
    holder h;
    hold_worker(ex, &h);
    chunk_reset();
    br_map *m = NULL;
    BR_CHECK_OK(br_map_new(&m, ex, chunk_fn, chunk_in, CHUNK_N, sizeof chunk_in[0],
                           &(br_map_opts){.chunksize = CHUNK_N}));
    br_task *runner = sx_last(ex); /* queued behind the held worker */
    BR_CHECK(runner != NULL);
    switch (how) {
    case GIVE_UP_CANCEL:
        BR_CHECK(br_future_cancel(br_task_future(runner)));
        break;
    case GIVE_UP_ABANDON:
        sx_abandon_queued((sx *)ex, BR_EBROKEN);
        break;
    default:
        BR_CHECK_OK(br_executor_shutdown(ex, false, true));
        break;
    }
    for (int i = 0; i < CHUNK_N; i++) /* decided already: no wait */
        BR_CHECK_ERR(br_map_next(m, NULL, NULL), want);
    BR_CHECK_ERR(br_map_next(m, NULL, NULL), BR_EOF);
    if (how == GIVE_UP_SHUTDOWN) {
        /* the held task was asked to stop too; it ignores that and ends when let go */
        BR_CHECK_OK(br_future_set_result_i64(h.gs[0], 1));
        BR_CHECK_OK(br_future_wait(h.f, br_test_hang_guard()));
        br_future_release(h.f);
        br_test_futures_release(h.gs, 2);
    } else {
        release_worker(&h);
    }
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&chunk_ran), 0);
}

static void chunk_runner_cancelled_while_queued(void **state) {
    (void)state;
    chunk_runner_given_up(GIVE_UP_CANCEL, BR_ECANCELED);
}

static void chunk_runner_abandoned(void **state) {
    (void)state;
    chunk_runner_given_up(GIVE_UP_ABANDON, BR_EBROKEN);
}

static void chunk_runner_cancelled_by_shutdown(void **state) {
    (void)state;
    chunk_runner_given_up(GIVE_UP_SHUTDOWN, BR_ECANCELED);
}

/* Shutdown with cancel_futures while a chunk runs: the inputs done stay done, the
 * running one is asked to stop (through its runner) and ends cancelled, the rest never
 * start. */
static br_future *mid_started;
static _Atomic int mid_ran;

static int mid_fn(br_task *t) {
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    if (x != 2) {
        atomic_fetch_add(&mid_ran, 1);
        return br_task_return_i64(t, 10 * (int64_t)x);
    }
    br_future_set_result_i64(mid_started, 1);
    int64_t give_up = br_test_hang_guard();
    while (!br_task_cancelled(t)) {
        if (br_now() > give_up)
            return BR_ETIMEDOUT;
        br_sleep(100 * BR_USEC);
    }
    return BR_ECANCELED;
}

static void chunk_shutdown_cancels_mid_chunk(void **state) {
    (void)state;
    enum { N = 6 };
    int32_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = i;
    br_executor *ex = NULL;
    BR_CHECK_OK(sx_new(&ex, 1));
    BR_CHECK_OK(br_future_new(&mid_started));
    atomic_store(&mid_ran, 0);
    br_map *m = NULL;
    BR_CHECK_OK(br_map_new(&m, ex, mid_fn, in, N, sizeof in[0],
                           &(br_map_opts){.chunksize = N}));
    BR_CHECK_OK(br_future_wait(mid_started, br_test_hang_guard()));
    BR_CHECK_OK(br_executor_shutdown(ex, false, true));
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        int rc = br_map_next_i64(m, &v);
        if (i < 2) {
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(v, 10 * i);
        } else {
            BR_CHECK_ERR(rc, BR_ECANCELED);
        }
    }
    BR_CHECK_ERR(br_map_next_i64(m, NULL), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_EQ(atomic_load(&mid_ran), 2); /* 3, 4 and 5 never started */
    br_future_release(mid_started);
}

/* --- br_submit_batch through the vtable ------------------------------------------------
 */

static int probe_batch_calls;

/* A version-2 vt->submit_batch: holds what fits, in order, and refuses the rest with
 * BR_ENOMEM (a prefix queued). */
static int probe_submit_batch(br_executor *ex, br_task *const tasks[], size_t n,
                              const br_call *call, size_t *queued) {
    (void)call;
    probe *p = (probe *)ex;
    probe_batch_calls++;
    size_t k = 0;
    while (k < n && p->n < PROBE_MAX)
        p->held[p->n++] = tasks[k++];
    *queued = k;
    return k == n ? 0 : BR_ENOMEM;
}

/* Stands where a version-1 vtable has nothing: braid must never read it there. */
static int probe_submit_batch_unread(br_executor *ex, br_task *const tasks[], size_t n,
                                     const br_call *call, size_t *queued) {
    (void)ex;
    (void)tasks;
    (void)n;
    (void)call;
    (void)queued;
    fail_msg("vt->submit_batch read from a version-1 executor");
    return BR_EFAILED;
}

/* A batch of n echo tasks, task i with the argument 100 + i. */
static int probe_batch(br_executor *ex, int n, br_future **fs, size_t *queued) {
    static int64_t args[PROBE_MAX + 4];
    for (int i = 0; i < PROBE_MAX + 4; i++)
        args[i] = 100 + i;
    return br_submit_batch(ex, echo_task, args, (size_t)n, sizeof args[0], fs, queued);
}

/* The probe holds `count` tasks after `from` earlier ones: fs's, in order. */
static void probe_check_held(br_executor *ex, int from, int count, br_future **fs) {
    probe *p = (probe *)ex;
    BR_CHECK_EQ(p->n, from + count);
    for (int i = 0; i < count; i++) {
        BR_CHECK(br_task_future(p->held[from + i]) == fs[i]);
        BR_CHECK_EQ(br_task_arg_i64(p->held[from + i]), 100 + i);
    }
}

/* Version 2: the batch reaches vt->submit_batch in one call (a single task takes
 * vt->submit); a prefix queued comes back as the futures of that prefix, the rest
 * NULL, with the executor's code. Version 1: vt->submit_batch is never read, the batch
 * is a loop of vt->submit with the same prefix semantics. Either way the futures held
 * complete when the executor lets go of them. */
static void batch_through_the_vtable(void **state) {
    (void)state;
    for (unsigned version = 1; version <= 2; version++) {
        br_executor_vt vt = probe_vt;
        vt.submit_batch = version == 1 ? probe_submit_batch_unread : probe_submit_batch;
        probe *p = calloc(1, sizeof *p);
        BR_CHECK(p != NULL);
        BR_CHECK_OK(br_executor_init_version(&p->base, &vt, version));
        br_executor *ex = &p->base;
        br_future *fs[PROBE_MAX + 4];
        size_t q = 0;
        probe_batch_calls = 0;
        BR_CHECK_OK(probe_batch(ex, 5, fs, &q));
        BR_CHECK_EQ(q, 5);
        probe_check_held(ex, 0, 5, fs);
        BR_CHECK_EQ(probe_batch_calls, version == 2 ? 1 : 0);
        br_future *one;
        BR_CHECK_OK(probe_batch(ex, 1, &one, &q)); /* one task: vt->submit */
        BR_CHECK_EQ(probe_batch_calls, version == 2 ? 1 : 0);
        probe_check_held(ex, 5, 1, &one);
        /* room for 2 more: a prefix of 2, the rest refused with the executor's code */
        br_future *more[4];
        BR_CHECK_ERR(probe_batch(ex, 4, more, &q), BR_ENOMEM);
        BR_CHECK_EQ(q, 2);
        probe_check_held(ex, 6, 2, more);
        BR_CHECK(more[2] == NULL && more[3] == NULL);
        /* the executor runs one of them, and lets go of the rest */
        BR_CHECK_OK(br_task_run(probe_take(ex)));
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(more[1], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, 101);
        BR_CHECK_OK(br_executor_free(ex)); /* abandons the held ones: cancelled */
        for (int i = 0; i < 5; i++) {
            BR_CHECK(br_future_cancelled(fs[i]));
            br_future_release(fs[i]);
        }
        BR_CHECK(br_future_cancelled(one) && br_future_cancelled(more[0]));
        br_future_release(one);
        br_future_release(more[0]);
        br_future_release(more[1]);
    }
}

BR_TEST_MAIN(cmocka_unit_test(batch_through_the_vtable), BR_CONFORMANCE_TESTS,
             cmocka_unit_test(split_calls_on_a_worker_finishes_on_the_dispatcher),
             cmocka_unit_test(task_steps_misuse),
             cmocka_unit_test(outcome_stored_by_the_executor),
             cmocka_unit_test(executor_init_misuse), cmocka_unit_test(chunk_runs_in_order),
             cmocka_unit_test(chunk_runner_cancelled_while_queued),
             cmocka_unit_test(chunk_runner_abandoned),
             cmocka_unit_test(chunk_runner_cancelled_by_shutdown),
             cmocka_unit_test(chunk_shutdown_cancels_mid_chunk))
