/* Tasks on shared stacks (br_task_opts.shared_stack, br_loop_set_task_defaults): what
 * makes them different from tasks with stacks of their own, and the cases that once
 * ruled them out (docs/aio-coro.md):
 *   - a task holding a semaphore yields (its frames are copied out) while newer tasks
 *     block on that semaphore: W8's sem10, which deadlocked with pinned stacks;
 *   - a task's locals survive any number of switches while other tasks run on the same
 *     stack with locals of their own;
 *   - blocking calls parked from shared-stack tasks and woken by plain threads
 *     (a lock, a queue, a future of a thread pool, a condition), with values checked;
 *   - timeout scopes, whose records the loop's timers reach while the task sleeps;
 *   - the loop's default, and bad options.
 * Every blocking call of the threading, queue and futures layers is also run from
 * shared-stack coroutines by the aio.shared_stacks.* tests (tests/aio/tests.cmake),
 * which re-run the coroutine suites with every task on a shared stack.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "aio/loop.h"

#include <braid/aio.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const br_task_opts shared = {.shared_stack = true};

/* Runs fn as the main task of a new loop (arg: len bytes copied, or NULL) and checks
 * that it returned normally. */
static void run_main(br_task_fn fn, const void *arg, size_t len) {
    int code = -1;
    BR_CHECK_OK(br_aio_run(fn, arg, len, &code));
    BR_CHECK_EQ(code, 0);
}

/* --- W8's sem10: a holder copied out while newer tasks block ------------------------ */

struct sem_run {
    br_sem sem;
    _Atomic int inside, most, done;
};

static int sem_task(br_task *t) {
    struct sem_run *r = *(struct sem_run *const *)br_task_arg(t, NULL);
    int rc = br_sem_acquire(&r->sem, br_test_hang_guard());
    if (rc != 0)
        return rc;
    int now = atomic_fetch_add(&r->inside, 1) + 1;
    for (int m = atomic_load(&r->most); now > m && !atomic_compare_exchange_weak(&r->most, &m, now);)
        ;
    rc = br_aio_yield(); /* copied out here, holding a unit */
    atomic_fetch_sub(&r->inside, 1);
    atomic_fetch_add(&r->done, 1);
    BR_CHECK_OK(br_sem_release(&r->sem, 1));
    return rc != 0 ? rc : br_task_return_i64(t, 1);
}

enum { NSEM = 2000 };

static int sem_main(br_task *t) {
    struct sem_run *r = *(struct sem_run *const *)br_task_arg(t, NULL);
    br_future **fs = calloc(NSEM, sizeof *fs);
    BR_CHECK(fs != NULL);
    for (int i = 0; i < NSEM; i++)
        BR_CHECK_OK(br_create_task_opts(NULL, sem_task, &r, sizeof r, &shared, &fs[i]));
    BR_CHECK_OK(br_gather(fs, NSEM, false, br_test_hang_guard()));
    for (int i = 0; i < NSEM; i++) {
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, 1);
        br_future_release(fs[i]);
    }
    free(fs);
    return 0;
}

static void sem10_holder_copied_out(void **state) {
    (void)state;
    struct sem_run r;
    BR_CHECK_OK(br_sem_init(&r.sem, 10));
    atomic_init(&r.inside, 0);
    atomic_init(&r.most, 0);
    atomic_init(&r.done, 0);
    struct sem_run *rp = &r;
    run_main(sem_main, &rp, sizeof rp);
    BR_CHECK_EQ(atomic_load(&r.done), NSEM);
    BR_CHECK_EQ(atomic_load(&r.most), 10); /* the cap held, and was reached */
    BR_CHECK_EQ(br_sem_value(&r.sem), 10);
    BR_CHECK_OK(br_sem_destroy(&r.sem));
}

/* --- locals across switches ---------------------------------------------------------- */

enum { NLOC = 64, WORDS = 300, ROUNDS = 50 };

