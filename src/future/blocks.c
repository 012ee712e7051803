/* The future blocks' shared layer: slabs, behind the per-thread caches of future.c.
 *
 * Design notes.
 *
 * Why slabs. A future must stay allocated until its last release, so a program that
 * keeps a million futures (Python's `futs = [ex.submit(f) for ...]`) has a million
 * blocks alive: they can't come from a bounded cache, and one malloc each (plus its
 * first-touch page fault) was most of a submit's cost. Here blocks come from slabs,
 * SLAB-byte regions mapped SLAB-aligned, so the slab of a block is its address rounded
 * down: slot 0 holds the slab's header, the rest are blocks.
 *
 * Fresh memory is the cost to design for. What a future costs is mostly the first
 * touch of its memory: on some virtual machines a demand fault of a fresh 4 KiB page
 * costs about 10 us (the host backs the page then), which is 0.3 us per 128-byte
 * block, several times the rest of a submit. Memory that stayed mapped costs nothing
 * to reuse, and memory given back with MADV_DONTNEED costs the full fault again. Two
 * rules follow:
 *  - Slabs are 2 MiB, one huge page: each is marked MADV_HUGEPAGE, so where
 *    transparent huge pages are enabled ("always" or "madvise") one fault maps the
 *    whole slab instead of 512, and a huge page that an earlier process freed is often
 *    reused already backed. The price: the first future commits 2 MiB. (The first
 *    slab used to stay in 4 KiB pages to spare small programs that; its 512 faults
 *    were a third of W3's 100,000 submits on the EPYC, and W3 ran 2.9x faster without
 *    them.) Where THP is off, a slab is simply 4 KiB pages touched in order.
 *  - Freed memory is kept for reuse, and given back only after it went unused for a
 *    while (the decay, below): a program that submits, waits and releases in rounds
 *    touches no fresh page after its first round, across pools and executors, since
 *    the slabs are the process's, not a pool's.
 *
 * Carving. A slab's blocks are carved in address order, a chain of BATCH at a time
 * (the carving happens outside the lock: the lock only reserves the range), so fresh
 * memory is touched sequentially. Blocks a thread's cache gives back are pushed on
 * their own slab's free list; a slab with free blocks is on the `partial` list. A
 * thread that needs blocks takes whole free lists of partial slabs (no walking: each
 * list knows its tail) until it has BATCH or more, so recycled memory is used before
 * fresh memory is touched; only when no slab has a free block does it carve.
 *
 * Decay. A slab whose blocks are all carved and all back is empty; it stays on
 * `partial` (it is recycled memory like any other) and also joins `empties`, newest
 * first, stamped with the time it became empty. Every put (once per chain of BATCH
 * frees) looks at the oldest empty slab: once it has been empty for the decay (10 s by
 * default, as jemalloc's dirty_decay_ms; the environment variable
 * BRAID_FUTURE_DECAY_MS sets it, 0 gives memory back at once), its memory goes back to
 * the kernel (madvise DONTNEED: the pages are freed, the address range stays) and the
 * slab joins the `bare` list, to be carved again from scratch before any new slab is
 * mapped (a put reads the time before it takes the lock, so two puts may stamp out of
 * order: a slab then goes back a little later than its decay). Before the DONTNEED a
 * slab is marked MADV_NOHUGEPAGE: the bare list is linked through the slab's header,
 * and with the huge-page mark the header's write after the DONTNEED faulted a whole
 * 2 MiB page back in, so a "bare" slab gave back nothing (until 2026-12-08: RssAnon
 * stayed 12 MiB up after a burst of six slabs with decay 0; 2 MiB, the floor, since).
 * So a bare slab is carved again in small pages. KEEP_FLOOR empty slabs
 * are never given back. A slab taken for reuse leaves
 * `empties`. So the memory held beyond what is alive is the thread caches (at most two
 * lists each, the longest a slab's worth), the free blocks of partially used slabs
 * (the first to be reused), and the empty slabs of the last decay period; a program
 * that frees a burst and then makes no future at all keeps that memory until its next
 * put. Address space, not memory, stays at the high-water mark; a stale handle into a
 * bare slab reads zeros and fails the magic check like any other.
 *
 * Out of memory: a slab that can't be mapped makes the get fail (NULL: BR_ENOMEM to the
 * caller); nothing is held, and the next get tries again. Mapping a slab counts as one
 * allocation of core/alloc.c's seam, so tests can fail it.
 *
 * Growing ahead. What must be touched is best touched off the critical path: when a
 * get starts carving a slab it adds one to `grow_wanted` (at most SPARE_MAX), and a
 * pool worker calls br__blocks_grow_ahead when it runs out of work (before it spins)
 * and, when `grow_wanted` isn't 0 (one relaxed load), after each task; the call maps a
 * slab (or takes a bare one), faults it in outside the lock and puts it on `spare`,
 * one per wanted slab, at most SPARE_MAX. The next get that needs a slab takes a spare
 * before any bare or new one; a get that finds none doesn't wait for one, it maps its
 * own. So a submitting thread that outruns the recycling finds its next slab ready,
 * paid for by a worker. (Until 2026-12-08 only the idle path grew, and a submitter
 * that outruns the workers keeps them busy: in W3 submit-2 they went idle about once
 * per 3 ms while a slab lasted 0.5 ms, and the submitter faulted 4-7 of 7 slabs
 * itself, 58-60 of 62 in N2's cold million. The task that follows a growth waits for
 * it, up to a few ms; the other workers can steal meanwhile.) A grower declines when
 * a slab's worth of blocks is free already (those come first; the next slab is at
 * least that far off); it used to decline when any slab had a free block, which a
 * program that releases some futures while it grows always has. Spares count as
 * mapped, not as slabs:
 * a program whose futures stop growing holds at most SPARE_MAX slabs beyond them
 * (growers in flight count against SPARE_MAX too). A grower's mapping doesn't go
 * through the allocation seam: a test's injected failures are the submitter's.
 *
 * Fork. After a fork every slab page is shared copy-on-write with the child, and the
 * parent's first write to each costs a copy and a TLB shootdown on every CPU running
 * the parent (a process pool forks its workers, then makes a future per task: that
 * was most of the first 10,000 submits' page faults). Memory nobody holds yet needn't
 * be shared. The spares are whole slabs nobody uses: the child unmaps its copies
 * (br__blocks_fork_child), and the parent's stay warm and its own. The carving slab's
 * uncarved tail shares a huge page with blocks the child may hold, so the child can't
 * let go of it: the parent drops its pages of the tail instead (br__blocks_fork_parent,
 * MADV_DONTNEED; the child keeps its copies), and carves fresh pages there rather than
 * copy shared ones. Both run under the lock held across the fork.
 *
 * Locking: one br__ilock, `lock`, guards every slab header and the lists; it is a leaf
 * (no other lock is taken under it) and is never held across a syscall, except the
 * fork: future.c holds it across fork(), and the parent's side gives back memory
 * (above) before it releases it. Nor across a slab's first fault: a fresh slab's
 * header is written (its huge page faulted in: 0.2 to 14 ms on the EPYC guest) before
 * the lock is taken to install it, and a bare one's right after its DONTNEED.
 *
 * ASan builds take blocks from br__malloc one at a time instead (the variant at the
 * end, with a bounded pool of chains in front), so that LeakSanitizer still sees every
 * future as an allocation of its own and reports the leaked ones, and so that the
 * out-of-memory tests reach the future constructors.
 */
