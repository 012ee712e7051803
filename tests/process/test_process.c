/* br_process (braid/process.h): start and join with argument bytes and a name under
 * every start method; exit codes as Python spells them (0, a failure 1, _exit(7) 7,
 * SIGKILL -9, SIGTERM -15); join's deadline; is_alive; exitcode unset while running;
 * br_wait over process futures and a thread-pool future; the fork-with-threads warning,
 * once; a daemon child dies with its parent's SIGKILL (a non-daemon one doesn't); at exit
 * daemon children are terminated and the others waited for; no zombie, no leaked fd.
 * braid-test-timeout: 120 */
#include "harness.h"
#include "braid/mp_queue.h"
#include "braid/mp_shared.h"
#include "braid/process.h"
#include "core/lib.h"
#include "process/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const br_start_method methods[] = {BR_START_FORK, BR_START_SPAWN};
enum { NMETHODS = 2 };

/* The argument every checking task gets. */
typedef struct check_arg {
    int32_t ppid;       /* the parent's pid, to compare with br_getppid() */
    char name[32];      /* the name it was given */
    unsigned char bytes[4000];
    int64_t sum;        /* br_test_checksum(bytes) */
} check_arg;

static int check_task(br_task *t) {
    size_t len = 0;
    const check_arg *a = br_task_arg(t, &len);
    if (len != sizeof *a)
        return br_task_fail(t, BR_EINVAL, "argument of %zu bytes", len);
    if (br_test_checksum(a->bytes, sizeof a->bytes) != a->sum)
        return br_task_fail(t, BR_EINVAL, "argument bytes changed");
    if (br_getppid() != a->ppid || br_getpid() == a->ppid)
        return br_task_fail(t, BR_EINVAL, "ppid %d, want %d", br_getppid(), a->ppid);
    if (strcmp(br_process_current_name(), a->name) != 0)
        return br_task_fail(t, BR_EINVAL, "name '%s'", br_process_current_name());
    return 0;
}

static int ok_task(br_task *t) {
    (void)t;
    return 0;
}
static int fail_task(br_task *t) { return br_task_fail(t, BR_ERANGE, "n out of range"); }
static int exit7_task(br_task *t) {
    (void)t;
    _exit(7);
}
static int pause_task(br_task *t) {
    (void)t;
    for (;;)
        pause();
    return 0;
}

static int join_code(br_process *p) {
    BR_CHECK_OK(br_process_join(p, br_test_hang_guard()));
    BR_CHECK(!br_process_is_alive(p));
    int code = -1000;
    BR_CHECK_OK(br_process_exitcode(p, &code));
    return code;
}

/* Starts and joins a no-op child so that the watcher (its epoll and eventfd, for the
 * life of the process) exists before descriptors are counted. */
static void warm_up(void) {
    br_process *p;
    BR_CHECK_OK(br_process_start(&p, ok_task, NULL, 0, NULL));
    BR_CHECK_EQ(join_code(p), 0);
    BR_CHECK_OK(br_process_free(p));
}

static void start_join_args_name(void **state) {
    (void)state;
    warm_up();
    int fds0 = br_test_count_fds();
    for (int m = 0; m < NMETHODS; m++) {
        check_arg a;
        memset(&a, 0, sizeof a);
        a.ppid = br_getpid();
        snprintf(a.name, sizeof a.name, "worker-%s", br_start_method_name(methods[m]));
        for (size_t i = 0; i < sizeof a.bytes; i++)
            a.bytes[i] = (unsigned char)(i * 13 + m);
        a.sum = br_test_checksum(a.bytes, sizeof a.bytes);
        br_process_opts o = {.name = a.name, .start_method = methods[m]};
        br_process *p = NULL;
        BR_CHECK_OK(br_process_start(&p, check_task, &a, sizeof a, &o));
        BR_CHECK(br_process_pid(p) > 0 && br_process_pid(p) != br_getpid());
        BR_CHECK(strcmp(br_process_name(p), a.name) == 0);
        BR_CHECK(!br_process_is_daemon(p));
        BR_CHECK_EQ(join_code(p), 0);
        BR_CHECK_OK(br_process_join(p, BR_NOWAIT)); /* joined again: at once */
        BR_CHECK_OK(br_process_free(p));
    }
    /* The default name: Process-N. */
    br_process *p;
    BR_CHECK_OK(br_process_start(&p, ok_task, NULL, 0, NULL));
    BR_CHECK(strncmp(br_process_name(p), "Process-", 8) == 0);
    BR_CHECK_EQ(join_code(p), 0);
    BR_CHECK_OK(br_process_free(p));
    BR_CHECK(strcmp(br_process_current_name(), "MainProcess") == 0);
    br_test_wait_no_children();
    br_test_wait_fds(fds0);
}

