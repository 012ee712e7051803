/* braid/thread.h: Python's `threading`, for C.
 *
 *   threading.Thread(target, args, name, daemon)   br_thread_start(&t, fn, arg, &opts)
 *   t.join(timeout)                                 br_thread_join(t, deadline)
 *   Lock / RLock                                    br_lock / br_rlock
 *   Condition(lock)                                 br_cond
 *   Semaphore / BoundedSemaphore                    br_sem (br_sem_init / _init_bounded)
 *   Event, Barrier                                  br_event, br_barrier
 *   threading.local                                 br_local
 *   with lock:                                      BR_WITH(&lock) { ... }
 *
 * Every primitive here is built on braid's waiter (see src/core/lib.h): called from
 * a thread it blocks the thread; called from a braid coroutine (the aio layer) it will
 * suspend only that coroutine. Ownership follows the caller: a lock taken by a
 * coroutine belongs to that coroutine.
 *
 * Storage: locks, conditions, semaphores, events and barriers live wherever you put
 * them (stack, struct, static) in fixed-size opaque storage. All-zero storage is a
 * valid object: an unlocked lock, an RLock, a Condition with its own RLock (like
 * threading.Condition()), a semaphore with value 0, a cleared event. _init functions
 * exist for the other configurations; _destroy returns BR_EBUSY while the object is
 * held or waited on, and poisons it so that later use returns BR_EINVAL. Destroying
 * twice is detected, always: the storage is yours and keeps the poison until you
 * initialise it again, so a second _destroy returns BR_EINVAL (a misuse).
 *
 * When to destroy (or free the memory of) one: only once no other thread can still be
 * inside a call on it. A waiter that has returned from br_sem_acquire or
 * br_event_wait may run ahead of the thread that released or set it, which can still
 * be finishing its br_sem_release / br_event_set; so destroy after joining (or
 * otherwise synchronising with) every thread that uses the object, as with any mutex.
 *
 * Deadlines are absolute (see braid/core.h): BR_FOREVER, BR_NOWAIT, br_deadline_after().
 * Under BR_NOWAIT (or any deadline already past) "would block" is BR_ETIMEDOUT.
 *
 * Errors: each function lists every code it returns. BR_EINVAL and BR_EPERM mean misuse
 * (a NULL or destroyed object, a lock the caller doesn't hold) and go through the
 * misuse policy (br_set_panic_on_misuse).
 *
 * Cancellation: a blocking call made by a braid coroutine that is cancelled while the
 * call waits returns BR_ECANCELED, and the call has had no effect (no lock, unit or
 * wake-up taken; br_cond_wait is the one exception: it still takes the lock back).
 * Threads are never cancelled. If the wake-up and the cancel arrive together and the
 * wake-up wins, the call succeeds and the cancel stays pending for the coroutine's
 * next blocking call. A cancel is only seen by a call that has to wait: one that can
 * finish at once (a free lock, a set event) succeeds and leaves it pending.
 *
 * C++: the header compiles as C++11. br_cond_init and BR_WITH are built on _Generic and
 * work in C only; from C++ call br_cond_init_lock / br_cond_init_rlock and acquire and
 * release explicitly (or in an RAII wrapper).
 */
#ifndef BRAID_THREAD_H
#define BRAID_THREAD_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- threads -------------------------------------------------------------------- */

typedef struct br_thread br_thread;

/* A thread's body. Its return ends the thread, as with Python's run(). */
typedef void (*br_thread_fn)(void *arg);

typedef struct br_thread_opts {
    /* The thread's name, copied. NULL gives Python's "Thread-N". The kernel (and so
     * /proc/<pid>/task/<tid>/comm, top, gdb) sees the first 15 bytes;
     * br_thread_current_name() gives all of it. */
    const char *name;
    /* Python's daemon flag. A non-daemon thread is waited for when the process exits
     * through exit() or a return from main(); a daemon thread is not. See below. */
    bool daemon;
    /* Stack size in bytes; 0 gives the system default. */
    size_t stack_size;
    /* More fields may be added at any time; zero always keeps the default. */
} br_thread_opts;

