/* threading.Thread for C: start, names, daemon flag and exit, join with a deadline,
 * threading.local.
 *
 * Design notes.
 *
 * Handle. A br_thread block is shared by the handle (the caller of br_thread_start),
 * the running thread, and every br_thread_join in progress: `refs` counts them, and
 * whoever drops the last reference frees the block. So br_thread_free on a running
 * thread just detaches it and lets the thread free the block when it ends, and a join
 * that another thread races with br_thread_free keeps a valid block to the end.
 *
 * Join. `done` becomes 1 when fn returns; joiners wait for it on `wq` with their
 * deadline (a flag and a wait-queue, checked and linked under wq.lock, set and popped
 * under wq.lock: no lost wake-up). Then one joiner reaps the pthread (reap NONE -> BUSY
 * -> DONE): br_local destructors run after fn and may block, so "joined" means the
 * pthread is gone, not only fn. The others wait on the same queue for reap to leave
 * BUSY. A reaper whose deadline passes puts reap back to NONE so that a later join can
 * finish it. Every change of reap is made under wq.lock.
 *
 * Reaping exactly once. The pthread is joined or detached exactly once, whatever the
 * order of joins, timeouts and br_thread_free: br_thread_free detaches it at once if
 * nobody reaped it and no join is in progress; otherwise it only marks the handle
 * freed, and the last join in progress to leave detaches it if it is still not
 * reaped (a reaper that timed out has put reap back to NONE by then). `joiners` and
 * `handle_freed` are under wq.lock, so exactly one of them sees the last chance.
 *
 * Blocking outside the waiter. Every wait here goes through braid's waiter (joiners
 * waiting for `done` or for another joiner's reap, the exit handler waiting for
 * `done`) except one: the reap itself, pthread_join (BR_FOREVER) or
 * pthread_clockjoin_np (a finite deadline), which blocks the OS thread in the C
 * library. A coroutine that joins a thread would block its whole loop thread there.
 * That is acceptable because the reap starts only once `done` is set: it waits only
 * for the thread's exit path (br_local destructors and the C library's TLS teardown),
 * which normally takes microseconds, it is bounded by the caller's deadline, and the
 * long wait, for fn to return, goes through the waiter. (There is no portable way to
 * wait for a pthread's end on a futex of our own.)
 *
 * Cancellation (a coroutine's, core/lib.h). The waits for `done` and for another
 * joiner's reap are cancellable: a cancelled one unlinks itself and the join returns
 * BR_ECANCELED through the same exit as a timeout (joiners counted down, the detach
 * left to the last join out if the handle was freed), having changed nothing. One
 * woken first keeps the wake (rule 2: the cancel stays pending) and looks at the state
 * again: it may find the thread reaped (0), or become the reaper itself. The reap is
 * not cancellable: pthread_join can't be interrupted, and a reaper that gave up would
 * only hand the same short wait to the next joiner, so a cancel that arrives during it
 * stays pending and the join returns what the reap returned. A join that finds the
 * thread already reaped never parks and returns 0 whatever is pending. The exit
 * handler's wait for `done` ignores cancels (BR__WAITER_NOCANCEL): exit() must wait for
 * every non-daemon thread, whatever context calls it.
 *
 * The timed reap uses pthread_clockjoin_np on CLOCK_MONOTONIC with the deadline as it
 * is, so a far deadline (BR_FOREVER - 1) can't overflow and a wall-clock jump doesn't
 * matter. ThreadSanitizer doesn't intercept pthread_clockjoin_np (it would never learn
 * that the thread was joined), so TSan builds use pthread_timedjoin_np on
 * CLOCK_REALTIME with the remaining time added with saturation; only there can a
 * wall-clock step shorten or stretch a timed reap.
 *
 * Exit (the daemon flag). Every block is in a registry (start order, under reg_lock,
 * an ilock never held across a block) from br_thread_start until it is freed. An
 * atexit handler, registered when the first thread starts, repeatedly picks the first
 * non-daemon thread that hasn't finished and isn't the caller, takes a reference and
 * waits for `done`: threads started while it waits are seen on the next pass. Daemon
 * threads are not waited for. A start whose pthread_create fails finishes its block
 * like a thread that ended at once (done, woken, references dropped), since the exit
 * handler may already hold a reference and wait on it.
 *
 * fork. In the child only the forking thread exists. fork_prepare holds reg_lock
 * across fork(), so the registry is consistent; the child's handler marks every other
 * block finished and reaped (its pthread doesn't exist there, and a pthread_join on it
 * would touch the parent's thread bookkeeping), empties every block's wait-queue (the
 * joiners were other threads, and one may have held wq.lock), and recounts the active
 * threads. Because blocks stay registered until freed, this covers a thread caught
 * anywhere: running fn, between fn and `done`, or in its destructors. The child keeps
 * those blocks (their threads' references can never be dropped there).
 *
 * Names. The full name lives in the block; the kernel gets the first 15 bytes
 * (br__set_thread_name), set by the thread itself before fn runs. "Thread-N" and
 * "Dummy-N" share one counter, as in Python.
 */
