/* What a bounded queue's maxsize costs (braid/queue.h, br_queue_opts.maxsize): room for
 * every item is reserved when the queue is made, so a maxsize that can't be reserved is
 * BR_ENOMEM from br_queue_new, with nothing created, never a crash, for every kind that
 * takes a maxsize. A queue of ordinary size right after shows that nothing was left
 * broken. */
#include "harness.h"

#include <stdint.h>

/* The sanitizers' allocators report a request above their limit as an error and abort;
 * braid's contract is about what the C library does (return NULL), so this binary
 * asks them to do the same. Visible: the runtime looks the hook up in the program, and
 * the build hides symbols by default. */
#define SANITIZER_HOOK __attribute__((visibility("default"), used))
#if defined(BRAID_ASAN)
const char *__asan_default_options(void);
SANITIZER_HOOK const char *__asan_default_options(void) {
    return "allocator_may_return_null=1";
}
#elif defined(BRAID_TSAN)
const char *__tsan_default_options(void);
SANITIZER_HOOK const char *__tsan_default_options(void) {
    return "allocator_may_return_null=1";
}
#endif

static const br_queue_kind bounded_kinds[] = {BR_QUEUE_FIFO, BR_QUEUE_LIFO,
                                              BR_QUEUE_PRIORITY};

static void expect_enomem(size_t maxsize) {
    for (size_t k = 0; k < sizeof bounded_kinds / sizeof bounded_kinds[0]; k++) {
        br_queue *q = (br_queue *)&q; /* anything but NULL: must come back NULL */
        int rc = br_queue_new(&q, &(br_queue_opts){.kind = bounded_kinds[k],
                                                   .maxsize = maxsize});
        if (rc != BR_ENOMEM)
            fail_msg("kind %d, maxsize %zu: got %s, want BR_ENOMEM", (int)bounded_kinds[k],
                     maxsize, br_err_name(rc));
        BR_CHECK(q == NULL);
    }
}

/* Still usable afterwards: a small bounded queue of each kind works. */
static void small_queues_still_work(void) {
    for (size_t k = 0; k < sizeof bounded_kinds / sizeof bounded_kinds[0]; k++) {
        br_queue *q;
        BR_CHECK_OK(br_queue_new(&q, &(br_queue_opts){.kind = bounded_kinds[k],
                                                      .maxsize = 2}));
        BR_CHECK_OK(br_queue_put(q, (void *)(uintptr_t)1, BR_NOWAIT));
        BR_CHECK_OK(br_queue_put(q, (void *)(uintptr_t)2, BR_NOWAIT));
        BR_CHECK_ERR(br_queue_put(q, (void *)(uintptr_t)3, BR_NOWAIT), BR_ETIMEDOUT);
        void *x;
        BR_CHECK_OK(br_queue_get(q, &x, BR_NOWAIT));
        BR_CHECK_OK(br_queue_free(q));
    }
}

/* Sizes whose room doesn't fit in size_t: refused before any allocator is asked. */
static void maxsize_beyond_size_t(void **state) {
    (void)state;
    expect_enomem(SIZE_MAX);
    expect_enomem(SIZE_MAX / 2);
    expect_enomem(SIZE_MAX / 16 + 1);
    small_queues_still_work();
}

/* Sizes that fit in size_t but not in any address space: 2^50 items is 2^54 bytes or
 * more, beyond the 2^47 bytes a 64-bit Linux process can map by default, so the
 * allocator fails whatever the overcommit policy. */
static void maxsize_beyond_the_address_space(void **state) {
    (void)state;
    if (sizeof(size_t) < 8)
        skip(); /* there, any such size already overflows (the test above) */
    expect_enomem((size_t)1 << 50);
    expect_enomem(((size_t)1 << 50) + 12345);
    expect_enomem(SIZE_MAX / 24 + 1); /* FIFO: 2^63 bytes or so; LIFO: past size_t */
    small_queues_still_work();
}

/* maxsize on a SimpleQueue is refused as before (BR_EINVAL), whatever its size. */
static void simple_queue_takes_no_maxsize(void **state) {
    (void)state;
    br_queue *q;
    BR_CHECK_ERR(br_queue_new(&q, &(br_queue_opts){.kind = BR_QUEUE_SIMPLE,
                                                   .maxsize = SIZE_MAX / 2}),
                 BR_EINVAL);
}

BR_TEST_MAIN(cmocka_unit_test(maxsize_beyond_size_t),
             cmocka_unit_test(maxsize_beyond_the_address_space),
             cmocka_unit_test(simple_queue_takes_no_maxsize))
