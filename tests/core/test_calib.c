/* core/calib.c: the machine's costs, measured once, clamped, and the BRAID_SPIN_NS
 * override. Each test runs in its own process, so each sees a fresh calibration.
 * Nothing here judges a measured value beyond its documented bounds. */
#include "harness.h"
#include "core/lib.h"

#include <stdlib.h>

/* The bounds core/calib.c documents. */
static void check_bounds(void) {
    int64_t rtt = br__calib_rtt_ns(), wake = br__calib_wake_ns();
    int64_t call = br__calib_wake_call_ns();
    BR_CHECK(rtt >= 20 && rtt <= 2000);
    BR_CHECK(wake >= 1000 && wake <= 50000);
    BR_CHECK(call >= 200 && call <= 50000);
}

static void values_are_within_bounds(void **state) {
    (void)state;
    unsetenv("BRAID_SPIN_NS");
    int before = br_test_count_threads(); /* nothing has measured yet */
    BR_CHECK(before >= 1);
    check_bounds();
    int64_t spin = br__calib_spin_ns();
    if (br__cpu_parallel() == 1) {
        BR_CHECK_EQ(spin, 0);
        BR_CHECK(!br__may_spin());
    } else {
        BR_CHECK(spin >= 250 && spin <= 30000);
        BR_CHECK(br__may_spin());
    }
    /* The measurement's helper thread (detached) goes away: once it has returned,
     * the thread count comes back to what it was (polled: /proc/self/task lists an
     * exited thread for a moment; a helper that stayed would hit the hang guard). */
    int64_t guard = br_test_hang_guard();
    while (br__calib_helper_gone() < 0 && br_now() < guard)
        br_sleep(50 * BR_USEC);
    BR_CHECK(br__calib_helper_gone() >= 0);
#if defined(BRAID_TSAN)
    before++; /* ThreadSanitizer's background thread, started with the first thread */
#endif
    br_test_wait_threads(before);
    /* Measured once: asking again gives the same values. */
    BR_CHECK_EQ(br__calib_spin_ns(), spin);
}

static void env_sets_the_spin_budget(void **state) {
    (void)state;
    setenv("BRAID_SPIN_NS", "1234", 1);
    BR_CHECK_EQ(br__calib_spin_ns(), 1234);
    BR_CHECK(br__may_spin());
    check_bounds();
}

static void env_zero_turns_spinning_off(void **state) {
    (void)state;
    setenv("BRAID_SPIN_NS", "0", 1);
    BR_CHECK_EQ(br__calib_spin_ns(), 0);
    BR_CHECK(!br__may_spin());
    /* Waits without spinning still end as they should: at the deadline, or at once
     * when the event is set. */
    br_event e = BR_EVENT_INIT;
    BR_CHECK_ERR(br_event_wait(&e, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_event_set(&e));
    BR_CHECK_OK(br_event_wait(&e, BR_FOREVER));
}

static void bad_env_values_are_ignored(void **state) {
    (void)state;
    static const char *const bad[] = {
        "abc", "-5", "12x", "", " 7", "1000001", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        BR_CHECK_EQ(br__calib_parse_spin_ns(bad[i]), -1);
    BR_CHECK_EQ(br__calib_parse_spin_ns(NULL), -1);
    BR_CHECK_EQ(br__calib_parse_spin_ns("0"), 0);
    BR_CHECK_EQ(br__calib_parse_spin_ns("1000000"), 1000000);
    BR_CHECK_EQ(br__calib_parse_spin_ns("250"), 250);
    /* and a bad value in the environment leaves the measured budget */
    setenv("BRAID_SPIN_NS", "abc", 1);
    int64_t spin = br__calib_spin_ns();
    BR_CHECK(spin == 0 ? br__cpu_parallel() == 1 : (spin >= 250 && spin <= 30000));
}

/* Threads that ask at once all get values within bounds (one measures, the others get
 * the defaults or the published values), and afterwards everyone agrees. */
static atomic_int go;
static void ask(void *arg) {
    int64_t *out = arg;
    while (!atomic_load(&go)) {
    }
    out[0] = br__calib_rtt_ns();
    out[1] = br__calib_spin_ns();
}

static void concurrent_first_calls(void **state) {
    (void)state;
    unsetenv("BRAID_SPIN_NS");
    int64_t got[4][2];
    br_thread *t[4];
    int started[4];
    for (int i = 0; i < 4; i++)
        started[i] = br_thread_start(&t[i], ask, got[i], NULL);
    atomic_store(&go, 1); /* before any check: a started thread never spins forever */
    for (int i = 0; i < 4; i++)
        BR_CHECK_OK(started[i]);
    for (int i = 0; i < 4; i++) {
        BR_CHECK_OK(br_thread_join(t[i], br_test_hang_guard()));
        BR_CHECK_OK(br_thread_free(t[i]));
        BR_CHECK(got[i][0] >= 20 && got[i][0] <= 2000);
        BR_CHECK(got[i][1] >= 0 && got[i][1] <= 30000);
    }
    check_bounds();
    int64_t spin = br__calib_spin_ns();
    BR_CHECK_EQ(br__calib_spin_ns(), spin);
}

static void set_spin_ns_sticks(void **state) {
    (void)state;
    br__calib_set_spin_ns(777);
    BR_CHECK_EQ(br__calib_spin_ns(), 777);
    br__calib_set_spin_ns(0);
    BR_CHECK(!br__may_spin());
}

BR_TEST_MAIN(cmocka_unit_test(values_are_within_bounds),
             cmocka_unit_test(env_sets_the_spin_budget),
             cmocka_unit_test(env_zero_turns_spinning_off),
             cmocka_unit_test(bad_env_values_are_ignored),
             cmocka_unit_test(concurrent_first_calls), cmocka_unit_test(set_spin_ns_sticks))
