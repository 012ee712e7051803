/* braid/mp_sync.h: multiprocessing's Lock, RLock, Semaphore, BoundedSemaphore, Event,
 * Condition and Barrier, for C: the threading layer's primitives (braid/thread.h), made
 * to work between processes.
 *
 *   multiprocessing.Lock() / RLock()        br_mp_lock / br_mp_rlock
 *   Condition(lock)                         br_mp_cond
 *   Semaphore(v) / BoundedSemaphore(v)      br_mp_sem (br_mp_sem_init / _init_bounded)
 *   Event(), Barrier(parties)               br_mp_event, br_mp_barrier
 *
 * Same verbs, argument order, deadlines and error codes as br_lock, br_rlock, br_cond,
 * br_sem, br_event and br_barrier: br_mp_X_f(obj, ...) does what br_X_f does, between
 * the threads of any processes that map the object. The differences are listed below
 * and at each function.
 *
 * Where an object lives. Wherever you put it in memory shared between the processes
 * (MAP_SHARED): the objects hold no pointers, so each process may map that memory at
 * its own address. Two ways to get one:
 *   - br_mp_X_init(obj, ...) on storage you placed in a shared mapping of your own
 *     (and br_mp_X_destroy when every process is done with it). Unlike the threading
 *     layer, all-zero storage is NOT an object: initialise it once, in one process,
 *     before the others use it (a function given uninitialised storage returns
 *     BR_EINVAL, except when stray bytes happen to look like an object).
 *   - br_mp_X_new(&obj, ...): a fresh object in a mapping of its own (one page of
 *     anonymous shared memory that frees itself with its last user: nothing is left in
 *     /dev/shm, even after a crash), and br_mp_X_free(obj) when this process is done
 *     with it.
 * A fork()ed child inherits every mapping at the same address: it uses the object as
 * its parent does. A spawned (exec'd) child inherits nothing: it needs the mapping's
 * descriptor, passed to it (the descriptor is close-on-exec; list it in
 * br_process_opts.fds and the start method passes it), and maps it again: br_mp_locate() gives a _new object's
 * descriptor, mapping size and offset, and br_mp_attach() maps them in the child. For
 * objects you placed yourself, pass your own mapping's descriptor and the offset.
 *
 * Owners that die. br_mp_lock and br_mp_rlock are robust: when the thread holding one
 * ends without releasing it (the thread returns, its process exits, is SIGKILLed or
 * crashes), the kernel notices at once, and the next acquire (one already waiting, or
 * the next to come) returns BR_EOWNERDEAD: the caller now holds the lock, but the data
 * it protects may be half-updated. Repair it (or decide it is fine), then call
 * br_mp_lock_consistent() / br_mp_rlock_consistent(), and go on as after a plain
 * acquire. If the caller releases it without calling consistent() (it couldn't
 * repair), the lock is not recoverable: every later acquire, in every process,
 * returns BR_ENOTRECOVERABLE at once, and the lock stays unheld (destroy it and make a
 * new one). These are POSIX robust mutexes' rules, and braid uses them: see "Mechanism".
 * The other objects have no owner; what a peer's death means for each is said at its
 * type: in short, nothing is corrupted, and a waiter that can only be woken by a dead
 * peer waits until its deadline (pass one when a peer may die, or have whoever joins
 * the dead process call br_mp_barrier_abort / br_mp_event_set / br_mp_sem_release).
 *
 * Deadlines are absolute monotonic ns (braid/core.h): BR_FOREVER, BR_NOWAIT,
 * br_deadline_after(). Under BR_NOWAIT (or a deadline already past) "would block" is
 * BR_ETIMEDOUT. Signals don't end a wait early.
 *
 * Errors: each function lists every code it returns. BR_EINVAL and BR_EPERM mean misuse
 * (a NULL, destroyed or uninitialised object; a lock the caller doesn't hold) and go
 * through the misuse policy (br_set_panic_on_misuse).
 *
 * Waiters. These calls block the calling thread (a futex wait in the kernel, which a
 * thread of any process can end): unlike braid/thread.h's, they don't suspend a braid
 * coroutine on their own, and are never cancelled (no BR_ECANCELED). Ownership is per
 * thread: a lock taken by one thread of a process is not held by its other threads.
 *
 * Mechanism. br_mp_lock and br_mp_rlock are glibc's robust, process-shared,
 * error-checking pthread mutexes (the owner's thread id in the futex word; the kernel's
 * robust list marks the word OWNER_DIED and wakes a waiter the moment the owner ends,
 * so a death is seen at once, not after a polling period, and a recycled thread id is
 * never mistaken for the dead owner). The rest are futex words of braid's own, waited
 * on without the private flag. docs/multiprocessing.md ("Process-shared synchronisation") says why, and what it costs.
 *
 * When to destroy or free: once no thread of any process can still be inside a call on
 * the object, as with any mutex. br_mp_X_free unmaps this process's view only; the
 * object lives on in the other processes that map it.
 */
