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
#include <sys/wait.h>
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

/* The hang guard: how long a test waits for something that must happen before it
 * decides it never will: 30 s times br_test_time_multiplier(), far enough that a loaded
 * 2-core machine under a sanitizer never reaches it unless something is stuck, and
 * below the test's own timeout, so that the test fails with a message instead of being
 * killed. Only a guard: no check depends on how long it is. */
int64_t br_test_hang_guard_ns(void);
/* The hang guard as a deadline, from now. */
int64_t br_test_hang_guard(void);

/* Makes fs[0..n) new pending futures; fails the test if one can't be made. */
void br_test_futures_new(br_future **fs, size_t n);
/* Releases fs[0..n). */
void br_test_futures_release(br_future **fs, size_t n);

/* Waits until something waits on one of fs[0..n): a waiter or a watcher has
 * registered on it (its LISTENERS bit, which stays set), so a test can complete a
 * future once a waiter really blocks, without a sleep. Polls with yields and checks
 * nothing itself, so any thread may call it; false if the hang guard passed first. */
bool br_test_until_listener(br_future *const *fs, size_t n);

/* A checksum of p[0..len) (s = s * 31 + byte), for tasks that check their argument
 * bytes arrived whole. */
int64_t br_test_checksum(const void *p, size_t len);

/* --- counting what the process holds, for leak checks ------------------------------
 *
 * A thread that was just joined can still be listed in /proc/self/task for a moment
 * (the kernel wakes the joiner before it has removed the task), so a count read right
 * after a join, close or wait must wait for it to settle, within the hang guard.
 * br_test_wait_threads(n) polls (short sleeps) until the count is n and fails the test at
 * the hang guard with both values. A count that only grows (a thread just started is listed
 * before pthread_create returns) can be read once. */

/* Number of open file descriptors of this process. */
int br_test_count_fds(void);
/* Number of threads in this process (from /proc/self/task). */
int br_test_count_threads(void);

#define br_test_wait_threads(want) br_test_wait_threads_(__FILE__, __LINE__, (want))
#define br_test_wait_fds(want) br_test_wait_fds_(__FILE__, __LINE__, (want))
void br_test_wait_threads_(const char *file, int line, int want);
void br_test_wait_fds_(const char *file, int line, int want);
/* Waits (within the hang guard) until the child watcher (process/watch.h) watches no
 * child, then checks that no child of this process is left to reap: every child braid
 * started has ended and was reaped. */
#define br_test_wait_no_children() br_test_wait_no_children_(__FILE__, __LINE__)
void br_test_wait_no_children_(const char *file, int line);

/* The number of threads in the process once it has had a thread of its own and that
 * thread is gone: ThreadSanitizer starts a background thread at the first
 * pthread_create, which would otherwise look like a leak. The helper thread is joined
 * and waited out of /proc/self/task, so the count is exact. */
int br_test_thread_baseline(void);
/* braid's one-time calibration done and its helper thread ended (the first wait starts
 * it). Call it before a test forks while threads of its own run: else the first park of
 * one of them may be creating or ending that helper at the fork, inside the allocator,
 * and a child of a sanitizer build (whose allocator takes no locks around fork()) hangs
 * in its first malloc. */
void br_test_settle_calibration(void);

/* --- child processes ------------------------------------------------------------- */

/* Waits for the forked child `pid` and returns its wait status. A child still running
 * at the hang guard gets its process tree printed on stderr (br_test_dump_tree), is
 * killed with SIGKILL with all its descendants, reaped, and the test fails: a test never
 * hangs on, or leaves behind, a child (a stuck grandchild would hold the test's output
 * open, and ctest would wait for it until its own timeout). */
int br_test_wait_child(pid_t pid);
/* The same with a deadline of the caller's (a child that runs long by design). */
int br_test_wait_child_until(pid_t pid, int64_t deadline);
/* Prints pid and its descendants on stderr: command line, and for every thread its name,
 * state, wait channel, system call and (as root) kernel stack. For a check about to fail
 * on a stuck process. */
void br_test_dump_tree(pid_t pid);
/* SIGKILLs pid and every descendant (stopping each parent before listing its
 * children). Nothing is reaped. */
void br_test_kill_tree(pid_t pid);

/* A child's verdict: exit status 0 means every check in it passed; any other status
 * names the failed check (the child exits with a distinct code per check). */
#define BR_CHECK_CHILD_OK(st)                                                              \
    do {                                                                                   \
        int br_chk_st_ = (st);                                                             \
        if (!WIFEXITED(br_chk_st_) || WEXITSTATUS(br_chk_st_) != 0)                        \
            fail_msg("%s:%d: child %s %d", __FILE__, __LINE__,                             \
                     WIFEXITED(br_chk_st_) ? "failed check" : "died of signal",            \
                     WIFEXITED(br_chk_st_) ? WEXITSTATUS(br_chk_st_)                       \
                                           : WTERMSIG(br_chk_st_));                        \
    } while (0)

int br_test_main(const struct CMUnitTest *tests, size_t n, const char *group, int argc,
                 char **argv);

#define BR_TEST_MAIN(...)                                                            \
    int main(int argc, char **argv) {                                                \
        const struct CMUnitTest br_tests_[] = {__VA_ARGS__};                         \
        return br_test_main(br_tests_, sizeof br_tests_ / sizeof br_tests_[0],       \
                            __FILE__, argc, argv);                                   \
    }

#endif
