/* The loop's second round: owner identities never reused (coroutines and threads), a
 * loop freed with tasks cancelled before they ran, descriptor registrations kept across
 * waits, the loop's executor shut down from a coroutine of another loop, and the dump
 * naming what each coroutine waits on.
 *
 * No test depends on timing: where a coroutine must be parked before another acts, the
 * loop's order guarantees it (a coroutine that blocks is suspended by the time any
 * other coroutine of its loop runs again).
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include "aio/io.h"
#include "aio/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- identities -------------------------------------------------------------------------- */

/* A lock left held by a finished coroutine: none of the coroutines after it (their task
 * records reuse the finished one's memory) may release it, and each has its own
 * identity, odd (a thread's is even). */
enum { ID_N = 200 };
static br_lock id_lock;
static uintptr_t ids[ID_N + 1];

static int take_and_leave(br_task *t) {
    (void)t;
    ids[0] = br__self();
    return br_lock_acquire(&id_lock, BR_NOWAIT); /* returns holding it */
}

static int try_release(br_task *t) {
    int64_t i = br_task_arg_i64(t);
    ids[i] = br__self();
    if (br_lock_owned(&id_lock))
        return BR_EFAILED;
    return br_lock_release(&id_lock);
}

static int id_main(br_task *t) {
    (void)t;
    uintptr_t me = br__self();
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, take_and_leave, NULL, 0, &f));
    BR_CHECK_OK(br_future_result(f, BR_FOREVER, NULL, NULL));
    br_future_release(f);
    BR_CHECK(br_lock_locked(&id_lock));
    for (int64_t i = 1; i <= ID_N; i++) {
        BR_CHECK_OK(br_create_task(NULL, try_release, &i, sizeof i, &f));
        BR_CHECK_OK(br_future_wait(f, BR_FOREVER));
        int code = 0;
        BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, NULL));
        BR_CHECK_ERR(code, BR_EPERM);
        br_future_release(f);
    }
    BR_CHECK(br_lock_locked(&id_lock));
    BR_CHECK_EQ(br__self(), me); /* main's own, across all those switches */
    return 0;
}

static void coroutine_identity_not_reused(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&id_lock));
    int code = -1;
    BR_CHECK_OK(br_aio_run(id_main, NULL, 0, &code));
    BR_CHECK_OK(code);
    for (int i = 0; i <= ID_N; i++) {
        BR_CHECK(ids[i] & 1);
        for (int j = 0; j < i; j++)
            BR_CHECK(ids[i] != ids[j]);
    }
    BR_CHECK((br__self() & 1) == 0); /* back on the plain thread */
    BR_CHECK(br_lock_locked(&id_lock)); /* nobody released it */
}

/* The same with threads: each thread is started after the previous one was joined, so
 * a later one may get the earlier one's thread-local block (and usually does). */
enum { TID_N = 20 };
static uintptr_t tids[TID_N + 1];
static br_lock tid_lock;

typedef struct tid_arg {
    int i;
    int rc;
} tid_arg;

static void *tid_take(void *p) {
    tid_arg *a = p;
    tids[a->i] = br__self();
    a->rc = br_lock_acquire(&tid_lock, BR_NOWAIT);
    return NULL;
}

static void *tid_try(void *p) {
    tid_arg *a = p;
    tids[a->i] = br__self();
    BR_CHECK_EQ(br__self(), tids[a->i]); /* stable */
    a->rc = br_lock_owned(&tid_lock) ? BR_EFAILED : br_lock_release(&tid_lock);
    return NULL;
}

static void thread_identity_not_reused(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&tid_lock));
    for (int i = 0; i <= TID_N; i++) {
        tid_arg a = {.i = i, .rc = 1};
        pthread_t th;
        BR_CHECK_EQ(pthread_create(&th, NULL, i == 0 ? tid_take : tid_try, &a), 0);
        BR_CHECK_EQ(pthread_join(th, NULL), 0);
        BR_CHECK_ERR(a.rc, i == 0 ? 0 : BR_EPERM);
    }
    for (int i = 0; i <= TID_N; i++) {
        BR_CHECK(tids[i] != 0 && (tids[i] & 1) == 0);
        for (int j = 0; j < i; j++)
            BR_CHECK(tids[i] != tids[j]);
    }
    BR_CHECK(br_lock_locked(&tid_lock));
    BR_CHECK_ERR(br_lock_release(&tid_lock), BR_EPERM); /* not ours either */
}

/* --- freeing a loop whose tasks were cancelled before they ran ------------------------------ */

