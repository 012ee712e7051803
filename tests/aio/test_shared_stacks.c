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
 *   - the loop's default, and bad options;
 *   - park memory: many waits of five kinds parked at once, woken out of order by
 *     another thread, blocks given back and taken again while others are linked; a
 *     wait's park memory in its task's cell, a second one beside it in a park block.
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

/* --- park memory: many waits at once, woken out of order ------------------------------- */

/* Shared-stack tasks take their waiters and wait records from their cells' rooms and,
 * for a second one at once, the thread's park blocks (core/lib.h, park memory), a block
 * given back the next one taken. NPARK tasks park at once in six kinds of wait and are
 * woken by another thread in a scrambled order, some timing out first, so park memory
 * goes back in no particular order while most is still linked and is taken again by
 * second waits (a semaphore of 3) while the rest is linked. PK_NESTED tasks, woken from
 * a condition while a holder task keeps its lock, park on the lock with the condition's
 * waiter still in scope: their lock waiters are park blocks; twice, so that the second
 * round takes blocks the first gave back. Park memory
 * handed out twice would make two waiters one: a wake lost (the hang guard), a value
 * delivered to the wrong task, or a count off. */
#if defined(__SANITIZE_THREAD__)
enum { NPARK = 400 }; /* TSan: a thread's worth of context per coroutine (above) */
#else
enum { NPARK = 2000 };
#endif
enum { PK_SEM, PK_QUEUE, PK_FUTURE, PK_COND, PK_TIMEOUT, PK_NESTED, PK_KINDS };

struct park_run {
    br_sem sem;         /* PK_SEM: 0 units, released one at a time */
    br_queue *q;        /* PK_QUEUE: items 0.. put one at a time */
    br_future *fut[NPARK]; /* PK_FUTURE: task i's own, set to 3 * i + 1 */
    br_lock lock;       /* PK_COND: turns in a scrambled order */
    br_cond cond;
    int64_t turn;       /* under lock */
    int rank[NPARK];    /* PK_COND: task i's turn */
    br_event never;     /* PK_TIMEOUT: never set */
    br_lock lock2;      /* PK_NESTED: held by the holder while they wake */
    br_cond cond2;
    bool go2, go3;      /* under lock2: the two rounds */
    int64_t seq2;       /* under lock2 */
    int waiting3, nnested; /* under lock2: in the second round's wait; of how many */
    br_event go_holder; /* set by the waking thread halfway through */
    size_t blocks_nested[2]; /* park blocks in use while they waited on lock2 */
    br_future *holder;
    br_sem second;      /* every task's second wait, 3 units */
    _Atomic int in_second, most_second, announced;
    br_loop *loop;
    br_future *fs[NPARK];
};

struct park_arg {
    struct park_run *r;
    int i;
};

static int park_task(br_task *t) {
    struct park_arg a = *(const struct park_arg *)br_task_arg(t, NULL);
    struct park_run *r = a.r;
    int64_t got = -1;
    int kind = a.i % PK_KINDS;
    atomic_fetch_add(&r->announced, 1);
    switch (kind) {
    case PK_SEM:
        BR_CHECK_OK(br_sem_acquire(&r->sem, br_test_hang_guard()));
        got = 0;
        break;
    case PK_QUEUE: {
        void *item = NULL;
        BR_CHECK_OK(br_queue_get(r->q, &item, br_test_hang_guard()));
        got = (int64_t)(intptr_t)item;
        break;
    }
    case PK_FUTURE:
        BR_CHECK_OK(br_future_result_i64(r->fut[a.i], br_test_hang_guard(), &got));
        break;
    case PK_COND: /* two blocks at once: the condition's waiter, then the lock's */
        BR_CHECK_OK(br_lock_acquire(&r->lock, br_test_hang_guard()));
        while (r->turn != r->rank[a.i])
            BR_CHECK_OK(br_cond_wait(&r->cond, br_test_hang_guard()));
        got = r->turn++;
        BR_CHECK_OK(br_cond_notify_all(&r->cond));
        BR_CHECK_OK(br_lock_release(&r->lock));
        break;
    case PK_TIMEOUT: /* given back early, while the others stay linked */
        BR_CHECK_EQ(br_event_wait(&r->never, br_deadline_after(2 * BR_MSEC)), BR_ETIMEDOUT);
        got = 0;
        break;
    default: /* PK_NESTED */
        BR_CHECK_OK(br_lock_acquire(&r->lock2, br_test_hang_guard()));
        while (!r->go2)
            BR_CHECK_OK(br_cond_wait(&r->cond2, br_test_hang_guard()));
        got = r->seq2++;
        r->waiting3++;
        while (!r->go3)
            BR_CHECK_OK(br_cond_wait(&r->cond2, br_test_hang_guard()));
        BR_CHECK_OK(br_lock_release(&r->lock2));
        break;
    }
    /* A second park, on blocks the first waits gave back while others are linked. */
    BR_CHECK_OK(br_sem_acquire(&r->second, br_test_hang_guard()));
    int now = atomic_fetch_add(&r->in_second, 1) + 1;
    for (int m = atomic_load(&r->most_second);
         now > m && !atomic_compare_exchange_weak(&r->most_second, &m, now);)
        ;
    BR_CHECK_OK(br_aio_yield()); /* copied out, holding a unit */
    atomic_fetch_sub(&r->in_second, 1);
    BR_CHECK_OK(br_sem_release(&r->second, 1));
    return br_task_return_i64(t, got);
}

