/* Shared helpers for the review reproducers (rev/). Build: rev/build.sh */
#define _GNU_SOURCE
#include "process/mp_ring.h"
#include <braid.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static br__mpr *ring_new(size_t cap) {
    size_t n = br__mpr_bytes(cap);
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(2); }
    br__mpr_init((br__mpr *)p, cap, 0, 0);
    return (br__mpr *)p;
}
static int64_t after_ms(int64_t ms) { return br_now() + ms * 1000000; }
static void dbg(br__mpr *r, const char *what) {
    br__mpr_debug d;
    br__mpr_debug_get(r, &d);
    printf("  [%s] plock=%u glock=%u p_bias=%u g_bias=%u p_inside=%u g_inside=%u nbias=%u "
           "nrevoke=%u nstale=%u tail=%llu head=%llu qsize=%zu\n",
           what, d.plock, d.glock, d.p_bias, d.g_bias, d.p_inside, d.g_inside, d.nbias,
           d.nrevoke, d.nstale, (unsigned long long)d.tail, (unsigned long long)d.head,
           br__mpr_qsize(r));
}
