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
 *   - frames of every size copied out: in the task's own cell, in a cell of their own,
 *     on the heap, growing and shrinking between suspends; a task suspended in a yield
 *     takes one small cell and nothing more (aio/task.c, the frames of shared-stack
 *     tasks);
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

/* The sum of n finished tasks' i64 results; releases them and frees fs. */
static int64_t sum_and_release(br_future **fs, size_t n) {
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t v = 0;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        sum += v;
        br_future_release(fs[i]);
    }
    free(fs);
    return sum;
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

/* --- frames of every size ------------------------------------------------------------- */

enum { NDEEP = 48, DEEP_ROUNDS = 24, LEVEL_WORDS = 12, MAX_DEPTH = 13 };

static uint64_t level_word(uint64_t seed, int depth, int i) {
    return seed ^ ((uint64_t)depth << 40) ^ ((uint64_t)i * 0x9e3779b97f4a7c15u);
}

/* Recurses depth levels with LEVEL_WORDS words of locals each (~130 bytes of frame a
 * level), yields at the bottom, and checks every level's words afterwards: BR_ESTATE
 * if one changed. */
__attribute__((noinline)) static int descend(uint64_t seed, int depth) {
    volatile uint64_t w[LEVEL_WORDS];
    for (int i = 0; i < LEVEL_WORDS; i++)
        w[i] = level_word(seed, depth, i);
    int rc = depth > 0 ? descend(seed, depth - 1) : br_aio_yield();
    for (int i = 0; i < LEVEL_WORDS; i++)
        if (w[i] != level_word(seed, depth, i))
            return BR_ESTATE;
    return rc;
}

/* Task i suspends DEEP_ROUNDS times at depths that wander over 0..MAX_DEPTH-1: from
 * frames that fit its cell's room to ones past a big cell, up and down again. */
static int deep_task(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    for (int r = 0; r < DEEP_ROUNDS; r++) {
        int rc = descend((uint64_t)i * 1000003u + (uint64_t)r, (int)((i * 7 + r * 5) % MAX_DEPTH));
        if (rc != 0)
            return br_task_fail(t, rc, "task %lld round %d: its frames changed", (long long)i, r);
    }
    return br_task_return_i64(t, i);
}

/* Runs after every deep task's first suspend: their frames went to cells of every
 * class (builds with slabs; not under ThreadSanitizer, whose instrumented frames are
 * bigger and may skip a class: there the values are what is checked). */
static int deep_checker(br_task *t) {
    (void)t;
#if !defined(__SANITIZE_THREAD__)
    if (br__cells_per_slab(BR__CELL_BIG_CLASS) != 0)
        for (int c = 0; c < BR__CELL_CLASSES; c++)
            BR_CHECK(br__cells_slabs(&br_loop_current()->cells, c) >= 1);
#endif
    return 0;
}

static int deep_main(br_task *t) {
    (void)t;
    br_future *fs[NDEEP], *check;
    for (int64_t i = 0; i < NDEEP; i++)
        BR_CHECK_OK(br_create_task_opts(NULL, deep_task, &i, sizeof i, &shared, &fs[i]));
    BR_CHECK_OK(br_create_task_opts(NULL, deep_checker, NULL, 0,
                                    &(br_task_opts){.own_stack = true}, &check));
    for (int i = 0; i < NDEEP; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, i);
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_future_result(check, br_test_hang_guard(), NULL, NULL));
    br_future_release(check);
    return 0;
}

static void frames_of_every_size(void **state) {
    (void)state;
    run_main(deep_main, NULL, 0);
}

/* N shared-stack tasks suspended in a yield, then counted by an own-stack checker that
 * runs before any of them resumes: each took one small cell, its frames in the cell's
 * room (no big cell, no second small one). ThreadSanitizer's instrumented frames are
 * bigger than the room (and its fibers fewer), so there only the values are checked. */
struct yields {
    _Atomic int64_t done;
    size_t per;
};

static int yield_once(br_task *t) {
    struct yields *y = *(struct yields *const *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_aio_yield());
    atomic_fetch_add(&y->done, 1);
    return br_task_return_i64(t, 1);
}

/* The slabs of every class but the tasks' own. */
static size_t other_slabs(br_loop *l) {
    size_t n = 0;
    for (int c = 0; c < BR__CELL_CLASSES; c++)
        if (c != BR__CELL_SMALL_CLASS)
            n += br__cells_slabs(&l->cells, c);
    return n;
}

