/* The threading, queue and futures primitives with coroutine waiters.
 *
 * braid has one set of primitives for threads and coroutines: each blocking call,
 * made in a coroutine, suspends that coroutine and leaves its loop's thread running
 * the others. This file runs every blocking call of those layers with a coroutine on
 * the blocking side and checks, for each:
 *   - it suspends the coroutine, not the thread: a "witness" coroutine on the same
 *     loop, created right after the waiter, runs while the waiter is inside the call
 *     (had the call blocked the thread, the witness could never run and the test would
 *     hang until its guard), and finds the waiter not done;
 *   - it is woken, with the right value, by a coroutine of the same loop (SAME), by a
 *     plain thread (THREAD), and by a coroutine of another loop on another thread
 *     (OTHER);
 *   - cancelling the waiting task (CANCEL) makes the call return BR_ECANCELED, the
 *     task ends CANCELLED, and nothing was taken: the wake that follows leaves its
 *     unit, item, result or notify for the next taker (checked).
 *
 * The scenario, for a primitive P and a waker context W (a coroutine on loop A or B,
 * or a thread):
 *   W:       P.prepare (e.g. take the lock, so that the waiter must wait for W);
 *            creates the waiter and then the witness on loop A; waits for `go`
 *   waiter:  `entered` = 1; P.block (the blocking call); returns its value
 *   witness: (runs only once the waiter is suspended) checks entered and that the
 *            waiter isn't done; sets `go`
 *   W:       P.wake (release the lock, put the item...), or, for CANCEL, requests the
 *            waiter's cancellation, waits until the waiter is done, then P.wake and
 *            P.untaken (what the wake gave is still there)
 * Tasks created on a loop start in creation order, so the waiter runs (to its first
 * suspension) before the witness. Loops A and B run on their own threads
 * (br_loop_run_forever); the test's main thread only sets up and checks.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include <braid/aio.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- loops on threads -------------------------------------------------------------- */

typedef struct looper {
    br_loop *loop;
    br_thread *th;
} looper;

static void loop_main(void *arg) {
    looper *l = arg;
    BR_CHECK_OK(br_loop_run_forever(l->loop));
}

static void looper_start(looper *l) {
    BR_CHECK_OK(br_loop_new(&l->loop));
    BR_CHECK_OK(br_thread_start(&l->th, loop_main, l, NULL));
}