static int locals_task(br_task *t) {
    uint64_t seed = (uint64_t)br_task_arg_i64(t);
    volatile uint64_t mine[WORDS]; /* ~2.4 KiB of frame, copied out at every yield */
    for (int i = 0; i < WORDS; i++)
        mine[i] = seed * 1000003u + (uint64_t)i;
    for (int r = 0; r < ROUNDS; r++) {
        BR_CHECK_OK(br_aio_yield());
        for (int i = 0; i < WORDS; i++)
            if (mine[i] != seed * 1000003u + (uint64_t)i + (uint64_t)r)
                return br_task_fail(t, BR_ESTATE, "task %llu word %d changed",
                                    (unsigned long long)seed, i);
        for (int i = 0; i < WORDS; i++)
            mine[i]++;
    }
    return br_task_return_i64(t, (int64_t)seed);
}

static int locals_main(br_task *t) {
    (void)t;
    br_future *fs[NLOC];
    for (int i = 0; i < NLOC; i++) {
        int64_t seed = i + 1;
        BR_CHECK_OK(br_create_task_opts(NULL, locals_task, &seed, sizeof seed, &shared, &fs[i]));
    }
    for (int i = 0; i < NLOC; i++) {
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, i + 1);
        br_future_release(fs[i]);
    }
    return 0;
}

static void locals_survive_switches(void **state) {
    (void)state;
    run_main(locals_main, NULL, 0);
}

/* --- blocking calls woken by a plain thread --------------------------------------------- */

struct woken {
    br_lock lock;
    br_cond cond;
    br_queue *q;
    br_event ready; /* set by the last task to block on the queue */
    _Atomic int blocked;
    int64_t turn; /* under lock: the condition's predicate */
    br_executor *pool;
};

enum { NWOKEN = 16 };

static int square(br_task *t) {
    int64_t v = br_task_arg_i64(t);
    return br_task_return_i64(t, v * v);
}

static int woken_task(br_task *t) {
    struct woken *w = *(struct woken *const *)br_task_arg(t, NULL);
    /* an item from the thread's queue */
    if (atomic_fetch_add(&w->blocked, 1) + 1 == NWOKEN)
        BR_CHECK_OK(br_event_set(&w->ready));
    void *item = NULL;
    int rc = br_queue_get(w->q, &item, br_test_hang_guard());
    if (rc != 0)
        return rc;
    int64_t got = (int64_t)(intptr_t)item;
    /* the lock (the thread holds it until every item is out), then the condition: in
     * the items' order */
    BR_CHECK_OK(br_lock_acquire(&w->lock, br_test_hang_guard()));
    while (w->turn != got)
        BR_CHECK_OK(br_cond_wait(&w->cond, br_test_hang_guard()));
    w->turn++;
    BR_CHECK_OK(br_cond_notify_all(&w->cond));
    BR_CHECK_OK(br_lock_release(&w->lock));
    /* a future completed by a pool thread; the argument is a local, borrowed by
     * br_submit, so copied at submit (it is on the shared stack) */
    br_future *f;
    BR_CHECK_OK(br_submit(w->pool, square, &got, sizeof got, &f));
    int64_t sq = -1;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &sq));
    br_future_release(f);
    return br_task_return_i64(t, sq);
}

struct woken_loop {
    struct woken *w;
    br_future *fs[NWOKEN];
    br_loop *loop;
};

static void woken_loop_main(void *arg) {
    struct woken_loop *wl = arg;
    for (int i = 0; i < NWOKEN; i++)
        BR_CHECK_OK(br_loop_run_until_complete(wl->loop, wl->fs[i]));
}

