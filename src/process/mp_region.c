/* The growable shared region and the process-shared lock (process/mp_region.h, whose
 * design note holds the rules: one publishing store per change, repair on EOWNERDEAD).
 *
 * Size classes: block sizes run 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, ... (four
 * steps per doubling, so at most a quarter is wasted), each block an 8-byte header
 * (BLK_MAGIC << 8 | class) followed by its usable bytes. A free block's first usable
 * word links it to the next free block of its class. */
#include "process/mp_region.h"
#include "platform/platform.h"

#include <braid/mp_shared.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REGION_MAGIC 0x6272616964726731ull /* "braidrg1" */
#define BLK_MAGIC 0x6d70626bull            /* "mpbk" */
#define PAGE 4096u

/* --- the lock -------------------------------------------------------------------- */

/* The lock is the platform's robust mutex (platform.h, "robust"), the one br_mp_lock
 * sits on too: error-checking, so a holder taking it again (an _update callback calling
 * back) gets BR_EDEADLK. */
int br__mplock_init(br__mplock *l) { return br__robust_init(&l->m); }

/* A taken lock is usually let go within a few dozen instructions (one dict operation),
 * far sooner than a futex sleep and wake: spin for it first, the spin budget of the
 * thread parker (never measured from here: these paths may run just before a fork),
 * watching the lock word and trying only when it reads free. br__robust_lock's code,
 * or BR_ETIMEDOUT when the spin ran out. */
static int spin_for(br__mplock *l, int64_t deadline) {
    int64_t budget = br__calib_peek(BR__CALIB_SPIN);
    if (budget <= 0 || br__tls_v.parker != NULL)
        return BR_ETIMEDOUT;
    int64_t until = br_deadline_min(br_now() + budget, deadline);
    for (unsigned i = 1;; i++) {
        br__cpu_relax();
        if (!br__robust_locked(&l->m)) {
            int rc = br__robust_lock(&l->m, BR_NOWAIT);
            if (rc != BR_ETIMEDOUT)
                return rc;
        }
        if (br__spin_over(i, until))
            return BR_ETIMEDOUT;
    }
}

int br__mplock_lock(br__mplock *l, int64_t deadline) {
    int rc = br__robust_lock(&l->m, BR_NOWAIT);
    if (rc == BR_ETIMEDOUT && !br__deadline_passed(deadline)) {
        rc = spin_for(l, deadline);
        if (rc == BR_ETIMEDOUT && !br__deadline_passed(deadline))
            rc = br__robust_lock(&l->m, deadline);
    }
    switch (rc) {
    case BR_EOWNERDEAD:
        return BR__MPLOCK_OWNERDEAD;
    case BR_ENOTRECOVERABLE:
        return BR_EBROKEN;
    default:
        return rc;
    }
}

void br__mplock_consistent(br__mplock *l) { br__robust_consistent(&l->m); }

void br__mplock_unlock(br__mplock *l) { br__robust_unlock(&l->m); }

/* --- size classes ------------------------------------------------------------------ */

static uint64_t class_size(unsigned c) {
    return (uint64_t)(4 + (c & 3)) << ((c >> 2) + 3);
}

/* The smallest class of at least n bytes (header included), or BR__MPR_NCLASS. */
static unsigned class_of(uint64_t n) {
    if (n <= 32)
        return 0;
    unsigned s = 63u - (unsigned)__builtin_clzll(n - 1); /* n - 1 < 2^(s+1) */
    unsigned shift = s - 2;
    uint64_t m = ((n - 1) >> shift) + 1; /* 5..8 */
    if (m == 8) {
        m = 4;
        shift++;
    }
    unsigned c = ((shift - 3) << 2) + (unsigned)(m - 4);
    return c < BR__MPR_NCLASS ? c : BR__MPR_NCLASS;
}

static uint64_t blk_hdr(unsigned c) {
    return BLK_MAGIC << 8 | c;
}

/* --- mapping ------------------------------------------------------------------------ */

static int map_shared(int fd, size_t size, void **out) {
    if (br__alloc_should_fail())
        return BR_ENOMEM;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return errno == ENOMEM ? BR_ENOMEM : -errno;
    *out = p;
    return 0;
}

static void clear(br__mpr *r) {
    r->h = NULL;
    r->base = NULL;
    r->mapped = 0;
    r->fd = -1;
}