static void looper_stop(looper *l) {
    BR_CHECK_OK(br_loop_stop(l->loop));
    BR_CHECK_OK(br_thread_join(l->th, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(l->th));
    BR_CHECK_OK(br_loop_free(l->loop));
}

/* --- the scenario ------------------------------------------------------------------- */

enum { SAME, THREAD, OTHER, CANCEL };

typedef struct ctx ctx;
typedef struct prim {
    void (*init)(ctx *c);
    void (*prepare)(ctx *c);  /* in W, before the waiter starts (may be NULL) */
    int64_t (*block)(ctx *c); /* in the waiter: the blocking call; a value or a code */
    void (*wake)(ctx *c);     /* in W */
    void (*untaken)(ctx *c);  /* in W, after a cancelled block and the wake (may be NULL) */
    void (*fini)(ctx *c);     /* in the test thread, at the end (may be NULL) */
    int64_t expect;           /* what block returns when woken */
    bool no_wake_after_cancel;
} prim;

struct ctx {
    const prim *p;
    int how;
    looper a, b;
    br_event go;
    _Atomic int entered;
    _Atomic int witnessed;
    br_future *waiter_f, *witness_f;
    /* the primitives */
    br_lock lock;
    br_rlock rlock;
    br_cond cond;
    int cond_flag;
    br_sem sem;
    br_event ev, ev2;
    br_barrier barrier;
    int w_index;
    br_queue *q;
    br_future *fs[2];
    br_as_completed *it;
    br_executor *pool;
    br_map *map;
    br_thread *th;
};

static int waiter_task(br_task *t) {
    ctx *c = *(ctx *const *)br_task_arg(t, NULL);
    atomic_store(&c->entered, 1);
    int64_t v = c->p->block(c);
    if (v < 0)
        return (int)v;
    return br_task_return_i64(t, v);
}

static int witness_task(br_task *t) {
    ctx *c = *(ctx *const *)br_task_arg(t, NULL);
    if (atomic_load(&c->entered) == 1 && !br_future_done(c->waiter_f))
        atomic_store(&c->witnessed, 1);
    return br_event_set(&c->go);
}

static void w_body(ctx *c) {
    if (c->p->prepare)
        c->p->prepare(c);
    BR_CHECK_OK(br_create_task(c->a.loop, waiter_task, &c, sizeof c, &c->waiter_f));
    BR_CHECK_OK(br_create_task(c->a.loop, witness_task, &c, sizeof c, &c->witness_f));
    BR_CHECK_OK(br_event_wait(&c->go, br_test_hang_guard()));
    if (c->how == CANCEL) {
        BR_CHECK(br_future_request_cancel(c->waiter_f));
        BR_CHECK_OK(br_future_wait(c->waiter_f, br_test_hang_guard()));
        if (!c->p->no_wake_after_cancel)
            c->p->wake(c);
        if (c->p->untaken)
            c->p->untaken(c);
    } else {
        c->p->wake(c);
        BR_CHECK_OK(br_future_wait(c->waiter_f, br_test_hang_guard()));
    }
}

static int w_task(br_task *t) {
    w_body(*(ctx *const *)br_task_arg(t, NULL));
    return 0;
}

static void w_thread(void *arg) { w_body(arg); }

static void run(const prim *p, int how) {
    ctx *c = calloc(1, sizeof *c);
    BR_CHECK(c != NULL);
    c->p = p;
    c->how = how;
    BR_CHECK_OK(br_event_init(&c->go));
    if (p->init)
        p->init(c);
    looper_start(&c->a);
    if (how == OTHER)
        looper_start(&c->b);

    if (how == THREAD) {
        br_thread *th;
        BR_CHECK_OK(br_thread_start(&th, w_thread, c, NULL));
        BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
        BR_CHECK_OK(br_thread_free(th));
    } else {
        br_future *w;
        BR_CHECK_OK(br_create_task(how == OTHER ? c->b.loop : c->a.loop, w_task, &c, sizeof c,
                                   &w));
        BR_CHECK_OK(br_future_result(w, br_test_hang_guard(), NULL, NULL));
        br_future_release(w);
    }

    BR_CHECK_EQ(atomic_load(&c->witnessed), 1); /* the call suspended the coroutine */
    if (how == CANCEL) {
        BR_CHECK_ERR(br_future_result(c->waiter_f, BR_NOWAIT, NULL, NULL), BR_ECANCELED);
        BR_CHECK(br_future_cancelled(c->waiter_f));
    } else {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(c->waiter_f, BR_NOWAIT, &v));
        BR_CHECK_EQ(v, p->expect);
    }
    BR_CHECK_OK(br_future_result(c->witness_f, br_test_hang_guard(), NULL, NULL));
    br_future_release(c->waiter_f);
    br_future_release(c->witness_f);
    if (how == OTHER)
        looper_stop(&c->b);
    looper_stop(&c->a);
    if (p->fini)
        p->fini(c);
    BR_CHECK_OK(br_event_destroy(&c->go));
    free(c);
}

/* --- Lock: the waiter is a different owner from W, even on the same loop ------------ */

static void lock_init(ctx *c) { BR_CHECK_OK(br_lock_init(&c->lock)); }
static void lock_prepare(ctx *c) { BR_CHECK_OK(br_lock_acquire(&c->lock, BR_NOWAIT)); }
static int64_t lock_block(ctx *c) {
    int rc = br_lock_acquire(&c->lock, br_test_hang_guard());
    if (rc != 0)
        return rc;
    int64_t owned = br_lock_owned(&c->lock);
    BR_CHECK_OK(br_lock_release(&c->lock));
    return owned;
}
static void lock_wake(ctx *c) {
    BR_CHECK(br_lock_owned(&c->lock));
    BR_CHECK_OK(br_lock_release(&c->lock));
}
static void lock_untaken(ctx *c) {
    BR_CHECK(!br_lock_locked(&c->lock));
}
static void lock_fini(ctx *c) { BR_CHECK_OK(br_lock_destroy(&c->lock)); }
static const prim p_lock = {lock_init, lock_prepare, lock_block, lock_wake, lock_untaken,
                            lock_fini, 1, false};

/* --- RLock: counts per coroutine ---------------------------------------------------- */

