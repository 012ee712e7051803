/* Process-shared Lock, RLock, Condition, Semaphore, Event and Barrier (braid/mp_sync.h).
 *
 * Design notes (the rules to keep when changing this file).
 *
 * Everything here lives in memory that other processes map at other addresses, and that
 * a process may stop touching at any instruction (SIGKILL). So:
 *   - no pointers in an object: a condition names its lock by offset (lock_off, from
 *     the condition's own address) plus the lock's id, checked at each use;
 *   - every wait is a futex wait with shared = true (no private flag) on a 32-bit word
 *     of the object, and whoever changes that word in a way a sleeper must see wakes it;
 *   - no internal lock that a dying process could leave held: the futex-word objects
 *     change state with single atomic operations, and the condition's bookkeeping is
 *     done under the user's lock, which is robust.
 *
 * Lock and RLock: glibc's robust process-shared mutex (platform/linux/robust.c). Why
 * not a futex word of our own, as DESIGN.md leans: an owner's death must be seen at
 * once and for sure, and only the kernel's robust list does that (it runs as the
 * thread ends, whatever ends it); the kernel allows one robust list per thread and
 * glibc owns it, so our own words can't be on it. A word of our own would have its
 * waiters poll the owner's liveness (a period of latency after each death, and a
 * recycled tid passing for the dead owner). The mutex's robust-list links are pointers,
 * but only in the owner's address space and only while it holds the mutex; nothing
 * else in it is one. The RLock is the same mutex plus a depth (`count`) written only by
 * its owner: a new owner after BR_EOWNERDEAD starts at 1.
 *
 * Condition: its own futex word `seq` and three counts kept under the user's lock:
 * `waiters` (threads inside wait), `signals` (notifies not yet taken) and a ticket
 * scheme that keeps a notify for the threads waiting when it came: a waiter takes
 * ticket next_ticket++; notify(n) grants k = min(n, waiters - signals) signals, sets
 * horizon = next_ticket (every current waiter is below it), bumps seq and wakes every
 * sleeper on seq. A woken waiter takes the lock back and goes on (0) only if its ticket
 * is below the horizon and a signal is left (signals--); otherwise it sleeps again on
 * the seq it reads under the lock. Invariant: signals <= waiters below the horizon, so
 * a granted signal always has a waiter entitled to it. A waiter reads seq before it
 * releases the lock and a notify bumps it under the lock, so a notify between the
 * release and the futex wait is never missed. All sleepers are woken (not k) because
 * the kernel's queue order between processes need not be ticket order: waking k could
 * wake late arrivals that may not go on while an entitled waiter sleeps on.
 *
 * Semaphore: `value` is the futex word; acquire decrements it with a CAS when > 0, else
 * counts itself in `waiters` and sleeps while value == 0. release adds with a CAS
 * (bounded: never above `max`) and wakes n sleepers if `waiters` is nonzero. Both sides
 * are seq_cst (a store then a load each), so either the sleeper sees the new value or
 * the releaser sees the sleeper.
 *
 * Event: `word` = generation << 1 | flag. set bumps the generation and sets the flag in
 * one CAS; a waiter returns once the flag is set or the generation has moved, so a set
 * cleared again at once still releases the waiters it found. `waiters` as the
 * semaphore's, to skip the wake when nobody waits.
 *
 * Barrier: one word: bit 31 broken, bits 24..30 the round (mod 128), bits 0..23 the
 * arrivals of this round. An arrival CASes the count up; the last one CASes in the
 * next round with no arrivals and wakes everyone. A waiter of round g goes on when the
 * word's round is g+1; any other change of round (reset adds 2) or the broken bit with
 * its round still g means broken. A round can't move twice while one of its waiters
 * sleeps (the next trip needs that waiter), so 7 bits are plenty. reset bumps the round
 * only when someone is waiting, so a reset right after a trip doesn't break the tripped
 * round's waiters that haven't woken yet.
 *
 * Placement (_new): one page of br__shm; a header (struct place) at offset 0, the object
 * at PLACE_OFF. The object's `placed` field says it was made so; free unmaps the page,
 * and closes the descriptor recorded in the header only if this process's descriptor of
 * that number is the same memory (same inode), which is true in the creator and its
 * forked children, so a child that reused the number for something else keeps it.
 */
#include "braid/mp_sync.h"

#include "core/lib.h"
#include "process/shm.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- common ---------------------------------------------------------------------- */

enum {
    MAGIC_LOCK = 0x6d704c4bu,    /* "mpLK" */
    MAGIC_RLOCK = 0x6d70524bu,   /* "mpRK" */
    MAGIC_COND = 0x6d70436eu,    /* "mpCn" */
    MAGIC_SEM = 0x6d705365u,     /* "mpSe" */
    MAGIC_EVENT = 0x6d704576u,   /* "mpEv" */
    MAGIC_BARRIER = 0x6d704272u, /* "mpBr" */
    MAGIC_DEAD = 0xdeadd00du,
};

#define PLACE_MAGIC 0x6272616964736d70ull /* "braidsmp" */
#define PLACE_OFF 64u

struct place {
    uint64_t magic;
    uint64_t size;
    uint64_t ino, dev; /* the memory's identity, to recognise its descriptor */
    int32_t fd;        /* the creator's descriptor number */
    uint32_t offset;   /* PLACE_OFF */
};

