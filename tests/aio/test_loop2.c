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

#include <braid/stream.h>

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

/* A descriptor closed with a plain close() while registered (behind the loop's back:
 * epoll dropped the old file's registration, the table still says IN), and a new one
 * under the same number handed to a stream: the stream's first wait says BR__IO_NEW,
 * so the stale entry is forgotten and the new file registered, and the read gets what
 * a sibling task sends after the reader parked (before the fix it slept until the hang
 * guard: its wait found IN registered and made no call). */
struct behind {
    br_loop *l;
    int peer; /* the new pair's other end */
};
static int behind_writer(br_task *t) {
    struct behind *b = *(struct behind **)br_task_arg(t, NULL);
    return send(b->peer, "hello", 5, 0) == 5 ? 0 : BR_EFAILED;
}
static int behind_main(br_task *t) {
    struct behind *b = *(struct behind **)br_task_arg(t, NULL);
    int fds[2];
    BR_CHECK_EQ(nb_socketpair(fds), 0);
    BR_CHECK_ERR(br__io_wait(fds[0], BR__IO_READ, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    int old0 = fds[0];
    BR_CHECK_EQ(br__loop_fd_registered(b->l, old0), BR__POLL_IN);
    BR_CHECK_EQ(close(fds[0]), 0); /* behind the loop's back */
    BR_CHECK_EQ(br__loop_fd_registered(b->l, old0), BR__POLL_IN); /* stale */
    int g[2];
    BR_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g), 0);
    BR_CHECK_EQ(g[0], old0); /* the lowest number comes back */
    br_stream *s;
    BR_CHECK_OK(br_stream_from_fd(g[0], &s));
    b->peer = g[1];
    br_future *w;
    BR_CHECK_OK(br_create_task(NULL, behind_writer, &b, sizeof b, &w)); /* runs once we park */
    char buf[8] = {0};
    size_t got = 0;
    BR_CHECK_OK(br_stream_readexactly(s, buf, 5, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 5);
    BR_CHECK(memcmp(buf, "hello", 5) == 0);
    BR_CHECK_EQ(br__loop_fd_registered(b->l, old0), BR__POLL_IN); /* the new file's */
    BR_CHECK_OK(br_future_result(w, br_test_hang_guard(), NULL, NULL));
    br_future_release(w);
    BR_CHECK_OK(br_stream_close(s));
    br_stream_free(s);
    BR_CHECK_EQ(br__loop_fd_registered(b->l, old0), 0);
    BR_CHECK_EQ(close(g[1]), 0);
    BR_CHECK_EQ(close(fds[1]), 0);
    return 0;
}

static void closed_behind_the_loops_back(void **state) {
    (void)state;
    struct behind b = {0};
    BR_CHECK_OK(br_loop_new(&b.l));
    struct behind *bp = &b;
    br_future *f;
    BR_CHECK_OK(br_create_task(b.l, behind_main, &bp, sizeof bp, &f));
    BR_CHECK_OK(br_loop_run_until_complete(b.l, f));
    BR_CHECK_OK(br_future_result(f, BR_NOWAIT, NULL, NULL));
    br_future_release(f);
    BR_CHECK_OK(br_loop_free(b.l));
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

/* --- the loop's executor shut down from a coroutine of another loop -------------------- */

/* L2's main submits three tasks to L1's executor while no thread runs L1, and a second
 * coroutine of L2 calls shutdown(wait) on it: that coroutine suspends (L2 runs on: main
 * sees it not done), then main starts a thread that runs L1; the shutdown returns once
 * L1's tasks are over, every result there. */
typedef struct sd {
    br_loop *l1;
    br_future *f[3];
    _Atomic int shut_rc;
} sd;

static int sq(br_task *t) {
    int64_t v = br_task_arg_i64(t);
    BR_CHECK_OK(br_aio_yield());
    return br_task_return_i64(t, v * v);
}

static int shutter(br_task *t) {
    sd *x = *(sd **)br_task_arg(t, NULL);
    atomic_store(&x->shut_rc, br_executor_shutdown(br_loop_executor(x->l1), true, false));
    return 0;
}

static void run_l1(void *p) {
    sd *x = p;
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_loop_run_until_complete(x->l1, x->f[i]));
}

static int sd_main(br_task *t) {
    sd *x = *(sd **)br_task_arg(t, NULL);
    for (int64_t i = 0; i < 3; i++)
        BR_CHECK_OK(br_submit_i64(br_loop_executor(x->l1), sq, i + 2, &x->f[i]));
    br_future *s;
    BR_CHECK_OK(br_create_task(NULL, shutter, &x, sizeof x, &s));
    for (int i = 0; i < 3; i++)
        BR_CHECK_OK(br_aio_yield());
    BR_CHECK(!br_future_done(s)); /* suspended in shutdown, and we run */
    BR_CHECK_EQ(atomic_load(&x->shut_rc), 1);
    br_future *g;
    BR_CHECK_ERR(br_submit_i64(br_loop_executor(x->l1), sq, 9, &g), BR_ESHUTDOWN);
    br_thread *th;
    BR_CHECK_OK(br_thread_start(&th, run_l1, x, NULL));
    BR_CHECK_OK(br_future_result(s, br_test_hang_guard(), NULL, NULL));
    BR_CHECK_OK(atomic_load(&x->shut_rc));
    for (int i = 0; i < 3; i++) {
        BR_CHECK(br_future_done(x->f[i])); /* shutdown returned after every task */
        int64_t v;
        BR_CHECK_OK(br_future_result_i64(x->f[i], BR_NOWAIT, &v));
        BR_CHECK_EQ(v, (i + 2) * (i + 2));
    }
    BR_CHECK_OK(br_thread_join(th, br_test_hang_guard()));
    br_thread_free(th);
    br_future_release(s);
    return 0;
}

static void shutdown_wait_from_another_loop(void **state) {
    (void)state;
    sd x = {.shut_rc = 1};
    BR_CHECK_OK(br_loop_new(&x.l1));
    sd *px = &x;
    int code = -1;
    BR_CHECK_OK(br_aio_run(sd_main, &px, sizeof px, &code));
    BR_CHECK_OK(code);
    for (int i = 0; i < 3; i++)
        br_future_release(x.f[i]);
    BR_CHECK_OK(br_loop_free(x.l1));
}

/* From a plain thread, and with nothing left: returns at once; from the loop's own
 * task: BR_EDEADLK. */
static int self_shut(br_task *t) {
    (void)t;
    return br_executor_shutdown(br_loop_executor(br_loop_current()), true, false);
}

static void shutdown_wait_idle_and_self(void **state) {
    (void)state;
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    br_future *f;
    BR_CHECK_OK(br_submit(br_loop_executor(l), self_shut, NULL, 0, &f));
    BR_CHECK_OK(br_loop_run_until_complete(l, f));
    int code = 0;
    BR_CHECK_OK(br_future_exception(f, BR_NOWAIT, &code, NULL));
    BR_CHECK_ERR(code, BR_EDEADLK);
    br_future_release(f);
    BR_CHECK_OK(br_executor_shutdown(br_loop_executor(l), true, false));
    BR_CHECK_OK(br_loop_free(l));
}

/* --- the dump names what each coroutine waits on ----------------------------------------- */

static br_lock d_lock;
static br_event d_ev;
static br_queue *d_q;
static int d_fds[2];

static int d_on_lock(br_task *t) {
    (void)t;
    int rc = br_lock_acquire(&d_lock, BR_FOREVER);
    return rc != 0 ? rc : br_lock_release(&d_lock);
}
static int d_on_event(br_task *t) {
    (void)t;
    return br_event_wait(&d_ev, BR_FOREVER);
}
static int d_on_queue(br_task *t) {
    (void)t;
    void *item;
    return br_queue_get(d_q, &item, BR_FOREVER);
}
static int d_on_sleep(br_task *t) {
    (void)t;
    return br_aio_sleep(3600 * BR_SEC);
}
static int d_on_fd(br_task *t) {
    (void)t;
    return br__io_wait(d_fds[0], BR__IO_READ, BR_FOREVER);
}
static int d_on_future(br_task *t) {
    br_future *other = *(br_future **)br_task_arg(t, NULL);
    return br_future_wait(other, BR_FOREVER);
}
/* The other primitives, each named in the dump after what it is (an RLock waits in the
 * lock's code, and was once listed as "lock"). */
static br_rlock d_rlock;
static br_sem d_sem;
static br_cond d_cond;
static br_barrier d_barrier;
static br_queue *d_jq; /* one item put and not yet done: a join waits */
static int d_on_rlock(br_task *t) {
    (void)t;
    int rc = br_rlock_acquire(&d_rlock, BR_FOREVER);
    return rc != 0 ? rc : br_rlock_release(&d_rlock);
}
static int d_on_sem(br_task *t) {
    (void)t;
    int rc = br_sem_acquire(&d_sem, BR_FOREVER);
    return rc != 0 ? rc : br_sem_release(&d_sem, 1);
}
static int d_on_cond(br_task *t) {
    (void)t;
    int rc = br_cond_acquire(&d_cond, BR_FOREVER);
    if (rc != 0)
        return rc;
    rc = br_cond_wait(&d_cond, BR_FOREVER);
    int rrc = br_cond_release(&d_cond);
    return rc != 0 ? rc : rrc;
}
static int d_on_barrier(br_task *t) {
    (void)t;
    int rc = br_barrier_wait(&d_barrier, BR_FOREVER);
    return rc < 0 ? rc : 0;
}
static int d_on_join(br_task *t) {
    (void)t;
    return br_queue_join(d_jq, BR_FOREVER);
}

static int d_main(br_task *t) {
    (void)t;
    BR_CHECK_OK(br_lock_acquire(&d_lock, BR_NOWAIT));
    BR_CHECK_OK(br_rlock_acquire(&d_rlock, BR_NOWAIT));
    struct {
        const char *name;
        br_task_fn fn;
    } ts[] = {{"on-lock", d_on_lock},   {"on-event", d_on_event}, {"on-queue", d_on_queue},
              {"on-sleep", d_on_sleep}, {"on-fd", d_on_fd},       {"on-future", d_on_future},
              {"on-rlock", d_on_rlock}, {"on-sem", d_on_sem},     {"on-cond", d_on_cond},
              {"on-barrier", d_on_barrier}, {"on-join", d_on_join}};
    enum { NT = sizeof ts / sizeof ts[0] };
    br_future *f[NT] = {0};
    for (int i = 0; i < NT; i++) {
        BR_CHECK_OK(br_create_task_opts(NULL, ts[i].fn, &f[3], sizeof f[3],
                                        &(br_task_opts){.name = ts[i].name}, &f[i]));
    }
    BR_CHECK_OK(br_aio_yield()); /* all of them park */
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    BR_CHECK(mem != NULL);
    size_t n = br_aio_dump(mem);
    fclose(mem);
    BR_CHECK_EQ(n, NT + 1);
    char want[64];
    snprintf(want, sizeof want, "on-fd suspended on fd %d read\n", d_fds[0]);
    const char *lines[] = {"on-lock suspended on lock\n", "on-event suspended on event\n",
                           "on-queue suspended on queue\n", "on-sleep suspended on sleep\n",
                           want, "on-future suspended on future\n",
                           "on-rlock suspended on rlock\n", "on-sem suspended on semaphore\n",
                           "on-cond suspended on condition\n",
                           "on-barrier suspended on barrier\n",
                           "on-join suspended on queue join\n"};
    for (int i = 0; i < NT; i++)
        if (strstr(buf, lines[i]) == NULL)
            fail_msg("no \"%.*s\" in the dump:\n%s", (int)strlen(lines[i]) - 1, lines[i], buf);
    BR_CHECK(strstr(buf, "running\n") != NULL); /* main itself */
    free(buf);
    /* Let them all go: each returns 0. */
    BR_CHECK_OK(br_lock_release(&d_lock));
    BR_CHECK_OK(br_rlock_release(&d_rlock));
    BR_CHECK_OK(br_sem_release(&d_sem, 1));
    BR_CHECK_OK(br_cond_acquire(&d_cond, BR_FOREVER));
    BR_CHECK_OK(br_cond_notify(&d_cond, 1));
    BR_CHECK_OK(br_cond_release(&d_cond));
    void *item;
    BR_CHECK_OK(br_queue_get(d_jq, &item, BR_NOWAIT));
    BR_CHECK_OK(br_queue_task_done(d_jq));
    BR_CHECK(br_barrier_wait(&d_barrier, br_test_hang_guard()) >= 0);
    BR_CHECK_OK(br_event_set(&d_ev));
    BR_CHECK_OK(br_queue_put(d_q, NULL, BR_FOREVER));
    BR_CHECK(br_future_cancel(f[3]));
    BR_CHECK_EQ(write(d_fds[1], "x", 1), 1);
    for (int i = 0; i < NT; i++) {
        BR_CHECK_OK(br_future_wait(f[i], br_test_hang_guard()));
        if (i != 3)
            BR_CHECK_OK(br_future_result(f[i], BR_NOWAIT, NULL, NULL));
        br_future_release(f[i]);
    }
    return 0;
}

static void dump_names_what_is_waited_on(void **state) {
    (void)state;
    BR_CHECK_OK(br_lock_init(&d_lock));
    BR_CHECK_OK(br_event_init(&d_ev));
    BR_CHECK_OK(br_queue_new(&d_q, NULL));
    BR_CHECK_OK(br_rlock_init(&d_rlock));
    BR_CHECK_OK(br_sem_init(&d_sem, 0));
    BR_CHECK_OK(br_cond_init(&d_cond, (br_rlock *)NULL));
    BR_CHECK_OK(br_barrier_init(&d_barrier, 2, NULL, NULL));
    BR_CHECK_OK(br_queue_new(&d_jq, NULL));
    BR_CHECK_OK(br_queue_put(d_jq, NULL, BR_NOWAIT));
    BR_CHECK_EQ(nb_socketpair(d_fds), 0);
    int code = -1;
    BR_CHECK_OK(br_aio_run(d_main, NULL, 0, &code));
    BR_CHECK_OK(code);
    br_queue_free(d_q);
    br_queue_free(d_jq);
    BR_CHECK_OK(br_barrier_destroy(&d_barrier));
    BR_CHECK_OK(br_cond_destroy(&d_cond));
    BR_CHECK_OK(br_sem_destroy(&d_sem));
    BR_CHECK_OK(br_rlock_destroy(&d_rlock));
    close(d_fds[0]);
    close(d_fds[1]);
}

BR_TEST_MAIN(cmocka_unit_test(coroutine_identity_not_reused),
             cmocka_unit_test(thread_identity_not_reused),
             cmocka_unit_test(free_after_cancel_pending),
             cmocka_unit_test(free_after_cancel_from_thread),
             cmocka_unit_test(steady_cycle_no_epoll_ctl),
             cmocka_unit_test(registrations_lazy_and_forgotten),
             cmocka_unit_test(closed_behind_the_loops_back),
             cmocka_unit_test(close_wakes_waiter),
             cmocka_unit_test(shutdown_wait_from_another_loop),
             cmocka_unit_test(shutdown_wait_idle_and_self),
             cmocka_unit_test(dump_names_what_is_waited_on))