void br__mpr_close(br__mpr *r) {
    if (!r)
        return;
    if (r->base)
        munmap(r->base, r->mapped);
    if (r->h)
        munmap(r->h, BR__MPR_HDR);
    if (r->fd >= 0)
        close(r->fd);
    clear(r);
}

/* Maps the header page and `size` bytes of the file. */
static int map_both(br__mpr *r, size_t size) {
    void *h = NULL, *b = NULL;
    int rc = map_shared(r->fd, BR__MPR_HDR, &h);
    if (rc)
        return rc;
    rc = map_shared(r->fd, size, &b);
    if (rc) {
        munmap(h, BR__MPR_HDR);
        return rc;
    }
    r->h = h;
    r->base = b;
    r->mapped = size;
    return 0;
}

int br__mpr_new(br__mpr *r, uint32_t kind, size_t initial, const char *label) {
    clear(r);
    if (initial < 2 * PAGE)
        initial = 2 * PAGE;
    if (initial > BR_MP_MAX_BYTES)
        return BR_ENOMEM;
    initial = (initial + PAGE - 1) & ~(size_t)(PAGE - 1);
    int fd = br__shm_fd(label, initial);
    if (fd < 0)
        return fd;
    r->fd = fd;
    int rc = map_both(r, initial);
    if (rc) {
        br__mpr_close(r);
        return rc;
    }
    br__mpr_hdr *h = r->h;
    rc = br__mplock_init(&h->lock);
    if (rc) {
        br__mpr_close(r);
        return rc;
    }
    h->kind = kind;
    h->size = initial;
    h->top = BR__MPR_HDR;
    BR__MPR_PUBLISH(&h->magic, REGION_MAGIC);
    return 0;
}

int br__mpr_attach(br__mpr *r, int fd, uint32_t kind) {
    clear(r);
    if (fd < 0)
        return BR_EINVAL;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)(2 * PAGE))
        return BR_EINVAL;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        return -errno;
    r->fd = dup;
    void *h = NULL;
    int rc = map_shared(dup, BR__MPR_HDR, &h);
    if (rc) {
        br__mpr_close(r);
        return rc;
    }
    r->h = h;
    if (__atomic_load_n(&r->h->magic, __ATOMIC_ACQUIRE) != REGION_MAGIC ||
        r->h->kind != kind) {
        br__mpr_close(r);
        return BR_EINVAL;
    }
    /* Map what the file holds now; br__mpr_lock catches up with h->size later. */
    size_t size = (size_t)st.st_size & ~(size_t)(PAGE - 1);
    void *b = NULL;
    rc = map_shared(dup, size, &b);
    if (rc) {
        br__mpr_close(r);
        return rc;
    }
    r->base = b;
    r->mapped = size;
    return 0;
}

/* Brings the mapping to h->size (lock held). */
static int remap(br__mpr *r) {
    uint64_t size = r->h->size;
    if (size == r->mapped)
        return 0;
    if (size < 2 * PAGE || size > BR_MP_MAX_BYTES || size % PAGE)
        return BR_EBROKEN;
    void *b = NULL;
    int rc = map_shared(r->fd, (size_t)size, &b);
    if (rc)
        return rc;
    munmap(r->base, r->mapped);
    r->base = b;
    r->mapped = (size_t)size;
    return 0;
}

/* --- repair -------------------------------------------------------------------------- */

bool br__mpr_valid(br__mpr *r, uint64_t off, uint64_t need) {
    uint64_t top = r->h->top;
    if (off < BR__MPR_HDR + 8 || off >= top || off % 8)
        return false;
    uint64_t hdr = *(uint64_t *)br__mpr_at(r, off - 8);
    if (hdr >> 8 != BLK_MAGIC || (hdr & 0xff) >= BR__MPR_NCLASS)
        return false;
    uint64_t sz = class_size((unsigned)(hdr & 0xff));
    return off - 8 + sz <= top && sz - 8 >= need;
}

