/* Process-shared locks (braid/mp_sync.h) beside raw pthread process-shared mutexes.
 *
 *   bench_mp_sync [VARIANT [IMPL [N]]]     no arguments: every variant, every impl
 *
 * VARIANT:
 *   uncontended   N acquire+release pairs on one thread, the lock in shared memory (a
 *                 MAP_SHARED page) (N = 1,000,000; one untimed pass first). ns/op, one
 *                 op = acquire + release.
 *   counter       2 processes (fork) x N increments of a plain counter in shared memory
 *                 under the lock, timed from both starting (a gate in shared memory) to
 *                 both reaped; the final value must be 2 N. seconds, and ns_per_inc.
 *   rlock         as uncontended, for the RLock (br_mp_rlock; the pthread impls use
 *                 PTHREAD_MUTEX_RECURSIVE).
 *   sem           as uncontended, for a semaphore of 1 (br_mp_sem; pthread: sem_t with
 *                 pshared = 1, sem_wait + sem_post).
 * IMPL:
 *   braid          br_mp_lock / br_mp_rlock / br_mp_sem
 *   pthread        pthread_mutex_t, PTHREAD_PROCESS_SHARED, not robust: the floor
 *   pthread-robust the same, PTHREAD_MUTEX_ROBUST: what braid's lock is built on, so the
 *                  difference is braid's own cost (its checks)
 * One JSON line per figure (bench.h), "impl" telling the impls apart, so that
 * side-by-side can alternate them as separate processes.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <braid/mp_sync.h>

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_DEFAULT 1000000L

static long n_ops = N_DEFAULT;

struct shared {
    union {
        br_mp_lock lock;
        br_mp_rlock rlock;
        br_mp_sem sem;
        pthread_mutex_t m;
        sem_t psem;
    } u;
    _Atomic int gate;
    _Atomic int ready;
    long counter;
};

static struct shared *map_shared(void) {
    void *p = mmap(NULL, sizeof(struct shared), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    BENCH_CHECK(p != MAP_FAILED);
    return p;
}

enum impl { BRAID, PTHREAD, PTHREAD_ROBUST };
static const char *impl_names[] = {"braid", "pthread", "pthread-robust"};

static void init_mutex(pthread_mutex_t *m, bool robust, bool recursive) {
    pthread_mutexattr_t a;
    BENCH_CHECK(pthread_mutexattr_init(&a) == 0);
    BENCH_CHECK(pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0);
    if (robust)
        BENCH_CHECK(pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0);
    if (recursive)
        BENCH_CHECK(pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE) == 0);
    BENCH_CHECK(pthread_mutex_init(m, &a) == 0);
    pthread_mutexattr_destroy(&a);
}

static void setup(struct shared *s, const char *variant, enum impl impl) {
    bool rl = strcmp(variant, "rlock") == 0;
    if (strcmp(variant, "sem") == 0) {
        if (impl == BRAID)
            BENCH_CHECK_OK(br_mp_sem_init(&s->u.sem, 1));
        else
            BENCH_CHECK(sem_init(&s->u.psem, 1, 1) == 0);
    } else if (impl == BRAID) {
        BENCH_CHECK_OK(rl ? br_mp_rlock_init(&s->u.rlock) : br_mp_lock_init(&s->u.lock));
    } else {
        init_mutex(&s->u.m, impl == PTHREAD_ROBUST, rl);
    }
}

/* One acquire + release of whatever setup made. */
static inline void lock_op(struct shared *s, int kind, enum impl impl) {
    switch (kind * 3 + (int)impl) {
    case 0: /* lock, braid */
        if (br_mp_lock_acquire(&s->u.lock, BR_FOREVER) != 0)
            BENCH_CHECK(!"acquire");
        break;
    case 3: /* rlock, braid */
        if (br_mp_rlock_acquire(&s->u.rlock, BR_FOREVER) != 0)
            BENCH_CHECK(!"acquire");
        break;
    case 6: /* sem, braid */
        if (br_mp_sem_acquire(&s->u.sem, BR_FOREVER) != 0)
            BENCH_CHECK(!"acquire");
        break;
    case 7:
    case 8:
        if (sem_wait(&s->u.psem) != 0)
            BENCH_CHECK(!"sem_wait");
        break;
    default:
        if (pthread_mutex_lock(&s->u.m) != 0)
            BENCH_CHECK(!"lock");
    }
}

