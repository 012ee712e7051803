/* The forkserver start method (process/forkserver.c): children forked by a server
 * process report their end as a returncode (exit codes, failures, signals, crashes);
 * join with a deadline, is_alive, terminate and kill work though the child is not
 * ours; the argument, name and inherited descriptors arrive (at the parent's numbers);
 * many children at once; a daemon child dies with the server; a killed server is
 * replaced at the next start, and its orphans' futures fail with BR_EBROKEN instead of
 * hanging; nothing is left behind (no child, no descriptor) once the server is stopped.
 * braid-test-timeout: 120 */
#include "harness.h"
#include "braid/process.h"
#include "process/start.h"
#include "process/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static const br_process_opts FS = {.start_method = BR_START_FORKSERVER};

static int ok_task(br_task *t) {
    (void)t;
    return 0;
}
static int fail_task(br_task *t) { return br_task_fail(t, BR_ERANGE, "out of range"); }
static int exit_arg_task(br_task *t) { _exit((int)br_task_arg_i64(t)); }
static int signal_arg_task(br_task *t) {
    int sig = (int)br_task_arg_i64(t);
    signal(sig, SIG_DFL);
    raise(sig);
    return 0;
}
static int pause_task(br_task *t) {
    (void)t;
    for (;;)
        pause();
    return 0;
}

typedef struct check_arg {
    int32_t parent;     /* the test's pid: the child's parent is the server, not it */
    char name[32];
    unsigned char bytes[5000];
    int64_t sum;
} check_arg;

/* Checks its argument and name, then writes the checksum to its inherited descriptor,
 * which must be at the parent's number. */
static int check_task(br_task *t) {
    size_t len = 0;
    const check_arg *a = br_task_arg(t, &len);
    if (len != sizeof *a)
        return br_task_fail(t, BR_EINVAL, "argument of %zu bytes", len);
    int64_t got = br_test_checksum(a->bytes, sizeof a->bytes);
    if (got != a->sum)
        return br_task_fail(t, BR_EINVAL, "argument bytes changed");
    if (br_getppid() == a->parent || br_getpid() == a->parent)
        return br_task_fail(t, BR_EINVAL, "forked by the test itself");
    if (strcmp(br_process_current_name(), a->name) != 0)
        return br_task_fail(t, BR_EINVAL, "name '%s'", br_process_current_name());
    if (br__child_inherited_count() != 1)
        return br_task_fail(t, BR_EINVAL, "%zu fds", br__child_inherited_count());
    int fd = br__child_inherited_fd(0);
    if (write(fd, &got, sizeof got) != (ssize_t)sizeof got)
        return br_task_fail(t, BR_EIO, "write to %d: %d", fd, errno);
    return 0;
}

static int join_code(br_process *p) {
    BR_CHECK_OK(br_process_join(p, br_test_hang_guard()));
    BR_CHECK(!br_process_is_alive(p));
    int code = -1000;
    BR_CHECK_OK(br_process_exitcode(p, &code));
    return code;
}

static int run_code(br_task_fn fn, int64_t arg) {
    br_process *p;
    BR_CHECK_OK(br_process_start(&p, fn, &arg, sizeof arg, &FS));
    int code = join_code(p);
    BR_CHECK_OK(br_process_free(p));
    return code;
}

/* Stops the server and checks nothing is left: no child of ours, no descriptor beyond
 * fds0 (counted before the server started). */
static void stop_and_check(int fds0) {
    BR_CHECK_OK(br__forkserver_stop(br_test_hang_guard()));
    BR_CHECK_EQ(br__forkserver_pid(), 0);
    br_test_wait_no_children();
    br_test_wait_fds(fds0);
}

/* Starts the watcher (its descriptors stay) so that counts compare like with like. */
static int warm_baseline(void) {
    br_process *p;
    BR_CHECK_OK(br_process_start(&p, ok_task, NULL, 0, NULL));
    BR_CHECK_EQ(join_code(p), 0);
    BR_CHECK_OK(br_process_free(p));
    br_test_wait_no_children();
    return br_test_count_fds();
}