#ifndef BRAID_MP_SYNC_H
#define BRAID_MP_SYNC_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- placement: passing a _new object to a spawned child ------------------------ */

/* Where the object `obj` made by any br_mp_X_new lives: *fd is this process's
 * descriptor of its mapping (borrowed: it stays the object's; -1 if this process has
 * none, as after br_mp_attach), *size the mapping's size and *offset the object's
 * offset in it. Any out pointer may be NULL. 0, or BR_EINVAL (obj NULL or not made by
 * a _new). A spawned child given the descriptor (dup2'd to a number it knows, or
 * passed over a socket) calls br_mp_attach(&obj, fd, size, offset). */
BR_API int br_mp_locate(const void *obj, int *fd, size_t *size, size_t *offset);

/* Maps the object at `offset` in the shared memory behind fd (size bytes, as
 * br_mp_locate gave them) in this process and sets *obj to it: a br_mp_X * of the kind
 * that was placed there, which you free with that kind's br_mp_X_free. fd stays the
 * caller's (the mapping keeps no descriptor of its own). 0, BR_EINVAL (obj NULL, fd < 0,
 * a size or offset that doesn't match, or no braid object there), BR_ENOMEM, or
 * another -errno (BR_EBADF...). */
BR_API int br_mp_attach(void **obj, int fd, size_t size, size_t offset);

/* --- Lock ------------------------------------------------------------------------- */

/* multiprocessing.Lock, owner-checked and robust. */
typedef struct br_mp_lock {
    BR_ALIGNAS(8) unsigned char opaque_[64];
} br_mp_lock;

/* Initialises l (storage in shared memory) unlocked. 0, or BR_EINVAL (l NULL). Never
 * initialise an object that any thread may be using. */
BR_API int br_mp_lock_init(br_mp_lock *l);
/* 0, BR_EBUSY (held, or its owner died holding it and nobody has taken it since), or
 * BR_EINVAL (NULL, destroyed or never initialised). */
BR_API int br_mp_lock_destroy(br_mp_lock *l);
/* A new unlocked lock in a mapping of its own (see the top of this file); *out is
 * yours: br_mp_lock_free. 0, BR_EINVAL (out NULL), BR_ENOMEM, BR_EMFILE, BR_ENFILE. */
BR_API int br_mp_lock_new(br_mp_lock **out);
/* This process is done with a _new lock: unmaps it here and closes this process's
 * descriptor of it (the one br_mp_locate gives, in the creator and its forked
 * children). Other processes' views live on. 0, BR_EBUSY (the calling thread holds it:
 * nothing happens), or BR_EINVAL (NULL, or not made by br_mp_lock_new / attached). */
BR_API int br_mp_lock_free(br_mp_lock *l);
/* 0; BR_EOWNERDEAD (the previous owner died holding it; the caller holds it now: see
 * the top of this file); BR_ENOTRECOVERABLE (an owner died and the lock was released
 * without br_mp_lock_consistent: the caller does not hold it, and never will);
 * BR_ETIMEDOUT; BR_EDEADLK (the calling thread holds it already: Python would hang
 * forever; whatever the deadline); or BR_EINVAL (NULL, destroyed or never
 * initialised). */
BR_API int br_mp_lock_acquire(br_mp_lock *l, int64_t deadline);
/* 0, BR_EPERM (the calling thread doesn't hold it), or BR_EINVAL (NULL or destroyed).
 * Releasing after BR_EOWNERDEAD without br_mp_lock_consistent makes it not
 * recoverable. */
BR_API int br_mp_lock_release(br_mp_lock *l);
/* After BR_EOWNERDEAD: the caller has repaired what the lock protects; the lock is
 * usable again (the caller still holds it). 0, BR_EPERM (the caller doesn't hold it),
 * or BR_EINVAL (NULL, destroyed, or not in the owner-died state). */
BR_API int br_mp_lock_consistent(br_mp_lock *l);
/* True if some thread holds it (or died holding it and nobody has taken it since). */
BR_API bool br_mp_lock_locked(const br_mp_lock *l);
/* True if the calling thread holds it. */
BR_API bool br_mp_lock_owned(const br_mp_lock *l);

/* --- RLock ------------------------------------------------------------------------ */

