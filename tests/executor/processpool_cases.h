/* The process pool's own tests (beyond the executor conformance suite), shared by the
 * test files of each start method: test_processpool.c (fork) and
 * test_processpool_spawn.c (spawn) define PP_METHOD and include this after the suite.
 * Every test checks that nothing is left behind: no child, no descriptor, no memfd
 * mapping. */
#ifndef BRAID_TESTS_PROCESSPOOL_CASES_H
#define BRAID_TESTS_PROCESSPOOL_CASES_H

#include "harness.h"
#include "process/watch.h"

#include <braid/processpool.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>


/* Waits until the pool's `want` workers have forked (a worker is listed once its fork
 * is done), before the test goes on allocating: the pool forks its workers from its
 * manager thread, and a fork while another thread holds the allocator's lock leaves the
 * child stuck in it under AddressSanitizer, whose allocator (gcc 12's) doesn't take its
 * locks around fork() as glibc's malloc does. */
static int pp_wait_forked(br_executor *ex, int want) {
    int64_t guard = br_test_hang_guard();
    while (br_processpool_pids(ex, NULL, 0) < want) {
        if (br_now() >= guard)
            return BR_ETIMEDOUT;
        br_sleep(100 * 1000);
    }
    return 0;
}

/* The pool under test, with this file's start method, its workers forked. */
static int pp_new(br_executor **out, const br_processpool_opts *opts) {
    br_processpool_opts o = {0};
    if (opts)
        o = *opts;
    o.start_method = PP_METHOD;
    int rc = br_processpool_new(out, &o);
    if (rc == 0)
        rc = pp_wait_forked(*out, o.max_workers > 0 ? o.max_workers : br_cpu_count());
    return rc;
}

static int pp_mp_new(br_mp_pool **out, const br_mp_pool_opts *opts) {
    br_mp_pool_opts o = *opts;
    o.start_method = PP_METHOD;
    int rc = br_mp_pool_new(out, &o);
    if (rc == 0)
        rc = pp_wait_forked(br_mp_pool_executor(*out),
                            o.processes > 0 ? o.processes : br_cpu_count());
    return rc;
}

/* --- leak checks ------------------------------------------------------------------------ */

static int count_memfd_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    BR_CHECK(f != NULL);
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, "/memfd:") != NULL)
            n++;
    fclose(f);
    return n;
}

typedef struct baseline {
    int fds, maps;
} baseline;

static baseline before(void) {
    baseline b = {br_test_count_fds(), count_memfd_maps()};
    return b;
}

/* Nothing left: the watcher reaped every worker (no zombie), and the pool's
 * descriptors and mappings are gone. The watcher's own epoll descriptor stays once
 * made, so the baseline is taken after a first pool. */
static void nothing_left(baseline b) {
    br_test_wait_no_children();
    br_test_wait_fds(b.fds);
    BR_CHECK_EQ(count_memfd_maps(), b.maps);
}

static int noop_task(br_task *t) {
    (void)t;
    return 0;
}

/* Starts and frees one pool, so that the watcher's thread and descriptors exist before
 * a baseline is taken. */
static baseline warm_baseline(void) {
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 1}));
    br_future *f;
    BR_CHECK_OK(br_submit_i64(ex, noop_task, 0, &f));
    BR_CHECK_OK(br_future_wait(f, br_test_hang_guard()));
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_no_children();
    return before();
}

/* --- tasks ---------------------------------------------------------------------------- */

