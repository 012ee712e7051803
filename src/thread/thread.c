/* threading.Thread for C: start, names, daemon flag and exit, join with a deadline,
 * threading.local.
 *
 * Design notes.
 *
 * Handle. A br_thread is shared by two parties, the handle (the caller of
 * br_thread_start) and the running thread: refs starts at 2 and whoever drops the last
 * reference frees it. So br_thread_free on a running thread just detaches it and lets
 * the thread free the block when it ends.
 *
 * Join. `done` becomes 1 when fn returns; joiners wait for it on `wq` with their
 * deadline (a flag and a wait-queue, checked and linked under wq.lock, set and popped
 * under wq.lock: no lost wake-up). Then one joiner reaps the pthread (reap NONE -> BUSY
 * -> DONE), with a timed join for finite deadlines (br_local destructors run after fn
 * and may block); the others wait on the same queue for reap to leave BUSY. A joiner
 * whose timed join fails puts reap back to NONE so that a later join can finish it.
 * br_thread_free detaches a thread nobody reaped (reap NONE -> DETACHED). The timed
 * join is pthread_clockjoin_np on CLOCK_MONOTONIC with the deadline as it is, so a far
 * deadline (BR_FOREVER - 1) can't overflow and a wall-clock jump doesn't matter.
 * ThreadSanitizer doesn't intercept pthread_clockjoin_np (it would never learn that
 * the thread was joined), so TSan builds use pthread_timedjoin_np on CLOCK_REALTIME
 * with the remaining time added with saturation.
 *
 * Exit (the daemon flag). Every running thread is in a registry (start order, under
 * reg_lock, an ilock never held across a block). An atexit handler, registered when
 * the first thread starts, repeatedly picks the first non-daemon thread that hasn't
 * finished and isn't the caller, and waits for it: threads started while it waits are
 * seen on the next pass. Daemon threads are not waited for.
 *
 * fork. In the child only the forking thread exists: an atfork handler marks every
 * other registered thread finished and reaped (they can't be joined: their pthreads
 * don't exist there), so exit() in the child doesn't wait for the parent's threads.
 *
 * Names. The full name lives in the block; the kernel gets the first 15 bytes
 * (br__set_thread_name), set by the thread itself before fn runs. "Thread-N"
 * and "Dummy-N" share one counter, as in Python.
 */
#include "thread/internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__)
#  define TSAN_BUILD 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define TSAN_BUILD 1
#  endif
#endif

#if defined(__GLIBC__) && !defined(TSAN_BUILD) &&                                    \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 31))
#  define HAVE_CLOCKJOIN 1
#endif

static br__ilock reg_lock;
static struct br_thread *reg_head, *reg_tail;
static atomic_int active;
static atomic_ulong name_counter;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static BR__TLS char dummy_name[32];

static int gettid_(void) {
    return (int)syscall(SYS_gettid);
}

/* --- references and the registry --------------------------------------------------- */