static void repair_region(br__mpr *r) {
    br__mpr_hdr *h = r->h;
    if (h->top < BR__MPR_HDR || h->top > h->size || h->top % 8)
        h->top = h->size; /* give up the tail rather than trust it */
    uint64_t max_steps = h->size / 32;
    for (unsigned c = 0; c < BR__MPR_NCLASS; c++) {
        uint64_t *link = &h->free[c];
        uint64_t steps = 0;
        while (*link) {
            uint64_t off = *link;
            if (++steps > max_steps || !br__mpr_valid(r, off, 8) ||
                (*(uint64_t *)br__mpr_at(r, off - 8) & 0xff) != c) {
                BR__MPR_PUBLISH(link, 0); /* cut the list here: the rest leaks */
                break;
            }
            link = (uint64_t *)br__mpr_at(r, off);
        }
    }
}

/* --- locking ----------------------------------------------------------------------------
 */

int br__mpr_lock(br__mpr *r, br__mpr_repair_fn repair) {
    int rc = br__mplock_lock(&r->h->lock, BR_FOREVER);
    if (rc < 0)
        return rc;
    if (rc == BR__MPLOCK_OWNERDEAD) {
        BR__MPR_PUBLISH(&r->h->dirty, 1u);
        br__mplock_consistent(&r->h->lock);
    }
    rc = remap(r);
    if (rc) {
        br__mplock_unlock(&r->h->lock);
        return rc;
    }
    if (r->h->dirty) {
        repair_region(r);
        if (repair)
            repair(r);
        BR__MPR_PUBLISH(&r->h->dirty, 0u);
    }
    return 0;
}

void br__mpr_unlock(br__mpr *r) {
    br__mplock_unlock(&r->h->lock);
}

/* --- the allocator -----------------------------------------------------------------------
 */

static int grow(br__mpr *r, uint64_t need) {
    br__mpr_hdr *h = r->h;
    uint64_t old = h->size;
    if (need > BR_MP_MAX_BYTES)
        return BR_ENOMEM;
    uint64_t size = old * 2;
    if (size < need)
        size = need;
    if (size > BR_MP_MAX_BYTES)
        size = BR_MP_MAX_BYTES;
    size = (size + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    if (br__alloc_should_fail())
        return BR_ENOMEM;
    while (ftruncate(r->fd, (off_t)size) != 0) {
        if (errno != EINTR)
            return errno == EFBIG || errno == ENOSPC ? BR_ENOMEM : -errno;
    }
    int e;
    do
        e = posix_fallocate(r->fd, (off_t)old, (off_t)(size - old));
    while (e == EINTR);
    if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {
        (void)!ftruncate(r->fd, (off_t)old); /* nobody maps past old */
        return BR_ENOMEM;
    }
    void *b = NULL;
    int rc = map_shared(r->fd, (size_t)size, &b);
    if (rc)
        return rc; /* the file is larger than h->size: harmless, the next grow reuses it */
    munmap(r->base, r->mapped);
    r->base = b;
    r->mapped = (size_t)size;
    BR__MPR_PUBLISH(&h->size, size);
    return 0;
}

int br__mpr_alloc(br__mpr *r, size_t n, uint64_t *off) {
    br__mpr_hdr *h = r->h;
    if (n > BR_MP_MAX_BYTES)
        return BR_ENOMEM;
    unsigned c = class_of((uint64_t)n + 8);
    if (c >= BR__MPR_NCLASS)
        return BR_ENOMEM;
    uint64_t o = h->free[c];
    if (o) {
        BR__MPR_PUBLISH(&h->free[c], *(uint64_t *)br__mpr_at(r, o));
        *off = o;
        return 0;
    }
    uint64_t sz = class_size(c);
    uint64_t top = h->top;
    if (top + sz > h->size) {
        int rc = grow(r, top + sz);
        if (rc)
            return rc;
    }
    *(uint64_t *)br__mpr_at(r, top) = blk_hdr(c);
    BR__MPR_PUBLISH(&h->top, top + sz);
    *off = top + 8;
    return 0;
}

void br__mpr_free(br__mpr *r, uint64_t off) {
    br__mpr_hdr *h = r->h;
    unsigned c = (unsigned)(*(uint64_t *)br__mpr_at(r, off - 8) & 0xff);
    *(uint64_t *)br__mpr_at(r, off) = h->free[c];
    BR__MPR_PUBLISH(&h->free[c], off);
}

size_t br__mpr_block_size(br__mpr *r, uint64_t off) {
    unsigned c = (unsigned)(*(uint64_t *)br__mpr_at(r, off - 8) & 0xff);
    return (size_t)class_size(c) - 8;
}