static void rlock_init(ctx *c) { BR_CHECK_OK(br_rlock_init(&c->rlock)); }
static void rlock_prepare(ctx *c) {
    BR_CHECK_OK(br_rlock_acquire(&c->rlock, BR_NOWAIT));
    BR_CHECK_OK(br_rlock_acquire(&c->rlock, BR_NOWAIT));
    BR_CHECK_EQ(br_rlock_count(&c->rlock), 2);
}
static int64_t rlock_block(ctx *c) {
    BR_CHECK_EQ(br_rlock_count(&c->rlock), 0); /* W's count isn't ours */
    int rc = br_rlock_acquire(&c->rlock, br_test_hang_guard());
    if (rc != 0)
        return rc;
    BR_CHECK_OK(br_rlock_acquire(&c->rlock, BR_NOWAIT));
    int64_t n = br_rlock_count(&c->rlock);
    BR_CHECK_OK(br_rlock_release(&c->rlock));
    BR_CHECK_OK(br_rlock_release(&c->rlock));
    return n;
}
static void rlock_wake(ctx *c) {
    BR_CHECK_OK(br_rlock_release(&c->rlock));
    BR_CHECK_EQ(br_rlock_count(&c->rlock), 1);
    BR_CHECK_OK(br_rlock_release(&c->rlock));
}
static void rlock_untaken(ctx *c) {
    BR_CHECK_OK(br_rlock_acquire(&c->rlock, BR_NOWAIT));
    BR_CHECK_EQ(br_rlock_count(&c->rlock), 1);
    BR_CHECK_OK(br_rlock_release(&c->rlock));
}
static void rlock_fini(ctx *c) { BR_CHECK_OK(br_rlock_destroy(&c->rlock)); }
static const prim p_rlock = {rlock_init, rlock_prepare, rlock_block, rlock_wake,
                             rlock_untaken, rlock_fini, 2, false};

/* --- Condition ---------------------------------------------------------------------- */

static void cond_init(ctx *c) {
    BR_CHECK_OK(br_lock_init(&c->lock));
    BR_CHECK_OK(br_cond_init_lock(&c->cond, &c->lock));
}
static int64_t cond_block(ctx *c) {
    BR_CHECK_OK(br_cond_acquire(&c->cond, br_test_hang_guard()));
    int rc = 0;
    while (c->cond_flag == 0 && rc == 0)
        rc = br_cond_wait(&c->cond, br_test_hang_guard());
    int64_t v = c->cond_flag;
    BR_CHECK(br_lock_owned(&c->lock)); /* held again, even when cancelled */
    BR_CHECK_OK(br_cond_release(&c->cond));
    return rc != 0 ? rc : v;
}
static void cond_wake(ctx *c) {
    BR_CHECK_OK(br_cond_acquire(&c->cond, br_test_hang_guard()));
    c->cond_flag = 42;
    BR_CHECK_OK(br_cond_notify(&c->cond, 1));
    BR_CHECK_OK(br_cond_release(&c->cond));
}
static void cond_fini(ctx *c) {
    BR_CHECK_OK(br_cond_destroy(&c->cond));
    BR_CHECK_OK(br_lock_destroy(&c->lock));
}
static const prim p_cond = {cond_init, NULL, cond_block, cond_wake, NULL, cond_fini, 42, false};

/* --- Semaphore, BoundedSemaphore ------------------------------------------------------ */

static void sem_init(ctx *c) { BR_CHECK_OK(br_sem_init(&c->sem, 0)); }
static void bsem_init(ctx *c) { BR_CHECK_OK(br_sem_init_bounded(&c->sem, 1)); }
static void bsem_prepare(ctx *c) { BR_CHECK_OK(br_sem_acquire(&c->sem, BR_NOWAIT)); }
static int64_t sem_block(ctx *c) {
    int rc = br_sem_acquire(&c->sem, br_test_hang_guard());
    return rc != 0 ? rc : 1 + (int64_t)br_sem_value(&c->sem);
}
static void sem_wake(ctx *c) { BR_CHECK_OK(br_sem_release(&c->sem, 1)); }
static void sem_untaken(ctx *c) { BR_CHECK_EQ(br_sem_value(&c->sem), 1); }
static void bsem_untaken(ctx *c) {
    BR_CHECK_EQ(br_sem_value(&c->sem), 1);
    BR_CHECK_ERR(br_sem_release(&c->sem, 1), BR_EOVERFLOW); /* still bounded */
}
static void sem_fini(ctx *c) { BR_CHECK_OK(br_sem_destroy(&c->sem)); }
static const prim p_sem = {sem_init, NULL, sem_block, sem_wake, sem_untaken, sem_fini, 1,
                           false};
static const prim p_bsem = {bsem_init, bsem_prepare, sem_block, sem_wake, bsem_untaken,
                            sem_fini, 1, false};

/* --- Event ------------------------------------------------------------------------------ */

