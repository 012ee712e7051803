/* shared_list.c: threads that talk through a shared list, polling it.
 *
 * Ports 002_777bae947f90e707.txt, "线程间通信 - 共享变量和 Queue", first listing:
 * get_detail_url sleeps 4 s and appends 20 URLs to the global detail_url_list; three
 * get_detail_html threads pop() a URL when the list isn't empty (2 s of "work"), or
 * sleep 0.2 s and look again.
 *
 * Porting notes: in CPython, list.append and list.pop are each one atomic step under
 * the GIL, which is all that listing relies on (and `if len(...)` then `pop()` is still
 * a race between the three readers). In C nothing is atomic for free: the list and its
 * length are guarded by a Lock, and the check and the pop happen under it together.
 * The tutorial's threads run forever; here get_detail_url says when it is done and the
 * readers end once the list is empty after that. Sleeps scaled by 0.01. queue_join.c is
 * the same program done with a Queue, which is what the tutorial recommends next.
 */
#include <braid.h>

#include "example.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define URLS 20
#define READERS 3
#define SCALE 0.01

static int detail_url_list[URLS]; /* ids; the URL is http://projectsedu.com/<id> */
static int list_len = 0;
static bool producer_done = false;
static br_lock list_lock = BR_LOCK_INIT;

static void get_detail_html(void *arg) { /* 爬取文章详情页 */
    (void)arg;
    for (;;) {
        int id = -1;
        bool done = false;
        BR_WITH(&list_lock) {
            if (list_len > 0)
                id = detail_url_list[--list_len]; /* url = detail_url_list.pop() */
            else
                done = producer_done;
        }
        if (id >= 0) {
            printf("get detail html started http://projectsedu.com/%d\n", id);
            br_sleep_s(2 * SCALE);
            printf("get detail html end http://projectsedu.com/%d\n", id);
        } else if (done) {
            return;
        } else {
            br_sleep_s(0.2 * SCALE);
        }
    }
}

static void get_detail_url(void *arg) { /* 爬取文章列表页, 然后交给详情页 */
    (void)arg;
    printf("get detail url started\n");
    br_sleep_s(4 * SCALE);
    for (int i = 0; i < URLS; i++) {
        BR_WITH(&list_lock) {
            detail_url_list[list_len++] = i; /* detail_url_list.append(...) */
        }
    }
    printf("get detail url end\n");
    BR_WITH(&list_lock) {
        producer_done = true;
    }
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_thread *url_thread, *html_threads[READERS];
    must(br_thread_start(&url_thread, get_detail_url, NULL, NULL), "start");
    for (int i = 0; i < READERS; i++)
        must(br_thread_start(&html_threads[i], get_detail_html, NULL, NULL), "start");
    int64_t start_time = br_now();
    printf("last time: %.3f\n", (double)(br_now() - start_time) / BR_SEC);

    must(br_thread_join(url_thread, BR_FOREVER), "join");
    br_thread_free(url_thread);
    for (int i = 0; i < READERS; i++) {
        must(br_thread_join(html_threads[i], BR_FOREVER), "join");
        br_thread_free(html_threads[i]);
    }
    printf("all %d urls taken, list empty: %s\n", URLS, list_len == 0 ? "yes" : "no");
    return 0;
}
