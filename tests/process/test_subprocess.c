/* subprocess (braid/subprocess.h): br_run and br_popen against real programs every
 * Debian has (sh, cat, echo, sleep, true, false, env, pwd). Every test checks exact
 * bytes and codes, and ends with no fd of its own left open and no child left: every
 * one reaped by the watcher (waitpid(-1) answers ECHILD).
 * braid-test-timeout: 120 */
#include "harness.h"
#include "process/watch.h"

#include <braid/aio.h>
#include <braid/subprocess.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int fds_at_start;

/* Brings the watcher up (its epoll and eventfd stay) and counts fds after it. */
static void begin(void) {
    br_completed r;
    BR_CHECK_OK(br_run((const char *const[]){"true", NULL}, NULL, &r));
    br_completed_destroy(&r);
    fds_at_start = br_test_count_fds();
}

/* No child left (the watcher reaped them all) and no fd leaked. */
static void end(void) {
    br_test_wait_no_children();
    br_test_wait_fds(fds_at_start);
}

static void check_bytes(const char *got, size_t got_len, const char *want) {
    BR_CHECK(got != NULL);
    if (got_len != strlen(want) || memcmp(got, want, got_len) != 0)
        fail_msg("got \"%.*s\" (%zu bytes), want \"%s\"", (int)got_len, got, got_len, want);
    BR_CHECK_EQ(got[got_len], '\0');
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static void echo_captured(void **state) {
    (void)state;
    begin();
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("echo", "hello  world", "é"),
                       &(br_subprocess_opts){.capture_output = true}, &r));
    BR_CHECK_EQ(r.returncode, 0);
    BR_CHECK(r.pid > 0);
    check_bytes(r.out, r.out_len, "hello  world é\n");
    check_bytes(r.err, r.err_len, ""); /* captured, and empty: not NULL */
    br_completed_destroy(&r);
    BR_CHECK(r.out == NULL && r.err == NULL);
    br_completed_destroy(&r); /* twice is harmless */

    /* Only stdout captured: stderr isn't (NULL). */
    BR_CHECK_OK(br_run(ARGV("echo", "x"), &(br_subprocess_opts){.out = BR_STDIO_PIPE}, &r));
    check_bytes(r.out, r.out_len, "x\n");
    BR_CHECK(r.err == NULL && r.err_len == 0);
    br_completed_destroy(&r);
    /* Nothing captured, stdout to /dev/null. */
    BR_CHECK_OK(br_run(ARGV("echo", "x"), &(br_subprocess_opts){.out = BR_STDIO_DEVNULL},
                       &r));
    BR_CHECK(r.out == NULL && r.err == NULL);
    br_completed_destroy(&r);
    end();
}

static void roundtrip(size_t n) {
    char *in = malloc(n + 1);
    BR_CHECK(in != NULL);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i * 7 + i / 251); /* every byte value, NUL included */
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("cat"),
                       &(br_subprocess_opts){.input = in, .input_len = n,
                                             .out = BR_STDIO_PIPE},
                       &r));
    BR_CHECK_EQ(r.returncode, 0);
    BR_CHECK_EQ(r.out_len, n);
    BR_CHECK(r.out != NULL);
    BR_CHECK(memcmp(r.out, in, n) == 0);
    br_completed_destroy(&r);
    free(in);
}

/* stdin to cat and back, byte-exact: 0 bytes (an empty stdin, closed at once), 1 byte,
 * and 4 MiB: far more than both pipes hold at once, so cat blocks writing while we
 * still write; only a pump that reads while it writes finishes. */
static void input_roundtrip(void **state) {
    (void)state;
    begin();
    roundtrip(0);
    roundtrip(1);
    roundtrip((size_t)4 << 20);
    end();
}

static void stderr_separate_and_merged(void **state) {
    (void)state;
    begin();
    br_completed r;
    const char *cmd = "echo out; echo err >&2; echo out2";
    BR_CHECK_OK(br_run(ARGV(cmd),
                       &(br_subprocess_opts){.shell = true, .capture_output = true}, &r));
    check_bytes(r.out, r.out_len, "out\nout2\n");
    check_bytes(r.err, r.err_len, "err\n");
    br_completed_destroy(&r);
    /* stderr=STDOUT: one stream, in the order written. */
    BR_CHECK_OK(br_run(ARGV(cmd),
                       &(br_subprocess_opts){.shell = true, .out = BR_STDIO_PIPE,
                                             .err = BR_STDIO_STDOUT},
                       &r));
    check_bytes(r.out, r.out_len, "out\nerr\nout2\n");
    BR_CHECK(r.err == NULL);
    br_completed_destroy(&r);
    /* stderr alone captured, stdout discarded. */
    BR_CHECK_OK(br_run(ARGV(cmd),
                       &(br_subprocess_opts){.shell = true, .out = BR_STDIO_DEVNULL,
                                             .err = BR_STDIO_PIPE},
                       &r));
    BR_CHECK(r.out == NULL);
    check_bytes(r.err, r.err_len, "err\n");
    br_completed_destroy(&r);
    end();
}

static int run_rc(const char *const *argv, bool shell) {
    br_completed r;
    BR_CHECK_OK(br_run(argv, &(br_subprocess_opts){.shell = shell}, &r));
    int rc = r.returncode;
    br_completed_destroy(&r);
    return rc;
}

static void returncodes(void **state) {
    (void)state;
    begin();
    BR_CHECK_EQ(run_rc(ARGV("true"), false), 0);
    BR_CHECK_EQ(run_rc(ARGV("false"), false), 1);
    BR_CHECK_EQ(run_rc(ARGV("exit 3"), true), 3);
    BR_CHECK_EQ(run_rc(ARGV("exit 255"), true), 255);
    BR_CHECK_EQ(run_rc(ARGV("kill -TERM $$"), true), -SIGTERM);
    BR_CHECK_EQ(run_rc(ARGV("kill -KILL $$"), true), -SIGKILL);
    /* The shell's extra arguments are its $0, $1 (Python's shell=True with a list). */
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("echo \"$0:$1\"", "zero", "one"),
                       &(br_subprocess_opts){.shell = true, .out = BR_STDIO_PIPE}, &r));
    check_bytes(r.out, r.out_len, "zero:one\n");
    br_completed_destroy(&r);
    /* Without shell, a command line is one program name: no such program. */
    BR_CHECK_ERR(br_run(ARGV("exit 3"), NULL, &r), BR_ENOENT);
    br_completed_destroy(&r);
    end();
}