/* Process exit, the Python way. When the process exits through exit() or by returning
 * from main(), braid's atexit handler joins every non-daemon thread that
 * br_thread_start started and that is still running (except the caller), in start
 * order, before the process ends; daemon threads are not waited for and stop wherever
 * they are when the process ends. Python does the same at interpreter shutdown.
 * _exit(), quick_exit(), abort() and fatal signals end the process at once, daemon or
 * not. A non-daemon thread that never returns makes exit() wait forever, as in Python.
 * Non-daemon thread pools are shut down (their queued tasks run) before the join.
 * Handlers registered with atexit() before braid's first thread or thread pool run
 * after the join; those registered later run before it. */

/* Starts a thread running fn(arg). On success *out is a handle you own: free it with
 * br_thread_free (the thread itself keeps running). Returns 0, BR_EINVAL (out or fn
 * NULL, or stack_size below the system minimum), BR_EAGAIN (the system can't create
 * another thread: too many threads, or no room for the stack) or BR_ENOMEM. On error
 * nothing runs and *out is unchanged. */
BR_API int br_thread_start(br_thread **out, br_thread_fn fn, void *arg,
                           const br_thread_opts *opts);

/* Waits until t has finished or the deadline passes. "Finished" means the thread is
 * gone: fn has returned and its br_local destructors have run. Several callers may
 * join the same thread, and join again after a timeout. Returns 0, BR_ETIMEDOUT,
 * BR_ECANCELED (the calling coroutine was cancelled (never for a thread); nothing
 * happened: join again later), BR_EDEADLK (a thread joining itself) or BR_EINVAL (t
 * NULL; a freed handle is a use after free, see br_thread_free). The last step,
 * waiting for the finished thread's exit in the C library (pthread_join, normally
 * microseconds), can't be cancelled: a cancel that arrives then stays pending. */
BR_API int br_thread_join(br_thread *t, int64_t deadline);

/* Releases the handle. A thread still running goes on (detached); if it is non-daemon
 * it is still waited for at exit. Joins that other threads are known to be blocked in
 * (the freeing thread has seen them wait: they have registered) are not disturbed:
 * they keep what they need alive and end as they would have. A join that may still be
 * entering br_thread_join while t is freed races the free (as pthread_join racing
 * pthread_detach does) and is misuse, like a join begun after it: order the two
 * yourself. Returns 0 or BR_EINVAL (t NULL).
 *
 * Freeing a handle twice is a use after free, not an error braid can report: the
 * handle's memory goes once the thread has ended and no join holds it, and may be
 * reused at once. While it is still there the second call happens to return BR_EINVAL
 * (a magic check): a debugging aid, never a promise. Debug builds poison the freed
 * memory; AddressSanitizer reports the use. */
BR_API int br_thread_free(br_thread *t);

/* False once fn has returned. */
BR_API bool br_thread_is_alive(const br_thread *t);
/* The full name; valid while you hold the handle. */
BR_API const char *br_thread_name(const br_thread *t);
BR_API bool br_thread_is_daemon(const br_thread *t);
/* Python's ident (the pthread_t as an integer) and native_id (the kernel's thread id;
 * valid once the thread has started running, 0 before). */
BR_API uint64_t br_thread_ident(const br_thread *t);
BR_API int br_thread_native_id(const br_thread *t);

/* The calling thread's name: its br_thread_opts name, "MainThread" for the main
 * thread, or "Dummy-N" for a thread braid didn't start. Valid until that thread exits. */
BR_API const char *br_thread_current_name(void);
/* The calling thread's handle if braid started it, else NULL. Borrowed. */
BR_API br_thread *br_thread_current(void);
BR_API uint64_t br_thread_current_ident(void);
BR_API int br_thread_current_native_id(void);
/* Threads started by braid and still running (Python's active_count() counts the main
 * thread too; this doesn't). */