/* multiprocessing.RLock: the owning thread may acquire again; each acquire needs its
 * release. Robust as br_mp_lock: BR_EOWNERDEAD hands the lock over at depth 1. */
typedef struct br_mp_rlock {
    BR_ALIGNAS(8) unsigned char opaque_[64];
} br_mp_rlock;

/* As br_mp_lock's: init (0, BR_EINVAL), destroy (0, BR_EBUSY held at any depth or
 * left by a dead owner, BR_EINVAL), new, free (BR_EBUSY: the caller holds it). */
BR_API int br_mp_rlock_init(br_mp_rlock *r);
BR_API int br_mp_rlock_destroy(br_mp_rlock *r);
BR_API int br_mp_rlock_new(br_mp_rlock **out);
BR_API int br_mp_rlock_free(br_mp_rlock *r);
/* 0, BR_EOWNERDEAD, BR_ENOTRECOVERABLE, BR_ETIMEDOUT, BR_EOVERFLOW (2^32-1 nested
 * acquires), or BR_EINVAL. Re-entering never waits. */
BR_API int br_mp_rlock_acquire(br_mp_rlock *r, int64_t deadline);
/* 0, BR_EPERM (the caller doesn't hold it), or BR_EINVAL. The last release after
 * BR_EOWNERDEAD without br_mp_rlock_consistent makes it not recoverable. */
BR_API int br_mp_rlock_release(br_mp_rlock *r);
/* As br_mp_lock_consistent. */
BR_API int br_mp_rlock_consistent(br_mp_rlock *r);
BR_API bool br_mp_rlock_owned(const br_mp_rlock *r);
/* The caller's recursion depth (0 if it doesn't hold it). */
BR_API unsigned br_mp_rlock_count(const br_mp_rlock *r);

/* --- Condition -------------------------------------------------------------------- */

/* multiprocessing.Condition over a br_mp_lock, a br_mp_rlock, or its own RLock.
 *
 * The condition names its lock by offset (the lock's address minus the condition's,
 * and an id the lock got at its init, checked at every use): so the lock must sit at
 * the same distance from the condition in every process that uses it. Put both in the
 * same mapping (one struct in shared memory, or one br_mp_cond_new(&c, NULL), which
 * holds its own RLock), and any process may use it; a condition and a lock in two
 * different mappings work only for processes that see both at the same addresses (a
 * process and its fork()ed children). A lock found gone or replaced at that offset
 * gives BR_EINVAL.
 *
 * Waking: a notify(n) lets n of the threads waiting at the time of the notify return 0
 * (not necessarily the first to wait: no FIFO order between processes); a thread that
 * began waiting after it can't take its wake-up. Unlike br_cond, the sleepers are all
 * woken to find out which n go on (a notify costs one wake-up per sleeper).
 *
 * Peers that die: a waiter that dies while waiting leaves a phantom behind (the count of
 * waiters can't see a death), and one later notify may let one more waiter than asked
 * return; loop on your predicate (br_mp_cond_wait_for). A waiter woken to a lock whose
 * owner died gets BR_EOWNERDEAD (see br_mp_cond_wait). A notifier that dies doesn't
 * notify: pass a deadline when that can happen. */
typedef struct br_mp_cond {
    BR_ALIGNAS(8) unsigned char opaque_[128];
} br_mp_cond;

/* br_mp_cond_init(c, lock): lock is a br_mp_lock *, a br_mp_rlock *, or NULL for its
 * own RLock (C only: _Generic). The lock must be initialised and outlive the condition.
 * The two functions behind it return 0 or BR_EINVAL (c NULL, lock not initialised, or
 * farther than 2^62 bytes away). */
/* clang-format off */
#define br_mp_cond_init(c, lock)                                                        \
    _Generic((lock), br_mp_lock *: br_mp_cond_init_lock,                                \
             default: br_mp_cond_init_rlock)(c, lock)
/* clang-format on */
BR_API int br_mp_cond_init_lock(br_mp_cond *c, br_mp_lock *lock);
BR_API int br_mp_cond_init_rlock(br_mp_cond *c, br_mp_rlock *lock);
/* 0, BR_EBUSY (waited on, or its own RLock is held; a waiter that died waiting counts
 * for good, so such a condition stays BR_EBUSY: just stop using its memory), or
 * BR_EINVAL (NULL or destroyed). */
BR_API int br_mp_cond_destroy(br_mp_cond *c);
/* A new condition in a mapping of its own, over lock (C only: _Generic; NULL gives it
 * its own RLock, which every process can use; an outside lock, only processes that map
 * both at the same addresses). 0, BR_EINVAL, BR_ENOMEM, BR_EMFILE, BR_ENFILE. */