/* check: a non-zero returncode is BR_EFAILED, with the returncode and output kept. */
static void check_fails(void **state) {
    (void)state;
    begin();
    br_completed r;
    BR_CHECK_ERR(br_run(ARGV("echo partial; echo why >&2; exit 3"),
                        &(br_subprocess_opts){.shell = true, .check = true,
                                              .capture_output = true},
                        &r),
                 BR_EFAILED);
    BR_CHECK_EQ(r.returncode, 3);
    check_bytes(r.out, r.out_len, "partial\n");
    check_bytes(r.err, r.err_len, "why\n");
    br_completed_destroy(&r);
    BR_CHECK_ERR(br_run(ARGV("kill -TERM $$"),
                        &(br_subprocess_opts){.shell = true, .check = true}, &r),
                 BR_EFAILED);
    BR_CHECK_EQ(r.returncode, -SIGTERM);
    br_completed_destroy(&r);
    BR_CHECK_OK(br_run(ARGV("true"), &(br_subprocess_opts){.check = true}, &r));
    BR_CHECK_EQ(r.returncode, 0);
    br_completed_destroy(&r);
    end();
}

/* A deadline kills the child (SIGKILL), reaps it, and keeps what it wrote. */
static void deadline_kills(void **state) {
    (void)state;
    begin();
    br_completed r;
    BR_CHECK_ERR(br_run(ARGV("sleep", "30"),
                        &(br_subprocess_opts){.deadline = br_deadline_after(50 * BR_MSEC)},
                        &r),
                 BR_ETIMEDOUT);
    BR_CHECK_EQ(r.returncode, -SIGKILL);
    BR_CHECK(r.pid > 0);
    br_completed_destroy(&r);
    BR_CHECK_EQ(br__child_watch_count(), 0); /* killed and reaped before br_run returned */
    errno = 0;
    BR_CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD);

    /* What was written before the deadline is kept. The deadline may come before the
     * child has written anything on a loaded machine, so it grows until the output is
     * there (every try must time out and hold a prefix of it). */
    for (int64_t ms = 50;; ms *= 2) {
        BR_CHECK(ms < 60000);
        BR_CHECK_ERR(br_run(ARGV("echo before; exec sleep 30"),
                            &(br_subprocess_opts){.shell = true, .capture_output = true,
                                                  .deadline = br_deadline_after(ms * BR_MSEC)},
                            &r),
                     BR_ETIMEDOUT);
        BR_CHECK_EQ(r.returncode, -SIGKILL);
        BR_CHECK(r.out != NULL && r.out_len <= 7 && memcmp(r.out, "before\n", r.out_len) == 0);
        size_t got = r.out_len;
        br_completed_destroy(&r);
        if (got == 7)
            break;
    }
    /* A deadline already past: the child is started, then killed at once. */
    BR_CHECK_ERR(br_run(ARGV("sleep", "30"), &(br_subprocess_opts){.deadline = 1}, &r),
                 BR_ETIMEDOUT);
    br_completed_destroy(&r);
    end();
}

/* A deadline doesn't wait for a grandchild that still holds the pipes: the shell is
 * killed, its background cat keeps stdout open (and lives until the test closes the
 * gate cat reads), and br_run returns with what the shell wrote. */
static void deadline_ignores_grandchild(void **state) {
    (void)state;
    begin();
    for (int64_t ms = 50;; ms *= 2) {
        BR_CHECK(ms < 60000);
        int gate[2];
        BR_CHECK_OK(pipe2(gate, O_CLOEXEC));
        br_completed r;
        /* A background job's stdin is /dev/null: cat reads the gate through fd 3. */
        BR_CHECK_ERR(br_run(ARGV("exec 3<&0; cat <&3 & echo started; wait"),
                            &(br_subprocess_opts){.shell = true, .in = BR_STDIO_FD,
                                                  .in_fd = gate[0], .out = BR_STDIO_PIPE,
                                                  .deadline = br_deadline_after(ms * BR_MSEC)},
                            &r),
                     BR_ETIMEDOUT);
        BR_CHECK_EQ(r.returncode, -SIGKILL);
        bool started = r.out_len == 8 && memcmp(r.out, "started\n", 8) == 0;
        BR_CHECK(started || r.out_len == 0);
        br_completed_destroy(&r);
        close(gate[1]); /* the orphaned cat reads EOF and ends */
        close(gate[0]);
        if (started)
            break;
    }
    end();
}

static void cwd_and_env(void **state) {
    (void)state;
    begin();
    char dir[] = "/tmp/braid-subp-XXXXXX";
    BR_CHECK(mkdtemp(dir) != NULL);
    char *real = realpath(dir, NULL);
    BR_CHECK(real != NULL);
    char want[4200];
    snprintf(want, sizeof want, "%s\n", real);
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("pwd"), &(br_subprocess_opts){.cwd = dir, .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, want);
    br_completed_destroy(&r);
    /* A relative program path is relative to cwd (the chdir comes first). */
    BR_CHECK_OK(br_run(ARGV("../../bin/echo", "rel"),
                       &(br_subprocess_opts){.cwd = "/usr/lib", .out = BR_STDIO_PIPE}, &r));
    check_bytes(r.out, r.out_len, "rel\n");
    br_completed_destroy(&r);
    /* A missing cwd. */
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.cwd = "/nonexistent/braid"}, &r),
                 BR_ENOENT);
    br_completed_destroy(&r);
    BR_CHECK_OK(rmdir(dir));
    free(real);

    /* env replaces the environment: exactly what was given. With no PATH there, the
     * program is looked up in /bin:/usr/bin. */
    BR_CHECK_OK(br_run(ARGV("env"),
                       &(br_subprocess_opts){.env = ARGV("FOO=bar", "EMPTY="),
                                             .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, "FOO=bar\nEMPTY=\n");
    br_completed_destroy(&r);
    /* env_add: the parent's environment, with entries added or replaced. */
    BR_CHECK_OK(setenv("BRAID_SUBP_KEEP", "kept", 1));
    BR_CHECK_OK(setenv("BRAID_SUBP_SWAP", "old", 1));
    BR_CHECK_OK(br_run(ARGV("env"),
                       &(br_subprocess_opts){.env = ARGV("BRAID_SUBP_SWAP=new",
                                                         "BRAID_SUBP_NEW=1"),
                                             .env_add = true, .out = BR_STDIO_PIPE},
                       &r));
    BR_CHECK(strstr(r.out, "\nBRAID_SUBP_KEEP=kept\n") != NULL);
    BR_CHECK(strstr(r.out, "\nBRAID_SUBP_SWAP=new\n") != NULL);
    BR_CHECK(strstr(r.out, "BRAID_SUBP_SWAP=old") == NULL);
    BR_CHECK(strstr(r.out, "\nBRAID_SUBP_NEW=1\n") != NULL);
    br_completed_destroy(&r);
    /* The child's PATH is searched, not the parent's (as Python does). */
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.env = ARGV("PATH=/nonexistent")},
                        &r),
                 BR_ENOENT);
    br_completed_destroy(&r);
    BR_CHECK_OK(br_run(ARGV("true"),
                       &(br_subprocess_opts){.env = ARGV("PATH=/nonexistent::/usr/bin:/bin")},
                       &r));
    br_completed_destroy(&r);
    end();
}

