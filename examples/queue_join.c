/* queue_join.c: a Queue between a list-page thread and ten detail-page threads, with
 * task_done() and join().
 *
 * Ports 002_777bae947f90e707.txt, "线程间通信 - 共享变量和 Queue", the Queue listing:
 * get_detail_url puts 20 URLs on a Queue(maxsize=1000) after sleeping 4 s, ten
 * get_detail_html threads get them and sleep 2 s each, and main prints "last time"
 * at once (it doesn't wait). And the note under it: "join(): 使队列处于阻塞状态, 只有
 * 接收到task_done()时, join()函数才会退出. 所以这两个函数是成对出现的": each worker calls
 * task_done() after an item, and main's join() returns once all 20 are done.
 *
 * Porting notes: sleeps scaled by 0.01 (4 s -> 40 ms, 2 s -> 20 ms). The tutorial's
 * threads loop forever; here get_detail_url puts its 20 URLs once, and after join()
 * main shuts the queue down so the workers' get() returns BR_ESHUTDOWN and they end.
 * main joins the producer before q.join(): a join() on a queue nobody has put into yet
 * returns at once.
 */
#include <braid.h>

#include "example.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define URLS 20
#define WORKERS 10
#define SCALE 0.01

static void get_detail_html(void *arg) { /* 爬取文章详情页 */
    br_queue *queue = arg;
    for (;;) {
        void *item;
        int rc = br_queue_get(queue, &item, BR_FOREVER); /* 队列为空会一直停在这一行 */
        if (rc == BR_ESHUTDOWN)
            return;
        must(rc, "get");
        int id = (int)(intptr_t)item;
        printf("get detail html started http://projectsedu.com/%d\n", id);
        br_sleep_s(2 * SCALE);
        printf("get detail html end http://projectsedu.com/%d\n", id);
        must(br_queue_task_done(queue), "task_done");
    }
}

static void get_detail_url(void *arg) { /* 爬取文章列表页 */
    br_queue *queue = arg;
    printf("get detail url started\n");
    br_sleep_s(4 * SCALE);
    for (int i = 0; i < URLS; i++) /* 队列里放数据 */
        must(br_queue_put(queue, (void *)(intptr_t)i, BR_FOREVER), "put");
    printf("get detail url end\n");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_queue *detail_url_queue;
    must(br_queue_new(&detail_url_queue, &(br_queue_opts){.maxsize = 1000}), "queue");

    br_thread *url_thread, *html_threads[WORKERS];
    must(br_thread_start(&url_thread, get_detail_url, detail_url_queue, NULL), "start");
    for (int i = 0; i < WORKERS; i++)
        must(br_thread_start(&html_threads[i], get_detail_html, detail_url_queue, NULL),
             "start");
    int64_t start_time = br_now();
    printf("last time: %.3f\n", (double)(br_now() - start_time) / BR_SEC);

    must(br_thread_join(url_thread, BR_FOREVER), "join producer"); /* all 20 are put */
    must(br_queue_join(detail_url_queue, BR_FOREVER), "q.join");  /* all 20 are done */
    printf("q.join() returned: every url got its task_done(), after %.3f s\n",
           (double)(br_now() - start_time) / BR_SEC);

    must(br_queue_shutdown(detail_url_queue, false), "shutdown");
    br_thread_free(url_thread);
    for (int i = 0; i < WORKERS; i++) {
        must(br_thread_join(html_threads[i], BR_FOREVER), "join worker");
        br_thread_free(html_threads[i]);
    }
    must(br_queue_free(detail_url_queue), "free");
    return 0;
}