static size_t page_size(void) {
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

/* A page of shared memory with the header filled in; *obj = where the object goes. */
static int place_new(void **obj, const char *label) {
    br__shm s;
    int rc = br__shm_new(&s, page_size(), label);
    if (rc != 0)
        return rc;
    struct stat st;
    if (fstat(s.fd, &st) != 0) {
        rc = -errno;
        br__shm_close(&s);
        return rc;
    }
    struct place *p = s.base;
    p->magic = PLACE_MAGIC;
    p->size = s.size;
    p->ino = st.st_ino;
    p->dev = st.st_dev;
    p->fd = s.fd;
    p->offset = PLACE_OFF;
    *obj = (char *)s.base + PLACE_OFF;
    return 0;
}

static struct place *place_of(const void *obj, uint32_t placed) {
    if (placed != PLACE_OFF)
        return NULL;
    struct place *p = (struct place *)((uintptr_t)obj - PLACE_OFF);
    return p->magic == PLACE_MAGIC ? p : NULL;
}

/* This process's descriptor of the placement, or -1. */
static int place_fd(const struct place *p) {
    struct stat st;
    if (p->fd < 0 || fstat(p->fd, &st) != 0)
        return -1;
    return (uint64_t)st.st_ino == p->ino && (uint64_t)st.st_dev == p->dev ? p->fd : -1;
}

static void place_free(struct place *p) {
    int fd = place_fd(p);
    munmap(p, (size_t)p->size);
    if (fd >= 0)
        close(fd);
}

static inline uint32_t ld(const _Atomic uint32_t *a) {
    return atomic_load(a);
}

/* An id for a new lock, so that a condition can tell its lock from another placed at
 * the same offset later. Not secret, only unlikely to repeat. */
static uint32_t new_id(void) {
    static _Atomic uint32_t counter;
    uint32_t x = (uint32_t)getpid() * 0x9e3779b1u ^ (uint32_t)br_now() ^
                 atomic_fetch_add(&counter, 0x85ebca6bu);
    return x ? x : 1;
}

/* --- Lock and RLock ---------------------------------------------------------------- */

struct mp_mutex {
    uint32_t magic;
    uint32_t placed; /* PLACE_OFF when made by _new */
    uint32_t id;
    uint32_t count; /* RLock depth: written by the owner only */
    pthread_mutex_t m;
};
BR__CHECK_STORAGE(br_mp_lock, struct mp_mutex);
BR__CHECK_STORAGE(br_mp_rlock, struct mp_mutex);

static int mutex_init(struct mp_mutex *x, uint32_t magic, uint32_t placed) {
    memset(x, 0, sizeof *x);
    int rc = br__robust_init(&x->m);
    if (rc != 0)
        return rc;
    x->id = new_id();
    x->placed = placed;
    x->count = 0;
    atomic_thread_fence(memory_order_release);
    x->magic = magic;
    return 0;
}

static int mutex_destroy(struct mp_mutex *x, uint32_t magic, const char *who) {
    if (x->magic != magic)
        return BR__MISUSE(BR_EINVAL, who);
    if (br__robust_locked(&x->m))
        return BR_EBUSY;
    pthread_mutex_destroy(&x->m);
    x->magic = MAGIC_DEAD;
    return 0;
}

static int mutex_free(struct mp_mutex *x, uint32_t magic, const char *who) {
    struct place *p;
    if (!x || x->magic != magic || !(p = place_of(x, x->placed)))
        return BR__MISUSE(BR_EINVAL, who);
    if (br__robust_held_by_me(&x->m))
        return BR_EBUSY;
    place_free(p);
    return 0;
}

static int mutex_new(struct mp_mutex **out, uint32_t magic, const char *label) {
    void *obj;
    int rc = place_new(&obj, label);
    if (rc != 0)
        return rc;
    rc = mutex_init(obj, magic, PLACE_OFF);
    if (rc != 0) {
        place_free((struct place *)((char *)obj - PLACE_OFF));
        return rc;
    }
    *out = obj;
    return 0;
}

/* The RLock's acquire, also the condition's way back in (depth `depth`). */
static int rlock_take(struct mp_mutex *x, int64_t deadline, uint32_t depth) {
    if (br__robust_held_by_me(&x->m)) {
        if (x->count == UINT32_MAX)
            return BR_EOVERFLOW;
        x->count++;
        return 0;
    }
    int rc = br__robust_lock(&x->m, deadline);
    if (rc == 0 || rc == BR_EOWNERDEAD)
        x->count = depth;
    return rc;
}

int br_mp_lock_init(br_mp_lock *l) {
    if (!l)
        return BR__MISUSE(BR_EINVAL, "br_mp_lock_init: NULL lock");
    return mutex_init((struct mp_mutex *)l, MAGIC_LOCK, 0);
}

int br_mp_lock_destroy(br_mp_lock *l) {
    if (!l)
        return BR__MISUSE(BR_EINVAL, "br_mp_lock_destroy: NULL lock");
    return mutex_destroy((struct mp_mutex *)l, MAGIC_LOCK,
                         "br_mp_lock_destroy: destroyed or never initialised");
}

int br_mp_lock_new(br_mp_lock **out) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_lock_new: NULL out");
    return mutex_new((struct mp_mutex **)out, MAGIC_LOCK, "braid-mp-lock");
}

int br_mp_lock_free(br_mp_lock *l) {
    return mutex_free((struct mp_mutex *)l, MAGIC_LOCK,
                      "br_mp_lock_free: NULL, or not made by br_mp_lock_new");
}