/* Children that block forever are daemons, so that a failed check (which returns from
 * main) doesn't leave the exit waiting for them: braid terminates them instead. */
static const br_process_opts blocked_daemon = {.daemon = true};

static void exit_codes(void **state) {
    (void)state;
    for (int m = 0; m < NMETHODS; m++) {
        br_process_opts o = {.start_method = methods[m], .daemon = true};
        br_task_fn fns[] = {ok_task, fail_task, exit7_task};
        int want[] = {0, 1, 7};
        for (int i = 0; i < 3; i++) {
            br_process *p;
            BR_CHECK_OK(br_process_start(&p, fns[i], NULL, 0, &o));
            BR_CHECK_EQ(join_code(p), want[i]);
            BR_CHECK_OK(br_process_free(p));
        }
        /* Killed and terminated: -9 and -15. */
        br_process *p;
        BR_CHECK_OK(br_process_start(&p, pause_task, NULL, 0, &o));
        BR_CHECK(br_process_is_alive(p));
        BR_CHECK_OK(br_process_kill(p));
        BR_CHECK_EQ(join_code(p), -SIGKILL);
        BR_CHECK_OK(br_process_kill(p)); /* ended: nothing to send, no error */
        BR_CHECK_OK(br_process_free(p));
        BR_CHECK_OK(br_process_start(&p, pause_task, NULL, 0, &o));
        BR_CHECK_OK(br_process_terminate(p));
        BR_CHECK_EQ(join_code(p), -SIGTERM);
        BR_CHECK_OK(br_process_terminate(p));
        BR_CHECK_OK(br_process_free(p));
    }
    br_test_wait_no_children();
}