BR_API int br_thread_active_count(void);

/* threading.local: one value per thread, with a destructor run at thread exit for
 * non-NULL values. */
typedef struct br_local br_local;
/* Creates a local; *out is yours, free it with br_local_free. Returns 0, BR_EINVAL
 * (out NULL), BR_EAGAIN (the system's per-process limit of thread-specific keys,
 * PTHREAD_KEYS_MAX, is reached) or BR_ENOMEM. */
BR_API int br_local_new(br_local **out, void (*dtor)(void *value));
/* The calling thread's value, NULL until set (and for a NULL l). */
BR_API void *br_local_get(br_local *l);
/* Sets the calling thread's value; the local doesn't own it (dtor runs on it at thread
 * exit). Returns 0, BR_EINVAL (l NULL) or BR_ENOMEM (no memory for this thread's
 * slot). */
BR_API int br_local_set(br_local *l, void *value);
/* Values still set in other threads are not destroyed. Returns 0 or BR_EINVAL (l
 * NULL). Freeing a local twice is a use after free (not detected). */
BR_API int br_local_free(br_local *l);

/* --- Lock ------------------------------------------------------------------------- */

/* threading.Lock, owner-checked. Uncontended acquire and release are one atomic
 * operation each. Not fair: a released lock goes to whoever gets it first (waiters are
 * woken in FIFO order and retry), which keeps it fast under contention. */
typedef struct br_lock {
    BR_ALIGNAS(8) unsigned char opaque_[40];
} br_lock;
#define BR_LOCK_INIT {{0}}

/* 0, or BR_EINVAL (l NULL). */
BR_API int br_lock_init(br_lock *l);
/* 0, BR_EBUSY (held or waited on), or BR_EINVAL (NULL or already destroyed). */
BR_API int br_lock_destroy(br_lock *l);
/* 0, BR_ETIMEDOUT, BR_ECANCELED (the calling coroutine was cancelled (never for a
 * thread); nothing happened: the lock isn't held), BR_EDEADLK (the caller already
 * holds it: Python would hang forever; whatever the deadline), or BR_EINVAL (NULL or
 * destroyed). */
BR_API int br_lock_acquire(br_lock *l, int64_t deadline);
/* 0, BR_EPERM (the caller doesn't hold it: unlocked, or held by another), or
 * BR_EINVAL (NULL or destroyed). */
BR_API int br_lock_release(br_lock *l);
BR_API bool br_lock_locked(const br_lock *l);
/* True if the calling thread or coroutine holds it. */
BR_API bool br_lock_owned(const br_lock *l);

/* --- RLock ------------------------------------------------------------------------ */

/* threading.RLock: the owner may acquire again; each acquire needs its release. */
typedef struct br_rlock {
    BR_ALIGNAS(8) unsigned char opaque_[48];
} br_rlock;
#define BR_RLOCK_INIT {{0}}

/* 0, or BR_EINVAL (r NULL). */
BR_API int br_rlock_init(br_rlock *r);
/* 0, BR_EBUSY (held at any depth, or waited on), or BR_EINVAL (NULL or destroyed). */
BR_API int br_rlock_destroy(br_rlock *r);
/* 0, BR_ETIMEDOUT, BR_ECANCELED (the calling coroutine was cancelled (never for a
 * thread); nothing happened), BR_EOVERFLOW (2^32-1 nested acquires), or BR_EINVAL
 * (NULL or destroyed). Re-entering never waits, so it never returns BR_ECANCELED. */
BR_API int br_rlock_acquire(br_rlock *r, int64_t deadline);
/* 0, BR_EPERM (the caller doesn't hold it), or BR_EINVAL (NULL or destroyed). */
BR_API int br_rlock_release(br_rlock *r);
BR_API bool br_rlock_owned(const br_rlock *r);
/* The caller's recursion depth (0 if it doesn't hold it). */
BR_API unsigned br_rlock_count(const br_rlock *r);

/* --- Condition -------------------------------------------------------------------- */

