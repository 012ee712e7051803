/* br_thread: start, names, join with deadlines, daemon and exit, threading.local. */
#include "thread_util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* --- basics -------------------------------------------------------------------------- */

typedef struct {
    int arg_seen;
    br_thread *self;
    uint64_t ident;
    int tid;
    char name[128];
    char comm[32];
    br_event *gate; /* if set: wait for it before returning */
} probe;

static void read_comm(int tid, char *buf, size_t len) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", tid);
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (fgets(buf, (int)len, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

static void probe_fn(void *arg) {
    probe *p = arg;
    p->arg_seen = 1;
    p->self = br_thread_current();
    p->ident = br_thread_current_ident();
    p->tid = br_thread_current_native_id();
    snprintf(p->name, sizeof p->name, "%s", br_thread_current_name());
    read_comm(p->tid, p->comm, sizeof p->comm);
    if (p->gate) /* bounded: a failed check must not leave a non-daemon thread for exit() */
        br_event_wait(p->gate, br_test_hang_guard());
}

static void start_and_join(void **state) {
    (void)state;
    int before = br_thread_active_count();
    int threads_before = br_test_thread_baseline();
    br_event gate = BR_EVENT_INIT;
    probe p = {.gate = &gate};
    br_thread *t = NULL;
    BR_CHECK_OK(br_thread_start(&t, probe_fn, &p, NULL));
    BR_CHECK(t != NULL);
    BR_CHECK(br_thread_is_alive(t)); /* alive from start() on, as in Python */
    BR_CHECK_EQ(br_thread_active_count(), before + 1);
    BR_CHECK(!br_thread_is_daemon(t));
    BR_CHECK_ERR(br_thread_join(t, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_event_set(&gate));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK(!br_thread_is_alive(t));
    BR_CHECK_OK(br_thread_join(t, BR_NOWAIT)); /* again: fine */
    BR_CHECK_EQ(br_thread_active_count(), before);
    BR_CHECK_EQ(p.arg_seen, 1);
    BR_CHECK(p.self == t);
    BR_CHECK_EQ(p.ident, br_thread_ident(t));
    BR_CHECK(p.ident != br_thread_current_ident());
    BR_CHECK_EQ(p.tid, br_thread_native_id(t));
    BR_CHECK(p.tid != br_thread_current_native_id());
    BR_CHECK_OK(br_thread_free(t));
    br_test_wait_threads(threads_before);                 /* reaped */
    BR_CHECK(br_thread_current() == NULL);                /* main: not started by braid */
    BR_CHECK_EQ(br_thread_current_native_id(), (int)getpid());
}

static void misuse(void **state) {
    (void)state;
    br_thread *t = NULL;
    probe p = {0};
    BR_CHECK_ERR(br_thread_start(NULL, probe_fn, &p, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_thread_start(&t, NULL, &p, NULL), BR_EINVAL);
    BR_CHECK(t == NULL);
    BR_CHECK_ERR(br_thread_join(NULL, BR_FOREVER), BR_EINVAL);
    BR_CHECK_ERR(br_thread_free(NULL), BR_EINVAL);
    BR_CHECK(!br_thread_is_alive(NULL));
    BR_CHECK(br_thread_name(NULL) == NULL);
    BR_CHECK(!br_thread_is_daemon(NULL));
    BR_CHECK_EQ(br_thread_ident(NULL), 0);
    BR_CHECK_EQ(br_thread_native_id(NULL), 0);
    /* a stack below the system minimum */
    br_thread_opts o = {.stack_size = 1024};
    BR_CHECK_ERR(br_thread_start(&t, probe_fn, &p, &o), BR_EINVAL);
    BR_CHECK_EQ(p.arg_seen, 0); /* on error nothing runs */
}

static void stack_size_option(void **state) {
    (void)state;
    br_thread_opts o = {.stack_size = 256 * 1024};
    probe p = {0};
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, probe_fn, &p, &o));
    tu_join(t);
    BR_CHECK_EQ(p.arg_seen, 1);
}

/* --- names -----------------------------------------------------------------------------
 */

static void names(void **state) {
    (void)state;
    BR_CHECK(strcmp(br_thread_current_name(), "MainThread") == 0);

    /* default: Thread-N, N increasing */
    probe p1 = {0}, p2 = {0};
    br_thread *t1, *t2;
    BR_CHECK_OK(br_thread_start(&t1, probe_fn, &p1, NULL));
    BR_CHECK_OK(br_thread_start(&t2, probe_fn, &p2, NULL));
    unsigned long n1 = 0, n2 = 0;
    BR_CHECK_EQ(sscanf(br_thread_name(t1), "Thread-%lu", &n1), 1);
    BR_CHECK_EQ(sscanf(br_thread_name(t2), "Thread-%lu", &n2), 1);
    BR_CHECK(n2 > n1);
    tu_join(t1);
    tu_join(t2);
    BR_CHECK_EQ(sscanf(p1.name, "Thread-%lu", &n2), 1);
    BR_CHECK_EQ(n2, n1);
    BR_CHECK(strcmp(p1.comm, p1.name) == 0); /* short names reach the kernel whole */

    /* a long name: the kernel sees 15 bytes, braid keeps all of it */
    const char *longname = "crawler-fetch-worker-0042";
    br_thread_opts o = {.name = longname};
    probe p = {0};
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, probe_fn, &p, &o));
    BR_CHECK(strcmp(br_thread_name(t), longname) == 0);
    tu_join(t);
    BR_CHECK(strcmp(p.name, longname) == 0);
    BR_CHECK(strcmp(p.comm, "crawler-fetch-w") == 0);
    BR_CHECK_EQ(strlen(p.comm), 15);
}

