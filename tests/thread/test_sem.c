/* br_sem: threading.Semaphore and BoundedSemaphore, FIFO with hand-off. */
#include "thread_util.h"

static int sem_waiters(br_sem *s) {
    return br__wq_len(&BR__SEM_IMPL(s)->wq);
}

static void counts_down_and_up(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT; /* value 0 */
    BR_CHECK_EQ(br_sem_value(&s), 0);
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_sem_acquire(&s, BR_NOWAIT), BR_ETIMEDOUT);
    TU_CHECK_QUICK(t0);
    BR_CHECK_ERR(br_sem_acquire(&s, br_now() - BR_SEC), BR_ETIMEDOUT); /* like NOWAIT */
    TU_CHECK_QUICK(t0);
    BR_CHECK_EQ(atomic_load(&BR__SEM_IMPL(&s)->state), 0); /* never queued */
    BR_CHECK_OK(br_sem_init(&s, 3));
    BR_CHECK_EQ(br_sem_value(&s), 3);
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_sem_acquire(&s, BR_NOWAIT));
    BR_CHECK_EQ(br_sem_value(&s), 0);
    BR_CHECK_ERR(br_sem_acquire(&s, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_sem_release(&s, 2));
    BR_CHECK_EQ(br_sem_value(&s), 2);
    BR_CHECK_OK(br_sem_release(&s, 5)); /* unbounded: above the initial value is fine */
    BR_CHECK_EQ(br_sem_value(&s), 7);
    BR_CHECK_OK(br_sem_destroy(&s));
}

static void deadline_fires_never_early(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT;
    for (int64_t ms = 1; ms <= 40; ms *= 4) {
        int64_t t0 = br_now();
        BR_CHECK_ERR(br_sem_acquire(&s, t0 + ms * BR_MSEC), BR_ETIMEDOUT);
        TU_CHECK_NOT_EARLY(t0, ms * BR_MSEC);
    }
    BR_CHECK_EQ(sem_waiters(&s), 0);
    BR_CHECK_EQ(atomic_load(&BR__SEM_IMPL(&s)->state), 0); /* W cleared */
}

static void bounded_over_release_is_eoverflow(void **state) {
    (void)state;
    br_sem s;
    BR_CHECK_OK(br_sem_init_bounded(&s, 2));
    BR_CHECK_ERR(br_sem_release(&s, 1), BR_EOVERFLOW);
    BR_CHECK_EQ(br_sem_value(&s), 2);
    BR_CHECK_OK(br_sem_acquire(&s, BR_NOWAIT));
    BR_CHECK_OK(br_sem_acquire(&s, BR_NOWAIT));
    BR_CHECK_ERR(br_sem_release(&s, 3), BR_EOVERFLOW); /* nothing released */
    BR_CHECK_EQ(br_sem_value(&s), 0);
    BR_CHECK_OK(br_sem_release(&s, 1));
    BR_CHECK_ERR(br_sem_release(&s, 2), BR_EOVERFLOW);
    BR_CHECK_EQ(br_sem_value(&s), 1);
    BR_CHECK_OK(br_sem_release(&s, 1));
    BR_CHECK_EQ(br_sem_value(&s), 2);

    /* unbounded: the 2^31-1 ceiling */
    BR_CHECK_OK(br_sem_init(&s, 0x7ffffffe));
    BR_CHECK_ERR(br_sem_release(&s, 2), BR_EOVERFLOW);
    BR_CHECK_OK(br_sem_release(&s, 1));
    BR_CHECK_EQ(br_sem_value(&s), 0x7fffffffu);
    BR_CHECK_ERR(br_sem_release(&s, 1), BR_EOVERFLOW);
    BR_CHECK_ERR(br_sem_release(&s, 0xffffffffu), BR_EOVERFLOW);
    BR_CHECK_ERR(br_sem_init(&s, 0x80000000u), BR_EINVAL);
}

