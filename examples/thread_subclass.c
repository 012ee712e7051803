/* thread_subclass.c: a "Thread subclass" whose run() fetches one URL.
 *
 * Ports 001_0d5cedca80a60342.txt, "通过继承Thread类": class MyThread(threading.Thread)
 * keeps self.url and overrides run() (fetch, sleep 1 s, print URL and length); main
 * starts one, joins it and prints the time taken.
 *
 * Porting note: the C shape of a subclass is a struct with the thread handle and the
 * fields, plus a run function that receives the struct (see thread_names.c too). The
 * page is fake_site.h's, the sleep scaled to 50 ms.
 */
#include <braid.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_site.h"

typedef struct my_thread {
    br_thread *thread;
    const char *url;
} my_thread;

static void my_thread_run(void *arg) {
    my_thread *self = arg;
    char *text = fake_page(atoi(strrchr(self->url, 'p') + 1)); /* requests.get(self.url) */
    br_sleep_s(0.05);
    printf("%s %zu\n", self->url, text ? strlen(text) : 0);
    free(text);
}

static int my_thread_start(my_thread *self, const char *url) {
    self->url = url; /* __init__ */
    return br_thread_start(&self->thread, my_thread_run, self, NULL);
}

int main(void) {
    int64_t start = br_now();
    my_thread t;
    int rc = my_thread_start(&t, fake_url(1));
    if (rc == 0) {
        rc = br_thread_join(t.thread, BR_FOREVER);
        br_thread_free(t.thread);
    }
    if (rc != 0) {
        fprintf(stderr, "thread: %s\n", br_strerror(rc));
        return 1;
    }
    printf("%.3f\n", (double)(br_now() - start) / BR_SEC);
    return 0;
}