int br_mp_lock_acquire(br_mp_lock *l, int64_t deadline) {
    struct mp_mutex *x = (struct mp_mutex *)l;
    if (!x || x->magic != MAGIC_LOCK)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_lock_acquire: NULL, destroyed or never initialised");
    int rc = br__robust_lock(&x->m, deadline);
    if (rc == BR_EDEADLK)
        return BR__MISUSE(BR_EDEADLK, "br_mp_lock_acquire: the caller already holds it");
    return rc;
}

int br_mp_lock_release(br_mp_lock *l) {
    struct mp_mutex *x = (struct mp_mutex *)l;
    if (!x || x->magic != MAGIC_LOCK)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_lock_release: NULL, destroyed or never initialised");
    if (br__robust_unlock(&x->m) != 0)
        return BR__MISUSE(BR_EPERM, "br_mp_lock_release: the caller doesn't hold the lock");
    return 0;
}

static int mutex_consistent(struct mp_mutex *x, uint32_t magic, const char *who) {
    if (!x || x->magic != magic)
        return BR__MISUSE(BR_EINVAL, who);
    if (!br__robust_held_by_me(&x->m))
        return BR__MISUSE(BR_EPERM, who);
    if (br__robust_consistent(&x->m) != 0)
        return BR__MISUSE(BR_EINVAL, who);
    return 0;
}

int br_mp_lock_consistent(br_mp_lock *l) {
    return mutex_consistent(
        (struct mp_mutex *)l, MAGIC_LOCK,
        "br_mp_lock_consistent: bad lock, not held, or not inconsistent");
}

bool br_mp_lock_locked(const br_mp_lock *l) {
    const struct mp_mutex *x = (const struct mp_mutex *)l;
    return x && x->magic == MAGIC_LOCK && br__robust_locked(&x->m);
}

bool br_mp_lock_owned(const br_mp_lock *l) {
    const struct mp_mutex *x = (const struct mp_mutex *)l;
    return x && x->magic == MAGIC_LOCK && br__robust_held_by_me(&x->m);
}

int br_mp_rlock_init(br_mp_rlock *r) {
    if (!r)
        return BR__MISUSE(BR_EINVAL, "br_mp_rlock_init: NULL rlock");
    return mutex_init((struct mp_mutex *)r, MAGIC_RLOCK, 0);
}

int br_mp_rlock_destroy(br_mp_rlock *r) {
    if (!r)
        return BR__MISUSE(BR_EINVAL, "br_mp_rlock_destroy: NULL rlock");
    return mutex_destroy((struct mp_mutex *)r, MAGIC_RLOCK,
                         "br_mp_rlock_destroy: destroyed or never initialised");
}

int br_mp_rlock_new(br_mp_rlock **out) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_rlock_new: NULL out");
    return mutex_new((struct mp_mutex **)out, MAGIC_RLOCK, "braid-mp-rlock");
}

int br_mp_rlock_free(br_mp_rlock *r) {
    return mutex_free((struct mp_mutex *)r, MAGIC_RLOCK,
                      "br_mp_rlock_free: NULL, or not made by br_mp_rlock_new");
}

int br_mp_rlock_acquire(br_mp_rlock *r, int64_t deadline) {
    struct mp_mutex *x = (struct mp_mutex *)r;
    if (!x || x->magic != MAGIC_RLOCK)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_rlock_acquire: NULL, destroyed or never initialised");
    return rlock_take(x, deadline, 1);
}

static int rlock_put(struct mp_mutex *x) {
    if (!br__robust_held_by_me(&x->m))
        return BR_EPERM;
    if (x->count > 1) {
        x->count--;
        return 0;
    }
    x->count = 0;
    return br__robust_unlock(&x->m);
}

int br_mp_rlock_release(br_mp_rlock *r) {
    struct mp_mutex *x = (struct mp_mutex *)r;
    if (!x || x->magic != MAGIC_RLOCK)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_rlock_release: NULL, destroyed or never initialised");
    if (rlock_put(x) != 0)
        return BR__MISUSE(BR_EPERM,
                          "br_mp_rlock_release: the caller doesn't hold the lock");
    return 0;
}

int br_mp_rlock_consistent(br_mp_rlock *r) {
    return mutex_consistent(
        (struct mp_mutex *)r, MAGIC_RLOCK,
        "br_mp_rlock_consistent: bad lock, not held, or not inconsistent");
}

bool br_mp_rlock_owned(const br_mp_rlock *r) {
    const struct mp_mutex *x = (const struct mp_mutex *)r;
    return x && x->magic == MAGIC_RLOCK && br__robust_held_by_me(&x->m);
}

unsigned br_mp_rlock_count(const br_mp_rlock *r) {
    const struct mp_mutex *x = (const struct mp_mutex *)r;
    return br_mp_rlock_owned(r) ? x->count : 0;
}

/* --- Condition --------------------------------------------------------------------- */

enum { COND_LOCK = 1, COND_RLOCK = 2 };

struct mp_cond {
    uint32_t magic;
    uint32_t placed;
    uint32_t kind;    /* COND_LOCK or COND_RLOCK (its own RLock is an RLock) */
    uint32_t lock_id; /* the lock's id at init */
    int64_t lock_off; /* the lock's address minus ours */
    _Atomic uint32_t seq;
    /* The rest only under the lock. */
    uint32_t waiters, signals, next_ticket, horizon;
    uint32_t pad_;
    struct mp_mutex own; /* the RLock of a condition made with NULL */
};
BR__CHECK_STORAGE(br_mp_cond, struct mp_cond);

