/* mp_pool_apply.c: a process pool's apply_async (doesn't block) and apply (blocks),
 * map_async and map.
 *
 * Ports 003_1126844284e665b9.txt, "13. 进程池":
 *   pool = Pool(processes=3)
 *   pool.apply_async(run1, ([1, 2, 3],))   # 不阻塞 代码继续往下执行
 *   pool.close(); pool.join()
 *   pool.apply(run1, ([1, 2, 3],))         # 阻塞，等待run1执行完成 同步
 * and its two bullets, "map_async()不阻塞" and "map()阻塞", with pool.map's result being
 * the built-in map's, computed by worker processes. The 1 s sleeps are 30 ms here.
 *
 * Porting notes. The list [1, 2, 3] crosses as bytes: a struct with a count and the
 * items. The main process prints a line right after each call, so the order of the
 * lines shows which call blocked.
 */
#include "example.h"

#include <braid/mp_sync.h>
#include <braid/process.h>
#include <braid/processpool.h>

#include <string.h>

typedef struct int_list {
    int n;
    int64_t items[8];
} int_list;

/* Set by the main process once apply_async has returned: run1 waits for it, so the
 * output shows the call didn't wait for the task whatever the machine's load (the
 * tutorial relies on the 1 s sleeps for that). */
static br_mp_event *returned;

static int run1(br_task *t) {
    const int_list *li = br_task_arg(t, NULL);
    must(br_mp_event_wait(returned, BR_FOREVER), "returned.wait");
    for (int i = 0; i < li->n; i++) {
        printf("%lld\n", (long long)li->items[i]);
        fflush(stdout);
        br_sleep(30 * BR_MSEC);
    }
    printf("run1函数执行完成\n");
    fflush(stdout);
    return 0;
}

static int square(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

static void print_squares(br_mp_result *r) {
    printf("[");
    for (size_t i = 0; i < br_mp_result_count(r); i++) {
        const void *data;
        size_t len;
        must(br_mp_result_item(r, i, &data, &len), "result[i]");
        int64_t v;
        memcpy(&v, data, sizeof v);
        printf("%s%lld", i ? ", " : "", (long long)v);
    }
    printf("]\n");
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    int_list li = {3, {1, 2, 3}};
    must(br_mp_event_new(&returned), "Event()");

    br_mp_pool *pool;
    must(br_mp_pool_new(&pool, &(br_mp_pool_opts){.processes = 3}), "Pool(processes=3)");
    must(br_mp_pool_apply_async(pool, run1, &li, sizeof li, NULL, NULL, NULL, NULL),
         "apply_async");
    printf("apply_async returned\n"); /* 不阻塞 代码继续往下执行 */
    fflush(stdout);
    must(br_mp_event_set(returned), "returned.set");
    must(br_mp_pool_close(pool), "pool.close");
    must(br_mp_pool_join(pool), "pool.join");
    printf("joined\n");
    fflush(stdout);
    must(br_mp_pool_free(pool), "pool");

    must(br_mp_pool_new(&pool, &(br_mp_pool_opts){.processes = 3}), "Pool(processes=3)");
    must(br_mp_pool_apply(pool, run1, &li, sizeof li, NULL), "apply");
    printf("apply returned\n"); /* 阻塞，等待run1执行完成 同步 */
    fflush(stdout);

    int64_t xs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    br_mp_result *r;
    must(br_mp_pool_map_async(&r, pool, square, xs, 10, sizeof xs[0], 0), "map_async");
    must(br_mp_result_get(r, BR_FOREVER), "get");
    print_squares(r);
    br_mp_result_free(r);
    must(br_mp_pool_map(&r, pool, square, xs, 10, sizeof xs[0], 0), "map");
    print_squares(r); /* as the built-in map: [1, 4, 9, ...] */
    br_mp_result_free(r);
    must(br_mp_pool_close(pool), "pool.close");
    must(br_mp_pool_join(pool), "pool.join");
    must(br_mp_pool_free(pool), "pool");
    br_mp_event_free(returned);
    return 0;
}