static void *dummy_fn(void *arg) {
    probe *p = arg;
    snprintf(p->name, sizeof p->name, "%s", br_thread_current_name());
    p->self = br_thread_current();
    return NULL;
}

static void foreign_threads_are_dummies(void **state) {
    (void)state;
    probe p = {0};
    pthread_t pt;
    BR_CHECK_EQ(pthread_create(&pt, NULL, dummy_fn, &p), 0);
    BR_CHECK_EQ(pthread_join(pt, NULL), 0);
    unsigned long n = 0;
    BR_CHECK_EQ(sscanf(p.name, "Dummy-%lu", &n), 1);
    BR_CHECK(n > 0);
    BR_CHECK(p.self == NULL);
}

/* --- join --------------------------------------------------------------------------------
 */

static void join_deadline_times_out_then_succeeds(void **state) {
    (void)state;
    br_event gate = BR_EVENT_INIT;
    probe p = {.gate = &gate};
    br_thread *t = tu_spawn(probe_fn, &p);
    for (int64_t ms = 1; ms <= 40; ms *= 4) {
        int64_t t0 = br_now();
        BR_CHECK_ERR(br_thread_join(t, t0 + ms * BR_MSEC), BR_ETIMEDOUT);
        TU_CHECK_NOT_EARLY(t0, ms * BR_MSEC);
        BR_CHECK(br_thread_is_alive(t));
    }
    BR_CHECK_OK(br_event_set(&gate));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK(!br_thread_is_alive(t));
    BR_CHECK_OK(br_thread_free(t));
}

typedef struct {
    br_thread *target;
    int rc;
} joiner_ctx;

static void joiner(void *arg) {
    joiner_ctx *j = arg;
    j->rc = br_thread_join(j->target, BR_FOREVER);
}

static void many_joiners(void **state) {
    (void)state;
    br_event gate = BR_EVENT_INIT;
    probe p = {.gate = &gate};
    br_thread *t = tu_spawn(probe_fn, &p);
    enum { J = 4 };
    joiner_ctx j[J];
    br_thread *jt[J];
    for (int i = 0; i < J; i++) {
        j[i] = (joiner_ctx){.target = t, .rc = 99};
        jt[i] = tu_spawn(joiner, &j[i]);
    }
    TU_WAIT_FOR(br__wq_len(&t->wq) == J); /* all of them wait on the handle */
    BR_CHECK_OK(br_event_set(&gate));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard())); /* and the main thread too */
    for (int i = 0; i < J; i++) {
        tu_join(jt[i]);
        BR_CHECK_OK(j[i].rc);
    }
    BR_CHECK_OK(br_thread_free(t));
}

static void join_self(void *arg) {
    int *rc = arg;
    *rc = br_thread_join(br_thread_current(), BR_FOREVER);
}

static void join_self_is_edeadlk(void **state) {
    (void)state;
    int rc = 99;
    br_thread *t = tu_spawn(join_self, &rc);
    tu_join(t);
    BR_CHECK_ERR(rc, BR_EDEADLK);
}

/* --- free, detach, leaks
 * ------------------------------------------------------------------ */

typedef struct {
    br_event go, done;
} detach_ctx;

static void detached_fn(void *arg) {
    detach_ctx *d = arg;
    br_event_wait(&d->go, BR_FOREVER);
    br_event_set(&d->done); /* last touch of d */
}

