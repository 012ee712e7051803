/* The MPI executor's spawn launch (braid/mpi.h, opts.spawn): the program runs alone, as
 * an MPI singleton (`mpi_spawn <name>`, no mpirun: tests/mpi/tests.cmake), and its
 * executor starts 2 worker processes of this binary with MPI_Comm_spawn; the same
 * br_mpi_main at the top of main diverts them into the worker loop.
 *
 *   conformance      the executor conformance suite, every test in one process: the
 *                    first executor spawns the 2 workers, every later one (the suite
 *                    makes one per test) runs on them (spawn asked again is ignored)
 *   spawn_map        before: one rank (a singleton); after: 3, the 2 workers spawned
 *                    (their pids not ours, their parent's pid ours through
 *                    br_mpi_root_pid); br_mpi_main of a spawned worker said rank 1 and
 *                    2; br_map of 100,000 tiny tasks with the count and sum checked; a
 *                    big argument and result (out-of-line messages) over the spawned
 *                    ranks byte-exact
 *   spawn_rank_killed
 *                    a spawned worker SIGKILLs itself mid-task: Open MPI ends the
 *                    spawned job (both workers) and leaves rank 0 running; braid sees
 *                    it (the workers' pids) and fails the task, and the one on the
 *                    other worker, with BR_EWORKERDIED and "rank R: the worker died
 *                    ..."; then submit and a new executor are BR_EBROKEN, free and
 *                    br_mpi_finalize end cleanly, and neither worker is left running
 *   spawn_big_result_killed
 *                    a worker dies after rank 0 received a big result's header and
 *                    before its bytes (the test hook br__mpi_test_die_before_rdata,
 *                    mpi/hooks.h): rank 0, waiting for the bytes, still sees the death;
 *                    the task fails with BR_EWORKERDIED and "rank 1: the worker died",
 *                    as the one queued behind it; then as spawn_rank_killed (the
 *                    pending receive's buffer freed, not leaked: ASan checks)
 *   spawn_fails      a spawn Open MPI refuses (1,024 workers without oversubscription:
 *                    the test hook br__mpi_test_spawn_no_oversubscribe) is BR_EIO from
 *                    br_mpi_executor_new, braid's line on stderr says so, still a
 *                    singleton, no descriptor more and no process started; a later
 *                    spawn works, or (Open MPI 4.1.4: its runtime ends after a failed
 *                    singleton spawn) is BR_EIO too; finalize ends cleanly
 *
 * As root, Open MPI's runtime (started by the singleton to spawn) needs
 * OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1: tests.cmake sets them.
 *
 * braid-test-timeout: 180
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <braid/mpi.h>

#include "mpi/hooks.h"
#include "mpi_util.h"

#include <dirent.h>
#include <fcntl.h>


enum { SPAWN = 2 };

static int mpi_root_pid(void) { return br_mpi_root_pid(); }
#define getppid() mpi_root_pid()

static int conformance_make(br_executor **out, int max_workers) {
    return br_mpi_executor_new(out, &(br_mpi_executor_opts){.max_workers = max_workers,
                                                            .prefetch = 1,
                                                            .plain_messages = true,
                                                            .spawn = SPAWN});
}
#define CONFORMANCE_SHARED_MEMORY 0
#include "executor/conformance_executor.h"

/* "rank pid parent": the worker's rank, its pid, and the pid it knows as rank 0's */
static int who_task(br_task *t) {
    int64_t v[3] = {br_mpi_rank(), br_getpid(), br_mpi_root_pid()};
    return br_task_return(t, v, sizeof v);
}

static int sum_bytes_task(br_task *t) {
    size_t len = 0;
    const unsigned char *a = br_task_arg(t, &len);
    unsigned char *r = malloc(len);
    if (r == NULL)
        return BR_ENOMEM;
    for (size_t i = 0; i < len; i++)
        r[i] = (unsigned char)~a[i];
    int rc = br_task_return(t, r, len);
    free(r);
    return rc;
}

