/* A test-only executor: N worker threads on one mutex+condvar FIFO, written against the
 * installed extension API alone (braid/executor_impl.h), in the plainest way: it is
 * also the example docs/futures.md points executor writers at. It exists so that the
 * executor-generic layer (submit, map) and the conformance suite can be tested
 * without the real thread pool. Counters let tests observe what the generic layer
 * hands over (how many tasks were submitted, how many are queued).
 *
 *   br_executor *ex;
 *   mini_new(&ex, 2);   ... br_executor_free(ex);
 */
#ifndef BRAID_TESTS_MINI_EXECUTOR_H
#define BRAID_TESTS_MINI_EXECUTOR_H

#include "task_fifo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct mini_ex {
    br_executor base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task_fifo queue;
    bool shutdown;
    bool joined;
    int nworkers;
    pthread_t *threads;
    br_future **running; /* per worker, under mu, with a reference held */
    pthread_mutex_t join_mu;
    _Atomic long submits;  /* tasks accepted by vt->submit */
    _Atomic long finished; /* tasks the workers ran or skipped */
} mini_ex;

static _Thread_local mini_ex *mini_current;

typedef struct {
    mini_ex *m;
    int i;
} mini_worker_arg;

static void *mini_worker(void *p) {
    mini_worker_arg *a = p;
    mini_ex *m = a->m;
    int i = a->i;
    free(a);
    mini_current = m;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->queue.head == NULL && !m->shutdown)
            pthread_cond_wait(&m->cv, &m->mu);
        br_task *t = task_fifo_pop(&m->queue);
        if (t == NULL)
            break;
        br_future *f = br_task_future(t);
        br_future_retain(f); /* so shutdown can request_cancel it safely */
        m->running[i] = f;
        pthread_mutex_unlock(&m->mu);
        br_task_run(t);
        atomic_fetch_add(&m->finished, 1);
        pthread_mutex_lock(&m->mu);
        m->running[i] = NULL;
        pthread_mutex_unlock(&m->mu);
        br_future_release(f);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static int mini_submit(br_executor *ex, br_task *t, const br_call *call) {
    (void)call;
    mini_ex *m = (mini_ex *)ex;
    pthread_mutex_lock(&m->mu);
    if (m->shutdown) {
        pthread_mutex_unlock(&m->mu);
        return BR_ESHUTDOWN;
    }
    task_fifo_push(&m->queue, t);
    atomic_fetch_add(&m->submits, 1);
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mini_shutdown(br_executor *ex, bool wait, bool cancel_futures) {
    mini_ex *m = (mini_ex *)ex;
    if (wait && mini_current == m)
        return BR_EDEADLK;
    br_task *dropped = NULL;
    pthread_mutex_lock(&m->mu);
    m->shutdown = true;
    if (cancel_futures) {
        dropped = task_fifo_take_all(&m->queue);
        for (int i = 0; i < m->nworkers; i++)
            if (m->running[i])
                br_future_request_cancel(m->running[i]);
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    task_abandon_all(dropped, BR_ECANCELED);
    if (wait) {
        pthread_mutex_lock(&m->join_mu);
        if (!m->joined) {
            for (int i = 0; i < m->nworkers; i++)
                pthread_join(m->threads[i], NULL);
            m->joined = true;
        }
        pthread_mutex_unlock(&m->join_mu);
    }
    return 0;
}

static void mini_destroy(br_executor *ex) {
    mini_ex *m = (mini_ex *)ex;
    pthread_mutex_destroy(&m->mu);
    pthread_mutex_destroy(&m->join_mu);
    pthread_cond_destroy(&m->cv);
    free(m->threads);
    free(m->running);
    free(m);
}

static int mini_max_workers(const br_executor *ex) { return ((const mini_ex *)ex)->nworkers; }

static const br_executor_vt mini_vt = {
    .kind = "thread",
    .in_process = true,
    .submit = mini_submit,
    .submit_chunk = br_executor_chunk_runner,
    .shutdown = mini_shutdown,
    .destroy = mini_destroy,
    .max_workers = mini_max_workers,
    .parallel_for = NULL,
};

/* Not in-process, no submit_chunk: the generic layer must not hand it pointers, and
 * map goes per input. */
static const br_executor_vt mini_vt_remote = {
    .kind = "remote-test",
    .in_process = false,
    .submit = mini_submit,
    .shutdown = mini_shutdown,
    .destroy = mini_destroy,
    .max_workers = mini_max_workers,
    .parallel_for = NULL,
};

static int mini_new_vt(br_executor **out, int nworkers, const br_executor_vt *vt) {
    mini_ex *m = calloc(1, sizeof *m);
    if (m == NULL)
        return BR_ENOMEM;
    int rc = br_executor_init(&m->base, vt);
    if (rc != 0) {
        free(m);
        return rc;
    }
    m->nworkers = nworkers > 0 ? nworkers : 1;
    pthread_mutex_init(&m->mu, NULL);
    pthread_mutex_init(&m->join_mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->threads = calloc((size_t)m->nworkers, sizeof *m->threads);
    m->running = calloc((size_t)m->nworkers, sizeof *m->running);
    for (int i = 0; i < m->nworkers; i++) {
        mini_worker_arg *a = malloc(sizeof *a);
        a->m = m;
        a->i = i;
        pthread_create(&m->threads[i], NULL, mini_worker, a);
    }
    *out = &m->base;
    return 0;
}

static int mini_new(br_executor **out, int nworkers) {
    return mini_new_vt(out, nworkers, &mini_vt);
}

#endif