static _Atomic int ran;
static int mark_ran(br_task *t) {
    (void)t;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void free_after_cancel_pending(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *f[3];
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_create_task(l, mark_ran, NULL, 0, &f[i]));
    BR_CHECK(br_future_cancel(f[0]));
    BR_CHECK(br_future_cancel(f[2]));
    BR_CHECK_ERR(br_loop_free(l), BR_EBUSY); /* f[1] is still to run */
    BR_CHECK(br_future_cancel(f[1]));
    BR_CHECK_OK(br_loop_free(l)); /* never run, all cancelled: nothing left */
    for (int i = 0; i < 3; i++) {
        BR_CHECK(br_future_cancelled(f[i]));
        br_future_release(f[i]);
    }
    BR_CHECK_EQ(atomic_load(&ran), 0);
}

/* Cancelled from another thread (through the inbox), and a loop that ran before. */
static void *cancel_it(void *p) {
    BR_CHECK(br_future_cancel(p));
    return NULL;
}

static void free_after_cancel_from_thread(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *a, *b;
    BR_CHECK_OK(br_create_task(l, mark_ran, NULL, 0, &a));
    BR_CHECK_OK(br_loop_run_until_complete(l, a));
    BR_CHECK_OK(br_create_task(l, mark_ran, NULL, 0, &b));
    pthread_t th;
    BR_CHECK_EQ(pthread_create(&th, NULL, cancel_it, b), 0);
    BR_CHECK_EQ(pthread_join(th, NULL), 0);
    BR_CHECK_OK(br_loop_free(l));
    BR_CHECK(br_future_cancelled(b));
    BR_CHECK_EQ(atomic_load(&ran), 1);
    br_future_release(a);
    br_future_release(b);
}

/* --- descriptor registrations kept across waits --------------------------------------- */

static int nb_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
}

/* Reads exactly one byte from fd in a coroutine: waits for it. */
static int recv1(int fd, char *c) {
    for (;;) {
        ssize_t n = recv(fd, c, 1, 0);
        if (n == 1)
            return 0;
        if (n == 0)
            return BR_EOF;
        if (errno != EAGAIN)
            return -errno;
        int rc = br__io_wait(fd, BR__IO_READ, br_test_hang_guard());
        if (rc != 0)
            return rc;
    }
}

enum { PP_N = 2000 };
typedef struct pp {
    int fd;
    bool starts;
    int rounds;
} pp;

/* Ping-pong: A sends 0, B answers 1, A 2...; each side checks every value it gets. */
static int pp_side(br_task *t) {
    pp *p = *(pp **)br_task_arg(t, NULL);
    unsigned char expect = p->starts ? 1 : 0;
    if (p->starts && send(p->fd, "\0", 1, 0) != 1)
        return BR_EFAILED;
    for (int i = 0; i < PP_N; i++) {
        char c;
        int rc = recv1(p->fd, &c);
        if (rc != 0)
            return rc;
        if ((unsigned char)c != expect)
            return BR_EFAILED;
        unsigned char v = (unsigned char)(expect + 1);
        if (!(p->starts && i == PP_N - 1) && send(p->fd, &v, 1, 0) != 1)
            return BR_EFAILED;
        expect = (unsigned char)(expect + 2);
        p->rounds++;
    }
    return 0;
}

static void steady_cycle_no_epoll_ctl(void **state) {
    (void)state;
    int fds[2];
    BR_CHECK_EQ(nb_socketpair(fds), 0);
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    pp a = {.fd = fds[0], .starts = true}, b = {.fd = fds[1]};
    pp *pa = &a, *pb = &b;
    br_future *fa, *fb;
    BR_CHECK_OK(br_create_task(l, pp_side, &pa, sizeof pa, &fa));
    BR_CHECK_OK(br_create_task(l, pp_side, &pb, sizeof pb, &fb));
    BR_CHECK_OK(br_loop_run_until_complete(l, fa));
    BR_CHECK_OK(br_loop_run_until_complete(l, fb));
    BR_CHECK_OK(br_future_result(fa, BR_NOWAIT, NULL, NULL));
    BR_CHECK_OK(br_future_result(fb, BR_NOWAIT, NULL, NULL));
    BR_CHECK_EQ(a.rounds, PP_N);
    BR_CHECK_EQ(b.rounds, PP_N);
    /* 2 * PP_N waits; one registration per descriptor (two), not two per wait. */
    BR_CHECK(l->nctl <= 4);
    br_future_release(fa);
    br_future_release(fb);
    BR_CHECK_OK(br_loop_free(l));
    close(fds[0]);
    close(fds[1]);
}