/* threading.Condition over a br_lock or a br_rlock (or its own RLock). Waiters are
 * woken in FIFO order. */
typedef struct br_cond {
    BR_ALIGNAS(8) unsigned char opaque_[104];
} br_cond;
/* A Condition with its own RLock, like threading.Condition(). */
#define BR_COND_INIT {{0}}

/* br_cond_init(c, lock): lock is a br_lock *, a br_rlock *, or NULL for its own RLock
 * (C only: _Generic). The lock must outlive the condition. The two functions behind
 * it return 0 or BR_EINVAL (c NULL); a NULL lock gives the condition its own RLock. */
#define br_cond_init(c, lock)                                                        \
    _Generic((lock), br_lock *: br_cond_init_lock, default: br_cond_init_rlock)(c, lock)
BR_API int br_cond_init_lock(br_cond *c, br_lock *lock);
BR_API int br_cond_init_rlock(br_cond *c, br_rlock *lock);
/* 0, BR_EBUSY (waited on, or its own RLock is held), or BR_EINVAL (NULL or already
 * destroyed). */
BR_API int br_cond_destroy(br_cond *c);

/* Acquire and release the underlying lock (Python's `with cond:`). acquire returns
 * what br_lock_acquire / br_rlock_acquire return (0, BR_ETIMEDOUT, BR_ECANCELED,
 * BR_EDEADLK for a br_lock already held, BR_EOVERFLOW for an RLock, BR_EINVAL), and
 * BR_EINVAL for a NULL or destroyed condition; release returns 0, BR_EPERM (not held)
 * or BR_EINVAL. */
BR_API int br_cond_acquire(br_cond *c, int64_t deadline);
BR_API int br_cond_release(br_cond *c);

/* Releases the lock (all levels of an RLock), waits for a notify or the deadline, and
 * takes the lock back (at the same level) before returning, whatever the outcome.
 * Returns 0 (notified), BR_ETIMEDOUT, BR_ECANCELED (the calling coroutine was cancelled
 * (never for a thread) while it waited; it took no notify, and it holds the lock
 * again, at the same level, as asyncio.Condition does: taking it back can't be
 * cancelled), BR_EPERM (the caller doesn't hold the lock; nothing happens) or BR_EINVAL
 * (c NULL or destroyed, nothing happens; or the lock was destroyed during the wait, and
 * is not held on return). A waiter notified as it is cancelled returns 0 and the
 * cancel stays pending. braid's waits don't wake spuriously, but another thread may
 * change the state between the notify and the wake-up: loop on your predicate, or use
 * br_cond_wait_for. */
BR_API int br_cond_wait(br_cond *c, int64_t deadline);

typedef bool (*br_pred_fn)(void *arg);
/* Waits until pred(arg) is true (checked with the lock held, first before waiting).
 * Returns 0 when it is, BR_ETIMEDOUT if it is still false at the deadline,
 * BR_ECANCELED (as br_cond_wait: the lock is held again; pred isn't asked again),
 * BR_EPERM, or BR_EINVAL (pred NULL, or as br_cond_wait). */
BR_API int br_cond_wait_for(br_cond *c, br_pred_fn pred, void *arg, int64_t deadline);

/* Wakes up to n waiters (n >= 1) / all of them. Returns 0, BR_EPERM (the caller
 * doesn't hold the lock) or BR_EINVAL (n == 0, or c NULL or destroyed). */
BR_API int br_cond_notify(br_cond *c, unsigned n);
BR_API int br_cond_notify_all(br_cond *c);

/* --- Semaphore and BoundedSemaphore --------------------------------------------- */

typedef struct br_sem {
    BR_ALIGNAS(8) unsigned char opaque_[40];
} br_sem;
/* A semaphore with value 0 (not bounded). */
#define BR_SEM_INIT {{0}}

/* threading.Semaphore(value). 0, or BR_EINVAL (s NULL, or value above 2^31-1). */
BR_API int br_sem_init(br_sem *s, unsigned value);
/* threading.BoundedSemaphore(value): releasing above `value` is an error. Returns as
 * br_sem_init. */
