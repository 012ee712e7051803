/* Process-shared synchronisation (braid/mp_sync.h): every primitive between forked
 * processes, counts checked; robust recovery after an owner is SIGKILLed or exits
 * holding a lock; deadlines; misuse codes; no leaked descriptors or children.
 *
 * Children report through their exit status: 0 when all went well, else the number of
 * the check that failed (CHILD_CHECK). Every blocking call a test's parent makes has
 * the hang guard as its deadline, and br_test_wait_child kills a child stuck past it. */
#include "harness.h"
#include "process/shm.h"

#include "braid/mp_sync.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* braid-test-timeout: 120 */

#define CHILD_CHECK(cond, code)                                                            \
    do {                                                                                   \
        if (!(cond))                                                                       \
            _exit(code);                                                                   \
    } while (0)

static pid_t fork_child(void) {
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    return pid;
}

static void reap_all(const pid_t *pids, int n) {
    for (int i = 0; i < n; i++)
        BR_CHECK_CHILD_OK(br_test_wait_child(pids[i]));
}

/* --- Lock: a plain counter under the lock, from several processes ---------------- */

struct counter_shared {
    br_mp_lock lock;
    long counter;       /* plain: only the lock protects it */
    _Atomic int inside; /* threads inside the critical section: never above 1 */
    _Atomic int overlap;
};

static void lock_counter_exact(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct counter_shared), "test-mp"));
    struct counter_shared *sh = m.base;
    BR_CHECK_OK(br_mp_lock_init(&sh->lock));
    enum { NPROC = 4 };
    long iters = br_test_scaled(20000, 500);
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        if ((pids[p] = fork_child()) == 0) {
            for (long i = 0; i < iters; i++) {
                CHILD_CHECK(br_mp_lock_acquire(&sh->lock, BR_FOREVER) == 0, 1);
                if (atomic_fetch_add(&sh->inside, 1) != 0)
                    atomic_store(&sh->overlap, 1);
                sh->counter++;
                atomic_fetch_sub(&sh->inside, 1);
                CHILD_CHECK(br_mp_lock_owned(&sh->lock), 2);
                CHILD_CHECK(br_mp_lock_release(&sh->lock) == 0, 3);
            }
            _exit(0);
        }
    }
    reap_all(pids, NPROC);
    BR_CHECK_EQ(sh->counter, NPROC * iters);
    BR_CHECK_EQ(atomic_load(&sh->overlap), 0);
    BR_CHECK(!br_mp_lock_locked(&sh->lock));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A _new lock, shared by fork and by descriptor (br_mp_locate / br_mp_attach): a view
 * attached again sees the same lock. */
static void lock_new_locate_attach(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_lock *l;
    BR_CHECK_OK(br_mp_lock_new(&l));
    int fd;
    size_t size, off;
    BR_CHECK_OK(br_mp_locate(l, &fd, &size, &off));
    BR_CHECK(fd >= 0 && size >= 4096 && off > 0 && off < size);
    void *v;
    BR_CHECK_OK(br_mp_attach(&v, fd, size, off));
    br_mp_lock *l2 = v;
    BR_CHECK(l2 != l);
    BR_CHECK_EQ(br_test_count_fds(), fds + 1); /* the attached view keeps no descriptor */
    BR_CHECK_OK(br_mp_lock_acquire(l, BR_NOWAIT));
    BR_CHECK(br_mp_lock_locked(l2) && br_mp_lock_owned(l2));
    BR_CHECK_ERR(br_mp_lock_acquire(l2, BR_NOWAIT), BR_EDEADLK);
    br_mp_sem *checked;
    BR_CHECK_OK(br_mp_sem_new(&checked, 0));
    pid_t pid = fork_child();
    if (pid == 0) {
        CHILD_CHECK(br_mp_lock_acquire(l2, BR_NOWAIT) == BR_ETIMEDOUT, 1);
        CHILD_CHECK(!br_mp_lock_owned(l), 2);
        CHILD_CHECK(br_mp_lock_release(l) == BR_EPERM, 3);
        CHILD_CHECK(br_mp_sem_release(checked, 1) == 0, 8);
        CHILD_CHECK(br_mp_lock_acquire(l, br_test_hang_guard()) == 0, 4);
        CHILD_CHECK(br_mp_lock_release(l2) == 0, 5);
        CHILD_CHECK(br_mp_lock_free(l) == 0, 6); /* closes the child's inherited fd */
        CHILD_CHECK(br_mp_lock_free(l2) == 0, 7);
        _exit(0);
    }
    BR_CHECK_OK(br_mp_sem_acquire(checked, br_test_hang_guard()));
    BR_CHECK_OK(br_mp_lock_release(l2));
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_OK(br_mp_sem_free(checked));
    BR_CHECK(!br_mp_lock_locked(l));
    int fd2 = -2;
    BR_CHECK_OK(br_mp_locate(l2, &fd2, NULL, NULL));
    BR_CHECK_EQ(fd2, fd); /* this process holds the creator's descriptor */
    BR_CHECK_OK(br_mp_lock_free(l2));
    BR_CHECK_OK(br_mp_lock_free(l));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- RLock ------------------------------------------------------------------------ */

struct rlock_shared {
    br_mp_rlock r;
    _Atomic int stage;
};

static void rlock_reentry(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct rlock_shared), "test-mp"));
    struct rlock_shared *sh = m.base;
    BR_CHECK_OK(br_mp_rlock_init(&sh->r));
    for (unsigned i = 1; i <= 5; i++) {
        BR_CHECK_OK(br_mp_rlock_acquire(&sh->r, BR_NOWAIT));
        BR_CHECK_EQ(br_mp_rlock_count(&sh->r), i);
    }
    BR_CHECK(br_mp_rlock_owned(&sh->r));
    pid_t pid = fork_child();
    if (pid == 0) {
        CHILD_CHECK(!br_mp_rlock_owned(&sh->r), 1);
        CHILD_CHECK(br_mp_rlock_count(&sh->r) == 0, 2);
        CHILD_CHECK(br_mp_rlock_acquire(&sh->r, BR_NOWAIT) == BR_ETIMEDOUT, 3);
        CHILD_CHECK(br_mp_rlock_release(&sh->r) == BR_EPERM, 4);
        atomic_store(&sh->stage, 1);
        /* Waits for the parent's five releases, then re-enters itself. */
        CHILD_CHECK(br_mp_rlock_acquire(&sh->r, br_test_hang_guard()) == 0, 5);
        CHILD_CHECK(br_mp_rlock_acquire(&sh->r, BR_NOWAIT) == 0, 6);
        CHILD_CHECK(br_mp_rlock_count(&sh->r) == 2, 7);
        CHILD_CHECK(br_mp_rlock_release(&sh->r) == 0, 8);
        CHILD_CHECK(br_mp_rlock_release(&sh->r) == 0, 9);
        CHILD_CHECK(br_mp_rlock_release(&sh->r) == BR_EPERM, 10);
        _exit(0);
    }
    while (atomic_load(&sh->stage) == 0)
        sched_yield();
    for (unsigned i = 5; i >= 1; i--) {
        BR_CHECK_EQ(br_mp_rlock_count(&sh->r), i);
        BR_CHECK_ERR(br_mp_rlock_destroy(&sh->r), BR_EBUSY);
        BR_CHECK_OK(br_mp_rlock_release(&sh->r));
    }
    BR_CHECK_ERR(br_mp_rlock_release(&sh->r), BR_EPERM);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_OK(br_mp_rlock_destroy(&sh->r));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- Semaphore ---------------------------------------------------------------------- */

