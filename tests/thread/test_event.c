/* br_event: threading.Event. */
#include "thread_util.h"

static int event_waiters(br_event *e) {
    return br__wq_len(&BR__EVENT_IMPL(e)->wq);
}

static void set_clear_wait(void **state) {
    (void)state;
    br_event e = BR_EVENT_INIT;
    BR_CHECK(!br_event_is_set(&e));
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_event_wait(&e, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_event_wait(&e, br_now() - BR_SEC), BR_ETIMEDOUT); /* like NOWAIT */
    TU_CHECK_QUICK(t0);
    BR_CHECK_EQ(event_waiters(&e), 0); /* neither call queued */
    BR_CHECK_OK(br_event_set(&e));
    BR_CHECK(br_event_is_set(&e));
    BR_CHECK_OK(br_event_set(&e)); /* idempotent */
    BR_CHECK_OK(br_event_wait(&e, BR_NOWAIT));
    BR_CHECK_OK(br_event_wait(&e, BR_FOREVER));
    BR_CHECK_OK(br_event_clear(&e));
    BR_CHECK(!br_event_is_set(&e));
    BR_CHECK_OK(br_event_clear(&e));
    BR_CHECK_ERR(br_event_wait(&e, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_event_init(&e));
    BR_CHECK(!br_event_is_set(&e));
    BR_CHECK_OK(br_event_destroy(&e));
}

static void deadline_fires_never_early(void **state) {
    (void)state;
    br_event e = BR_EVENT_INIT;
    for (int64_t ms = 1; ms <= 40; ms *= 4) {
        int64_t t0 = br_now();
        BR_CHECK_ERR(br_event_wait(&e, t0 + ms * BR_MSEC), BR_ETIMEDOUT);
        TU_CHECK_NOT_EARLY(t0, ms * BR_MSEC);
    }
    BR_CHECK_EQ(event_waiters(&e), 0);
}

static void misuse(void **state) {
    (void)state;
    BR_CHECK_ERR(br_event_init(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_event_destroy(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_event_set(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_event_clear(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_event_wait(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK(!br_event_is_set(NULL));
    br_event e = BR_EVENT_INIT;
    BR_CHECK_OK(br_event_set(&e));
    BR_CHECK_OK(br_event_destroy(&e));
    BR_CHECK_ERR(br_event_destroy(&e), BR_EINVAL);
    BR_CHECK_ERR(br_event_set(&e), BR_EINVAL);
    BR_CHECK_ERR(br_event_clear(&e), BR_EINVAL);
    BR_CHECK_ERR(br_event_wait(&e, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_event_wait(&e, BR_FOREVER), BR_EINVAL);
    BR_CHECK(!br_event_is_set(&e));
}

enum { WAITERS = 6 };

typedef struct {
    br_event *e;
    int64_t deadline;
    atomic_int done;
    int rc[WAITERS];
    atomic_int next_id;
} crowd;

static void crowd_waiter(void *arg) {
    crowd *k = arg;
    int id = atomic_fetch_add(&k->next_id, 1);
    k->rc[id] = br_event_wait(k->e, k->deadline);
    atomic_fetch_add(&k->done, 1);
}

static void set_wakes_every_waiter(void **state) {
    (void)state;
    br_event e = BR_EVENT_INIT;
    crowd k = {.e = &e, .deadline = BR_FOREVER};
    br_thread *t[WAITERS];
    tu_spawn_n(t, WAITERS, crowd_waiter, &k);
    TU_WAIT_FOR(event_waiters(&e) == WAITERS);
    BR_CHECK_EQ(atomic_load(&k.done), 0);
    BR_CHECK_ERR(br_event_destroy(&e), BR_EBUSY);
    BR_CHECK_OK(br_event_set(&e));
    BR_CHECK_OK(br_event_clear(&e)); /* at once: the waiters were released all the same */
    tu_join_n(t, WAITERS);
    for (int i = 0; i < WAITERS; i++)
        BR_CHECK_OK(k.rc[i]);
    BR_CHECK_EQ(event_waiters(&e), 0);
    BR_CHECK_OK(br_event_destroy(&e));
}

/* Rounds of wait / set / clear: nobody is left behind in any round. Round n waits on
 * go[n % 2]; the main thread clears the other one, which nobody waits on any more. */
typedef struct {
    br_event go[2], ack[WAITERS];
    long rounds;
    int rc[WAITERS];
} rounds_ctx;

typedef struct {
    rounds_ctx *r;
    int id;
} rounds_arg;

static void round_worker(void *arg) {
    rounds_arg *a = arg;
    for (long i = 0; i < a->r->rounds; i++) {
        int rc = br_event_wait(&a->r->go[i % 2], BR_FOREVER);
        if (rc == 0)
            rc = br_event_set(&a->r->ack[a->id]);
        if (rc != 0) {
            a->r->rc[a->id] = rc;
            return;
        }
    }
}

static void rounds_stress(void **state) {
    (void)state;
    static rounds_ctx r; /* zero: every event cleared */
    r.rounds = br_test_scaled(5000, 200);
    rounds_arg a[WAITERS];
    br_thread *t[WAITERS];
    for (int i = 0; i < WAITERS; i++) {
        a[i] = (rounds_arg){&r, i};
        t[i] = tu_spawn(round_worker, &a[i]);
    }
    for (long n = 0; n < r.rounds; n++) {
        BR_CHECK_OK(br_event_clear(&r.go[(n + 1) % 2]));
        BR_CHECK_OK(br_event_set(&r.go[n % 2]));
        for (int i = 0; i < WAITERS; i++) {
            BR_CHECK_OK(br_event_wait(&r.ack[i], br_test_hang_guard()));
            BR_CHECK_OK(br_event_clear(&r.ack[i]));
        }
    }
    for (int i = 0; i < WAITERS; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(r.rc[i]);
    }
}

/* Waiters with deadlines racing with set(). What each one gets is fixed by the order
 * of events, and checked: a waiter that returned 0 did so after set() began (no
 * spurious success); a waiter that timed out did so at or after its deadline (never
 * early) and had begun before set() returned (a wait that begins on a set event
 * succeeds); a waiter without a deadline always gets 0 (no lost wake-up). */
enum { RACERS = 3 }; /* two with the round's deadline, one with none */

typedef struct {
    br_event *e;
    int64_t deadline;
    atomic_int set_begun, set_returned, next_id;
    int rc[RACERS];
    int set_returned_before[RACERS]; /* set() had returned when the wait began */
    int set_begun_after[RACERS];     /* set() had begun when the wait returned */
    int64_t returned_at[RACERS];
} race_ctx;

static void race_waiter(void *arg) {
    race_ctx *k = arg;
    int id = atomic_fetch_add(&k->next_id, 1);
    int64_t deadline = id == RACERS - 1 ? BR_FOREVER : k->deadline;
    k->set_returned_before[id] = atomic_load(&k->set_returned);
    k->rc[id] = br_event_wait(k->e, deadline);
    k->returned_at[id] = br_now();
    k->set_begun_after[id] = atomic_load(&k->set_begun);
}

static void timeouts_race_with_set(void **state) {
    (void)state;
    long rounds = br_test_scaled(2000, 100);
    for (long n = 0; n < rounds; n++) {
        br_event e = BR_EVENT_INIT;
        race_ctx k = {.e = &e, .deadline = br_deadline_after((n % 30) * BR_USEC)};
        br_thread *t[RACERS];
        tu_spawn_n(t, RACERS, race_waiter, &k);
        atomic_store(&k.set_begun, 1);
        BR_CHECK_OK(br_event_set(&e));
        atomic_store(&k.set_returned, 1);
        tu_join_n(t, RACERS);
        for (int i = 0; i < RACERS; i++) {
            int64_t deadline = i == RACERS - 1 ? BR_FOREVER : k.deadline;
            if (k.rc[i] == 0) {
                BR_CHECK_EQ(k.set_begun_after[i], 1);
            } else {
                BR_CHECK_ERR(k.rc[i], BR_ETIMEDOUT);
                BR_CHECK(deadline != BR_FOREVER);
                BR_CHECK(k.returned_at[i] >= deadline);
                BR_CHECK_EQ(k.set_returned_before[i], 0);
            }
        }
        BR_CHECK_EQ(event_waiters(&e), 0);
        BR_CHECK_OK(br_event_destroy(&e));
    }
}

BR_TEST_MAIN(cmocka_unit_test(set_clear_wait), cmocka_unit_test(deadline_fires_never_early),
             cmocka_unit_test(misuse), cmocka_unit_test(set_wakes_every_waiter),
             cmocka_unit_test(rounds_stress), cmocka_unit_test(timeouts_race_with_set))
