/* Starting children (process/start.h) under fork and spawn: the task gets its argument
 * bytes, name and descriptors; its outcome is the exit code; spawn works from a
 * multi-threaded parent; a function that can't cross is refused at the parent's call;
 * the watcher reaps every child and nothing leaks.
 * braid-test-timeout: 120 */
#include "harness.h"
#include "braid/process.h"
#include "process/start.h"
#include "process/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const int methods[] = {BR_START_FORK, BR_START_SPAWN};
enum { NMETHODS = 2 };

/* Checks its argument (a checksum of its bytes follows them, 8 bytes), its name (the
 * kernel's thread name: the first 15 bytes) and writes the checksum to its first
 * inherited descriptor. */
static int check_task(br_task *t) {
    size_t len = 0;
    const unsigned char *a = br_task_arg(t, &len);
    if (len < 8)
        return br_task_fail(t, BR_EINVAL, "argument of %zu bytes", len);
    int64_t want;
    memcpy(&want, a + len - 8, 8);
    int64_t got = br_test_checksum(a, len - 8);
    if (got != want)
        return br_task_fail(t, BR_EINVAL, "checksum %lld, want %lld", (long long)got,
                            (long long)want);
    char comm[32] = "";
    prctl(PR_GET_NAME, comm, 0, 0, 0);
    if (strcmp(comm, "checker") != 0)
        return br_task_fail(t, BR_EINVAL, "name '%s'", comm);
    if (br__child_inherited_count() != 1)
        return br_task_fail(t, BR_EINVAL, "%zu fds", br__child_inherited_count());
    int fd = br__child_inherited_fd(0);
    if (write(fd, &got, sizeof got) != (ssize_t)sizeof got)
        return br_task_fail(t, BR_EIO, "write: %d", errno);
    return 0;
}

static int fail_task(br_task *t) { return br_task_fail(t, BR_ERANGE, "out of range"); }
static int exit7_task(br_task *t) {
    (void)t;
    _exit(7);
}

static int64_t exit_code(br__child *c) {
    int64_t code = -1000;
    BR_CHECK_OK(br_future_result_i64(c->exit, br_test_hang_guard(), &code));
    return code;
}

static int ok_task(br_task *t);

/* Starts the watcher (its epoll and eventfd stay for the life of the process) so that
 * descriptor counts taken after it compare like with like. */
static void warm_up(void) {
    int64_t v = 1234;
    br__child_spec spec = {.fn = ok_task, .arg = &v, .len = sizeof v,
                           .method = BR_START_FORK};
    br__child c;
    BR_CHECK_OK(br__child_start(&spec, &c, NULL, 0));
    BR_CHECK_EQ(exit_code(&c), 0);
    br__child_close(&c);
}

static void args_name_fds(void **state) {
    (void)state;
    warm_up();
    for (int m = 0; m < NMETHODS; m++) {
        int fds0 = br_test_count_fds();
        size_t n = 100000 + 8;
        unsigned char *arg = malloc(n);
        BR_CHECK(arg != NULL);
        for (size_t i = 0; i < n - 8; i++)
            arg[i] = (unsigned char)(i * 7 + 3);
        int64_t sum = br_test_checksum(arg, n - 8);
        memcpy(arg + n - 8, &sum, 8);
        int p[2];
        BR_CHECK_OK(pipe2(p, O_CLOEXEC));
        br__child_spec spec = {.fn = check_task, .arg = arg, .len = n, .name = "checker",
                               .method = methods[m], .fds = &p[1], .nfds = 1};
        br__child c;
        char why[256] = "";
        BR_CHECK_OK(br__child_start(&spec, &c, why, sizeof why));
        free(arg); /* the child has its copy */
        BR_CHECK(c.pid > 0);
        BR_CHECK_EQ(exit_code(&c), 0);
        int64_t back = 0;
        BR_CHECK_EQ(read(p[0], &back, sizeof back), (ssize_t)sizeof back);
        BR_CHECK_EQ(back, sum);
        br__child_close(&c);
        close(p[0]);
        close(p[1]);
        br_test_wait_no_children();
        br_test_wait_fds(fds0);
    }
}

static void exit_codes(void **state) {
    (void)state;
    for (int m = 0; m < NMETHODS; m++) {
        br_task_fn fns[] = {fail_task, exit7_task};
        int64_t want[] = {1, 7};
        for (int i = 0; i < 2; i++) {
            br__child_spec spec = {.fn = fns[i], .name = "codes", .method = methods[m]};
            br__child c;
            BR_CHECK_OK(br__child_start(&spec, &c, NULL, 0));
            BR_CHECK_EQ(exit_code(&c), want[i]);
            br__child_close(&c);
        }
    }
    br_test_wait_no_children();
}