static void missing_and_not_executable(void **state) {
    (void)state;
    begin();
    br_completed r;
    BR_CHECK_ERR(br_run(ARGV("braid-no-such-command-3f9a"), NULL, &r), BR_ENOENT);
    BR_CHECK(r.pid == 0 && r.out == NULL);
    br_completed_destroy(&r);
    BR_CHECK_ERR(br_run(ARGV("/nonexistent/braid"), &(br_subprocess_opts){.capture_output = true},
                        &r),
                 BR_ENOENT);
    br_completed_destroy(&r);
    BR_CHECK_ERR(br_run(ARGV(""), NULL, &r), BR_ENOENT);
    br_completed_destroy(&r);
    /* A file without an execute bit: by path, and found through PATH. */
    char dir[] = "/tmp/braid-subp-XXXXXX";
    BR_CHECK(mkdtemp(dir) != NULL);
    char file[64];
    snprintf(file, sizeof file, "%s/prog", dir);
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    BR_CHECK(fd >= 0);
    BR_CHECK_EQ(write(fd, "#!/bin/sh\n", 10), 10);
    close(fd);
    BR_CHECK_ERR(br_run(ARGV(file), NULL, &r), BR_EACCES);
    br_completed_destroy(&r);
    char path[80];
    snprintf(path, sizeof path, "PATH=%s", dir);
    BR_CHECK_ERR(br_run(ARGV("prog"), &(br_subprocess_opts){.env = ARGV(path)}, &r),
                 BR_EACCES);
    br_completed_destroy(&r);
    /* A directory isn't a program either. */
    BR_CHECK_ERR(br_run(ARGV(dir), NULL, &r), BR_EACCES);
    br_completed_destroy(&r);
    /* Made executable, it runs. */
    BR_CHECK_OK(chmod(file, 0755));
    BR_CHECK_OK(br_run(ARGV(file), NULL, &r));
    BR_CHECK_EQ(r.returncode, 0);
    br_completed_destroy(&r);
    BR_CHECK_OK(unlink(file));
    BR_CHECK_OK(rmdir(dir));
    /* br_popen_start says the same at the start, and leaves no handle. */
    br_popen *p = (br_popen *)1;
    BR_CHECK_ERR(br_popen_start(&p, ARGV("braid-no-such-command-3f9a"),
                                &(br_subprocess_opts){.in = BR_STDIO_PIPE,
                                                      .capture_output = true}),
                 BR_ENOENT);
    BR_CHECK(p == NULL);
    end();
}