static void free_a_running_thread_detaches_it(void **state) {
    (void)state;
    int before = br_thread_active_count();
    int threads_before = br_test_thread_baseline();
    static detach_ctx d; /* outlives this function's view of the thread */
    BR_CHECK_OK(br_event_init(&d.go));
    BR_CHECK_OK(br_event_init(&d.done));
    br_thread *t = tu_spawn(detached_fn, &d);
    BR_CHECK_OK(br_thread_free(t));             /* still running: detached */
    BR_CHECK_ERR(br_thread_free(t), BR_EINVAL); /* detectable: the block lives on */
    BR_CHECK_ERR(br_thread_join(t, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_EQ(br_thread_active_count(), before + 1);
    BR_CHECK_OK(br_event_set(&d.go));
    BR_CHECK_OK(br_event_wait(&d.done, br_test_hang_guard()));
    TU_WAIT_FOR(br_thread_active_count() == before);
    br_test_wait_threads(threads_before); /* it exits on its own */
}

static void nop(void *arg) {
    (void)arg;
}

static void no_leaked_threads(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    long n = br_test_scaled(500, 50);
    for (long i = 0; i < n; i++) {
        br_thread *t[4];
        tu_spawn_n(t, 4, nop, NULL);
        tu_join_n(t, 4);
    }
    br_test_wait_threads(threads_before);
    BR_CHECK_EQ(br_thread_active_count(), 0);
}

/* --- threading.local
 * -------------------------------------------------------------------------- */

static atomic_int dtor_calls;
static void count_dtor(void *v) {
    atomic_fetch_add(&dtor_calls, 1);
    free(v);
}

typedef struct {
    br_local *l;
    int seen_before, seen_after;
    int rc;
} local_ctx;

static void local_fn(void *arg) {
    local_ctx *c = arg;
    c->seen_before = br_local_get(c->l) != NULL;
    int *v = malloc(sizeof *v);
    *v = 7;
    c->rc = br_local_set(c->l, v);
    c->seen_after = *(int *)br_local_get(c->l);
}

static void locals_are_per_thread(void **state) {
    (void)state;
    br_local *l;
    BR_CHECK_OK(br_local_new(&l, count_dtor));
    int mine = 1;
    BR_CHECK(br_local_get(l) == NULL);
    BR_CHECK_OK(br_local_set(l, &mine));
    atomic_store(&dtor_calls, 0);
    enum { N = 4 };
    local_ctx c[N];
    br_thread *t[N];
    for (int i = 0; i < N; i++) {
        c[i] = (local_ctx){.l = l, .rc = 99};
        t[i] = tu_spawn(local_fn, &c[i]);
    }
    for (int i = 0; i < N; i++) {
        tu_join(t[i]);
        BR_CHECK_OK(c[i].rc);
        BR_CHECK_EQ(c[i].seen_before, 0);
        BR_CHECK_EQ(c[i].seen_after, 7);
    }
    /* join returns after the thread is gone, so its destructors have run */
    BR_CHECK_EQ(atomic_load(&dtor_calls), N);
    BR_CHECK(br_local_get(l) == &mine);
    BR_CHECK_OK(br_local_set(l, NULL));
    BR_CHECK_OK(br_local_free(l));
    BR_CHECK_ERR(br_local_new(NULL, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_local_set(NULL, &mine), BR_EINVAL);
    BR_CHECK(br_local_get(NULL) == NULL);
    BR_CHECK_ERR(br_local_free(NULL), BR_EINVAL);
}

/* --- exit semantics: daemon or not, in a child process
 * ------------------------------------------ *
 *
 * Each test forks while this process runs no other thread. The child starts one braid
 * thread and calls exit(0) (which runs braid's atexit handler) at once; the thread
 * writes a marker into a pipe after a short or a long sleep. */

typedef struct {
    int fd;
    int64_t sleep_ns;
} marker_ctx;

static void marker_fn(void *arg) {
    marker_ctx *m = arg;
    br_sleep(m->sleep_ns);
    (void)!write(m->fd, "M", 1);
}

/* Runs a child that starts the marker thread with `daemon` and exits. Returns what
 * arrived on the pipe before EOF ("M" or ""), the child's exit status, and how long
 * the child took to exit. */
static void run_exit_child(bool daemon, int64_t sleep_ns, char *got, int *status,
                           int64_t *took) {
    int fds[2];
    BR_CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    int64_t t0 = br_now();
    fflush(NULL); /* the child's exit() flushes stdio: don't print cmocka's lines twice */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        static marker_ctx m;
        m = (marker_ctx){.fd = fds[1], .sleep_ns = sleep_ns};
        br_thread_opts o = {.daemon = daemon};
        br_thread *t;
        if (br_thread_start(&t, marker_fn, &m, &o) != 0)
            _exit(10);
        br_thread_free(t); /* the handle doesn't matter to exit() */
        exit(0);
    }
    close(fds[1]);
    /* Read until EOF: every writer (the child's threads) is gone. */
    int64_t give_up = br_test_hang_guard();
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        int r = poll(&pfd, 1, 100);
        if (r > 0) {
            char c;
            ssize_t k = read(fds[0], &c, 1);
            if (k <= 0)
                break;
            if (n < 7)
                got[n++] = c;
        }
        if (br_now() > give_up) {
            kill(pid, SIGKILL);
            fail_msg("the child did not exit");
        }
    }
    got[n] = '\0';
    *status = br_test_wait_child(pid);
    *took = br_now() - t0;
    close(fds[0]);
}

static void exit_waits_for_non_daemon_threads(void **state) {
    (void)state;
    char got[8];
    int st = 0;
    int64_t took = 0;
    run_exit_child(false, 50 * BR_MSEC, got, &st, &took);
    BR_CHECK(WIFEXITED(st));
    BR_CHECK_EQ(WEXITSTATUS(st), 0);
    BR_CHECK(strcmp(got, "M") == 0); /* the thread finished before the process ended */
    BR_CHECK(took >= 50 * BR_MSEC);
}

static void exit_does_not_wait_for_daemon_threads(void **state) {
    (void)state;
    char got[8];
    int st = 0;
    int64_t took = 0;
    const int64_t long_sleep = 60 * BR_SEC;
    run_exit_child(true, long_sleep, got, &st, &took);
    BR_CHECK(WIFEXITED(st));
    BR_CHECK_EQ(WEXITSTATUS(st), 0);
    BR_CHECK(strcmp(got, "") == 0); /* killed mid-sleep by the process's end */
    BR_CHECK(took < long_sleep / 2);
}

static void exit_with(void *arg) {
    exit((int)(intptr_t)arg);
}

/* A non-daemon thread that calls exit() itself: the handler skips the caller. */
static void exit_from_a_non_daemon_thread(void **state) {
    (void)state;
    fflush(NULL); /* the child's exit() flushes stdio: don't print cmocka's lines twice */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_thread *t;
        if (br_thread_start(&t, exit_with, (void *)(intptr_t)7, NULL) != 0)
            _exit(10);
        br_sleep(BR_FOREVER); /* main never returns; the thread ends the process */
        _exit(11);
    }
    int st = br_test_wait_child(pid); /* fails if exit() from a braid thread hung */
    BR_CHECK(WIFEXITED(st));
    BR_CHECK_EQ(WEXITSTATUS(st), 7);
}