static void bad_specs(void **state) {
    (void)state;
    br__child c;
    char why[256] = "";
    br__child_spec spec = {.fn = fail_task, .method = BR_START_SPAWN};
    BR_CHECK_ERR(br__child_start(NULL, &c, NULL, 0), BR_EINVAL);
    BR_CHECK_ERR(br__child_start(&spec, NULL, NULL, 0), BR_EINVAL);
    spec.len = 3; /* no arg */
    BR_CHECK_ERR(br__child_start(&spec, &c, NULL, 0), BR_EINVAL);
    spec.len = 0;
    int bad = 1000;
    spec.fds = &bad;
    spec.nfds = 1;
    BR_CHECK_ERR(br__child_start(&spec, &c, NULL, 0), BR_EINVAL);
    spec.nfds = 0;
    spec.method = 77;
    BR_CHECK_ERR(br__child_start(&spec, &c, NULL, 0), BR_EINVAL);
    spec.method = BR_START_FORKSERVER; /* a bad descriptor, checked before the server */
    spec.fds = &bad;
    spec.nfds = 1;
    BR_CHECK_ERR(br__child_start(&spec, &c, why, sizeof why), BR_EINVAL);
    spec.nfds = 0;
    /* A heap pointer can't cross into a spawned child: refused here, nothing started. */
    warm_up();
    void *heap = malloc(32);
    spec.method = BR_START_SPAWN;
    spec.fn = (br_task_fn)heap;
    int fds0 = br_test_count_fds();
    BR_CHECK_ERR(br__child_start(&spec, &c, why, sizeof why), BR_EINVAL);
    BR_CHECK(strstr(why, "not code") != NULL);
    BR_CHECK(c.pid == 0 && c.pidfd == -1 && c.exit == NULL);
    br_test_wait_fds(fds0);
    free(heap);
    br_test_wait_no_children();
}

static void *sleeper(void *arg) {
    int fd = *(int *)arg;
    char ch;
    while (read(fd, &ch, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

static int ok_task(br_task *t) { return br_task_arg_i64(t) == 1234 ? 0 : BR_EINVAL; }

/* Three threads run (blocked on a pipe); spawn starts children as usual. */
static void spawn_from_threads(void **state) {
    (void)state;
    int gate[2];
    BR_CHECK_OK(pipe2(gate, O_CLOEXEC));
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        BR_CHECK_EQ(pthread_create(&th[i], NULL, sleeper, &gate[0]), 0);
    BR_CHECK(br__other_threads() >= 3);
    int64_t v = 1234;
    for (int i = 0; i < 3; i++) {
        br__child_spec spec = {.fn = ok_task, .arg = &v, .len = sizeof v,
                               .method = BR_START_SPAWN};
        br__child c;
        BR_CHECK_OK(br__child_start(&spec, &c, NULL, 0));
        BR_CHECK_EQ(exit_code(&c), 0);
        br__child_close(&c);
    }
    close(gate[1]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    close(gate[0]);
    br_test_wait_no_children();
}

static int pause_task(br_task *t) {
    (void)t;
    for (;;)
        pause();
    return 0;
}

static int gate_task(br_task *t) {
    const int *fds = br_task_arg(t, NULL);
    close(fds[1]); /* the copy fork gave us */
    int fd = fds[0];
    char ch;
    while (read(fd, &ch, 1) < 0 && errno == EINTR) {
    }
    return 0;
}

typedef struct from_cb {
    int method;
    int rc;
    br__child c;
    br_event done;
} from_cb;

static void start_in_callback(br_future *f, void *arg) {
    (void)f;
    from_cb *x = arg;
    br__child_spec spec = {.fn = pause_task, .method = x->method, .name = "replacement"};
    x->rc = br__child_start(&spec, &x->c, NULL, 0);
    br_event_set(&x->done);
}

/* A pool replaces a dead worker from its exit future's done-callback, on braid's watcher
 * thread (which blocks every signal): the new child must still die of SIGTERM. */
static void start_from_watcher_thread(void **state) {
    (void)state;
    for (int m = 0; m < NMETHODS; m++) {
        int gate[2];
        BR_CHECK_OK(pipe2(gate, O_CLOEXEC));
        br__child_spec spec = {.fn = gate_task, .arg = gate, .len = sizeof gate,
                               .method = BR_START_FORK};
        br__child a;
        BR_CHECK_OK(br__child_start(&spec, &a, NULL, 0));
        from_cb x = {.method = methods[m], .rc = 1};
        BR_CHECK_OK(br_event_init(&x.done));
        BR_CHECK_OK(br_future_add_done_callback(a.exit, start_in_callback, &x));
        close(gate[1]); /* a exits; the watcher runs the callback */
        BR_CHECK_OK(br_event_wait(&x.done, br_test_hang_guard()));
        BR_CHECK_OK(x.rc);
        BR_CHECK_EQ(exit_code(&a), 0);
        BR_CHECK_OK(br__child_signal(&x.c, SIGTERM));
        BR_CHECK_EQ(exit_code(&x.c), -SIGTERM);
        br__child_close(&x.c);
        br__child_close(&a);
        close(gate[0]);
        br_event_destroy(&x.done);
    }
    br_test_wait_no_children();
}

BR_TEST_MAIN(cmocka_unit_test(args_name_fds), cmocka_unit_test(exit_codes),
             cmocka_unit_test(bad_specs), cmocka_unit_test(spawn_from_threads),
             cmocka_unit_test(start_from_watcher_thread))