struct sem_shared {
    br_mp_sem sem;
    _Atomic int in_flight, max_seen, peak_reached;
    _Atomic long total;
};

/* 8 processes through a semaphore of 3: never more than 3 inside, and 3 is reached
 * (the first holders wait inside until it is, so it can't be missed). */
static void sem_caps_concurrency(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct sem_shared), "test-mp"));
    struct sem_shared *sh = m.base;
    BR_CHECK_OK(br_mp_sem_init_bounded(&sh->sem, 3));
    enum { NPROC = 8 };
    long iters = br_test_scaled(2000, 100);
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        if ((pids[p] = fork_child()) == 0) {
            int64_t guard = br_test_hang_guard();
            for (long i = 0; i < iters; i++) {
                CHILD_CHECK(br_mp_sem_acquire(&sh->sem, guard) == 0, 1);
                int now = atomic_fetch_add(&sh->in_flight, 1) + 1;
                int mx = atomic_load(&sh->max_seen);
                while (now > mx && !atomic_compare_exchange_weak(&sh->max_seen, &mx, now)) {
                }
                if (now == 3)
                    atomic_store(&sh->peak_reached, 1);
                while (!atomic_load(&sh->peak_reached)) {
                    CHILD_CHECK(br_now() < guard, 2);
                    sched_yield();
                }
                if (i % 7 == 0)
                    sched_yield();
                atomic_fetch_add(&sh->total, 1);
                atomic_fetch_sub(&sh->in_flight, 1);
                CHILD_CHECK(br_mp_sem_release(&sh->sem, 1) == 0, 3);
            }
            _exit(0);
        }
    }
    reap_all(pids, NPROC);
    BR_CHECK_EQ(atomic_load(&sh->max_seen), 3);
    BR_CHECK_EQ(atomic_load(&sh->total), NPROC * iters);
    BR_CHECK_EQ(br_mp_sem_value(&sh->sem), 3);
    BR_CHECK_ERR(br_mp_sem_release(&sh->sem, 1), BR_EOVERFLOW);
    BR_CHECK_EQ(br_mp_sem_value(&sh->sem), 3);
    BR_CHECK_OK(br_mp_sem_destroy(&sh->sem));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A unit released in one process wakes a waiter in another; release(n) wakes n. */