static ssize_t read_full(int fd, char *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Popen: talk to cat through its pipes; poll while it runs and after. */
static void popen_pipes(void **state) {
    (void)state;
    begin();
    br_popen *p;
    BR_CHECK_OK(br_popen_start(&p, ARGV("cat"),
                               &(br_subprocess_opts){.in = BR_STDIO_PIPE,
                                                     .out = BR_STDIO_PIPE}));
    BR_CHECK(br_popen_pid(p) > 0);
    int in = br_popen_fd(p, 0), out = br_popen_fd(p, 1);
    BR_CHECK(in >= 3 && out >= 3);
    BR_CHECK_EQ(br_popen_fd(p, 2), -1);
    BR_CHECK_EQ(br_popen_fd(p, 3), -1);
    BR_CHECK(fcntl(in, F_GETFD) & FD_CLOEXEC);
    for (int i = 0; i < 3; i++) {
        char msg[16], back[16];
        int len = snprintf(msg, sizeof msg, "ping %d\n", i);
        BR_CHECK_EQ(write(in, msg, (size_t)len), len);
        BR_CHECK_EQ(read_full(out, back, (size_t)len), len);
        BR_CHECK(memcmp(back, msg, (size_t)len) == 0);
    }
    int rc = 1234;
    BR_CHECK_ERR(br_popen_poll(p, &rc), BR_ETIMEDOUT); /* cat waits for its input */
    BR_CHECK_EQ(rc, 1234);
    BR_CHECK_ERR(br_popen_wait(p, BR_NOWAIT, &rc), BR_ETIMEDOUT);
    BR_CHECK_OK(br_popen_close_fd(p, 0)); /* EOF: cat ends */
    BR_CHECK_EQ(br_popen_fd(p, 0), -1);
    BR_CHECK_OK(br_popen_close_fd(p, 0)); /* again: nothing to close */
    BR_CHECK_OK(br_popen_wait(p, br_test_hang_guard(), &rc));
    BR_CHECK_EQ(rc, 0);
    rc = 1234;
    BR_CHECK_OK(br_popen_poll(p, &rc));
    BR_CHECK_EQ(rc, 0);
    char c;
    BR_CHECK_EQ(read(out, &c, 1), 0); /* its stdout is at EOF */
    BR_CHECK_OK(br_popen_terminate(p)); /* ended: nothing to do */
    BR_CHECK_OK(br_popen_free(p));
    end();
}

/* wait with a deadline, then terminate (-15), kill (-9). */
static void popen_wait_terminate_kill(void **state) {
    (void)state;
    begin();
    int sigs[] = {SIGTERM, SIGKILL, SIGINT};
    for (int i = 0; i < 3; i++) {
        br_popen *p;
        BR_CHECK_OK(br_popen_start(&p, ARGV("sleep", "30"), NULL));
        int rc = 1234;
        BR_CHECK_ERR(br_popen_wait(p, br_deadline_after(20 * BR_MSEC), &rc), BR_ETIMEDOUT);
        BR_CHECK_EQ(rc, 1234);
        if (sigs[i] == SIGTERM)
            BR_CHECK_OK(br_popen_terminate(p));
        else if (sigs[i] == SIGKILL)
            BR_CHECK_OK(br_popen_kill(p));
        else
            BR_CHECK_OK(br_popen_send_signal(p, sigs[i]));
        BR_CHECK_OK(br_popen_wait(p, br_test_hang_guard(), &rc));
        BR_CHECK_EQ(rc, -sigs[i]);
        BR_CHECK_OK(br_popen_poll(p, &rc));
        BR_CHECK_EQ(rc, -sigs[i]);
        BR_CHECK_OK(br_popen_kill(p)); /* ended: nothing to do */
        BR_CHECK_OK(br_popen_free(p));
    }
    end();
}

/* communicate: all at once, and resumed after deadlines that passed (nothing lost). */
static void popen_communicate(void **state) {
    (void)state;
    begin();
    br_popen *p;
    br_completed r;
    BR_CHECK_OK(br_popen_start(&p, ARGV("cat; echo done >&2"),
                               &(br_subprocess_opts){.shell = true, .in = BR_STDIO_PIPE,
                                                     .capture_output = true}));
    BR_CHECK_OK(br_popen_communicate(p, "abc", 3, br_test_hang_guard(), &r));
    BR_CHECK_EQ(r.returncode, 0);
    check_bytes(r.out, r.out_len, "abc");
    check_bytes(r.err, r.err_len, "done\n");
    br_completed_destroy(&r);
    BR_CHECK_EQ(br_popen_fd(p, 0), -1); /* every pipe closed */
    BR_CHECK_EQ(br_popen_fd(p, 1), -1);
    BR_CHECK_ERR(br_popen_communicate(p, NULL, 0, BR_NOWAIT, &r), BR_ESTATE);
    BR_CHECK_OK(br_popen_free(p));

    /* 4 MiB through cat, one BR_NOWAIT call at a time: each returns BR_ETIMEDOUT
     * as soon as nothing is ready, and the next resumes where it stopped. */
    size_t n = (size_t)4 << 20;
    char *in = malloc(n);
    BR_CHECK(in != NULL);
    for (size_t i = 0; i < n; i++)
        in[i] = (char)(i ^ (i >> 11));
    BR_CHECK_OK(br_popen_start(&p, ARGV("cat"),
                               &(br_subprocess_opts){.in = BR_STDIO_PIPE,
                                                     .out = BR_STDIO_PIPE}));
    int rc;
    int64_t guard = br_test_hang_guard();
    long calls = 0;
    while ((rc = br_popen_communicate(p, in, n, BR_NOWAIT, &r)) == BR_ETIMEDOUT) {
        BR_CHECK(r.out == NULL);
        BR_CHECK(br_now() < guard);
        calls++;
        sched_yield();
    }
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r.out_len, n);
    BR_CHECK(memcmp(r.out, in, n) == 0);
    BR_CHECK(r.err == NULL);
    print_message("communicate: %ld calls timed out before the last\n", calls);
    br_completed_destroy(&r);
    BR_CHECK_OK(br_popen_free(p));
    free(in);

    /* A child that exits without reading its input: the rest is dropped, no SIGPIPE
     * kills us (its default disposition is in place here). */
    char big[200000];
    memset(big, 'x', sizeof big);
    BR_CHECK_OK(br_popen_start(&p, ARGV("true"), &(br_subprocess_opts){.in = BR_STDIO_PIPE}));
    BR_CHECK_OK(br_popen_communicate(p, big, sizeof big, br_test_hang_guard(), &r));
    BR_CHECK_EQ(r.returncode, 0);
    br_completed_destroy(&r);
    BR_CHECK_OK(br_popen_free(p));
    sigset_t pending;
    sigpending(&pending);
    BR_CHECK(!sigismember(&pending, SIGPIPE)); /* the pump consumed the one it caused */
    BR_CHECK_OK(br_run(ARGV("true"), &(br_subprocess_opts){.input = big,
                                                           .input_len = sizeof big}, &r));
    br_completed_destroy(&r);
    end();
}

/* --- communicate from coroutines ---------------------------------------------------- */

/* Two tasks of one loop each communicate with a child that first waits at a gate (a
 * FIFO it reads), then copies its stdin (200 KiB: more than a pipe holds, so the
 * writer waits for room too) to stdout and says "end" on stderr. A third task of the
 * same loop opens both gates only once both tasks are inside communicate, and counts
 * its own turns meanwhile. If communicate blocked the loop's thread, the third task
 * would never run and the children would never pass their gates (the hang guard ends
 * that); since each child waits for the third task, the two communicates were in
 * flight at once. */
enum { AC_IN = 200 * 1024 };
typedef struct ac_state {
    char dir[64], fifo[2][96];
    char *in;
    bool entered[2], returned[2];
    long turns_between; /* the third task's turns while both were inside */
    br_completed r[2];
    int rc[2];
} ac_state;
static ac_state ac;

static int ac_comm(br_task *t) {
    int k = (int)br_task_arg_i64(t);
    br_popen *p;
    int rc = br_popen_start(&p, ARGV("cat \"$0\" >/dev/null; cat; echo end >&2", ac.fifo[k]),
                            &(br_subprocess_opts){.shell = true, .in = BR_STDIO_PIPE,
                                                  .capture_output = true,
                                                  .start_new_session = true});
    if (rc != 0)
        return br_task_fail(t, rc, "start");
    ac.entered[k] = true;
    ac.rc[k] = br_popen_communicate(p, ac.in, AC_IN, br_test_hang_guard(), &ac.r[k]);
    ac.returned[k] = true;
    if (ac.rc[k] != 0) { /* the failure is reported outside; leave no child behind */
        kill(-br_popen_pid(p), SIGKILL); /* the shell and its cat: their own group */
        br_popen_wait(p, BR_FOREVER, NULL);
    }
    br_popen_free(p);
    return 0;
}

