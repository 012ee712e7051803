/* crawl_threads.c: crawl 50 pages one by one, then with one thread per page.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [1], In [4], In [7] and In [5]: craw(url) fetches a
 * page and prints the URL and its length; single_thread() crawls the 50 URLs in a loop,
 * multi_thread() starts a threading.Thread per URL, then joins them all; each prints
 * "... begin"/"... end" and its cost. 004_3a0c11dfd5eebac6.txt's "基础案例" is the same
 * program (get_url, with the status code first), and runs as `crawl_threads 004`.
 *
 * Porting notes: pages come from fake_site.h; each fetch sleeps 20 ms in place of the
 * network. With real sleeps, 50 threads overlap their waits: the multi-thread crawl
 * takes about one fetch, the single-thread crawl about fifty. The last line says how
 * many fetches were in flight at once at most (1 for the single thread): the overlap
 * itself, which the tests check instead of comparing two times on a busy machine.
 */
#include <braid.h>

#include "example.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_site.h"

#define FETCH_S 0.02

static bool status_first = false; /* 004's get_url prints res.status_code first */
static atomic_int in_flight, most_in_flight;

static void craw(void *arg) { /* 爬虫代码 */
    int page = (int)(intptr_t)arg;
    int now = atomic_fetch_add(&in_flight, 1) + 1;
    for (int most = atomic_load(&most_in_flight);
         now > most && !atomic_compare_exchange_weak(&most_in_flight, &most, now);)
        ;
    br_sleep_s(FETCH_S); /* r = requests.get(url) */
    atomic_fetch_sub(&in_flight, 1);
    char *text = fake_page(page);
    if (status_first)
        printf("200 %zu %s\n", text ? strlen(text) : 0, fake_url(page));
    else
        printf("%s %zu\n", fake_url(page), text ? strlen(text) : 0);
    free(text);
}

static void single_thread(void) { /* 单线程爬虫 */
    printf("single thread begin\n");
    for (int page = 1; page <= FAKE_PAGES; page++)
        craw((void *)(intptr_t)page);
    printf("single thread end\n");
}

static void multi_thread(void) { /* 多线程爬虫 */
    printf("multi thread begin\n");
    br_thread *threads[FAKE_PAGES];
    for (int page = 1; page <= FAKE_PAGES; page++)
        must(br_thread_start(&threads[page - 1], craw, (void *)(intptr_t)page, NULL),
             "start");
    for (int i = 0; i < FAKE_PAGES; i++) {
        must(br_thread_join(threads[i], BR_FOREVER), "join");
        br_thread_free(threads[i]);
    }
    printf("multi thread end\n");
}

int main(int argc, char **argv) {
    status_first = argc > 1 && strcmp(argv[1], "004") == 0;
    int64_t start = br_now();
    single_thread();
    printf("single thread cost: %.3f seconds\n", (double)(br_now() - start) / BR_SEC);

    start = br_now();
    multi_thread();
    printf("multi thread cost: %.3f seconds\n", (double)(br_now() - start) / BR_SEC);
    printf("fetches in flight at once, at most: %d\n", atomic_load(&most_in_flight));
    return 0;
}