static void sem_release_wakes_other_process(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_sem *s, *done;
    BR_CHECK_OK(br_mp_sem_new(&s, 0));
    BR_CHECK_OK(br_mp_sem_new(&done, 0));
    enum { NPROC = 4 };
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        if ((pids[p] = fork_child()) == 0) {
            CHILD_CHECK(br_mp_sem_acquire(s, br_test_hang_guard()) == 0, 1);
            CHILD_CHECK(br_mp_sem_release(done, 1) == 0, 2);
            _exit(0);
        }
    }
    BR_CHECK_ERR(br_mp_sem_acquire(s, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_sem_release(s, NPROC));
    for (int p = 0; p < NPROC; p++)
        BR_CHECK_OK(br_mp_sem_acquire(done, br_test_hang_guard()));
    reap_all(pids, NPROC);
    BR_CHECK_EQ(br_mp_sem_value(s), 0);
    BR_CHECK_OK(br_mp_sem_free(s));
    BR_CHECK_OK(br_mp_sem_free(done));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- Event ---------------------------------------------------------------------------- */

struct event_shared {
    br_mp_event ev;
    br_mp_sem ready;
};

static void event_wakes_other_processes(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct event_shared), "test-mp"));
    struct event_shared *sh = m.base;
    BR_CHECK_OK(br_mp_event_init(&sh->ev));
    BR_CHECK_OK(br_mp_sem_init(&sh->ready, 0));
    BR_CHECK(!br_mp_event_is_set(&sh->ev));
    BR_CHECK_ERR(br_mp_event_wait(&sh->ev, BR_NOWAIT), BR_ETIMEDOUT);
    enum { NPROC = 5 };
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        if ((pids[p] = fork_child()) == 0) {
            CHILD_CHECK(br_mp_sem_release(&sh->ready, 1) == 0, 1);
            CHILD_CHECK(br_mp_event_wait(&sh->ev, br_test_hang_guard()) == 0, 2);
            CHILD_CHECK(br_mp_event_is_set(&sh->ev), 3);
            _exit(0);
        }
    }
    for (int p = 0; p < NPROC; p++)
        BR_CHECK_OK(br_mp_sem_acquire(&sh->ready, br_test_hang_guard()));
    BR_CHECK_OK(br_mp_event_set(&sh->ev));
    BR_CHECK_OK(br_mp_event_set(&sh->ev)); /* twice: harmless */
    reap_all(pids, NPROC);
    BR_CHECK_OK(br_mp_event_wait(&sh->ev, BR_NOWAIT));
    BR_CHECK_OK(br_mp_event_clear(&sh->ev));
    BR_CHECK(!br_mp_event_is_set(&sh->ev));
    BR_CHECK_ERR(br_mp_event_wait(&sh->ev, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_event_destroy(&sh->ev));
    BR_CHECK_OK(br_mp_sem_destroy(&sh->ready));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* Waits (within the hang guard) until process pid is asleep in a futex wait, as
 * /proc/<pid>/syscall shows: a forked child with one thread that waits on a braid
 * object sleeps nowhere else. */
static void wait_in_futex(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
    int64_t guard = br_test_hang_guard();
    for (;;) {
        FILE *f = fopen(path, "r");
        BR_CHECK(f != NULL);
        long nr = -1;
        int got = fscanf(f, "%ld", &nr);
        fclose(f);
        if (got == 1 && nr == SYS_futex)
            return;
        BR_CHECK(br_now() < guard);
        usleep(200);
    }
}

/* A set cleared again at once still releases the waiters it found asleep (Python's
 * Event does the same). */
static void event_set_then_clear_wakes_sleepers(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_event *e;
    BR_CHECK_OK(br_mp_event_new(&e));
    enum { NPROC = 3 };
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        if ((pids[p] = fork_child()) == 0) {
            CHILD_CHECK(br_mp_event_wait(e, br_test_hang_guard()) == 0, 1);
            _exit(0);
        }
    }
    for (int p = 0; p < NPROC; p++)
        wait_in_futex(pids[p]);
    BR_CHECK_OK(br_mp_event_set(e));
    BR_CHECK_OK(br_mp_event_clear(e));
    reap_all(pids, NPROC);
    BR_CHECK(!br_mp_event_is_set(e));
    BR_CHECK_ERR(br_mp_event_wait(e, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_event_free(e));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- Condition: the tutorial's two speakers reciting a poem in strict turns ---------- */

static const char *const poem[] = {
    "小爱同学",   "在",         "我们来对古诗吧", "好啊",
    "我住长江头", "君住长江尾", "日日思君不见君", "共饮长江水",
    "此水几时休", "此恨何时已", "只愿君心似我心", "定不负相思意",
};
#define POEM_LINES ((int)(sizeof poem / sizeof poem[0]))

struct poem_shared {
    br_mp_lock lock; /* the condition's lock, in the same mapping */
    br_mp_cond cond;
    int turn; /* the next line; speaker turn % 2 says it */
    int said[POEM_LINES];
    char text[POEM_LINES * 32];
    size_t text_len;
};

struct turn_arg {
    struct poem_shared *sh;
    int me;
};

static bool my_turn(void *p) {
    const struct turn_arg *a = p;
    return a->sh->turn >= POEM_LINES || a->sh->turn % 2 == a->me;
}

static int recite(struct poem_shared *sh, int me) {
    struct turn_arg a = {sh, me};
    int64_t guard = br_test_hang_guard();
    if (br_mp_cond_acquire(&sh->cond, guard) != 0)
        return 1;
    for (;;) {
        if (br_mp_cond_wait_for(&sh->cond, my_turn, &a, guard) != 0)
            return 2;
        if (sh->turn >= POEM_LINES)
            break;
        int line = sh->turn;
        sh->said[line] = me + 1;
        size_t n = strlen(poem[line]);
        memcpy(sh->text + sh->text_len, poem[line], n);
        sh->text[sh->text_len + n] = '\n';
        sh->text_len += n + 1;
        sh->turn++;
        if (br_mp_cond_notify(&sh->cond, 1) != 0)
            return 3;
    }
    return br_mp_cond_release(&sh->cond) == 0 ? 0 : 4;
}

static void cond_poem_in_turns(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct poem_shared), "test-mp"));
    struct poem_shared *sh = m.base;
    BR_CHECK_OK(br_mp_lock_init(&sh->lock));
    BR_CHECK_OK(br_mp_cond_init(&sh->cond, &sh->lock));
    pid_t pids[2];
    for (int who = 0; who < 2; who++)
        if ((pids[who] = fork_child()) == 0)
            _exit(recite(sh, who));
    reap_all(pids, 2);
    BR_CHECK_EQ(sh->turn, POEM_LINES);
    char want[sizeof sh->text];
    size_t len = 0;
    for (int i = 0; i < POEM_LINES; i++) {
        BR_CHECK_EQ(sh->said[i], i % 2 + 1); /* line i said by speaker i % 2 */
        size_t n = strlen(poem[i]);
        memcpy(want + len, poem[i], n);
        want[len + n] = '\n';
        len += n + 1;
    }
    BR_CHECK_EQ(sh->text_len, len);
    BR_CHECK_EQ(memcmp(sh->text, want, len), 0);
    BR_CHECK_OK(br_mp_cond_destroy(&sh->cond));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A producer and consumers in other processes over a _new condition with its own
 * RLock: every item is taken once, none lost. */
struct pc_shared {
    int items, taken_total, done;
    int taken_by[4];
};

static bool item_or_done(void *p) {
    struct pc_shared *s = p;
    return s->items > 0 || s->done;
}