static void spawn_map(void **state) {
    (void)state;
    BR_CHECK_EQ(br_mpi_size(), 1); /* a singleton */
    BR_CHECK_EQ(br_mpi_rank(), 0);
    br_executor *ex = NULL;
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = SPAWN}));
    BR_CHECK_EQ(br_mpi_size(), SPAWN + 1);
    BR_CHECK_EQ(br_executor_max_workers(ex), SPAWN);
    /* each worker: a process of its own, rank 1 or 2, knowing us as rank 0 */
    int seen = 0;
    for (int i = 0; i < 40 && seen != 6; i++) {
        br_future *f;
        BR_CHECK_OK(br_submit(ex, who_task, NULL, 0, &f));
        const void *data;
        size_t len;
        BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), &data, &len));
        BR_CHECK_EQ(len, 3 * sizeof(int64_t));
        int64_t v[3];
        memcpy(v, data, sizeof v);
        BR_CHECK(v[0] == 1 || v[0] == 2);
        BR_CHECK(v[1] != (int64_t)br_getpid());
        BR_CHECK_EQ(v[2], (int64_t)br_getpid());
        seen |= 1 << v[0];
        br_future_release(f);
    }
    /* 100,000 tiny tasks: every result at its index, the count and the sum */
    check_map(ex, (int32_t)br_test_scaled(100000, 10000), 0);
    /* a big argument and result (their own messages) */
    size_t len = (size_t)br_test_scaled(3 << 20, 256 << 10);
    unsigned char *a = malloc(len);
    BR_CHECK(a != NULL);
    for (size_t i = 0; i < len; i++)
        a[i] = (unsigned char)(i * 7 + (i >> 11));
    br_future *f;
    BR_CHECK_OK(br_submit(ex, sum_bytes_task, a, len, &f));
    const void *data;
    size_t rlen;
    BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), &data, &rlen));
    BR_CHECK_EQ(rlen, len);
    for (size_t i = 0; i < len; i++)
        if (((const unsigned char *)data)[i] != (unsigned char)~a[i])
            fail_msg("byte %zu differs", i);
    br_future_release(f);
    free(a);
    BR_CHECK_OK(br_executor_free(ex));
    /* the next executor runs on the same workers; it asks for more, which is ignored */
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = 5}));
    BR_CHECK_EQ(br_mpi_size(), SPAWN + 1);
    BR_CHECK_OK(br_submit(ex, who_task, NULL, 0, &f));
    BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), &data, &rlen));
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
}

/* The workers' pids, by rank (both ranks answer one of 40 tasks, or the test fails). */
static void worker_pids(br_executor *ex, int64_t pid[SPAWN + 1]) {
    for (int i = 0; i < 40 && (pid[1] == 0 || pid[2] == 0); i++) {
        br_future *f;
        BR_CHECK_OK(br_submit(ex, who_task, NULL, 0, &f));
        const void *data;
        size_t len;
        BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), &data, &len));
        int64_t v[3];
        memcpy(v, data, sizeof v);
        pid[v[0]] = v[1];
        br_future_release(f);
    }
    BR_CHECK(pid[1] > 0 && pid[2] > 0);
}

/* Waits until neither worker runs (they are Open MPI's daemon's children: gone once it
 * has reaped them). The guard is taken once: a deadline computed in the loop would never
 * pass. */
static void workers_gone(const int64_t pid[SPAWN + 1]) {
    int64_t guard = br_test_hang_guard();
    for (int r = 1; r <= SPAWN; r++)
        while (kill((pid_t)pid[r], 0) == 0) {
            BR_CHECK(br_now() < guard);
            usleep(10000);
        }
}

/* Sleeps until cancelled (a task on the rank that survives the kill a moment). */
static int sleep_task(br_task *t) {
    while (!br_task_cancelled(t))
        usleep(1000);
    return BR_ECANCELED;
}

