/* br_barrier: threading.Barrier with Python's indices, action, abort, reset, timeout. */
#include "thread_util.h"

enum { PARTIES = 4, MAX_ROUNDS = 2000 };

typedef struct {
    br_barrier *b;
    long rounds;
    int64_t deadline;
    atomic_int seen[MAX_ROUNDS][PARTIES]; /* seen[round][index]: how many got index */
    int rc[PARTIES + 2];
    int last_rc[PARTIES + 2];
    atomic_int next_id, returned;
} party_ctx;

static void party(void *arg) {
    party_ctx *p = arg;
    int id = atomic_fetch_add(&p->next_id, 1);
    for (long r = 0; r < p->rounds; r++) {
        int rc = br_barrier_wait(p->b, p->deadline);
        p->last_rc[id] = rc;
        if (rc < 0 || rc >= PARTIES) {
            p->rc[id] = rc;
            break;
        }
        atomic_fetch_add(&p->seen[r][rc], 1);
    }
    atomic_fetch_add(&p->returned, 1);
}

/* Starts n parties of one round each, no deadline, on b. */
static void start_parties(party_ctx *p, br_barrier *b, br_thread **t, int n) {
    *p = (party_ctx){.b = b, .rounds = 1, .deadline = BR_FOREVER};
    tu_spawn_n(t, n, party, p);
}

/* Joins the n parties of start_parties: the barrier let each go with BR_EBROKEN. */
static void join_parties_broken(party_ctx *p, br_thread **t, int n) {
    tu_join_n(t, n);
    for (int i = 0; i < n; i++)
        BR_CHECK_ERR(p->last_rc[i], BR_EBROKEN);
}

/* A barrier of three with two parties waiting on it. */
static void two_of_three_waiting(br_barrier *b, party_ctx *p, br_thread *t[2]) {
    BR_CHECK_OK(br_barrier_init(b, 3, NULL, NULL));
    start_parties(p, b, t, 2);
    TU_WAIT_FOR(br_barrier_n_waiting(b) == 2);
}

static int action_calls;
static int count_action(void *arg) {
    (void)arg;
    action_calls++; /* run by one thread per round, all others parked: no race */
    return 0;
}

static void indices_are_0_to_n_minus_1_each_round(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, PARTIES, count_action, NULL));
    BR_CHECK_EQ(br_barrier_parties(&b), PARTIES);
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);
    BR_CHECK(!br_barrier_broken(&b));
    static party_ctx p;
    p = (party_ctx){
        .b = &b, .rounds = br_test_scaled(MAX_ROUNDS, 100), .deadline = BR_FOREVER};
    action_calls = 0;
    br_thread *t[PARTIES];
    tu_spawn_n(t, PARTIES, party, &p);
    tu_join_n(t, PARTIES);
    for (int i = 0; i < PARTIES; i++)
        BR_CHECK_OK(p.rc[i]);
    for (long r = 0; r < p.rounds; r++)
        for (int k = 0; k < PARTIES; k++)
            BR_CHECK_EQ(atomic_load(&p.seen[r][k]), 1);
    BR_CHECK_EQ(action_calls, p.rounds);
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

static void one_party_passes_at_once(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, 1, NULL, NULL));
    for (int i = 0; i < 3; i++)
        BR_CHECK_EQ(br_barrier_wait(&b, BR_NOWAIT), 0);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

static int failing_action(void *arg) {
    ++*(int *)arg;
    return -1;
}

/* A failing action breaks the barrier for the round and for later callers; reset
 * repairs it. */
static void failing_action_breaks_it(void **state) {
    (void)state;
    br_barrier b;
    int calls = 0;
    BR_CHECK_OK(br_barrier_init(&b, 3, failing_action, &calls));
    static party_ctx p;
    br_thread *t[3];
    start_parties(&p, &b, t, 3);
    join_parties_broken(&p, t, 3);
    BR_CHECK_EQ(calls, 1);
    BR_CHECK(br_barrier_broken(&b));
    BR_CHECK_ERR(br_barrier_wait(&b, BR_FOREVER), BR_EBROKEN); /* at once */
    BR_CHECK_OK(br_barrier_reset(&b));
    BR_CHECK(!br_barrier_broken(&b));
    BR_CHECK_OK(br_barrier_destroy(&b));
}