/* clang-format off */
#define br_mp_cond_new(out, lock)                                                       \
    _Generic((lock), br_mp_lock *: br_mp_cond_new_lock,                                 \
             default: br_mp_cond_new_rlock)(out, lock)
/* clang-format on */
BR_API int br_mp_cond_new_lock(br_mp_cond **out, br_mp_lock *lock);
BR_API int br_mp_cond_new_rlock(br_mp_cond **out, br_mp_rlock *lock);
/* As br_mp_lock_free (BR_EBUSY: the caller holds its own RLock). */
BR_API int br_mp_cond_free(br_mp_cond *c);

/* Acquire and release the lock (`with cond:`): what br_mp_lock_acquire /
 * br_mp_rlock_acquire and _release return, and BR_EINVAL for a NULL or destroyed
 * condition. */
BR_API int br_mp_cond_acquire(br_mp_cond *c, int64_t deadline);
BR_API int br_mp_cond_release(br_mp_cond *c);
/* br_mp_lock_consistent / br_mp_rlock_consistent on the condition's lock. */
BR_API int br_mp_cond_consistent(br_mp_cond *c);

/* Releases the lock (all levels of an RLock), waits for a notify or the deadline, and
 * takes the lock back (at the same level) before returning. Returns 0 (notified),
 * BR_ETIMEDOUT (a notify that arrives with the deadline wins: 0), BR_EOWNERDEAD (taking
 * the lock back, the caller found that its owner had died holding it: the caller holds
 * it, at the same level, and may or may not have been notified: repair, call
 * br_mp_cond_consistent, and look at your predicate), BR_ENOTRECOVERABLE (the lock is
 * not recoverable: the caller does NOT hold it on return), BR_EPERM (the caller doesn't
 * hold the lock; nothing happens) or BR_EINVAL (c NULL or destroyed, or its lock gone;
 * nothing happens). Don't wait with a lock taken BR_EOWNERDEAD and not made
 * consistent: the release inside would make it not recoverable. Loop on your predicate:
 * another thread may change the state between the notify and the wake-up. */
BR_API int br_mp_cond_wait(br_mp_cond *c, int64_t deadline);

typedef bool (*br_mp_pred_fn)(void *arg);
/* Waits until pred(arg) is true (checked with the lock held, first before waiting).
 * Returns 0 when it is, BR_ETIMEDOUT if it is still false at the deadline, or what
 * br_mp_cond_wait returns otherwise (pred NULL: BR_EINVAL). */
BR_API int br_mp_cond_wait_for(br_mp_cond *c, br_mp_pred_fn pred, void *arg,
                               int64_t deadline);

/* Lets up to n (>= 1) / all of the current waiters go on. Returns 0, BR_EPERM (the
 * caller doesn't hold the lock) or BR_EINVAL (n == 0, or c NULL or destroyed). */
BR_API int br_mp_cond_notify(br_mp_cond *c, unsigned n);
BR_API int br_mp_cond_notify_all(br_mp_cond *c);

/* --- Semaphore and BoundedSemaphore --------------------------------------------- */

/* Units, not owners: any thread of any process may release. A process that dies
 * holding units doesn't give them back (nothing can tell a unit's holder): the value
 * stays that much lower; for what must come back when its holder dies, use a
 * br_mp_lock. Waiters are not served in FIFO order: a released unit goes to whichever
 * thread takes it first. */
typedef struct br_mp_sem {
    BR_ALIGNAS(8) unsigned char opaque_[32];
} br_mp_sem;

/* multiprocessing.Semaphore(value). 0, or BR_EINVAL (s NULL, or value above 2^31-1). */
BR_API int br_mp_sem_init(br_mp_sem *s, unsigned value);
/* multiprocessing.BoundedSemaphore(value): releasing above `value` is BR_EOVERFLOW. */
BR_API int br_mp_sem_init_bounded(br_mp_sem *s, unsigned value);
/* 0, BR_EBUSY (waited on; a waiter that died waiting counts for good, so such a
 * semaphore stays BR_EBUSY, and each release makes a wake-up call for it), or
 * BR_EINVAL (NULL or destroyed). */
BR_API int br_mp_sem_destroy(br_mp_sem *s);
/* In a mapping of its own: as br_mp_sem_init / _init_bounded, plus BR_ENOMEM,
 * BR_EMFILE, BR_ENFILE. br_mp_sem_free: 0 or BR_EINVAL. */