static void event_init(ctx *c) { BR_CHECK_OK(br_event_init(&c->ev)); }
static int64_t event_block(ctx *c) {
    int rc = br_event_wait(&c->ev, br_test_hang_guard());
    return rc != 0 ? rc : br_event_is_set(&c->ev);
}
static void event_wake(ctx *c) { BR_CHECK_OK(br_event_set(&c->ev)); }
static void event_fini(ctx *c) { BR_CHECK_OK(br_event_destroy(&c->ev)); }
static const prim p_event = {event_init, NULL, event_block, event_wake, NULL, event_fini, 1,
                             false};

/* --- Barrier(2): the waiter and W meet --------------------------------------------------- */

static void barrier_init(ctx *c) { BR_CHECK_OK(br_barrier_init(&c->barrier, 2, NULL, NULL)); }
static int64_t barrier_block(ctx *c) {
    int rc = br_barrier_wait(&c->barrier, br_test_hang_guard());
    return rc < 0 ? rc : 10 + rc;
}
static void barrier_wake(ctx *c) {
    c->w_index = br_barrier_wait(&c->barrier, br_test_hang_guard());
    BR_CHECK_EQ(c->w_index, 1); /* the waiter arrived first */
}
static void barrier_untaken(ctx *c) {
    /* a cancelled wait withdrew its arrival: not broken, nobody waiting */
    BR_CHECK(!br_barrier_broken(&c->barrier));
    BR_CHECK_EQ(br_barrier_n_waiting(&c->barrier), 0);
}
static void barrier_fini(ctx *c) { BR_CHECK_OK(br_barrier_destroy(&c->barrier)); }
static const prim p_barrier = {barrier_init, NULL, barrier_block, barrier_wake,
                               barrier_untaken, barrier_fini, 10, true};

/* --- queues: get from each kind; put into a full bounded one ----------------------------- */

static void q_make(ctx *c, br_queue_kind kind, size_t maxsize) {
    BR_CHECK_OK(br_queue_new(&c->q, &(br_queue_opts){.kind = kind, .maxsize = maxsize}));
}
static void fifo_init(ctx *c) { q_make(c, BR_QUEUE_FIFO, 0); }
static void lifo_init(ctx *c) { q_make(c, BR_QUEUE_LIFO, 0); }
static void prio_init(ctx *c) { q_make(c, BR_QUEUE_PRIORITY, 0); }
static void simple_init(ctx *c) { q_make(c, BR_QUEUE_SIMPLE, 0); }
static int64_t get_block(ctx *c) {
    void *item = NULL;
    int rc = br_queue_get(c->q, &item, br_test_hang_guard());
    return rc != 0 ? rc : (int64_t)(intptr_t)item;
}
static void put_wake(ctx *c) {
    if (br_queue_maxsize(c->q) == 0 && c->p->init == prio_init)
        BR_CHECK_OK(br_queue_put_prio(c->q, (void *)(intptr_t)77, 3, br_test_hang_guard()));
    else
        BR_CHECK_OK(br_queue_put(c->q, (void *)(intptr_t)77, br_test_hang_guard()));
}
static void get_untaken(ctx *c) {
    void *item = NULL;
    BR_CHECK_OK(br_queue_get(c->q, &item, BR_NOWAIT));
    BR_CHECK_EQ((intptr_t)item, 77);
    BR_CHECK(br_queue_empty(c->q));
}
static void q_fini(ctx *c) { BR_CHECK_OK(br_queue_free(c->q)); }
static const prim p_fifo = {fifo_init, NULL, get_block, put_wake, get_untaken, q_fini, 77, false};
static const prim p_lifo = {lifo_init, NULL, get_block, put_wake, get_untaken, q_fini, 77, false};
static const prim p_prio = {prio_init, NULL, get_block, put_wake, get_untaken, q_fini, 77, false};
static const prim p_simple = {simple_init, NULL, get_block, put_wake, get_untaken, q_fini, 77,
                              false};

/* bounded: the queue holds 1 (maxsize 1); the waiter's put of 2 waits for W's get */
static void bounded_init(ctx *c) { q_make(c, BR_QUEUE_FIFO, 1); }
static void bounded_prepare(ctx *c) {
    BR_CHECK_OK(br_queue_put(c->q, (void *)(intptr_t)1, BR_NOWAIT));
}
static int64_t put_block(ctx *c) {
    int rc = br_queue_put(c->q, (void *)(intptr_t)2, br_test_hang_guard());
    return rc != 0 ? rc : 5;
}
static void get_wake(ctx *c) {
    void *item = NULL;
    BR_CHECK_OK(br_queue_get(c->q, &item, br_test_hang_guard()));
    BR_CHECK_EQ((intptr_t)item, 1);
    if (c->how != CANCEL) {
        /* the waiter's item follows, once it is in */
        BR_CHECK_OK(br_queue_get(c->q, &item, br_test_hang_guard()));
        BR_CHECK_EQ((intptr_t)item, 2);
    }
}
static void put_untaken(ctx *c) { BR_CHECK(br_queue_empty(c->q)); } /* 2 never went in */
static const prim p_bounded = {bounded_init, bounded_prepare, put_block, get_wake,
                               put_untaken, q_fini, 5, false};

