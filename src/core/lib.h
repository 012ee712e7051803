/* core/lib.h: what every layer of the library shares. Any library file may include it.
 * Never installed.
 *
 * Internal headers say in their name who may include them (docs/conventions.md):
 *   core/lib.h, platform/platform.h   any file of the library
 *   <dir>/private.h, other headers    the files of that directory only (and the tests)
 *   <dir>/for_<who>.h                 also the code named (future/for_executors.h)
 *
 * Names: br__ for functions and types shared between files (grep br__ finds every
 * cross-file internal call); static functions have short plain names.
 */
#ifndef BRAID_CORE_LIB_H
#define BRAID_CORE_LIB_H

#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "braid/core.h"
#include "platform/platform.h"

#if defined(__GNUC__)
#  define BR__LIKELY(x) __builtin_expect(!!(x), 1)
#  define BR__UNLIKELY(x) __builtin_expect(!!(x), 0)
#  define BR__NOINLINE __attribute__((noinline))
#  define BR__COLD __attribute__((cold))
#  define BR__TLS __thread __attribute__((tls_model("initial-exec")))
#else
#  define BR__LIKELY(x) (x)
#  define BR__UNLIKELY(x) (x)
#  define BR__NOINLINE
#  define BR__COLD
#  define BR__TLS _Thread_local
#endif

#define BR__CACHELINE 64

/* BR__EXT (an internal function the extension libraries call) is defined in
 * platform/platform.h, included above, so that the platform layer can mark its own. */

/* Checks at compile time that an opaque public storage type can hold the real struct:
 * `BR__CHECK_STORAGE(br_lock, struct lock_impl);` */
