/* web_fanout.c: one request fans out to three slow reads on a thread pool.
 *
 * Ports 004_3a0c11dfd5eebac6.txt, "线程池加速 flask 网站案例": index() submits read_file
 * (0.1 s), read_db (0.2 s) and read_api (0.3 s) to a module-level ThreadPoolExecutor()
 * and returns json.dumps of their three results. The reads overlap: the request takes
 * about the longest one (0.3 s), not their sum (0.6 s). (000_b9e24c88e52a00dc.txt's
 * "Web服务中使用线程池加速" says the same in words.)
 *
 * Porting notes: no web server yet (that is `braid serve`, later): main calls index()
 * once and prints the JSON and the time it took. Each read returns its string as bytes;
 * the future owns them until released. Sleeps doubled (0.2, 0.4, 0.6 s), so that the
 * gap between "the longest" and "the sum" stays clear on a busy machine.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static br_executor *pool; /* pool = ThreadPoolExecutor() */

/* How many reads ran at the same moment, at most: the proof that they overlapped. */
static _Atomic int running, most;

static void slow_read(double seconds) {
    int now = atomic_fetch_add(&running, 1) + 1;
    for (int m = atomic_load(&most); now > m && !atomic_compare_exchange_weak(&most, &m, now);)
        ;
    br_sleep_s(seconds);
    atomic_fetch_sub(&running, 1);
}

static int read_file(br_task *t) {
    slow_read(0.2);
    return br_task_return_str(t, "file result");
}

static int read_db(br_task *t) {
    slow_read(0.4);
    return br_task_return_str(t, "db result");
}

static int read_api(br_task *t) {
    slow_read(0.6);
    return br_task_return_str(t, "api result");
}

static const char *result_of(br_future *f) {
    const char *s;
    must(br_future_result_str(f, BR_FOREVER, &s), "result");
    return s;
}

/* @app.route("/"): writes the response body into out. */
static void index_route(char *out, size_t cap) {
    br_future *result_file, *result_db, *result_api;
    must(br_submit(pool, read_file, NULL, 0, &result_file), "submit");
    must(br_submit(pool, read_db, NULL, 0, &result_db), "submit");
    must(br_submit(pool, read_api, NULL, 0, &result_api), "submit");
    snprintf(out, cap, "{\"result_file\": \"%s\", \"result_db\": \"%s\", \"result_api\": \"%s\"}",
             result_of(result_file), result_of(result_db), result_of(result_api));
    br_future_release(result_file);
    br_future_release(result_db);
    br_future_release(result_api);
}

int main(void) {
    must(br_threadpool_new(&pool, NULL), "pool");
    char body[256];
    int64_t start = br_now();
    index_route(body, sizeof body);
    double elapsed = (double)(br_now() - start) / BR_SEC;
    printf("%s\n", body);
    printf("index() took %.3f s; the reads take 0.2 + 0.4 + 0.6 = 1.200 s one after another\n",
           elapsed);
    printf("reads running at once: at most %d\n", atomic_load(&most));
    must(br_executor_free(pool), "free");
    return 0;
}
