/* W9 "big" (BENCH.md; the Python peer's w9_crawl.py --variant big-shared/big-perpage):
 * 2,000 fetches of the fixture's 50 pages (URL i = page-((i % 50) + 1).html) from a
 * zero-latency server (nginx), 50 in flight, fetch only (no parse), byte counts checked
 * against the files. Coroutines on one loop, braid's HTTP client:
 *
 *   big-shared    one client for every fetch (its connections kept alive), as one
 *                 aiohttp.ClientSession
 *   big-perpage   a new client per fetch (a new connection each), as a new session per
 *                 fetch
 *
 *   bench_http_client VARIANT BASE_URL SITE_DIR [N]
 *
 * Timed: from before the first fetch to after the last. Prints the JSON object of
 * BENCH.md: {"workload": "W9", "variant": "big-shared", "metric": "pages_per_s", ...};
 * exits 1 when a byte count is wrong or a fetch failed.
 */
#include <braid.h>
#include <braid/http.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PAGES 50
#define INFLIGHT 50

typedef struct run {
    const char *base;
    bool shared;
    int n;
    br_http_client *c;
    long sizes[PAGES];
    int next;        /* the next fetch to start (one loop: no lock) */
    int bad;
    long long bytes;
} run;

static int fetcher(br_task *t) {
    run *r = *(run *const *)br_task_arg(t, NULL);
    char url[512];
    for (int i; (i = r->next++) < r->n;) {
        snprintf(url, sizeof url, "%s/page-%02d.html", r->base, i % PAGES + 1);
        br_http_client *c = r->c;
        if (!r->shared && br_http_client_new(&c, &(br_http_client_opts){0}) != 0) {
            r->bad++;
            continue;
        }
        br_http_request rq = {.url = url};
        br_http_response *resp;
        int rc = br_http_fetch(c, &rq, &resp);
        if (rc != 0) {
            fprintf(stderr, "%s: %s\n", url, br_strerror(rc));
            r->bad++;
        } else {
            if (resp->status != 200 || (long)resp->body_len != r->sizes[i % PAGES])
                r->bad++;
            r->bytes += (long long)resp->body_len;
            br_http_response_free(resp);
        }
        if (!r->shared)
            br_http_client_free(c);
    }
    return 0;
}

static int main_task(br_task *t) {
    run *r = *(run *const *)br_task_arg(t, NULL);
    br_future *fs[INFLIGHT];
    for (int i = 0; i < INFLIGHT; i++)
        if (br_create_task(NULL, fetcher, &r, sizeof r, &fs[i]) != 0)
            return 1;
    int rc = br_gather(fs, INFLIGHT, true, BR_FOREVER);
    for (int i = 0; i < INFLIGHT; i++)
        br_future_release(fs[i]);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[1], "big-shared") != 0 && strcmp(argv[1], "big-perpage"))) {
        fprintf(stderr, "usage: %s big-shared|big-perpage BASE_URL SITE_DIR [N]\n", argv[0]);
        return 2;
    }
    run r = {.base = argv[2], .shared = strcmp(argv[1], "big-shared") == 0,
             .n = argc > 4 ? atoi(argv[4]) : 2000};
    for (int p = 0; p < PAGES; p++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/page-%02d.html", argv[3], p + 1);
        if (stat(path, &st) != 0) {
            fprintf(stderr, "%s: missing (generate the fixture with gen_site.py)\n", path);
            return 2;
        }
        r.sizes[p] = (long)st.st_size;
    }
    /* As aiohttp's default connector (100 connections, no per-host limit): the 50 in
     * flight each get one, not the client's default of 6 per host. */
    if (br_http_client_new(&r.c, &(br_http_client_opts){.max_per_host = INFLIGHT}) != 0)
        return 1;
    run *rp = &r;
    int64_t t0 = br_now();
    int code = 0;
    int rc = br_aio_run(main_task, &rp, sizeof rp, &code);
    int64_t t1 = br_now();
    br_http_client_free(r.c);
    double s = (double)(t1 - t0) / 1e9;
    bool ok = rc == 0 && code == 0 && r.bad == 0 && r.next >= r.n;
    printf("{\"workload\": \"W9\", \"variant\": \"%s\", \"impl\": \"braid\", \"metric\": "
           "\"pages_per_s\", \"value\": %.1f, \"unit\": \"pages/s\", \"seconds\": %.4f, "
           "\"ok\": %s, \"n\": %d, \"MiB\": %.1f}\n",
           argv[1], r.n / s, s, ok ? "true" : "false", r.n, (double)r.bytes / 1048576.0);
    return ok ? 0 : 1;
}