/* After fork, the parent's threads don't exist in the child: exit() there must not wait
 * for them, and they count as finished. */
static void forked_child_does_not_wait_for_parent_threads(void **state) {
    (void)state;
    br_test_settle_calibration(); /* no helper thread mid-start at the fork */
    br_event gate = BR_EVENT_INIT;
    probe p = {.gate = &gate};
    br_thread *t = tu_spawn(probe_fn, &p); /* non-daemon, blocked until we say */
    /* Fork only once it is parked on the gate: a thread inside malloc at fork time
     * leaves the allocator's lock held in the child (ASan's leak check at exit() then
     * hangs on it). */
    TU_WAIT_FOR(br__wq_len(&BR__EVENT_IMPL(&gate)->wq) == 1);
    int before = br_thread_active_count();
    fflush(NULL);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        if (br_thread_is_alive(t) || br_thread_active_count() != 0)
            _exit(12);
        if (br_thread_join(t, BR_NOWAIT) != 0)
            _exit(13);
        exit(0);
    }
    /* fails if the child waits for its parent's thread */
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK(br_thread_is_alive(t)); /* the parent's view is unchanged */
    BR_CHECK_EQ(br_thread_active_count(), before);
    BR_CHECK_OK(br_event_set(&gate));
    tu_join(t);
}


/* --- join after fn: the reap step --------------------------------------------------------
 *
 * A thread whose br_local destructor blocks until `dtor_gate` is set: once fn has
 * returned (br_thread_is_alive is false) the pthread still runs, so a join must wait
 * for the reap. Helper threads here never call BR_CHECK (a failure longjmps): they
 * leave results for the test thread to check. */

static br_local *gated_local;
static br_event dtor_gate;
static atomic_int dtor_ran, gated_set_rc;

static void gated_dtor(void *v) {
    (void)v;
    br_event_wait(&dtor_gate, br_test_hang_guard());
    atomic_fetch_add(&dtor_ran, 1);
}

static void set_gated_local(void *arg) {
    (void)arg;
    atomic_store(&gated_set_rc, br_local_set(gated_local, (void *)1));
}

static void gated_setup(void) {
    if (!gated_local)
        BR_CHECK_OK(br_local_new(&gated_local, gated_dtor));
    BR_CHECK_OK(br_event_init(&dtor_gate));
    atomic_store(&dtor_ran, 0);
    atomic_store(&gated_set_rc, 99);
}

