/* sem_downloads.c: a URL producer that never lets more than 3 downloads run at once.
 *
 * Ports 002_777bae947f90e707.txt, "线程同步 - Semaphore 使用以及源码分析": UrlProducer
 * acquires threading.Semaphore(3) before starting each of 10 HtmlSpider threads (第二步);
 * each spider "downloads" for 2 s, prints "success" and releases the semaphore
 * (第三步). At most 3 spiders are ever running.
 *
 * Porting notes: 2 s scaled to 0.15 s. The spiders count themselves in and out, so the
 * program can print the largest number that ever ran at once: 3, never more (the
 * semaphore guarantees it) and, with downloads this long, never fewer. The tutorial's
 * main doesn't wait; this one takes all 3 units back at the end, which can only happen
 * once every spider has released its unit, then prints the maximum.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define URLS 10
#define PERMITS 3

static br_sem sem;
static atomic_int running = 0, max_running = 0;

static void html_spider(void *arg) { /* HtmlSpider.run */
    int i = (int)(intptr_t)arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&max_running);
    while (now > seen && !atomic_compare_exchange_weak(&max_running, &seen, now))
        ;
    printf("start https://baidu.com/%d (%d running)\n", i, now);
    br_sleep_s(0.15); /* 模拟2秒钟抓取一个html */
    printf("success https://baidu.com/%d\n", i);
    atomic_fetch_sub(&running, 1);
    must(br_sem_release(&sem, 1), "release"); /* 第三步: 在这里释放锁 */
}

static void url_producer(void *arg) { /* UrlProducer.run */
    (void)arg;
    for (int i = 0; i < URLS; i++) {
        must(br_sem_acquire(&sem, BR_FOREVER), "acquire"); /* 第二步: 获得锁 */
        br_thread *html_thread;
        must(br_thread_start(&html_thread, html_spider, (void *)(intptr_t)i, NULL),
             "start spider");
        br_thread_free(html_thread); /* it runs on; nobody joins it */
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    must(br_sem_init(&sem, PERMITS), "sem_init"); /* 第一步, 设置3个并发 */
    br_thread *producer;
    must(br_thread_start(&producer, url_producer, NULL, NULL), "start producer");
    must(br_thread_join(producer, BR_FOREVER), "join producer");
    br_thread_free(producer);

    for (int k = 0; k < PERMITS; k++) /* every spider has released its unit */
        must(br_sem_acquire(&sem, BR_FOREVER), "acquire");
    printf("max concurrent downloads: %d\n", atomic_load(&max_running));
    /* No br_sem_destroy: a spider may still be inside br_sem_release (its unit already
     * counted) when main gets the last unit, and sem is static anyway. */
    return 0;
}