static void cond_producer_consumers(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct pc_shared), "test-mp"));
    struct pc_shared *sh = m.base;
    br_mp_cond *c;
    BR_CHECK_OK(br_mp_cond_new(&c, (br_mp_rlock *)NULL));
    enum { NCONS = 3 };
    long n_items = br_test_scaled(3000, 200);
    pid_t pids[NCONS];
    for (int k = 0; k < NCONS; k++) {
        if ((pids[k] = fork_child()) == 0) {
            int64_t guard = br_test_hang_guard();
            CHILD_CHECK(br_mp_cond_acquire(c, guard) == 0, 1);
            for (;;) {
                CHILD_CHECK(br_mp_cond_wait_for(c, item_or_done, sh, guard) == 0, 2);
                if (sh->items == 0)
                    break;
                sh->items--;
                sh->taken_total++;
                sh->taken_by[k]++;
            }
            CHILD_CHECK(br_mp_cond_release(c) == 0, 3);
            _exit(0);
        }
    }
    for (long i = 0; i < n_items; i++) {
        BR_CHECK_OK(br_mp_cond_acquire(c, br_test_hang_guard()));
        BR_CHECK_OK(br_mp_cond_acquire(c, BR_NOWAIT)); /* an RLock: re-entry */
        sh->items++;
        BR_CHECK_OK(br_mp_cond_notify(c, 1));
        BR_CHECK_OK(br_mp_cond_release(c));
        BR_CHECK_OK(br_mp_cond_release(c));
    }
    BR_CHECK_OK(br_mp_cond_acquire(c, br_test_hang_guard()));
    sh->done = 1;
    BR_CHECK_OK(br_mp_cond_notify_all(c));
    BR_CHECK_OK(br_mp_cond_release(c));
    reap_all(pids, NCONS);
    BR_CHECK_EQ(sh->taken_total, n_items);
    BR_CHECK_EQ(sh->items, 0);
    BR_CHECK_EQ(sh->taken_by[0] + sh->taken_by[1] + sh->taken_by[2], n_items);
    BR_CHECK_OK(br_mp_cond_free(c));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- Barrier ------------------------------------------------------------------------- */

#define BAR_ROUNDS 200

struct barrier_shared {
    br_mp_barrier b;
    _Atomic int arrived[BAR_ROUNDS];
    _Atomic unsigned index_mask[BAR_ROUNDS];
    _Atomic int early; /* someone left a round before all had arrived */
};

static void barrier_generations(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct barrier_shared), "test-mp"));
    struct barrier_shared *sh = m.base;
    enum { NPROC = 4 };
    BR_CHECK_OK(br_mp_barrier_init(&sh->b, NPROC));
    BR_CHECK_EQ(br_mp_barrier_parties(&sh->b), NPROC);
    int rounds = (int)br_test_scaled(BAR_ROUNDS, 20);
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        if ((pids[p] = fork_child()) == 0) {
            int64_t guard = br_test_hang_guard();
            for (int r = 0; r < rounds; r++) {
                atomic_fetch_add(&sh->arrived[r], 1);
                int idx = br_mp_barrier_wait(&sh->b, guard);
                CHILD_CHECK(idx >= 0 && idx < NPROC, 1);
                if (atomic_load(&sh->arrived[r]) != NPROC)
                    atomic_store(&sh->early, 1);
                atomic_fetch_or(&sh->index_mask[r], 1u << idx);
            }
            _exit(0);
        }
    }
    reap_all(pids, NPROC);
    BR_CHECK_EQ(atomic_load(&sh->early), 0);
    for (int r = 0; r < rounds; r++)
        BR_CHECK_EQ(atomic_load(&sh->index_mask[r]), (1u << NPROC) - 1);
    BR_CHECK(!br_mp_barrier_broken(&sh->b));
    BR_CHECK_EQ(br_mp_barrier_n_waiting(&sh->b), 0);
    BR_CHECK_OK(br_mp_barrier_destroy(&sh->b));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A party's timeout breaks the barrier for the others; abort and reset. */