#include "thread/private.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int (*br__thread_create)(pthread_t *pt, const pthread_attr_t *attr, void *(*start)(void *),
                         void *arg) = pthread_create;

static br__ilock reg_lock;
static struct br_thread *reg_head, *reg_tail;
static atomic_int active;
static atomic_ulong name_counter;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static BR__TLS char dummy_name[32];

/* --- references and the registry --------------------------------------------------- */

static void reg_link(struct br_thread *t) {
    br__ilock_lock(&reg_lock);
    t->prev = reg_tail;
    t->next = NULL;
    if (reg_tail)
        reg_tail->next = t;
    else
        reg_head = t;
    reg_tail = t;
    atomic_fetch_add_explicit(&active, 1, memory_order_relaxed);
    br__ilock_unlock(&reg_lock);
}

static void reg_unlink_locked(struct br_thread *t) {
    if (t->prev)
        t->prev->next = t->next;
    else
        reg_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    else
        reg_tail = t->prev;
    t->next = t->prev = NULL;
}

void br__thread_ref(struct br_thread *t) {
    atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void br__thread_unref(struct br_thread *t) {
    /* acq_rel: the last dropper sees everything the other parties wrote. */
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) != 1)
        return;
    br__ilock_lock(&reg_lock);
    reg_unlink_locked(t);
    br__ilock_unlock(&reg_lock);
    br__free(t->name);
    br__free_poisoned(t, sizeof *t);
}

/* A reference for someone who found t in the registry (under reg_lock) rather than
 * through a handle: fails if the block is already on its way to being freed (refs hit
 * 0; its dropper waits for reg_lock to unlink it). */
