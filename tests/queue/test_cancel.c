/* Cancellation at every blocking point of the queue, for every kind: put and put_prio
 * waiting for room, get and get_prio waiting for an item, join waiting for the tasks.
 *
 * The calls run in a cancellable test context (tests/parker.h), a stand-in for a
 * coroutine. For each blocking point: a cancel while parked returns BR_ECANCELED and
 * leaves the queue as if the call had never been made (no item put or taken, no waiter
 * linked, the counts ngetw/nputw/njoinw/nbusy back to zero), and the queue goes on
 * working; a cancel posted before the call ends it at once when it would wait, and
 * changes nothing when it wouldn't (the cancel then stays pending); a wake racing the
 * cancel wins or loses cleanly: the winner's outcome, every item exactly once, and no
 * wake lost (a second waiter behind the cancelled one gets what the first was woken
 * for). Time limits are hang guards only.
 *
 * braid-test-timeout: 120
 */
#include "cancel_util.h"

#include "core/lib.h"
#include "queue/private.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

static const br_queue_kind kinds[] = {BR_QUEUE_FIFO, BR_QUEUE_LIFO, BR_QUEUE_PRIORITY,
                                      BR_QUEUE_SIMPLE};
enum { NKINDS = sizeof kinds / sizeof kinds[0] };

static br_queue *mkq(br_queue_kind kind, size_t maxsize) {
    br_queue *q = NULL;
    BR_CHECK_OK(br_queue_new(&q, &(br_queue_opts){.kind = kind, .maxsize = maxsize}));
    return q;
}

static int put_any(br_queue *q, br_queue_kind kind, uintptr_t v, int64_t deadline) {
    if (kind == BR_QUEUE_PRIORITY)
        return br_queue_put_prio(q, (void *)v, (int64_t)(v % 5), deadline);
    return br_queue_put(q, (void *)v, deadline);
}

static uintptr_t get_now(br_queue *q) {
    void *x = NULL;
    BR_CHECK_OK(br_queue_get(q, &x, BR_NOWAIT));
    return (uintptr_t)x;
}

/* Waits until the calls that a waker may still be finishing are gone, then checks that
 * nothing is linked or counted: the queue is as a queue nobody waits on. */
static void check_quiet(br_queue *q) {
    int64_t give_up = br_test_hang_guard();
    while (br__queue_busy(q) != 0) {
        BR_CHECK(br_now() < give_up);
        br_sleep(50 * BR_USEC);
    }
    size_t g, p, j;
    br__queue_waiters(q, &g, &p, &j);
    BR_CHECK_EQ(g, 0);
    BR_CHECK_EQ(p, 0);
    BR_CHECK_EQ(j, 0);
    BR_CHECK_EQ(atomic_load(&q->p.ngetw), 0);
    BR_CHECK_EQ(atomic_load(&q->c.nputw), 0);
    BR_CHECK_EQ(atomic_load(&q->w.njoinw), 0);
}

/* --- one call in a cancellable context, on its own thread ------------------------- */

enum { OP_GET, OP_GET_PRIO, OP_PUT, OP_PUT_PRIO, OP_JOIN };

typedef struct cop {
    br_test_ctx ctx;
    br_test_call call; /* rc, and whether a cancel was pending when it returned */
    br_queue *q;
    int op;
    uintptr_t v;  /* put: the item; get: what came out */
    int64_t prio; /* put_prio: its priority; get_prio: what came out */
    int64_t deadline;
} cop;

static int cop_run(void *arg) {
    cop *c = arg;
    void *x = (void *)(uintptr_t)0xdead;
    int rc;
    switch (c->op) {
    case OP_GET:
        rc = br_queue_get(c->q, &x, c->deadline);
        c->v = rc == 0 ? (uintptr_t)x : 0;
        return rc;
    case OP_GET_PRIO:
        c->prio = -1;
        rc = br_queue_get_prio(c->q, &x, &c->prio, c->deadline);
        c->v = rc == 0 ? (uintptr_t)x : 0;
        return rc;
    case OP_PUT:
        return br_queue_put(c->q, (void *)c->v, c->deadline);
    case OP_PUT_PRIO:
        return br_queue_put_prio(c->q, (void *)c->v, c->prio, c->deadline);
    default:
        return br_queue_join(c->q, c->deadline);
    }
}