static void unref(struct br_thread *t) {
    /* acq_rel: the last dropper sees everything the other party wrote. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
        br__free(t->name);
        br__free(t);
    }
}

static void reg_link(struct br_thread *t) {
    br__ilock_lock(&reg_lock);
    t->prev = reg_tail;
    t->next = NULL;
    if (reg_tail)
        reg_tail->next = t;
    else
        reg_head = t;
    reg_tail = t;
    t->registered = true;
    atomic_fetch_add_explicit(&active, 1, memory_order_relaxed);
    br__ilock_unlock(&reg_lock);
}

static void reg_unlink_locked(struct br_thread *t) {
    if (!t->registered)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        reg_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        reg_tail = t->prev;
    t->next = t->prev = NULL;
    t->registered = false;
    atomic_fetch_sub_explicit(&active, 1, memory_order_relaxed);
}

static void reg_unlink(struct br_thread *t) {
    br__ilock_lock(&reg_lock);
    reg_unlink_locked(t);
    br__ilock_unlock(&reg_lock);
}

/* --- waiting on the handle ----------------------------------------------------------- */

/* Waits until *word != avoid (if avoid_mode) or *word == want: checked and linked
 * under wq.lock; every change of done/reap that someone may wait for is made under
 * wq.lock and followed by a wake of the whole queue. */
static int wait_word(struct br_thread *t, _Atomic uint32_t *word, uint32_t val,
                     bool until_not, int64_t deadline) {
    for (;;) {
        br__waiter w;
        br__waiter_init(&w);
        br__ilock_lock(&t->wq.lock);
        uint32_t v = atomic_load_explicit(word, memory_order_acquire);
        if (until_not ? v != val : v == val) {
            br__ilock_unlock(&t->wq.lock);
            return 0;
        }
        br__wq_push(&t->wq, &w);
        br__ilock_unlock(&t->wq.lock);
        int rc = br__waiter_park_or_cancel(&w, &t->wq, deadline, NULL, NULL);
        if (rc != 0)
            return rc;
    }
}

/* Stores v into *word under wq.lock and wakes every waiter. */
static void set_word(struct br_thread *t, _Atomic uint32_t *word, uint32_t v) {
    br__ilock_lock(&t->wq.lock);
    atomic_store_explicit(word, v, memory_order_release);
    br__ilock_unlock(&t->wq.lock);
    br__wq_wake(&t->wq, -1, 0);
}

/* --- exit and fork ---------------------------------------------------------------------
 */

static void join_at_exit(void) {
    struct br_thread *me = br__tls_v.thread;
    for (;;) {
        struct br_thread *t;
        br__ilock_lock(&reg_lock);
        for (t = reg_head; t; t = t->next)
            if (!t->daemon && t != me &&
                !atomic_load_explicit(&t->done, memory_order_relaxed))
                break;
        if (t)
            atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
        br__ilock_unlock(&reg_lock);
        if (!t)
            return;
        wait_word(t, &t->done, 1, false, BR_FOREVER);
        unref(t);
    }
}

static void fork_prepare(void) {
    br__ilock_lock(&reg_lock);
}
static void fork_parent(void) {
    br__ilock_unlock(&reg_lock);
}

static void fork_child(void) {
    struct br_thread *me = br__tls_v.thread, *t, *next;
    for (t = reg_head; t; t = next) {
        next = t->next;
        if (t == me)
            continue;
        reg_unlink_locked(t);
        /* Its pthread is gone here. Nobody of the parent waits on this copy: reset the
         * queue (its ilock may have been held by a thread that no longer exists), mark
         * it finished and reaped, and keep the block (the thread's own reference can
         * never be dropped in this process). */
        memset(&t->wq, 0, sizeof t->wq);
        atomic_store_explicit(&t->done, 1, memory_order_relaxed);
        atomic_store_explicit(&t->reap, BR__REAP_DONE, memory_order_relaxed);
    }
    atomic_store_explicit(&reg_lock.word, 0, memory_order_relaxed);
}

static void init_once(void) {
    /* Registered at the first start, so handlers registered before run after ours
     * (atexit runs in reverse order), as the header says. Failure to register leaves
     * exit() not waiting: nothing better to do. */
    (void)atexit(join_at_exit);
    (void)pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* --- the thread's own side
 * ---------------------------------------------------------------- */

static void *trampoline(void *arg) {
    struct br_thread *t = arg;
    br__tls_v.thread = t;
    br__tls_v.name = t->name;
    atomic_store_explicit(&t->ident, (uint64_t)pthread_self(), memory_order_relaxed);
    atomic_store_explicit(&t->tid, gettid_(), memory_order_relaxed);
    br__set_thread_name(t->name);

    t->fn(t->arg);

    reg_unlink(t); /* before done, so active_count no longer counts it once joined */
    set_word(t, &t->done, 1);
    /* From here on this thread no longer holds the block: code that runs later on it
     * (br_local destructors) sees a thread braid didn't start. */
    br__tls_v.thread = NULL;
    br__tls_v.name = NULL;
    unref(t);
    return NULL;
}

/* --- the public API ----------------------------------------------------------------------
 */

static int map_errno(int e) {
    switch (e) {
    case EAGAIN:
        return BR_EAGAIN;
    case ENOMEM:
        return BR_ENOMEM;
    case EINVAL:
        return BR_EINVAL;
    default:
        return BR_EAGAIN; /* EPERM (scheduling attributes we never set) and the like */
    }
}

int br_thread_start(br_thread **out, br_thread_fn fn, void *arg,
                    const br_thread_opts *opts) {
    if (!out || !fn)
        return BR__MISUSE(BR_EINVAL, "br_thread_start: NULL out or fn");
    br_thread_opts dflt = {0};
    if (!opts)
        opts = &dflt;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return BR_ENOMEM;
    if (opts->stack_size != 0 && pthread_attr_setstacksize(&attr, opts->stack_size) != 0) {
        pthread_attr_destroy(&attr);
        return BR__MISUSE(BR_EINVAL,
                          "br_thread_start: stack_size below the system minimum");
    }

    struct br_thread *t = br__calloc(1, sizeof *t);
    if (!t) {
        pthread_attr_destroy(&attr);
        return BR_ENOMEM;
    }
    if (opts->name) {
        t->name = br__strdup(opts->name);
    } else {
        unsigned long n =
            atomic_fetch_add_explicit(&name_counter, 1, memory_order_relaxed) + 1;
        char buf[32];
        snprintf(buf, sizeof buf, "Thread-%lu", n);
        t->name = br__strdup(buf);
    }
    if (!t->name) {
        br__free(t);
        pthread_attr_destroy(&attr);
        return BR_ENOMEM;
    }
    atomic_init(&t->magic, BR__THREAD_ALIVE);
    atomic_init(&t->refs, 2);
    t->daemon = opts->daemon;
    t->fn = fn;
    t->arg = arg;

    pthread_once(&once, init_once);
    reg_link(t);
    int e = pthread_create(&t->pt, &attr, trampoline, t);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        reg_unlink(t);
        br__free(t->name);
        br__free(t);
        return map_errno(e);
    }
    atomic_store_explicit(&t->ident, (uint64_t)t->pt, memory_order_relaxed);
    *out = t;
    return 0;
}

static bool handle_ok(const br_thread *t) {
    return t && atomic_load_explicit(&t->magic, memory_order_relaxed) == BR__THREAD_ALIVE;
}

static int join_errno(int e) {
    if (e == 0)
        return 0;
    if (e == ETIMEDOUT || e == EBUSY)
        return BR_ETIMEDOUT;
    return e == EDEADLK ? BR_EDEADLK : BR_EINVAL;
}

/* One pthread join bounded by a monotonic deadline: 0, BR_ETIMEDOUT, or (never for a
 * handle braid manages) BR_EINVAL / BR_EDEADLK. Blocks the OS thread: see the design
 * notes. */
static int join_pthread(pthread_t pt, int64_t deadline) {
    if (deadline == BR_FOREVER)
        return join_errno(pthread_join(pt, NULL));
#if defined(HAVE_CLOCKJOIN)
    /* The deadline is a CLOCK_MONOTONIC time already: no conversion to overflow. A
     * deadline before boot (BR_NOWAIT) still joins a thread that has exited. */
    if (deadline < 0)
        deadline = 0;
    struct timespec ts = {.tv_sec = (time_t)(deadline / BR_SEC),
                          .tv_nsec = (long)(deadline % BR_SEC)};
    return join_errno(pthread_clockjoin_np(pt, NULL, CLOCK_MONOTONIC, &ts));
#elif defined(__GLIBC__)
    /* pthread_timedjoin_np takes CLOCK_REALTIME: add the time left, saturating. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * BR_SEC + ts.tv_nsec;
    int64_t left = br_deadline_left(deadline);
    int64_t at = left > INT64_MAX - now ? INT64_MAX : now + left;
    ts.tv_sec = (time_t)(at / BR_SEC);
    ts.tv_nsec = (long)(at % BR_SEC);
    return join_errno(pthread_timedjoin_np(pt, NULL, &ts));
#else
    return join_errno(pthread_join(pt, NULL));
#endif
}

int br_thread_join(br_thread *t, int64_t deadline) {
    if (!handle_ok(t))
        return BR__MISUSE(BR_EINVAL, "br_thread_join: NULL or freed thread");
    if (t == br__tls_v.thread)
        return BR__MISUSE(BR_EDEADLK, "br_thread_join: a thread joining itself");
    if (!atomic_load_explicit(&t->done, memory_order_acquire)) {
        int rc = wait_word(t, &t->done, 1, false, deadline);
        if (rc != 0)
            return rc;
    }
    for (;;) {
        uint32_t r = atomic_load_explicit(&t->reap, memory_order_acquire);
        if (r == BR__REAP_DONE || r == BR__REAP_DETACHED)
            return 0;
        if (r == BR__REAP_BUSY) { /* another joiner is reaping it */
            int rc = wait_word(t, &t->reap, BR__REAP_BUSY, true, deadline);
            if (rc != 0)
                return rc;
            continue;
        }
        if (!atomic_compare_exchange_strong_explicit(
                &t->reap, &r, BR__REAP_BUSY, memory_order_acq_rel, memory_order_acquire))
            continue;
        int rc = join_pthread(t->pt, deadline);
        set_word(t, &t->reap, rc == 0 ? BR__REAP_DONE : BR__REAP_NONE);
        return rc;
    }
}