static int cond_setup(struct mp_cond *c, struct mp_mutex *lock, uint32_t kind,
                      uint32_t placed) {
    memset(c, 0, sizeof *c);
    if (!lock) {
        int rc = mutex_init(&c->own, MAGIC_RLOCK, 0);
        if (rc != 0)
            return rc;
        lock = &c->own;
        kind = COND_RLOCK;
    } else if (lock->magic != (kind == COND_LOCK ? MAGIC_LOCK : MAGIC_RLOCK)) {
        return BR__MISUSE(BR_EINVAL, "br_mp_cond_init: the lock is not initialised");
    }
    intptr_t off = (intptr_t)lock - (intptr_t)c;
    if (off > ((intptr_t)1 << 62) || off < -((intptr_t)1 << 62))
        return BR__MISUSE(BR_EINVAL, "br_mp_cond_init: the lock is too far away");
    c->kind = kind;
    c->lock_id = lock->id;
    c->lock_off = off;
    c->placed = placed;
    atomic_thread_fence(memory_order_release);
    c->magic = MAGIC_COND;
    return 0;
}

int br_mp_cond_init_lock(br_mp_cond *c, br_mp_lock *lock) {
    if (!c)
        return BR__MISUSE(BR_EINVAL, "br_mp_cond_init: NULL condition");
    return cond_setup((struct mp_cond *)c, (struct mp_mutex *)lock, COND_LOCK, 0);
}

int br_mp_cond_init_rlock(br_mp_cond *c, br_mp_rlock *lock) {
    if (!c)
        return BR__MISUSE(BR_EINVAL, "br_mp_cond_init: NULL condition");
    return cond_setup((struct mp_cond *)c, (struct mp_mutex *)lock, COND_RLOCK, 0);
}

static int cond_new(br_mp_cond **out, struct mp_mutex *lock, uint32_t kind) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_cond_new: NULL out");
    void *obj;
    int rc = place_new(&obj, "braid-mp-cond");
    if (rc != 0)
        return rc;
    rc = cond_setup(obj, lock, kind, PLACE_OFF);
    if (rc != 0) {
        place_free((struct place *)((char *)obj - PLACE_OFF));
        return rc;
    }
    *out = obj;
    return 0;
}

int br_mp_cond_new_lock(br_mp_cond **out, br_mp_lock *lock) {
    return cond_new(out, (struct mp_mutex *)lock, COND_LOCK);
}

int br_mp_cond_new_rlock(br_mp_cond **out, br_mp_rlock *lock) {
    return cond_new(out, (struct mp_mutex *)lock, COND_RLOCK);
}

/* The condition's lock, checked; NULL if c or the lock is not what it should be. */
static struct mp_mutex *cond_lock(const struct mp_cond *c) {
    if (!c || c->magic != MAGIC_COND)
        return NULL;
    struct mp_mutex *x = (struct mp_mutex *)((intptr_t)c + (intptr_t)c->lock_off);
    uint32_t want = c->kind == COND_LOCK ? MAGIC_LOCK : MAGIC_RLOCK;
    if (x->magic != want || x->id != c->lock_id)
        return NULL;
    return x;
}

int br_mp_cond_destroy(br_mp_cond *cp) {
    struct mp_cond *c = (struct mp_cond *)cp;
    if (!c || c->magic != MAGIC_COND)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_cond_destroy: NULL, destroyed or never initialised");
    if (c->waiters != 0)
        return BR_EBUSY;
    if (c->own.magic == MAGIC_RLOCK) {
        int rc = mutex_destroy(&c->own, MAGIC_RLOCK, "br_mp_cond_destroy: bad own lock");
        if (rc != 0)
            return rc;
    }
    c->magic = MAGIC_DEAD;
    return 0;
}

int br_mp_cond_free(br_mp_cond *cp) {
    struct mp_cond *c = (struct mp_cond *)cp;
    struct place *p;
    if (!c || c->magic != MAGIC_COND || !(p = place_of(c, c->placed)))
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_cond_free: NULL, or not made by br_mp_cond_new");
    if (c->own.magic == MAGIC_RLOCK && br__robust_held_by_me(&c->own.m))
        return BR_EBUSY;
    place_free(p);
    return 0;
}

int br_mp_cond_acquire(br_mp_cond *cp, int64_t deadline) {
    struct mp_cond *c = (struct mp_cond *)cp;
    struct mp_mutex *x = cond_lock(c);
    if (!x)
        return BR__MISUSE(
            BR_EINVAL, "br_mp_cond_acquire: NULL or destroyed condition, or its lock gone");
    return c->kind == COND_LOCK ? br_mp_lock_acquire((br_mp_lock *)x, deadline)
                                : br_mp_rlock_acquire((br_mp_rlock *)x, deadline);
}

int br_mp_cond_release(br_mp_cond *cp) {
    struct mp_cond *c = (struct mp_cond *)cp;
    struct mp_mutex *x = cond_lock(c);
    if (!x)
        return BR__MISUSE(
            BR_EINVAL, "br_mp_cond_release: NULL or destroyed condition, or its lock gone");
    return c->kind == COND_LOCK ? br_mp_lock_release((br_mp_lock *)x)
                                : br_mp_rlock_release((br_mp_rlock *)x);
}