#define BR__CHECK_STORAGE(pub, impl)                                                 \
    _Static_assert(sizeof(pub) >= sizeof(impl), #pub " is too small for " #impl);    \
    _Static_assert(_Alignof(pub) >= _Alignof(impl), #pub " is under-aligned for " #impl)

/* --- misuse -------------------------------------------------------------------- */

/* Returns `code`; but when br_set_panic_on_misuse(true) is on and code is BR_EINVAL or
 * BR_EPERM, prints `what` (which starts with the public function's name:
 * "br_lock_release: the caller doesn't hold the lock") and the caller's frame and
 * backtrace (br__print_backtrace), and aborts. braid/core.h shows the report. */
BR__EXT int br__misuse(int code, const char *what) BR__COLD;
#define BR__MISUSE(code, what) br__misuse((code), (what))

/* --- memory ---------------------------------------------------------------------
 *
 * Every allocation in the library goes through these (src/core/alloc.c), never
 * straight to malloc: a test can make the Nth allocation fail (br__alloc_fail_after)
 * and so drive every BR_ENOMEM path, and STYLE's "no abort on out of memory" can be
 * checked. They behave exactly like their libc namesakes otherwise. */
BR__EXT void *br__malloc(size_t n);
BR__EXT void *br__calloc(size_t count, size_t n);
BR__EXT void *br__realloc(void *p, size_t n);
/* aligned_alloc-like: align is a power of two >= sizeof(void *). Free with br__free. */
void *br__aligned_alloc(size_t align, size_t n);
BR__EXT char *br__strdup(const char *s);
BR__EXT void br__free(void *p);
/* For an allocator that maps its own memory (the future slabs): counts as one
 * allocation of the seam and says whether the test hook wants it to fail. */
bool br__alloc_should_fail(void);
/* Maps `size` bytes (a power of two, a multiple of the page) aligned to `size` and
 * marked MADV_HUGEPAGE (a 2 MiB slab is then one huge page where transparent huge
 * pages are on); NULL if it can't. Not counted by the seam: callers ask
 * br__alloc_should_fail first. Give it back with munmap(p, size). For the slab
 * allocators (future/blocks.c, aio/cells.c). */
void *br__map_aligned(size_t size);
/* Frees an object of n bytes that callers hold handles to (a queue, a map, a pool...).
 * Debug builds (no NDEBUG) first fill it with BR__POISON_BYTE, so that a stale handle
 * fails loudly even without ASan: its magic no longer matches and the pointers in it
 * fault. A debugging aid, not a check: the memory may be reused at once. */
void br__free_poisoned(void *p, size_t n);
#define BR__POISON_BYTE 0xdb

/* Test hook: allocations succeed n more times, then every one fails until reset with
 * n < 0 (the default: never fail). Counts across all threads. */
void br__alloc_fail_after(long n);
/* Allocations made so far (every thread), for tests that count. */
long br__alloc_count(void);

/* --- slabs (core/slab.c) -----------------------------------------------------------
 *
 * A class of fixed-size blocks carved from 2 MiB slabs mapped aligned and marked
 * MADV_HUGEPAGE (br__map_aligned): one huge-page fault per slab where transparent huge
 * pages are on, a freed block the next one taken (LIFO, warm), an empty slab beyond
 * the first kept one unmapped at once. No lock: a class belongs to one thread (a loop's
 * task cells, a thread's park memory). core/slab.c's notes say more. Zero-initialise
 * a class before its first use; `block` is a multiple of 16, at least
 * BR__SLAB_MIN_BLOCK, the same at every call for a class. */
#define BR__SLAB_MIN_BLOCK 64
typedef struct br__slab_class {
    struct br__slab *avail, *all;
    size_t nempty;
} br__slab_class;
/* A block (16-byte aligned, uninitialised), or NULL (no memory, or the test seam said
 * fail: mapping a slab counts as one allocation). */
void *br__slab_get(br__slab_class *c, size_t block);
/* Gives a block of c back. */
void br__slab_put(br__slab_class *c, void *p);
/* The slabs c has mapped now, and how many blocks a slab holds (for tests). */
size_t br__slab_count(const br__slab_class *c);
/* The blocks of c in use now (for tests). */
size_t br__slab_live(const br__slab_class *c);
size_t br__slab_blocks(size_t block);
/* Unmaps every slab of c (no block is in use) and empties c. */
void br__slab_fini(br__slab_class *c);
/* Unmaps c's slabs that have no block in use, forgets the others (their blocks are
 * never given back) and empties c; returns how many it left mapped. */
size_t br__slab_fini_unused(br__slab_class *c);

/* --- deadlines -------------------------------------------------------------------- */

/* True if `deadline` has passed (BR_NOWAIT and any time before boot included). Reads
 * the clock only for a finite deadline in the future of boot. */
static inline bool br__deadline_passed(int64_t deadline) {
    if (deadline == BR_FOREVER)
        return false;
    return deadline <= 0 || br_now() >= deadline;
}

/* --- CPU ------------------------------------------------------------------------ */

static inline void br__cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/* --- the internal lock --------------------------------------------------------
 *
 * br__ilock guards the few instructions that link and unlink waiters. It is a
 * three-state futex mutex (0 free, 1 held, 2 held and someone sleeps) that spins
 * briefly first. It is never held across a park, so it is safe for coroutines too: a
 * coroutine that meets it held blocks its thread for a few hundred nanoseconds at
 * most, as Go's runtime locks do. Zero is the unlocked state.
 *
 * The one exception, in the queue (queue.c, "Locking"): its wait lock, an ilock, is
 * held while one of the queue's side locks (br__qlock, queue/private.h) is taken. A
 * side lock's contender whose holder lost its CPU sched_yields and naps on a futex
 * (each nap capped at 250 us), so that ilock may be held that long. Bounded because the
 * side lock's holder holds it for one short critical section and waits for nothing
 * inside it, and a nap ends at most 250 us after the side lock's release. No ilock is
 * held across a park, even there. */
typedef struct br__ilock {
    _Atomic uint32_t word;
} br__ilock;

void br__ilock_lock_slow(br__ilock *l);
void br__ilock_unlock_slow(br__ilock *l);

static inline void br__ilock_lock(br__ilock *l) {
    uint32_t z = 0;
    if (BR__LIKELY(atomic_compare_exchange_strong_explicit(&l->word, &z, 1,
                                                           memory_order_acquire,
                                                           memory_order_relaxed)))
        return;
    br__ilock_lock_slow(l);
}
static inline void br__ilock_unlock(br__ilock *l) {
    if (BR__UNLIKELY(atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2))
        br__ilock_unlock_slow(l);
}

/* --- waiters ---------------------------------------------------------------------
 *
 * Design notes: the waiter abstraction.
 *
 * Every blocking primitive in braid (lock, condition, semaphore, event, barrier,
 * queue, future) blocks the same way. The blocking call declares a br__waiter in park
 * memory (below: its own frame, except in a shared-stack coroutine), links it into the
 * primitive's wait-queue (a br__wq) under the queue's ilock, drops the ilock and parks.
 * A waker pops the waiter under the ilock, fills in whatever it hands over (w->data),
 * and then calls br__waiter_wake. Nothing is allocated on the blocking path of a thread
 * or an own-stack coroutine.
 *
 * The waiter is either a thread or a coroutine, and the primitive doesn't know which:
 * br__waiter_init binds the waiter to the current execution context through a parker
 * (a three-function vtable, below). Threads park on a futex on w->signalled;
 * coroutines (the aio layer installs their parker with br__set_context) suspend and
 * are resumed by their loop, from any thread.
 *
 * A park ends one of three ways: signalled (0), the deadline passed (BR_ETIMEDOUT), or
 * the context was cancelled (BR_ECANCELED: a coroutine's task.cancel(); a thread is
 * never cancelled). The primitive treats a cancel exactly like a timeout, with a
 * different code: the caller's call has had no effect and the primitive's state is as
 * if the call had never been made.
 *
 * Rules that keep a waiter's stack frame safe:
 *  1. A waker reads everything it needs from w before it stores w->signalled = 1
 *     (release). After that store the waiter may return and its frame may be reused;
 *     the thread parker's futex_wake on the stale address is harmless (see
 *     br__futex_wake).
 *  2. A waiter whose park timed out or was cancelled must not simply leave: it takes
 *     the ilock and checks w->linked. If it is still linked, it unlinks itself and
 *     reports the timeout or the cancel. If not, a waker has popped it and is about to
 *     signal (or has), so it waits for the signal with no deadline and no cancel, and
 *     treats the wake as having happened: whatever was handed over (a lock, a token,
 *     an item) is its own now and must not be lost. A cancel that loses this race is
 *     not lost either: it is posted again (parker->cancel), so the context's next
 *     cancellable park reports it. br__waiter_park_or_leave does exactly this.
 *  3. Lost wake-ups are ruled out per primitive by the usual argument: the waiter
 *     publishes "I am waiting" (links itself, sets a WAITERS bit) and then re-checks
 *     the condition; the waker changes the condition and then looks for waiters. Each
 *     primitive states where that ordering comes from next to its code.
 *
 * The parker contract, for a parker that is not a thread (the aio layer's coroutine
 * parker; the tests' cancellable parker, tests/parker.c):
 *  - park(w, deadline) runs on the waiter's own context, on the thread that runs it,
 *    with no braid lock held. It returns 0 once w->signalled == 1 (acquire), and may
 *    return only then, or when the deadline has passed (BR_ETIMEDOUT), or when a
 *    cancel request for the context is pending and w->flags lacks BR__WAITER_NOCANCEL
 *    (BR_ECANCELED; reporting it consumes the request). It checks in that order:
 *    signalled, then a pending cancel, then the deadline, so a park whose deadline has
 *    passed (BR_NOWAIT included) still reports a pending cancel, as asyncio.sleep(0)
 *    raises a pending CancelledError. It may suspend the context,
 *    run others, spin; it must not return 0 early (spurious wake-ups are its own
 *    business), must not touch any primitive, and must not block the thread for long
 *    unless it is the thread parker. A deadline that has already passed, BR_NOWAIT
 *    included, still returns 0 if the waiter is signalled.
 *  - unpark(word, ctx, old) may be called from any thread, with or without the
 *    primitive's ilock held (so it takes no braid lock and never blocks: at most a
 *    futex wake, or pushing ctx on a loop's ready queue and waking that loop's poller).
 *    It runs after the waker stored signalled = 1 (old is the value before), so the
 *    waiter may be gone: it may use `word` only as a key and `ctx`, which outlives
 *    every waiter bound to it.
 *  - cancel(ctx) posts a cancel request to the context, from any thread: its current
 *    park, if it is in one that may be cancelled, returns BR_ECANCELED soon, else its
 *    next one does. A request is reported once. NULL for parkers whose contexts can't
 *    be cancelled (threads).
 *  - A cancel must leave nothing behind: the waiter it ends is unlinked (rule 2) and
 *    the primitive's state is what it was before the call (no unit, item, lock or
 *    wake-up consumed or lost). Where the wake won the race, the call succeeds and the
 *    request stays pending.
 */

typedef struct br__waiter br__waiter;

typedef struct br__parker {
    /* Parks until signalled, the deadline, or a cancel (the contract above): 0,
     * BR_ETIMEDOUT or BR_ECANCELED. Tolerates spurious wake-ups internally. */
    int (*park)(br__waiter *w, int64_t deadline);
    /* Makes the context that owns a waiter runnable again. Called after the waker
     * swapped signalled to 1 (`old` is what it held before), so it must not touch the
     * waiter itself: only the saved address of the signalled word (as a futex key)
     * and ctx. */
    void (*unpark)(_Atomic uint32_t *signalled, void *ctx, uint32_t old);
    /* Posts a cancel request to the context ctx; NULL if it can't be cancelled. */
    void (*cancel)(void *ctx);
} br__parker;

struct br__waiter {
    br__waiter *next, *prev;
    _Atomic uint32_t signalled; /* 0 waiting, 2 asleep (thread parker), 1 signalled */
    uint32_t linked;            /* in a br__wq; only touched under that wq's ilock */
    uint32_t flags;             /* BR__WAITER_* hints, set by the waiter before it parks */
    uintptr_t data;             /* handed over by the waker, meaning per primitive */
    uintptr_t data2;            /* a second word for the primitive (e.g. priority) */
    const br__parker *parker;
    void *ctx; /* the parker's context (the coroutine), NULL for a thread */
    /* Where it was made (br__waiter_init's caller): what br_aio_dump says a suspended
     * coroutine waits on. */
    const char *site_file, *site_func;
};

/* Hint to the thread parker: sleep at once instead of spinning br__calib_spin_ns()
 * first. For a waiter that has spun already (a future's waiter polls the future's state
 * before it registers) or knows its wake is far off. Coroutine parkers ignore it. */
#define BR__WAITER_NOSPIN 1u
/* This park must not end in BR_ECANCELED: a pending cancel request stays pending. For
 * waits that must finish whatever happens: rule 2's wait for a signal, a condition
 * taking its lock back, a free waiting for what borrows memory it is about to free. */
#define BR__WAITER_NOCANCEL 2u

/* Binds w to the current context (thread or coroutine) and clears it. Records the
 * calling file and function (two stores), so a dump can name the primitive. */
void br__waiter_init_at(br__waiter *w, const char *file, const char *func);
#define br__waiter_init(w) br__waiter_init_at((w), __FILE__, __func__)
/* Parks w until signalled, the deadline or a cancel: 0, BR_ETIMEDOUT or BR_ECANCELED
 * (then follow rule 2). */
static inline int br__waiter_park(br__waiter *w, int64_t deadline) {
    if (atomic_load_explicit(&w->signalled, memory_order_acquire))
        return 0;
    return w->parker->park(w, deadline);
}
/* Signals w (rule 1). Call after popping w, with or without the ilock held. */
static inline void br__waiter_wake(br__waiter *w) {
    const br__parker *p = w->parker;
    void *ctx = w->ctx;
    _Atomic uint32_t *word = &w->signalled;
    uint32_t old = atomic_exchange_explicit(&w->signalled, 1, memory_order_acq_rel);
    p->unpark(word, ctx, old);
}
/* Posts a cancel request to w's context again: a cancel this waiter consumed but can't
 * report (its wake won the race: rule 2). Call from the waiter's own context. */
void br__waiter_repost_cancel(br__waiter *w);
/* Parks until signalled, ignoring the deadline and cancel requests (rule 2's wait, and
 * any wait that must not be cut short). */
void br__waiter_park_until_signalled(br__waiter *w);

/* A wait-queue: FIFO of waiters, guarded by its own ilock. `aux` is spare room for
 * the primitive that embeds it (zero-initialised; braid's RLock keeps its count there).
 * All-zero is an empty queue. */
typedef struct br__wq {
    br__ilock lock;
    uint32_t aux;
    br__waiter *head, *tail;
} br__wq;

static inline bool br__wq_empty(const br__wq *q) { return q->head == NULL; }

/* Caller holds q->lock for all of these. */
static inline void br__wq_push(br__wq *q, br__waiter *w) {
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    w->linked = 1;
}
static inline void br__wq_push_front(br__wq *q, br__waiter *w) {
    w->prev = NULL;
    w->next = q->head;
    if (q->head)
        q->head->prev = w;
    else
        q->tail = w;
    q->head = w;
    w->linked = 1;
}
static inline void br__wq_remove(br__wq *q, br__waiter *w) {
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->next = w->prev = NULL;
    w->linked = 0;
}
static inline br__waiter *br__wq_pop(br__wq *q) {
    br__waiter *w = q->head;
    if (w)
        br__wq_remove(q, w);
    return w;
}

/* Parks w, which the caller linked into q and then released q->lock. On a timeout or a
 * cancel applies rule 2 under q->lock: returns BR_ETIMEDOUT or BR_ECANCELED if w was
 * still linked (it is now unlinked, and `left(q, arg, why)`, if not NULL, has run
 * under q->lock with why = that code, so the primitive can fix its state, e.g. clear a
 * WAITERS bit), or 0 if a waker got there first (the wake and whatever it handed over
 * belong to the caller; a cancel it overtook is posted again). Never returns with
 * q->lock held. */
int br__waiter_park_or_leave(br__waiter *w, br__wq *q, int64_t deadline,
                             void (*left)(br__wq *q, void *arg, int why), void *arg);

/* Generalises br__waiter_park_or_leave to waiters kept under any ilock in any list: on
 * a timeout or cancel, takes `lk`, and if w->linked calls unlink(w, arg, why) (which
 * must unlink w and clear w->linked, e.g. with br__wq_remove, and may fix the
 * primitive's state) and returns why (BR_ETIMEDOUT or BR_ECANCELED); otherwise waits
 * for the waker's signal (rule 2) and returns 0. Never returns with lk held. */
int br__waiter_park_or_leave_in(br__waiter *w, br__ilock *lk, int64_t deadline,
                                void (*unlink)(br__waiter *w, void *arg, int why),
                                void *arg);

/* Pops and wakes up to n waiters (all if n < 0), storing `data` in each. Takes and
 * releases q->lock. Returns how many were woken. */
int br__wq_wake(br__wq *q, int n, uintptr_t data);

/* Pops every waiter of q, storing `data` in each, and returns them chained through
 * ->next in queue order (NULL if none). Caller holds q->lock, so it can change the
 * primitive's state in the same critical section; it wakes the chain with
 * br__wake_chain, usually after dropping the lock. */
br__waiter *br__wq_pop_all(br__wq *q, uintptr_t data);

/* Wakes a chain of waiters linked through ->next (built under a lock by popping them
 * and chaining them, then woken after the lock is dropped). Reads each next pointer
 * before waking its waiter (rule 1). */
static inline void br__wake_chain(br__waiter *chain) {
    while (chain) {
        br__waiter *next = chain->next;
        br__waiter_wake(chain);
        chain = next;
    }
}

/* --- lifecycle: fork and exit hooks (core/lifecycle.c) ---------------------------------
 *
 * Every layer that must act around fork() or at exit registers one static br__hooks,
 * the first time it is used, with its place in the layer order. The registry runs them
 * in that order whoever registered first: prepare from the highest order down; parent
 * and child from the lowest up; at_exit from the highest down. Any hook may be NULL.
 * Fork hooks run with the registry locked and must not register hooks. */
enum {
    BR__ORDER_CORE = 0,
    BR__ORDER_THREAD = 10,
    BR__ORDER_QUEUE = 20,
    BR__ORDER_FUTURE = 30,
    BR__ORDER_EXECUTOR = 40,
    BR__ORDER_PROCESS = 50, /* reserved for the process layer */
    BR__ORDER_AIO = 60      /* reserved for the aio layer */
};

typedef struct br__hooks {
    int order;              /* BR__ORDER_* (a test may use others) */
    const char *name;       /* the layer, for debugging */
    void (*prepare)(void);  /* in the parent, before fork(): take the layer's locks */
    void (*parent)(void);   /* in the parent, after fork(): release them */
    void (*child)(void);    /* in the child, after fork(): reset what the other threads
                             * left behind */
    void (*at_exit)(void);  /* at exit() or a return from main() */
    /* The registry's own; zero in a static initializer. */
    struct br__hooks *next_;
    bool registered_;
} br__hooks;

/* Adds h to the registry (h must stay valid for the life of the process); registering
 * the same h again does nothing. 0, or BR_ENOMEM (too many hooks, or the C library
 * couldn't install its handler: the hooks won't run). */
BR__EXT int br__hooks_register(br__hooks *h);

/* --- the current execution context --------------------------------------------
 *
 * Every OS thread that touches braid has a br__tls block. `owner` identifies the running
 * context as an owner (locks, RLock counts). When the aio layer runs a coroutine on the
 * thread it sets `owner` and `parker`/`pctx` for the coroutine; ownership then follows
 * the coroutine, as DESIGN.md asks.
 *
 * Identities are unique for the life of the process, never reused: a lock left held by
 * a finished thread or coroutine is not released by a later one that happens to get
 * the same memory (a later thread's br__tls block, a later task's record). A thread's is
 * even, drawn from a process-wide counter the first time br__self() runs on it (kept in
 * `self`); a coroutine's is odd, made by the aio layer from its task's 64-bit id
 * (br__coro_identity). */
struct br_thread;
typedef struct br__tls {
    uintptr_t owner;           /* identity of the running context; 0 = not yet set */
    uintptr_t self;            /* this thread's own identity (even); 0 = not yet drawn */
    const br__parker *parker;  /* NULL: the thread parker */
    void *pctx;
    struct br_thread *thread;  /* the br_thread running here, or NULL */
    const char *name;          /* the current thread's name, or NULL ("MainThread"/...) */
    int64_t park_spin_ns;      /* the adaptive spin budget (br__spin_budget); 0: unset */
    uint32_t park_spin_probe;  /* waits since the last full-budget probe */
    uint32_t park_yield_off;   /* waits left without yields (br__spin_yield) */
    /* Set while a shared-stack coroutine runs: the range of its shared stack, whose
     * frames are copied out while it is suspended, so its park memory is taken off the
     * stack (br__park_mem). NULL otherwise. */
    const char *park_lo, *park_hi;
    /* Set while such a coroutine runs if it lends a room for one park block (the aio
     * layer's cell room: br__set_context_room); NULL otherwise. */
    void *park_room;
    bool *park_room_busy;
    br__slab_class park_blocks; /* this thread's park memory (core/waiter.c) */
    bool park_key_set;          /* its release at the thread's end is arranged */
} br__tls;

BR__EXT extern BR__TLS br__tls br__tls_v;

/* The calling thread's br__tls block. Code that may run in a coroutine reads br__tls_v
 * through this, never directly: a compiler may compute a TLS variable's address once
 * per function and keep it across calls, and a call that suspends a coroutine may
 * return on another thread (aio/coro.h, "Per-thread state"). This recomputes the
 * address at every call from the thread pointer (a volatile asm, so it is neither
 * merged with an earlier one nor hoisted): the thread pointer register plus the
 * variable's offset from the GOT, the initial-exec sequence. Elsewhere a call the
 * compiler can't see through (br__tls_get). (Not br__tls(): that is the block's type.) */
br__tls *br__tls_get(void);
#if defined(__GNUC__) && defined(__x86_64__)
static inline br__tls *br__tls_now(void) {
    br__tls *p;
    __asm__ __volatile__("movq %%fs:0, %0\n\taddq br__tls_v@gottpoff(%%rip), %0" : "=r"(p));
    return p;
}
#elif defined(__GNUC__) && defined(__aarch64__)
static inline br__tls *br__tls_now(void) {
    br__tls *p;
    uintptr_t off;
    __asm__ __volatile__("mrs %0, tpidr_el0\n\t"
                         "adrp %1, :gottprel:br__tls_v\n\t"
                         "ldr %1, [%1, #:gottprel_lo12:br__tls_v]\n\t"
                         "add %0, %0, %1"
                         : "=r"(p), "=&r"(off));
    return p;
}
#else
static inline br__tls *br__tls_now(void) { return br__tls_get(); }
#endif

/* Draws the calling thread's identity (its first br__self()) and returns it. */
uintptr_t br__self_slow(br__tls *t);

/* Identity of the running thread or coroutine, never 0, never reused. One load of the
 * block (after br__tls_now's address computation) except at a thread's first call. */
static inline uintptr_t br__self(void) {
    br__tls *t = br__tls_now();
    uintptr_t o = t->owner;
    return BR__LIKELY(o != 0) ? o : br__self_slow(t);
}

/* A coroutine's identity from its 64-bit id (odd: never a thread's). */
static inline uintptr_t br__coro_identity(uint64_t id) { return (uintptr_t)(id << 1) | 1u; }

/* The aio layer's hook: run `owner` with `parker`/`pctx` on this thread from now on
 * (owner 0 and parker NULL go back to the plain thread and its own identity). */
void br__set_context(uintptr_t owner, const br__parker *parker, void *pctx);
/* The running context is a shared-stack coroutine whose stack spans [lo, hi) (the aio
 * layer calls it after br__set_context, which clears it). */
void br__set_context_stack(const void *lo, const void *hi);
/* The running shared-stack coroutine lends `room` (BR__PARK_BLOCK bytes at least) to
 * its park memory; *busy says whether it is in use (the aio layer calls it after
 * br__set_context_stack; br__set_context clears it). */
void br__set_context_room(void *room, bool *busy);

/* --- park memory ------------------------------------------------------------------------
 *
 * What a blocking call links into structures that other contexts reach while it is
 * parked (its waiter, a wait record holding one, watch nodes on futures, an I/O
 * registration) must stay at its address until the call returns. A thread's or an
 * own-stack coroutine's frame does. A shared-stack coroutine's frame doesn't: while it
 * is suspended its frames are copied out and another coroutine's run at those
 * addresses (aio/coro.h). So every park site declares such memory with BR__PARKED:
 * on the frame for the first two (no cost: a pointer to a local), a park block for a
 * shared-stack coroutine, given back when the variable goes out of scope (the cleanup
 * attribute, so every return path gives it back). Out of memory there aborts with a
 * message, as copying the frames out does. br__waiter_init and br__future_watch check
 * that nothing they link lies on the running shared stack, so a site that was missed
 * aborts at once (naming the site) instead of corrupting another coroutine's frames.
 *
 * Park blocks. BR__PARK_BLOCK bytes each (every BR__PARKED object fits one: the macro
 * checks it at compile time). The first one a coroutine takes is its own room, when its
 * scheduler lends one (br__set_context_room: the room in a task's cell where a
 * suspended task's frames are kept while they fit, dead while it runs, and a parked
 * task's frames never fit there: aio/coro.c), so a wait costs no memory of its own; a
 * second one at once (a condition's waiter and then its lock's) comes from the running
 * thread's own slab class (br__tls park_blocks, core/slab.c), without a lock: a block
 * is taken and given back by the same context (the cleanup runs in the call that took
 * it, and a call doesn't change context) on the same thread (a shared-stack coroutine
 * runs only on the thread that first resumed it: aio/coro.c aborts otherwise). A block
 * given back is the next one taken (warm), and a burst of parks touches one 2 MiB huge
 * page per 16,383 blocks instead of a 4 KiB page per ~40 malloc blocks. The thread's
 * slabs are unmapped when it ends (a key destructor; if no key can be made, they stay
 * mapped), except those with a block still in use (a coroutine bound to the thread,
 * left parked when the thread ended: its waiter stays valid memory; never reused).
 * AddressSanitizer builds poison a block while it is free, so a waker that writes
 * into a waiter given back is reported. Before 2026-12-08 each park was a malloc and a
 * free (docs/aio-coro.md, "Cost"). */
#define BR__PARK_BLOCK ((size_t)128)
/* A park block for the running shared-stack coroutine (size <= BR__PARK_BLOCK). */
BR__EXT void *br__park_heap(size_t size);
/* Gives a block of br__park_heap's back, on the thread that took it. */
BR__EXT void br__park_put(void *p);
/* The cleanup of a BR__PARKED variable: gives a park block back (the context is the
 * one that took it: a call doesn't change context). */
static inline void br__park_release(void *pp) {
    if (BR__UNLIKELY(br__tls_now()->park_lo != NULL))
        br__park_put(*(void **)pp);
}
static inline void *br__park_mem(void *frame, size_t size) {
    if (BR__LIKELY(br__tls_now()->park_lo == NULL))
        return frame;
    return br__park_heap(size);
}
/* True if p lies on the running shared-stack coroutine's stack (never for threads). */
static inline bool br__on_shared_stack(const void *p) {
    br__tls *t = br__tls_now();
    return t->park_lo != NULL && (const char *)p >= t->park_lo && (const char *)p < t->park_hi;
}
/* Declares `type *name` pointing at park memory for one `type` (uninitialised). */
#define BR__PARKED(type, name) type BR__PARKED_IN(name)
/* The declarators, after a type that may be a struct defined in place:
 * `struct { ... } BR__PARKED_IN(name);`. A type bigger than a park block doesn't
 * compile (a negative array size). */
#define BR__PARKED_IN(name)                                                             \
    name##_frame_, *name __attribute__((cleanup(br__park_release))) = br__park_mem(    \
                       &name##_frame_,                                                 \
                       sizeof name##_frame_ +                                          \
                           0 * sizeof(char[sizeof name##_frame_ <= BR__PARK_BLOCK ? 1 : -1]))
/* The same for an array of n (n > 0) whose frame copy, `frame` (frame_n entries), is
 * used when it is big enough; else, or in a shared-stack coroutine, the heap (NULL if
 * that fails: the caller reports BR_ENOMEM). Release with br__park_array_free. Not
 * park blocks: its size is the caller's n (br_wait's futures), and it is rare. */
static inline void *br__park_array(void *frame, size_t frame_n, size_t n, size_t elem) {
    if (n <= frame_n && br__tls_now()->park_lo == NULL)
        return frame;
    return br__malloc(n * elem);
}
static inline void br__park_array_free(void *frame, void *p) {
    if (p != frame)
        br__free(p);
}

extern const br__parker br__thread_parker;

/* --- calibration (core/calib.c) ------------------------------------------------------
 *
 * This machine's costs, measured once (lazily, by the first caller; core/calib.c's
 * notes say how), clamped to sane bounds, in ns. Spin budgets are derived from these,
 * never counted in iterations: a `pause` or a cache miss costs 10x more on some
 * machines than on others.
 *   br__calib_rtt_ns()        a cache line's round trip between two threads
 *   br__calib_wake_ns()       a futex wake until the woken thread runs
 *   br__calib_wake_call_ns()  the waker's own cost of that wake
 *   br__calib_spin_ns()       how long a thread spins before it sleeps (the thread
 *                             parker, the queue's and the futures' polls): wake_ns;
 *                             0 on one CPU; BRAID_SPIN_NS overrides it (0 disables)
 * Each is one relaxed load once measured. */
enum { BR__CALIB_RTT, BR__CALIB_WAKE, BR__CALIB_WAKE_CALL, BR__CALIB_SPIN, BR__CALIB_N };
extern _Atomic int64_t br__calib_v[BR__CALIB_N]; /* -1 until measured */
/* Measures (the first caller) or returns the defaults (while another measures). */
int64_t br__calib_slow(int which);
static inline int64_t br__calib(int which) {
    int64_t v = atomic_load_explicit(&br__calib_v[which], memory_order_relaxed);
    return BR__LIKELY(v >= 0) ? v : br__calib_slow(which);
}
/* The value if measured, else its default, without ever measuring: for paths that
 * must not start a thread (the internal lock, which fork's handlers take). */
int64_t br__calib_peek(int which);
static inline int64_t br__calib_rtt_ns(void) { return br__calib(BR__CALIB_RTT); }
static inline int64_t br__calib_wake_ns(void) { return br__calib(BR__CALIB_WAKE); }
static inline int64_t br__calib_wake_call_ns(void) {
    return br__calib(BR__CALIB_WAKE_CALL);
}
static inline int64_t br__calib_spin_ns(void) { return br__calib(BR__CALIB_SPIN); }
/* Test hook: the spin budget from now on (0 disables spinning). Measures first, so
 * that the measurement can't overwrite it later. */
void br__calib_set_spin_ns(int64_t ns);
/* For tests that count threads: once calibrated and the helper thread has returned,
 * its kernel id (0 if none was started); else -1. The id may stay listed in
 * /proc/self/task for a moment after it returned. */
int br__calib_helper_gone(void);
/* BRAID_SPIN_NS's parser: the value of a decimal 0..1000000, else -1 (ignored). */
int64_t br__calib_parse_spin_ns(const char *s);

/* Spinning before a park, shared by the thread parker and by the primitives that poll
 * their own state before they register (the queue, futures):
 *
 *     if (br__may_spin()) {
 *         br__spin sp;
 *         br__spin_start(&sp, deadline);
 *         for (unsigned i = 1;; i++) {
 *             ...poll, br__cpu_relax(); if it came: br__spin_done(&sp, true)...
 *             if (br__spin_over(i, sp.until)) {
 *                 br__spin_done(&sp, false);
 *                 break;
 *             }
 *         }
 *     }
 */

/* True if the calling context may spin: a thread (coroutines never spin; their parker
 * suspends at once) with spinning enabled (br__calib_spin_ns() > 0). */
static inline bool br__may_spin(void) {
    return br__tls_now()->parker == NULL && br__calib_spin_ns() > 0;
}
/* The calling thread's adaptive spin budget (ns) for a wait that may sleep: between a
 * few cache-line round trips and br__calib_spin_ns() (a futex wake's time). A spin that
 * saw its wake-up doubles the next one; one that ended in a sleep halves it
 * (br__spin_adapt). So a thread whose waker needs its CPU (a busy machine) soon spins
 * only briefly instead of holding the waker off for a wake's time and sleeping anyway,
 * while a thread whose waits end within the spin (a queue's consumer, a submitter
 * waiting on an idle pool) keeps spinning the whole budget. Every 16th wait below the
 * full budget spins the full budget (a probe): if that catches the wake-up the budget is
 * full again, so a thread whose budget shrank in a busy spell, or under waits that
 * take longer than its floor, finds its way back; a probe that fails changes nothing.
 * A wait cut short by its own deadline teaches nothing. 0: don't spin. */
static inline int64_t br__spin_budget(void) {
    int64_t max = br__calib_spin_ns();
    br__tls *t = br__tls_now();
    int64_t b = t->park_spin_ns;
    if (b == 0 || b >= max)
        return max;
    if ((++t->park_spin_probe & 15) == 0)
        return max; /* the probe */
    return b;
}
static inline void br__spin_adapt(int64_t budget, bool found) {
    int64_t max = br__calib_spin_ns(), min = 4 * br__calib_rtt_ns();
    if (min > max)
        min = max;
    br__tls *t = br__tls_now();
    int64_t cur = t->park_spin_ns;
    if (budget >= max && cur != 0 && cur < max && !found)
        return; /* a failed probe */
    int64_t b = found ? budget * 2 : budget / 2;
    t->park_spin_ns = b > max ? max : b < min ? min : b;
}

/* One spin: its budget (br__spin_budget), when it ends (the budget from now, or the
 * deadline if that comes first), and whether its outcome teaches the budget anything
 * (not when the deadline cut it short). */
typedef struct br__spin {
    int64_t budget, until;
    bool learn;
} br__spin;
static inline void br__spin_start(br__spin *sp, int64_t deadline) {
    sp->budget = br__spin_budget();
    sp->until = br_deadline_min(br_now() + sp->budget, deadline);
    sp->learn = sp->until != deadline;
}
/* The spin is over: found, it saw what it waited for; else the caller sleeps now. */
static inline void br__spin_done(const br__spin *sp, bool found) {
    if (found || sp->learn)
        br__spin_adapt(sp->budget, found);
}

/* True when the spin is over, for round i (counting from 1) of a spin loop that ends
 * at `until`. Reads the clock only every 16th round. */
static inline bool br__spin_over(unsigned i, int64_t until) {
    return (i & 15) == 0 && br_now() >= until;
}

/* After a spin that failed, before the sleep: hand the CPU over a few times, re-checking
 * after each. The waker may be runnable on this very CPU (a busy machine: the waiter
 * and the thread it waits for share the one free CPU), and then the spin only held it
 * off; a futex sleep and wake costs several us more on such a guest (W4 under one busy
 * process: 5-7 us a round trip). sched_yield() runs it at once; with nothing else
 * runnable it returns at once. Bounded by BR__SPIN_YIELDS rounds and by
 * br__calib_spin_ns() from the first (or the deadline), so an idle wait that lasts
 * longer costs at most that much more before its sleep. It doesn't teach the spin's
 * budget: a wait that ends here still halved it (br__spin_done(&sp, false) first), so
 * under load the spin stays short and the yields do the waiting. The hazard: a yield
 * whose CPU goes to a busy process rather than to the waker waits out that process's
 * slice (0.75-4 ms: W4's p99 under a pinned busy process went from 17 us to 1.6 ms),
 * so a yield that took more than 4 spin budgets turns yields off for the thread's next
 * BR__SPIN_YIELD_OFF waits. Session 21 (AMD EPYC 2-vCPU guest): with the guard, W4
 * with both threads on one CPU 1.08x faster (5.09 us against 5.47: two context
 * switches a round trip either way, yields instead of futex calls), otherwise no
 * change the machine could show; not merged (branch s21-yield-wip).
 *
 *     int64_t yu = 0;
 *     for (unsigned y = 0; br__spin_yield(y, &yu, deadline); y++)
 *         ...poll; if it came: done...
 *
 * Round y (from 0): false when the yields are over; else it has yielded once. */
enum { BR__SPIN_YIELDS = 8, BR__SPIN_YIELD_OFF = 1024 };
static inline bool br__spin_yield(unsigned y, int64_t *until, int64_t deadline) {
    if (y >= BR__SPIN_YIELDS)
        return false;
    br__tls *t = br__tls_now();
    int64_t now = br_now();
    if (y == 0) {
        if (t->park_yield_off > 0) {
            t->park_yield_off--;
            return false;
        }
        *until = br_deadline_min(now + br__calib_spin_ns(), deadline);
    }
    if (now >= *until)
        return false;
    sched_yield();
    /* A yield that took several wakes' time gave the CPU to a thread that kept it for
     * its slice (a busy process sharing this CPU): no yields for the next waits. */
    if (br_now() - now > 4 * br__calib_spin_ns()) {
        t->park_yield_off = BR__SPIN_YIELD_OFF;
        return false;
    }
    return true;
}

#endif