static void spawn_rank_killed(void **state) {
    (void)state;
    br_executor *ex = NULL;
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = SPAWN}));
    int64_t pid[SPAWN + 1] = {0};
    worker_pids(ex, pid);
    br_future *f, *g;
    BR_CHECK_OK(br_submit(ex, kill_self_task, NULL, 0, &f));
    BR_CHECK_OK(br_submit(ex, sleep_task, NULL, 0, &g)); /* on the other rank, or queued */
    int code = 0;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(f, br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_EWORKERDIED);
    BR_CHECK(msg != NULL && strstr(msg, "the worker died") != NULL);
    BR_CHECK_OK(br_future_exception(g, br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_EWORKERDIED);
    br_future_release(f);
    br_future_release(g);
    BR_CHECK_ERR(br_submit(ex, tiny_task, &(int32_t){1}, sizeof(int32_t), &f), BR_EBROKEN);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_ERR(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = SPAWN}),
                 BR_EBROKEN);
    workers_gone(pid); /* Open MPI ended the spawned job */
    BR_CHECK_OK(br_mpi_finalize()); /* and MPI ends without them */
}

/* A 1 MiB result (its bytes a message of their own), whose worker dies after rank 0
 * received the result's header and before the bytes (the test hook, mpi/hooks.h). */
static int big_then_die_task(br_task *t) {
    br__mpi_test_die_before_rdata();
    size_t len = 1u << 20;
    unsigned char *r = malloc(len);
    if (r == NULL)
        return BR_ENOMEM;
    memset(r, 0x3c, len);
    int rc = br_task_return(t, r, len);
    free(r);
    return rc;
}

static void spawn_big_result_killed(void **state) {
    (void)state;
    br_executor *ex = NULL;
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = SPAWN}));
    int64_t pid[SPAWN + 1] = {0};
    worker_pids(ex, pid);
    BR_CHECK_OK(br_executor_free(ex));
    /* one slot: every task goes to rank 1 */
    BR_CHECK_OK(br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.max_workers = 1}));
    br_future *f, *g;
    BR_CHECK_OK(br_submit(ex, big_then_die_task, NULL, 0, &f));
    BR_CHECK_OK(br_submit(ex, sleep_task, NULL, 0, &g)); /* queued behind it on rank 1 */
    int code = 0, rank = -1;
    const char *msg = NULL;
    BR_CHECK_OK(br_future_exception(f, br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_EWORKERDIED);
    BR_CHECK(msg != NULL);
    BR_CHECK_EQ(sscanf(msg, "rank %d: the worker died", &rank), 1);
    BR_CHECK_EQ(rank, 1);
    BR_CHECK(strstr(msg, "the worker died") != NULL);
    BR_CHECK_OK(br_future_exception(g, br_test_hang_guard(), &code, &msg));
    BR_CHECK_EQ(code, BR_EWORKERDIED);
    br_future_release(f);
    br_future_release(g);
    BR_CHECK_ERR(br_submit(ex, tiny_task, &(int32_t){1}, sizeof(int32_t), &f), BR_EBROKEN);
    BR_CHECK_OK(br_executor_free(ex));
    BR_CHECK_ERR(br_mpi_executor_new(&ex, NULL), BR_EBROKEN);
    workers_gone(pid);
    BR_CHECK_OK(br_mpi_finalize());
}

/* This process's open descriptors. */
static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    BR_CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* This process's children that haven't exited (a zombie is not running): their pids,
 * at most cap; the count. */