int br_mp_cond_consistent(br_mp_cond *cp) {
    struct mp_cond *c = (struct mp_cond *)cp;
    struct mp_mutex *x = cond_lock(c);
    if (!x)
        return BR__MISUSE(
            BR_EINVAL,
            "br_mp_cond_consistent: NULL or destroyed condition, or its lock gone");
    return mutex_consistent(x, x->magic,
                            "br_mp_cond_consistent: not held, or not inconsistent");
}

static bool eligible(const struct mp_cond *c, uint32_t ticket) {
    return (int32_t)(ticket - c->horizon) < 0;
}

int br_mp_cond_wait(br_mp_cond *cp, int64_t deadline) {
    struct mp_cond *c = (struct mp_cond *)cp;
    struct mp_mutex *x = cond_lock(c);
    if (!x)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_cond_wait: NULL or destroyed condition, or its lock gone");
    if (!br__robust_held_by_me(&x->m))
        return BR__MISUSE(BR_EPERM, "br_mp_cond_wait: the caller doesn't hold the lock");
    uint32_t depth = c->kind == COND_RLOCK ? x->count : 0;
    uint32_t ticket = c->next_ticket++;
    c->waiters++;
    for (;;) {
        uint32_t s = ld(&c->seq);
        if (c->kind == COND_RLOCK)
            x->count = 0;
        br__robust_unlock(&x->m);
        int w;
        do
            w = br__futex_wait(&c->seq, s, deadline, true);
        while (w == BR_EINTR);
        int lrc = br__robust_lock(&x->m, BR_FOREVER);
        if (lrc != 0 && lrc != BR_EOWNERDEAD)
            return lrc; /* not recoverable: not held, nothing to put back */
        if (c->kind == COND_RLOCK)
            x->count = depth;
        int rc;
        if (eligible(c, ticket) && c->signals > 0) {
            c->signals--;
            rc = 0;
        } else if (w == BR_ETIMEDOUT || br__deadline_passed(deadline) || lrc != 0) {
            rc = BR_ETIMEDOUT;
        } else {
            continue;
        }
        c->waiters--;
        return lrc != 0 ? lrc : rc;
    }
}