/* Starts op on q in a fresh context; with cancel_first, a cancel is posted before. */
static void cop_start(cop *c, br_queue *q, int op, uintptr_t v, bool cancel_first) {
    *c = (cop){.ctx = BR_TEST_CTX_INIT,
               .q = q,
               .op = op,
               .v = v,
               .prio = (int64_t)v % 5,
               .deadline = br_test_hang_guard()};
    br_test_call_start(&c->call, &c->ctx, cop_run, c, cancel_first);
}

/* Starts op and returns once it sleeps in its park, linked on q as the nth waiter of
 * its kind (getters, putters or joiners). */
static void cop_park(cop *c, br_queue *q, int op, uintptr_t v, size_t nth) {
    cop_start(c, q, op, v, false);
    br_test_call_wait_parked(&c->call);
    if (op == OP_GET || op == OP_GET_PRIO)
        br_test_wait_queue_waiters(q, nth, 0, 0);
    else if (op == OP_PUT || op == OP_PUT_PRIO)
        br_test_wait_queue_waiters(q, 0, nth, 0);
    else
        br_test_wait_queue_waiters(q, 0, 0, nth);
}

/* Runs op with a cancel posted before the call, until it returns. */
static void cop_cancel_first(cop *c, br_queue *q, int op, uintptr_t v) {
    cop_start(c, q, op, v, true);
    br_test_call_join(&c->call);
}

/* --- cancelled while parked ------------------------------------------------------- */

static void get_cancelled_while_parked(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        for (int op = OP_GET; op <= OP_GET_PRIO; op++) {
            br_queue *q = mkq(kinds[k], 0);
            cop c;
            cop_park(&c, q, op, 0, 1);
            br_test_call_cancel(&c.call);
            check_quiet(q);
            BR_CHECK(br_queue_empty(q));
            /* The queue goes on: a put is got by the next getter, blocked or not. */
            cop d;
            cop_park(&d, q, OP_GET, 0, 1);
            BR_CHECK_OK(put_any(q, kinds[k], 41, BR_NOWAIT));
            br_test_call_join(&d.call);
            BR_CHECK_OK(d.call.rc);
            BR_CHECK_EQ(d.v, 41);
            BR_CHECK_OK(put_any(q, kinds[k], 42, BR_NOWAIT));
            BR_CHECK_EQ(get_now(q), 42);
            check_quiet(q);
            BR_CHECK_OK(br_queue_free(q));
        }
    }
}

static void put_cancelled_while_parked(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        if (kinds[k] == BR_QUEUE_SIMPLE)
            continue; /* never full */
        int last = kinds[k] == BR_QUEUE_PRIORITY ? OP_PUT_PRIO : OP_PUT;
        for (int op = OP_PUT; op <= last; op++) {
            br_queue *q = mkq(kinds[k], 1);
            BR_CHECK_OK(put_any(q, kinds[k], 1, BR_NOWAIT));
            cop c;
            cop_park(&c, q, op, 2, 1);
            br_test_call_cancel(&c.call);
            check_quiet(q);
            BR_CHECK_EQ(br_queue_qsize(q), 1); /* item 2 stayed with its caller */
            /* The queue goes on: the room a get makes goes to the next putter. */
            cop d;
            cop_park(&d, q, OP_PUT, 3, 1);
            BR_CHECK_EQ(get_now(q), 1);
            br_test_call_join(&d.call);
            BR_CHECK_OK(d.call.rc);
            BR_CHECK_EQ(get_now(q), 3);
            BR_CHECK(br_queue_empty(q));
            check_quiet(q);
            for (int i = 0; i < 2; i++) /* items 1 and 3 went in; 2 never did */
                BR_CHECK_OK(br_queue_task_done(q));
            BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW);
            BR_CHECK_OK(br_queue_free(q));
        }
    }
}

