/* The ordered registry of fork and exit hooks (core/lifecycle.c, core/lib.h
 * "lifecycle"): whatever the order of registration, prepare runs from the highest order
 * down, parent and child from the lowest up, at_exit from the highest down, each hook
 * once per event; registering a hook again changes nothing; and the library's own
 * layers (thread 10, future 30, executor 40) keep their places among the test's hooks.
 *
 * The test hooks record every call into a log (the child sends its copy back through a
 * pipe; at_exit hooks, which run as the child ends, write straight into one). Forks
 * happen with no other thread at work: the pool's workers are joined and gone from
 * /proc/self/task first (under ThreadSanitizer a fork while another thread works can
 * deadlock in the sanitizer's own locks); the one exception is a thread parked on an
 * event, which the thread layer's child hook must mark finished (a thread that ended
 * before the fork but was never joined would do too, but ThreadSanitizer reports it
 * as leaked when the child exits). */
#include "harness.h"
#include "core/lib.h"
#include "executor/pool/private.h"
#include "thread/private.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* --- the log ------------------------------------------------------------------------ */

/* One hook call: which phase (P prepare, A parent, C child), which order, and what the
 * hook saw of the library's state at that moment (see library_hooks_keep_their_place). */
typedef struct entry {
    char phase;
    int order;
    int done;     /* the observed thread's done flag, or -1 */
    unsigned gen; /* br__pool_fork_gen */
} entry;

enum { LOG_MAX = 64 };
static entry log_[LOG_MAX];
static int nlog;
/* Hooks stay registered for good: only the current test's set records. */
static int recording;       /* the set that records now (0: none) */
static br_thread *observed; /* a thread parked at the fork, or NULL */

static void note(int set, char phase, int order) {
    if (set != recording || nlog == LOG_MAX)
        return;
    log_[nlog++] = (entry){
        .phase = phase,
        .order = order,
        .done = observed ? (int)atomic_load(&observed->done) : -1,
        .gen = atomic_load(&br__pool_fork_gen),
    };
}

/* The log as text ("P40 P30 ..."), for comparisons that print both sides. */
static const char *log_text(const entry *e, int n, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len + 16 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%c%d", i ? " " : "", e[i].phase,
                                e[i].order);
    return buf;
}

#define CHECK_LOG(e, n, want)                                                              \
    do {                                                                                   \
        char buf_[512];                                                                    \
        assert_string_equal(log_text((e), (n), buf_, sizeof buf_), (want));                \
    } while (0)

/* Test hooks of order N, in set SET, for the three fork phases. */
#define FORK_HOOKS(SET, N)                                                                 \
    static void prepare_##N(void) {                                                        \
        note(SET, 'P', N);                                                                 \
    }                                                                                      \
    static void parent_##N(void) {                                                         \
        note(SET, 'A', N);                                                                 \
    }                                                                                      \
    static void child_##N(void) {                                                          \
        note(SET, 'C', N);                                                                 \
    }                                                                                      \
    static br__hooks hooks_##N = {.order = N,                                              \
                                  .name = "test-" #N,                                      \
                                  .prepare = prepare_##N,                                  \
                                  .parent = parent_##N,                                    \
                                  .child = child_##N}

enum { SET_ALONE = 1, SET_AROUND = 2 };
FORK_HOOKS(SET_ALONE, 10);
FORK_HOOKS(SET_ALONE, 30);
FORK_HOOKS(SET_ALONE, 40);
FORK_HOOKS(SET_AROUND, 5);
FORK_HOOKS(SET_AROUND, 15);
FORK_HOOKS(SET_AROUND, 25);
FORK_HOOKS(SET_AROUND, 35);
FORK_HOOKS(SET_AROUND, 45);

/* Below every layer and with no hooks: the registry's list starts here, so walking its
 * links from this one shows the whole list. */
static br__hooks first_hooks = {.order = INT_MIN, .name = "test-first"};

/* Forks with the hooks of `set` recording. The parent's log stays in log_[0..nlog); the
 * child's, which it sends through a pipe before _exit(0), goes to child[0..*nchild). */