static int square_task(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

static int pid_task(br_task *t) { return br_task_return_i64(t, (int64_t)getpid()); }

enum { DIE_KILL = 1, DIE_SEGV = 2, DIE_ABORT = 3 };

static int die_task(br_task *t) {
    switch (br_task_arg_i64(t)) {
    case DIE_KILL:
        raise(SIGKILL);
        break;
    case DIE_SEGV: {
        volatile uintptr_t bad = 8; /* an address never mapped */
        *(volatile int *)bad = 1;
        break;
    }
    case DIE_ABORT:
        abort();
    }
    return 0;
}

static int echo_task(br_task *t) {
    size_t len;
    const void *a = br_task_arg(t, &len);
    return br_task_return(t, a, len);
}

static void free_int(void *p) { free(p); }

static int ptr_task(br_task *t) {
    int *p = malloc(sizeof *p);
    int rc = br_task_return_ptr(t, p, free_int);
    if (rc != 0)
        free(p);
    return br_task_return_i64(t, rc);
}

/* Polls br_task_cancelled; returns BR_ECANCELED when it turns true. Reports that it has
 * started by writing a byte to the fd in its argument. */
/* A task reports that it has started by writing a byte into a FIFO named in its
 * argument (a path reaches a worker under every start method; an inherited descriptor
 * doesn't reach a spawned one). */
typedef struct spin_arg {
    int poll;       /* 0: never looks (only a kill stops it) */
    char fifo[64];  /* "" for none */
} spin_arg;

static int spin_task(br_task *t) {
    const spin_arg *a = br_task_arg(t, NULL);
    if (a->fifo[0]) {
        int fd = open(a->fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            return br_task_fail(t, BR_EIO, "open %s: %d", a->fifo, errno);
        ssize_t n = write(fd, "s", 1);
        close(fd);
        if (n != 1)
            return BR_EIO;
    }
    for (;;) {
        if (a->poll && br_task_cancelled(t))
            return BR_ECANCELED;
        br_sleep(100 * 1000);
    }
}

/* Waits (within the hang guard) for a task's "started" byte on the FIFO's read end
 * (non-blocking: between writers it reads as end of file). */
static void wait_started(int fd) {
    int64_t guard = br_test_hang_guard();
    for (;;) {
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n == 1)
            return;
        BR_CHECK(n == 0 || errno == EAGAIN || errno == EINTR);
        BR_CHECK(br_now() < guard);
        br_sleep(BR_MSEC / 2);
    }
}

/* The pipe tasks report on: made before the pool, so that its workers (forked when the
 * pool starts) inherit it. */
static void started_pipe(int pfd[2], spin_arg *a) {
    snprintf(a->fifo, sizeof a->fifo, "/tmp/braid-pp-%d-%lld", (int)getpid(),
             (long long)br_now());
    BR_CHECK(mkfifo(a->fifo, 0600) == 0);
    pfd[0] = open(a->fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    BR_CHECK(pfd[0] >= 0);
    pfd[1] = -1;
}

static void started_pipe_close(int pfd[2], spin_arg *a) {
    close(pfd[0]);
    unlink(a->fifo);
}

/* --- spreading work ------------------------------------------------------------------------ */

/* A task that says it started, then waits for the test's word (a file appearing). */
typedef struct gate_arg {
    spin_arg started; /* its fifo */
    char go[80];      /* the file whose creation lets the task return */
} gate_arg;

static int gated_task(br_task *t) {
    const gate_arg *a = br_task_arg(t, NULL);
    int fd = open(a->started.fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return br_task_fail(t, BR_EIO, "open %s: %d", a->started.fifo, errno);
    ssize_t n = write(fd, "s", 1);
    close(fd);
    if (n != 1)
        return BR_EIO;
    int64_t guard = br_deadline_after(120 * BR_SEC); /* a hang guard only */
    while (access(a->go, F_OK) != 0) {
        if (br_now() >= guard)
            return BR_ETIMEDOUT;
        br_sleep(BR_MSEC);
    }
    return br_task_return_i64(t, getpid());
}

/* A map's inputs go to the workers with the fewest tasks in flight: two inputs that can
 * only finish together (each waits until both have started) run on two workers at once.
 * Were both handed to one worker, the second would never start and the test would fail
 * at the hang guard. */
static void map_spreads_over_workers(void **state) {
    (void)state;
    baseline b = warm_baseline();
    int pfd[2];
    gate_arg a;
    memset(&a, 0, sizeof a);
    started_pipe(pfd, &a.started);
    snprintf(a.go, sizeof a.go, "%s.go", a.started.fifo);
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    gate_arg in[2] = {a, a};
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, gated_task, in, 2, sizeof in[0], NULL));
    wait_started(pfd[0]);
    wait_started(pfd[0]); /* both running at once */
    int gfd = open(a.go, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    BR_CHECK(gfd >= 0);
    close(gfd);
    int64_t pid0 = 0, pid1 = 0;
    BR_CHECK_OK(br_map_next_i64(m, &pid0));
    BR_CHECK_OK(br_map_next_i64(m, &pid1));
    BR_CHECK(pid0 > 0 && pid1 > 0 && pid0 != pid1);
    BR_CHECK_ERR(br_map_next_i64(m, &pid0), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    unlink(a.go);
    started_pipe_close(pfd, &a.started);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

/* --- worker death ------------------------------------------------------------------------ */

static void death_case(int how, const char *want) {
    baseline b = warm_baseline();
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    enum { N = 64 };
    br_future *fs[N], *bad;
    for (int i = 0; i < N / 2; i++)
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &fs[i]));
    BR_CHECK_OK(br_submit_i64(ex, die_task, how, &bad));
    for (int i = N / 2; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &fs[i]));
    BR_CHECK_ERR(br_future_result(bad, br_test_hang_guard(), NULL, NULL), BR_EWORKERDIED);
    int code = 0;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(bad, BR_NOWAIT, &code, &msg));
    BR_CHECK_EQ(code, BR_EWORKERDIED);
    BR_CHECK(msg != NULL && strncmp(msg, "worker ", 7) == 0);
    if (want)
        BR_CHECK(strstr(msg, want) != NULL);
    for (int i = 0; i < N; i++) {
        int64_t v = -1;
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, (int64_t)i * i);
        br_future_release(fs[i]);
    }
    br_future_release(bad);
    /* it keeps serving, with a replacement */
    for (int i = 0; i < 10; i++) {
        br_future *f;
        int64_t v = -1;
        BR_CHECK_OK(br_submit_i64(ex, square_task, 100 + i, &f));
        BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
        BR_CHECK_EQ(v, (int64_t)(100 + i) * (100 + i));
        br_future_release(f);
    }
    int pids[4];
    BR_CHECK_EQ(br_processpool_pids(ex, pids, 4), 2);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void worker_sigkill(void **state) {
    (void)state;
    death_case(DIE_KILL, "killed by signal 9");
}

static void worker_segfault(void **state) {
    (void)state;
    death_case(DIE_SEGV, NULL); /* a sanitizer's handler may make it an exit status */
}

static void worker_abort(void **state) {
    (void)state;
    death_case(DIE_ABORT, NULL);
}

/* The test kills the worker from outside, by the pid the task reported. */
static void worker_killed_from_outside(void **state) {
    (void)state;
    baseline b = warm_baseline();
    int pfd[2];
    spin_arg a = {.poll = 0};
    started_pipe(pfd, &a);
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 1}));
    br_future *f, *g;
    BR_CHECK_OK(br_submit(ex, spin_task, &a, sizeof a, &f));
    BR_CHECK_OK(br_submit_i64(ex, square_task, 7, &g)); /* prefetched behind it */
    wait_started(pfd[0]);
    int pid = 0;
    BR_CHECK_EQ(br_processpool_pids(ex, &pid, 1), 1);
    BR_CHECK(kill(pid, SIGKILL) == 0);
    BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_EWORKERDIED);
    char want[64];
    snprintf(want, sizeof want, "worker %d killed by signal 9", pid);
    const char *msg = NULL;
    int code;
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, &msg));
    BR_CHECK(msg && strcmp(msg, want) == 0);
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(g, br_test_hang_guard(), &v)); /* went elsewhere */
    BR_CHECK_EQ(v, 49);
    br_future_release(f);
    br_future_release(g);
    started_pipe_close(pfd, &a);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