/* --- futures: result, wait, br_wait, as_completed ------------------------------------- */

static void fut_init(ctx *c) { br_test_futures_new(c->fs, 2); }
static void fut_fini(ctx *c) { br_test_futures_release(c->fs, 2); }
static void fut_wake(ctx *c) { BR_CHECK_OK(br_future_set_result_i64(c->fs[1], 55)); }
static void fut_untaken(ctx *c) {
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(c->fs[1], BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 55);
}
static int64_t result_block(ctx *c) {
    int64_t v = 0;
    int rc = br_future_result_i64(c->fs[1], br_test_hang_guard(), &v);
    return rc != 0 ? rc : v;
}
static int64_t fwait_block(ctx *c) {
    int rc = br_future_wait(c->fs[1], br_test_hang_guard());
    return rc != 0 ? rc : 100 + br_future_done(c->fs[1]);
}
static int64_t brwait_block(ctx *c) {
    br_future *sets[2];
    size_t nd = 9, nn = 9;
    int rc = br_wait(c->fs, 2, BR_FIRST_COMPLETED, br_test_hang_guard(), sets, &nd, &nn);
    if (rc != 0)
        return rc;
    BR_CHECK(sets[0] == c->fs[1]);
    BR_CHECK(sets[1] == c->fs[0]);
    return (int64_t)(nd * 10 + nn);
}
static const prim p_result = {fut_init, NULL, result_block, fut_wake, fut_untaken, fut_fini,
                              55, false};
static const prim p_fwait = {fut_init, NULL, fwait_block, fut_wake, fut_untaken, fut_fini, 101,
                             false};
static const prim p_brwait = {fut_init, NULL, brwait_block, fut_wake, fut_untaken, fut_fini, 11,
                              false};

static void asc_init(ctx *c) {
    fut_init(c);
    BR_CHECK_OK(br_as_completed_new(&c->it, c->fs, 2, BR_FOREVER));
}
static int64_t asc_block(ctx *c) {
    br_future *f = NULL;
    size_t idx = 9;
    int rc = br_as_completed_next_index(c->it, &f, &idx);
    return rc != 0 ? rc : (int64_t)idx;
}
static void asc_untaken(ctx *c) {
    br_future *f = NULL;
    size_t idx = 9;
    BR_CHECK_OK(br_as_completed_next_index(c->it, &f, &idx)); /* not lost */
    BR_CHECK_EQ(idx, 1);
}
static void asc_fini(ctx *c) {
    BR_CHECK_OK(br_as_completed_free(c->it));
    fut_fini(c);
}
static const prim p_asc = {asc_init, NULL, asc_block, fut_wake, asc_untaken, asc_fini, 1, false};

/* --- br_map iteration: the input's task waits for W's event ---------------------------- */

static int gated_double(br_task *t) {
    br_event *ev = *(br_event *const *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_event_wait(ev, br_test_hang_guard()));
    return br_task_return_i64(t, 2 * 21);
}
static br_event *map_args[1];
static void map_init(ctx *c) {
    BR_CHECK_OK(br_event_init(&c->ev));
    BR_CHECK_OK(br_threadpool_new(&c->pool, &(br_threadpool_opts){.max_workers = 1}));
    map_args[0] = &c->ev;
    BR_CHECK_OK(br_map_new(&c->map, c->pool, gated_double, map_args, 1, sizeof map_args[0],
                           NULL));
}
static int64_t map_block(ctx *c) {
    int64_t v = 0;
    int rc = br_map_next_i64(c->map, &v);
    return rc != 0 ? rc : v;
}
static void map_untaken(ctx *c) {
    int64_t v = 0;
    BR_CHECK_OK(br_map_next_i64(c->map, &v)); /* the cancelled next took nothing */
    BR_CHECK_EQ(v, 42);
}
static void map_fini(ctx *c) {
    BR_CHECK_OK(br_map_free(c->map));
    BR_CHECK_OK(br_executor_free(c->pool));
    BR_CHECK_OK(br_event_destroy(&c->ev));
}
static const prim p_map = {map_init, NULL, map_block, event_wake, map_untaken, map_fini, 42,
                           false};

