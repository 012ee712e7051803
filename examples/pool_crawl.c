/* pool_crawl.c: crawl with pool.map, then parse with submit + as_completed.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [14] and In [15] ("线程池ThreadPoolExecutor"):
 *   with ThreadPoolExecutor() as pool: htmls = pool.map(craw, urls)       (in URL order)
 *   with ThreadPoolExecutor() as pool: futures[pool.submit(parse, html)] = url
 *       for future in as_completed(futures): print(url, future.result())  (finish order)
 *
 * Porting notes:
 *  - Pages come from fake_site.h; a fetch sleeps 2 ms.
 *  - craw returns the page as bytes, which the map hands back valid until the next
 *    result: main keeps a copy (Python's list(zip(urls, htmls))).
 *  - parse returns its list of (href, title) as an in-process pointer
 *    (br_task_return_ptr): the future owns the array and frees it with the future.
 *  - Python's dict futures[future] = url becomes an array of (future, url) pairs that
 *    main searches for the future as_completed yields.
 */
#include <braid.h>

#include "example.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_site.h"

typedef struct parsed {
    int n;
    fake_link links[FAKE_LINKS];
} parsed;

static int craw(br_task *t) {
    int page = (int)br_task_arg_i64(t);
    br_sleep_s(0.002);
    char *html = fake_page(page);
    if (html == NULL)
        return BR_ENOMEM;
    int rc = br_task_return_str(t, html);
    free(html);
    return rc;
}

static int parse(br_task *t) {
    const char *html = br_task_arg(t, NULL);
    parsed *p = malloc(sizeof *p);
    if (p == NULL)
        return BR_ENOMEM;
    p->n = fake_parse(html, p->links);
    int rc = br_task_return_ptr(t, p, free);
    if (rc != 0)
        free(p);
    return rc;
}

int main(void) {
    int64_t pages[FAKE_PAGES];
    char *htmls[FAKE_PAGES];
    for (int i = 0; i < FAKE_PAGES; i++)
        pages[i] = i + 1;

    /* craw */
    br_executor *pool;
    must(br_threadpool_new(&pool, NULL), "pool");
    br_map *m;
    must(br_map_new(&m, pool, craw, pages, FAKE_PAGES, sizeof pages[0], NULL), "map");
    for (int i = 0; i < FAKE_PAGES; i++) {
        const void *data;
        size_t len;
        must(br_map_next(m, &data, &len), "map_next");
        htmls[i] = malloc(len);
        if (htmls[i] == NULL)
            must(BR_ENOMEM, "malloc");
        memcpy(htmls[i], data, len);
        printf("%s %zu\n", fake_url(i + 1), len - 1);
    }
    must(br_map_free(m), "map_free");
    must(br_executor_free(pool), "free");
    printf("craw over\n");

    /* parse, 用submit */
    struct {
        br_future *future;
        const char *url;
    } futures[FAKE_PAGES];
    br_future *fs[FAKE_PAGES];
    must(br_threadpool_new(&pool, NULL), "pool");
    for (int i = 0; i < FAKE_PAGES; i++) {
        must(br_submit(pool, parse, htmls[i], strlen(htmls[i]) + 1, &futures[i].future),
             "submit"); /* htmls[i] is borrowed until the future is done */
        futures[i].url = fake_url(i + 1);
        fs[i] = futures[i].future;
    }
    br_as_completed *it; /* 先完成的任务先返回结果 */
    must(br_as_completed_new(&it, fs, FAKE_PAGES, BR_FOREVER), "as_completed");
    br_future *future;
    int rc;
    while ((rc = br_as_completed_next(it, &future)) == 0) {
        const char *url = NULL;
        for (int i = 0; i < FAKE_PAGES; i++)
            if (futures[i].future == future)
                url = futures[i].url;
        void *ptr;
        must(br_future_result_ptr(future, BR_FOREVER, &ptr), "result");
        const parsed *p = ptr;
        printf("%s %d links, first ('%s', '%s')\n", url, p->n, p->links[0].href,
               p->links[0].title);
    }
    if (rc != BR_EOF)
        must(rc, "as_completed_next");
    must(br_as_completed_free(it), "free");
    must(br_executor_free(pool), "free");
    for (int i = 0; i < FAKE_PAGES; i++) {
        br_future_release(futures[i].future);
        free(htmls[i]);
    }
    return 0;
}