static void fork_logged(int set, entry *child, int *nchild) {
    int fds[2];
    BR_CHECK_EQ(pipe(fds), 0);
    nlog = 0;
    recording = set;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        recording = 0;
        const char *p = (const char *)log_;
        size_t left = (size_t)nlog * sizeof log_[0];
        while (left > 0) {
            ssize_t k = write(fds[1], p, left);
            if (k <= 0)
                _exit(1);
            p += k;
            left -= (size_t)k;
        }
        _exit(0);
    }
    recording = 0;
    close(fds[1]);
    BR_CHECK(pid > 0);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    char *p = (char *)child;
    size_t got = 0;
    ssize_t k;
    while ((k = read(fds[0], p + got, LOG_MAX * sizeof *child - got)) > 0)
        got += (size_t)k;
    close(fds[0]);
    BR_CHECK_EQ(got % sizeof *child, 0);
    *nchild = (int)(got / sizeof *child);
}

/* Walks the registry from first_hooks: it is sorted by order, and each of want[0..n)
 * is in it exactly once. */
static void check_registry(br__hooks *const *want, int n) {
    int seen[16] = {0};
    BR_CHECK(n <= 16);
    int prev = INT_MIN;
    for (br__hooks *h = &first_hooks; h; h = h->next_) {
        BR_CHECK(h->registered_);
        BR_CHECK(h->order >= prev);
        prev = h->order;
        for (int i = 0; i < n; i++)
            seen[i] += h == want[i];
    }
    for (int i = 0; i < n; i++)
        if (seen[i] != 1)
            fail_msg("%s is %d times in the registry", want[i]->name, seen[i]);
}

/* --- fork ---------------------------------------------------------------------------- */

/* Registered 40, 10, 30 (and again, in another order): prepare runs 40, 30, 10; parent
 * and child 10, 30, 40; each once per fork, fork after fork. */
static void fork_hooks_run_in_layer_order(void **state) {
    (void)state;
    BR_CHECK_OK(br__hooks_register(&hooks_40));
    BR_CHECK_OK(br__hooks_register(&hooks_10));
    BR_CHECK_OK(br__hooks_register(&hooks_30));
    BR_CHECK_OK(br__hooks_register(&first_hooks));
    /* again: harmless */
    BR_CHECK_OK(br__hooks_register(&hooks_30));
    BR_CHECK_OK(br__hooks_register(&hooks_10));
    BR_CHECK_OK(br__hooks_register(&hooks_40));
    check_registry((br__hooks *const[]){&hooks_10, &hooks_30, &hooks_40}, 3);
    for (int round = 0; round < 3; round++) {
        entry child[LOG_MAX];
        int nchild = 0;
        fork_logged(SET_ALONE, child, &nchild);
        CHECK_LOG(log_, nlog, "P40 P30 P10 A10 A30 A40");
        CHECK_LOG(child, nchild, "P40 P30 P10 C10 C30 C40");
    }
}

static void park_on(void *arg) {
    (void)br_event_wait(arg, br_test_hang_guard());
}

static int echo(br_task *t) {
    return br_task_return_i64(t, br_task_arg_i64(t));
}

/* The library registers its own hooks when a layer is first used (a thread, a future,
 * a pool): they run in their layers' places among the test's hooks (5, 15, 25, 35, 45,
 * registered out of order), which watch them work:
 *   - the thread layer's child hook (10) marks the parent's threads finished (they
 *     don't exist in the child): a thread parked at the fork is still running at 5 and
 *     finished from 15 on;
 *   - the executor layer's child hook (40) bumps the fork generation: unchanged up to
 *     35, one more at 45;
 *   - in the parent neither changes.
 * The future layer's hooks (30: the block layer's lock across the fork) can't be
 * watched from outside; the registry's list shows its place. */