#include "future/private.h"

#include <stdlib.h>
#include <string.h>

#if defined(BRAID_ASAN) || defined(__SANITIZE_ADDRESS__)
#  define BLOCKS_MALLOC 1
#  include <sanitizer/asan_interface.h>
#endif

static br__ilock lock;

/* Slabs started since: grow that many ahead (element 0; always 0 in ASan builds). Read
 * by every pool worker after every task (br__blocks_growth_wanted), written once per
 * slab: a whole line, so that the lists' churn under the lock doesn't make those reads
 * miss. */
_Alignas(BR__CACHELINE) _Atomic int br__blocks_grow_wanted[BR__CACHELINE / sizeof(int)];

void br__blocks_lock(void) { br__ilock_lock(&lock); }
void br__blocks_unlock(void) { br__ilock_unlock(&lock); }

#if !defined(BLOCKS_MALLOC)

#  include <sys/mman.h>

enum {
    SLAB = 2 * 1024 * 1024,     /* bytes per slab, and its alignment: one huge page */
    BLOCK = sizeof(br_future),  /* 128 */
    SLOTS = SLAB / BLOCK,       /* slot 0 is the header */
    CAP = SLOTS - 1,            /* blocks per slab */
    BATCH = BR__BLOCK_BATCH,
    KEEP_FLOOR = 1,             /* empty slabs never given back (2 MiB) */
    SPARE_MAX = 2               /* slabs grown ahead at most (4 MiB) */
};