static int ac_gatekeeper(br_task *t) {
    (void)t;
    int64_t guard = br_test_hang_guard();
    while (!(ac.entered[0] && ac.entered[1])) {
        if (br_now() > guard)
            return br_task_fail(t, BR_ETIMEDOUT, "the communicating tasks never entered");
        br_aio_yield();
    }
    /* Both tasks are inside communicate (a coroutine runs until it suspends) and
     * neither child can be through its gate: both calls are in flight. */
    if (ac.returned[0] || ac.returned[1])
        return br_task_fail(t, BR_ESTATE, "a communicate returned before the gates opened");
    for (int k = 0; k < 2; k++) {
        int fd;
        /* the child opens its gate for reading when it gets there */
        while ((fd = open(ac.fifo[k], O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
            if (errno != ENXIO || br_now() > guard)
                return br_task_fail(t, BR_EIO, "gate %d: %s", k, strerror(errno));
            ac.turns_between++;
            br_aio_yield();
        }
        if (ac.returned[k]) {
            close(fd);
            return br_task_fail(t, BR_ESTATE, "a communicate returned before its gate opened");
        }
        close(fd); /* the child's cat reads EOF: through the gate (child 0 may finish
                    * while we wait for child 1 to reach its own) */
    }
    return 0;
}

/* The main task: the three tasks, gathered; no check fails inside a coroutine (a
 * failure is its code, checked by the test outside the loop). */
static int ac_main(br_task *t) {
    br_future *fs[3] = {NULL, NULL, NULL};
    int rc = br_create_task(NULL, ac_comm, &(int64_t){0}, sizeof(int64_t), &fs[0]);
    if (rc == 0)
        rc = br_create_task(NULL, ac_comm, &(int64_t){1}, sizeof(int64_t), &fs[1]);
    if (rc == 0)
        rc = br_create_task(NULL, ac_gatekeeper, NULL, 0, &fs[2]);
    if (rc == 0)
        rc = br_gather(fs, 3, true, br_test_hang_guard());
    for (int i = 0; i < 3 && rc == 0; i++) {
        int c = 0;
        const char *m = NULL;
        rc = br_future_exception(fs[i], BR_NOWAIT, &c, &m);
        if (rc == 0 && c != 0) {
            print_error("task %d failed: %s (%s)\n", i, br_err_name(c), m ? m : "");
            rc = c;
        }
    }
    for (int i = 0; i < 3; i++)
        if (fs[i])
            br_future_release(fs[i]);
    return rc == 0 ? 0 : br_task_fail(t, rc, "a task failed");
}

static void communicate_in_coroutines(void **state) {
    (void)state;
    begin();
    memset(&ac, 0, sizeof ac);
    snprintf(ac.dir, sizeof ac.dir, "/tmp/braid-ac-%d", (int)getpid());
    BR_CHECK_EQ(mkdir(ac.dir, 0700), 0);
    for (int k = 0; k < 2; k++) {
        snprintf(ac.fifo[k], sizeof ac.fifo[k], "%s/gate%d", ac.dir, k);
        BR_CHECK_EQ(mkfifo(ac.fifo[k], 0600), 0);
    }
    ac.in = malloc(AC_IN);
    BR_CHECK(ac.in != NULL);
    for (size_t i = 0; i < AC_IN; i++)
        ac.in[i] = (char)(i * 13 + i / 509);
    int code = -1;
    int rc = br_aio_run(ac_main, NULL, 0, &code);
    for (int k = 0; k < 2; k++)
        unlink(ac.fifo[k]);
    rmdir(ac.dir);
    BR_CHECK_OK(rc);
    BR_CHECK_OK(code);
    for (int k = 0; k < 2; k++) {
        BR_CHECK_OK(ac.rc[k]);
        BR_CHECK_EQ(ac.r[k].returncode, 0);
        BR_CHECK_EQ(ac.r[k].out_len, AC_IN);
        BR_CHECK(memcmp(ac.r[k].out, ac.in, AC_IN) == 0);
        check_bytes(ac.r[k].err, ac.r[k].err_len, "end\n");
        br_completed_destroy(&ac.r[k]);
    }
    print_message("the gatekeeper took %ld turns while both communicates waited\n",
                  ac.turns_between);
    free(ac.in);
    end();
}

/* In a coroutine, a communicate whose deadline passes while its child waits at a gate
 * returns BR_ETIMEDOUT (the child can't have finished: the gate is closed) with
 * nothing lost; once the gate opens, the next call gets the whole output. */
static int acd_main(br_task *t) {
    br_popen *p;
    int rc = br_popen_start(&p, ARGV("cat \"$0\"; echo out", ac.fifo[0]),
                            &(br_subprocess_opts){.shell = true, .out = BR_STDIO_PIPE,
                                                  .start_new_session = true});
    if (rc != 0)
        return br_task_fail(t, rc, "start");
    rc = br_popen_communicate(p, NULL, 0, br_deadline_after(20 * BR_MSEC), &ac.r[0]);
    ac.rc[0] = rc;
    if (rc == BR_ETIMEDOUT) {
        int64_t guard = br_test_hang_guard();
        int fd;
        while ((fd = open(ac.fifo[0], O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0 &&
               errno == ENXIO && br_now() < guard)
            br_aio_yield();
        if (fd >= 0)
            close(fd);
        rc = br_popen_communicate(p, NULL, 0, guard, &ac.r[1]);
        ac.rc[1] = rc;
    }
    if (rc != 0) {
        kill(-br_popen_pid(p), SIGKILL);
        br_popen_wait(p, BR_FOREVER, NULL);
    }
    br_popen_free(p);
    return 0;
}

static void communicate_in_coroutine_deadline(void **state) {
    (void)state;
    begin();
    memset(&ac, 0, sizeof ac);
    snprintf(ac.dir, sizeof ac.dir, "/tmp/braid-ac-%d", (int)getpid());
    BR_CHECK_EQ(mkdir(ac.dir, 0700), 0);
    snprintf(ac.fifo[0], sizeof ac.fifo[0], "%s/gate0", ac.dir);
    BR_CHECK_EQ(mkfifo(ac.fifo[0], 0600), 0);
    int code = -1;
    int rc = br_aio_run(acd_main, NULL, 0, &code);
    unlink(ac.fifo[0]);
    rmdir(ac.dir);
    BR_CHECK_OK(rc);
    BR_CHECK_OK(code);
    BR_CHECK_ERR(ac.rc[0], BR_ETIMEDOUT);
    BR_CHECK(ac.r[0].out == NULL);
    BR_CHECK_OK(ac.rc[1]);
    BR_CHECK_EQ(ac.r[1].returncode, 0);
    check_bytes(ac.r[1].out, ac.r[1].out_len, "out\n");
    br_completed_destroy(&ac.r[1]);
    end();
}

static int sleepy(br_task *t) {
    return br_task_return_i64(t, 42);
}

/* A child's end is a future: br_wait mixes it with a thread pool's. */
static void wait_mixes_futures(void **state) {
    (void)state;
    begin();
    br_executor *pool;
    BR_CHECK_OK(br_threadpool_new(&pool, &(br_threadpool_opts){.max_workers = 1}));
    br_popen *p;
    BR_CHECK_OK(br_popen_start(&p, ARGV("cat"), &(br_subprocess_opts){.in = BR_STDIO_PIPE}));
    br_future *task;
    BR_CHECK_OK(br_submit_i64(pool, sleepy, 0, &task));
    br_future *fs[2] = {br_popen_future(p), task}, *sets[2];
    size_t nd = 0, nn = 0;
    /* cat waits for its stdin: the task finishes first. */
    BR_CHECK_OK(br_wait(fs, 2, BR_FIRST_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK_EQ(nd, 1);
    BR_CHECK(sets[0] == task);
    BR_CHECK(!br_future_done(fs[0]));
    BR_CHECK_OK(br_popen_close_fd(p, 0));
    BR_CHECK_OK(br_wait(fs, 2, BR_ALL_COMPLETED, br_test_hang_guard(), sets, &nd, &nn));
    BR_CHECK_EQ(nd, 2);
    int64_t rc = -1;
    BR_CHECK_OK(br_future_result_i64(fs[0], BR_NOWAIT, &rc));
    BR_CHECK_EQ(rc, 0);
    BR_CHECK_OK(br_future_result_i64(task, BR_NOWAIT, &rc));
    BR_CHECK_EQ(rc, 42);
    /* The future outlives the handle when retained. */
    br_future *end_f = br_popen_future(p);
    br_future_retain(end_f);
    BR_CHECK_OK(br_popen_free(p));
    BR_CHECK_OK(br_future_result_i64(end_f, BR_NOWAIT, &rc));
    BR_CHECK_EQ(rc, 0);
    br_future_release(end_f);
    br_future_release(task);
    BR_CHECK_OK(br_executor_free(pool));
    end();
}

/* "SigBlk:\t0000000000000000" in /proc/self/status, read by the child itself. */
static unsigned long long status_mask(const char *status, const char *field) {
    const char *at = strstr(status, field);
    BR_CHECK(at != NULL);
    return strtoull(at + strlen(field), NULL, 16);
}

/* A parent that ignores SIGPIPE and blocks SIGINT doesn't hand either to its child. */
static void child_signals_default(void **state) {
    (void)state;
    begin();
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_pipe;
    sigemptyset(&ign.sa_mask);
    BR_CHECK_OK(sigaction(SIGPIPE, &ign, &old_pipe));
    sigset_t intr, old_mask;
    sigemptyset(&intr);
    sigaddset(&intr, SIGINT);
    BR_CHECK_OK(pthread_sigmask(SIG_BLOCK, &intr, &old_mask));
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("cat", "/proc/self/status"),
                       &(br_subprocess_opts){.out = BR_STDIO_PIPE}, &r));
    BR_CHECK_EQ(status_mask(r.out, "\nSigBlk:"), 0);
    BR_CHECK_EQ(status_mask(r.out, "\nSigIgn:"), 0);
    br_completed_destroy(&r);
    /* Our own are untouched. */
    sigset_t now;
    BR_CHECK_OK(pthread_sigmask(SIG_BLOCK, NULL, &now));
    BR_CHECK(sigismember(&now, SIGINT));
    struct sigaction cur;
    BR_CHECK_OK(sigaction(SIGPIPE, NULL, &cur));
    BR_CHECK(cur.sa_handler == SIG_IGN);
    BR_CHECK_OK(pthread_sigmask(SIG_SETMASK, &old_mask, NULL));
    BR_CHECK_OK(sigaction(SIGPIPE, &old_pipe, NULL));
    end();
}

/* The child has fds 0-2 only: a descriptor of ours without close-on-exec is closed
 * in it too (close_fds=True). */
static void other_fds_closed(void **state) {
    (void)state;
    begin();
    int leaky = open("/dev/null", O_RDONLY); /* no O_CLOEXEC */
    BR_CHECK(leaky >= 3);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "if [ -e /proc/self/fd/%d ]; then echo open; else echo closed; fi",
             leaky);
    br_completed r;
    BR_CHECK_OK(br_run(ARGV(cmd), &(br_subprocess_opts){.shell = true, .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, "closed\n");
    br_completed_destroy(&r);
    /* The child's stdio is what was asked: stdin /dev/null reads nothing. */
    BR_CHECK_OK(br_run(ARGV("cat"),
                       &(br_subprocess_opts){.in = BR_STDIO_DEVNULL, .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, "");
    br_completed_destroy(&r);
    close(leaky);
    end();
}

/* pass_fds: the fds named stay open in the child at their numbers (a close-on-exec one
 * too) and work there; an fd not named is closed, below the highest named one and
 * above it; bad lists are BR_EINVAL with nothing leaked. */
static void pass_fds_kept(void **state) {
    (void)state;
    begin();
    int p[2];
    BR_CHECK(pipe2(p, O_CLOEXEC) == 0);
    int w = 9; /* the shell names single-digit fds only: the highest free one */
    while (w > 3 && fcntl(w, F_GETFD) != -1)
        w--;
    BR_CHECK(w > 3 && fcntl(w, F_GETFD) == -1);
    BR_CHECK(dup3(p[1], w, O_CLOEXEC) == w);
    int low = open("/dev/null", O_RDONLY), kept = 0, high = 0; /* low, high: no O_CLOEXEC */
    BR_CHECK(low >= 3);
    kept = fcntl(low, F_DUPFD, low + 10);
    high = fcntl(low, F_DUPFD, kept + 10);
    BR_CHECK(kept > low && high > kept);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "echo hi >&%d; for f in %d %d %d; do if [ -e /proc/self/fd/$f ]; then echo open;"
             " else echo closed; fi; done", w, low, kept, high);
    br_completed r;
    BR_CHECK_OK(br_run(ARGV(cmd),
                       &(br_subprocess_opts){.shell = true, .out = BR_STDIO_PIPE,
                                             .pass_fds = (const int[]){kept, w},
                                             .pass_fds_len = 2},
                       &r));
    BR_CHECK_EQ(r.returncode, 0);
    check_bytes(r.out, r.out_len, "closed\nopen\nclosed\n");
    br_completed_destroy(&r);
    close(w);
    close(p[1]);
    char got[8];
    BR_CHECK_EQ(read_full(p[0], got, sizeof got), 3); /* EOF after "hi\n" */
    BR_CHECK(memcmp(got, "hi\n", 3) == 0);
    close(p[0]);
    /* bad lists */
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.pass_fds = (const int[]){1},
                                                           .pass_fds_len = 1}, &r),
                 BR_EINVAL);
    br_completed_destroy(&r);
    BR_CHECK_ERR(br_run(ARGV("true"),
                        &(br_subprocess_opts){.pass_fds = (const int[]){kept, kept},
                                              .pass_fds_len = 2}, &r),
                 BR_EINVAL);
    br_completed_destroy(&r);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.pass_fds_len = 1}, &r),
                 BR_EINVAL);
    br_completed_destroy(&r);
    close(high);
    BR_CHECK_ERR(br_run(ARGV("true"),
                        &(br_subprocess_opts){.pass_fds = (const int[]){kept, high},
                                              .pass_fds_len = 2}, &r),
                 BR_EINVAL); /* high is closed now */
    br_completed_destroy(&r);
    br_popen *pp = NULL;
    BR_CHECK_ERR(br_popen_start(&pp, ARGV("true"),
                                &(br_subprocess_opts){.pass_fds = (const int[]){high},
                                                      .pass_fds_len = 1}),
                 BR_EINVAL);
    BR_CHECK(pp == NULL);
    close(kept);
    close(low);
    end();
}

