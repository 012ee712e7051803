/* pc_crawl.c: the producer-consumer crawler: fetch threads and parse threads joined by
 * two Queues.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [10] ("生产者消费者版本的爬虫"): url_queue holds the
 * 50 URLs; 3 threads craw0..craw2 get a URL, fetch it, put the HTML on html_queue,
 * print, and sleep random.randint(1, 2) s; 2 threads parse0, parse1 get HTML, parse
 * it, write every (href, title) to fout, print, and sleep likewise. `pc_crawl 3` runs
 * 001_0d5cedca80a60342.txt's version of the same listing ("生产者消费者模型"), which
 * has 3 parse threads.
 *
 * Porting notes:
 *  - Pages come from fake_site.h (no network yet); fetching sleeps 2 ms, and the
 *    tutorial's random 1-2 s pauses are scaled to 5-10 ms.
 *  - The tutorial's threads loop forever (`while True`), so the notebook never ends.
 *    Here the queues are shut down, as Python 3.13's Queue.shutdown() does: once
 *    url_queue is shut down and empty, get() returns BR_ESHUTDOWN and the fetchers
 *    return; main joins them, shuts html_queue down, and the parsers drain it and
 *    return. (The other idiom, one NULL sentinel per consumer, works too.)
 *  - fout is stdout; a link line is one printf, so lines never interleave.
 *  - The HTML strings are malloc'd: the queue owns an item while it is queued and the
 *    parser frees it; html_queue's dispose would free any left behind.
 * Every page is parsed exactly once; the program counts and prints it.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fake_site.h"

#define MAX_PARSERS 8

static _Atomic int parsed[FAKE_PAGES + 1]; /* times each page was parsed */

typedef struct crawl {
    br_queue *url_queue;
    br_queue *html_queue;
} crawl;

/* random.randint(1, 2), from a per-thread xorshift (rand() shares one state). */
static int randint_1_2(uint32_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    return 1 + (int)(*state & 1);
}

static char *craw(const char *url) {
    int page = atoi(strrchr(url, 'p') + 1);
    br_sleep_s(0.002); /* the network */
    return fake_page(page);
}

static void do_craw(void *arg) {
    crawl *c = arg;
    uint32_t seed = (uint32_t)br_thread_current_native_id() | 1u;
    for (;;) {
        void *url;
        int rc = br_queue_get(c->url_queue, &url, BR_FOREVER);
        if (rc == BR_ESHUTDOWN)
            break; /* no more URLs */
        must(rc, "url_queue get");
        char *html = craw(url);
        if (html == NULL)
            must(BR_ENOMEM, "craw");
        must(br_queue_put(c->html_queue, html, BR_FOREVER), "html_queue put");
        printf("%s craw %s url_queue.size= %zu\n", br_thread_current_name(),
               (const char *)url, br_queue_qsize(c->url_queue));
        br_sleep_s(0.005 * randint_1_2(&seed)); /* time.sleep(random.randint(1,2)) */
    }
}

static void do_parse(void *arg) {
    crawl *c = arg;
    uint32_t seed = (uint32_t)br_thread_current_native_id() | 1u;
    for (;;) {
        void *item;
        int rc = br_queue_get(c->html_queue, &item, BR_FOREVER);
        if (rc == BR_ESHUTDOWN)
            break; /* the fetchers are done and the queue is empty */
        must(rc, "html_queue get");
        char *html = item;
        fake_link results[FAKE_LINKS];
        int n = fake_parse(html, results);
        for (int i = 0; i < n; i++) /* fout.write(str(result) + '\n') */
            printf("('%s', '%s')\n", results[i].href, results[i].title);
        int page = fake_page_of(html);
        atomic_fetch_add(&parsed[page], 1);
        printf("%s parsed page-%02d result.size %d html_queue.size= %zu\n",
               br_thread_current_name(), page, n, br_queue_qsize(c->html_queue));
        free(html);
        br_sleep_s(0.005 * randint_1_2(&seed));
    }
}

static void free_item(void *item, void *ctx) {
    (void)ctx;
    free(item);
}

int main(int argc, char **argv) {
    int parsers = argc > 1 ? atoi(argv[1]) : 2;
    if (parsers < 1 || parsers > MAX_PARSERS) {
        fprintf(stderr, "usage: %s [parsers 1..%d]\n", argv[0], MAX_PARSERS);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);

    crawl c;
    must(br_queue_new(&c.url_queue, NULL), "url_queue");
    must(br_queue_new(&c.html_queue, &(br_queue_opts){.dispose = free_item}), "html_queue");
    for (int page = 1; page <= FAKE_PAGES; page++)
        must(br_queue_put(c.url_queue, (void *)fake_url(page), BR_FOREVER), "put url");
    must(br_queue_shutdown(c.url_queue, false), "shutdown url_queue"); /* no more URLs */

    br_thread *crawlers[3], *parser_threads[MAX_PARSERS];
    char name[16];
    for (int idx = 0; idx < 3; idx++) { /* 三个线程下载网页 */
        snprintf(name, sizeof name, "craw%d", idx);
        must(br_thread_start(&crawlers[idx], do_craw, &c, &(br_thread_opts){.name = name}),
             "start craw");
    }
    for (int idx = 0; idx < parsers; idx++) { /* 两个线程解析网页并存储 */
        snprintf(name, sizeof name, "parse%d", idx);
        must(br_thread_start(&parser_threads[idx], do_parse, &c,
                             &(br_thread_opts){.name = name}),
             "start parse");
    }

    for (int idx = 0; idx < 3; idx++) {
        must(br_thread_join(crawlers[idx], BR_FOREVER), "join craw");
        br_thread_free(crawlers[idx]);
    }
    must(br_queue_shutdown(c.html_queue, false), "shutdown html_queue"); /* no more pages */
    for (int idx = 0; idx < parsers; idx++) {
        must(br_thread_join(parser_threads[idx], BR_FOREVER), "join parse");
        br_thread_free(parser_threads[idx]);
    }
    must(br_queue_free(c.url_queue), "free url_queue");
    must(br_queue_free(c.html_queue), "free html_queue");

    int once = 0, missing = 0, repeated = 0;
    for (int page = 1; page <= FAKE_PAGES; page++) {
        int k = atomic_load(&parsed[page]);
        once += k == 1;
        missing += k == 0;
        repeated += k > 1;
    }
    printf("pages parsed exactly once: %d of %d (missing %d, repeated %d)\n", once,
           FAKE_PAGES, missing, repeated);
    return once == FAKE_PAGES ? 0 : 1;
}
