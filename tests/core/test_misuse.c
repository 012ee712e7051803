/* The misuse report (braid/core.h, br_set_panic_on_misuse): a forked child turns panic
 * on and misuses an API; the parent reads the child's stderr through a pipe and checks
 * that the report names the API function and the error, shows the caller's frame, and
 * that the child died by abort (SIGABRT).
 *
 * This binary links libbraid statically, as every test does, and is linked with
 * -rdynamic (tests/core/tests.cmake), so the backtrace names the caller below. The
 * "called from" line needs libbraid as a shared library of its own: misuse_helper.c is
 * such a program, run by shared_library_names_the_caller. */
#include "harness.h"

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { OUT_CAP = 16384 };

/* Runs fn in a forked child whose stderr is a pipe; returns the child's wait status
 * and its stderr, NUL-terminated, in out. */
static int run_child(void (*fn)(void *arg), void *arg, char *out) {
    int fds[2];
    BR_CHECK_EQ(pipe(fds), 0);
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (dup2(fds[1], STDERR_FILENO) < 0)
            _exit(126);
        close(fds[1]);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    int64_t give_up = br_deadline_after((int64_t)(30 * BR_SEC * br_test_time_multiplier()));
    for (;;) {
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int r = poll(&p, 1, 100);
        if (r == 0) {
            if (br_now() > give_up)
                break; /* br_test_wait_child kills it and fails */
            continue;
        }
        ssize_t n = read(fds[0], out + len, OUT_CAP - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == OUT_CAP - 1)
            break;
    }
    out[len] = '\0';
    close(fds[0]);
    return br_test_wait_child(pid);
}

static void expect_abort(int st, const char *out) {
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        fail_msg("the child should have died by SIGABRT; status 0x%x; its stderr:\n%s", st,
                 out);
}

static void expect_text(const char *out, const char *want) {
    if (strstr(out, want) == NULL)
        fail_msg("the report lacks \"%s\"; it is:\n%s", want, out);
}

/* The callers: never inlined, so each has a frame of its own, and exported (the build
 * hides symbols by default; -rdynamic exports only the visible ones), so that each has
 * a name in the backtrace. */
#define CALLER __attribute__((noinline, visibility("default")))
void misuse_caller_lock(void);
void misuse_caller_queue(void);

CALLER void misuse_caller_lock(void) {
    br_lock l = BR_LOCK_INIT;
    br_lock_release(&l); /* not held: BR_EPERM, and with panic on, the abort */
}

CALLER void misuse_caller_queue(void) {
    /* BR_EINVAL. Not the function's last act: a tail call would leave no frame of
     * misuse_caller_queue on the stack (braid/core.h). */
    if (br_queue_free(NULL) != BR_EINVAL)
        _exit(3);
}

static void panic_and_call(void *fn) {
    br_set_panic_on_misuse(true);
    ((void (*)(void))fn)();
}

static void names_api_and_caller_lock(void **state) {
    (void)state;
    static char out[OUT_CAP];
    int st = run_child(panic_and_call, (void *)(uintptr_t)misuse_caller_lock, out);
    expect_abort(st, out);
    expect_text(out, "braid: misuse: br_lock_release: the caller doesn't hold the lock "
                     "(BR_EPERM)\n");
    expect_text(out, "braid: backtrace, innermost first:\n");
    /* the caller's frame, by name (-rdynamic), in this test's module */
    expect_text(out, "test_core_misuse(misuse_caller_lock+0x");
    /* the report starts with the message: nothing of braid's file names comes first */
    BR_CHECK(strncmp(out, "braid: misuse: ", 15) == 0);
    BR_CHECK(strstr(out, "lock.c") == NULL);
}

static void names_api_and_caller_queue(void **state) {
    (void)state;
    static char out[OUT_CAP];
    int st = run_child(panic_and_call, (void *)(uintptr_t)misuse_caller_queue, out);
    expect_abort(st, out);
    expect_text(out, "braid: misuse: br_queue_free: queue is NULL (BR_EINVAL)\n");
    expect_text(out, "test_core_misuse(misuse_caller_queue+0x");
}

/* Panic off (the default): the same calls return their codes, and print nothing. */
static void quiet_when_off(void *arg) {
    (void)arg;
    br_lock l = BR_LOCK_INIT;
    if (br_lock_release(&l) != BR_EPERM)
        _exit(3);
    if (br_queue_free(NULL) != BR_EINVAL)
        _exit(4);
    /* BR_EDEADLK is misuse too, but never panics (only BR_EINVAL and BR_EPERM do) */
    br_set_panic_on_misuse(true);
    if (br_lock_acquire(&l, BR_FOREVER) != 0 || br_lock_acquire(&l, BR_NOWAIT) != BR_EDEADLK)
        _exit(5);
    _exit(0);
}

static void off_returns_the_code_quietly(void **state) {
    (void)state;
    static char out[OUT_CAP];
    int st = run_child(quiet_when_off, NULL, out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("the child should have exited 0; status 0x%x; its stderr:\n%s", st, out);
    BR_CHECK_EQ(strlen(out), 0);
}

/* misuse_helper (linked against libbraid.so, -rdynamic) misuses br_lock_release from
 * misuse_from_helper: the report's second line names that frame. */
static void exec_helper(void *path) {
    execl((const char *)path, (const char *)path, (char *)NULL);
    _exit(127);
}

static void shared_library_names_the_caller(void **state) {
    (void)state;
    const char *helper = getenv("BRAID_MISUSE_HELPER");
    if (helper == NULL || *helper == '\0')
        skip(); /* run by hand: CTest passes the helper's path */
    static char out[OUT_CAP];
    int st = run_child(exec_helper, (void *)(uintptr_t)helper, out);
    expect_abort(st, out);
    expect_text(out, "braid: misuse: br_lock_release: the caller doesn't hold the lock "
                     "(BR_EPERM)\n");
    /* "braid: called from <helper>+0x<offset> (misuse_from_helper+0x<off>)" */
    char want[4096];
    snprintf(want, sizeof want, "braid: called from %s+0x", helper);
    expect_text(out, want);
    const char *line = strstr(out, want);
    const char *eol = strchr(line, '\n');
    const char *sym = strstr(line, " (misuse_from_helper+0x");
    if (sym == NULL || eol == NULL || sym > eol)
        fail_msg("the \"called from\" line doesn't name misuse_from_helper:\n%s", out);
    /* and it is the second line, right after the message */
    BR_CHECK(strncmp(out, "braid: misuse: ", 15) == 0);
    BR_CHECK(strchr(out, '\n') + 1 == line);
}

BR_TEST_MAIN(cmocka_unit_test(names_api_and_caller_lock),
             cmocka_unit_test(names_api_and_caller_queue),
             cmocka_unit_test(off_returns_the_code_quietly),
             cmocka_unit_test(shared_library_names_the_caller))
