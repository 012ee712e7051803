/* aio/stack.c: coroutine stacks (the pooled allocator) and the stack overflow report.
 *
 * Design notes.
 *
 * Pools. One pool per stack size (stacks of one size are interchangeable), made on
 * first use and kept for the life of the process, all under one ilock (`lock`): a get
 * or a put is a few instructions under it. A pool hands out, in this order: the last
 * stack put back (its free list is a LIFO array, so a steady spawn/finish cycle reuses
 * the same warm stack and touches no fresh page), then the next slot of its current
 * batch, then a slot of a new batch. A batch is one mmap of many slots
 * (BATCH_BYTES / slot, at least one), PROT_READ|PROT_WRITE, MAP_NORESERVE: the kernel
 * commits a page only when a coroutine first touches it, so a stack costs what it
 * uses. Batches are never unmapped (their stacks may be anywhere on the free lists).
 *
 * A slot is [guard BR__STACK_GUARD][stack size]. The guard is enforced, per slot, the
 * first time the slot is carved:
 *  - MADV_GUARD_INSTALL (Linux 6.13): the kernel marks the range in the page tables;
 *    the mapping is not split, so a batch stays one VMA however many guards it holds.
 *  - else mprotect(PROT_NONE): each guard splits the batch's VMA (two more VMAs per
 *    slot), and vm.max_map_count (65530 by default) caps a process's VMAs. So at most
 *    `mprotect_budget` guards are made this way (an eighth of max_map_count, read once);
 *    past that a stack has no guard pages, only the canary, and the untouched guard
 *    range below it still keeps a small overrun off the neighbouring stack.
 *    Once the kernel is known to have it, a new batch gets all its guards at once:
 *    one process_madvise(2) over a vector of guard ranges (PIDFD_SELF_PROCESS, Linux
 *    6.14; one madvise per slot otherwise) instead of a call per slot as it is carved
 *    (~3.4 us a call against ~0.8 us a guard in vectors of 256 on the guest measured).
 *    `guarded` marks such a batch; a batch whose vector call fails gets them per slot.
 *  - `guard_mode` records which of the two this kernel has (probed on the first slot:
 *    madvise failing with EINVAL means the kernel lacks it, and a first guard that
 *    doesn't fault when read, guard_holds, that it only says it has it).
 * Guards. A stack with no guard pages has a canary instead: a word at its low end
 * (base), written at every get and checked by aio/coro.c at every suspend and finish
 * (br__stack_canary_ok), which catches an overrun after the fact. Guarded stacks have
 * none: a canary touches a page of its own at the far end of the stack (4 KiB of RSS
 * and a page fault per coroutine: 8.2 KiB each with it for 1,000,000 coroutines, 4.2
 * without, and a first touch cost ~25 us on the VM this was measured on), and behind
 * a guard it would only see a frame that jumps the whole guard and lands exactly on
 * it.
 *
 * Releasing. Free stacks beyond a bound per pool (`keep`: WARM_BYTES of stack, at least
 * WARM_KEEP stacks) have their pages released (MADV_DONTNEED, which keeps
 * MADV_GUARD_INSTALL guards): memory given back after a burst, none released in a
 * steady cycle. A release is made in batches, not at each put: once TRIM_BATCH stacks
 * beyond the bound are free and still warm, the oldest warm ones (the bottom of the LIFO
 * array, above the `ncold` entries released before) are released together, adjacent
 * slots merged into one madvise call over their whole range (guards included: the call
 * keeps MADV_GUARD_INSTALL guards, and zaps nothing in a PROT_NONE one). A call's cost
 * is mostly per call, not per page: on the 2-vCPU guest this was measured on, 48-115 us
 * for one call per stack against 2-6 us a page in one call over 50,000 of them; a
 * burst of 100,000 finished tasks made 100,000 calls (most of W8 gather's time) and now
 * makes a few hundred. Entries below `ncold` are released and stay so until taken (a
 * get lowers ncold when it pops below it); a taken cold stack faults its pages in again.
 * The release runs under `lock`: a get can't take a stack whose pages are being zapped.
 *
 * Overflow report. A fault in a guard is a SIGSEGV. The handler (installed once, with
 * SA_ONSTACK, the previous one saved) asks aio/coro.c which stack the coroutine running
 * on this thread uses (br__coro_running_stack, async-signal-safe: a TLS read); if the
 * address lies in that stack's guard or within its canary word, it prints the report
 * with write(2) and aborts (SIGABRT). Otherwise it hands the fault to the previous
 * handler (or, if that was the default, restores it and returns, so the fault repeats
 * and kills as it would have). The handler needs a stack of its own, since the
 * faulting one is full: each thread that resumes coroutines gets an alternate signal
 * stack (br__stack_thread_init) unless it has one already (a sanitizer's), unmapped at
 * the thread's exit by a key destructor.
 */