/* The session field (the 6th) of /proc/<pid>/stat as the child printed it. */
static long stat_session(const char *stat) {
    const char *e = strrchr(stat, ')');
    BR_CHECK(e != NULL);
    char st;
    long ppid, pgrp, sid;
    BR_CHECK_EQ(sscanf(e + 1, " %c %ld %ld %ld", &st, &ppid, &pgrp, &sid), 4);
    return sid;
}

/* start_new_session: the child leads a session of its own (its session id is its
 * pid); without it, the child is in the parent's session. */
static void start_new_session(void **state) {
    (void)state;
    begin();
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("cat", "/proc/self/stat"),
                       &(br_subprocess_opts){.out = BR_STDIO_PIPE, .start_new_session = true},
                       &r));
    BR_CHECK_EQ(r.returncode, 0);
    BR_CHECK_EQ(stat_session(r.out), (long)r.pid);
    br_completed_destroy(&r);
    BR_CHECK_OK(br_run(ARGV("cat", "/proc/self/stat"),
                       &(br_subprocess_opts){.out = BR_STDIO_PIPE}, &r));
    BR_CHECK_EQ(stat_session(r.out), (long)getsid(0));
    BR_CHECK(stat_session(r.out) != (long)r.pid);
    br_completed_destroy(&r);
    end();
}