/* --- payloads -------------------------------------------------------------------------- */

static void payload_case(size_t n) {
    baseline b = warm_baseline();
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    unsigned char *buf = malloc(n);
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 13));
    br_future *f[3];
    for (int k = 0; k < 3; k++)
        BR_CHECK_OK(br_submit(ex, echo_task, buf, n, &f[k]));
    memset(buf, 0, 16); /* copied at submit: the tasks don't see this */
    for (int k = 0; k < 3; k++) {
        const void *d;
        size_t len;
        BR_CHECK_OK(br_future_result(f[k], br_test_hang_guard(), &d, &len));
        BR_CHECK_EQ(len, n);
        const unsigned char *r = d;
        for (size_t i = 0; i < 16; i++)
            BR_CHECK_EQ(r[i], (unsigned char)(i * 131));
        BR_CHECK(memcmp(r + 16, buf + 16, n - 16) == 0);
        br_future_release(f[k]);
    }
    free(buf);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void payload_small_sizes(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    size_t sizes[] = {0, 1, 15, 16, 17, 100, 8191, 8192, 8193, 100000, 300000};
    enum { S = sizeof sizes / sizeof sizes[0] };
    br_future *f[S];
    unsigned char *buf = malloc(300000);
    for (size_t i = 0; i < 300000; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    for (int k = 0; k < S; k++)
        BR_CHECK_OK(br_submit(ex, echo_task, sizes[k] ? buf : NULL, sizes[k], &f[k]));
    for (int k = 0; k < S; k++) {
        const void *d;
        size_t len = 99;
        BR_CHECK_OK(br_future_result(f[k], br_test_hang_guard(), &d, &len));
        BR_CHECK_EQ(len, sizes[k]);
        BR_CHECK(sizes[k] == 0 || memcmp(d, buf, sizes[k]) == 0);
        br_future_release(f[k]);
    }
    free(buf);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void payload_1mib(void **state) {
    (void)state;
    payload_case((size_t)1 << 20);
}

/* 64 MiB, 16 MiB under a sanitizer (which instruments every byte of the copies and the
 * checks: 20-40 s a run there); still far beyond the ring and the 1 MiB case. */
static void payload_64mib(void **state) {
    (void)state;
    payload_case((size_t)br_test_scaled(64, 16) << 20);
}

static void return_ptr_refused(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 1}));
    br_future *f;
    int64_t v = 0;
    BR_CHECK_OK(br_submit_i64(ex, ptr_task, 0, &f));
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, BR_ENOTSUP);
    br_future_release(f);
    BR_CHECK_EQ(strcmp(br_executor_kind(ex), "process"), 0);
    BR_CHECK_OK(br_executor_free(ex));
}

/* --- one task, any executor ---------------------------------------------------------------- */

/* README.md's first program's task, word for word. */
static int is_prime_task(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    for (int64_t i = 3; i * i <= n; i += 2)
        if (n % i == 0)
            return br_task_return_i64(t, 0);
    return br_task_return_i64(t, n > 1 && (n == 2 || n % 2));
}

static void readme_program(br_executor *pool, int64_t out[3]) {
    int64_t xs[] = {112272535095293, 115280095190773, 1099726899285419};
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, pool, is_prime_task, xs, 3, sizeof xs[0], NULL));
    int64_t ok;
    int rc, i;
    for (i = 0; (rc = br_map_next_i64(m, &ok)) == 0; i++)
        out[i] = ok;
    BR_CHECK_ERR(rc, BR_EOF);
    BR_CHECK_EQ(i, 3);
    br_map_free(m);
    br_executor_free(pool);
}

static void readme_both_pools(void **state) {
    (void)state;
    br_executor *pool;
    int64_t a[3], b[3];
    BR_CHECK_OK(br_threadpool_new(&pool, NULL));
    readme_program(pool, a);
    BR_CHECK_OK(pp_new(&pool, NULL)); /* the only line that changes */
    readme_program(pool, b);
    for (int i = 0; i < 3; i++)
        BR_CHECK_EQ(a[i], b[i]);
    BR_CHECK(a[0] == 1 && a[1] == 1 && a[2] == 0);
}

static void mixed_wait_as_completed(void **state) {
    (void)state;
    br_executor *tp, *pp;
    BR_CHECK_OK(br_threadpool_new(&tp, &(br_threadpool_opts){.max_workers = 2}));
    BR_CHECK_OK(br_processpool_new(&pp, &(br_processpool_opts){.max_workers = 2}));
    enum { N = 40 };
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(i % 2 ? tp : pp, square_task, i, &fs[i]));
    size_t nd, nn;
    BR_CHECK_OK(br_wait(fs, N, BR_ALL_COMPLETED, br_test_hang_guard(), NULL, &nd, &nn));
    BR_CHECK_EQ(nd, N);
    br_future *gs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(i % 2 ? pp : tp, square_task, i, &gs[i]));
    br_as_completed *it;
    BR_CHECK_OK(br_as_completed_new(&it, gs, N, br_test_hang_guard()));
    int seen[N] = {0};
    for (int k = 0; k < N; k++) {
        br_future *f;
        size_t idx;
        BR_CHECK_OK(br_as_completed_next_index(it, &f, &idx));
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
        BR_CHECK_EQ(v, (int64_t)idx * (int64_t)idx);
        seen[idx]++;
    }
    br_future *f;
    BR_CHECK_ERR(br_as_completed_next(it, &f), BR_EOF);
    BR_CHECK_OK(br_as_completed_free(it));
    for (int i = 0; i < N; i++) {
        BR_CHECK_EQ(seen[i], 1);
        br_future_release(fs[i]);
        br_future_release(gs[i]);
    }
    BR_CHECK_OK(br_executor_free(tp));
    BR_CHECK_OK(br_executor_free(pp));
}