static int yield_checker(br_task *t) {
    struct yields *y = *(struct yields *const *)br_task_arg(t, NULL);
    BR_CHECK_EQ(atomic_load(&y->done), 0); /* all still suspended */
#if !defined(__SANITIZE_THREAD__)
    br_loop *l = br_loop_current();
    if (y->per != 0) {
        /* 1.5 slabs' worth of tasks and this checker: two slabs (a main task on a shared
         * stack may have put its own frames in one more cell); a second cell each for
         * the frames copied out (all but the last task's) would be three. */
        BR_CHECK_EQ(br__cells_slabs(&l->cells, BR__CELL_SMALL_CLASS), 2);
        BR_CHECK(other_slabs(l) <= 1);
    }
#endif
    return 0;
}

static int yields_main(br_task *t) {
    struct yields *y = *(struct yields *const *)br_task_arg(t, NULL);
#if defined(__SANITIZE_THREAD__)
    size_t n = 200; /* each new coroutine costs a TSan fiber: 2,000 took 79 s there */
#else
    size_t n = y->per != 0 ? y->per + y->per / 2 : (size_t)br_test_scaled(2000, 200);
#endif
    br_future **fs = calloc(n, sizeof *fs);
    BR_CHECK(fs != NULL);
    for (size_t i = 0; i < n; i++)
        BR_CHECK_OK(br_create_task_opts(NULL, yield_once, &y, sizeof y, &shared, &fs[i]));
    br_future *check;
    BR_CHECK_OK(br_create_task_opts(NULL, yield_checker, &y, sizeof y,
                                    &(br_task_opts){.own_stack = true}, &check));
    BR_CHECK_OK(br_gather(fs, n, false, br_test_hang_guard()));
    BR_CHECK_EQ(sum_and_release(fs, n), (int64_t)n);
    BR_CHECK_EQ(atomic_load(&y->done), (int64_t)n);
    BR_CHECK_OK(br_future_result(check, br_test_hang_guard(), NULL, NULL));
    br_future_release(check);
    return 0;
}

static void a_yield_fits_a_small_cell(void **state) {
    (void)state;
    struct yields y;
    atomic_init(&y.done, 0);
    y.per = br__cells_per_slab(BR__CELL_SMALL_CLASS);
    struct yields *yp = &y;
    run_main(yields_main, &yp, sizeof yp);
}

/* --- the loop's default; many alive ----------------------------------------------------- */

#if defined(__SANITIZE_THREAD__)
/* ThreadSanitizer counts each coroutine alive as a thread (8128 at most), and makes each
 * one's context at ~10 ms: 2,000 took 23 s of CI's time. */
enum { NALIVE = 500 };
#elif defined(__SANITIZE_ADDRESS__)
/* With detect_stack_use_after_return (make sanitize) ASan maps a fake stack for each
 * coroutine it sees: 20,000 took 35 s there, 0.9 s without it. */
enum { NALIVE = 4000 };
#else
enum { NALIVE = 20000 };
#endif

struct alive {
    br_event go;
    _Atomic int parked, shared_seen;
    size_t slabs_full; /* the loop's cell slabs (both classes) while all were parked */
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
    /* Their records are small cells of the loop's (aio/cells.c), their frames in them
     * or in cells of their own: at least as many slabs as the records fill. */
    size_t per = br__cells_per_slab(BR__CELL_SMALL_CLASS);
    br_loop *l = br_loop_current();
    a->slabs_full = 0;
    for (int c = 0; c < BR__CELL_CLASSES; c++)
        a->slabs_full += br__cells_slabs(&l->cells, c);
    if (per != 0)
        BR_CHECK(a->slabs_full >= (NALIVE + per - 1) / per);
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
    BR_CHECK_EQ(sum_and_release(fs, NALIVE), NALIVE);
}

static int alive_main(br_task *t) {
    struct alive *a = *(struct alive *const *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_loop_set_task_defaults(br_loop_current(), &shared));
    br_loop *l = br_loop_current();
    size_t per = br__cells_per_slab(BR__CELL_SMALL_CLASS);
    alive_burst(a);
    size_t first = a->slabs_full;
    /* All finished: one empty slab per class stays warm for the next burst, the rest
     * went back. */
    if (per != 0) {
        BR_CHECK_EQ(br__cells_slabs(&l->cells, BR__CELL_SMALL_CLASS), 1);
        for (int c = 0; c < BR__CELL_CLASSES; c++)
            BR_CHECK(br__cells_slabs(&l->cells, c) <= 1);
    }
    alive_burst(a); /* the same burst again: the same slabs' worth, nothing leaked */
    BR_CHECK_EQ(a->slabs_full, first);
    if (per != 0) {
        BR_CHECK_EQ(br__cells_slabs(&l->cells, BR__CELL_SMALL_CLASS), 1);
        for (int c = 0; c < BR__CELL_CLASSES; c++)
            BR_CHECK(br__cells_slabs(&l->cells, c) <= 1);
    }
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
             cmocka_unit_test(frames_of_every_size), cmocka_unit_test(a_yield_fits_a_small_cell),
             cmocka_unit_test(loop_default_many_alive))