static void join_cancelled_while_parked(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        if (kinds[k] == BR_QUEUE_SIMPLE)
            continue; /* no join */
        br_queue *q = mkq(kinds[k], 0);
        BR_CHECK_OK(put_any(q, kinds[k], 5, BR_NOWAIT));
        cop c;
        cop_park(&c, q, OP_JOIN, 0, 1);
        br_test_call_cancel(&c.call);
        check_quiet(q);
        /* The queue goes on: a blocked join returns once the task is done. */
        cop d;
        cop_park(&d, q, OP_JOIN, 0, 1);
        BR_CHECK_EQ(get_now(q), 5);
        BR_CHECK_OK(br_queue_task_done(q));
        br_test_call_join(&d.call);
        BR_CHECK_OK(d.call.rc);
        BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
        check_quiet(q);
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* --- a cancel posted before the call ---------------------------------------------- */

/* The call would not wait: it does its work and the cancel stays pending. It would:
 * BR_ECANCELED at once, from its first park, and nothing changed. */
static void pending_cancel_get(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        br_queue *q = mkq(kinds[k], 0);
        BR_CHECK_OK(put_any(q, kinds[k], 9, BR_NOWAIT));
        cop c;
        cop_cancel_first(&c, q, OP_GET_PRIO, 0);
        BR_CHECK_OK(c.call.rc);
        BR_CHECK_EQ(c.v, 9);
        BR_CHECK_EQ(c.prio, kinds[k] == BR_QUEUE_PRIORITY ? 9 % 5 : 0);
        br_test_check_cancel_kept(&c.call);
        /* Empty now: the pending cancel ends the wait at once. */
        cop_cancel_first(&c, q, OP_GET, 0);
        br_test_check_cancelled_at_once(&c.call);
        check_quiet(q);
        BR_CHECK_OK(put_any(q, kinds[k], 10, BR_NOWAIT));
        BR_CHECK_EQ(get_now(q), 10);
        BR_CHECK_OK(br_queue_free(q));
    }
}

static void pending_cancel_put(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        if (kinds[k] == BR_QUEUE_SIMPLE)
            continue;
        br_queue *q = mkq(kinds[k], 1);
        cop c;
        cop_cancel_first(&c, q, OP_PUT, 1); /* room: it puts */
        BR_CHECK_OK(c.call.rc);
        br_test_check_cancel_kept(&c.call);
        /* full: cancelled at once */
        cop_cancel_first(&c, q, kinds[k] == BR_QUEUE_PRIORITY ? OP_PUT_PRIO : OP_PUT, 2);
        br_test_check_cancelled_at_once(&c.call);
        check_quiet(q);
        BR_CHECK_EQ(br_queue_qsize(q), 1);
        BR_CHECK_EQ(get_now(q), 1);
        BR_CHECK(br_queue_empty(q));
        BR_CHECK_OK(put_any(q, kinds[k], 3, BR_NOWAIT));
        BR_CHECK_EQ(get_now(q), 3);
        BR_CHECK_OK(br_queue_free(q));
    }
}

static void pending_cancel_join(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++) {
        if (kinds[k] == BR_QUEUE_SIMPLE)
            continue;
        br_queue *q = mkq(kinds[k], 0);
        cop c;
        cop_cancel_first(&c, q, OP_JOIN, 0); /* nothing unfinished: returns 0 */
        BR_CHECK_OK(c.call.rc);
        br_test_check_cancel_kept(&c.call);
        BR_CHECK_OK(put_any(q, kinds[k], 1, BR_NOWAIT));
        cop_cancel_first(&c, q, OP_JOIN, 0);
        br_test_check_cancelled_at_once(&c.call);
        check_quiet(q);
        BR_CHECK_EQ(get_now(q), 1);
        BR_CHECK_OK(br_queue_task_done(q));
        BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* --- a wake and a cancel at once -------------------------------------------------- */

/* Two getters parked, the first at the head; the first is cancelled as an item is put.
 * Either the first gets the item (the cancel stays pending) or it is cancelled, having
 * consumed no wake, and the second gets the item with no other put. */
static void get_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(300, 30);
    long won[2] = {0, 0};
    for (int k = 0; k < NKINDS; k++) {
        br_queue *q = mkq(kinds[k], 0);
        for (long r = 0; r < rounds; r++) {
            cop a, b;
            cop_park(&a, q, (r & 2) ? OP_GET_PRIO : OP_GET, 0, 1);
            cop_park(&b, q, OP_GET, 0, 2);
            BR_TEST_RACE_CANCEL(&a.ctx, r,
                                BR_CHECK_OK(put_any(q, kinds[k], 100, BR_NOWAIT)));
            br_test_call_join(&a.call);
            /* if the wake won, the cancel is pending: never seen (the call may even have
             * returned before it came), or posted again (rule 2) */
            if (br_test_wake_won(&a.call)) {
                won[0]++;
                BR_CHECK_EQ(a.v, 100);
                BR_CHECK_OK(put_any(q, kinds[k], 200, BR_NOWAIT));
                br_test_call_join(&b.call);
                BR_CHECK_OK(b.call.rc);
                BR_CHECK_EQ(b.v, 200);
            } else {
                won[1]++;
                br_test_check_cancelled_once(&a.call);
                br_test_call_join(&b.call); /* no second put: the wake reached b */
                BR_CHECK_OK(b.call.rc);
                BR_CHECK_EQ(b.v, 100);
            }
            BR_CHECK(!b.call.pending);
            BR_CHECK(br_queue_empty(q));
            check_quiet(q);
        }
        BR_CHECK_OK(br_queue_free(q));
    }
    BR_CHECK_EQ(won[0] + won[1], rounds * NKINDS);
}