int br_mp_cond_wait_for(br_mp_cond *c, br_mp_pred_fn pred, void *arg, int64_t deadline) {
    if (!pred)
        return BR__MISUSE(BR_EINVAL, "br_mp_cond_wait_for: NULL predicate");
    if (!cond_lock((struct mp_cond *)c))
        return BR__MISUSE(
            BR_EINVAL,
            "br_mp_cond_wait_for: NULL or destroyed condition, or its lock gone");
    if (!br__robust_held_by_me(&cond_lock((struct mp_cond *)c)->m))
        return BR__MISUSE(BR_EPERM,
                          "br_mp_cond_wait_for: the caller doesn't hold the lock");
    while (!pred(arg)) {
        int rc = br_mp_cond_wait(c, deadline);
        if (rc == BR_ETIMEDOUT)
            return pred(arg) ? 0 : BR_ETIMEDOUT;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int cond_notify(struct mp_cond *c, unsigned n, const char *who_inval,
                       const char *who_perm) {
    struct mp_mutex *x = cond_lock(c);
    if (!x || n == 0)
        return BR__MISUSE(BR_EINVAL, who_inval);
    if (!br__robust_held_by_me(&x->m))
        return BR__MISUSE(BR_EPERM, who_perm);
    uint32_t avail = c->waiters - c->signals;
    uint32_t k = n < avail ? n : avail;
    if (k == 0)
        return 0;
    c->signals += k;
    c->horizon = c->next_ticket;
    atomic_fetch_add(&c->seq, 1);
    br__futex_wake(&c->seq, INT_MAX, true);
    return 0;
}

int br_mp_cond_notify(br_mp_cond *c, unsigned n) {
    return cond_notify((struct mp_cond *)c, n,
                       "br_mp_cond_notify: n == 0, or a NULL or destroyed condition",
                       "br_mp_cond_notify: the caller doesn't hold the lock");
}

int br_mp_cond_notify_all(br_mp_cond *c) {
    return cond_notify((struct mp_cond *)c, UINT_MAX,
                       "br_mp_cond_notify_all: NULL or destroyed condition",
                       "br_mp_cond_notify_all: the caller doesn't hold the lock");
}

/* --- Semaphore ----------------------------------------------------------------------- */

struct mp_sem {
    uint32_t magic;
    uint32_t placed;
    _Atomic uint32_t value;
    _Atomic uint32_t waiters;
    uint32_t max; /* the bound: the initial value, or INT32_MAX */
};
BR__CHECK_STORAGE(br_mp_sem, struct mp_sem);

static int sem_setup(struct mp_sem *s, unsigned value, bool bounded, uint32_t placed) {
    if (value > INT32_MAX)
        return BR__MISUSE(BR_EINVAL, "br_mp_sem_init: value above 2^31-1");
    memset(s, 0, sizeof *s);
    atomic_init(&s->value, value);
    s->max = bounded ? value : INT32_MAX;
    s->placed = placed;
    atomic_thread_fence(memory_order_release);
    s->magic = MAGIC_SEM;
    return 0;
}

int br_mp_sem_init(br_mp_sem *s, unsigned value) {
    if (!s)
        return BR__MISUSE(BR_EINVAL, "br_mp_sem_init: NULL semaphore");
    return sem_setup((struct mp_sem *)s, value, false, 0);
}

int br_mp_sem_init_bounded(br_mp_sem *s, unsigned value) {
    if (!s)
        return BR__MISUSE(BR_EINVAL, "br_mp_sem_init_bounded: NULL semaphore");
    return sem_setup((struct mp_sem *)s, value, true, 0);
}

static int sem_new(br_mp_sem **out, unsigned value, bool bounded) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_sem_new: NULL out");
    if (value > INT32_MAX)
        return BR__MISUSE(BR_EINVAL, "br_mp_sem_new: value above 2^31-1");
    void *obj;
    int rc = place_new(&obj, "braid-mp-sem");
    if (rc != 0)
        return rc;
    sem_setup(obj, value, bounded, PLACE_OFF);
    *out = obj;
    return 0;
}

int br_mp_sem_new(br_mp_sem **out, unsigned value) {
    return sem_new(out, value, false);
}
int br_mp_sem_new_bounded(br_mp_sem **out, unsigned value) {
    return sem_new(out, value, true);
}

int br_mp_sem_destroy(br_mp_sem *sp) {
    struct mp_sem *s = (struct mp_sem *)sp;
    if (!s || s->magic != MAGIC_SEM)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_sem_destroy: NULL, destroyed or never initialised");
    if (ld(&s->waiters) != 0)
        return BR_EBUSY;
    s->magic = MAGIC_DEAD;
    return 0;
}

int br_mp_sem_free(br_mp_sem *sp) {
    struct mp_sem *s = (struct mp_sem *)sp;
    struct place *p;
    if (!s || s->magic != MAGIC_SEM || !(p = place_of(s, s->placed)))
        return BR__MISUSE(BR_EINVAL, "br_mp_sem_free: NULL, or not made by br_mp_sem_new");
    place_free(p);
    return 0;
}

static bool sem_try(struct mp_sem *s) {
    uint32_t v = ld(&s->value);
    while (v > 0)
        if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
            return true;
    return false;
}

int br_mp_sem_acquire(br_mp_sem *sp, int64_t deadline) {
    struct mp_sem *s = (struct mp_sem *)sp;
    if (!s || s->magic != MAGIC_SEM)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_sem_acquire: NULL, destroyed or never initialised");
    for (;;) {
        if (sem_try(s))
            return 0;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        atomic_fetch_add(&s->waiters, 1);
        int w = 0;
        if (ld(&s->value) == 0)
            w = br__futex_wait(&s->value, 0, deadline, true);
        atomic_fetch_sub(&s->waiters, 1);
        if (w == BR_ETIMEDOUT)
            return sem_try(s) ? 0 : BR_ETIMEDOUT;
    }
}

int br_mp_sem_release(br_mp_sem *sp, unsigned n) {
    struct mp_sem *s = (struct mp_sem *)sp;
    if (!s || s->magic != MAGIC_SEM || n == 0)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_sem_release: n == 0, or a NULL or destroyed semaphore");
    uint32_t v = ld(&s->value);
    do {
        if (n > s->max || v > s->max - n)
            return BR_EOVERFLOW;
    } while (!atomic_compare_exchange_weak(&s->value, &v, v + n));
    if (ld(&s->waiters) != 0)
        br__futex_wake(&s->value, n > INT_MAX ? INT_MAX : (int)n, true);
    return 0;
}

unsigned br_mp_sem_value(const br_mp_sem *sp) {
    const struct mp_sem *s = (const struct mp_sem *)sp;
    return s && s->magic == MAGIC_SEM ? ld(&s->value) : 0;
}

/* --- Event -----------------------------------------------------------------------------
 */

struct mp_event {
    uint32_t magic;
    uint32_t placed;
    _Atomic uint32_t word; /* generation << 1 | flag */
    _Atomic uint32_t waiters;
};
BR__CHECK_STORAGE(br_mp_event, struct mp_event);

static void event_setup(struct mp_event *e, uint32_t placed) {
    memset(e, 0, sizeof *e);
    e->placed = placed;
    atomic_thread_fence(memory_order_release);
    e->magic = MAGIC_EVENT;
}

int br_mp_event_init(br_mp_event *e) {
    if (!e)
        return BR__MISUSE(BR_EINVAL, "br_mp_event_init: NULL event");
    event_setup((struct mp_event *)e, 0);
    return 0;
}

int br_mp_event_new(br_mp_event **out) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_event_new: NULL out");
    void *obj;
    int rc = place_new(&obj, "braid-mp-event");
    if (rc != 0)
        return rc;
    event_setup(obj, PLACE_OFF);
    *out = obj;
    return 0;
}

int br_mp_event_destroy(br_mp_event *ep) {
    struct mp_event *e = (struct mp_event *)ep;
    if (!e || e->magic != MAGIC_EVENT)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_event_destroy: NULL, destroyed or never initialised");
    if (ld(&e->waiters) != 0)
        return BR_EBUSY;
    e->magic = MAGIC_DEAD;
    return 0;
}

int br_mp_event_free(br_mp_event *ep) {
    struct mp_event *e = (struct mp_event *)ep;
    struct place *p;
    if (!e || e->magic != MAGIC_EVENT || !(p = place_of(e, e->placed)))
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_event_free: NULL, or not made by br_mp_event_new");
    place_free(p);
    return 0;
}