/* --- br_thread_join ------------------------------------------------------------------------- */

static void wait_ev(void *arg) { BR_CHECK_OK(br_event_wait(arg, br_test_hang_guard())); }
static void join_init(ctx *c) {
    BR_CHECK_OK(br_event_init(&c->ev));
    BR_CHECK_OK(br_thread_start(&c->th, wait_ev, &c->ev, NULL));
}
static int64_t join_block(ctx *c) {
    int rc = br_thread_join(c->th, br_test_hang_guard());
    return rc != 0 ? rc : 3;
}
static void join_untaken(ctx *c) { BR_CHECK_OK(br_thread_join(c->th, br_test_hang_guard())); }
static void join_fini(ctx *c) {
    BR_CHECK_OK(br_thread_free(c->th));
    BR_CHECK_OK(br_event_destroy(&c->ev));
}
static const prim p_join = {join_init, NULL, join_block, event_wake, join_untaken, join_fini, 3,
                            false};

/* --- the table: every primitive x {SAME, THREAD, OTHER, CANCEL} ------------------------ */

#define SCENARIOS(name)                                                                   \
    static void name##_same(void **s) { (void)s; run(&p_##name, SAME); }                  \
    static void name##_thread(void **s) { (void)s; run(&p_##name, THREAD); }              \
    static void name##_other(void **s) { (void)s; run(&p_##name, OTHER); }                \
    static void name##_cancel(void **s) { (void)s; run(&p_##name, CANCEL); }

SCENARIOS(lock)
SCENARIOS(rlock)
SCENARIOS(cond)
SCENARIOS(sem)
SCENARIOS(bsem)
SCENARIOS(event)
SCENARIOS(barrier)
SCENARIOS(fifo)
SCENARIOS(lifo)
SCENARIOS(prio)
SCENARIOS(simple)
SCENARIOS(bounded)
SCENARIOS(result)
SCENARIOS(fwait)
SCENARIOS(brwait)
SCENARIOS(asc)
SCENARIOS(map)
SCENARIOS(join)

/* --- ownership, orderings and no loss beyond one wake ------------------------------------ */

/* A lock taken by one coroutine is not another's to release (same loop, same thread).
 * (Identities are never reused: tests/aio/test_loop2.c checks a lock left held by a
 * finished coroutine.) */
static br_lock own_lock;
static br_event own_done;
static int own_take(br_task *t) {
    (void)t;
    BR_CHECK_OK(br_lock_acquire(&own_lock, BR_NOWAIT));
    BR_CHECK_OK(br_event_wait(&own_done, br_test_hang_guard()));
    BR_CHECK(br_lock_owned(&own_lock));
    return br_lock_release(&own_lock);
}
static int own_steal(br_task *t) {
    (void)t;
    BR_CHECK(!br_lock_owned(&own_lock));
    int rc = br_lock_release(&own_lock);
    return rc == BR_EPERM ? 0 : BR_EFAILED;
}
static int own_main(br_task *t) {
    (void)t;
    br_future *owner, *f;
    BR_CHECK_OK(br_create_task(NULL, own_take, NULL, 0, &owner));
    BR_CHECK_OK(br_aio_yield()); /* the owner takes the lock and waits */
    BR_CHECK(br_lock_locked(&own_lock));
    BR_CHECK(!br_lock_owned(&own_lock)); /* held by own_take's coroutine, not main's */
    BR_CHECK_ERR(br_lock_release(&own_lock), BR_EPERM);
    BR_CHECK_OK(br_create_task(NULL, own_steal, NULL, 0, &f));
    BR_CHECK_OK(br_future_result(f, BR_FOREVER, NULL, NULL));
    br_future_release(f);
    BR_CHECK(br_lock_locked(&own_lock));
    BR_CHECK_OK(br_event_set(&own_done));
    BR_CHECK_OK(br_future_result(owner, BR_FOREVER, NULL, NULL)); /* the owner released */
    br_future_release(owner);
    BR_CHECK(!br_lock_locked(&own_lock));
    return 0;
}

static void lock_release_by_non_owner(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&own_lock));
    BR_CHECK_OK(br_event_init(&own_done));
    int code = -1;
    BR_CHECK_OK(br_aio_run(own_main, NULL, 0, &code));
    BR_CHECK_OK(code);
    BR_CHECK_OK(br_event_destroy(&own_done));
    BR_CHECK_OK(br_lock_destroy(&own_lock));
}