/* Freeing a handle whose child still runs: the child isn't killed, and once it ends
 * the watcher reaps it (no zombie). */
static void free_while_running(void **state) {
    (void)state;
    begin();
    br_popen *p;
    BR_CHECK_OK(br_popen_start(&p, ARGV("cat"), &(br_subprocess_opts){.in = BR_STDIO_PIPE}));
    BR_CHECK_EQ(br__child_watch_count(), 1);
    BR_CHECK_OK(br_popen_free(p)); /* closes cat's stdin: it ends by itself */
    end();
}

/* A stream given as an fd of ours (Python's stdout=f), and a pipeline: one child's
 * stdout is the next one's stdin (Python's Popen(..., stdin=p1.stdout)). */
static void fds_and_pipeline(void **state) {
    (void)state;
    begin();
    /* stdout into a file of ours; our fd stays open and ours. */
    FILE *f = tmpfile();
    BR_CHECK(f != NULL);
    int fd = fileno(f);
    br_completed r;
    BR_CHECK_OK(br_run(ARGV("echo to file; echo also >&2"),
                       &(br_subprocess_opts){.shell = true, .out = BR_STDIO_FD,
                                             .out_fd = fd, .err = BR_STDIO_STDOUT},
                       &r));
    BR_CHECK(r.out == NULL);
    br_completed_destroy(&r);
    char back[64] = {0};
    BR_CHECK_EQ(pread(fd, back, sizeof back - 1, 0), 13);
    BR_CHECK(strcmp(back, "to file\nalso\n") == 0);
    /* stdin from it. */
    BR_CHECK_OK(br_run(ARGV("cat"), &(br_subprocess_opts){.in = BR_STDIO_FD, .in_fd = fd,
                                                          .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, ""); /* the shared offset is at the end */
    br_completed_destroy(&r);
    BR_CHECK_EQ(lseek(fd, 0, SEEK_SET), 0);
    BR_CHECK_OK(br_run(ARGV("cat"), &(br_subprocess_opts){.in = BR_STDIO_FD, .in_fd = fd,
                                                          .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, "to file\nalso\n");
    br_completed_destroy(&r);
    fclose(f);

    /* echo | cat | cat */
    br_popen *p1, *p2;
    BR_CHECK_OK(br_popen_start(&p1, ARGV("echo", "through two pipes"),
                               &(br_subprocess_opts){.out = BR_STDIO_PIPE}));
    BR_CHECK_OK(br_popen_start(&p2, ARGV("cat"),
                               &(br_subprocess_opts){.in = BR_STDIO_FD,
                                                     .in_fd = br_popen_fd(p1, 1),
                                                     .out = BR_STDIO_PIPE}));
    BR_CHECK_OK(br_popen_close_fd(p1, 1)); /* p2 holds the only reader now */
    BR_CHECK_OK(br_run(ARGV("cat"), &(br_subprocess_opts){.in = BR_STDIO_FD,
                                                          .in_fd = br_popen_fd(p2, 1),
                                                          .out = BR_STDIO_PIPE},
                       &r));
    check_bytes(r.out, r.out_len, "through two pipes\n");
    br_completed_destroy(&r);
    int rc = -1;
    BR_CHECK_OK(br_popen_wait(p1, br_test_hang_guard(), &rc));
    BR_CHECK_EQ(rc, 0);
    BR_CHECK_OK(br_popen_wait(p2, br_test_hang_guard(), &rc));
    BR_CHECK_EQ(rc, 0);
    BR_CHECK_OK(br_popen_free(p1));
    BR_CHECK_OK(br_popen_free(p2));

    /* A bad fd. */
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.out = BR_STDIO_FD, .out_fd = -1},
                        &r),
                 BR_EINVAL);
    int closed = open("/dev/null", O_RDONLY | O_CLOEXEC);
    BR_CHECK(closed >= 0);
    close(closed);
    BR_CHECK_ERR(br_run(ARGV("true"),
                        &(br_subprocess_opts){.out = BR_STDIO_FD, .out_fd = closed}, &r),
                 BR_EINVAL);
    end();
}

static void bad_input(void **state) {
    (void)state;
    begin();
    br_completed r;
    br_popen *p = (br_popen *)1;
    BR_CHECK_ERR(br_run(NULL, NULL, &r), BR_EINVAL);
    BR_CHECK_ERR(br_run((const char *const[]){NULL}, NULL, &r), BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.in = BR_STDIO_STDOUT}, &r),
                 BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.out = (br_stdio)9}, &r),
                 BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.capture_output = true,
                                                            .err = BR_STDIO_STDOUT}, &r),
                 BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.input = "x", .input_len = 1,
                                                            .in = BR_STDIO_DEVNULL}, &r),
                 BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.input_len = 1}, &r), BR_EINVAL);
    BR_CHECK_ERR(br_run(ARGV("true"), &(br_subprocess_opts){.env_add = true}, &r), BR_EINVAL);
    BR_CHECK(r.out == NULL && r.returncode == 0);
    BR_CHECK_ERR(br_popen_start(NULL, ARGV("true"), NULL), BR_EINVAL);
    BR_CHECK_ERR(br_popen_start(&p, NULL, NULL), BR_EINVAL);
    BR_CHECK(p == NULL);
    BR_CHECK_ERR(br_popen_start(&p, ARGV("true"), &(br_subprocess_opts){.check = true}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_popen_start(&p, ARGV("true"), &(br_subprocess_opts){.input = "x"}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_popen_start(&p, ARGV("true"), &(br_subprocess_opts){.deadline = 5}),
                 BR_EINVAL);
    BR_CHECK_ERR(br_popen_poll(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_popen_wait(NULL, BR_NOWAIT, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_popen_send_signal(NULL, SIGTERM), BR_EINVAL);
    BR_CHECK_ERR(br_popen_close_fd(NULL, 0), BR_EINVAL);
    BR_CHECK_ERR(br_popen_free(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_popen_communicate(NULL, NULL, 0, BR_NOWAIT, &r), BR_EINVAL);
    BR_CHECK(br_popen_future(NULL) == NULL);
    BR_CHECK_EQ(br_popen_pid(NULL), 0);
    br_completed_destroy(NULL);
    /* On a live handle. */
    BR_CHECK_OK(br_popen_start(&p, ARGV("true"), NULL));
    BR_CHECK_ERR(br_popen_send_signal(p, -1), BR_EINVAL);
    BR_CHECK_ERR(br_popen_send_signal(p, 100000), BR_EINVAL);
    BR_CHECK_ERR(br_popen_close_fd(p, 3), BR_EINVAL);
    BR_CHECK_ERR(br_popen_communicate(p, "x", 1, BR_NOWAIT, &r), BR_EINVAL); /* no stdin pipe */
    BR_CHECK_ERR(br_popen_communicate(p, NULL, 0, BR_NOWAIT, NULL), BR_EINVAL);
    BR_CHECK_OK(br_popen_communicate(p, NULL, 0, br_test_hang_guard(), &r));
    BR_CHECK_EQ(r.returncode, 0);
    br_completed_destroy(&r);
    BR_CHECK_OK(br_popen_free(p));
    end();
}

/* Every allocation of a run, failed in turn: BR_ENOMEM, nothing leaked, no child left
 * (a child whose watch failed is killed and reaped before the error returns). */
static void out_of_memory(void **state) {
    (void)state;
    begin();
    for (long n = 0;; n++) {
        BR_CHECK(n < 1000);
        br_completed r;
        br__alloc_fail_after(n);
        int rc = br_run(ARGV("echo hi; echo err >&2"),
                        &(br_subprocess_opts){.shell = true, .capture_output = true,
                                              .env = ARGV("A=1"), .env_add = true},
                        &r);
        br__alloc_fail_after(-1);
        if (rc == 0) {
            check_bytes(r.out, r.out_len, "hi\n");
            check_bytes(r.err, r.err_len, "err\n");
            br_completed_destroy(&r);
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        br_completed_destroy(&r);
        br_test_wait_no_children();
        br_test_wait_fds(fds_at_start);
    }
    end();
}

BR_TEST_MAIN(cmocka_unit_test(echo_captured), cmocka_unit_test(input_roundtrip),
             cmocka_unit_test(stderr_separate_and_merged), cmocka_unit_test(returncodes),
             cmocka_unit_test(check_fails), cmocka_unit_test(deadline_kills),
             cmocka_unit_test(deadline_ignores_grandchild),
             cmocka_unit_test(cwd_and_env), cmocka_unit_test(missing_and_not_executable),
             cmocka_unit_test(popen_pipes), cmocka_unit_test(popen_wait_terminate_kill),
             cmocka_unit_test(popen_communicate), cmocka_unit_test(communicate_in_coroutines),
             cmocka_unit_test(communicate_in_coroutine_deadline),
             cmocka_unit_test(wait_mixes_futures),
             cmocka_unit_test(child_signals_default), cmocka_unit_test(other_fds_closed),
             cmocka_unit_test(pass_fds_kept), cmocka_unit_test(start_new_session),
             cmocka_unit_test(free_while_running), cmocka_unit_test(fds_and_pipeline),
             cmocka_unit_test(bad_input),
             cmocka_unit_test(out_of_memory))