#include "aio/coro.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#if defined(__has_include)
#  if __has_include(<sanitizer/asan_interface.h>) && \
      (defined(__SANITIZE_ADDRESS__) || defined(BR__HAS_ASAN))
#    include <sanitizer/asan_interface.h>
#    define STACK_ASAN 1
#  endif
#endif
#if defined(__has_feature)
#  if __has_feature(address_sanitizer) && !defined(STACK_ASAN)
#    include <sanitizer/asan_interface.h>
#    define STACK_ASAN 1
#  endif
#endif

#ifndef MADV_GUARD_INSTALL
#  define MADV_GUARD_INSTALL 102
#endif
#define PIDFD_SELF_PROC (-10001) /* PIDFD_SELF_PROCESS, linux/pidfd.h (6.14) */

#define BATCH_BYTES ((size_t)64 << 20)
#define WARM_KEEP 64
#define WARM_BYTES ((size_t)64 << 20)
#define TRIM_BATCH 1024

typedef struct free_slot {
    char *base;
    int guard;
} free_slot;

typedef struct pool {
    struct pool *next;
    size_t size;        /* usable bytes per stack */
    char *fresh;        /* next uncarved slot of the current batch */
    size_t fresh_left;  /* slots left in it */
    bool guarded;       /* the current batch's guards are all made (MADV_GUARD_INSTALL) */
    free_slot *free;    /* LIFO */
    size_t nfree, cap;
    size_t ncold;       /* free[0, ncold) have had their pages released */
} pool;

static br__ilock lock;
static pool *pools;
static size_t n_mappings, n_live, n_free, n_released, n_release_calls;
static size_t mprotect_budget = (size_t)-1; /* -1: not read yet */
static int guard_mode = -1;                 /* -1: not probed; else BR__GUARD_* */

/* Read once, by whichever thread gets here first; two loops may make their first
 * coroutines at once, so the cache is an atomic (relaxed: every thread computes the
 * same value, and a racing second store writes it again). */
static size_t page_size(void) {
    static _Atomic size_t ps;
    size_t v = atomic_load_explicit(&ps, memory_order_relaxed);
    if (v == 0) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&ps, v, memory_order_relaxed);
    }
    return v;
}

static uint64_t canary_of(const char *base) {
    return BR__STACK_CANARY ^ (uint64_t)(uintptr_t)base;
}

static void read_budget(void) {
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        long v;
        if (fscanf(f, "%ld", &v) == 1 && v > 0)
            max = v;
        fclose(f);
    }
    mprotect_budget = (size_t)max / 8;
}

/* True if reading g faults: the kernel copies from it for a write(2) to a pipe, and
 * says EFAULT if it can't. For the first guard only: an emulator may accept
 * MADV_GUARD_INSTALL and enforce nothing (qemu-user 7.2 does). */
static bool guard_holds(const char *g) {
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return true; /* can't tell: trust the kernel's word */
    ssize_t r = write(p[1], g, 1);
    bool faults = r < 0 && errno == EFAULT;
    close(p[0]);
    close(p[1]);
    return faults;
}

/* Makes the guard below base; caller holds lock. Returns the kind made. */
static int make_guard(char *base) {
    char *g = base - BR__STACK_GUARD;
    if (guard_mode != BR__GUARD_MPROTECT) {
        if (madvise(g, BR__STACK_GUARD, MADV_GUARD_INSTALL) == 0) {
            if (guard_mode == -1 && !guard_holds(g)) {
                guard_mode = BR__GUARD_MPROTECT; /* accepted, not enforced: see above */
            } else {
                guard_mode = BR__GUARD_MADVISE;
                return BR__GUARD_MADVISE;
            }
        }
        if (errno == EINVAL || errno == ENOSYS || errno == EPERM)
            guard_mode = BR__GUARD_MPROTECT; /* this kernel lacks it: never ask again */
    }
    if (mprotect_budget == (size_t)-1)
        read_budget();
    if (mprotect_budget > 0 && mprotect(g, BR__STACK_GUARD, PROT_NONE) == 0) {
        mprotect_budget--;
        return BR__GUARD_MPROTECT;
    }
    return BR__GUARD_NONE;
}

/* All the guards of a new batch of n slots at m, in vectors; caller holds lock. True if
 * every one was made. */