/* Every kind of queue, prefilled by a thread, drained by a coroutine: the kind's order,
 * each item once; then a FIFO streamed by a thread through a small bounded queue to a
 * coroutine, in order, nothing lost. */
static br_queue *ord_q;
enum { ORD_N = 200 };
static int drain_task(br_task *t) {
    int64_t kind = br_task_arg_i64(t);
    for (int i = 0; i < ORD_N; i++) {
        void *item = NULL;
        int64_t prio = 0;
        BR_CHECK_OK(br_queue_get_prio(ord_q, &item, &prio, br_test_hang_guard()));
        intptr_t want = kind == BR_QUEUE_LIFO ? ORD_N - 1 - i : i;
        BR_CHECK_EQ((intptr_t)item, want);
    }
    BR_CHECK(br_queue_empty(ord_q));
    return 0;
}

static void queue_orders_in_a_coroutine(void **state) {
    (void)state;
    for (int kind = BR_QUEUE_FIFO; kind <= BR_QUEUE_SIMPLE; kind++) {
        BR_CHECK_OK(br_queue_new(&ord_q, &(br_queue_opts){.kind = (br_queue_kind)kind}));
        for (intptr_t i = 0; i < ORD_N; i++) {
            if (kind == BR_QUEUE_PRIORITY) /* put in reverse, by priority i */
                BR_CHECK_OK(br_queue_put_prio(ord_q, (void *)(ORD_N - 1 - i), ORD_N - 1 - i,
                                              BR_NOWAIT));
            else
                BR_CHECK_OK(br_queue_put(ord_q, (void *)i, BR_NOWAIT));
        }
        int code = -1;
        BR_CHECK_OK(br_aio_run(drain_task, &(int64_t){kind}, sizeof(int64_t), &code));
        BR_CHECK_OK(code);
        BR_CHECK_OK(br_queue_free(ord_q));
    }
}

static void stream_put(void *arg) {
    (void)arg;
    for (intptr_t i = 0; i < ORD_N; i++)
        BR_CHECK_OK(br_queue_put(ord_q, (void *)i, br_test_hang_guard()));
}

static void queue_stream_thread_to_coroutine(void **state) {
    (void)state;
    BR_CHECK_OK(br_queue_new(&ord_q, &(br_queue_opts){.maxsize = 3}));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, stream_put, NULL, NULL));
    int code = -1;
    BR_CHECK_OK(br_aio_run(drain_task, &(int64_t){BR_QUEUE_FIFO}, sizeof(int64_t), &code));
    BR_CHECK_OK(code);
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(th));
    BR_CHECK_OK(br_queue_free(ord_q));
}

/* Many coroutines of one loop and two threads share a lock-protected counter and a
 * semaphore: every increment counted once. */
enum { MIX_CO = 50, MIX_TH = 2, MIX_ROUNDS = 200 };
static br_lock mix_lock;
static br_sem mix_sem;
static long mix_count;
static int mix_inside, mix_most;
static void mix_round(void) {
    BR_CHECK_OK(br_sem_acquire(&mix_sem, br_test_hang_guard()));
    BR_CHECK_OK(br_lock_acquire(&mix_lock, br_test_hang_guard()));
    mix_count++;
    int in = ++mix_inside;
    if (in > mix_most)
        mix_most = in;
    BR_CHECK_OK(br_lock_release(&mix_lock));
    BR_CHECK_OK(br_lock_acquire(&mix_lock, br_test_hang_guard()));
    mix_inside--;
    BR_CHECK_OK(br_lock_release(&mix_lock));
    BR_CHECK_OK(br_sem_release(&mix_sem, 1));
}
static int mix_co(br_task *t) {
    (void)t;
    for (int i = 0; i < MIX_ROUNDS; i++) {
        mix_round();
        if (i % 7 == 0)
            BR_CHECK_OK(br_aio_yield());
    }
    return 0;
}
static void mix_th(void *arg) {
    (void)arg;
    for (int i = 0; i < MIX_ROUNDS; i++)
        mix_round();
}
static int mix_main(br_task *t) {
    (void)t;
    br_future *fs[MIX_CO];
    for (int i = 0; i < MIX_CO; i++)
        BR_CHECK_OK(br_create_task(NULL, mix_co, NULL, 0, &fs[i]));
    BR_CHECK_OK(br_gather(fs, MIX_CO, false, br_test_hang_guard()));
    br_test_futures_release(fs, MIX_CO);
    return 0;
}