static inline void unlock_op(struct shared *s, int kind, enum impl impl) {
    switch (kind * 3 + (int)impl) {
    case 0:
        if (br_mp_lock_release(&s->u.lock) != 0)
            BENCH_CHECK(!"release");
        break;
    case 3:
        if (br_mp_rlock_release(&s->u.rlock) != 0)
            BENCH_CHECK(!"release");
        break;
    case 6:
        if (br_mp_sem_release(&s->u.sem, 1) != 0)
            BENCH_CHECK(!"release");
        break;
    case 7:
    case 8:
        if (sem_post(&s->u.psem) != 0)
            BENCH_CHECK(!"sem_post");
        break;
    default:
        if (pthread_mutex_unlock(&s->u.m) != 0)
            BENCH_CHECK(!"unlock");
    }
}

static int kind_of(const char *variant) {
    if (strcmp(variant, "rlock") == 0)
        return 1;
    if (strcmp(variant, "sem") == 0)
        return 2;
    return 0;
}

static void run_uncontended(const char *variant, enum impl impl) {
    struct shared *s = map_shared();
    setup(s, variant, impl);
    int kind = kind_of(variant);
    for (int pass = 0; pass < 2; pass++) {
        int64_t t0 = bench_now();
        for (long i = 0; i < n_ops; i++) {
            lock_op(s, kind, impl);
            unlock_op(s, kind, impl);
        }
        int64_t t1 = bench_now();
        if (pass == 1) {
            double ns = (double)(t1 - t0) / (double)n_ops;
            bench_emit("mp_sync", variant, impl_names[impl], "ns_per_op", ns, "ns");
            bench_note("%s %s: %.1f ns per acquire+release (%ld ops)", variant,
                       impl_names[impl], ns, n_ops);
        }
    }
    munmap(s, sizeof *s);
}

static void run_counter(enum impl impl) {
    struct shared *s = map_shared();
    setup(s, "counter", impl);
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        BENCH_CHECK(pids[p] >= 0);
        if (pids[p] == 0) {
            atomic_fetch_add(&s->ready, 1);
            while (!atomic_load(&s->gate)) {
            }
            for (long i = 0; i < n_ops; i++) {
                lock_op(s, 0, impl);
                s->counter++;
                unlock_op(s, 0, impl);
            }
            _exit(0);
        }
    }
    while (atomic_load(&s->ready) != 2)
        usleep(100);
    int64_t t0 = bench_now();
    atomic_store(&s->gate, 1);
    for (int p = 0; p < 2; p++) {
        int st;
        BENCH_CHECK(waitpid(pids[p], &st, 0) == pids[p]);
        BENCH_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    int64_t t1 = bench_now();
    BENCH_CHECK_EQ(s->counter, 2 * n_ops);
    double secs = bench_secs(t0, t1);
    bench_emit("mp_sync", "counter", impl_names[impl], "seconds", secs, "s");
    bench_emit("mp_sync", "counter", impl_names[impl], "ns_per_inc",
               secs * 1e9 / (double)(2 * n_ops), "ns");
    bench_note("counter %s: 2 processes x %ld increments in %.3f s (%.1f ns each)",
               impl_names[impl], n_ops, secs, secs * 1e9 / (double)(2 * n_ops));
    munmap(s, sizeof *s);
}

static const char *variants[] = {"uncontended", "counter", "rlock", "sem"};

int main(int argc, char **argv) {
    n_ops = bench_arg_count(argc, argv, 3, N_DEFAULT);
    int v0 = -1, i0 = -1;
    if (argc > 1) {
        for (int v = 0; v < 4; v++)
            if (strcmp(argv[1], variants[v]) == 0)
                v0 = v;
        if (v0 < 0) {
            fprintf(stderr,
                    "usage: %s [uncontended|counter|rlock|sem [braid|pthread|"
                    "pthread-robust [N]]]\n",
                    argv[0]);
            return 2;
        }
    }
    if (argc > 2) {
        for (int i = 0; i < 3; i++)
            if (strcmp(argv[2], impl_names[i]) == 0)
                i0 = i;
        if (i0 < 0) {
            fprintf(stderr, "%s: impl is braid, pthread or pthread-robust\n", argv[0]);
            return 2;
        }
    }
    for (int v = 0; v < 4; v++) {
        if (v0 >= 0 && v != v0)
            continue;
        for (int i = 0; i < 3; i++) {
            if ((i0 >= 0 && i != i0) || (v == 3 && i == PTHREAD_ROBUST))
                continue;
            if (v == 1)
                run_counter((enum impl)i);
            else
                run_uncontended(variants[v], (enum impl)i);
        }
    }
    return 0;
}