/* Wakes the PK_NESTED tasks holding lock2 and keeps it until they have all parked on
 * it (each yield lets every task it woke run once); twice. */
static int park_holder(br_task *t) {
    struct park_run *r = *(struct park_run *const *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_event_wait(&r->go_holder, br_test_hang_guard()));
    for (int round = 0; round < 2; round++) {
        BR_CHECK_OK(br_lock_acquire(&r->lock2, br_test_hang_guard()));
        while (round == 1 && r->waiting3 < r->nnested) { /* all in the second wait */
            BR_CHECK_OK(br_lock_release(&r->lock2));
            BR_CHECK_OK(br_aio_yield());
            BR_CHECK_OK(br_lock_acquire(&r->lock2, br_test_hang_guard()));
        }
        if (round == 0)
            r->go2 = true;
        else
            r->go3 = true;
        BR_CHECK_OK(br_cond_notify_all(&r->cond2));
        for (int i = 0; i < 3; i++)
            BR_CHECK_OK(br_aio_yield());
        r->blocks_nested[round] = br__slab_live(&br__tls_now()->park_blocks);
        BR_CHECK_OK(br_lock_release(&r->lock2));
    }
    return br_task_return_i64(t, 0);
}

static void park_loop_main(void *arg) {
    struct park_run *r = arg;
    for (int i = 0; i < NPARK; i++)
        BR_CHECK_OK(br_loop_run_until_complete(r->loop, r->fs[i]));
    BR_CHECK_OK(br_loop_run_until_complete(r->loop, r->holder));
}

/* A permutation of 0..n-1 (a fixed LCG: the same scramble every run). */
static void scramble(int *p, int n, uint32_t seed) {
    for (int i = 0; i < n; i++)
        p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        seed = seed * 1664525u + 1013904223u;
        int j = (int)((seed >> 8) % (uint32_t)(i + 1));
        int x = p[i];
        p[i] = p[j];
        p[j] = x;
    }
}

