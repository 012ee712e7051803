/* mp_imap.c: Pool.imap (input order) and Pool.imap_unordered (completion order).
 *
 * Ports 002_777bae947f90e707.txt's two listings: for result in pool.imap(get_html,
 * [1, 5, 3]): print("{} success") and the same with imap_unordered ("{} sleep
 * success"). imap yields 1, 5, 3 whatever order the tasks end in; imap_unordered
 * yields each result as its task ends (1, 3, 5 on an idle machine). Sleeps scaled by
 * 0.1 (0.1, 0.5, 0.3 s).
 */
#include <braid.h>
#include <braid/processpool.h>

#include "example.h"

#include <stdio.h>
#include <string.h>

#define SCALE 0.1

static int get_html(br_task *t) {
    int64_t n = br_task_arg_i64(t);
    br_sleep_s((double)n * SCALE);
    printf("sub_progress sucess\n");
    return br_task_return_i64(t, n);
}

static void run(br_mp_pool *pool, bool ordered) {
    static const int64_t ns[] = {1, 5, 3};
    br_mp_iter *it;
    if (ordered)
        must(br_mp_pool_imap(&it, pool, get_html, ns, 3, sizeof ns[0], 1), "imap");
    else
        must(br_mp_pool_imap_unordered(&it, pool, get_html, ns, 3, sizeof ns[0], 1),
             "imap_unordered");
    const void *d;
    size_t len;
    int rc;
    while ((rc = br_mp_iter_next(it, BR_FOREVER, &d, &len, NULL)) == 0) {
        int64_t result; /* result为get_html的返回值 */
        memcpy(&result, d, sizeof result);
        printf(ordered ? "%lld success\n" : "%lld sleep success\n", (long long)result);
    }
    if (rc != BR_EOF)
        must(rc, "next");
    br_mp_iter_free(it);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_mp_pool *pool;
    must(br_mp_pool_new(&pool, &(br_mp_pool_opts){.processes = br_cpu_count()}), "Pool");
    run(pool, true);
    run(pool, false);
    must(br_mp_pool_close(pool), "close");
    must(br_mp_pool_join(pool), "join");
    must(br_mp_pool_free(pool), "free");
    return 0;
}
