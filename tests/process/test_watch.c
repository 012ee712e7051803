/* The child watcher (process/watch.h): each child's end becomes its future's
 * returncode, whether it exits, is killed, ends before it is watched or is polled; the
 * watcher reaps every child (no zombies) and keeps no descriptor per child. */
#include "harness.h"
#include "process/watch.h"

#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static int gate[2] = {-1, -1}; /* the pipe children wait on */

/* A child that exits with `code` once gate's write end closes (when wait is true) or at
 * once. */
static pid_t child_exiting(int code, bool wait) {
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        if (wait) {
            int fd = gate[0];
            close(gate[1]);
            char c;
            while (read(fd, &c, 1) < 0 && errno == EINTR) {
            }
        }
        _exit(code);
    }
    return pid;
}

static br_future *watch(pid_t pid, bool with_pidfd, int *pidfd_out) {
    int pidfd = -1;
    if (with_pidfd) {
        pidfd = br__pidfd_open(pid);
        BR_CHECK(pidfd >= 0);
    }
    br_future *f = NULL;
    BR_CHECK_OK(br__child_watch(pid, pidfd, &f));
    if (pidfd_out)
        *pidfd_out = pidfd;
    else if (pidfd >= 0)
        close(pidfd);
    return f;
}

static int64_t returncode(br_future *f) {
    int64_t rc = 12345;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &rc));
    return rc;
}

static void exit_codes(void **state) {
    (void)state;
    int codes[] = {0, 1, 7, 255};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        br_future *f = watch(child_exiting(codes[i], false), true, NULL);
        BR_CHECK_EQ(returncode(f), codes[i]);
        br_future_release(f);
    }
    br_future *f = watch(child_exiting(3, false), false, NULL); /* polled */
    BR_CHECK_EQ(returncode(f), 3);
    br_future_release(f);
    br_test_wait_no_children();
}

static void killed_by_signal(void **state) {
    (void)state;
    BR_CHECK_OK(pipe(gate));
    int pidfd;
    br_future *f = watch(child_exiting(0, true), true, &pidfd);
    BR_CHECK_ERR(br_future_wait(f, BR_NOWAIT), BR_ETIMEDOUT); /* still blocked */
    BR_CHECK_OK(br__pidfd_signal(pidfd, SIGKILL));
    BR_CHECK_EQ(returncode(f), -SIGKILL);
    /* Reaped: the pidfd now names no process, and never another one. */
    BR_CHECK_ERR(br__pidfd_signal(pidfd, SIGTERM), BR_ESRCH);
    close(pidfd);
    close(gate[0]);
    close(gate[1]);
    br_future_release(f);
    br_test_wait_no_children();
}

static void join_with_deadline(void **state) {
    (void)state;
    BR_CHECK_OK(pipe(gate));
    br_future *f = watch(child_exiting(5, true), true, NULL);
    BR_CHECK_ERR(br_future_wait(f, br_deadline_after(20 * BR_MSEC)), BR_ETIMEDOUT);
    close(gate[1]); /* the child's read returns 0 and it exits */
    BR_CHECK_OK(br_future_wait(f, br_test_hang_guard()));
    BR_CHECK_EQ(returncode(f), 5);
    close(gate[0]);
    br_future_release(f);
    br_test_wait_no_children();
}

static void ended_before_watched(void **state) {
    (void)state;
    for (int polled = 0; polled < 2; polled++) {
        pid_t pid = child_exiting(9, false);
        siginfo_t info = {0};
        /* Wait until it is a zombie, without reaping it. */
        BR_CHECK_OK(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT));
        br_future *f = watch(pid, !polled, NULL);
        BR_CHECK_EQ(returncode(f), 9);
        br_future_release(f);
    }
    br_test_wait_no_children();
}

/* Many children at once, half of them polled, ending in an order of their own: every
 * future gets its own child's code, and the watcher's descriptors don't grow. */
static void many_children(void **state) {
    (void)state;
    enum { N = 64 };
    br_future *first = watch(child_exiting(0, false), true, NULL); /* the watcher exists */
    BR_CHECK_EQ(returncode(first), 0);
    br_future_release(first);
    int fds = br_test_count_fds();
    BR_CHECK_OK(pipe(gate));
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        fs[i] = watch(child_exiting(i, i % 3 != 0), i % 2 == 0, NULL);
    /* The pipe, and at most the pidfd duplicates of the children still running. */
    BR_CHECK(br_test_count_fds() <= fds + 2 + N / 2);
    close(gate[1]);
    for (int i = 0; i < N; i++) {
        BR_CHECK_EQ(returncode(fs[i]), i);
        br_future_release(fs[i]);
    }
    close(gate[0]);
    br_test_wait_no_children();
    br_test_wait_fds(fds);
}

/* A forked child of a process that has a watcher gets a fresh one of its own. */
static void watcher_after_fork(void **state) {
    (void)state;
    br_future *f = watch(child_exiting(4, false), true, NULL);
    BR_CHECK_EQ(returncode(f), 4);
    br_future_release(f);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        if (br__child_watch_count() != 0)
            _exit(10);
        br_future *g = NULL;
        pid_t grandchild = child_exiting(6, false);
        if (br__child_watch(grandchild, br__pidfd_open(grandchild), &g) != 0)
            _exit(11);
        int64_t rc = 0;
        if (br_future_result_i64(g, br_test_hang_guard(), &rc) != 0 || rc != 6)
            _exit(12);
        br_future_release(g);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    br_test_wait_no_children();
}

typedef struct {
    br_event done;
    _Atomic int64_t seen;
} cb_state;

static void on_death(br_future *f, void *arg) {
    cb_state *st = arg;
    int64_t rc = 0;
    atomic_store(&st->seen, br_future_result_i64(f, BR_NOWAIT, &rc) == 0 ? rc : -1000);
    br_event_set(&st->done);
}

/* A done-callback learns of the death (as the process pool does). */
static void done_callback_on_death(void **state) {
    (void)state;
    cb_state st = {.seen = -2000};
    BR_CHECK_OK(br_event_init(&st.done));
    BR_CHECK_OK(pipe(gate));
    br_future *f = watch(child_exiting(2, true), true, NULL);
    BR_CHECK_OK(br_future_add_done_callback(f, on_death, &st));
    close(gate[1]);
    BR_CHECK_OK(br_event_wait(&st.done, br_test_hang_guard()));
    BR_CHECK_EQ(atomic_load(&st.seen), 2);
    close(gate[0]);
    br_future_release(f);
    BR_CHECK_OK(br_event_destroy(&st.done));
    br_test_wait_no_children();
}

static void bad_input(void **state) {
    (void)state;
    br_future *f = (br_future *)1;
    BR_CHECK_ERR(br__child_watch(0, -1, &f), BR_EINVAL);
    BR_CHECK_ERR(br__child_watch(-5, -1, &f), BR_EINVAL);
    BR_CHECK_ERR(br__child_watch(1, -1, NULL), BR_EINVAL);
    BR_CHECK_ERR(br__pidfd_open(0), BR_EINVAL);
    BR_CHECK_ERR(br__pidfd_signal(-1, SIGTERM), BR_EINVAL);
}

BR_TEST_MAIN(cmocka_unit_test(exit_codes), cmocka_unit_test(killed_by_signal),
             cmocka_unit_test(join_with_deadline), cmocka_unit_test(ended_before_watched),
             cmocka_unit_test(many_children), cmocka_unit_test(watcher_after_fork),
             cmocka_unit_test(done_callback_on_death), cmocka_unit_test(bad_input))