static void exit_codes(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    BR_CHECK_EQ(run_code(ok_task, 0), 0);
    BR_CHECK(br__forkserver_pid() > 0);
    BR_CHECK_EQ(run_code(fail_task, 0), 1);
    BR_CHECK_EQ(run_code(exit_arg_task, 7), 7);
    BR_CHECK_EQ(run_code(exit_arg_task, 255), 255);
    BR_CHECK_EQ(run_code(signal_arg_task, SIGKILL), -SIGKILL);
    BR_CHECK_EQ(run_code(signal_arg_task, SIGTERM), -SIGTERM);
    /* a crashed child */
    BR_CHECK_EQ(run_code(signal_arg_task, SIGABRT), -SIGABRT);
    BR_CHECK_EQ(run_code(signal_arg_task, SIGSEGV), -SIGSEGV);
    stop_and_check(fds0);
}

static void args_name_fds(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    check_arg *a = calloc(1, sizeof *a);
    BR_CHECK(a != NULL);
    a->parent = br_getpid();
    snprintf(a->name, sizeof a->name, "fs-checker");
    for (size_t i = 0; i < sizeof a->bytes; i++)
        a->bytes[i] = (unsigned char)(i * 13 + 5);
    a->sum = br_test_checksum(a->bytes, sizeof a->bytes);
    /* The inherited descriptor at a high number, which the server's child must
     * reproduce (its own copy arrives at some other number). */
    int p[2];
    BR_CHECK_OK(pipe2(p, O_CLOEXEC));
    int w = fcntl(p[1], F_DUPFD_CLOEXEC, 700);
    BR_CHECK(w >= 700);
    br__child_spec spec = {.fn = check_task, .arg = a, .len = sizeof *a, .name = a->name,
                           .method = BR_START_FORKSERVER, .fds = &w, .nfds = 1};
    br__child c;
    char why[256] = "";
    BR_CHECK_OK(br__child_start(&spec, &c, why, sizeof why));
    BR_CHECK(c.pid > 0 && c.exit != NULL);
    int64_t code = -1000;
    BR_CHECK_OK(br_future_result_i64(c.exit, br_test_hang_guard(), &code));
    BR_CHECK_EQ(code, 0);
    int64_t back = 0;
    BR_CHECK_EQ(read(p[0], &back, sizeof back), (ssize_t)sizeof back);
    BR_CHECK_EQ(back, a->sum);
    br__child_close(&c);
    close(p[0]);
    close(p[1]);
    close(w);
    free(a);
    stop_and_check(fds0);
}