#  define DECAY_DEFAULT_NS (10 * (int64_t)1000000000)

typedef struct slab {
    struct slab *next, *prev;   /* on partial, or next on bare */
    struct slab *enext, *eprev; /* on empties */
    br_future *free_head, *free_tail;
    int64_t empty_since;        /* on empties: when it became empty (br_now) */
    uint32_t nfree;             /* on the free list */
    uint32_t carved;            /* blocks handed out by carving so far (CAP: all) */
    bool on_partial;
    bool on_empties;
} slab;

_Static_assert(sizeof(slab) <= BLOCK, "the header fits slot 0");

static slab *partial;  /* slabs with free blocks, most recently returned to first */
static slab *carving;  /* the slab being carved (carved < CAP), or NULL */
static slab *bare;     /* slabs whose memory went back to the kernel */
static slab *empties_new, *empties_old; /* empty slabs, newest first */
static slab *spare;    /* slabs grown ahead of need (their pages touched), via next */
static size_t nspare, ngrowing; /* spares ready, and being grown outside the lock */
#  define grow_wanted br__blocks_grow_wanted[0]
static size_t nslabs, nempty, nbare, nfree_total, nmapped;
/* For the tests: spares grown, spares taken by a get, growths wanted but declined, and
 * slabs a get started from untouched memory (new or bare) on its own thread. */
static size_t ngrown, nspare_taken, ngrow_declined, nget_started;
static int64_t decay_ns = -1; /* -1: not read from the environment yet */

static inline slab *slab_of(const br_future *b) {
    return (slab *)((uintptr_t)b & ~(uintptr_t)(SLAB - 1));
}

static inline br_future *block_at(slab *s, uint32_t i) {
    return (br_future *)(void *)((char *)s + (size_t)(i + 1) * BLOCK);
}

static void partial_unlink(slab *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        partial = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->on_partial = false;
}

static void empties_unlink(slab *s) {
    if (s->eprev)
        s->eprev->enext = s->enext;
    else
        empties_new = s->enext;
    if (s->enext)
        s->enext->eprev = s->eprev;
    else
        empties_old = s->eprev;
    s->enext = s->eprev = NULL;
    s->on_empties = false;
    nempty--;
}

static void empties_push(slab *s, int64_t now) {
    s->empty_since = now;
    s->eprev = NULL;
    s->enext = empties_new;
    if (empties_new)
        empties_new->eprev = s;
    else
        empties_old = s;
    empties_new = s;
    s->on_empties = true;
    nempty++;
}

/* The decay in ns, read from BRAID_FUTURE_DECAY_MS the first time (under the lock). A
 * value that isn't a whole number of milliseconds >= 0 leaves the default. */