/* Starts a thread that returns at once and then blocks in its destructor. */
static br_thread *spawn_gated(void) {
    br_thread *t = tu_spawn(set_gated_local, NULL);
    TU_WAIT_FOR(!br_thread_is_alive(t)); /* fn returned; the destructor waits */
    BR_CHECK_OK(atomic_load(&gated_set_rc));
    return t;
}

/* Opens the gate once a joiner is inside the reap (pthread_join) of `arg`. */
static void open_gate_when_reaping(void *arg) {
    struct br_thread *t = arg;
    int64_t give_up = br_test_hang_guard();
    while (atomic_load(&t->reap) != BR__REAP_BUSY && br_now() < give_up)
        br_sleep(50 * BR_USEC);
    br_event_set(&dtor_gate);
}

/* A far but finite deadline waits for the reap like any other: before the fix, the
 * conversion to CLOCK_REALTIME overflowed and such a join timed out at once. */
static void join_with_a_far_deadline_waits_for_the_reap(void **state) {
    (void)state;
    gated_setup();
    const int64_t deadlines[] = {br_deadline_after_s(8e9), BR_FOREVER - 1,
                                 br_deadline_after(BR_FOREVER / 2), br_test_hang_guard()};
    for (size_t i = 0; i < sizeof deadlines / sizeof deadlines[0]; i++) {
        BR_CHECK_OK(br_event_clear(&dtor_gate));
        atomic_store(&dtor_ran, 0);
        br_thread *t = spawn_gated();
        br_thread *opener = tu_spawn(open_gate_when_reaping, t);
        BR_CHECK_OK(br_thread_join(t, deadlines[i]));
        BR_CHECK_EQ(atomic_load(&dtor_ran), 1); /* joined means its destructors ran */
        tu_join(opener);
        BR_CHECK_OK(br_thread_free(t));
    }
}

/* A deadline that passes during the reap times out, and a later join finishes it. */
static void reap_times_out_then_a_later_join_finishes(void **state) {
    (void)state;
    gated_setup();
    br_thread *t = spawn_gated();
    int64_t t0 = br_now();
    BR_CHECK_ERR(br_thread_join(t, t0 + 20 * BR_MSEC), BR_ETIMEDOUT);
    TU_CHECK_NOT_EARLY(t0, 20 * BR_MSEC);
    BR_CHECK_ERR(br_thread_join(t, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_NONE); /* back for the next joiner */
    BR_CHECK_OK(br_event_set(&dtor_gate));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_EQ(atomic_load(&dtor_ran), 1);
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_DONE);
    BR_CHECK_OK(br_thread_free(t));
}

/* --- free racing with joins -------------------------------------------------------------- */

typedef struct {
    br_thread *t;
    int64_t deadline;
    int rc;
    atomic_int finished;
} timed_join_ctx;

static void timed_joiner(void *arg) {
    timed_join_ctx *j = arg;
    j->rc = br_thread_join(j->t, j->deadline);
    atomic_store(&j->finished, 1);
}

/* br_thread_free while another thread's join waits: the join keeps the block alive and
 * reaps the thread when it ends. */
static void free_during_a_join_keeps_the_joiner_safe(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    br_event gate = BR_EVENT_INIT;
    probe p = {.gate = &gate};
    br_thread *t = tu_spawn(probe_fn, &p);
    timed_join_ctx j = {.t = t, .deadline = br_test_hang_guard(), .rc = 99};
    br_thread *jt = tu_spawn(timed_joiner, &j);
    TU_WAIT_FOR(br__wq_len(&t->wq) == 1); /* the joiner waits for fn */
    BR_CHECK_OK(br_thread_free(t));        /* not ours any more: t is not touched again */
    BR_CHECK_OK(br_event_set(&gate));
    tu_join(jt);
    BR_CHECK_OK(j.rc);                                     /* the join reaped it */
    br_test_wait_threads(threads_before);                  /* so it is gone */
}

/* br_thread_free while a timed join is inside the reap: when that join times out, the
 * pthread must still be detached (before the fix nobody joined or detached it). */
static void free_during_a_timed_reap_detaches(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    gated_setup();
    br_thread *t = spawn_gated();
    br__thread_ref(t); /* keep the block, to look at it after br_thread_free */
    timed_join_ctx j = {
        .t = t,
        .deadline = br_deadline_after((int64_t)(300 * BR_MSEC * br_test_time_multiplier())),
        .rc = 99};
    br_thread *jt = tu_spawn(timed_joiner, &j);
    TU_WAIT_FOR(atomic_load(&t->reap) == BR__REAP_BUSY || atomic_load(&j.finished));
    BR_CHECK_OK(br_thread_free(t));
    tu_join(jt);
    BR_CHECK_ERR(j.rc, BR_ETIMEDOUT); /* the destructor still blocks */
    BR_CHECK_EQ(atomic_load(&t->reap), BR__REAP_DETACHED);
    BR_CHECK_OK(br_event_set(&dtor_gate));
    TU_WAIT_FOR(atomic_load(&dtor_ran) == 1);
    br__thread_unref(t);
    br_test_wait_threads(threads_before); /* it ended on its own */
}