int br_thread_free(br_thread *t) {
    if (!t)
        return BR__MISUSE(BR_EINVAL, "br_thread_free: NULL thread");
    uint32_t m = BR__THREAD_ALIVE;
    if (!atomic_compare_exchange_strong_explicit(
            &t->magic, &m, BR__THREAD_FREED, memory_order_relaxed, memory_order_relaxed))
        return BR__MISUSE(BR_EINVAL, "br_thread_free: freed twice");
    uint32_t r = BR__REAP_NONE;
    if (atomic_compare_exchange_strong_explicit(&t->reap, &r, BR__REAP_DETACHED,
                                                memory_order_acq_rel, memory_order_acquire))
        pthread_detach(t->pt);
    unref(t);
    return 0;
}

bool br_thread_is_alive(const br_thread *t) {
    return handle_ok(t) && !atomic_load_explicit(&t->done, memory_order_acquire);
}

const char *br_thread_name(const br_thread *t) {
    return handle_ok(t) ? t->name : NULL;
}

bool br_thread_is_daemon(const br_thread *t) {
    return handle_ok(t) && t->daemon;
}

uint64_t br_thread_ident(const br_thread *t) {
    return handle_ok(t) ? atomic_load_explicit(&t->ident, memory_order_relaxed) : 0;
}