/* --- cancel, deadlines, shutdown, terminate ------------------------------------------------ */

static void request_cancel_running(void **state) {
    (void)state;
    baseline b = warm_baseline();
    int pfd[2];
    spin_arg a = {.poll = 1};
    started_pipe(pfd, &a);
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 1}));
    br_future *f;
    BR_CHECK_OK(br_submit(ex, spin_task, &a, sizeof a, &f));
    wait_started(pfd[0]);
    BR_CHECK(!br_future_cancel(f)); /* running */
    BR_CHECK(br_future_request_cancel(f));
    BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(f));
    br_future_release(f);
    int pid_before = 0, pid_after = 0;
    BR_CHECK_EQ(br_processpool_pids(ex, &pid_before, 1), 1);
    /* the same worker goes on */
    BR_CHECK_OK(br_submit_i64(ex, pid_task, 0, &f));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, pid_before);
    br_future_release(f);
    BR_CHECK_EQ(br_processpool_pids(ex, &pid_after, 1), 1);
    BR_CHECK_EQ(pid_after, pid_before);
    started_pipe_close(pfd, &a);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void kill_on_cancel(void **state) {
    (void)state;
    baseline b = warm_baseline();
    int pfd[2];
    spin_arg a = {.poll = 0};
    started_pipe(pfd, &a);
    br_executor *ex;
    BR_CHECK_OK(br_processpool_new(
        &ex, &(br_processpool_opts){.max_workers = 1, .kill_on_cancel = true}));
    br_future *f, *g;
    BR_CHECK_OK(br_submit(ex, spin_task, &a, sizeof a, &f));
    BR_CHECK_OK(br_submit_i64(ex, square_task, 9, &g));
    wait_started(pfd[0]);
    BR_CHECK(br_future_request_cancel(f));
    BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_ECANCELED);
    BR_CHECK(br_future_cancelled(f));
    int64_t v;
    BR_CHECK_OK(br_future_result_i64(g, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 81);
    br_future_release(f);
    br_future_release(g);
    started_pipe_close(pfd, &a);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void task_deadline(void **state) {
    (void)state;
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 1}));
    spin_arg a = {.poll = 1};
    br_future *f, *g;
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = spin_task, .arg = &a, .len = sizeof a,
                                              .deadline = br_deadline_after(20 * BR_MSEC)},
                               &f));
    /* already expired: never runs */
    BR_CHECK_OK(br_submit_call(ex, &(br_call){.fn = die_task, .arg = &(int64_t){DIE_KILL},
                                              .len = 8, .deadline = br_now() - 1},
                               &g));
    BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_ETIMEDOUT);
    BR_CHECK(!br_future_cancelled(f));
    BR_CHECK_ERR(br_future_result(g, br_test_hang_guard(), NULL, NULL), BR_ETIMEDOUT);
    br_future_release(f);
    br_future_release(g);
    BR_CHECK_OK(br_executor_free(ex));
}