/* Stress: timed joins with tiny deadlines racing with br_thread_free and with the
 * thread's end. Whatever the interleaving, the pthread ends up joined or detached
 * exactly once, and a join that returned 0 did join it. */
static void free_races_with_timed_joins(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    long rounds = br_test_scaled(2000, 200);
    for (long i = 0; i < rounds; i++) {
        br_thread *t = tu_spawn(nop, NULL);
        br__thread_ref(t);
        enum { J = 2 };
        timed_join_ctx j[J];
        br_thread *jt[J];
        for (int k = 0; k < J; k++) {
            j[k] = (timed_join_ctx){
                .t = t, .deadline = br_deadline_after(((i * 7 + k * 13) % 200) * BR_USEC),
                .rc = 99};
            jt[k] = tu_spawn(timed_joiner, &j[k]);
        }
        for (volatile long spin = 0; spin < (i % 64) * 100; spin++)
            ; /* vary where the free lands */
        BR_CHECK_OK(br_thread_free(t));
        tu_join_n(jt, J);
        uint32_t r = atomic_load(&t->reap);
        BR_CHECK(r == BR__REAP_DONE || r == BR__REAP_DETACHED);
        for (int k = 0; k < J; k++) {
            /* BR_EINVAL: that joiner only got to br_thread_join after the free */
            BR_CHECK(j[k].rc == 0 || j[k].rc == BR_ETIMEDOUT || j[k].rc == BR_EINVAL);
            if (j[k].rc == 0)
                BR_CHECK_EQ(r, BR__REAP_DONE);
        }
        br__thread_unref(t);
    }
    br_test_wait_threads(threads_before);
    BR_CHECK_EQ(br_thread_active_count(), 0);
}

/* --- start failures ------------------------------------------------------------------------ */

static int create_errno;
static int failing_create(pthread_t *pt, const pthread_attr_t *attr, void *(*start)(void *),
                          void *arg) {
    (void)pt;
    (void)attr;
    (void)start;
    (void)arg;
    return create_errno;
}

/* A failed start reports the error, runs nothing and leaves nothing behind (the ASan
 * build checks the memory). */
static void start_failure_is_clean(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    probe p = {0};
    br_thread *t = NULL;
    /* No address space holds this stack: the real pthread_create fails. */
    br_thread_opts huge = {.stack_size = SIZE_MAX / 2};
    BR_CHECK_ERR(br_thread_start(&t, probe_fn, &p, &huge), BR_EAGAIN);
    static const struct {
        int e, want;
    } cases[] = {{EAGAIN, BR_EAGAIN}, {ENOMEM, BR_ENOMEM}, {EINVAL, BR_EINVAL},
                 {EPERM, BR_EAGAIN}};
    br__thread_create = failing_create;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        create_errno = cases[i].e;
        BR_CHECK_ERR(br_thread_start(&t, probe_fn, &p, NULL), cases[i].want);
    }
    br__thread_create = pthread_create;
    BR_CHECK(t == NULL);
    BR_CHECK_EQ(p.arg_seen, 0);
    BR_CHECK_EQ(br_thread_active_count(), 0);
    /* nothing joined since the baseline: an exact count */
    BR_CHECK_EQ(br_test_count_threads(), threads_before);
    BR_CHECK_OK(br_thread_start(&t, probe_fn, &p, NULL)); /* and starting works again */
    tu_join(t);
    BR_CHECK_EQ(p.arg_seen, 1);
}

/* In the child of the next test: a pthread_create that fails, but only once the exit
 * handler waits on the half-started thread (it found it in the registry). */
static int exit_pipe = -1;
static atomic_int create_entered;

static int create_fails_while_exit_waits(pthread_t *pt, const pthread_attr_t *attr,
                                         void *(*start)(void *), void *arg) {
    (void)pt;
    (void)attr;
    (void)start;
    struct br_thread *t = arg;
    atomic_store(&create_entered, 1);
    int64_t give_up = br_test_hang_guard();
    while (br__wq_len(&t->wq) == 0 && br_now() < give_up)
        br_sleep(50 * BR_USEC);
    if (br__wq_len(&t->wq) > 0)
        (void)!write(exit_pipe, "W", 1);
    return EAGAIN;
}

static void failing_starter(void *arg) {
    (void)arg;
    br__thread_create = create_fails_while_exit_waits;
    br_thread *x = NULL;
    int rc = br_thread_start(&x, nop, NULL, NULL); /* non-daemon: exit() waits for it */
    (void)!write(exit_pipe, rc == BR_EAGAIN ? "A" : "x", 1);
}