static bool try_ref_locked(struct br_thread *t) {
    uint32_t r = atomic_load_explicit(&t->refs, memory_order_relaxed);
    while (r != 0)
        if (atomic_compare_exchange_weak_explicit(&t->refs, &r, r + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* --- waiting on the handle ----------------------------------------------------------- */

/* Stores v into *word under wq.lock and wakes every waiter. */
static void set_word(struct br_thread *t, _Atomic uint32_t *word, uint32_t v) {
    br__ilock_lock(&t->wq.lock);
    atomic_store_explicit(word, v, memory_order_release);
    br__waiter *chain = br__wq_pop_all(&t->wq, 0);
    br__ilock_unlock(&t->wq.lock);
    br__wake_chain(chain);
}

/* Links w into t->wq (the caller holds wq.lock and drops it here) and parks it. 0 when
 * woken (the state changed: look again), BR_ETIMEDOUT or BR_ECANCELED (unlinked; never
 * with BR__WAITER_NOCANCEL in w->flags). */
static int park_on(struct br_thread *t, br__waiter *w, int64_t deadline) {
    br__wq_push(&t->wq, w);
    br__ilock_unlock(&t->wq.lock);
    return br__waiter_park_or_leave(w, &t->wq, deadline, NULL, NULL);
}

/* Waits until t's fn has returned: 0, BR_ETIMEDOUT or BR_ECANCELED. wflags: 0, or
 * BR__WAITER_NOCANCEL for a wait that must finish. */
static int wait_done(struct br_thread *t, int64_t deadline, uint32_t wflags) {
    for (;;) {
        BR__PARKED(br__waiter, w);
        br__waiter_init(w);
        w->flags = wflags;
        br__ilock_lock(&t->wq.lock);
        if (atomic_load_explicit(&t->done, memory_order_acquire)) {
            br__ilock_unlock(&t->wq.lock);
            return 0;
        }
        int rc = park_on(t, w, deadline);
        if (rc != 0)
            return rc;
    }
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
                !atomic_load_explicit(&t->done, memory_order_relaxed) && try_ref_locked(t))
                break;
        br__ilock_unlock(&reg_lock);
        if (!t)
            return;
        /* Uncancellable: exit() waits for every non-daemon thread, even when a
         * cancelled coroutine's context calls it. */
        (void)wait_done(t, BR_FOREVER, BR__WAITER_NOCANCEL);
        br__thread_unref(t);
    }
}

static void fork_prepare(void) {
    br__ilock_lock(&reg_lock);
}
static void fork_parent(void) {
    br__ilock_unlock(&reg_lock);
}

static void fork_child(void) {
    struct br_thread *me = br__tls_v.thread;
    int running = 0;
    for (struct br_thread *t = reg_head; t; t = t->next) {
        /* Its joiners were other threads: gone, and one may have held wq.lock. */
        memset(&t->wq, 0, sizeof t->wq);
        t->joiners = 0;
        if (t == me) {
            running += !atomic_load_explicit(&t->done, memory_order_relaxed);
            continue;
        }
        /* Its pthread doesn't exist here: finished, and nothing left to reap. */
        atomic_store_explicit(&t->done, 1, memory_order_relaxed);
        if (atomic_load_explicit(&t->reap, memory_order_relaxed) != BR__REAP_DETACHED)
            atomic_store_explicit(&t->reap, BR__REAP_DONE, memory_order_relaxed);
    }
    atomic_store_explicit(&active, running, memory_order_relaxed);
    atomic_store_explicit(&reg_lock.word, 0, memory_order_relaxed);
}

/* The thread layer's lifecycle (core/lib.h): registered at the first start, so that
 * atexit handlers registered before braid's first thread (or pool) run after the join,
 * as the header says. A failed registration leaves exit() not waiting: nothing better
 * to do. */
static br__hooks thread_hooks = {
    .order = BR__ORDER_THREAD,
    .name = "thread",
    .prepare = fork_prepare,
    .parent = fork_parent,
    .child = fork_child,
    .at_exit = join_at_exit,
};

static void init_once(void) { (void)br__hooks_register(&thread_hooks); }

/* --- the thread's own side
 * ---------------------------------------------------------------- */

static void *trampoline(void *arg) {
    struct br_thread *t = arg;
    br__tls_v.thread = t;
    br__tls_v.name = t->name;
    atomic_store_explicit(&t->ident, (uint64_t)pthread_self(), memory_order_relaxed);
    atomic_store_explicit(&t->tid, br__thread_native_id(), memory_order_relaxed);
    br__set_thread_name(t->name);

    t->fn(t->arg);

    /* Not counted any more by the time a joiner sees done. */
    atomic_fetch_sub_explicit(&active, 1, memory_order_relaxed);
    set_word(t, &t->done, 1);
    /* From here on this thread no longer holds the block: code that runs later on it
     * (br_local destructors) sees a thread braid didn't start. */
    br__tls_v.thread = NULL;
    br__tls_v.name = NULL;
    br__thread_unref(t);
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
    atomic_init(&t->refs, 2); /* the handle and the thread */
    t->daemon = opts->daemon;
    t->fn = fn;
    t->arg = arg;

    pthread_once(&once, init_once);
    reg_link(t);
    int e = br__thread_create(&t->pt, &attr, trampoline, t);
    pthread_attr_destroy(&attr);
    if (e != 0) {
        /* The exit handler may have found t in the registry and wait for it: finish
         * it like a thread that ended at once (nothing to reap), wake it, and drop the
         * thread's and the handle's references; the last one out frees the block. */
        atomic_fetch_sub_explicit(&active, 1, memory_order_relaxed);
        atomic_store_explicit(&t->magic, BR__THREAD_FREED, memory_order_relaxed);
        br__ilock_lock(&t->wq.lock);
        atomic_store_explicit(&t->reap, BR__REAP_DONE, memory_order_relaxed);
        br__ilock_unlock(&t->wq.lock);
        set_word(t, &t->done, 1);
        br__thread_unref(t);
        br__thread_unref(t);
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

/* The join proper, for a caller that holds a reference and counts in t->joiners. */
static int join_held(struct br_thread *t, int64_t deadline) {
    for (;;) {
        BR__PARKED(br__waiter, w);
        br__waiter_init(w);
        br__ilock_lock(&t->wq.lock);
        uint32_t r = atomic_load_explicit(&t->reap, memory_order_acquire);
        if (!atomic_load_explicit(&t->done, memory_order_acquire) || r == BR__REAP_BUSY) {
            /* fn still runs, or another joiner is reaping: wait for a change. */
            int rc = park_on(t, w, deadline);
            if (rc != 0)
                return rc; /* BR_ETIMEDOUT or BR_ECANCELED: nothing changed */
            continue;
        }
        if (r == BR__REAP_DONE) {
            br__ilock_unlock(&t->wq.lock);
            return 0;
        }
        if (r == BR__REAP_DETACHED) { /* only after br_thread_free: a join on a freed handle */
            br__ilock_unlock(&t->wq.lock);
            return BR__MISUSE(BR_EINVAL, "br_thread_join: the handle was freed");
        }
        atomic_store_explicit(&t->reap, BR__REAP_BUSY, memory_order_relaxed);
        br__ilock_unlock(&t->wq.lock);
        /* Not cancellable (design notes): a cancel now stays pending. */
        int rc = join_pthread(t->pt, deadline);
        /* Done, or back to NONE for a later join (or the last joiner's detach). */
        set_word(t, &t->reap, rc == 0 ? BR__REAP_DONE : BR__REAP_NONE);
        return rc;
    }
}

/* Under t->wq.lock: true (and the reap claimed for a detach) once the handle is freed,
 * no join is in progress and nobody reaped the thread; the caller detaches it after
 * unlocking. */
static bool claim_detach_locked(struct br_thread *t) {
    if (!t->handle_freed || t->joiners != 0 ||
        atomic_load_explicit(&t->reap, memory_order_relaxed) != BR__REAP_NONE)
        return false;
    atomic_store_explicit(&t->reap, BR__REAP_DETACHED, memory_order_relaxed);
    return true;
}

int br_thread_join(br_thread *t, int64_t deadline) {
    if (!handle_ok(t))
        return BR__MISUSE(BR_EINVAL, "br_thread_join: NULL or freed thread");
    if (t == br__tls_v.thread)
        return BR__MISUSE(BR_EDEADLK, "br_thread_join: a thread joining itself");
    /* acquire: pairs with the release store of DONE, after the reaper's pthread_join. */
    if (atomic_load_explicit(&t->reap, memory_order_acquire) == BR__REAP_DONE)
        return 0;

    br__thread_ref(t); /* the block outlives a br_thread_free racing with us */
    br__ilock_lock(&t->wq.lock);
    t->joiners++;
    br__ilock_unlock(&t->wq.lock);

    int rc = join_held(t, deadline);

    /* The last join to leave after br_thread_free detaches a pthread nobody reaped. */
    br__ilock_lock(&t->wq.lock);
    t->joiners--;
    bool detach = claim_detach_locked(t);
    br__ilock_unlock(&t->wq.lock);
    if (detach)
        pthread_detach(t->pt);
    br__thread_unref(t);
    return rc;
}

int br_thread_free(br_thread *t) {
    if (!t)
        return BR__MISUSE(BR_EINVAL, "br_thread_free: NULL thread");
    uint32_t m = BR__THREAD_ALIVE;
    if (!atomic_compare_exchange_strong_explicit(
            &t->magic, &m, BR__THREAD_FREED, memory_order_relaxed, memory_order_relaxed))
        return BR__MISUSE(BR_EINVAL, "br_thread_free: freed twice");
    /* Detach now if nobody reaped it and no join is in progress; else the last join to
     * leave does (design notes). */
    br__ilock_lock(&t->wq.lock);
    t->handle_freed = true;
    bool detach = claim_detach_locked(t);
    br__ilock_unlock(&t->wq.lock);
    if (detach)
        pthread_detach(t->pt);
    br__thread_unref(t);
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
    if (br__thread_native_id() == (int)getpid()) {
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
    return br__thread_native_id();
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
    br__free_poisoned(l, sizeof *l);
    return 0;
}
