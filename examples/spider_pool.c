/* spider_pool.c: a thread pool of 12 scrapes 10 list pages into one CSV, then
 * shutdown(wait=True).
 *
 * Ports 003_1126844284e665b9.txt, "多线程采集" (线程池-12个线程): spider(url) fetches
 * https://www.cnblogs.com/sitehome/p/<page>, finds each post's section, and writes
 * (title, summary, avatar, author) to a shared csv.writer; main submits the 10 URLs
 * to ThreadPoolExecutor(12), calls pool.shutdown(True) ("执行完所有任务才往下运行"), and
 * prints the time taken.
 *
 * Porting notes:
 *  - No network yet: each page "has" 20 posts, made up from the page and post numbers,
 *    after a 10 ms sleep in place of the fetch; the CSV goes to stdout.
 *  - The tutorial's twelve threads share one csv.writer with no lock, which CPython's
 *    GIL happens to make safe row by row. In C the writer is guarded by a Lock, so a
 *    page's rows are written together and never torn.
 *  - submit with no future (out = NULL): the task runs and its result is dropped, as
 *    with Python's unused pool.submit(...) return value.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define PAGES 10
#define POSTS 20

static br_lock writer_lock = BR_LOCK_INIT;

static int spider(br_task *t) {
    int page = (int)br_task_arg_i64(t);
    br_sleep_s(0.01); /* text = requests.get(url).text */
    BR_WITH(&writer_lock) {
        for (int post = 1; post <= POSTS; post++) /* for section in sections: */
            printf("第%d页文章%d,摘要%d-%d,https://pic.cnblogs.com/avatar/%d-%d.png,作者%d\n",
                   page, post, page, post, page, post, post);
    }
    return 0;
}

int main(void) {
    int64_t start_time = br_now();
    printf("title,summary,avatar,author\n"); /* writer.writerow(table_headers) */
    br_executor *pool;
    must(br_threadpool_new(&pool, &(br_threadpool_opts){.max_workers = 12}), "pool");
    for (int page = 1; page <= PAGES; page++)
        must(br_submit_i64(pool, spider, page, NULL), "submit");
    must(br_executor_shutdown(pool, true, false), "shutdown"); /* 执行完所有任务 */
    must(br_executor_free(pool), "free");
    printf("消耗时间： %.3f\n", (double)(br_now() - start_time) / BR_SEC);
    return 0;
}