static void parks_woken_out_of_order(void **state) {
    (void)state;
    struct park_run *r = calloc(1, sizeof *r);
    BR_CHECK(r != NULL);
    BR_CHECK_OK(br_sem_init(&r->sem, 0));
    BR_CHECK_OK(br_queue_new(&r->q, NULL));
    BR_CHECK_OK(br_lock_init(&r->lock));
    BR_CHECK_OK(br_cond_init_lock(&r->cond, &r->lock));
    BR_CHECK_OK(br_event_init(&r->never));
    BR_CHECK_OK(br_lock_init(&r->lock2));
    BR_CHECK_OK(br_cond_init_lock(&r->cond2, &r->lock2));
    BR_CHECK_OK(br_event_init(&r->go_holder));
    BR_CHECK_OK(br_sem_init(&r->second, 3));
    atomic_init(&r->in_second, 0);
    atomic_init(&r->most_second, 0);
    atomic_init(&r->announced, 0);
    r->turn = -1; /* no turn until every task is in */
    int ncond = 0, ncount[PK_KINDS] = {0};
    int *perm = calloc(NPARK, sizeof *perm);
    BR_CHECK(perm != NULL);
    scramble(perm, NPARK, 7);
    for (int i = 0; i < NPARK; i++) {
        ncount[i % PK_KINDS]++;
        BR_CHECK_OK(br_future_new(&r->fut[i]));
    }
    /* Cond ranks: the cond tasks in perm's order. */
    for (int k = 0; k < NPARK; k++)
        if (perm[k] % PK_KINDS == PK_COND)
            r->rank[perm[k]] = ncond++;
    r->nnested = ncount[PK_NESTED];
    BR_CHECK_OK(br_loop_new(&r->loop));
    for (int i = 0; i < NPARK; i++) {
        struct park_arg a = {r, i};
        BR_CHECK_OK(br_create_task_opts(r->loop, park_task, &a, sizeof a, &shared, &r->fs[i]));
    }
    BR_CHECK_OK(br_create_task_opts(r->loop, park_holder, &r, sizeof r, &shared, &r->holder));
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, park_loop_main, r, NULL));
    int64_t guard = br_test_hang_guard();
    while (atomic_load(&r->announced) < NPARK) { /* all but the last are parked then */
        BR_CHECK(br_now() < guard);
        br_sleep(BR_MSEC);
    }
    /* Wake them in perm's order, one wait at a time: a unit, an item, a future; the
     * nested ones halfway through (the holder). */
    int64_t item = 0;
    for (int k = 0; k < NPARK; k++) {
        int i = perm[k];
        if (k == NPARK / 2)
            BR_CHECK_OK(br_event_set(&r->go_holder));
        switch (i % PK_KINDS) {
        case PK_SEM:
            BR_CHECK_OK(br_sem_release(&r->sem, 1));
            break;
        case PK_QUEUE:
            BR_CHECK_OK(br_queue_put(r->q, (void *)(intptr_t)item++, br_test_hang_guard()));
            break;
        case PK_FUTURE:
            BR_CHECK_OK(br_future_set_result_i64(r->fut[i], 3 * (int64_t)i + 1));
            break;
        default:
            break;
        }
    }
    BR_CHECK_OK(br_lock_acquire(&r->lock, guard)); /* the first turn */
    r->turn = 0;
    BR_CHECK_OK(br_cond_notify_all(&r->cond));
    BR_CHECK_OK(br_lock_release(&r->lock));
    BR_CHECK_OK(br_thread_join(th, guard));
    br_thread_free(th);
    /* Every wait ended in its own task with its own value. */
    unsigned char *seen = calloc((size_t)ncount[PK_QUEUE], 1);
    unsigned char *seen2 = calloc((size_t)ncount[PK_NESTED], 1);
    BR_CHECK(seen != NULL && seen2 != NULL);
    for (int i = 0; i < NPARK; i++) {
        int64_t v = -2;
        BR_CHECK_OK(br_future_result_i64(r->fs[i], BR_NOWAIT, &v));
        switch (i % PK_KINDS) {
        case PK_QUEUE:
            BR_CHECK(v >= 0 && v < ncount[PK_QUEUE] && !seen[v]);
            seen[v] = 1;
            break;
        case PK_FUTURE:
            BR_CHECK_EQ(v, 3 * (int64_t)i + 1);
            break;
        case PK_COND:
            BR_CHECK_EQ(v, r->rank[i]);
            break;
        case PK_NESTED:
            BR_CHECK(v >= 0 && v < ncount[PK_NESTED] && !seen2[v]);
            seen2[v] = 1;
            break;
        default:
            BR_CHECK_EQ(v, 0);
            break;
        }
        br_future_release(r->fs[i]);
        br_future_release(r->fut[i]);
    }
    free(seen);
    free(seen2);
    free(perm);
    BR_CHECK_EQ(item, ncount[PK_QUEUE]);
    BR_CHECK_EQ(r->turn, ncount[PK_COND]);
    BR_CHECK_EQ(r->seq2, ncount[PK_NESTED]);
    int64_t hv = -1;
    BR_CHECK_OK(br_future_result_i64(r->holder, BR_NOWAIT, &hv));
    BR_CHECK_EQ(hv, 0);
    br_future_release(r->holder);
    /* The nested lock waiters were park blocks, in both rounds. */
    BR_CHECK(r->blocks_nested[0] >= 1 && r->blocks_nested[1] >= 1);
    BR_CHECK_EQ(br_sem_value(&r->sem), 0);
    BR_CHECK_EQ(br_sem_value(&r->second), 3);
    BR_CHECK_EQ(atomic_load(&r->most_second), 3); /* the cap held, and was reached */
    BR_CHECK_OK(br_loop_free(r->loop));
    BR_CHECK_OK(br_sem_destroy(&r->second));
    BR_CHECK_OK(br_event_destroy(&r->never));
    BR_CHECK_OK(br_event_destroy(&r->go_holder));
    BR_CHECK_OK(br_cond_destroy(&r->cond2));
    BR_CHECK_OK(br_lock_destroy(&r->lock2));
    BR_CHECK_OK(br_cond_destroy(&r->cond));
    BR_CHECK_OK(br_lock_destroy(&r->lock));
    BR_CHECK_OK(br_queue_free(r->q));
    BR_CHECK_OK(br_sem_destroy(&r->sem));
    free(r);
}

/* A shared-stack task's park memory is its cell's room (core/lib.h, park memory): NROOM
 * tasks parked at once on an event take no park block from the thread; a condition's
 * wait, whose lock is then taken while its waiter is still linked, takes one for the
 * second. Run on a thread of its own, whose park blocks start empty. */
