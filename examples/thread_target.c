/* thread_target.c: one thread running craw(url), started and joined.
 *
 * Ports 001_0d5cedca80a60342.txt, "通过threading模块的Thread类": craw(url) fetches the
 * page, sleeps 1 s and prints the URL and the page length; main runs it in a thread
 * (target=craw, args=(urls[0],)), joins, and prints the cost.
 *
 * Porting notes: the page comes from fake_site.h and the sleep is scaled to 50 ms. The
 * tutorial prints `start - time.time()`, a negative cost; this prints the elapsed time.
 */
#include <braid.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_site.h"

static void craw(void *arg) {
    const char *url = arg;
    char *text = fake_page(atoi(strrchr(url, 'p') + 1)); /* requests.get(url).text */
    br_sleep_s(0.05);                                     /* time.sleep(1) */
    printf("%s %zu\n", url, text ? strlen(text) : 0);
    free(text);
}

int main(void) {
    int64_t start = br_now();
    br_thread *t;
    int rc = br_thread_start(&t, craw, (void *)fake_url(1), NULL);
    if (rc == 0) {
        rc = br_thread_join(t, BR_FOREVER);
        br_thread_free(t);
    }
    if (rc != 0) {
        fprintf(stderr, "thread: %s\n", br_strerror(rc));
        return 1;
    }
    printf("cost %.3fs\n", (double)(br_now() - start) / BR_SEC);
    return 0;
}