static void misuse(void **state) {
    (void)state;
    BR_CHECK_ERR(br_sem_init(NULL, 1), BR_EINVAL);
    BR_CHECK_ERR(br_sem_init_bounded(NULL, 1), BR_EINVAL);
    BR_CHECK_ERR(br_sem_destroy(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_sem_acquire(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_sem_release(NULL, 1), BR_EINVAL);
    BR_CHECK_EQ(br_sem_value(NULL), 0);
    br_sem s = BR_SEM_INIT;
    BR_CHECK_ERR(br_sem_release(&s, 0), BR_EINVAL);
    BR_CHECK_OK(br_sem_release(&s, 1));
    BR_CHECK_OK(br_sem_destroy(&s)); /* units left over are fine */
    BR_CHECK_ERR(br_sem_destroy(&s), BR_EINVAL);
    BR_CHECK_ERR(br_sem_acquire(&s, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_sem_acquire(&s, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_sem_release(&s, 1), BR_EINVAL);
    BR_CHECK_EQ(br_sem_value(&s), 0);
}

/* --- FIFO hand-off -------------------------------------------------------------------- */

enum { QUEUED = 5 };

typedef struct {
    br_sem *s;
    atomic_int order[QUEUED]; /* order[k] = 1 + id of the k-th to get a unit */
    atomic_int served;
    int rc[QUEUED];
} fifo_ctx;

typedef struct {
    fifo_ctx *f;
    int id;
} fifo_arg;

static void fifo_waiter(void *arg) {
    fifo_arg *a = arg;
    a->f->rc[a->id] = br_sem_acquire(a->f->s, BR_FOREVER);
    int k = atomic_fetch_add(&a->f->served, 1);
    atomic_store(&a->f->order[k], a->id + 1); /* 0: not written yet */
}

static void waiters_are_served_in_fifo_order(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT;
    fifo_ctx f = {.s = &s};
    fifo_arg a[QUEUED];
    br_thread *t[QUEUED];
    for (int i = 0; i < QUEUED; i++) { /* queue them one at a time, in a known order */
        a[i] = (fifo_arg){&f, i};
        t[i] = tu_spawn(fifo_waiter, &a[i]);
        TU_WAIT_FOR(sem_waiters(&s) == i + 1);
    }
    for (int i = 0; i < QUEUED; i++) {
        BR_CHECK_OK(br_sem_release(&s, 1));
        TU_WAIT_FOR(atomic_load(&f.served) == i + 1 && atomic_load(&f.order[i]) != 0);
        BR_CHECK_EQ(atomic_load(&f.order[i]), i + 1);
        /* handed over, not banked: a newcomer can't take it */
        BR_CHECK_EQ(br_sem_value(&s), 0);
    }
    for (int i = 0; i < QUEUED; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(f.rc[i]);
    }
}

static void release_n_serves_n_then_banks_the_rest(void **state) {
    (void)state;
    br_sem s;
    BR_CHECK_OK(br_sem_init_bounded(&s, 5));
    for (int i = 0; i < 5; i++)
        BR_CHECK_OK(br_sem_acquire(&s, BR_NOWAIT));
    fifo_ctx f = {.s = &s};
    fifo_arg a[3];
    br_thread *t[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (fifo_arg){&f, i};
        t[i] = tu_spawn(fifo_waiter, &a[i]);
    }
    TU_WAIT_FOR(sem_waiters(&s) == 3);
    BR_CHECK_ERR(br_sem_destroy(&s), BR_EBUSY);
    BR_CHECK_ERR(br_sem_release(&s, 6), BR_EOVERFLOW); /* 0 + 6 > 5, as in Python */
    BR_CHECK_EQ(sem_waiters(&s), 3);
    BR_CHECK_OK(br_sem_release(&s, 5)); /* three handed over, two banked */
    BR_CHECK_EQ(sem_waiters(&s), 0);
    BR_CHECK_EQ(br_sem_value(&s), 2);
    for (int i = 0; i < 3; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(f.rc[i]);
    }
    BR_CHECK_EQ(atomic_load(&f.served), 3);
}

/* --- stress
 * ------------------------------------------------------------------------------- */

enum { THREADS = 8, LIMIT = 3 };

typedef struct {
    br_sem *s;
    long iters;
    atomic_int inside, max_inside;
    atomic_long entries;
    int rc[THREADS];
} room_ctx;

typedef struct {
    room_ctx *r;
    int id;
} room_arg;

static void room_worker(void *arg) {
    room_arg *a = arg;
    room_ctx *r = a->r;
    for (long i = 0; i < r->iters; i++) {
        /* a mix of waits: forever, short deadlines that may time out */
        int rc = br_sem_acquire(r->s, i % 3 ? BR_FOREVER : br_deadline_after(20 * BR_USEC));
        if (rc == BR_ETIMEDOUT)
            continue;
        if (rc != 0) {
            r->rc[a->id] = rc;
            return;
        }
        int now = atomic_fetch_add(&r->inside, 1) + 1;
        int max = atomic_load(&r->max_inside);
        while (now > max && !atomic_compare_exchange_weak(&r->max_inside, &max, now))
            ;
        atomic_fetch_add(&r->entries, 1);
        br__cpu_relax();
        atomic_fetch_sub(&r->inside, 1);
        rc = br_sem_release(r->s, 1);
        if (rc != 0) {
            r->rc[a->id] = rc;
            return;
        }
    }
}

static void never_more_inside_than_the_count(void **state) {
    (void)state;
    br_sem s;
    BR_CHECK_OK(br_sem_init_bounded(&s, LIMIT));
    room_ctx r = {.s = &s, .iters = br_test_scaled(50000, 1000)};
    room_arg a[THREADS];
    br_thread *t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        a[i] = (room_arg){&r, i};
        t[i] = tu_spawn(room_worker, &a[i]);
    }
    tu_join_n(t, THREADS);
    for (int i = 0; i < THREADS; i++)
        BR_CHECK_OK(r.rc[i]);
    BR_CHECK(atomic_load(&r.max_inside) <= LIMIT);
    BR_CHECK(atomic_load(&r.max_inside) >= 1);
    BR_CHECK(atomic_load(&r.entries) > 0);
    BR_CHECK_EQ(br_sem_value(&s), LIMIT); /* no unit lost or made up */
    BR_CHECK_EQ(sem_waiters(&s), 0);
}

/* Producers release tokens, consumers take them: every token is taken exactly once. */
typedef struct {
    br_sem *s;
    long per_thread;
    atomic_long taken;
    int rc[2 * THREADS];
} tokens_ctx;

typedef struct {
    tokens_ctx *k;
    int id;
} tokens_arg;

static void token_producer(void *arg) {
    tokens_arg *a = arg;
    for (long i = 0; i < a->k->per_thread; i++) {
        int rc = br_sem_release(a->k->s, 1);
        if (rc != 0) {
            a->k->rc[a->id] = rc;
            return;
        }
    }
}

static void token_consumer(void *arg) {
    tokens_arg *a = arg;
    for (long i = 0; i < a->k->per_thread; i++) {
        int rc = br_sem_acquire(a->k->s, BR_FOREVER);
        if (rc != 0) {
            a->k->rc[a->id] = rc;
            return;
        }
        atomic_fetch_add(&a->k->taken, 1);
    }
}

static void producers_and_consumers_count_tokens(void **state) {
    (void)state;
    br_sem s = BR_SEM_INIT;
    enum { P = THREADS / 2 };
    tokens_ctx k = {.s = &s, .per_thread = br_test_scaled(100000, 2000)};
    tokens_arg a[2 * P];
    br_thread *t[2 * P];
    for (int i = 0; i < 2 * P; i++) {
        a[i] = (tokens_arg){&k, i};
        t[i] = tu_spawn(i % 2 ? token_producer : token_consumer, &a[i]);
    }
    for (int i = 0; i < 2 * P; i++)
        tu_join(t[i]);
    for (int i = 0; i < 2 * P; i++)
        BR_CHECK_OK(k.rc[i]);
    BR_CHECK_EQ(atomic_load(&k.taken), P * k.per_thread);
    BR_CHECK_EQ(br_sem_value(&s), 0);
    BR_CHECK_EQ(sem_waiters(&s), 0);
}

BR_TEST_MAIN(cmocka_unit_test(counts_down_and_up),
             cmocka_unit_test(deadline_fires_never_early),
             cmocka_unit_test(bounded_over_release_is_eoverflow), cmocka_unit_test(misuse),
             cmocka_unit_test(waiters_are_served_in_fifo_order),
             cmocka_unit_test(release_n_serves_n_then_banks_the_rest),
             cmocka_unit_test(never_more_inside_than_the_count),
             cmocka_unit_test(producers_and_consumers_count_tokens))