static void woken_by_a_thread(void **state) {
    (void)state;
    struct woken w;
    BR_CHECK_OK(br_lock_init(&w.lock));
    BR_CHECK_OK(br_cond_init_lock(&w.cond, &w.lock));
    BR_CHECK_OK(br_queue_new(&w.q, NULL));
    BR_CHECK_OK(br_event_init(&w.ready));
    atomic_init(&w.blocked, 0);
    w.turn = 0;
    BR_CHECK_OK(br_threadpool_new(&w.pool, &(br_threadpool_opts){.max_workers = 2}));
    struct woken_loop wl = {.w = &w};
    BR_CHECK_OK(br_loop_new(&wl.loop));
    struct woken *wp = &w;
    for (int i = 0; i < NWOKEN; i++)
        BR_CHECK_OK(br_create_task_opts(wl.loop, woken_task, &wp, sizeof wp, &shared, &wl.fs[i]));
    BR_CHECK_OK(br_lock_acquire(&w.lock, br_test_hang_guard()));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, woken_loop_main, &wl, NULL));
    /* every task has counted itself on its way into the queue's get (some may not be
     * parked yet: the items below reach them either way) */
    BR_CHECK_OK(br_event_wait(&w.ready, br_test_hang_guard()));
    for (int i = NWOKEN - 1; i >= 0; i--) /* in reverse: the condition restores order */
        BR_CHECK_OK(br_queue_put(w.q, (void *)(intptr_t)i, br_test_hang_guard()));
    BR_CHECK_OK(br_lock_release(&w.lock));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    int64_t seen = 0; /* each item's square came back to exactly one task */
    for (int i = 0; i < NWOKEN; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(wl.fs[i], BR_NOWAIT, &v));
        int64_t root = 0;
        while (root * root < v)
            root++;
        BR_CHECK_EQ(root * root, v);
        BR_CHECK(root >= 0 && root < NWOKEN && !(seen & ((int64_t)1 << root)));
        seen |= (int64_t)1 << root;
        br_future_release(wl.fs[i]);
    }
    BR_CHECK_EQ(w.turn, NWOKEN);
    BR_CHECK_OK(br_loop_free(wl.loop));
    BR_CHECK_OK(br_executor_shutdown(w.pool, true, false));
    BR_CHECK_OK(br_executor_free(w.pool));
    BR_CHECK_OK(br_queue_free(w.q));
    BR_CHECK_OK(br_event_destroy(&w.ready));
    BR_CHECK_OK(br_cond_destroy(&w.cond));
    BR_CHECK_OK(br_lock_destroy(&w.lock));
}

/* --- timeout scopes -------------------------------------------------------------------- */

static int scoped(br_task *t) {
    (void)t;
    /* the inner scope fires while the task sleeps; the outer one doesn't */
    br_timeout_scope outer, inner;
    BR_CHECK_OK(br_timeout_enter(&outer, br_test_hang_guard()));
    BR_CHECK_OK(br_timeout_enter(&inner, br_deadline_after(2 * BR_MSEC)));
    BR_CHECK_ERR(br_aio_sleep(br_test_hang_guard() - br_now()), BR_ECANCELED);
    BR_CHECK_ERR(br_timeout_leave(&outer), BR_EINVAL); /* not the innermost */
    BR_CHECK_ERR(br_timeout_reschedule(&inner, BR_FOREVER), BR_ESTATE); /* fired */
    BR_CHECK_ERR(br_timeout_leave(&inner), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_timeout_leave(&inner), BR_EINVAL); /* left already */
    BR_CHECK_OK(br_timeout_reschedule(&outer, br_deadline_after(BR_SEC)));
    BR_CHECK_OK(br_aio_yield());
    BR_CHECK_OK(br_timeout_leave(&outer));
    /* a scope left entered when the task returns: the loop drops its record */
    br_timeout_scope left;
    BR_CHECK_OK(br_timeout_enter(&left, br_test_hang_guard()));
    return br_task_return_i64(t, 7);
}

static int scopes_main(br_task *t) {
    (void)t;
    br_future *fs[8];
    for (int i = 0; i < 8; i++) /* several at once, so each sleeps copied out */
        BR_CHECK_OK(br_create_task_opts(NULL, scoped, NULL, 0, &shared, &fs[i]));
    for (int i = 0; i < 8; i++) {
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, 7);
        br_future_release(fs[i]);
    }
    return 0;
}

static void timeout_scopes(void **state) {
    (void)state;
    run_main(scopes_main, NULL, 0);
}

/* --- the loop's default; many alive ----------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer counts each coroutine alive as a thread (8128 at most). */
enum { NALIVE = 2000 };
#else
enum { NALIVE = 20000 };
#endif

struct alive {
    br_event go;
    _Atomic int parked, shared_seen;
    size_t slabs_full; /* the loop's shared-stack cell slabs while all were parked */
};

