/* The test harness: cmocka plus braid's assertions.
 *
 * Every check stays in release builds and prints both sides; a braid status prints its
 * name (BR_ETIMEDOUT, ...). Never put an API call inside assert().
 *
 *   BR_CHECK_OK(br_queue_put(q, x, BR_FOREVER));   fails with "... got BR_ESHUTDOWN (-3001)"
 *   BR_CHECK_ERR(br_lock_release(&l), BR_EPERM);
 *   BR_CHECK_EQ(count, 1000);                       integers, printed on failure
 *
 * BR_TEST_MAIN(table...) runs the whole table, or the one test named by argv[1] (that is
 * how CTest runs each test in its own process).
 */
#ifndef BRAID_TESTS_HARNESS_H
#define BRAID_TESTS_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>
#include <cmocka.h>

#include <braid.h>

#define BR_CHECK_OK(expr)                                                            \
    do {                                                                             \
        int br_chk_rc_ = (expr);                                                     \
        if (br_chk_rc_ != 0)                                                         \
            fail_msg("%s:%d: %s: got %s (%d)", __FILE__, __LINE__, #expr,            \
                     br_err_name(br_chk_rc_), br_chk_rc_);                           \
    } while (0)

#define BR_CHECK_ERR(expr, want)                                                     \
    do {                                                                             \
        int br_chk_rc_ = (expr), br_chk_want_ = (want);                              \
        if (br_chk_rc_ != br_chk_want_)                                              \
            fail_msg("%s:%d: %s: got %s (%d), want %s (%d)", __FILE__, __LINE__,     \
                     #expr, br_err_name(br_chk_rc_), br_chk_rc_,                     \
                     br_err_name(br_chk_want_), br_chk_want_);                       \
    } while (0)

#define BR_CHECK_EQ(a, b)                                                            \
    do {                                                                             \
        long long br_chk_a_ = (long long)(a), br_chk_b_ = (long long)(b);            \
        if (br_chk_a_ != br_chk_b_)                                                  \
            fail_msg("%s:%d: %s == %s: %lld != %lld", __FILE__, __LINE__, #a, #b,    \
                     br_chk_a_, br_chk_b_);                                          \
    } while (0)

#define BR_CHECK(cond)                                                               \
    do {                                                                             \
        if (!(cond))                                                                 \
            fail_msg("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);          \
    } while (0)

/* Scale for stress sizes: 1.0 normally, smaller under sanitizers (which run 5-20x
 * slower); BRAID_TEST_SCALE in the environment overrides. A stress test must still check
 * every item at any scale; only the counts shrink. */
double br_test_scale(void);
/* n scaled, never below `floor`. */
long br_test_scaled(long n, long floor);

/* Timeout multiplier for hang guards inside tests (BRAID_TEST_TIMEOUT_MULTIPLIER). */
double br_test_time_multiplier(void);

/* Number of open file descriptors of this process (for leak checks). */
int br_test_count_fds(void);

/* Number of threads in this process (from /proc/self/task), for leak checks. */
int br_test_count_threads(void);

/* Waits for the forked child `pid` and returns its wait status. A child still running
 * at the hang guard (30 s times br_test_time_multiplier()) is killed with SIGKILL,
 * reaped, and the test fails: a test never hangs on, or leaves behind, a child. */
int br_test_wait_child(pid_t pid);

int br_test_main(const struct CMUnitTest *tests, size_t n, const char *group, int argc,
                 char **argv);

#define BR_TEST_MAIN(...)                                                            \
    int main(int argc, char **argv) {                                                \
        const struct CMUnitTest br_tests_[] = {__VA_ARGS__};                         \
        return br_test_main(br_tests_, sizeof br_tests_ / sizeof br_tests_[0],       \
                            __FILE__, argc, argv);                                   \
    }

#endif