static void join_terminate_kill(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    br_process *p;
    BR_CHECK_OK(br_process_start(&p, pause_task, NULL, 0, &FS));
    BR_CHECK(br_process_is_alive(p));
    BR_CHECK(br_process_pid(p) > 0);
    BR_CHECK_ERR(br_process_join(p, br_deadline_after(20 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK(br_process_is_alive(p));
    int code;
    BR_CHECK_ERR(br_process_exitcode(p, &code), BR_ESTATE);
    BR_CHECK_ERR(br_process_free(p), BR_EBUSY);
    BR_CHECK_OK(br_process_terminate(p));
    BR_CHECK_EQ(join_code(p), -SIGTERM);
    BR_CHECK_OK(br_process_terminate(p)); /* ended: nothing to do */
    BR_CHECK_OK(br_process_free(p));
    BR_CHECK_OK(br_process_start(&p, pause_task, NULL, 0, &FS));
    BR_CHECK_OK(br_process_kill(p));
    BR_CHECK_EQ(join_code(p), -SIGKILL);
    BR_CHECK_OK(br_process_free(p));
    stop_and_check(fds0);
}

enum { MANY = 64 };

static void many_at_once(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    int n = (int)br_test_scaled(MANY, 16);
    br_process *ps[MANY];
    for (int i = 0; i < n; i++) {
        int64_t v = i + 1;
        BR_CHECK_OK(br_process_start(&ps[i], exit_arg_task, &v, sizeof v, &FS));
    }
    /* Joined in reverse: every code arrives, each to its own child. */
    for (int i = n - 1; i >= 0; i--) {
        BR_CHECK_EQ(join_code(ps[i]), i + 1);
        BR_CHECK_OK(br_process_free(ps[i]));
    }
    /* Watched as they end, in any order: as many futures as children, each once. */
    br_future *fs[MANY];
    for (int i = 0; i < n; i++) {
        int64_t v = 100 + i;
        BR_CHECK_OK(br_process_start(&ps[i], exit_arg_task, &v, sizeof v, &FS));
        fs[i] = br_process_future(ps[i]);
    }
    BR_CHECK_OK(br_wait(fs, (size_t)n, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, NULL, NULL));
    for (int i = 0; i < n; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, 100 + i);
        BR_CHECK_OK(br_process_free(ps[i]));
    }
    BR_CHECK_EQ(br__child_watch_count(), 0);
    stop_and_check(fds0);
}

/* A daemon child dies with the server (its parent-death signal); a non-daemon one
 * lives on, and its future fails with BR_EBROKEN once it ends (the status is lost). */
static void daemon_and_server_end(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    br_process *d, *nd;
    BR_CHECK_OK(br_process_start(&d, pause_task, NULL, 0,
                                 &(br_process_opts){.daemon = true,
                                                    .start_method = BR_START_FORKSERVER}));
    BR_CHECK_OK(br_process_start(&nd, pause_task, NULL, 0, &FS));
    BR_CHECK(br_process_is_daemon(d));
    BR_CHECK_OK(br__forkserver_stop(br_test_hang_guard()));
    BR_CHECK_OK(br_process_join(d, br_test_hang_guard()));
    int code;
    BR_CHECK_ERR(br_process_exitcode(d, &code), BR_EBROKEN);
    BR_CHECK(!br_process_is_alive(d));
    /* The non-daemon child runs on. */
    BR_CHECK_ERR(br_process_join(nd, br_deadline_after(20 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK(br_process_is_alive(nd));
    BR_CHECK_OK(br_process_kill(nd)); /* through its pidfd: not our child */
    BR_CHECK_OK(br_process_join(nd, br_test_hang_guard()));
    BR_CHECK_ERR(br_process_exitcode(nd, &code), BR_EBROKEN);
    BR_CHECK_OK(br_process_free(d));
    BR_CHECK_OK(br_process_free(nd));
    stop_and_check(fds0);
}

/* The server killed: the next start starts another one and works. */
static void server_killed_recovers(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    BR_CHECK_EQ(run_code(exit_arg_task, 3), 3);
    int s1 = br__forkserver_pid();
    BR_CHECK(s1 > 0);
    int pfd = br__pidfd_open(s1);
    BR_CHECK(pfd >= 0);
    BR_CHECK_OK(br__pidfd_signal(pfd, SIGKILL));
    /* Wait until it has ended (readable pidfd), within the hang guard. */
    int64_t give_up = br_test_hang_guard();
    while (br__pidfd_signal(pfd, 0) == 0) {
        BR_CHECK(br_now() < give_up);
        br_sleep(200 * BR_USEC);
    }
    close(pfd);
    BR_CHECK_EQ(run_code(exit_arg_task, 4), 4);
    int s2 = br__forkserver_pid();
    BR_CHECK(s2 > 0 && s2 != s1);
    /* Several starts in a row after it, all on the new server. */
    for (int i = 0; i < 5; i++)
        BR_CHECK_EQ(run_code(exit_arg_task, 10 + i), 10 + i);
    BR_CHECK_EQ(br__forkserver_pid(), s2);
    stop_and_check(fds0);
    /* Stopped: the next start starts one again. */
    BR_CHECK_EQ(run_code(ok_task, 0), 0);
    BR_CHECK(br__forkserver_pid() > 0);
    stop_and_check(fds0);
}

/* The default method set to forkserver; a function that can't cross is refused at the
 * parent's call; the server is never started by a refused start. */
static void default_and_refusals(void **state) {
    (void)state;
    int fds0 = warm_baseline();
    br_process *p = NULL;
    void *heap = malloc(16);
    BR_CHECK(heap != NULL);
    BR_CHECK_ERR(br_process_start(&p, (br_task_fn)heap, NULL, 0, &FS), BR_EINVAL);
    free(heap);
    BR_CHECK(p == NULL);
    BR_CHECK_EQ(br__forkserver_pid(), 0);
    BR_CHECK_OK(br_set_start_method(BR_START_FORKSERVER));
    int64_t v = 9;
    BR_CHECK_OK(br_process_start(&p, exit_arg_task, &v, sizeof v, NULL));
    BR_CHECK_EQ(join_code(p), 9);
    BR_CHECK_OK(br_process_free(p));
    BR_CHECK(br__forkserver_pid() > 0);
    BR_CHECK_OK(br_set_start_method(BR_START_FORK));
    stop_and_check(fds0);
    BR_CHECK_OK(br__forkserver_stop(BR_NOWAIT)); /* none running: nothing to do */
}

BR_TEST_MAIN(cmocka_unit_test(exit_codes), cmocka_unit_test(args_name_fds),
             cmocka_unit_test(join_terminate_kill), cmocka_unit_test(many_at_once),
             cmocka_unit_test(daemon_and_server_end),
             cmocka_unit_test(server_killed_recovers),
             cmocka_unit_test(default_and_refusals))