/* Readiness nobody waits for takes the interest out; a later wait puts it back and
 * sees the data. br__io_close forgets the registration, so the number reused by a new
 * socket is registered afresh and its wait works. */
static int lazy_and_forget(br_task *t) {
    br_loop *l = *(br_loop **)br_task_arg(t, NULL);
    int fds[2];
    BR_CHECK_EQ(nb_socketpair(fds), 0);
    char c;
    BR_CHECK_ERR(br__io_wait(fds[0], BR__IO_READ, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_EQ(br__loop_fd_registered(l, fds[0]), BR__POLL_IN); /* kept after the wait */
    BR_CHECK_EQ(send(fds[1], "x", 1, 0), 1);
    BR_CHECK_OK(br_aio_sleep(BR_MSEC)); /* the loop polls: readable, nobody waits */
    BR_CHECK_EQ(br__loop_fd_registered(l, fds[0]), 0);
    BR_CHECK_OK(br__io_wait(fds[0], BR__IO_READ, br_test_hang_guard()));
    BR_CHECK_OK(recv1(fds[0], &c));
    BR_CHECK_EQ(c, 'x');
    int old0 = fds[0];
    BR_CHECK_EQ(br__loop_fd_registered(l, old0), BR__POLL_IN);
    BR_CHECK_EQ(br__io_close(fds[0]), 0);
    BR_CHECK_EQ(br__loop_fd_registered(l, old0), 0);
    BR_CHECK_EQ(br__io_close(fds[1]), 0);
    int g[2];
    BR_CHECK_EQ(nb_socketpair(g), 0);
    BR_CHECK_EQ(g[0], old0); /* the lowest numbers come back */
    BR_CHECK_EQ(send(g[1], "y", 1, 0), 1);
    BR_CHECK_OK(recv1(g[0], &c));
    BR_CHECK_ERR(br__io_wait(g[0], BR__IO_READ, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_EQ(c, 'y');
    BR_CHECK_EQ(send(g[1], "z", 1, 0), 1);
    BR_CHECK_OK(br__io_wait(g[0], BR__IO_READ, br_test_hang_guard()));
    BR_CHECK_OK(recv1(g[0], &c));
    BR_CHECK_EQ(c, 'z');
    BR_CHECK_EQ(br__io_close(g[0]), 0);
    BR_CHECK_EQ(br__io_close(g[1]), 0);
    return 0;
}

static void registrations_lazy_and_forgotten(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *f;
    BR_CHECK_OK(br_create_task(l, lazy_and_forget, &l, sizeof l, &f));
    BR_CHECK_OK(br_loop_run_until_complete(l, f));
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, NULL, NULL));
    br_future_release(f);
    BR_CHECK_OK(br_loop_free(l));
}

/* Closing a descriptor through br__io_close wakes the coroutine waiting on it; its retry
 * meets the closed descriptor. */
static _Atomic int closer_fd = -1;
static int wait_closed(br_task *t) {
    (void)t;
    int fd = atomic_load(&closer_fd);
    int rc = br__io_wait(fd, BR__IO_READ, br_test_hang_guard());
    if (rc != 0)
        return rc;
    char c;
    return recv(fd, &c, 1, 0) < 0 && errno == EBADF ? 0 : BR_EFAILED;
}

static int close_under(br_task *t) {
    (void)t;
    int fds[2];
    BR_CHECK_EQ(nb_socketpair(fds), 0);
    atomic_store(&closer_fd, fds[0]);
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, wait_closed, NULL, 0, &f));
    BR_CHECK_OK(br_aio_yield()); /* it waits */
    BR_CHECK(!br_future_done(f));
    BR_CHECK_EQ(br__io_close(fds[0]), 0);
    BR_CHECK_OK(br_future_result(f, br_test_hang_guard(), NULL, NULL));
    br_future_release(f);
    close(fds[1]);
    return 0;
}

static void close_wakes_waiter(void **state) {
    (void)state;
    int code = -1;
    BR_CHECK_OK(br_aio_run(close_under, NULL, 0, &code));
    BR_CHECK_OK(code);
}

BR_TEST_MAIN(cmocka_unit_test(coroutine_identity_not_reused),
             cmocka_unit_test(thread_identity_not_reused),
             cmocka_unit_test(free_after_cancel_pending),
             cmocka_unit_test(free_after_cancel_from_thread),
             cmocka_unit_test(steady_cycle_no_epoll_ctl),
             cmocka_unit_test(registrations_lazy_and_forgotten),
             cmocka_unit_test(close_wakes_waiter))