/* pthread_create fails while exit()'s handler holds a reference to the half-started
 * thread and waits for it: the handler must be woken and the block must stay valid
 * until it lets go (before the fix the block was freed under it and exit() hung). */
static void start_failure_while_exit_waits(void **state) {
    (void)state;
    int fds[2];
    BR_CHECK_EQ(pipe2(fds, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        exit_pipe = fds[1];
        br_thread *d;
        if (br_thread_start(&d, failing_starter, NULL, &(br_thread_opts){.daemon = true}))
            _exit(10);
        br_thread_free(d);
        int64_t give_up = br_test_hang_guard();
        while (!atomic_load(&create_entered))
            if (br_now() > give_up)
                _exit(11);
        exit(0); /* the exit handler finds the half-started thread and waits */
    }
    close(fds[1]);
    char got[8] = {0};
    size_t n = 0;
    int64_t give_up = br_test_hang_guard();
    for (;;) { /* until EOF: the child is gone */
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, 100) > 0) {
            char c;
            if (read(fds[0], &c, 1) <= 0)
                break;
            if (n < sizeof got - 1)
                got[n++] = c;
        }
        if (br_now() > give_up)
            break; /* br_test_wait_child kills it and fails */
    }
    close(fds[0]);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid)); /* exit during a failed start */
    BR_CHECK_EQ(got[0], 'W'); /* the exit handler was waiting when creation failed */
    /* 'A' (br_thread_start said BR_EAGAIN) if the daemon wrote it before the end */
    BR_CHECK(got[1] == 0 || got[1] == 'A');
}

/* --- out of memory ------------------------------------------------------------------------ */

/* Every allocation of br_thread_start can fail: BR_ENOMEM, nothing runs, nothing is
 * left behind; N = 0, 1, ... until it succeeds. */
static void start_survives_oom(void **state) {
    (void)state;
    int threads_before = br_test_thread_baseline();
    const char *names[] = {NULL, "a-name-longer-than-the-kernel-keeps"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (long n = 0;; n++) {
            BR_CHECK(n < 100);
            probe p = {0};
            br_thread *t = NULL;
            br_thread_opts o = {.name = names[i]};
            br__alloc_fail_after(n);
            int rc = br_thread_start(&t, probe_fn, &p, &o);
            br__alloc_fail_after(-1);
            if (rc == 0) {
                BR_CHECK(n >= 2); /* the block and the name both go through the seam */
                tu_join(t);
                /* gone before the next failed start counts the threads */
                br_test_wait_threads(threads_before);
                BR_CHECK_EQ(p.arg_seen, 1);
                if (names[i])
                    BR_CHECK(strcmp(p.name, names[i]) == 0);
                break;
            }
            BR_CHECK_ERR(rc, BR_ENOMEM);
            BR_CHECK(t == NULL);
            BR_CHECK_EQ(p.arg_seen, 0);
            BR_CHECK_EQ(br_thread_active_count(), 0);
            BR_CHECK_EQ(br_test_count_threads(), threads_before); /* exact: see above */
        }
    }
}

static void local_new_survives_oom(void **state) {
    (void)state;
    for (long n = 0;; n++) {
        BR_CHECK(n < 100);
        br_local *l = NULL;
        br__alloc_fail_after(n);
        int rc = br_local_new(&l, NULL);
        br__alloc_fail_after(-1);
        if (rc == 0) {
            BR_CHECK(n >= 1);
            BR_CHECK_OK(br_local_set(l, &n));
            BR_CHECK(br_local_get(l) == &n);
            BR_CHECK_OK(br_local_set(l, NULL));
            BR_CHECK_OK(br_local_free(l));
            break;
        }
        BR_CHECK_ERR(rc, BR_ENOMEM);
        BR_CHECK(l == NULL);
    }
}

/* br_local_new says BR_EAGAIN when the system has no key left (PTHREAD_KEYS_MAX). */
static void locals_run_out_with_eagain(void **state) {
    (void)state;
    enum { MAX = 1 << 16 };
    static br_local *ls[MAX];
    int n = 0, rc;
    while ((rc = br_local_new(&ls[n], NULL)) == 0)
        BR_CHECK(++n < MAX);
    BR_CHECK_ERR(rc, BR_EAGAIN);
    BR_CHECK(n > 0);
    for (int i = 0; i < n; i++)
        BR_CHECK_OK(br_local_free(ls[i]));
    BR_CHECK_OK(br_local_new(&ls[0], NULL)); /* freed keys are reusable */
    BR_CHECK_OK(br_local_free(ls[0]));
}

/* --- fork while a thread finishes ---------------------------------------------------------- */

