/* Robust process-shared mutexes on Linux (platform/platform.h), on glibc's robust
 * pthread mutex.
 *
 * Design notes.
 *
 * The kernel does the robustness: glibc registers a robust list for every thread
 * (set_robust_list); a robust mutex held by a thread is linked on that list, and when
 * the thread ends, however it ends, the kernel walks the list, sets FUTEX_OWNER_DIED in
 * each held mutex's futex word (clearing the owner id) and wakes one waiter. That
 * waiter's lock returns EOWNERDEAD; unlocking without pthread_mutex_consistent makes the
 * mutex ENOTRECOVERABLE for good. braid maps those to BR_EOWNERDEAD and
 * BR_ENOTRECOVERABLE unchanged.
 *
 * Deadlines: pthread_mutex_clocklock(CLOCK_MONOTONIC) takes a braid deadline as it is.
 *
 * ThreadSanitizer: its mutex interceptors model one process's mutexes, and these are
 * not that: a lock taken in one mapping is released through another (another address),
 * a new owner takes over a dead one's lock (GCC 12's timedlock interceptor doesn't
 * count an EOWNERDEAD lock as taken, and clocklock isn't intercepted at all), so it
 * reports unlocks of "unlocked" mutexes that are fine. A TSan build therefore calls the
 * C library's own functions (looked up in libc.so.6, past the interceptors) and tells
 * TSan only what matters to it, the happens-before edge from a release to the next
 * acquire, with __tsan_release / __tsan_acquire on the mutex's address.
 *
 * Ownership queries read the futex word's owner id (glibc's __data.__lock; the kernel's
 * robust-futex ABI puts the owner's tid in its low 30 bits) and compare it with the
 * calling thread's tid, cached per thread and forgotten in a fork child (the child's
 * thread has a new tid). Since the kernel clears the id when the owner dies, a dead
 * owner's recycled tid never passes for the owner.
 */
#include "platform/platform.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#define BR__ROBUST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define BR__ROBUST_TSAN 1
#endif
#endif

#ifdef BR__ROBUST_TSAN
#include <dlfcn.h>
#include <stdlib.h>
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
static int (*real_lock)(pthread_mutex_t *);
static int (*real_trylock)(pthread_mutex_t *);
static int (*real_clocklock)(pthread_mutex_t *, clockid_t, const struct timespec *);
static int (*real_unlock)(pthread_mutex_t *);
static void find_real(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (libc) {
        real_lock = (int (*)(pthread_mutex_t *))dlsym(libc, "pthread_mutex_lock");
        real_trylock = (int (*)(pthread_mutex_t *))dlsym(libc, "pthread_mutex_trylock");
        real_clocklock =
            (int (*)(pthread_mutex_t *, clockid_t, const struct timespec *))dlsym(
                libc, "pthread_mutex_clocklock");
        real_unlock = (int (*)(pthread_mutex_t *))dlsym(libc, "pthread_mutex_unlock");
    }
    if (!real_lock || !real_trylock || !real_clocklock || !real_unlock)
        abort();
}
#define LOCK(m) (tsan_took(m, real_lock(m)))
#define TRYLOCK(m) (tsan_took(m, real_trylock(m)))
#define CLOCKLOCK(m, c, ts) (tsan_took(m, real_clocklock(m, c, ts)))
#define UNLOCK(m) (__tsan_release(m), real_unlock(m))
static int tsan_took(pthread_mutex_t *m, int e) {
    if (e == 0 || e == EOWNERDEAD)
        __tsan_acquire(m);
    return e;
}
#else
#define LOCK(m) pthread_mutex_lock(m)
#define TRYLOCK(m) pthread_mutex_trylock(m)
#define CLOCKLOCK(m, c, ts) pthread_mutex_clocklock(m, c, ts)
#define UNLOCK(m) pthread_mutex_unlock(m)
#endif

static __thread __attribute__((tls_model("initial-exec"))) int cached_tid;

static void forget_tid(void) {
    cached_tid = 0;
}

__attribute__((constructor)) static void robust_setup(void) {
    pthread_atfork(NULL, NULL, forget_tid);
#ifdef BR__ROBUST_TSAN
    find_real();
#endif
}

static int my_tid(void) {
    int t = cached_tid;
    if (__builtin_expect(t == 0, 0))
        cached_tid = t = (int)syscall(SYS_gettid);
    return t;
}

static int map_err(int e) {
    switch (e) {
    case 0:
        return 0;
    case EOWNERDEAD:
        return BR_EOWNERDEAD;
    case ENOTRECOVERABLE:
        return BR_ENOTRECOVERABLE;
    case EBUSY:
    case ETIMEDOUT:
        return BR_ETIMEDOUT;
    case EDEADLK:
        return BR_EDEADLK;
    case EPERM:
        return BR_EPERM;
    case ENOMEM:
        return BR_ENOMEM;
    default:
        return -e;
    }
}

int br__robust_init(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    int e = pthread_mutexattr_init(&a);
    if (e)
        return map_err(e);
    e = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (!e)
        e = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (!e)
        e = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
    if (!e)
        e = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return map_err(e);
}

static unsigned lock_word(const pthread_mutex_t *m) {
    return __atomic_load_n((const unsigned *)&m->__data.__lock, __ATOMIC_RELAXED);
}

/* glibc's trylock (2.36 at least) finds a not-recoverable mutex free, takes its word,
 * reports ENOTRECOVERABLE and leaves the word holding our tid (its unlock there is
 * guarded by a test that can't pass), where pthread_mutex_lock gives it back. Put the
 * word back as lock does, so that "not held" stays true. */
static void drop_unrecoverable_word(pthread_mutex_t *m) {
    unsigned *w = (unsigned *)&m->__data.__lock;
    if ((int)(lock_word(m) & FUTEX_TID_MASK) != my_tid())
        return;
    unsigned old = __atomic_exchange_n(w, 0, __ATOMIC_RELEASE);
    if (old & FUTEX_WAITERS)
        syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

int br__robust_lock(pthread_mutex_t *m, int64_t deadline) {
    int e;
    if (deadline == BR_FOREVER) {
        e = LOCK(m);
    } else {
        e = TRYLOCK(m);
        if (e == ENOTRECOVERABLE)
            drop_unrecoverable_word(m);
        if (e == EBUSY && deadline > 0) {
            struct timespec ts = {.tv_sec = deadline / BR_SEC,
                                  .tv_nsec = deadline % BR_SEC};
            e = CLOCKLOCK(m, CLOCK_MONOTONIC, &ts);
        }
    }
    return map_err(e);
}

int br__robust_unlock(pthread_mutex_t *m) {
#ifdef BR__ROBUST_TSAN
    if (!br__robust_held_by_me(m)) /* glibc checks too; TSan would see it first */
        return BR_EPERM;
#endif
    return map_err(UNLOCK(m));
}

int br__robust_consistent(pthread_mutex_t *m) {
    if (!br__robust_held_by_me(m))
        return BR_EINVAL;
    return pthread_mutex_consistent(m) == 0 ? 0 : BR_EINVAL;
}

bool br__robust_held_by_me(const pthread_mutex_t *m) {
    return (int)(lock_word(m) & FUTEX_TID_MASK) == my_tid();
}

bool br__robust_locked(const pthread_mutex_t *m) {
    return (lock_word(m) & (FUTEX_TID_MASK | FUTEX_OWNER_DIED)) != 0;
}