int br_mp_event_set(br_mp_event *ep) {
    struct mp_event *e = (struct mp_event *)ep;
    if (!e || e->magic != MAGIC_EVENT)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_event_set: NULL, destroyed or never initialised");
    uint32_t v = ld(&e->word);
    do {
        if (v & 1)
            return 0;
    } while (!atomic_compare_exchange_weak(&e->word, &v, (v + 2) | 1));
    if (ld(&e->waiters) != 0)
        br__futex_wake(&e->word, INT_MAX, true);
    return 0;
}

int br_mp_event_clear(br_mp_event *ep) {
    struct mp_event *e = (struct mp_event *)ep;
    if (!e || e->magic != MAGIC_EVENT)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_event_clear: NULL, destroyed or never initialised");
    atomic_fetch_and(&e->word, ~1u);
    return 0;
}

bool br_mp_event_is_set(const br_mp_event *ep) {
    const struct mp_event *e = (const struct mp_event *)ep;
    return e && e->magic == MAGIC_EVENT && (ld(&e->word) & 1);
}

/* A process-shared futex can't wake a coroutine (its waker is in another process, and
 * knows no parker), so inside one (a context with a parker of its own) the wait polls
 * in slices, each a park of a private waiter that nobody signals: the coroutine is
 * suspended meanwhile and its loop runs the others. Not cancellable, as the thread's
 * wait. Returns when the slice or the deadline passed (callers re-check the word). */
static int coop_wait(_Atomic uint32_t *word, uint32_t val, int64_t deadline) {
    BR__PARKED(br__waiter, w);
    br__waiter_init(w);
    w->flags |= BR__WAITER_NOCANCEL;
    int64_t slice = br_deadline_after(200 * BR_USEC);
    (void)br__waiter_park(w, deadline < slice ? deadline : slice);
    if (ld(word) != val)
        return 0;
    return br__deadline_passed(deadline) ? BR_ETIMEDOUT : 0;
}

int br_mp_event_wait(br_mp_event *ep, int64_t deadline) {
    struct mp_event *e = (struct mp_event *)ep;
    if (!e || e->magic != MAGIC_EVENT)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_event_wait: NULL, destroyed or never initialised");
    uint32_t v = ld(&e->word);
    if (v & 1)
        return 0;
    atomic_fetch_add(&e->waiters, 1);
    int rc = 0;
    for (;;) {
        uint32_t now = ld(&e->word);
        if ((now & 1) || (now >> 1) != (v >> 1))
            break;
        int w = BR__UNLIKELY(br__tls_now()->parker != NULL)
                    ? coop_wait(&e->word, now, deadline)
                    : br__futex_wait(&e->word, now, deadline, true);
        if (w == BR_ETIMEDOUT) {
            now = ld(&e->word);
            if (!(now & 1) && (now >> 1) == (v >> 1))
                rc = BR_ETIMEDOUT;
            break;
        }
    }
    atomic_fetch_sub(&e->waiters, 1);
    return rc;
}

/* --- Barrier ------------------------------------------------------------------------- */

#define BAR_BROKEN 0x80000000u
#define BAR_ROUND_SHIFT 24
#define BAR_ROUND_MASK 0x7fu
#define BAR_COUNT_MASK 0x00ffffffu

struct mp_barrier {
    uint32_t magic;
    uint32_t placed;
    uint32_t parties;
    _Atomic uint32_t word;
};
BR__CHECK_STORAGE(br_mp_barrier, struct mp_barrier);

static inline uint32_t bar_round(uint32_t w) {
    return (w >> BAR_ROUND_SHIFT) & BAR_ROUND_MASK;
}
static inline uint32_t bar_with_round(uint32_t r) {
    return (r & BAR_ROUND_MASK) << BAR_ROUND_SHIFT;
}

static int barrier_setup(struct mp_barrier *b, unsigned parties, uint32_t placed) {
    if (parties == 0 || parties > BAR_COUNT_MASK)
        return BR__MISUSE(BR_EINVAL, "br_mp_barrier_init: parties 0 or above 2^24-1");
    memset(b, 0, sizeof *b);
    b->parties = parties;
    b->placed = placed;
    atomic_thread_fence(memory_order_release);
    b->magic = MAGIC_BARRIER;
    return 0;
}

int br_mp_barrier_init(br_mp_barrier *b, unsigned parties) {
    if (!b)
        return BR__MISUSE(BR_EINVAL, "br_mp_barrier_init: NULL barrier");
    return barrier_setup((struct mp_barrier *)b, parties, 0);
}

int br_mp_barrier_new(br_mp_barrier **out, unsigned parties) {
    if (!out)
        return BR__MISUSE(BR_EINVAL, "br_mp_barrier_new: NULL out");
    if (parties == 0 || parties > BAR_COUNT_MASK)
        return BR__MISUSE(BR_EINVAL, "br_mp_barrier_new: parties 0 or above 2^24-1");
    void *obj;
    int rc = place_new(&obj, "braid-mp-barrier");
    if (rc != 0)
        return rc;
    barrier_setup(obj, parties, PLACE_OFF);
    *out = obj;
    return 0;
}

static struct mp_barrier *barrier_ok(const br_mp_barrier *bp) {
    struct mp_barrier *b = (struct mp_barrier *)bp;
    return b && b->magic == MAGIC_BARRIER ? b : NULL;
}