static void library_hooks_keep_their_place(void **state) {
    (void)state;
    int baseline = br_test_thread_baseline();
    /* A pool and its futures: the executor and future layers register. */
    br_executor *ex = NULL;
    BR_CHECK_OK(br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 2}));
    br_future *f = NULL;
    BR_CHECK_OK(br_submit_i64(ex, echo, 7, &f));
    int64_t v = 0;
    BR_CHECK_OK(br_future_result_i64(f, br_test_hang_guard(), &v));
    BR_CHECK_EQ(v, 7);
    br_future_release(f);
    BR_CHECK_OK(br_executor_free(ex));
    br_test_wait_threads(baseline); /* the workers are gone */
    /* A braid thread (the thread layer registers), parked on an event through the
     * forks: asleep in the futex, not inside malloc or any lock. A daemon, on a static
     * event, so that a failed check leaves it neither waiting on a dead stack frame
     * nor holding up the exit. */
    static br_event gate;
    BR_CHECK_OK(br_event_init(&gate));
    br_thread *t = NULL;
    BR_CHECK_OK(br_thread_start(&t, park_on, &gate, &(br_thread_opts){.daemon = true}));
    int64_t give_up = br_test_hang_guard();
    while (br__wq_len(&BR__EVENT_IMPL(&gate)->wq) != 1) {
        BR_CHECK(br_now() < give_up);
        br_sleep(100 * BR_USEC);
    }

    BR_CHECK_OK(br__hooks_register(&hooks_25));
    BR_CHECK_OK(br__hooks_register(&hooks_45));
    BR_CHECK_OK(br__hooks_register(&hooks_5));
    BR_CHECK_OK(br__hooks_register(&hooks_35));
    BR_CHECK_OK(br__hooks_register(&hooks_15));
    BR_CHECK_OK(br__hooks_register(&first_hooks));
    check_registry(
        (br__hooks *const[]){&hooks_5, &hooks_15, &hooks_25, &hooks_35, &hooks_45}, 5);
    /* the library's three, once each, in their places */
    int at10 = 0, at30 = 0, at40 = 0;
    for (br__hooks *h = &first_hooks; h; h = h->next_) {
        at10 += h->order == BR__ORDER_THREAD && strcmp(h->name, "thread") == 0;
        at30 += h->order == BR__ORDER_FUTURE && strcmp(h->name, "future") == 0;
        at40 += h->order == BR__ORDER_EXECUTOR && strcmp(h->name, "threadpool") == 0;
    }
    BR_CHECK_EQ(at10, 1);
    BR_CHECK_EQ(at30, 1);
    BR_CHECK_EQ(at40, 1);

    unsigned gen = atomic_load(&br__pool_fork_gen);
    observed = t;
    for (int round = 0; round < 2; round++) {
        entry child[LOG_MAX];
        int nchild = 0;
        fork_logged(SET_AROUND, child, &nchild);
        CHECK_LOG(log_, nlog, "P45 P35 P25 P15 P5 A5 A15 A25 A35 A45");
        CHECK_LOG(child, nchild, "P45 P35 P25 P15 P5 C5 C15 C25 C35 C45");
        for (int i = 0; i < nlog; i++) { /* the parent: nothing changes */
            BR_CHECK_EQ(log_[i].done, 0);
            BR_CHECK_EQ(log_[i].gen, gen);
        }
        for (int i = 0; i < nchild; i++) {
            const entry *e = &child[i];
            bool after_thread = e->phase == 'C' && e->order > BR__ORDER_THREAD;
            bool after_executor = e->phase == 'C' && e->order > BR__ORDER_EXECUTOR;
            BR_CHECK_EQ(e->done, after_thread ? 1 : 0);
            BR_CHECK_EQ(e->gen, after_executor ? gen + 1 : gen);
        }
    }
    observed = NULL;
    /* The parent's thread is as it was: still parked, and it ends when let go. */
    BR_CHECK(br_thread_is_alive(t));
    BR_CHECK_OK(br_event_set(&gate));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_OK(br_event_destroy(&gate));
}

/* --- exit ---------------------------------------------------------------------------- */