enum { NROOM = 200 };

struct room_run {
    br_event go;
    br_lock lock;
    br_cond cond;
    bool flag; /* under lock */
    _Atomic int parked;
    size_t blocks_parked, blocks_nested;
};

static int room_waiter(br_task *t) {
    struct room_run *r = *(struct room_run *const *)br_task_arg(t, NULL);
    atomic_fetch_add(&r->parked, 1);
    BR_CHECK_OK(br_event_wait(&r->go, br_test_hang_guard()));
    return br_task_return_i64(t, 1);
}

static int room_setter(br_task *t) {
    struct room_run *r = *(struct room_run *const *)br_task_arg(t, NULL);
    BR_CHECK_EQ(atomic_load(&r->parked), NROOM); /* every one parked before this ran */
    r->blocks_parked = br__slab_count(&br__tls_now()->park_blocks);
    BR_CHECK_OK(br_event_set(&r->go));
    return br_task_return_i64(t, 0);
}

static int room_cond(br_task *t) {
    struct room_run *r = *(struct room_run *const *)br_task_arg(t, NULL);
    BR_CHECK_OK(br_lock_acquire(&r->lock, br_test_hang_guard()));
    while (!r->flag)
        BR_CHECK_OK(br_cond_wait(&r->cond, br_test_hang_guard()));
    BR_CHECK_OK(br_lock_release(&r->lock));
    return br_task_return_i64(t, 1);
}

static int room_notifier(br_task *t) {
    struct room_run *r = *(struct room_run *const *)br_task_arg(t, NULL);
    /* Holds the lock across the notify and a yield: the condition's task wakes and
     * parks on the lock with its condition waiter still in its scope. */
    BR_CHECK_OK(br_lock_acquire(&r->lock, br_test_hang_guard()));
    r->flag = true;
    BR_CHECK_OK(br_cond_notify_all(&r->cond));
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_aio_yield());
    r->blocks_nested = br__slab_count(&br__tls_now()->park_blocks);
    BR_CHECK_OK(br_lock_release(&r->lock));
    return br_task_return_i64(t, 0);
}

static int room_main(br_task *t) {
    struct room_run *r = *(struct room_run *const *)br_task_arg(t, NULL);
    br_future **fs = calloc(NROOM + 1, sizeof *fs);
    BR_CHECK(fs != NULL);
    for (int i = 0; i < NROOM; i++)
        BR_CHECK_OK(br_create_task_opts(NULL, room_waiter, &r, sizeof r, &shared, &fs[i]));
    BR_CHECK_OK(br_create_task_opts(NULL, room_setter, &r, sizeof r, &shared, &fs[NROOM]));
    BR_CHECK_OK(br_gather(fs, NROOM + 1, false, br_test_hang_guard()));
    BR_CHECK_EQ(sum_and_release(fs, NROOM + 1), NROOM);
    fs = calloc(2, sizeof *fs);
    BR_CHECK(fs != NULL);
    BR_CHECK_OK(br_create_task_opts(NULL, room_cond, &r, sizeof r, &shared, &fs[0]));
    BR_CHECK_OK(br_create_task_opts(NULL, room_notifier, &r, sizeof r, &shared, &fs[1]));
    BR_CHECK_OK(br_gather(fs, 2, false, br_test_hang_guard()));
    BR_CHECK_EQ(sum_and_release(fs, 2), 1);
    return 0;
}

static void room_thread(void *arg) {
    struct room_run *r = arg;
    run_main(room_main, &r, sizeof r);
}

static void a_wait_takes_its_cells_room(void **state) {
    (void)state;
    struct room_run r = {.flag = false};
    BR_CHECK_OK(br_event_init(&r.go));
    BR_CHECK_OK(br_lock_init(&r.lock));
    BR_CHECK_OK(br_cond_init_lock(&r.cond, &r.lock));
    atomic_init(&r.parked, 0);
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, room_thread, &r, NULL));
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    BR_CHECK_EQ(r.blocks_parked, 0); /* NROOM waiters, all in their cells' rooms */
    BR_CHECK_EQ(r.blocks_nested, 1); /* the lock's waiter beside the condition's */
    BR_CHECK_OK(br_cond_destroy(&r.cond));
    BR_CHECK_OK(br_lock_destroy(&r.lock));
    BR_CHECK_OK(br_event_destroy(&r.go));
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
             cmocka_unit_test(loop_default_many_alive),
             cmocka_unit_test(parks_woken_out_of_order),
             cmocka_unit_test(a_wait_takes_its_cells_room))
