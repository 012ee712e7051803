/* Deadlines and sleeping: saturating arithmetic, sleeps never return early. */
#include "harness.h"

#include <math.h>
#include <unistd.h>

static void deadline_arithmetic(void **state) {
    (void)state;
    int64_t now = br_now();
    BR_CHECK(now > 0);
    BR_CHECK(br_deadline_after(-5) >= now);
    BR_CHECK(br_deadline_after(0) >= now);
    BR_CHECK_EQ(br_deadline_after(INT64_MAX), BR_FOREVER);
    BR_CHECK_EQ(br_deadline_after(INT64_MAX - 1), BR_FOREVER);
    int64_t d = br_deadline_after(BR_SEC);
    BR_CHECK(d >= now + BR_SEC);
    BR_CHECK_EQ(br_deadline_after_s(INFINITY), BR_FOREVER);
    BR_CHECK_EQ(br_deadline_after_s(1e300), BR_FOREVER);
    BR_CHECK(br_deadline_after_s(NAN) <= br_now());
    BR_CHECK(br_deadline_after_s(-1.0) <= br_now());
    int64_t h = br_deadline_after_s(0.5);
    BR_CHECK(h >= now + BR_SEC / 2);
    BR_CHECK_EQ(br_deadline_left(BR_FOREVER), INT64_MAX);
    BR_CHECK_EQ(br_deadline_left(BR_NOWAIT), 0);
    BR_CHECK_EQ(br_deadline_left(now - 1), 0);
    BR_CHECK_EQ(br_deadline_min(3, BR_FOREVER), 3);
}

static void clock_is_monotonic(void **state) {
    (void)state;
    int64_t prev = br_now();
    for (int i = 0; i < 100000; i++) {
        int64_t t = br_now();
        BR_CHECK(t >= prev);
        prev = t;
    }
}

static void sleep_is_never_early(void **state) {
    (void)state;
    for (int i = 0; i < 20; i++) {
        int64_t t0 = br_now();
        BR_CHECK_OK(br_sleep(2 * BR_MSEC));
        BR_CHECK(br_now() - t0 >= 2 * BR_MSEC);
    }
    int64_t t0 = br_now();
    BR_CHECK_OK(br_sleep_s(0.01));
    BR_CHECK(br_now() - t0 >= 10 * BR_MSEC);
    int64_t until = br_deadline_after(5 * BR_MSEC);
    BR_CHECK_OK(br_sleep_until(until));
    BR_CHECK(br_now() >= until);
}

static void sleep_in_the_past_returns_at_once(void **state) {
    (void)state;
    BR_CHECK_OK(br_sleep_until(BR_NOWAIT));
    BR_CHECK_OK(br_sleep(-1));
    BR_CHECK_OK(br_sleep_s(0));
}

static void cpu_count_is_sane(void **state) {
    (void)state;
    int n = br_cpu_count();
    BR_CHECK(n >= 1);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    BR_CHECK(n <= online);
}

BR_TEST_MAIN(cmocka_unit_test(deadline_arithmetic), cmocka_unit_test(clock_is_monotonic),
             cmocka_unit_test(sleep_is_never_early),
             cmocka_unit_test(sleep_in_the_past_returns_at_once),
             cmocka_unit_test(cpu_count_is_sane))