int br_mp_barrier_destroy(br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    if (!b)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_barrier_destroy: NULL, destroyed or never initialised");
    uint32_t w = ld(&b->word);
    if (!(w & BAR_BROKEN) && (w & BAR_COUNT_MASK) != 0)
        return BR_EBUSY;
    b->magic = MAGIC_DEAD;
    return 0;
}

int br_mp_barrier_free(br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    struct place *p;
    if (!b || !(p = place_of(b, b->placed)))
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_barrier_free: NULL, or not made by br_mp_barrier_new");
    place_free(p);
    return 0;
}

int br_mp_barrier_wait(br_mp_barrier *bp, int64_t deadline) {
    struct mp_barrier *b = barrier_ok(bp);
    if (!b)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_barrier_wait: NULL, destroyed or never initialised");
    uint32_t w = ld(&b->word), idx, round;
    for (;;) {
        if (w & BAR_BROKEN)
            return BR_EBROKEN;
        idx = w & BAR_COUNT_MASK;
        round = bar_round(w);
        uint32_t next = idx + 1 == b->parties ? bar_with_round(round + 1) : w + 1;
        if (atomic_compare_exchange_weak(&b->word, &w, next)) {
            if (idx + 1 == b->parties) {
                br__futex_wake(&b->word, INT_MAX, true);
                return (int)idx;
            }
            break;
        }
    }
    for (;;) {
        w = ld(&b->word);
        uint32_t r = bar_round(w);
        if (r == ((round + 1) & BAR_ROUND_MASK))
            return (int)idx;
        if (r != round || (w & BAR_BROKEN))
            return BR_EBROKEN;
        int rc = br__futex_wait(&b->word, w, deadline, true);
        if (rc == BR_ETIMEDOUT) {
            /* Break the round, unless it tripped or broke meanwhile. */
            w = ld(&b->word);
            while (bar_round(w) == round && !(w & BAR_BROKEN)) {
                if (atomic_compare_exchange_weak(&b->word, &w, w | BAR_BROKEN)) {
                    br__futex_wake(&b->word, INT_MAX, true);
                    return BR_ETIMEDOUT;
                }
            }
        }
    }
}

int br_mp_barrier_abort(br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    if (!b)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_barrier_abort: NULL, destroyed or never initialised");
    atomic_fetch_or(&b->word, BAR_BROKEN);
    br__futex_wake(&b->word, INT_MAX, true);
    return 0;
}

int br_mp_barrier_reset(br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    if (!b)
        return BR__MISUSE(BR_EINVAL,
                          "br_mp_barrier_reset: NULL, destroyed or never initialised");
    uint32_t w = ld(&b->word), next;
    do {
        uint32_t r = bar_round(w);
        /* Waiters of this round (or a broken one) must see a change of round. */
        next = bar_with_round((w & (BAR_COUNT_MASK | BAR_BROKEN)) ? r + 2 : r);
    } while (!atomic_compare_exchange_weak(&b->word, &w, next));
    br__futex_wake(&b->word, INT_MAX, true);
    return 0;
}

bool br_mp_barrier_broken(const br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    return b && (ld(&b->word) & BAR_BROKEN);
}

unsigned br_mp_barrier_parties(const br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    return b ? b->parties : 0;
}

unsigned br_mp_barrier_n_waiting(const br_mp_barrier *bp) {
    struct mp_barrier *b = barrier_ok(bp);
    if (!b)
        return 0;
    uint32_t w = ld(&b->word);
    return (w & BAR_BROKEN) ? 0 : (w & BAR_COUNT_MASK);
}

/* --- placement ------------------------------------------------------------------------ */

/* Any object: every kind starts with magic and placed. */
struct mp_head {
    uint32_t magic;
    uint32_t placed;
};

static bool live_magic(uint32_t m) {
    return m == MAGIC_LOCK || m == MAGIC_RLOCK || m == MAGIC_COND || m == MAGIC_SEM ||
           m == MAGIC_EVENT || m == MAGIC_BARRIER;
}

int br_mp_locate(const void *obj, int *fd, size_t *size, size_t *offset) {
    const struct mp_head *h = obj;
    struct place *p;
    if (!h || !live_magic(h->magic) || !(p = place_of(h, h->placed)))
        return BR__MISUSE(BR_EINVAL, "br_mp_locate: NULL, or not made by a br_mp_*_new");
    if (fd)
        *fd = place_fd(p);
    if (size)
        *size = (size_t)p->size;
    if (offset)
        *offset = p->offset;
    return 0;
}

int br_mp_attach(void **obj, int fd, size_t size, size_t offset) {
    if (!obj || fd < 0 || size == 0 || offset != PLACE_OFF || size < PLACE_OFF + 64)
        return BR__MISUSE(BR_EINVAL, "br_mp_attach: NULL obj, bad fd, size or offset");
    br__shm s;
    int rc = br__shm_attach(&s, fd, size);
    if (rc != 0)
        return rc;
    br__shm_drop_fd(&s);
    struct place *p = s.base;
    const struct mp_head *h = (const struct mp_head *)((char *)s.base + offset);
    if (p->magic != PLACE_MAGIC || p->size != size || p->offset != offset ||
        !live_magic(h->magic) || h->placed != offset) {
        br__shm_close(&s);
        return BR__MISUSE(BR_EINVAL, "br_mp_attach: no braid object there");
    }
    *obj = (char *)s.base + offset;
    return 0;
}