BR_API int br_sem_init_bounded(br_sem *s, unsigned value);
/* 0, BR_EBUSY (waited on), or BR_EINVAL (NULL or already destroyed). */
BR_API int br_sem_destroy(br_sem *s);
/* Takes one unit: 0, BR_ETIMEDOUT, BR_ECANCELED (the calling coroutine was cancelled
 * (never for a thread); nothing happened: no unit taken, and the units released later
 * go to the waiters behind it), or BR_EINVAL (NULL or destroyed). Waiters are served
 * in FIFO order; a waiter handed a unit as it is cancelled keeps it (0) and the cancel
 * stays pending. */
BR_API int br_sem_acquire(br_sem *s, int64_t deadline);
/* Returns n units (Python 3.9's release(n)); any thread may release. 0, BR_EINVAL
 * (n == 0, or s NULL or destroyed), or BR_EOVERFLOW (a bounded semaphore would go
 * above its initial value, or the count would pass 2^31-1; nothing is released). */
BR_API int br_sem_release(br_sem *s, unsigned n);
BR_API unsigned br_sem_value(const br_sem *s);

/* --- Event -------------------------------------------------------------------------- */

typedef struct br_event {
    BR_ALIGNAS(8) unsigned char opaque_[32];
} br_event;
#define BR_EVENT_INIT {{0}}

/* 0, or BR_EINVAL (e NULL). */
BR_API int br_event_init(br_event *e);
/* 0, BR_EBUSY (waited on), or BR_EINVAL (NULL or already destroyed). */
BR_API int br_event_destroy(br_event *e);
/* Sets the flag and wakes every waiter. 0, or BR_EINVAL (NULL or destroyed); so does
 * br_event_clear. */
BR_API int br_event_set(br_event *e);
BR_API int br_event_clear(br_event *e);
BR_API bool br_event_is_set(const br_event *e);
/* 0 once the flag is set (at once if it is), BR_ETIMEDOUT, BR_ECANCELED (the calling
 * coroutine was cancelled (never for a thread); nothing happened), or BR_EINVAL (NULL
 * or destroyed). */
BR_API int br_event_wait(br_event *e, int64_t deadline);

/* --- Barrier ------------------------------------------------------------------------- */

/* Run by the last thread to arrive, before any is released; nonzero breaks the barrier
 * (Python: the action raised). */
typedef int (*br_barrier_action)(void *arg);

typedef struct br_barrier {
    BR_ALIGNAS(8) unsigned char opaque_[104];
} br_barrier;

/* threading.Barrier(parties, action). 0, or BR_EINVAL (b NULL, parties == 0, or
 * parties > INT_MAX: br_barrier_wait returns the index as an int). */
BR_API int br_barrier_init(br_barrier *b, unsigned parties, br_barrier_action action,
                           void *arg);
/* 0, BR_EBUSY (waited on, or its action is running), or BR_EINVAL (NULL, destroyed
 * or never initialised). */
BR_API int br_barrier_destroy(br_barrier *b);
/* Waits until `parties` threads have called it. Returns the caller's arrival index
 * (0 .. parties-1, as Python does; the last arrival gets parties-1) when the barrier
 * trips; BR_EBROKEN if the barrier is or becomes broken (abort, a failed action,
 * another waiter's timeout); BR_ETIMEDOUT if the deadline passes, which also breaks the
 * barrier for everyone else, as in Python; BR_ECANCELED (the calling coroutine was
 * cancelled (never for a thread); nothing happened: its arrival is withdrawn, the
 * barrier is not broken and the round waits for one more party, as asyncio.Barrier
 * does); or BR_EINVAL (NULL, destroyed or never initialised). Indices are given out
 * when the barrier trips, in arrival order among the callers still waiting, so each
 * round's are 0 .. parties-1 once each even when some arrivals withdrew. */