static int alive_task(br_task *t) {
    struct alive *a = *(struct alive *const *)br_task_arg(t, NULL);
    if (br__atask_current()->shared_stack)
        atomic_fetch_add(&a->shared_seen, 1);
    atomic_fetch_add(&a->parked, 1);
    int rc = br_event_wait(&a->go, br_test_hang_guard());
    return rc != 0 ? rc : br_task_return_i64(t, br_task_arg_i64(t) >= 0 ? 1 : 0);
}

static int setter(br_task *t) {
    struct alive *a = *(struct alive *const *)br_task_arg(t, NULL);
    BR_CHECK_EQ(atomic_load(&a->parked), NALIVE); /* every one parked before this ran */
    /* Their records are cells of the loop's (aio/cells.c): as many slabs as they fill. */
    size_t per = br__cells_per_slab(BR__CELL_SHARED_CLASS);
    a->slabs_full = br__cells_slabs(&br_loop_current()->cells, BR__CELL_SHARED_CLASS);
    if (per != 0)
        BR_CHECK_EQ(a->slabs_full, (NALIVE + per - 1) / per);
    BR_CHECK_OK(br_event_set(&a->go));
    return 0;
}

/* One burst of NALIVE shared-stack tasks parked at once, released by an own-stack
 * setter; every result checked. */
static void alive_burst(struct alive *a) {
    atomic_store(&a->parked, 0);
    BR_CHECK_OK(br_event_clear(&a->go));
    br_future **fs = calloc(NALIVE, sizeof *fs);
    BR_CHECK(fs != NULL);
    for (int i = 0; i < NALIVE; i++) /* NULL opts: the loop's default */
        BR_CHECK_OK(br_create_task(NULL, alive_task, &a, sizeof a, &fs[i]));
    br_future *own;
    BR_CHECK_OK(br_create_task_opts(NULL, setter, &a, sizeof a,
                                    &(br_task_opts){.own_stack = true}, &own));
    BR_CHECK_OK(br_gather(fs, NALIVE, false, br_test_hang_guard()));
    BR_CHECK_OK(br_future_wait(own, br_test_hang_guard()));
    BR_CHECK(br_future_done(own) && !br_future_cancelled(own));
    br_future_release(own);
    int64_t sum = 0;
    for (int i = 0; i < NALIVE; i++) {
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        sum += v;
        br_future_release(fs[i]);
    }
    free(fs);
    BR_CHECK_EQ(sum, NALIVE);
}

static int alive_main(br_task *t) {
    struct alive *a = *(struct alive *const *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_loop_set_task_defaults(br_loop_current(), &shared));
    br_loop *l = br_loop_current();
    size_t per = br__cells_per_slab(BR__CELL_SHARED_CLASS);
    alive_burst(a);
    size_t first = a->slabs_full;
    /* All finished: one empty slab stays warm for the next burst, the rest went back. */
    if (per != 0)
        BR_CHECK_EQ(br__cells_slabs(&l->cells, BR__CELL_SHARED_CLASS), 1);
    alive_burst(a); /* the same burst again: the same slabs' worth, nothing leaked */
    BR_CHECK_EQ(a->slabs_full, first);
    if (per != 0)
        BR_CHECK_EQ(br__cells_slabs(&l->cells, BR__CELL_SHARED_CLASS), 1);
    return 0;
}

static void loop_default_many_alive(void **state) {
    (void)state;
    struct alive a;
    BR_CHECK_OK(br_event_init(&a.go));
    atomic_init(&a.parked, 0);
    atomic_init(&a.shared_seen, 0);
    struct alive *ap = &a;
    run_main(alive_main, &ap, sizeof ap);
    BR_CHECK_EQ(atomic_load(&a.shared_seen), 2 * NALIVE);
    BR_CHECK_OK(br_event_destroy(&a.go));
}

BR_TEST_MAIN(cmocka_unit_test(sem10_holder_copied_out), cmocka_unit_test(locals_survive_switches),
             cmocka_unit_test(woken_by_a_thread), cmocka_unit_test(timeout_scopes),
             cmocka_unit_test(loop_default_many_alive))
