/* The allocation seam (core/lib.h): every library allocation comes through here,
 * so that tests can fail the Nth one and walk every BR_ENOMEM path. The counter is one
 * relaxed atomic per allocation; the failure check reads a second word that is
 * negative (never fail) outside such tests. */
#include "core/lib.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static _Atomic long fail_after = -1; /* allocations left before failing; < 0: never */
static _Atomic long count;

void br__alloc_fail_after(long n) { atomic_store_explicit(&fail_after, n, memory_order_relaxed); }

long br__alloc_count(void) { return atomic_load_explicit(&count, memory_order_relaxed); }

/* True if this allocation should fail. */
static bool inject(void) {
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    long left = atomic_load_explicit(&fail_after, memory_order_relaxed);
    while (left >= 0) {
        if (left == 0)
            return true;
        if (atomic_compare_exchange_weak_explicit(&fail_after, &left, left - 1,
                                                  memory_order_relaxed,
                                                  memory_order_relaxed))
            return false;
    }
    return false;
}

bool br__alloc_should_fail(void) { return inject(); }

void *br__malloc(size_t n) { return inject() ? NULL : malloc(n); }

void *br__calloc(size_t c, size_t n) { return inject() ? NULL : calloc(c, n); }

void *br__realloc(void *p, size_t n) { return inject() ? NULL : realloc(p, n); }

void *br__aligned_alloc(size_t align, size_t n) {
    if (inject())
        return NULL;
    void *p = NULL;
    return posix_memalign(&p, align, n) == 0 ? p : NULL;
}

char *br__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = br__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void br__free(void *p) { free(p); }

void *br__map_aligned(size_t size, bool huge) {
    size_t len = 2 * size;
    char *raw = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    char *p = (char *)(((uintptr_t)raw + size - 1) & ~(uintptr_t)(size - 1));
    if (p > raw)
        munmap(raw, (size_t)(p - raw));
    if (p + size < raw + len)
        munmap(p + size, (size_t)(raw + len - (p + size)));
    /* Hints: THP may be off, or these flags unknown, and that's fine. */
#if defined(MADV_HUGEPAGE) && defined(MADV_NOHUGEPAGE)
    (void)madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#else
    (void)huge;
#endif
    return p;
}

void br__free_poisoned(void *p, size_t n) {
#ifndef NDEBUG
    if (p != NULL)
        memset(p, BR__POISON_BYTE, n);
#else
    (void)n;
#endif
    free(p);
}