BR_API int br_barrier_wait(br_barrier *b, int64_t deadline);
/* Breaks the barrier: current and future waiters get BR_EBROKEN until reset. 0 or
 * BR_EINVAL (NULL, destroyed or never initialised); so does br_barrier_reset. */
BR_API int br_barrier_abort(br_barrier *b);
/* Back to the initial state; threads waiting now get BR_EBROKEN. */
BR_API int br_barrier_reset(br_barrier *b);
BR_API bool br_barrier_broken(const br_barrier *b);
BR_API unsigned br_barrier_parties(const br_barrier *b);
BR_API unsigned br_barrier_n_waiting(const br_barrier *b);

/* --- with lock: ---------------------------------------------------------------------- */

/* BR_WITH(&x) { ... } runs the block with x held: a br_lock, br_rlock, br_sem (one
 * unit) or br_cond (its lock). x is released however the block is left: the end of the
 * block, return, goto, or a break or continue of the BR_WITH itself (with GCC and
 * Clang, through __attribute__((cleanup))). longjmp out of the block leaks it, as it
 * would any lock. If acquiring fails (misuse: a destroyed object, or a br_lock the
 * caller already holds), the block does not run and the error goes through the misuse
 * policy (br_set_panic_on_misuse). If a coroutine is cancelled while it waits for x,
 * the block does not run either, and the cancel stays pending: the coroutine's next
 * blocking call returns BR_ECANCELED. Without GCC or Clang, break, return and goto out
 * of the block leave x held: use explicit acquire and release there.
 *
 * Unlike Python's `with`, BR_WITH is a loop statement (a one-pass `for`): `break` and
 * `continue` inside it end the BR_WITH block, NOT an enclosing loop. In
 *
 *     for (i = 0; i < n; i++) { BR_WITH(&l) { if (found(i)) break; } more(i); }
 *
 * the break only releases l and goes on to more(i), and the for loop keeps going. To
 * leave or continue the enclosing loop from inside, set a flag and test it after the
 * block (`BR_WITH(&l) { stop = found(i); } if (stop) break;`), or `goto` a label after
 * the loop (l is released on the way out), or acquire and release explicitly.
 *
 * BR_WITH declares its guard variable (br_with_guard_N) in the for statement: a
 * documented exception to braid's rule that no macro declares a variable, since a
 * scoped guard is the whole point. It is C only (_Generic). */
typedef struct br_guard_ {
    void *obj;
    int (*release)(void *obj);
} br_guard_;

BR_API br_guard_ br_guard_lock_(br_lock *l);
BR_API br_guard_ br_guard_rlock_(br_rlock *r);
BR_API br_guard_ br_guard_sem_(br_sem *s);
BR_API br_guard_ br_guard_cond_(br_cond *c);
static inline void br_guard_release_(br_guard_ *g) {
    if (g->obj) {
        void *o = g->obj;
        g->obj = NULL;
        g->release(o);
    }
}

#define br_guard_(x)                                                                 \
    _Generic((x), br_lock *: br_guard_lock_, br_rlock *: br_guard_rlock_,            \
             br_sem *: br_guard_sem_, br_cond *: br_guard_cond_)(x)
#define BR_CAT_(a, b) a##b
#define BR_CAT(a, b) BR_CAT_(a, b)
#if defined(__GNUC__) || defined(__clang__)
#  define BR_WITH_(x, g)                                                             \
      for (br_guard_ g __attribute__((cleanup(br_guard_release_))) = br_guard_(x);   \
           g.obj != NULL; br_guard_release_(&g))
#  define BR_WITH(x) BR_WITH_(x, BR_CAT(br_with_guard_, __COUNTER__))
#else
#  define BR_WITH_(x, g) for (br_guard_ g = br_guard_(x); g.obj != NULL; br_guard_release_(&g))
#  define BR_WITH(x) BR_WITH_(x, BR_CAT(br_with_guard_, __LINE__))
#endif

#ifdef __cplusplus
}
#endif
#endif