static void join_deadline(void **state) {
    (void)state;
    br_process *p;
    BR_CHECK_OK(br_process_start(&p, pause_task, NULL, 0, &blocked_daemon));
    BR_CHECK_ERR(br_process_join(p, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_process_join(p, br_deadline_after(5 * BR_MSEC)), BR_ETIMEDOUT);
    int code = 12345;
    BR_CHECK_ERR(br_process_exitcode(p, &code), BR_ESTATE); /* unset: running */
    BR_CHECK_EQ(code, 12345);
    BR_CHECK(br_process_is_alive(p));
    BR_CHECK_ERR(br_process_free(p), BR_EBUSY); /* p stays valid */
    BR_CHECK_OK(br_process_terminate(p));
    BR_CHECK_OK(br_process_join(p, br_test_hang_guard()));
    BR_CHECK_OK(br_process_exitcode(p, &code));
    BR_CHECK_EQ(code, -SIGTERM);
    BR_CHECK_OK(br_process_free(p));
    br_test_wait_no_children();
}

static int square_task(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    return br_task_return_i64(t, n * n);
}

/* A process future is a future: br_wait mixes it with a thread pool's. */
static void wait_mixes_futures(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(br_threadpool_new(&ex, NULL));
    br_process *a, *b;
    br_process_opts o = {.start_method = BR_START_SPAWN};
    BR_CHECK_OK(br_process_start(&a, ok_task, NULL, 0, NULL));
    BR_CHECK_OK(br_process_start(&b, exit7_task, NULL, 0, &o));
    br_future *sq;
    BR_CHECK_OK(br_submit_i64(ex, square_task, 12, &sq));
    br_future *fs[3] = {br_process_future(a), br_process_future(b), sq};
    size_t ndone = 0, nnot = 0;
    br_future *sets[3];
    BR_CHECK_OK(br_wait(fs, 3, BR_ALL_COMPLETED, br_test_hang_guard(), sets, &ndone, &nnot));
    BR_CHECK_EQ(ndone, 3);
    BR_CHECK_EQ(nnot, 0);
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(fs[0], BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 0);
    BR_CHECK_OK(br_future_result_i64(fs[1], BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 7);
    BR_CHECK_OK(br_future_result_i64(sq, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 144);
    BR_CHECK(!br_process_is_alive(a) && !br_process_is_alive(b));
    /* FIRST_COMPLETED: the child that ends first, while the other still runs. */
    br_process *c;
    BR_CHECK_OK(br_process_start(&c, pause_task, NULL, 0, &blocked_daemon));
    br_future *fs2[2] = {br_process_future(c), br_process_future(a)};
    BR_CHECK_OK(br_wait(fs2, 2, BR_FIRST_COMPLETED, br_test_hang_guard(), sets, &ndone, &nnot));
    BR_CHECK_EQ(ndone, 1);
    BR_CHECK(sets[0] == br_process_future(a));
    BR_CHECK_OK(br_process_kill(c));
    BR_CHECK_EQ(join_code(c), -SIGKILL);
    br_future_release(sq);
    BR_CHECK_OK(br_process_free(a));
    BR_CHECK_OK(br_process_free(b));
    BR_CHECK_OK(br_process_free(c));
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_no_children();
}

static void bad_input(void **state) {
    (void)state;
    br_process *p = (br_process *)0x1;
    BR_CHECK_ERR(br_process_start(NULL, ok_task, NULL, 0, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_process_start(&p, NULL, NULL, 0, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_process_start(&p, ok_task, NULL, 4, NULL), BR_EINVAL);
    br_process_opts o = {.start_method = (br_start_method)9};
    BR_CHECK_ERR(br_process_start(&p, ok_task, NULL, 0, &o), BR_EINVAL);
    /* A heap pointer can't cross into a spawned or forkserver child: refused at the
     * start. */
    void *heap = malloc(64);
    o.start_method = BR_START_SPAWN;
    BR_CHECK_ERR(br_process_start(&p, (br_task_fn)heap, NULL, 0, &o), BR_EINVAL);
    o.start_method = BR_START_FORKSERVER;
    BR_CHECK_ERR(br_process_start(&p, (br_task_fn)heap, NULL, 0, &o), BR_EINVAL);
    free(heap);
    BR_CHECK(p == (br_process *)0x1); /* unchanged */
    BR_CHECK_ERR(br_process_join(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_process_free(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_process_kill(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_process_terminate(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_process_exitcode(NULL, NULL), BR_EINVAL);
    BR_CHECK(br_process_future(NULL) == NULL);
    BR_CHECK(!br_process_is_alive(NULL));
    BR_CHECK_EQ(br_process_pid(NULL), -1);
    BR_CHECK(br_process_name(NULL) == NULL);
    /* The default start method. */
    BR_CHECK_EQ(br_get_start_method(), BR_START_FORK);
    BR_CHECK_ERR(br_set_start_method(BR_START_DEFAULT), BR_EINVAL);
    BR_CHECK_OK(br_set_start_method(BR_START_FORKSERVER));
    BR_CHECK_EQ(br_get_start_method(), BR_START_FORKSERVER);
    BR_CHECK_OK(br_set_start_method(BR_START_SPAWN));
    BR_CHECK_EQ(br_get_start_method(), BR_START_SPAWN);
    BR_CHECK_OK(br_process_start(&p, exit7_task, NULL, 0, NULL)); /* spawned */
    BR_CHECK_EQ(join_code(p), 7);
    BR_CHECK_OK(br_process_free(p));
    BR_CHECK_OK(br_set_start_method(BR_START_FORK));
    BR_CHECK(strcmp(br_start_method_name(BR_START_FORKSERVER), "forkserver") == 0);
    br_test_wait_no_children();
}

/* --- shared objects by descriptor ------------------------------------------------- */

/* What the child of shared_objects_by_descriptor gets: the numbers of the descriptors
 * the start passed (opts.fds), as Python passes a Value and a Queue in args. */
typedef struct shared_arg {
    int value_fd, queue_fd;
    int64_t add;
} shared_arg;

static int shared_task(br_task *t) {
    size_t len = 0;
    const shared_arg *a = br_task_arg(t, &len);
    if (len != sizeof *a)
        return br_task_fail(t, BR_EINVAL, "argument of %zu bytes", len);
    br_mp_value *v;
    br_mp_queue *q;
    int rc = br_mp_value_attach(&v, a->value_fd);
    if (rc != 0)
        return br_task_fail(t, rc, "value fd %d: %s", a->value_fd, br_strerror(rc));
    rc = br_mp_queue_attach(&q, a->queue_fd);
    if (rc != 0) {
        br_mp_value_free(v);
        return br_task_fail(t, rc, "queue fd %d: %s", a->queue_fd, br_strerror(rc));
    }
    char msg[64];
    int n = snprintf(msg, sizeof msg, "pid %d added %lld", (int)br_getpid(), (long long)a->add);
    rc = br_mp_value_add_i64(v, a->add, NULL);
    if (rc == 0)
        rc = br_mp_queue_put(q, msg, (size_t)n, BR_FOREVER);
    br_mp_queue_free(q);
    br_mp_value_free(v);
    return rc == 0 ? 0 : br_task_fail(t, rc, "%s", br_strerror(rc));
}

/* A Value and a Queue made in the parent reach a child under every start method through
 * br_process_opts.fds (a spawned or forkserver child inherits nothing else): each child
 * adds to the value and puts one message; the parent sees every addition and every
 * message, once. A descriptor list that is too long or names a closed descriptor is
 * BR_EINVAL, nothing started; no descriptor leaks. */
static void shared_objects_by_descriptor(void **state) {
    (void)state;
    warm_up();
    /* and the forkserver up (its socket stays open for the process's life) */
    br_process *fs;
    BR_CHECK_OK(br_process_start(&fs, ok_task, NULL, 0,
                                 &(br_process_opts){.start_method = BR_START_FORKSERVER}));
    BR_CHECK_EQ(join_code(fs), 0);
    BR_CHECK_OK(br_process_free(fs));
    int fds_before = br_test_count_fds();
    br_mp_value *v;
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_value_new(&v, BR_MP_I64));
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    int fds[2] = {br_mp_value_fd(v), br_mp_queue_fd(q)};
    BR_CHECK(fds[0] >= 0 && fds[1] >= 0);
    static const br_start_method all[] = {BR_START_FORK, BR_START_SPAWN,
                                          BR_START_FORKSERVER};
    enum { NALL = 3 };
    br_process *ps[NALL];
    int64_t want = 0;
    for (int i = 0; i < NALL; i++) {
        shared_arg a = {.value_fd = fds[0], .queue_fd = fds[1], .add = 1000 + i};
        want += a.add;
        BR_CHECK_OK(br_process_start(&ps[i], shared_task, &a, sizeof a,
                                     &(br_process_opts){.start_method = all[i],
                                                        .fds = fds, .nfds = 2}));
    }
    bool seen[NALL] = {false};
    for (int i = 0; i < NALL; i++) {
        void *data = NULL;
        size_t len = 0;
        BR_CHECK_OK(br_mp_queue_get(q, &data, &len, br_test_hang_guard()));
        int pid = 0;
        long long added = 0;
        char text[80];
        snprintf(text, sizeof text, "%.*s", (int)len, (const char *)data);
        free(data);
        BR_CHECK(sscanf(text, "pid %d added %lld", &pid, &added) == 2);
        int k = -1;
        for (int j = 0; j < NALL; j++)
            if (br_process_pid(ps[j]) == pid)
                k = j;
        BR_CHECK(k >= 0 && !seen[k] && added == 1000 + k);
        seen[k] = true;
    }
    for (int i = 0; i < NALL; i++) {
        BR_CHECK_EQ(join_code(ps[i]), 0);
        BR_CHECK_OK(br_process_free(ps[i]));
    }
    int64_t got = 0;
    BR_CHECK_OK(br_mp_value_get_i64(v, &got));
    BR_CHECK_EQ(got, want);

    /* Bad lists: nothing starts. */
    br_process *p = (br_process *)0x1;
    int many[BR_PROCESS_MAX_FDS + 1];
    for (int i = 0; i <= BR_PROCESS_MAX_FDS; i++)
        many[i] = fds[0];
    BR_CHECK_ERR(br_process_start(&p, ok_task, NULL, 0,
                                  &(br_process_opts){.fds = many,
                                                     .nfds = BR_PROCESS_MAX_FDS + 1}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_process_start(&p, ok_task, NULL, 0, &(br_process_opts){.nfds = 1}),
                 BR_EINVAL);
    int closed = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
    BR_CHECK(closed >= 0);
    close(closed);
    for (int i = 0; i < NALL; i++)
        BR_CHECK_ERR(br_process_start(&p, ok_task, NULL, 0,
                                      &(br_process_opts){.start_method = all[i],
                                                         .fds = &closed, .nfds = 1}),
                     BR_EINVAL);
    BR_CHECK(p == (br_process *)0x1);
    BR_CHECK_OK(br_mp_queue_free(q));
    br_mp_value_free(v);
    br_test_wait_no_children();
    br_test_wait_fds(fds_before);
}

/* --- the fork warning --------------------------------------------------------------- */

/* Runs fn with stderr going to a memfd; returns what was written (static buffer). */
static const char *capture_stderr(void (*fn)(void)) {
    static char buf[8192];
    fflush(stderr);
    int saved = dup(2);
    int mfd = memfd_create("stderr", MFD_CLOEXEC);
    BR_CHECK(saved >= 0 && mfd >= 0);
    BR_CHECK_EQ(dup2(mfd, 2), 2);
    fn();
    fflush(stderr);
    BR_CHECK_EQ(dup2(saved, 2), 2);
    close(saved);
    ssize_t n = pread(mfd, buf, sizeof buf - 1, 0);
    close(mfd);
    buf[n > 0 ? n : 0] = 0;
    return buf;
}

static int count_of(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

static void two_fork_starts(void) {
    for (int i = 0; i < 2; i++) {
        br_process *p;
        BR_CHECK_OK(br_process_start(&p, ok_task, NULL, 0, NULL));
        BR_CHECK_EQ(join_code(p), 0);
        BR_CHECK_OK(br_process_free(p));
    }
}

static void *blocked(void *arg) {
    char c;
    while (read(*(int *)arg, &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static void fork_warns_once_with_threads(void **state) {
    (void)state;
    const char *out;
#if !defined(BRAID_TSAN) /* TSan runs a thread of its own */
    /* Only braid's watcher runs besides us: no warning. */
    out = capture_stderr(two_fork_starts);
    BR_CHECK_EQ(count_of(out, "warning"), 0);
#endif
    int gate[2];
    BR_CHECK_OK(pipe2(gate, O_CLOEXEC));
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        BR_CHECK_EQ(pthread_create(&th[i], NULL, blocked, &gate[0]), 0);
    out = capture_stderr(two_fork_starts);
    BR_CHECK_EQ(count_of(out, "braid: warning"), 1);
    BR_CHECK(strstr(out, "other thread") != NULL);
    out = capture_stderr(two_fork_starts); /* once per process */
    BR_CHECK_EQ(count_of(out, "warning"), 0);
    close(gate[1]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    close(gate[0]);
    br_test_wait_no_children();
}

/* --- daemon children and the parent's end ----------------------------------------- */

static bool gone(int pidfd) {
    struct pollfd pf = {.fd = pidfd, .events = POLLIN};
    int guard_ms = (int)(br_test_hang_guard_ns() / BR_MSEC);
    int r;
    while ((r = poll(&pf, 1, guard_ms)) < 0 && errno == EINTR) {
    }
    return r == 1;
}

static int open_pidfd(int pid) {
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    BR_CHECK(fd >= 0);
    return fd;
}

/* Reads the two pids an intermediate sends up, within the hang guard: a stuck
 * intermediate fails the test with what its tree was doing, instead of hanging it
 * (the forked grandchildren hold the pipe's write end too, so no EOF would come). */
static void read_pids(int fd, pid_t mid, int pids[2]) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int64_t give_up = br_test_hang_guard();
    int r, st;
    /* Polled in slices, so that an intermediate that died without sending (its forked
     * children keep the pipe open) fails at once, with how it ended. */
    while ((r = poll(&pf, 1, 50)) == 0 || (r < 0 && errno == EINTR)) {
        if (waitpid(mid, &st, WNOHANG) == mid)
            fail_msg("the intermediate (pid %d) ended before sending its children's pids: "
                     "%s %d", (int)mid, WIFSIGNALED(st) ? "signal" : "exit status",
                     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        if (br_now() > give_up)
            break;
    }
    if (r != 1) {
        fprintf(stderr, "the intermediate (pid %d) sent no pids within the hang guard:\n",
                (int)mid);
        br_test_dump_tree(mid);
        br_test_kill_tree(mid); /* its children too: they hold this test's output */
        while (waitpid(mid, &st, 0) < 0 && errno == EINTR) {
        }
        fail_msg("the intermediate is stuck (its tree is above)");
    }
    ssize_t n;
    while ((n = read(fd, pids, 2 * sizeof(int))) < 0 && errno == EINTR) {
    }
    BR_CHECK_EQ(n, (ssize_t)(2 * sizeof(int)));
}

/* In a forked intermediate: starts a daemon and a non-daemon child that block forever,
 * sends their pids up, and blocks. */
typedef struct daemon_start {
    br_start_method m;
    br_process *p;
    int rc;
} daemon_start;

static void start_daemon(void *arg) {
    daemon_start *d = arg;
    br_process_opts o = {.daemon = true, .start_method = d->m};
    d->rc = br_process_start(&d->p, pause_task, NULL, 0, &o);
}

static void intermediate(int up, br_start_method m, bool from_thread) {
    br_process_opts nd = {.start_method = m};
    daemon_start ds = {.m = m};
    if (from_thread) {
        /* The daemon is started by a thread that ends at once: it dies with that
         * thread (below, its pid may be gone before the crash). */
        br_thread *t;
        if (br_thread_start(&t, start_daemon, &ds, NULL) != 0 ||
            br_thread_join(t, BR_FOREVER) != 0)
            _exit(5);
        br_thread_free(t);
    } else {
        start_daemon(&ds);
    }
    br_process *a = ds.p, *b;
    if (ds.rc != 0 || br_process_start(&b, pause_task, NULL, 0, &nd) != 0)
        _exit(3);
    int pids[2] = {br_process_pid(a), br_process_pid(b)};
    if (write(up, pids, sizeof pids) != (ssize_t)sizeof pids)
        _exit(4);
    for (;;)
        pause();
}

static void daemon_dies_with_parent(void **state) {
    (void)state;
    for (int v = 0; v < NMETHODS + 1; v++) {
        int m = v % NMETHODS;
        int up[2];
        BR_CHECK_OK(pipe2(up, O_CLOEXEC));
        pid_t mid = fork();
        BR_CHECK(mid >= 0);
        if (mid == 0) {
            close(up[0]);
            intermediate(up[1], methods[m], v == NMETHODS);
        }
        close(up[1]);
        int pids[2] = {0, 0};
        read_pids(up[0], mid, pids);
        close(up[0]);
        int ndfd = open_pidfd(pids[1]);
        int dfd = (int)syscall(SYS_pidfd_open, pids[0], 0);
        BR_CHECK(dfd >= 0 || (v == NMETHODS && errno == ESRCH)); /* gone with its thread */
        kill(mid, SIGKILL); /* the parent crashes */
        int st = br_test_wait_child(mid);
        BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        BR_CHECK(dfd < 0 || gone(dfd)); /* the daemon child died with it */
        /* The non-daemon child lives on (as in Python); end it ourselves. */
        struct pollfd pf = {.fd = ndfd, .events = POLLIN};
        BR_CHECK_EQ(poll(&pf, 1, 0), 0);
        BR_CHECK_EQ(syscall(SYS_pidfd_send_signal, ndfd, SIGKILL, NULL, 0), 0);
        BR_CHECK(gone(ndfd));
        if (dfd >= 0)
            close(dfd);
        close(ndfd);
    }
}

static int gate_task(br_task *t) {
    int fd = (int)br_task_arg_i64(t);
    char c;
    ssize_t r;
    while ((r = read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    return r == 0 ? 0 : br_task_fail(t, BR_EIO, "read %zd", r);
}

/* In a forked intermediate: a daemon child blocked forever and a non-daemon child that
 * waits for `gate` to close; then exit(0): braid terminates the first and waits for the
 * second. */
static void exiting_intermediate(int up, int gate, int go) {
    br_process_opts d = {.daemon = true};
    br_process *a, *b;
    int64_t fd = gate;
    if (br_process_start(&a, pause_task, NULL, 0, &d) != 0 ||
        br_process_start(&b, gate_task, &fd, sizeof fd, NULL) != 0)
        _exit(3);
    int pids[2] = {br_process_pid(a), br_process_pid(b)};
    if (write(up, pids, sizeof pids) != (ssize_t)sizeof pids)
        _exit(4);
    char c; /* until the test holds pidfds for both */
    while (read(go, &c, 1) < 0 && errno == EINTR) {
    }
    exit(0);
}

static void at_exit_ends_children(void **state) {
    (void)state;
    int up[2], gate[2], go[2];
    BR_CHECK_OK(pipe2(up, O_CLOEXEC));
    BR_CHECK_OK(pipe2(gate, O_CLOEXEC));
    BR_CHECK_OK(pipe2(go, O_CLOEXEC));
    pid_t mid = fork();
    BR_CHECK(mid >= 0);
    if (mid == 0) {
        close(up[0]);
        close(gate[1]);
        close(go[1]);
        exiting_intermediate(up[1], gate[0], go[0]);
    }
    close(up[1]);
    close(gate[0]);
    close(go[0]);
    int pids[2] = {0, 0};
    read_pids(up[0], mid, pids);
    close(up[0]);
    int dfd = open_pidfd(pids[0]), ndfd = open_pidfd(pids[1]);
    close(go[1]); /* now the parent exits */
    BR_CHECK(gone(dfd)); /* terminated by the exiting parent */
    /* The parent waits for its non-daemon child, which waits for the gate. */
    struct pollfd pf = {.fd = ndfd, .events = POLLIN};
    BR_CHECK_EQ(poll(&pf, 1, 0), 0);
    BR_CHECK_EQ(waitpid(mid, NULL, WNOHANG), 0);
    close(gate[1]);
    int st = br_test_wait_child(mid);
    BR_CHECK_CHILD_OK(st);
    BR_CHECK(gone(ndfd));
    close(dfd);
    close(ndfd);
}


/* --- out of memory ----------------------------------------------------------------- */

/* Every allocation of a start may fail: BR_ENOMEM with nothing started and nothing
 * leaked, until the start goes through (a spawned child has an allocator of its own). */
static void start_out_of_memory(void **state) {
    (void)state;
    warm_up();
    int fds0 = br_test_count_fds();
    br_process_opts o = {.start_method = BR_START_SPAWN, .name = "oom"};
    int64_t v = 5;
    for (long n = 0;; n++) {
        BR_CHECK(n < 1000);
        br_process *p = NULL;
        br__alloc_fail_after(n);
        int rc = br_process_start(&p, ok_task, &v, sizeof v, &o);
        br__alloc_fail_after(-1);
        if (rc == BR_ENOMEM) {
            BR_CHECK(p == NULL);
            br_test_wait_no_children();
            br_test_wait_fds(fds0);
            continue;
        }
        BR_CHECK_OK(rc);
        BR_CHECK_EQ(join_code(p), 0);
        BR_CHECK_OK(br_process_free(p));
        break;
    }
    br_test_wait_no_children();
    br_test_wait_fds(fds0);
}

static void start_daemon_and_return(void *arg) {
    br_process_opts o = {.daemon = true};
    BR_CHECK_OK(br_process_start((br_process **)arg, pause_task, NULL, 0, &o));
}

/* The rule braid/process.h states: a daemon child dies when the thread that started it
 * ends (PR_SET_PDEATHSIG is tied to the thread; the start returns only once the tie is
 * in place). */
static void daemon_dies_with_its_thread(void **state) {
    (void)state;
    br_process *p = NULL;
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, start_daemon_and_return, &p, NULL));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_EQ(join_code(p), -SIGKILL);
    BR_CHECK_OK(br_process_free(p));
    br_test_wait_no_children();
}

BR_TEST_MAIN(cmocka_unit_test(start_join_args_name), cmocka_unit_test(exit_codes),
             cmocka_unit_test(join_deadline), cmocka_unit_test(wait_mixes_futures),
             cmocka_unit_test(bad_input), cmocka_unit_test(fork_warns_once_with_threads),
             cmocka_unit_test(daemon_dies_with_parent),
             cmocka_unit_test(at_exit_ends_children),
             cmocka_unit_test(start_out_of_memory),
             cmocka_unit_test(daemon_dies_with_its_thread),
             cmocka_unit_test(shared_objects_by_descriptor))