static void abort_breaks_waiters(void **state) {
    (void)state;
    br_barrier b;
    static party_ctx p;
    br_thread *t[2];
    two_of_three_waiting(&b, &p, t);
    BR_CHECK_ERR(br_barrier_destroy(&b), BR_EBUSY);
    BR_CHECK_OK(br_barrier_abort(&b));
    join_parties_broken(&p, t, 2);
    BR_CHECK(br_barrier_broken(&b));
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);
    BR_CHECK_ERR(br_barrier_wait(&b, BR_FOREVER), BR_EBROKEN);
    BR_CHECK_OK(br_barrier_reset(&b));
    /* works again: three parties pass */
    br_thread *u[3];
    start_parties(&p, &b, u, 3);
    tu_join_n(u, 3);
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(p.rc[i]);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

static void reset_releases_waiters_with_ebroken(void **state) {
    (void)state;
    br_barrier b;
    static party_ctx p;
    br_thread *t[2];
    two_of_three_waiting(&b, &p, t);
    BR_CHECK_OK(br_barrier_reset(&b));
    join_parties_broken(&p, t, 2);
    BR_CHECK(!br_barrier_broken(&b)); /* reset: empty, not broken */
    BR_CHECK_EQ(br_barrier_n_waiting(&b), 0);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

/* A timeout breaks the barrier: the one that timed out gets BR_ETIMEDOUT, the others
 * BR_EBROKEN, as Python's wait(timeout) does. */
static void timeout_breaks_it(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, 3, NULL, NULL));
    static party_ctx p;
    br_thread *t[1];
    start_parties(&p, &b, t, 1);
    TU_WAIT_FOR(br_barrier_n_waiting(&b) == 1);
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_barrier_wait(&b, t0 + 30 * BR_MSEC), BR_ETIMEDOUT);
    TU_CHECK_NOT_EARLY(t0, 30 * BR_MSEC);
    join_parties_broken(&p, t, 1);
    BR_CHECK(br_barrier_broken(&b));
    BR_CHECK_ERR(br_barrier_wait(&b, BR_NOWAIT), BR_EBROKEN);
    BR_CHECK_OK(br_barrier_reset(&b));
    /* NOWAIT on a barrier that isn't full: times out at once and breaks it */
    t0 = br_now();
    BR_CHECK_ERR(br_barrier_wait(&b, BR_NOWAIT), BR_ETIMEDOUT);
    TU_CHECK_QUICK(t0);
    BR_CHECK(br_barrier_broken(&b));
    BR_CHECK_OK(br_barrier_destroy(&b));
}

static void misuse(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_ERR(br_barrier_init(NULL, 2, NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_init(&b, 0, NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_init(&b, 0x80000000u, NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_destroy(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_wait(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_abort(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_reset(NULL), BR_EINVAL);
    BR_CHECK(!br_barrier_broken(NULL));
    BR_CHECK_EQ(br_barrier_parties(NULL), 0);
    BR_CHECK_EQ(br_barrier_n_waiting(NULL), 0);
    br_barrier zero = {{0}}; /* never initialised: not a barrier */
    BR_CHECK_ERR(br_barrier_wait(&zero, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_OK(br_barrier_init(&b, 2, NULL, NULL));
    BR_CHECK_OK(br_barrier_destroy(&b));
    BR_CHECK_ERR(br_barrier_destroy(&b), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_wait(&b, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_abort(&b), BR_EINVAL);
    BR_CHECK_ERR(br_barrier_reset(&b), BR_EINVAL);
    BR_CHECK_EQ(br_barrier_parties(&b), 0);
}

/* Many rounds with more threads than cores and deadlines that never fire: no round
 * loses a party. */
static void rounds_with_deadlines(void **state) {
    (void)state;
    br_barrier b;
    BR_CHECK_OK(br_barrier_init(&b, PARTIES, NULL, NULL));
    static party_ctx p;
    p = (party_ctx){.b = &b, .rounds = br_test_scaled(MAX_ROUNDS, 100), .deadline = 0};
    p.deadline = br_test_hang_guard();
    br_thread *t[PARTIES];
    tu_spawn_n(t, PARTIES, party, &p);
    tu_join_n(t, PARTIES);
    for (int i = 0; i < PARTIES; i++)
        BR_CHECK_OK(p.rc[i]);
    for (long r = 0; r < p.rounds; r++)
        for (int k = 0; k < PARTIES; k++)
            BR_CHECK_EQ(atomic_load(&p.seen[r][k]), 1);
    BR_CHECK_OK(br_barrier_destroy(&b));
}

BR_TEST_MAIN(cmocka_unit_test(indices_are_0_to_n_minus_1_each_round),
             cmocka_unit_test(one_party_passes_at_once),
             cmocka_unit_test(failing_action_breaks_it),
             cmocka_unit_test(abort_breaks_waiters),
             cmocka_unit_test(reset_releases_waiters_with_ebroken),
             cmocka_unit_test(timeout_breaks_it), cmocka_unit_test(misuse),
             cmocka_unit_test(rounds_with_deadlines))