/* The same for putters on a full queue of one: the first putter is cancelled as a get
 * makes room. Either its item went in, or the second putter's goes in with no other
 * get. Every item is got exactly once or stays with its caller. */
static void put_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(300, 30);
    for (int k = 0; k < NKINDS; k++) {
        if (kinds[k] == BR_QUEUE_SIMPLE)
            continue;
        br_queue *q = mkq(kinds[k], 1);
        for (long r = 0; r < rounds; r++) {
            BR_CHECK_OK(put_any(q, kinds[k], 1, BR_NOWAIT));
            cop a, b;
            int op = kinds[k] == BR_QUEUE_PRIORITY && (r & 2) ? OP_PUT_PRIO : OP_PUT;
            cop_park(&a, q, op, 2, 1);
            cop_park(&b, q, OP_PUT, 3, 2);
            BR_TEST_RACE_CANCEL(&a.ctx, r, BR_CHECK_EQ(get_now(q), 1));
            br_test_call_join(&a.call);
            bool a_put = br_test_wake_won(&a.call);
            if (a_put) {
                BR_CHECK_EQ(get_now(q), 2); /* a's item; now b gets room */
                br_test_call_join(&b.call);
                BR_CHECK_OK(b.call.rc);
            } else {
                br_test_check_cancelled_once(&a.call);
                br_test_call_join(&b.call); /* no other get: the room went to b */
                BR_CHECK_OK(b.call.rc);
            }
            BR_CHECK_EQ(get_now(q), 3);
            BR_CHECK(br_queue_empty(q));
            check_quiet(q);
            /* every item that went in was got: that many tasks to mark done */
            long n = a_put ? 3 : 2;
            for (long i = 0; i < n; i++)
                BR_CHECK_OK(br_queue_task_done(q));
            BR_CHECK_ERR(br_queue_task_done(q), BR_EOVERFLOW);
        }
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* A parked joiner cancelled as the last task_done lands: 0 with the cancel pending,
 * or BR_ECANCELED with it consumed; either way nothing is left linked. */
static void join_wake_races_cancel(void **state) {
    (void)state;
    long rounds = br_test_scaled(300, 30);
    for (int k = 0; k < NKINDS; k++) {
        if (kinds[k] == BR_QUEUE_SIMPLE)
            continue;
        br_queue *q = mkq(kinds[k], 0);
        for (long r = 0; r < rounds; r++) {
            BR_CHECK_OK(put_any(q, kinds[k], 1, BR_NOWAIT));
            BR_CHECK_EQ(get_now(q), 1);
            cop a;
            cop_park(&a, q, OP_JOIN, 0, 1);
            BR_TEST_RACE_CANCEL(&a.ctx, r, BR_CHECK_OK(br_queue_task_done(q)));
            br_test_call_join(&a.call);
            if (!br_test_wake_won(&a.call))
                br_test_check_cancelled_once(&a.call);
            BR_CHECK_OK(br_queue_join(q, BR_NOWAIT));
            check_quiet(q);
        }
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* --- conservation under random cancels -------------------------------------------- */

/* Producers and consumers all run in cancellable contexts while a canceller keeps
 * cancelling them at random. A cancelled put keeps its item and puts it again; a
 * cancelled get tries again. After a draining shutdown every item must have been got
 * exactly once. */
enum { SP = 2, SC = 3 };

typedef struct storm {
    br_queue *q;
    br_queue_kind kind;
    long per; /* items per producer */
    br_test_ctx ctx[SP + SC];
    _Atomic unsigned char *seen;
    _Atomic long got, dup, cancelled, bad;
} storm;

typedef struct storm_arg {
    storm *s;
    int id; /* producers 0 .. SP-1, consumers SP .. SP+SC-1: its context */
} storm_arg;

static void *storm_producer(void *arg) {
    storm *s = ((storm_arg *)arg)->s;
    int id = ((storm_arg *)arg)->id;
    br_test_ctx_enter(&s->ctx[id]);
    for (long i = 0; i < s->per; i++) {
        uintptr_t v = (uintptr_t)(id * s->per + i) + 1;
        for (;;) {
            int rc = put_any(s->q, s->kind, v, br_test_hang_guard());
            if (rc == 0)
                break;
            if (rc != BR_ECANCELED) {
                atomic_fetch_add(&s->bad, 1);
                break;
            }
            atomic_fetch_add(&s->cancelled, 1);
        }
        if (s->q->maxsize == 0)
            sched_yield(); /* so that consumers find the queue empty and park often */
    }
    br_test_ctx_leave();
    return NULL;
}

static void *storm_consumer(void *arg) {
    storm *s = ((storm_arg *)arg)->s;
    int id = ((storm_arg *)arg)->id;
    br_test_ctx_enter(&s->ctx[id]);
    for (;;) {
        void *x;
        int rc = br_queue_get(s->q, &x, br_test_hang_guard());
        if (rc == BR_ECANCELED) {
            atomic_fetch_add(&s->cancelled, 1);
            continue;
        }
        if (rc == BR_ESHUTDOWN)
            break;
        if (rc != 0) {
            atomic_fetch_add(&s->bad, 1);
            break;
        }
        uintptr_t v = (uintptr_t)x;
        if (v == 0 || v > (uintptr_t)(SP * s->per) || atomic_fetch_add(&s->seen[v], 1) != 0)
            atomic_fetch_add(&s->dup, 1);
        atomic_fetch_add(&s->got, 1);
    }
    br_test_ctx_leave();
    return NULL;
}

static void run_storm(br_queue_kind kind, size_t maxsize) {
    storm *s = calloc(1, sizeof *s);
    s->kind = kind;
    s->q = mkq(kind, maxsize);
    s->per = br_test_scaled(20000, 1000);
    s->seen = calloc((size_t)(SP * s->per) + 1, 1);
    /* calloc: every context starts as BR_TEST_CTX_INIT (all zero) */
    pthread_t p[SP], c[SC];
    br_test_cancel_storm k;
    storm_arg args[SP + SC];
    for (int i = 0; i < SP + SC; i++)
        args[i] = (storm_arg){s, i};
    for (int i = 0; i < SP; i++)
        assert_int_equal(pthread_create(&p[i], NULL, storm_producer, &args[i]), 0);
    for (int i = 0; i < SC; i++)
        assert_int_equal(pthread_create(&c[i], NULL, storm_consumer, &args[SP + i]), 0);
    br_test_cancel_storm_start(&k, s->ctx, SP + SC, 12345);
    for (int i = 0; i < SP; i++)
        pthread_join(p[i], NULL);
    BR_CHECK_OK(br_queue_shutdown(s->q, false)); /* consumers drain, then stop */
    for (int i = 0; i < SC; i++)
        pthread_join(c[i], NULL);
    br_test_cancel_storm_stop(&k);
    BR_CHECK_EQ(atomic_load(&s->bad), 0);
    BR_CHECK_EQ(atomic_load(&s->dup), 0);
    BR_CHECK_EQ(atomic_load(&s->got), SP * s->per);
    for (long v = 1; v <= SP * s->per; v++)
        BR_CHECK_EQ(atomic_load(&s->seen[v]), 1);
    BR_CHECK(br_queue_empty(s->q));
    check_quiet(s->q);
    BR_CHECK_OK(br_queue_free(s->q));
    free((void *)s->seen);
    free(s);
}

static void storm_unbounded(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++)
        run_storm(kinds[k], 0);
}

static void storm_bounded(void **state) {
    (void)state;
    for (int k = 0; k < NKINDS; k++)
        if (kinds[k] != BR_QUEUE_SIMPLE)
            run_storm(kinds[k], 2);
}

BR_TEST_MAIN(cmocka_unit_test(get_cancelled_while_parked),
             cmocka_unit_test(put_cancelled_while_parked),
             cmocka_unit_test(join_cancelled_while_parked),
             cmocka_unit_test(pending_cancel_get), cmocka_unit_test(pending_cancel_put),
             cmocka_unit_test(pending_cancel_join), cmocka_unit_test(get_wake_races_cancel),
             cmocka_unit_test(put_wake_races_cancel),
             cmocka_unit_test(join_wake_races_cancel), cmocka_unit_test(storm_unbounded),
             cmocka_unit_test(storm_bounded))