int br_thread_native_id(const br_thread *t) {
    return handle_ok(t) ? atomic_load_explicit(&t->tid, memory_order_relaxed) : 0;
}

const char *br_thread_current_name(void) {
    if (br__tls_v.name)
        return br__tls_v.name;
    if (gettid_() == (int)getpid()) {
        br__tls_v.name = "MainThread";
    } else {
        unsigned long n =
            atomic_fetch_add_explicit(&name_counter, 1, memory_order_relaxed) + 1;
        snprintf(dummy_name, sizeof dummy_name, "Dummy-%lu", n);
        br__tls_v.name = dummy_name;
    }
    return br__tls_v.name;
}

br_thread *br_thread_current(void) {
    return br__tls_v.thread;
}

uint64_t br_thread_current_ident(void) {
    return (uint64_t)pthread_self();
}

int br_thread_current_native_id(void) {
    return gettid_();
}

int br_thread_active_count(void) {
    return atomic_load_explicit(&active, memory_order_relaxed);
}

/* --- threading.local -------------------------------------------------------------------
 */

struct br_local {
    pthread_key_t key;
};

int br_local_new(br_local **out, void (*dtor)(void *value)) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_local_new: NULL out");
    struct br_local *l = br__malloc(sizeof *l);
    if (!l)
        return BR_ENOMEM;
    int e = pthread_key_create(&l->key, dtor);
    if (e != 0) {
        br__free(l);
        return e == ENOMEM ? BR_ENOMEM : BR_EAGAIN; /* EAGAIN: PTHREAD_KEYS_MAX reached */
    }
    *out = l;
    return 0;
}

void *br_local_get(br_local *l) {
    return l ? pthread_getspecific(l->key) : NULL;
}

int br_local_set(br_local *l, void *value) {
    if (!l)
        return BR__MISUSE(BR_EINVAL, "br_local_set: NULL local");
    int e = pthread_setspecific(l->key, value);
    return e == 0 ? 0 : e == ENOMEM ? BR_ENOMEM : BR_EINVAL;
}

int br_local_free(br_local *l) {
    if (!l)
        return BR__MISUSE(BR_EINVAL, "br_local_free: NULL local");
    pthread_key_delete(l->key);
    br__free(l);
    return 0;
}