static void barrier_timeout_abort_reset(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_barrier *b;
    BR_CHECK_OK(br_mp_barrier_new(&b, 3));
    pid_t pid = fork_child();
    if (pid == 0) {
        /* Waits for a round that never fills: the parent's timeout breaks it. */
        CHILD_CHECK(br_mp_barrier_wait(b, br_test_hang_guard()) == BR_EBROKEN, 1);
        _exit(0);
    }
    while (br_mp_barrier_n_waiting(b) != 1)
        sched_yield();
    BR_CHECK_ERR(br_mp_barrier_wait(b, br_deadline_after(2 * BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK(br_mp_barrier_broken(b));
    BR_CHECK_ERR(br_mp_barrier_wait(b, BR_NOWAIT), BR_EBROKEN);
    BR_CHECK_OK(br_mp_barrier_reset(b));
    BR_CHECK(!br_mp_barrier_broken(b));
    /* A waiter in another process sees abort. */
    pid = fork_child();
    if (pid == 0) {
        CHILD_CHECK(br_mp_barrier_wait(b, br_test_hang_guard()) == BR_EBROKEN, 1);
        _exit(0);
    }
    while (br_mp_barrier_n_waiting(b) != 1)
        sched_yield();
    BR_CHECK_OK(br_mp_barrier_abort(b));
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    /* ... and reset. */
    BR_CHECK_OK(br_mp_barrier_reset(b));
    pid = fork_child();
    if (pid == 0) {
        CHILD_CHECK(br_mp_barrier_wait(b, br_test_hang_guard()) == BR_EBROKEN, 1);
        _exit(0);
    }
    while (br_mp_barrier_n_waiting(b) != 1)
        sched_yield();
    BR_CHECK_ERR(br_mp_barrier_destroy(b), BR_EBUSY);
    BR_CHECK_OK(br_mp_barrier_reset(b));
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK(!br_mp_barrier_broken(b));
    BR_CHECK_EQ(br_mp_barrier_n_waiting(b), 0);
    BR_CHECK_OK(br_mp_barrier_free(b));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A party SIGKILLed after arriving still counts: the round trips without it. */
static void barrier_dead_arrival_counts(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_barrier *b;
    BR_CHECK_OK(br_mp_barrier_new(&b, 3));
    pid_t doomed = fork_child();
    if (doomed == 0) {
        br_mp_barrier_wait(b, br_test_hang_guard());
        _exit(1); /* never: it is killed while waiting */
    }
    wait_in_futex(doomed);
    BR_CHECK_EQ(br_mp_barrier_n_waiting(b), 1);
    BR_CHECK_OK(kill(doomed, SIGKILL));
    int st = br_test_wait_child(doomed);
    BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    pid_t other = fork_child();
    if (other == 0) {
        int idx = br_mp_barrier_wait(b, br_test_hang_guard());
        CHILD_CHECK(idx == 1 || idx == 2, 1);
        _exit(0);
    }
    int idx = br_mp_barrier_wait(b, br_test_hang_guard());
    BR_CHECK(idx == 1 || idx == 2);
    BR_CHECK_CHILD_OK(br_test_wait_child(other));
    BR_CHECK(!br_mp_barrier_broken(b));
    BR_CHECK_EQ(br_mp_barrier_n_waiting(b), 0);
    BR_CHECK_OK(br_mp_barrier_free(b));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- robustness: owners that die ------------------------------------------------------ */

struct robust_shared {
    br_mp_lock lock;
    br_mp_rlock rlock;
    br_mp_sem held; /* the doomed owner says it holds the lock */
    br_mp_sem parked_sem;
    _Atomic int parked; /* the waiter is about to wait */
    long data;
};

/* The owner is SIGKILLed holding the lock: a waiter already parked in another process
 * gets BR_EOWNERDEAD, repairs, marks it consistent; then the lock works as before. */
static void robust_sigkill_holder(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct robust_shared), "test-mp"));
    struct robust_shared *sh = m.base;
    BR_CHECK_OK(br_mp_lock_init(&sh->lock));
    BR_CHECK_OK(br_mp_sem_init(&sh->held, 0));
    pid_t owner = fork_child();
    if (owner == 0) {
        CHILD_CHECK(br_mp_lock_acquire(&sh->lock, BR_FOREVER) == 0, 1);
        sh->data = -1; /* half-updated */
        br_mp_sem_release(&sh->held, 1);
        for (;;)
            pause();
    }
    BR_CHECK_OK(br_mp_sem_acquire(&sh->held, br_test_hang_guard()));
    pid_t waiter = fork_child();
    if (waiter == 0) {
        atomic_store(&sh->parked, 1);
        int rc = br_mp_lock_acquire(&sh->lock, br_test_hang_guard());
        CHILD_CHECK(rc == BR_EOWNERDEAD, 1);
        CHILD_CHECK(br_mp_lock_owned(&sh->lock), 2);
        CHILD_CHECK(sh->data == -1, 3);
        sh->data = 42; /* repaired */
        CHILD_CHECK(br_mp_lock_consistent(&sh->lock) == 0, 4);
        CHILD_CHECK(br_mp_lock_consistent(&sh->lock) == BR_EINVAL, 5);
        CHILD_CHECK(br_mp_lock_release(&sh->lock) == 0, 6);
        _exit(0);
    }
    while (!atomic_load(&sh->parked))
        sched_yield();
    BR_CHECK(br_mp_lock_locked(&sh->lock));
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_lock_destroy(&sh->lock), BR_EBUSY);
    BR_CHECK_OK(kill(owner, SIGKILL));
    int st = br_test_wait_child(owner);
    BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    BR_CHECK_CHILD_OK(br_test_wait_child(waiter));
    BR_CHECK_EQ(sh->data, 42);
    BR_CHECK_OK(br_mp_lock_acquire(&sh->lock, BR_NOWAIT));
    BR_CHECK_OK(br_mp_lock_release(&sh->lock));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    BR_CHECK_OK(br_mp_sem_destroy(&sh->held));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* The owner _exits holding it; the next owner releases without consistent(): not
 * recoverable from then on, in every process. */
static void robust_not_recoverable(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct robust_shared), "test-mp"));
    struct robust_shared *sh = m.base;
    BR_CHECK_OK(br_mp_lock_init(&sh->lock));
    pid_t owner = fork_child();
    if (owner == 0) {
        CHILD_CHECK(br_mp_lock_acquire(&sh->lock, BR_FOREVER) == 0, 1);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(owner));
    BR_CHECK(br_mp_lock_locked(&sh->lock)); /* left by a dead owner */
    BR_CHECK(!br_mp_lock_owned(&sh->lock));
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, BR_NOWAIT), BR_EOWNERDEAD);
    BR_CHECK(br_mp_lock_owned(&sh->lock));
    BR_CHECK_OK(br_mp_lock_release(&sh->lock)); /* without consistent() */
    BR_CHECK(!br_mp_lock_locked(&sh->lock));
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, BR_NOWAIT), BR_ENOTRECOVERABLE);
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, br_test_hang_guard()), BR_ENOTRECOVERABLE);
    BR_CHECK(!br_mp_lock_owned(&sh->lock));
    BR_CHECK_ERR(br_mp_lock_release(&sh->lock), BR_EPERM);
    pid_t other = fork_child();
    if (other == 0) {
        CHILD_CHECK(br_mp_lock_acquire(&sh->lock, BR_FOREVER) == BR_ENOTRECOVERABLE, 1);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(other));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    BR_CHECK_OK(br_mp_lock_init(&sh->lock)); /* a new one in its place works */
    BR_CHECK_OK(br_mp_lock_acquire(&sh->lock, BR_NOWAIT));
    BR_CHECK_OK(br_mp_lock_release(&sh->lock));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* An RLock held three deep by a SIGKILLed owner: the next owner gets it at depth 1. */