static void shutdown_cancel_futures(void **state) {
    (void)state;
    baseline b = warm_baseline();
    int pfd[2];
    spin_arg a = {.poll = 1};
    started_pipe(pfd, &a);
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 1,
                                                                .prefetch = 1}));
    br_future *run, *q[5];
    BR_CHECK_OK(br_submit(ex, spin_task, &a, sizeof a, &run));
    for (int i = 0; i < 5; i++)
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &q[i]));
    wait_started(pfd[0]);
    BR_CHECK(br_future_cancel(q[0])); /* prefetch 1: still queued, cancellable */
    BR_CHECK_OK(br_executor_shutdown(ex, true, true));
    BR_CHECK(br_future_cancelled(run)); /* it polled and stopped */
    for (int i = 0; i < 5; i++) {
        BR_CHECK(br_future_cancelled(q[i]));
        br_future_release(q[i]);
    }
    br_future_release(run);
    br_future *f = (br_future *)1;
    BR_CHECK_ERR(br_submit_i64(ex, square_task, 1, &f), BR_ESHUTDOWN);
    BR_CHECK(f == NULL);
    started_pipe_close(pfd, &a);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void shutdown_wait_finishes_all(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    enum { N = 2000 };
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, square_task, i, &fs[i]));
    BR_CHECK_OK(br_executor_shutdown(ex, false, false)); /* returns at once */
    BR_CHECK_OK(br_executor_shutdown(ex, true, false));
    for (int i = 0; i < N; i++) {
        int64_t v;
        BR_CHECK(br_future_done(fs[i]));
        BR_CHECK_OK(br_future_result_i64(fs[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, (int64_t)i * i);
        br_future_release(fs[i]);
    }
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void terminate_kills(void **state) {
    (void)state;
    baseline b = warm_baseline();
    int pfd[2];
    spin_arg a = {.poll = 0};
    started_pipe(pfd, &a);
    br_executor *ex;
    BR_CHECK_OK(pp_new(&ex, &(br_processpool_opts){.max_workers = 2}));
    br_future *fs[6];
    for (int i = 0; i < 6; i++)
        BR_CHECK_OK(br_submit(ex, spin_task, &a, sizeof a, &fs[i]));
    wait_started(pfd[0]);
    wait_started(pfd[0]);
    BR_CHECK_OK(br_processpool_terminate(ex));
    for (int i = 0; i < 6; i++) {
        BR_CHECK(br_future_done(fs[i]));
        BR_CHECK(br_future_cancelled(fs[i]));
        br_future_release(fs[i]);
    }
    BR_CHECK_ERR(br_submit_i64(ex, square_task, 1, NULL), BR_ESHUTDOWN);
    started_pipe_close(pfd, &a);
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

/* --- the initializer, max_tasks_per_child -------------------------------------------------- */

static int init_ok(br_task *t) {
    (void)t;
    return 0;
}

static int init_fail(br_task *t) {
    return br_task_fail(t, BR_EINVAL, "no");
}

static void initializer_breaks(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_executor *ex;
    BR_CHECK_OK(br_processpool_new(
        &ex, &(br_processpool_opts){.max_workers = 2, .initializer = init_fail}));
    br_future *f;
    /* The first submit may find the pool not broken yet (its future then fails with
     * BR_EBROKEN) or already broken (a worker's initializer failed before it: under
     * fork, br_processpool_new returns once the workers are forked, and they may have
     * run it by then), as Python's BrokenProcessPool comes from submit or from result. */
    int rc = br_submit_i64(ex, square_task, 3, &f);
    if (rc == 0) {
        BR_CHECK_ERR(br_future_result(f, br_test_hang_guard(), NULL, NULL), BR_EBROKEN);
        br_future_release(f);
    } else {
        BR_CHECK_EQ(rc, BR_EBROKEN);
    }
    for (int i = 0; br_submit_i64(ex, square_task, 3, NULL) != BR_EBROKEN; i++)
        BR_CHECK(i < 1000000); /* broken from now on */
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
    /* a good one */
    BR_CHECK_OK(br_processpool_new(
        &ex, &(br_processpool_opts){.max_workers = 1, .initializer = init_ok,
                                    .initarg = "x", .initarg_len = 1}));
    int64_t v;
    BR_CHECK_OK(br_submit_i64(ex, square_task, 3, &f));
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 9);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

static void max_tasks_per_child(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_executor *ex;
    BR_CHECK_OK(br_processpool_new(
        &ex, &(br_processpool_opts){.max_workers = 1, .max_tasks_per_child = 2}));
    enum { N = 9 };
    br_future *fs[N];
    for (int i = 0; i < N; i++)
        BR_CHECK_OK(br_submit_i64(ex, pid_task, 0, &fs[i]));
    int64_t pids[N];
    for (int i = 0; i < N; i++) {
        BR_CHECK_OK(br_future_result_i64(fs[i], br_test_hang_guard(), &pids[i]));
        br_future_release(fs[i]);
    }
    /* in order, two tasks per worker: 5 workers */
    for (int i = 0; i < N; i++) {
        int same = 0;
        for (int j = 0; j < N; j++)
            same += pids[j] == pids[i];
        BR_CHECK(same <= 2);
        if (i % 2 == 1)
            BR_CHECK_EQ(pids[i], pids[i - 1]);
    }
    BR_CHECK_OK(br_executor_free(ex));
    nothing_left(b);
}

static void bad_options(void **state) {
    (void)state;
    br_executor *ex = (br_executor *)1;
    br_set_panic_on_misuse(false);
    BR_CHECK_ERR(br_processpool_new(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(pp_new(&ex, &(br_processpool_opts){.max_workers = -1}),
                 BR_EINVAL);
    BR_CHECK(ex == NULL);
    BR_CHECK_ERR(br_processpool_new(&ex, &(br_processpool_opts){.start_method = (br_start_method)42}),
                 BR_EINVAL);
    BR_CHECK_ERR(pp_new(&ex, &(br_processpool_opts){.prefetch = 100000}),
                 BR_EINVAL);
    BR_CHECK_ERR(pp_new(&ex, &(br_processpool_opts){.initarg_len = 3}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_processpool_terminate(NULL), BR_EINVAL);
}

/* --- Pool ------------------------------------------------------------------------------------ */

static int sleep_task(br_task *t) {
    int64_t ms = br_task_arg_i64(t);
    br_sleep(ms * BR_MSEC);
    return br_task_return_i64(t, ms);
}

static int fail_odd(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    if (x % 2)
        return br_task_fail(t, BR_ERANGE, "odd %d", (int)x);
    return br_task_return_i64(t, x * 10);
}

typedef struct cb_count {
    _Atomic int ok, err;
    _Atomic int64_t sum;
    _Atomic int last_err;
} cb_count;

static void on_ok(const void *data, size_t len, void *ctx) {
    cb_count *c = ctx;
    int64_t v = 0;
    if (len == 8)
        memcpy(&v, data, 8);
    atomic_fetch_add(&c->sum, v);
    atomic_fetch_add(&c->ok, 1);
}

static void on_err(int code, const char *msg, void *ctx) {
    cb_count *c = ctx;
    atomic_store(&c->last_err, code);
    if (msg && strncmp(msg, "odd ", 4) == 0)
        atomic_fetch_add(&c->err, 1);
    else
        atomic_fetch_add(&c->err, 1000);
}

static void mp_apply_async_callbacks(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_mp_pool *pool;
    BR_CHECK_OK(pp_mp_new(&pool, &(br_mp_pool_opts){.processes = 2}));
    cb_count c = {0};
    enum { N = 100 };
    for (int64_t i = 0; i < N; i++)
        BR_CHECK_OK(br_mp_pool_apply_async(pool, fail_odd, &i, sizeof i, on_ok, on_err, &c,
                                           NULL));
    br_future *f;
    int64_t x = 4, v;
    BR_CHECK_OK(br_mp_pool_apply(pool, fail_odd, &x, sizeof x, &f));
    BR_CHECK_OK(br_future_result_i64(f, BR_NOWAIT, &v));
    BR_CHECK_EQ(v, 40);
    br_future_release(f);
    x = 5;
    BR_CHECK_ERR(br_mp_pool_apply(pool, fail_odd, &x, sizeof x, NULL), BR_ERANGE);
    BR_CHECK_OK(br_mp_pool_close(pool));
    BR_CHECK_ERR(br_mp_pool_apply(pool, fail_odd, &x, sizeof x, NULL), BR_ESTATE);
    BR_CHECK_OK(br_mp_pool_join(pool)); /* every callback has run: once each */
    BR_CHECK_EQ(atomic_load(&c.ok), N / 2);
    BR_CHECK_EQ(atomic_load(&c.err), N / 2);
    BR_CHECK_EQ(atomic_load(&c.last_err), BR_ERANGE);
    BR_CHECK_EQ(atomic_load(&c.sum), 10 * 2 * (N / 2) * (N / 2 - 1) / 2);
    BR_CHECK_OK(br_mp_pool_free(pool));
    nothing_left(b);
}

static void mp_map(void **state) {
    (void)state;
    br_mp_pool *pool;
    BR_CHECK_OK(pp_mp_new(&pool, &(br_mp_pool_opts){.processes = 2}));
    enum { N = 1000 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = 2 * i;
    size_t chunks[] = {0, 1, 7, 300, 5000};
    for (size_t k = 0; k < 5; k++) {
        br_mp_result *r;
        BR_CHECK_OK(br_mp_pool_map(&r, pool, fail_odd, in, N, sizeof in[0], chunks[k]));
        BR_CHECK_EQ(br_mp_result_count(r), N);
        BR_CHECK(br_mp_result_ready(r));
        BR_CHECK_EQ(br_mp_result_successful(r), 1);
        for (size_t i = 0; i < N; i++) {
            const void *d;
            size_t len;
            BR_CHECK_OK(br_mp_result_item(r, i, &d, &len));
            int64_t v;
            memcpy(&v, d, 8);
            BR_CHECK_EQ(v, (int64_t)i * 20);
        }
        br_mp_result_free(r);
    }
    in[7] = 9; /* one input fails: map reports it */
    br_mp_result *r;
    BR_CHECK_ERR(br_mp_pool_map(&r, pool, fail_odd, in, N, sizeof in[0], 10), BR_ERANGE);
    const void *d;
    size_t len;
    BR_CHECK_ERR(br_mp_result_item(r, 7, &d, &len), BR_ERANGE);
    BR_CHECK(d && strcmp(d, "odd 9") == 0);
    BR_CHECK_EQ(br_mp_result_successful(r), 0);
    br_mp_result_free(r);
    BR_CHECK_OK(br_mp_pool_close(pool));
    BR_CHECK_OK(br_mp_pool_join(pool));
    BR_CHECK_OK(br_mp_pool_free(pool));
}

/* A chunk (chunksize > 1) runs as one task and comes back as one result: every value in
 * its place, an uneven last chunk, a chunksize larger than the input (one chunk), no
 * input at all, and a failure inside a chunk: that input reports its code and message,
 * the inputs after it in its chunk were not run (BR_ECANCELED, as Python's chunk stops
 * at its first exception), the other chunks ran, and get reports the first failed
 * input in input order. */
static void mp_map_chunks(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_mp_pool *pool;
    BR_CHECK_OK(pp_mp_new(&pool, &(br_mp_pool_opts){.processes = 2}));
    enum { N = 103 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = 2 * i;
    size_t chunks[] = {2, 5, 10, 102, 103, 1000};
    for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
        br_mp_result *r;
        BR_CHECK_OK(br_mp_pool_map(&r, pool, fail_odd, in, N, sizeof in[0], chunks[k]));
        BR_CHECK_EQ(br_mp_result_count(r), N);
        BR_CHECK_EQ(br_mp_result_successful(r), 1);
        for (size_t i = 0; i < N; i++) {
            const void *d;
            size_t len;
            int64_t v;
            BR_CHECK_OK(br_mp_result_item(r, i, &d, &len));
            BR_CHECK_EQ(len, sizeof v);
            memcpy(&v, d, sizeof v);
            BR_CHECK_EQ(v, (int64_t)i * 20);
        }
        BR_CHECK_ERR(br_mp_result_item(r, N, NULL, NULL), BR_EINVAL);
        br_mp_result_free(r);
    }
    /* no input */
    br_mp_result *r;
    BR_CHECK_OK(br_mp_pool_map(&r, pool, fail_odd, in, 0, sizeof in[0], 4));
    BR_CHECK_EQ(br_mp_result_count(r), 0);
    BR_CHECK(br_mp_result_ready(r));
    BR_CHECK_EQ(br_mp_result_successful(r), 1);
    br_mp_result_free(r);
    /* failures in chunks 2 (inputs 10..14) and 5 (25..29), chunksize 5 */
    in[13] = 13;
    in[27] = 27;
    BR_CHECK_ERR(br_mp_pool_map(&r, pool, fail_odd, in, N, sizeof in[0], 5), BR_ERANGE);
    BR_CHECK_EQ(br_mp_result_successful(r), 0);
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        int rc = br_mp_result_item(r, i, &d, &len);
        if (i == 13 || i == 27) {
            BR_CHECK_EQ(rc, BR_ERANGE);
            char want[16];
            snprintf(want, sizeof want, "odd %d", (int)i);
            BR_CHECK(d && len == strlen(want) + 1 && strcmp(d, want) == 0);
        } else if (i == 14 || i == 28 || i == 29) {
            BR_CHECK_EQ(rc, BR_ECANCELED); /* not run: its chunk stopped */
            BR_CHECK(d && strstr(d, "not run") != NULL);
        } else {
            BR_CHECK_OK(rc);
            int64_t v;
            memcpy(&v, d, sizeof v);
            BR_CHECK_EQ(v, (int64_t)i * 20);
        }
    }
    br_mp_result_free(r);
    /* chunksize 50: input 1 stops chunk 0 (27 in it is not run), 61 fails in chunk 1 */
    in[13] = 26;
    in[1] = 1;
    in[61] = 61;
    BR_CHECK_ERR(br_mp_pool_map(&r, pool, fail_odd, in, N, sizeof in[0], 50), BR_ERANGE);
    const void *d;
    BR_CHECK_ERR(br_mp_result_item(r, 1, &d, NULL), BR_ERANGE);
    BR_CHECK(d && strcmp(d, "odd 1") == 0);
    BR_CHECK_ERR(br_mp_result_item(r, 27, NULL, NULL), BR_ECANCELED);
    BR_CHECK_ERR(br_mp_result_item(r, 49, NULL, NULL), BR_ECANCELED);
    BR_CHECK_OK(br_mp_result_item(r, 50, NULL, NULL));
    BR_CHECK_ERR(br_mp_result_item(r, 61, &d, NULL), BR_ERANGE);
    BR_CHECK(d && strcmp(d, "odd 61") == 0);
    BR_CHECK_ERR(br_mp_result_item(r, 62, NULL, NULL), BR_ECANCELED);
    BR_CHECK_OK(br_mp_result_item(r, 100, NULL, NULL));
    br_mp_result_free(r);
    BR_CHECK_OK(br_mp_pool_close(pool));
    BR_CHECK_OK(br_mp_pool_join(pool));
    BR_CHECK_OK(br_mp_pool_free(pool));
    nothing_left(b);
}

/* A worker that dies inside a chunk fails that chunk whole: each of its inputs reports
 * BR_EWORKERDIED and the worker's end (those before the death too: their results died
 * with it); the other chunks deliver, and the pool goes on with a replacement. */
static void mp_map_chunk_worker_dies(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_mp_pool *pool;
    BR_CHECK_OK(pp_mp_new(&pool, &(br_mp_pool_opts){.processes = 2}));
    enum { N = 20 };
    int64_t in[N] = {0};
    in[7] = DIE_KILL; /* chunk 1: inputs 5..9 */
    br_mp_result *r;
    BR_CHECK_ERR(br_mp_pool_map(&r, pool, die_task, in, N, sizeof in[0], 5), BR_EWORKERDIED);
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t len;
        int rc = br_mp_result_item(r, i, &d, &len);
        if (i >= 5 && i < 10) {
            BR_CHECK_EQ(rc, BR_EWORKERDIED);
            BR_CHECK(d && strstr(d, "killed by signal 9") != NULL);
        } else {
            BR_CHECK_OK(rc);
            BR_CHECK_EQ(len, 0);
        }
    }
    br_mp_result_free(r);
    in[7] = 0;
    BR_CHECK_OK(br_mp_pool_map(&r, pool, die_task, in, N, sizeof in[0], 5));
    br_mp_result_free(r);
    BR_CHECK_OK(br_mp_pool_close(pool));
    BR_CHECK_OK(br_mp_pool_join(pool));
    BR_CHECK_OK(br_mp_pool_free(pool));
    nothing_left(b);
}

/* imap and imap_unordered with chunks: imap gives every input in input order, a failed
 * one with its code while the iteration goes on; imap_unordered gives every input
 * exactly once, a chunk's inputs together and in order; no input is BR_EOF at once. */
static void mp_imap_chunks(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_mp_pool *pool;
    BR_CHECK_OK(pp_mp_new(&pool, &(br_mp_pool_opts){.processes = 2}));
    enum { N = 97, CS = 4 };
    int64_t in[N];
    for (int i = 0; i < N; i++)
        in[i] = 2 * i;
    in[21] = 21; /* chunk 5 (inputs 20..23): 22 and 23 are not run */
    br_mp_iter *it;
    BR_CHECK_OK(br_mp_pool_imap(&it, pool, fail_odd, in, N, sizeof in[0], CS));
    for (size_t i = 0; i < N; i++) {
        const void *d;
        size_t len, idx = SIZE_MAX;
        int rc = br_mp_iter_next(it, br_test_hang_guard(), &d, &len, &idx);
        BR_CHECK_EQ(idx, i);
        if (i == 21) {
            BR_CHECK_EQ(rc, BR_ERANGE);
            BR_CHECK(d && strcmp(d, "odd 21") == 0);
        } else if (i == 22 || i == 23) {
            BR_CHECK_EQ(rc, BR_ECANCELED);
        } else {
            BR_CHECK_OK(rc);
            int64_t v;
            memcpy(&v, d, sizeof v);
            BR_CHECK_EQ(v, (int64_t)i * 20);
        }
    }
    BR_CHECK_ERR(br_mp_iter_next(it, br_test_hang_guard(), NULL, NULL, NULL), BR_EOF);
    br_mp_iter_free(it);
    in[21] = 42;
    for (int pass = 0; pass < 2; pass++) {
        size_t cs = pass == 0 ? CS : 1000; /* 1000: one chunk of them all */
        BR_CHECK_OK(br_mp_pool_imap_unordered(&it, pool, fail_odd, in, N, sizeof in[0], cs));
        int seen[N] = {0};
        size_t prev = SIZE_MAX;
        for (size_t i = 0; i < N; i++) {
            const void *d;
            size_t len, idx = SIZE_MAX;
            BR_CHECK_OK(br_mp_iter_next(it, br_test_hang_guard(), &d, &len, &idx));
            BR_CHECK(idx < N);
            seen[idx]++;
            if (idx % cs != 0)
                BR_CHECK_EQ(prev, idx - 1); /* a chunk's inputs together, in order */
            prev = idx;
            int64_t v;
            memcpy(&v, d, sizeof v);
            BR_CHECK_EQ(v, (int64_t)idx * 20);
        }
        for (size_t i = 0; i < N; i++)
            BR_CHECK_EQ(seen[i], 1);
        BR_CHECK_ERR(br_mp_iter_next(it, br_test_hang_guard(), NULL, NULL, NULL), BR_EOF);
        br_mp_iter_free(it);
    }
    BR_CHECK_OK(br_mp_pool_imap(&it, pool, fail_odd, in, 0, sizeof in[0], CS));
    BR_CHECK_ERR(br_mp_iter_next(it, br_test_hang_guard(), NULL, NULL, NULL), BR_EOF);
    br_mp_iter_free(it);
    BR_CHECK_OK(br_mp_pool_imap_unordered(&it, pool, fail_odd, in, 0, sizeof in[0], CS));
    BR_CHECK_ERR(br_mp_iter_next(it, br_test_hang_guard(), NULL, NULL, NULL), BR_EOF);
    br_mp_iter_free(it);
    BR_CHECK_OK(br_mp_pool_close(pool));
    BR_CHECK_OK(br_mp_pool_join(pool));
    BR_CHECK_OK(br_mp_pool_free(pool));
    nothing_left(b);
}

/* imap gives input order; imap_unordered completion order. One worker with prefetch
 * runs the tasks one after another in input order, so completion order is input order
 * there: two workers, and sleeps that make the order different are needed to see the
 * difference; the check is on the order the results report (their own sleeps), never
 * on time. */
static void mp_imap_orders(void **state) {
    (void)state;
    baseline b = warm_baseline();
    br_mp_pool *pool;
    BR_CHECK_OK(pp_mp_new(&pool, &(br_mp_pool_opts){.processes = 3}));
    int64_t ms[] = {300, 1, 100};
    br_mp_iter *it;
    BR_CHECK_OK(br_mp_pool_imap(&it, pool, sleep_task, ms, 3, sizeof ms[0], 1));
    for (size_t i = 0; i < 3; i++) {
        const void *d;
        size_t len, idx;
        BR_CHECK_OK(br_mp_iter_next(it, br_test_hang_guard(), &d, &len, &idx));
        BR_CHECK_EQ(idx, i);
        int64_t v;
        memcpy(&v, d, 8);
        BR_CHECK_EQ(v, ms[i]);
    }
    BR_CHECK_ERR(br_mp_iter_next(it, br_test_hang_guard(), NULL, NULL, NULL), BR_EOF);
    br_mp_iter_free(it);
    /* unordered: each result comes as it completes; the indices are a permutation and
     * every result matches its input */
    BR_CHECK_OK(br_mp_pool_imap_unordered(&it, pool, sleep_task, ms, 3, sizeof ms[0], 1));
    int seen[3] = {0};
    size_t order[3];
    for (size_t i = 0; i < 3; i++) {
        const void *d;
        size_t len, idx;
        BR_CHECK_OK(br_mp_iter_next(it, br_test_hang_guard(), &d, &len, &idx));
        BR_CHECK(idx < 3);
        seen[idx]++;
        order[i] = idx;
        int64_t v;
        memcpy(&v, d, 8);
        BR_CHECK_EQ(v, ms[idx]);
    }
    BR_CHECK(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    BR_CHECK_ERR(br_mp_iter_next(it, br_test_hang_guard(), NULL, NULL, NULL), BR_EOF);
    br_mp_iter_free(it);
    (void)order;
    BR_CHECK_OK(br_mp_pool_terminate(pool));
    BR_CHECK_OK(br_mp_pool_join(pool));
    BR_CHECK_OK(br_mp_pool_free(pool));
    nothing_left(b);
}

/* --- the suite's stresses at the default prefetch ----------------------------------------- */

/* The conformance suite runs on pools with prefetch 1 (the including file's
 * conformance_make); its stresses run here again with tasks handed to workers ahead of
 * time, as a pool made with default options does. */
static void stress_default_prefetch(void **state) {
    pp_conformance_prefetch = 0;
    conformance_stress(state);
}

static void batch_stress_default_prefetch(void **state) {
    pp_conformance_prefetch = 0;
    conformance_batch_stress(state);
}

#define PP_CASES \
    cmocka_unit_test(worker_sigkill),\
             cmocka_unit_test(worker_segfault), cmocka_unit_test(worker_abort),\
             cmocka_unit_test(worker_killed_from_outside),\
             cmocka_unit_test(payload_small_sizes), cmocka_unit_test(payload_1mib),\
             cmocka_unit_test(payload_64mib), cmocka_unit_test(return_ptr_refused),\
             cmocka_unit_test(readme_both_pools), cmocka_unit_test(mixed_wait_as_completed),\
             cmocka_unit_test(request_cancel_running), cmocka_unit_test(kill_on_cancel),\
             cmocka_unit_test(task_deadline), cmocka_unit_test(shutdown_cancel_futures),\
             cmocka_unit_test(shutdown_wait_finishes_all), cmocka_unit_test(terminate_kills),\
             cmocka_unit_test(map_spreads_over_workers),\
             cmocka_unit_test(initializer_breaks), cmocka_unit_test(max_tasks_per_child),\
             cmocka_unit_test(bad_options), cmocka_unit_test(mp_apply_async_callbacks),\
             cmocka_unit_test(mp_map), cmocka_unit_test(mp_imap_orders),\
             cmocka_unit_test(mp_map_chunks), cmocka_unit_test(mp_imap_chunks),\
             cmocka_unit_test(mp_map_chunk_worker_dies),\
             cmocka_unit_test(stress_default_prefetch),\
             cmocka_unit_test(batch_stress_default_prefetch)

#endif