static int running_children(int *pids, int cap) {
    DIR *d = opendir("/proc");
    BR_CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *fp = fopen(path, "re");
        if (fp == NULL)
            continue;
        size_t k = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[k] = '\0';
        const char *p = strrchr(buf, ')');
        char st = 0;
        int ppid = 0;
        if (p != NULL && sscanf(p + 1, " %c %d", &st, &ppid) == 2 && ppid == getpid() &&
            st != 'Z' && n < cap)
            pids[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static void spawn_fails(void **state) {
    (void)state;
    BR_CHECK_EQ(br_mpi_size(), 1); /* a singleton */
    /* Open MPI's runtime (orted) is this process's child already, from MPI_Init */
    int kids[64], nkids = running_children(kids, 64);
    int fds = count_fds();
    /* Open MPI's and braid's messages go to stderr: a file here, read back after */
    char path[] = "/tmp/braid-spawn-fails-XXXXXX";
    int tmp = mkostemp(path, O_CLOEXEC);
    BR_CHECK(tmp >= 0);
    unlink(path);
    fflush(stderr);
    int saved = fcntl(2, F_DUPFD_CLOEXEC, 0);
    BR_CHECK(saved >= 0);
    BR_CHECK(dup2(tmp, 2) == 2);
    /* more workers than any CI host has cores, without oversubscription: refused */
    br__mpi_test_spawn_no_oversubscribe(true);
    br_executor *ex = NULL;
    int rc = br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = 1024});
    br__mpi_test_spawn_no_oversubscribe(false);
    fflush(stderr);
    BR_CHECK(dup2(saved, 2) == 2);
    close(saved);
    char out[16384];
    ssize_t k = pread(tmp, out, sizeof out - 1, 0);
    close(tmp);
    out[k > 0 ? k : 0] = '\0';
    fprintf(stderr, "spawn_fails: the failed spawn's stderr:\n%s\n", out);
    BR_CHECK_ERR(rc, BR_EIO);
    BR_CHECK(ex == NULL);
    BR_CHECK_EQ(br_mpi_size(), 1); /* still alone */
    BR_CHECK(strstr(out, "braid: br_mpi_executor_new: MPI_Comm_spawn couldn't start 1024 "
                         "workers of ") != NULL);
    /* nothing left behind: no descriptor more, no process started (Open MPI's runtime
     * may have ended: fewer is fine). Open MPI's own threads may still be closing a
     * descriptor or reaping a child when the call returns, so each is waited for under
     * the hang guard, not read once. */
    int64_t guard = br_test_hang_guard();
    while (count_fds() > fds) {
        if (br_now() >= guard)
            fail_msg("the failed spawn left %d descriptors open", count_fds() - fds);
        usleep(10000);
    }
    for (;;) {
        int after[64], nafter = running_children(after, 64), stray = 0;
        for (int i = 0; i < nafter && stray == 0; i++) {
            bool known = false;
            for (int j = 0; j < nkids; j++)
                known = known || after[i] == kids[j];
            if (!known)
                stray = after[i];
        }
        if (stray == 0)
            break;
        if (br_now() >= guard)
            fail_msg("a process started by the failed spawn is running: pid %d", stray);
        usleep(10000);
    }
    /* A later spawn: Open MPI 4.1.4's runtime ends after a failed spawn in a singleton
     * (docs/mpi.md), and every later one is refused too (BR_EIO); one that works must
     * give working workers. */
    rc = br_mpi_executor_new(&ex, &(br_mpi_executor_opts){.spawn = SPAWN});
    fprintf(stderr, "spawn_fails: a later spawn: %s\n", br_err_name(rc));
    if (rc == 0) {
        BR_CHECK_EQ(br_mpi_size(), SPAWN + 1);
        check_map(ex, 1000, 0);
        BR_CHECK_OK(br_executor_free(ex));
    } else {
        BR_CHECK_ERR(rc, BR_EIO);
        BR_CHECK_EQ(br_mpi_size(), 1);
        BR_CHECK_ERR(br_mpi_executor_new(&ex, NULL), BR_ESTATE); /* no worker ranks */
    }
    BR_CHECK_OK(br_mpi_finalize());
}

int main(int argc, char **argv) {
    int rc = br_mpi_main(&argc, &argv); /* a spawned worker stays there */
    if (rc != 0) {
        fprintf(stderr, "br_mpi_main: %s\n", br_err_name(rc));
        return 2;
    }
    const struct CMUnitTest conformance[] = {BR_CONFORMANCE_TESTS};
    if (argc > 1 && strcmp(argv[1], "conformance") == 0)
        return br_test_main(conformance, sizeof conformance / sizeof conformance[0],
                            "mpi_spawn_conformance", 1, argv); /* all of them */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spawn_map),
        cmocka_unit_test(spawn_rank_killed),
        cmocka_unit_test(spawn_big_result_killed),
        cmocka_unit_test(spawn_fails),
    };
    return br_test_main(tests, sizeof tests / sizeof tests[0], __FILE__, argc, argv);
}