static void robust_rlock_sigkill(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct robust_shared), "test-mp"));
    struct robust_shared *sh = m.base;
    BR_CHECK_OK(br_mp_rlock_init(&sh->rlock));
    BR_CHECK_OK(br_mp_sem_init(&sh->held, 0));
    pid_t owner = fork_child();
    if (owner == 0) {
        for (int i = 0; i < 3; i++)
            CHILD_CHECK(br_mp_rlock_acquire(&sh->rlock, BR_FOREVER) == 0, 1);
        br_mp_sem_release(&sh->held, 1);
        for (;;)
            pause();
    }
    BR_CHECK_OK(br_mp_sem_acquire(&sh->held, br_test_hang_guard()));
    BR_CHECK_ERR(br_mp_rlock_acquire(&sh->rlock, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(kill(owner, SIGKILL));
    int st = br_test_wait_child(owner);
    BR_CHECK(WIFSIGNALED(st));
    BR_CHECK_ERR(br_mp_rlock_acquire(&sh->rlock, br_test_hang_guard()), BR_EOWNERDEAD);
    BR_CHECK_EQ(br_mp_rlock_count(&sh->rlock), 1);
    BR_CHECK_OK(br_mp_rlock_consistent(&sh->rlock));
    BR_CHECK_OK(br_mp_rlock_acquire(&sh->rlock, BR_NOWAIT));
    BR_CHECK_EQ(br_mp_rlock_count(&sh->rlock), 2);
    BR_CHECK_OK(br_mp_rlock_release(&sh->rlock));
    BR_CHECK_OK(br_mp_rlock_release(&sh->rlock));
    BR_CHECK_ERR(br_mp_rlock_release(&sh->rlock), BR_EPERM);
    BR_CHECK_OK(br_mp_rlock_destroy(&sh->rlock));
    BR_CHECK_OK(br_mp_sem_destroy(&sh->held));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* A thread (not a process) that ends holding the lock: the same code. */
static void *take_and_leave(void *p) {
    br_mp_lock *l = p;
    return (void *)(intptr_t)br_mp_lock_acquire(l, BR_FOREVER);
}

static void robust_thread_exit(void **state) {
    (void)state;
    br_mp_lock *l;
    BR_CHECK_OK(br_mp_lock_new(&l));
    pthread_t t;
    BR_CHECK_EQ(pthread_create(&t, NULL, take_and_leave, l), 0);
    void *res;
    BR_CHECK_EQ(pthread_join(t, &res), 0);
    BR_CHECK_EQ((int)(intptr_t)res, 0);
    BR_CHECK_ERR(br_mp_lock_acquire(l, BR_NOWAIT), BR_EOWNERDEAD);
    BR_CHECK_OK(br_mp_lock_consistent(l));
    BR_CHECK_OK(br_mp_lock_release(l));
    BR_CHECK_OK(br_mp_lock_acquire(l, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_lock_free(l), BR_EBUSY); /* held by the caller */
    BR_CHECK_OK(br_mp_lock_release(l));
    BR_CHECK_OK(br_mp_lock_free(l));
}

/* A condition waiter whose lock's owner dies: it comes back BR_EOWNERDEAD, holding it. */
struct cond_dead_shared {
    br_mp_lock lock;
    br_mp_cond cond;
    br_mp_sem waiting;
};

static void robust_cond_waiter_sees_owner_death(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct cond_dead_shared), "test-mp"));
    struct cond_dead_shared *sh = m.base;
    BR_CHECK_OK(br_mp_lock_init(&sh->lock));
    BR_CHECK_OK(br_mp_cond_init(&sh->cond, &sh->lock));
    BR_CHECK_OK(br_mp_sem_init(&sh->waiting, 0));
    pid_t waiter = fork_child();
    if (waiter == 0) {
        int64_t guard = br_test_hang_guard();
        CHILD_CHECK(br_mp_cond_acquire(&sh->cond, guard) == 0, 1);
        br_mp_sem_release(&sh->waiting, 1); /* still holding: the notifier waits for us */
        CHILD_CHECK(br_mp_cond_wait(&sh->cond, guard) == BR_EOWNERDEAD, 2);
        CHILD_CHECK(br_mp_lock_owned(&sh->lock), 3);
        CHILD_CHECK(br_mp_cond_consistent(&sh->cond) == 0, 4);
        CHILD_CHECK(br_mp_cond_release(&sh->cond) == 0, 5);
        _exit(0);
    }
    BR_CHECK_OK(br_mp_sem_acquire(&sh->waiting, br_test_hang_guard()));
    pid_t notifier = fork_child();
    if (notifier == 0) {
        /* Gets the lock once the waiter sleeps, notifies, and dies holding it. */
        CHILD_CHECK(br_mp_cond_acquire(&sh->cond, br_test_hang_guard()) == 0, 1);
        CHILD_CHECK(br_mp_cond_notify(&sh->cond, 1) == 0, 2);
        kill(getpid(), SIGKILL);
    }
    int st = br_test_wait_child(notifier);
    BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    BR_CHECK_CHILD_OK(br_test_wait_child(waiter));
    BR_CHECK_OK(br_mp_lock_acquire(&sh->lock, BR_NOWAIT));
    BR_CHECK_OK(br_mp_lock_release(&sh->lock));
    BR_CHECK_OK(br_mp_cond_destroy(&sh->cond));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    BR_CHECK_OK(br_mp_sem_destroy(&sh->waiting));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- deadlines ---------------------------------------------------------------------- */

static void deadlines(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, sizeof(struct robust_shared), "test-mp"));
    struct robust_shared *sh = m.base;
    BR_CHECK_OK(br_mp_lock_init(&sh->lock));
    BR_CHECK_OK(br_mp_rlock_init(&sh->rlock));
    BR_CHECK_OK(br_mp_sem_init(&sh->held, 0));
    BR_CHECK_OK(br_mp_sem_init(&sh->parked_sem, 0));
    pid_t holder = fork_child();
    if (holder == 0) {
        CHILD_CHECK(br_mp_lock_acquire(&sh->lock, BR_FOREVER) == 0, 1);
        CHILD_CHECK(br_mp_rlock_acquire(&sh->rlock, BR_FOREVER) == 0, 2);
        br_mp_sem_release(&sh->held, 1);
        CHILD_CHECK(br_mp_sem_acquire(&sh->parked_sem, br_test_hang_guard()) == 0, 3);
        CHILD_CHECK(br_mp_rlock_release(&sh->rlock) == 0, 4);
        CHILD_CHECK(br_mp_lock_release(&sh->lock) == 0, 5);
        _exit(0);
    }
    BR_CHECK_OK(br_mp_sem_acquire(&sh->held, br_test_hang_guard()));
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, br_now() - BR_SEC), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_lock_acquire(&sh->lock, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_rlock_acquire(&sh->rlock, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_rlock_acquire(&sh->rlock, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_sem_acquire(&sh->held, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_sem_acquire(&sh->held, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_sem_release(&sh->parked_sem, 1));
    BR_CHECK_CHILD_OK(br_test_wait_child(holder));
    BR_CHECK_OK(br_mp_lock_acquire(&sh->lock, BR_NOWAIT));
    /* A condition wait that times out holds the lock again. */
    br_mp_cond c;
    BR_CHECK_OK(br_mp_cond_init(&c, &sh->lock)); /* same process: any memory will do */
    BR_CHECK_ERR(br_mp_cond_wait(&c, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_mp_cond_wait(&c, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK(br_mp_lock_owned(&sh->lock));
    BR_CHECK_OK(br_mp_cond_notify(&c, 1)); /* nobody waits: nothing kept */
    BR_CHECK_ERR(br_mp_cond_wait(&c, br_deadline_after(BR_MSEC)), BR_ETIMEDOUT);
    BR_CHECK_OK(br_mp_lock_release(&sh->lock));
    BR_CHECK_OK(br_mp_cond_destroy(&c));
    BR_CHECK_OK(br_mp_lock_destroy(&sh->lock));
    BR_CHECK_OK(br_mp_rlock_destroy(&sh->rlock));
    BR_CHECK_OK(br_mp_sem_destroy(&sh->held));
    BR_CHECK_OK(br_mp_sem_destroy(&sh->parked_sem));
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* --- misuse ------------------------------------------------------------------------- */

static bool never(void *arg) {
    (void)arg;
    return false;
}

static void misuse_codes(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    /* NULLs */
    BR_CHECK_ERR(br_mp_lock_init(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_lock_acquire(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_lock_release(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_lock_new(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_lock_free(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_rlock_acquire(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_sem_release(NULL, 1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_event_set(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_mp_barrier_wait(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_cond_wait(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_locate(NULL, NULL, NULL, NULL), BR_EINVAL);
    BR_CHECK(!br_mp_lock_locked(NULL) && !br_mp_lock_owned(NULL));
    BR_CHECK_EQ(br_mp_sem_value(NULL), 0);
    /* all-zero storage is not an object */
    br_mp_lock zl;
    br_mp_sem zs;
    br_mp_event ze;
    br_mp_barrier zb;
    br_mp_cond zc;
    memset(&zl, 0, sizeof zl);
    memset(&zs, 0, sizeof zs);
    memset(&ze, 0, sizeof ze);
    memset(&zb, 0, sizeof zb);
    memset(&zc, 0, sizeof zc);
    BR_CHECK_ERR(br_mp_lock_acquire(&zl, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_sem_acquire(&zs, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_event_wait(&ze, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_barrier_wait(&zb, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_mp_cond_notify(&zc, 1), BR_EINVAL);
    BR_CHECK_ERR(br_mp_cond_init(&zc, &zl), BR_EINVAL); /* its lock isn't initialised */
    /* lock: not held, held twice, destroyed, freed though not _new */
    br_mp_lock l;
    BR_CHECK_OK(br_mp_lock_init(&l));
    BR_CHECK_ERR(br_mp_lock_release(&l), BR_EPERM);
    BR_CHECK_ERR(br_mp_lock_consistent(&l), BR_EPERM);
    BR_CHECK_OK(br_mp_lock_acquire(&l, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_lock_acquire(&l, BR_FOREVER), BR_EDEADLK);
    BR_CHECK_ERR(br_mp_lock_consistent(&l), BR_EINVAL); /* not inconsistent */
    BR_CHECK_ERR(br_mp_lock_destroy(&l), BR_EBUSY);
    BR_CHECK_ERR(br_mp_lock_free(&l), BR_EINVAL);
    BR_CHECK_ERR(br_mp_locate(&l, NULL, NULL, NULL), BR_EINVAL);
    BR_CHECK_OK(br_mp_lock_release(&l));
    BR_CHECK_OK(br_mp_lock_destroy(&l));
    BR_CHECK_ERR(br_mp_lock_destroy(&l), BR_EINVAL);
    BR_CHECK_ERR(br_mp_lock_acquire(&l, BR_NOWAIT), BR_EINVAL);
    /* semaphores */
    br_mp_sem s;
    BR_CHECK_ERR(br_mp_sem_init(&s, 1u << 31), BR_EINVAL);
    BR_CHECK_OK(br_mp_sem_init_bounded(&s, 2));
    BR_CHECK_ERR(br_mp_sem_release(&s, 0), BR_EINVAL);
    BR_CHECK_ERR(br_mp_sem_release(&s, 1), BR_EOVERFLOW);
    BR_CHECK_OK(br_mp_sem_acquire(&s, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_sem_release(&s, 2), BR_EOVERFLOW); /* nothing released */
    BR_CHECK_EQ(br_mp_sem_value(&s), 1);
    BR_CHECK_OK(br_mp_sem_release(&s, 1));
    BR_CHECK_OK(br_mp_sem_init(&s, 0x7ffffffe));
    BR_CHECK_OK(br_mp_sem_release(&s, 1));
    BR_CHECK_ERR(br_mp_sem_release(&s, 1), BR_EOVERFLOW);
    BR_CHECK_ERR(br_mp_sem_release(&s, 0xffffffffu), BR_EOVERFLOW);
    BR_CHECK_OK(br_mp_sem_destroy(&s));
    BR_CHECK_ERR(br_mp_sem_release(&s, 1), BR_EINVAL);
    /* barrier */
    br_mp_barrier b;
    BR_CHECK_ERR(br_mp_barrier_init(&b, 0), BR_EINVAL);
    BR_CHECK_ERR(br_mp_barrier_init(&b, 1u << 24), BR_EINVAL);
    BR_CHECK_OK(br_mp_barrier_init(&b, 1));
    BR_CHECK_EQ(br_mp_barrier_wait(&b, BR_NOWAIT), 0); /* one party: trips at once */
    BR_CHECK_EQ(br_mp_barrier_wait(&b, BR_NOWAIT), 0);
    BR_CHECK_OK(br_mp_barrier_destroy(&b));
    /* condition */
    br_mp_rlock r;
    br_mp_cond c;
    BR_CHECK_OK(br_mp_rlock_init(&r));
    BR_CHECK_OK(br_mp_cond_init(&c, &r));
    BR_CHECK_ERR(br_mp_cond_wait(&c, BR_NOWAIT), BR_EPERM);
    BR_CHECK_ERR(br_mp_cond_notify(&c, 1), BR_EPERM);
    BR_CHECK_ERR(br_mp_cond_notify_all(&c), BR_EPERM);
    BR_CHECK_ERR(br_mp_cond_release(&c), BR_EPERM);
    BR_CHECK_ERR(br_mp_cond_wait_for(&c, NULL, NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_OK(br_mp_cond_acquire(&c, BR_NOWAIT));
    BR_CHECK_OK(br_mp_cond_acquire(&c, BR_NOWAIT));
    BR_CHECK_ERR(br_mp_cond_notify(&c, 0), BR_EINVAL);
    BR_CHECK_ERR(br_mp_cond_wait_for(&c, never, NULL, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_EQ(br_mp_rlock_count(&r), 2);        /* the wait gave both levels back */
    BR_CHECK_ERR(br_mp_cond_free(&c), BR_EINVAL); /* not made by _new */
    BR_CHECK_OK(br_mp_cond_release(&c));
    BR_CHECK_OK(br_mp_cond_release(&c));
    /* The lock replaced behind the condition's back: refused, not followed. */
    BR_CHECK_OK(br_mp_rlock_destroy(&r));
    BR_CHECK_ERR(br_mp_cond_acquire(&c, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_OK(br_mp_rlock_init(&r)); /* a new id */
    BR_CHECK_ERR(br_mp_cond_acquire(&c, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_OK(br_mp_cond_destroy(&c));
    BR_CHECK_ERR(br_mp_cond_destroy(&c), BR_EINVAL);
    BR_CHECK_OK(br_mp_rlock_destroy(&r));
    /* attach: nothing there */
    void *v;
    BR_CHECK_ERR(br_mp_attach(NULL, 0, 4096, 64), BR_EINVAL);
    BR_CHECK_ERR(br_mp_attach(&v, -1, 4096, 64), BR_EINVAL);
    br__shm m;
    BR_CHECK_OK(br__shm_new(&m, 4096, "test-mp"));
    BR_CHECK_ERR(br_mp_attach(&v, m.fd, 4096, 64), BR_EINVAL);
    br__shm_close(&m);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* _new under memory pressure: a clean BR_ENOMEM, nothing left open. */
static void new_out_of_memory(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_lock *l = NULL;
    br_mp_cond *c = NULL;
    br__alloc_fail_after(0);
    int rl = br_mp_lock_new(&l);
    int rc = br_mp_cond_new(&c, (br_mp_lock *)NULL);
    br__alloc_fail_after(-1);
    BR_CHECK_ERR(rl, BR_ENOMEM);
    BR_CHECK_ERR(rc, BR_ENOMEM);
    BR_CHECK(l == NULL && c == NULL);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

BR_TEST_MAIN(
    cmocka_unit_test(lock_counter_exact), cmocka_unit_test(lock_new_locate_attach),
    cmocka_unit_test(rlock_reentry), cmocka_unit_test(sem_caps_concurrency),
    cmocka_unit_test(sem_release_wakes_other_process),
    cmocka_unit_test(event_wakes_other_processes),
    cmocka_unit_test(event_set_then_clear_wakes_sleepers),
    cmocka_unit_test(cond_poem_in_turns), cmocka_unit_test(cond_producer_consumers),
    cmocka_unit_test(barrier_generations), cmocka_unit_test(barrier_timeout_abort_reset),
    cmocka_unit_test(barrier_dead_arrival_counts), cmocka_unit_test(robust_sigkill_holder),
    cmocka_unit_test(robust_not_recoverable), cmocka_unit_test(robust_rlock_sigkill),
    cmocka_unit_test(robust_thread_exit),
    cmocka_unit_test(robust_cond_waiter_sees_owner_death), cmocka_unit_test(deadlines),
    cmocka_unit_test(misuse_codes), cmocka_unit_test(new_out_of_memory))