BR_API int br_mp_sem_new(br_mp_sem **out, unsigned value);
BR_API int br_mp_sem_new_bounded(br_mp_sem **out, unsigned value);
BR_API int br_mp_sem_free(br_mp_sem *s);
/* Takes one unit: 0, BR_ETIMEDOUT, or BR_EINVAL (NULL or destroyed). */
BR_API int br_mp_sem_acquire(br_mp_sem *s, int64_t deadline);
/* Returns n units. 0, BR_EINVAL (n == 0, or s NULL or destroyed), or BR_EOVERFLOW (a
 * bounded semaphore would go above its initial value, or the count would pass 2^31-1;
 * nothing is released). */
BR_API int br_mp_sem_release(br_mp_sem *s, unsigned n);
BR_API unsigned br_mp_sem_value(const br_mp_sem *s);

/* --- Event -------------------------------------------------------------------------- */

/* A flag any process may set or clear. A waiter waits for a set, not for the flag: a
 * set followed at once by a clear still wakes every thread waiting at the time (as
 * Python's Event does). A setter that dies never sets it: pass a deadline when that can
 * happen, or let whoever watches that process set it. */
typedef struct br_mp_event {
    BR_ALIGNAS(8) unsigned char opaque_[32];
} br_mp_event;

/* 0, or BR_EINVAL (e NULL). A new event is clear. */
BR_API int br_mp_event_init(br_mp_event *e);
/* 0, BR_EBUSY (waited on, counted as br_mp_sem_destroy counts them), or BR_EINVAL. */
BR_API int br_mp_event_destroy(br_mp_event *e);
BR_API int br_mp_event_new(br_mp_event **out);
BR_API int br_mp_event_free(br_mp_event *e);
/* 0, or BR_EINVAL (NULL or destroyed); so does br_mp_event_clear. */
BR_API int br_mp_event_set(br_mp_event *e);
BR_API int br_mp_event_clear(br_mp_event *e);
BR_API bool br_mp_event_is_set(const br_mp_event *e);
/* 0 once the flag is set (at once if it is), BR_ETIMEDOUT, or BR_EINVAL. */
BR_API int br_mp_event_wait(br_mp_event *e, int64_t deadline);

/* --- Barrier ------------------------------------------------------------------------- */

/* multiprocessing.Barrier(parties), without the action: an action is a function
 * pointer, which means nothing in another process's address space. The caller whose
 * wait returns parties-1 (the last to arrive) can run it; if the others must wait for
 * it, follow with a second br_mp_barrier_wait.
 *
 * Peers that die: a party that dies after arriving still counts; one that dies before
 * arriving leaves the others waiting until their deadline, whose passing breaks the
 * barrier for every party (BR_EBROKEN), as Python's timeout does; or let whoever
 * watches the processes call br_mp_barrier_abort. */
typedef struct br_mp_barrier {
    BR_ALIGNAS(8) unsigned char opaque_[32];
} br_mp_barrier;

/* 0, or BR_EINVAL (b NULL, parties == 0, or parties > 2^24-1). */
BR_API int br_mp_barrier_init(br_mp_barrier *b, unsigned parties);
/* 0, BR_EBUSY (a party is waiting, or died waiting: reset it first), or BR_EINVAL. */
BR_API int br_mp_barrier_destroy(br_mp_barrier *b);
BR_API int br_mp_barrier_new(br_mp_barrier **out, unsigned parties);
BR_API int br_mp_barrier_free(br_mp_barrier *b);
/* Waits until `parties` threads (of any processes) have called it. Returns the caller's
 * arrival index (0 .. parties-1; the last arrival gets parties-1) when the barrier
 * trips; BR_EBROKEN if the barrier is or becomes broken (abort, another party's
 * timeout, a reset while waiting); BR_ETIMEDOUT if the deadline passes, which also
 * breaks the barrier for everyone else, as in Python; or BR_EINVAL. */
BR_API int br_mp_barrier_wait(br_mp_barrier *b, int64_t deadline);
/* Breaks the barrier: current and future waiters get BR_EBROKEN until reset. 0 or
 * BR_EINVAL; so does br_mp_barrier_reset. */
BR_API int br_mp_barrier_abort(br_mp_barrier *b);
/* Back to the initial state; threads waiting now get BR_EBROKEN. */
BR_API int br_mp_barrier_reset(br_mp_barrier *b);
BR_API bool br_mp_barrier_broken(const br_mp_barrier *b);
BR_API unsigned br_mp_barrier_parties(const br_mp_barrier *b);
/* Parties arrived in the current round (0 when broken). */
BR_API unsigned br_mp_barrier_n_waiting(const br_mp_barrier *b);

#ifdef __cplusplus
}
#endif
#endif