static int64_t decay(void) {
    if (BR__UNLIKELY(decay_ns < 0)) {
        decay_ns = DECAY_DEFAULT_NS;
        const char *e = getenv("BRAID_FUTURE_DECAY_MS");
        if (e != NULL && *e != '\0') {
            char *end;
            long long ms = strtoll(e, &end, 10);
            if (*end == '\0' && ms >= 0 && ms <= INT64_MAX / 1000000)
                decay_ns = (int64_t)ms * 1000000;
        }
    }
    return decay_ns;
}

int64_t br__blocks_set_decay(int64_t ns) {
    br__ilock_lock(&lock);
    int64_t old = decay();
    decay_ns = ns < 0 ? DECAY_DEFAULT_NS : ns;
    br__ilock_unlock(&lock);
    return old;
}

/* A fresh SLAB-aligned slab (mapped outside the lock). NULL if out of memory. */
static slab *slab_map(bool seam) {
    if (seam && br__alloc_should_fail()) /* tests: the out-of-memory paths */
        return NULL;
    return br__map_aligned(SLAB);
}

static void slab_reset(slab *s) {
    memset(s, 0, sizeof *s);
}

/* A slab was started: one more to grow ahead (at most SPARE_MAX pending). */
static void want_growth(void) {
    int want = atomic_load_explicit(&grow_wanted, memory_order_relaxed);
    while (want < SPARE_MAX &&
           !atomic_compare_exchange_weak_explicit(&grow_wanted, &want, want + 1,
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Links blocks [from, from + n) of s into a chain, each marked dead. */
static br_future *carve(slab *s, uint32_t from, uint32_t n) {
    br_future *head = block_at(s, from);
    for (uint32_t i = 0; i < n; i++) {
        br_future *b = block_at(s, from + i);
        b->u.cache_next = i + 1 < n ? block_at(s, from + i + 1) : NULL;
        b->magic = BR__FUTURE_DEAD;
    }
    return head;
}

br_future *br__blocks_get(uint32_t *n) {
    br__ilock_lock(&lock);
    if (partial != NULL) {
        /* Recycled blocks first: whole free lists, until BATCH or more. */
        br_future *head = NULL, *tail = NULL;
        uint32_t total = 0;
        while (partial != NULL && total < BATCH) {
            slab *s = partial;
            partial_unlink(s);
            if (tail)
                tail->u.cache_next = s->free_head;
            else
                head = s->free_head;
            tail = s->free_tail;
            total += s->nfree;
            nfree_total -= s->nfree;
            s->free_head = s->free_tail = NULL;
            s->nfree = 0;
            if (s->on_empties)
                empties_unlink(s);
        }
        br__ilock_unlock(&lock);
        *n = total;
        return head;
    }
    slab *fresh = NULL;
    while (carving == NULL) {
        if (spare != NULL) { /* grown ahead by an idle thread: already touched */
            carving = spare;
            spare = spare->next;
            nspare--;
            nspare_taken++;
            carving->next = NULL;
            nslabs++;
            want_growth();
            break;
        }
        if (bare != NULL) { /* address space we have: its pages fault in again */
            carving = bare;
            bare = bare->next;
            nbare--;
            slab_reset(carving);
            nslabs++;
            nget_started++;
            want_growth();
            break;
        }
        br__ilock_unlock(&lock);
        if (fresh == NULL) {
            if ((fresh = slab_map(true)) == NULL)
                return NULL;
            /* The slab's first fault (one huge page: up to milliseconds on a guest
             * whose host backs it then) while it is nobody's, not under the lock. */
            slab_reset(fresh);
        }
        br__ilock_lock(&lock);
        if (carving == NULL && partial == NULL) {
            carving = fresh;
            fresh = NULL;
            nslabs++;
            nmapped++;
            nget_started++;
            want_growth();
        } else if (partial != NULL) {
            br__ilock_unlock(&lock);
            munmap(fresh, SLAB); /* someone returned blocks meanwhile: rare */
            return br__blocks_get(n);
        }
    }
    slab *s = carving;
    uint32_t from = s->carved;
    uint32_t k = CAP - from < BATCH ? CAP - from : BATCH;
    s->carved += k;
    if (s->carved == CAP)
        carving = NULL;
    br__ilock_unlock(&lock);
    if (fresh)
        munmap(fresh, SLAB); /* raced with another thread's new slab */
    *n = k;
    return carve(s, from, k); /* reserved: nobody else touches these blocks */
}

#  ifndef MADV_POPULATE_WRITE
#    define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#  endif

/* Faults in every page of s, as a write would. */
static void slab_touch(slab *s) {
    if (madvise(s, SLAB, MADV_POPULATE_WRITE) == 0)
        return;
    for (size_t off = 0; off < SLAB; off += 4096) /* older kernels: touch each page */
        ((volatile char *)s)[off] = 0;
}

bool br__blocks_grow_ahead(void) {
    int want = atomic_load_explicit(&grow_wanted, memory_order_relaxed);
    do {
        if (want == 0)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&grow_wanted, &want, want - 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    br__ilock_lock(&lock);
    /* Growers in flight count: two idle workers may grow at once. Recycled memory
     * first, but only a slab's worth of it puts the next slab off: a few free blocks
     * on `partial` (a thread cache's chain, while the program still grows) did. */
    if (nspare + ngrowing >= SPARE_MAX || nfree_total >= CAP) {
        ngrow_declined++;
        br__ilock_unlock(&lock);
        return false;
    }
    ngrowing++;
    slab *s = bare;
    if (s != NULL) {
        bare = s->next;
        nbare--;
    }
    br__ilock_unlock(&lock);
    bool mapped = false;
    /* Not through the allocation seam: an idle worker's growth must not use up the
     * failures a test arranged for the submitting thread. */
    if (s == NULL && (s = slab_map(false)) != NULL)
        mapped = true;
    if (s != NULL) {
        slab_touch(s);
        slab_reset(s);
    }
    br__ilock_lock(&lock);
    ngrowing--;
    if (s != NULL) {
        nmapped += mapped;
        ngrown++;
        s->next = spare;
        spare = s;
        nspare++;
    }
    br__ilock_unlock(&lock);
    return s != NULL;
}

/* Gives back the memory of empty slabs that decayed, oldest first, beyond KEEP_FLOOR.
 * Called and returns with the lock held; drops it around each madvise. */
static void trim_decayed(int64_t now) {
    while (nempty > KEEP_FLOOR) {
        slab *s = empties_old;
        int64_t d = decay();
        if (d > 0 && now - s->empty_since < d)
            return;
        /* DONTNEED under the lock would hold it across a syscall, so take the slab off
         * every list first: it is nobody's until it is on `bare`. */
        empties_unlink(s);
        partial_unlink(s);
        nfree_total -= CAP;
        nslabs--;
        br__ilock_unlock(&lock);
        /* Small pages first: the header written below would otherwise fault a whole
         * huge page back in, and the slab would give back nothing ("Decay"). */
#  ifdef MADV_NOHUGEPAGE
        (void)madvise(s, SLAB, MADV_NOHUGEPAGE);
#  endif
        (void)madvise(s, SLAB, MADV_DONTNEED);
        slab_reset(s); /* its fault (one small page) outside the lock */
        br__ilock_lock(&lock);
        s->next = bare;
        bare = s;
        nbare++;
    }
}

void br__blocks_put(br_future *chain, uint32_t n) {
    (void)n;
    int64_t now = br_now(); /* read before the lock: it is never held across a call out */
    br__ilock_lock(&lock);
    while (chain) {
        br_future *b = chain;
        chain = b->u.cache_next;
        slab *s = slab_of(b);
        b->u.cache_next = s->free_head;
        if (s->free_head == NULL)
            s->free_tail = b;
        s->free_head = b;
        s->nfree++;
        nfree_total++;
        if (!s->on_partial) {
            s->prev = NULL;
            s->next = partial;
            if (partial)
                partial->prev = s;
            partial = s;
            s->on_partial = true;
        }
        if (s->nfree == CAP) /* every block carved and back: empty */
            empties_push(s, now);
    }
    if (nempty > KEEP_FLOOR)
        trim_decayed(now);
    br__ilock_unlock(&lock);
}

/* The parent's side of a fork (future.c's hook, the lock held since the prepare; it
 * returns with the lock released): see "Fork" in the notes. */
void br__blocks_fork_parent(void) {
    if (carving != NULL) {
        uintptr_t from = (uintptr_t)block_at(carving, carving->carved);
        from = (from + 4095) & ~(uintptr_t)4095;
        uintptr_t end = (uintptr_t)carving + SLAB;
        if (from < end)
            (void)madvise((void *)from, end - from, MADV_DONTNEED);
    }
    br__ilock_unlock(&lock);
}

/* The child's side (the lock held since the prepare; returns with it released). */
void br__blocks_fork_child(void) {
    while (spare != NULL) {
        slab *s = spare;
        spare = s->next;
        nspare--;
        nmapped--;
        munmap(s, SLAB);
    }
    ngrowing = 0; /* the growers were the parent's threads */
    br__ilock_unlock(&lock);
}

void br__blocks_stats(struct br__blocks_stats *st) {
    br__ilock_lock(&lock);
    st->slabs = nslabs;
    st->empty = nempty;
    st->bare = nbare;
    st->free_blocks = nfree_total;
    st->slab_blocks = CAP;
    st->mapped = nmapped;
    st->carving = carving != NULL;
    st->uncarved = carving != NULL ? CAP - carving->carved : 0;
    st->spares = nspare;
    st->grown = ngrown;
    st->spares_taken = nspare_taken;
    st->grow_declined = ngrow_declined;
    st->get_started = nget_started;
    br__ilock_unlock(&lock);
}

#else /* BLOCKS_MALLOC */

/* One malloc per block, and a bounded pool of whole chains in front of malloc, as
 * braid had before slabs: a thread that churns through futures trades chains through
 * the pool and doesn't call malloc, which matters under ASan beyond speed: its
 * allocator isn't fork-safe, so a fork while another thread is inside malloc would
 * leave the child stuck in its next one. */
enum { POOL_CHAINS = 64 };

static struct {
    br_future *head;
    uint32_t len;
} pool[POOL_CHAINS];
static uint32_t npool;

static void poison(br_future *b) {
    ASAN_POISON_MEMORY_REGION((char *)b + offsetof(br_future, st),
                              sizeof *b - offsetof(br_future, st));
}

br_future *br__blocks_get(uint32_t *n) {
    br__ilock_lock(&lock);
    if (npool > 0) {
        npool--;
        br_future *c = pool[npool].head;
        *n = pool[npool].len;
        br__ilock_unlock(&lock);
        return c;
    }
    br__ilock_unlock(&lock);
    br_future *b = br__malloc(sizeof *b);
    if (b == NULL)
        return NULL;
    b->u.cache_next = NULL;
    b->magic = BR__FUTURE_DEAD;
    poison(b);
    *n = 1;
    return b;
}

void br__blocks_put(br_future *chain, uint32_t n) {
    br__ilock_lock(&lock);
    if (npool < POOL_CHAINS) {
        pool[npool].head = chain;
        pool[npool].len = n;
        npool++;
        chain = NULL;
    }
    br__ilock_unlock(&lock);
    while (chain) {
        br_future *b = chain;
        chain = b->u.cache_next;
        ASAN_UNPOISON_MEMORY_REGION((char *)b + offsetof(br_future, st),
                                    sizeof *b - offsetof(br_future, st));
        br__free(b);
    }
}

void br__blocks_stats(struct br__blocks_stats *st) { memset(st, 0, sizeof *st); }

void br__blocks_fork_parent(void) { br__ilock_unlock(&lock); }
void br__blocks_fork_child(void) { br__ilock_unlock(&lock); }

int64_t br__blocks_set_decay(int64_t ns) {
    (void)ns;
    return 0;
}

bool br__blocks_grow_ahead(void) { return false; }

#endif
