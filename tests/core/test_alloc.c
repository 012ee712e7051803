/* The allocation seam: the Nth allocation fails on request, and only then. */
#include "harness.h"
#include "core/lib.h"

#include <string.h>

static void fails_after_n(void **state) {
    (void)state;
    br__alloc_fail_after(2);
    void *a = br__malloc(8), *b = br__calloc(1, 8), *c = br__malloc(8);
    BR_CHECK(a != NULL);
    BR_CHECK(b != NULL);
    BR_CHECK(c == NULL);
    BR_CHECK(br__strdup("x") == NULL);
    BR_CHECK(br__aligned_alloc(64, 64) == NULL);
    BR_CHECK(br__realloc(a, 16) == NULL); /* a stays valid, as with realloc */
    br__alloc_fail_after(-1);
    char *d = br__strdup("hello");
    BR_CHECK(d != NULL);
    assert_string_equal(d, "hello");
    void *e = br__aligned_alloc(64, 100);
    BR_CHECK(e != NULL);
    BR_CHECK(((uintptr_t)e & 63) == 0);
    long before = br__alloc_count();
    void *f = br__malloc(1);
    BR_CHECK_EQ(br__alloc_count(), before + 1);
    br__free(a);
    br__free(b);
    br__free(d);
    br__free(e);
    br__free(f);
}

/* Every allocating constructor of the public API, under an out-of-memory loop: fail
 * the Nth allocation for N = 0, 1, 2, ... until the call succeeds; each failure must be
 * BR_ENOMEM with nothing leaked (LeakSanitizer checks the leak half in the ASan build)
 * and nothing half-made left behind. */
typedef int (*ctor_fn)(void **out);

static int make_queue(void **out) { return br_queue_new((br_queue **)out, NULL); }
static int make_pq(void **out) {
    return br_queue_new((br_queue **)out, &(br_queue_opts){.kind = BR_QUEUE_PRIORITY});
}
static int make_future(void **out) { return br_future_new((br_future **)out); }
static int make_local(void **out) { return br_local_new((br_local **)out, NULL); }
static int make_pool(void **out) { return br_threadpool_new((br_executor **)out, NULL); }
static void noop(void *arg) { (void)arg; }
static int make_thread(void **out) { return br_thread_start((br_thread **)out, noop, NULL, NULL); }

static void release(int kind, void *obj) {
    switch (kind) {
    case 0:
    case 1:
        BR_CHECK_OK(br_queue_free(obj));
        break;
    case 2:
        br_future_release(obj);
        break;
    case 3:
        BR_CHECK_OK(br_local_free(obj));
        break;
    case 4:
        BR_CHECK_OK(br_executor_free(obj));
        break;
    case 5:
        BR_CHECK_OK(br_thread_join(obj, BR_FOREVER));
        BR_CHECK_OK(br_thread_free(obj));
        break;
    }
}

static void constructors_survive_oom(void **state) {
    (void)state;
    ctor_fn ctors[] = {make_queue, make_pq, make_future, make_local, make_pool, make_thread};
    for (int k = 0; k < (int)(sizeof ctors / sizeof ctors[0]); k++) {
        for (long n = 0;; n++) {
            BR_CHECK(n < 1000);
            void *obj = NULL;
            br__alloc_fail_after(n);
            int rc = ctors[k](&obj);
            br__alloc_fail_after(-1);
            if (rc == 0) {
                BR_CHECK(obj != NULL);
                release(k, obj);
                break;
            }
            BR_CHECK_ERR(rc, BR_ENOMEM);
        }
    }
}

BR_TEST_MAIN(cmocka_unit_test(fails_after_n), cmocka_unit_test(constructors_survive_oom))