/* In a forked child: at_exit hooks registered out of order (25, 5, 45, 15, 35) around
 * the library's (pool 40, thread 10) write their order into a pipe as they run. A
 * 1-worker pool has a task blocked until hook 45 lets it go and another queued behind
 * it, which writes B; a non-daemon thread waits until hook 15 lets it go, then writes
 * T. The pool's exit hook (40) waits for its tasks, the thread layer's (10) for the
 * thread, so the pipe must read 45 B 35 25 15 T 5: highest order first, each once. */
static int exit_fd = -1;
static br_event pool_gate, thread_gate, blocker_started;

static void say(const char *what) {
    char buf[16];
    int n = snprintf(buf, sizeof buf, "%s ", what);
    if (write(exit_fd, buf, (size_t)n) != n)
        _exit(30);
}

static void exit_note(int order) {
    char buf[16];
    snprintf(buf, sizeof buf, "%d", order);
    say(buf);
    if (order == 45)
        br_event_set(&pool_gate);
    if (order == 15)
        br_event_set(&thread_gate);
}

#define EXIT_HOOKS(N)                                                                      \
    static void at_exit_##N(void) {                                                        \
        exit_note(N);                                                                      \
    }                                                                                      \
    static br__hooks exit_hooks_##N = {                                                    \
        .order = N, .name = "test-exit-" #N, .at_exit = at_exit_##N}

EXIT_HOOKS(5);
EXIT_HOOKS(15);
EXIT_HOOKS(25);
EXIT_HOOKS(35);
EXIT_HOOKS(45);

static int blocker_task(br_task *t) {
    (void)t;
    br_event_set(&blocker_started);
    return br_event_wait(&pool_gate, BR_FOREVER);
}

static int queued_task(br_task *t) {
    (void)t;
    say("B");
    return 0;
}

static void gated_thread(void *arg) {
    (void)arg;
    if (br_event_wait(&thread_gate, BR_FOREVER) == 0)
        say("T");
}

/* The child's side; returns only to fail (the exit status names the step). */
static int exit_child(void) {
    br__hooks *hs[] = {&exit_hooks_25, &exit_hooks_5, &exit_hooks_45, &exit_hooks_15,
                       &exit_hooks_35};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        if (br__hooks_register(hs[i]) != 0)
            return 10;
    br_executor *ex = NULL; /* left for the exit hook, as a program would */
    if (br_threadpool_new(&ex, &(br_threadpool_opts){.max_workers = 1}) != 0)
        return 11;
    if (br_submit_call(ex, &(br_call){.fn = blocker_task}, NULL) != 0)
        return 12;
    if (br_event_wait(&blocker_started, BR_FOREVER) != 0)
        return 13;
    if (br_submit_call(ex, &(br_call){.fn = queued_task}, NULL) != 0)
        return 14;
    br_thread *t;
    if (br_thread_start(&t, gated_thread, NULL, NULL) != 0)
        return 15;
    br_thread_free(t); /* detached: the exit hook waits for it all the same */
    exit(0);
}

static void exit_hooks_run_highest_first(void **state) {
    (void)state;
    int fds[2];
    BR_CHECK_EQ(pipe(fds), 0);
    BR_CHECK_OK(br_event_init(&pool_gate));
    BR_CHECK_OK(br_event_init(&thread_gate));
    BR_CHECK_OK(br_event_init(&blocker_started));
    fflush(NULL); /* the child's exit() flushes stdio: don't print cmocka's lines twice */
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        exit_fd = fds[1];
        _exit(exit_child());
    }
    close(fds[1]);
    BR_CHECK(pid > 0);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    char got[128];
    size_t n = 0;
    ssize_t k;
    while (n < sizeof got - 1 && (k = read(fds[0], got + n, sizeof got - 1 - n)) > 0)
        n += (size_t)k;
    got[n] = '\0';
    close(fds[0]);
    assert_string_equal(got, "45 B 35 25 15 T 5 ");
}

BR_TEST_MAIN(cmocka_unit_test(fork_hooks_run_in_layer_order),
             cmocka_unit_test(library_hooks_keep_their_place),
             cmocka_unit_test(exit_hooks_run_highest_first))
