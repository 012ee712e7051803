/* thread_names.c: threads with names, "subclassing" Thread.
 *
 * Ports 002_777bae947f90e707.txt, "多线程编程 - threading", the GetDetailHtml /
 * GetDetailUrl listing: two Thread subclasses whose __init__ passes a name
 * ("get_detail_html", "get_detail_url") to super().__init__ and whose run() sleeps 2 s
 * and 4 s; main starts and joins both and prints "last time" (about 4 s: they run
 * together).
 *
 * Porting note: C has no subclasses. A "Thread subclass" is a struct that holds the
 * thread handle and the subclass's own fields, and a run function that gets the struct
 * as its argument; the name goes in br_thread_opts. Sleeps scaled by 0.2.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>

#define SCALE 0.2

typedef struct detail_thread {
    br_thread *thread;   /* the "base class" */
    const char *what;    /* "html" or "url" */
    double seconds;      /* how long run() works */
} detail_thread;

static void run(void *arg) {
    detail_thread *self = arg;
    printf("get detail %s started (thread %s)\n", self->what, br_thread_current_name());
    br_sleep_s(self->seconds);
    printf("get detail %s end\n", self->what);
}

static void start(detail_thread *self, const char *name) { /* super().__init__(name=name) */
    must(br_thread_start(&self->thread, run, self, &(br_thread_opts){.name = name}),
         "start");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    detail_thread thread1 = {NULL, "html", 2 * SCALE}, thread2 = {NULL, "url", 4 * SCALE};
    int64_t start_time = br_now();
    start(&thread1, "get_detail_html");
    start(&thread2, "get_detail_url");
    printf("names: %s, %s\n", br_thread_name(thread1.thread), br_thread_name(thread2.thread));
    must(br_thread_join(thread1.thread, BR_FOREVER), "join");
    must(br_thread_join(thread2.thread, BR_FOREVER), "join");
    printf("last time: %.3f\n", (double)(br_now() - start_time) / BR_SEC);
    br_thread_free(thread1.thread);
    br_thread_free(thread2.thread);
    return 0;
}