static bool guard_batch(char *m, size_t n, size_t slot) {
#ifdef SYS_process_madvise
    static struct iovec iov[256];
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        for (; k < 256 && i + k < n; k++) {
            iov[k].iov_base = m + (i + k) * slot;
            iov[k].iov_len = BR__STACK_GUARD;
        }
        long r = syscall(SYS_process_madvise, PIDFD_SELF_PROC, iov, k, MADV_GUARD_INSTALL, 0);
        if (r != (long)(k * BR__STACK_GUARD))
            return false; /* the slots left (and any of these) get theirs one by one */
        i += k;
    }
    return true;
#else
    (void)m, (void)n, (void)slot;
    return false;
#endif
}

static pool *pool_find(size_t size) {
    for (pool *p = pools; p; p = p->next)
        if (p->size == size)
            return p;
    return NULL;
}

static pool *pool_for(size_t size) {
    pool *p = pool_find(size);
    if (p)
        return p;
    p = br__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->size = size;
    p->next = pools;
    pools = p;
    return p;
}

static int carve(pool *p, free_slot *out) {
    size_t slot = BR__STACK_GUARD + p->size;
    if (p->fresh_left == 0) {
        size_t n = BATCH_BYTES / slot;
        if (n == 0)
            n = 1;
        if (br__alloc_should_fail())
            return BR_ENOMEM;
        void *m = mmap(NULL, n * slot, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return BR_ENOMEM;
        n_mappings++;
        p->fresh = m;
        p->fresh_left = n;
        p->guarded = guard_mode == BR__GUARD_MADVISE && guard_batch(m, n, slot);
    }
    out->base = p->fresh + BR__STACK_GUARD;
    out->guard = p->guarded ? BR__GUARD_MADVISE : make_guard(out->base);
    p->fresh += slot;
    p->fresh_left--;
    return 0;
}

/* Releases the pages of free[ncold, upto), adjacent slots in one call; caller holds
 * lock. */
static void release_cold(pool *p, size_t upto) {
    size_t slot = BR__STACK_GUARD + p->size;
    char *lo = NULL, *hi = NULL; /* the run: bases [lo, hi), a slot apart */
    for (size_t i = p->ncold; i < upto; i++) {
        char *b = p->free[i].base;
        if (lo != NULL && b == hi) {
            hi += slot;
            continue;
        }
        if (lo != NULL && b + slot == lo) {
            lo = b;
            continue;
        }
        if (lo != NULL) {
            madvise(lo, (size_t)(hi - lo) - BR__STACK_GUARD, MADV_DONTNEED);
            n_release_calls++;
        }
        lo = b;
        hi = b + slot;
    }
    if (lo != NULL) {
        madvise(lo, (size_t)(hi - lo) - BR__STACK_GUARD, MADV_DONTNEED);
        n_release_calls++;
    }
    n_released += upto - p->ncold;
    p->ncold = upto;
}

int br__stack_get(br__stack *s, size_t size) {
    size_t ps = page_size();
    size = (size + ps - 1) & ~(ps - 1);
    free_slot fs;
    br__ilock_lock(&lock);
    pool *p = pool_for(size);
    if (!p) {
        br__ilock_unlock(&lock);
        return BR_ENOMEM;
    }
    if (p->nfree > 0) {
        fs = p->free[--p->nfree];
        n_free--;
        if (p->ncold > p->nfree)
            p->ncold = p->nfree;
    } else {
        int rc = carve(p, &fs);
        if (rc != 0) {
            br__ilock_unlock(&lock);
            return rc;
        }
    }
    n_live++;
    br__ilock_unlock(&lock);
    s->base = fs.base;
    s->size = size;
    s->guard = fs.guard;
#ifdef STACK_ASAN
    /* A reused stack may carry the poison of frames that never returned. */
    __asan_unpoison_memory_region(s->base, s->size);
#endif
    if (s->guard == BR__GUARD_NONE)
        *(uint64_t *)(void *)s->base = canary_of(s->base);
    return 0;
}

void br__stack_put(br__stack *s) {
    if (!s->base)
        return;
    br__ilock_lock(&lock);
    pool *p = pool_find(s->size);
    if (!p) { /* can't be: the stack came from it */
        br__ilock_unlock(&lock);
        return;
    }
    if (p->nfree == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        free_slot *nf = br__realloc(p->free, cap * sizeof *nf);
        if (!nf) {
            /* Can't remember it: leak the slot's address space, release its pages. */
            n_live--;
            br__ilock_unlock(&lock);
            madvise(s->base, s->size, MADV_DONTNEED);
            s->base = NULL;
            return;
        }
        p->free = nf;
        p->cap = cap;
    }
    p->free[p->nfree++] = (free_slot){s->base, s->guard};
    n_live--;
    n_free++;
    size_t keep = WARM_BYTES / p->size;
    if (keep < WARM_KEEP)
        keep = WARM_KEEP;
    if (p->nfree - p->ncold >= keep + TRIM_BATCH)
        release_cold(p, p->nfree - keep);
    br__ilock_unlock(&lock);
    s->base = NULL;
}

void br__stack_test_guard(int mode, size_t mprotect_left) {
    br__ilock_lock(&lock);
    guard_mode = mode;
    mprotect_budget = mprotect_left;
    for (pool *p = pools; p; p = p->next)
        p->guarded = false; /* the slots left are guarded the new way, one by one */
    br__ilock_unlock(&lock);
}

void br__stack_get_stats(br__stack_stats *out) {
    br__ilock_lock(&lock);
    out->mappings = n_mappings;
    out->live = n_live;
    out->free_cached = n_free;
    out->released = n_released;
    out->release_calls = n_release_calls;
    br__ilock_unlock(&lock);
}

/* --- the overflow report ------------------------------------------------------------ */

static struct sigaction prev_segv;
static _Atomic int handler_state; /* 0 none, 1 installing, 2 installed */
static pthread_key_t alt_key;

size_t br__fmt_u(char *out, uint64_t v, unsigned base) {
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

static size_t put_s(char *out, size_t at, size_t cap, const char *s) {
    while (*s && at < cap)
        out[at++] = *s++;
    return at;
}

_Noreturn void br__stack_overflow_report(const char *name, size_t size, const void *addr,
                                         bool canary) {
    char buf[256];
    size_t n = 0, cap = sizeof buf - 40;
    char num[24];
    n = put_s(buf, n, cap, "braid: coroutine '");
    n = put_s(buf, n, cap, name ? name : "?");
    n = put_s(buf, n, cap, "' overflowed its stack (");
    num[br__fmt_u(num, size >> 10, 10)] = 0;
    n = put_s(buf, n, cap, num);
    n = put_s(buf, n, cap, " KiB) at 0x");
    num[br__fmt_u(num, (uint64_t)(uintptr_t)addr, 16)] = 0;
    n = put_s(buf, n, cap, num);
    if (canary)
        n = put_s(buf, n, cap, " (canary)");
    buf[n++] = '\n';
    ssize_t w = write(2, buf, n);
    (void)w;
    abort();
}

static void on_segv(int sig, siginfo_t *si, void *uc) {
    br__stack s;
    const char *name;
    char nb[BR__CORO_NAME_MAX];
    int saved = errno;
    if (si && br__coro_running_stack(&s, &name, nb)) {
        char *a = si->si_addr;
        if (a >= s.base - BR__STACK_GUARD && a < s.base + sizeof(uint64_t))
            br__stack_overflow_report(name, s.size, a, false);
    }
    errno = saved;
    if (prev_segv.sa_flags & SA_SIGINFO) {
        if (prev_segv.sa_sigaction) {
            prev_segv.sa_sigaction(sig, si, uc);
            return;
        }
    } else if (prev_segv.sa_handler != SIG_DFL && prev_segv.sa_handler != SIG_IGN) {
        prev_segv.sa_handler(sig);
        return;
    }
    /* Default: restore it and return; the faulting instruction runs again and the
     * fault ends the process as it would have without us. */
    signal(SIGSEGV, SIG_DFL);
}

static void alt_free(void *p) {
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == p) {
        stack_t off = {.ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
    }
    munmap(p, (size_t)64 << 10);
}

static void install_handler(void) {
    int z = 0;
    if (!atomic_compare_exchange_strong(&handler_state, &z, 1)) {
        while (atomic_load(&handler_state) != 2)
            br__cpu_relax();
        return;
    }
    pthread_key_create(&alt_key, alt_free);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    atomic_store(&handler_state, 2);
}

void br__stack_thread_init(void) {
    if (atomic_load_explicit(&handler_state, memory_order_acquire) != 2)
        install_handler();
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return; /* the thread has one (a sanitizer's, or the program's) */
    size_t sz = (size_t)64 << 10;
    void *m = mmap(NULL, sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return; /* no report on overflow then, only the plain SIGSEGV */
    stack_t st = {.ss_sp = m, .ss_size = sz, .ss_flags = 0};
    if (sigaltstack(&st, NULL) != 0) {
        munmap(m, sz);
        return;
    }
    pthread_setspecific(alt_key, m);
}