static void lock_and_sem_mixed_with_threads(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&mix_lock));
    BR_CHECK_OK(br_sem_init(&mix_sem, 3));
    br_thread *th[MIX_TH];
    for (int i = 0; i < MIX_TH; i++)
        BR_CHECK_OK(br_thread_start(&th[i], mix_th, NULL, NULL));
    int code = -1;
    BR_CHECK_OK(br_aio_run(mix_main, NULL, 0, &code));
    BR_CHECK_OK(code);
    for (int i = 0; i < MIX_TH; i++) {
        BR_CHECK_OK(br_thread_join(th[i], br_test_hang_guard()));
        BR_CHECK_OK(br_thread_free(th[i]));
    }
    BR_CHECK_EQ(mix_count, (long)(MIX_CO + MIX_TH) * MIX_ROUNDS);
    BR_CHECK(mix_most >= 1 && mix_most <= 3);
    BR_CHECK_EQ(br_sem_value(&mix_sem), 3);
    BR_CHECK_OK(br_sem_destroy(&mix_sem));
    BR_CHECK_OK(br_lock_destroy(&mix_lock));
}

BR_TEST_MAIN(cmocka_unit_test(lock_same),
             cmocka_unit_test(lock_thread),
             cmocka_unit_test(lock_other),
             cmocka_unit_test(lock_cancel),
             cmocka_unit_test(rlock_same),
             cmocka_unit_test(rlock_thread),
             cmocka_unit_test(rlock_other),
             cmocka_unit_test(rlock_cancel),
             cmocka_unit_test(cond_same),
             cmocka_unit_test(cond_thread),
             cmocka_unit_test(cond_other),
             cmocka_unit_test(cond_cancel),
             cmocka_unit_test(sem_same),
             cmocka_unit_test(sem_thread),
             cmocka_unit_test(sem_other),
             cmocka_unit_test(sem_cancel),
             cmocka_unit_test(bsem_same),
             cmocka_unit_test(bsem_thread),
             cmocka_unit_test(bsem_other),
             cmocka_unit_test(bsem_cancel),
             cmocka_unit_test(event_same),
             cmocka_unit_test(event_thread),
             cmocka_unit_test(event_other),
             cmocka_unit_test(event_cancel),
             cmocka_unit_test(barrier_same),
             cmocka_unit_test(barrier_thread),
             cmocka_unit_test(barrier_other),
             cmocka_unit_test(barrier_cancel),
             cmocka_unit_test(fifo_same),
             cmocka_unit_test(fifo_thread),
             cmocka_unit_test(fifo_other),
             cmocka_unit_test(fifo_cancel),
             cmocka_unit_test(lifo_same),
             cmocka_unit_test(lifo_thread),
             cmocka_unit_test(lifo_other),
             cmocka_unit_test(lifo_cancel),
             cmocka_unit_test(prio_same),
             cmocka_unit_test(prio_thread),
             cmocka_unit_test(prio_other),
             cmocka_unit_test(prio_cancel),
             cmocka_unit_test(simple_same),
             cmocka_unit_test(simple_thread),
             cmocka_unit_test(simple_other),
             cmocka_unit_test(simple_cancel),
             cmocka_unit_test(bounded_same),
             cmocka_unit_test(bounded_thread),
             cmocka_unit_test(bounded_other),
             cmocka_unit_test(bounded_cancel),
             cmocka_unit_test(result_same),
             cmocka_unit_test(result_thread),
             cmocka_unit_test(result_other),
             cmocka_unit_test(result_cancel),
             cmocka_unit_test(fwait_same),
             cmocka_unit_test(fwait_thread),
             cmocka_unit_test(fwait_other),
             cmocka_unit_test(fwait_cancel),
             cmocka_unit_test(brwait_same),
             cmocka_unit_test(brwait_thread),
             cmocka_unit_test(brwait_other),
             cmocka_unit_test(brwait_cancel),
             cmocka_unit_test(asc_same),
             cmocka_unit_test(asc_thread),
             cmocka_unit_test(asc_other),
             cmocka_unit_test(asc_cancel),
             cmocka_unit_test(map_same),
             cmocka_unit_test(map_thread),
             cmocka_unit_test(map_other),
             cmocka_unit_test(map_cancel),
             cmocka_unit_test(join_same),
             cmocka_unit_test(join_thread),
             cmocka_unit_test(join_other),
             cmocka_unit_test(join_cancel),
             cmocka_unit_test(lock_release_by_non_owner),
             cmocka_unit_test(queue_orders_in_a_coroutine),
             cmocka_unit_test(queue_stream_thread_to_coroutine),
             cmocka_unit_test(lock_and_sem_mixed_with_threads))