/* fork() while a thread is between the return of fn and `done` (held there by the test,
 * which holds the block's wait-queue lock): the child must see it finished. Before the
 * fix it had left the registry already, so the child never marked it finished and a
 * join there waited forever. */
static void fork_while_a_thread_finishes(void **state) {
    (void)state;
    br_test_settle_calibration(); /* no helper thread mid-start at the fork */
    br_event gate = BR_EVENT_INIT;
    probe p = {.gate = &gate};
    br_thread *t = tu_spawn(probe_fn, &p);
    br__ilock_lock(&t->wq.lock);
    /* No check may fail while we hold the ilock: the thread would sleep on it for good
     * and exit() would wait for it. So the checks come after the unlock. */
    int set_rc = br_event_set(&gate); /* fn returns now */
    bool parked = false;               /* and it sleeps on our ilock */
    int64_t give_up = br_test_hang_guard();
    while (set_rc == 0 && !(parked = atomic_load(&t->wq.lock.word) == 2) &&
           br_now() <= give_up)
        br_sleep(100 * BR_USEC);
    pid_t pid = -1;
    if (parked) {
        fflush(NULL);
        pid = fork();
    }
    if (pid == 0) {
        /* We hold (a copy of) the ilock, unless the atfork handler reset it. */
        if (atomic_load(&t->wq.lock.word) != 0)
            br__ilock_unlock(&t->wq.lock);
        if (br_thread_is_alive(t))
            _exit(11);
        if (br_thread_active_count() != 0)
            _exit(12);
        if (br_thread_join(t, br_deadline_after(2 * BR_SEC)) != 0)
            _exit(13);
        if (br_thread_free(t) != 0)
            _exit(14);
        exit(0);
    }
    br__ilock_unlock(&t->wq.lock);
    BR_CHECK_OK(set_rc);
    if (!parked)
        fail_msg("%s:%d: the thread never slept on our ilock", __FILE__, __LINE__);
    BR_CHECK(pid > 0);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid)); /* fork while a thread finishes */
    tu_join(t);
}

/* fork() while a thread runs its br_local destructors (fn returned, the pthread not yet
 * ended): in the child the thread is finished and reaped, and a join returns at once
 * instead of joining a pthread that doesn't exist there. */
static void fork_while_a_thread_runs_destructors(void **state) {
    (void)state;
    br_test_settle_calibration(); /* no helper thread mid-start at the fork */
    gated_setup();
    br_thread *t = spawn_gated();
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (br_thread_is_alive(t))
            _exit(11);
        if (br_thread_join(t, BR_FOREVER) != 0)
            _exit(12);
        if (atomic_load(&t->reap) != BR__REAP_DONE)
            _exit(13);
        if (br_thread_free(t) != 0)
            _exit(14);
        exit(0);
    }
    BR_CHECK(pid > 0);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid)); /* fork while a thread runs destructors */
    BR_CHECK_EQ(atomic_load(&dtor_ran), 0); /* the parent's thread still waits */
    BR_CHECK_OK(br_event_set(&dtor_gate));
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_EQ(atomic_load(&dtor_ran), 1);
    BR_CHECK_OK(br_thread_free(t));
}

BR_TEST_MAIN(cmocka_unit_test(start_and_join), cmocka_unit_test(misuse),
             cmocka_unit_test(stack_size_option), cmocka_unit_test(names),
             cmocka_unit_test(foreign_threads_are_dummies),
             cmocka_unit_test(join_deadline_times_out_then_succeeds),
             cmocka_unit_test(many_joiners), cmocka_unit_test(join_self_is_edeadlk),
             cmocka_unit_test(free_a_running_thread_detaches_it),
             cmocka_unit_test(no_leaked_threads), cmocka_unit_test(locals_are_per_thread),
             cmocka_unit_test(exit_waits_for_non_daemon_threads),
             cmocka_unit_test(exit_does_not_wait_for_daemon_threads),
             cmocka_unit_test(exit_from_a_non_daemon_thread),
             cmocka_unit_test(forked_child_does_not_wait_for_parent_threads),
             cmocka_unit_test(join_with_a_far_deadline_waits_for_the_reap),
             cmocka_unit_test(reap_times_out_then_a_later_join_finishes),
             cmocka_unit_test(free_during_a_join_keeps_the_joiner_safe),
             cmocka_unit_test(free_during_a_timed_reap_detaches),
             cmocka_unit_test(free_races_with_timed_joins),
             cmocka_unit_test(start_failure_is_clean),
             cmocka_unit_test(start_failure_while_exit_waits),
             cmocka_unit_test(start_survives_oom), cmocka_unit_test(local_new_survives_oom),
             cmocka_unit_test(locals_run_out_with_eagain),
             cmocka_unit_test(fork_while_a_thread_finishes),
             cmocka_unit_test(fork_while_a_thread_runs_destructors))
