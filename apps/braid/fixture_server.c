/* fixture_server.c: the crawl fixture served on loopback (fixture.h).
 *
 * Design note. The 50 pages are generated once when the server starts and kept in
 * memory; a request copies nothing but what br_http_res_send copies. Every response,
 * 404s included, waits latency_ns first with br_aio_sleep, which suspends only the
 * connection's coroutine: a crawler with 50 requests in flight sees all 50 answered
 * after one latency, as from a real site with that round trip, not one after another.
 * Routes: "/", "/robots.txt", "/hello.txt", "/{name}" (page-NN.html, else 404).
 */
#include "fixture.h"
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct braid_fixture_server {
    int64_t latency_ns;
    char *pages[BRAID_FIXTURE_PAGES];
    size_t lens[BRAID_FIXTURE_PAGES];
    braid_httpd *httpd;
};

static const char HTML[] = "text/html; charset=utf-8";
static const char TEXT[] = "text/plain; charset=utf-8";
static const char ROBOTS[] = "User-agent: *\nAllow: /\n";

static int delay(const braid_fixture_server *fs) {
    return fs->latency_ns > 0 ? br_aio_sleep(fs->latency_ns) : 0;
}

static int on_index(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    int rc = delay(arg);
    if (rc != 0)
        return rc;
    size_t len = 0;
    const char *body = braid_fixture_index(&len);
    return br_http_res_send(res, 200, HTML, body, len);
}

static int on_robots(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    int rc = delay(arg);
    return rc != 0 ? rc : br_http_res_send(res, 200, TEXT, ROBOTS, sizeof ROBOTS - 1);
}

static int on_hello(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    int rc = delay(arg);
    if (rc != 0)
        return rc;
    size_t len = 0;
    const char *body = braid_fixture_hello(&len);
    return br_http_res_send(res, 200, TEXT, body, len);
}

/* "page-NN.html" with NN in 01..50: the page number, else 0. */
static int page_number(const char *name) {
    int n = 0;
    char tail[8];
    if (strlen(name) != strlen("page-01.html") || sscanf(name, "page-%2d%7s", &n, tail) != 2)
        return 0;
    if (name[5] < '0' || name[5] > '9' || name[6] < '0' || name[6] > '9')
        return 0;
    if (strcmp(tail, ".html") != 0 || n < 1 || n > BRAID_FIXTURE_PAGES)
        return 0;
    return n;
}

static int on_page(br_http_req *req, br_http_res *res, void *arg) {
    braid_fixture_server *fs = arg;
    int rc = delay(fs);
    if (rc != 0)
        return rc;
    const char *name = br_http_req_param(req, "name");
    int n = name != NULL ? page_number(name) : 0;
    if (n == 0)
        return br_http_res_error(res, 404, "no such page");
    return br_http_res_send(res, 200, HTML, fs->pages[n - 1], fs->lens[n - 1]);
}

static int setup(br_http_server *s, void *arg) {
    int rc = br_http_route(s, "GET", "/", on_index, arg);
    if (rc == 0)
        rc = br_http_route(s, "GET", "/robots.txt", on_robots, arg);
    if (rc == 0)
        rc = br_http_route(s, "GET", "/hello.txt", on_hello, arg);
    if (rc == 0)
        rc = br_http_route(s, "GET", "/{name}", on_page, arg);
    return rc;
}

static void fixture_free(braid_fixture_server *fs) {
    for (int i = 0; i < BRAID_FIXTURE_PAGES; i++)
        free(fs->pages[i]);
    free(fs);
}

int braid_fixture_server_start(const char *host, int port, int64_t latency_ns,
                               braid_fixture_server **out) {
    if (out == NULL || latency_ns < 0)
        return BR_EINVAL;
    braid_fixture_server *fs = calloc(1, sizeof *fs);
    if (fs == NULL)
        return BR_ENOMEM;
    fs->latency_ns = latency_ns;
    int rc = 0;
    for (int i = 0; i < BRAID_FIXTURE_PAGES && rc == 0; i++)
        rc = braid_fixture_page(i + 1, &fs->pages[i], &fs->lens[i]);
    /* Every response waits the latency: the handler timeout (30 s by default) counts
     * from after it, so any --latency is served. */
    br_http_server_opts so = {.handler_timeout_ns = latency_ns > BR_FOREVER - 30 * BR_SEC
                                                        ? BR_FOREVER
                                                        : latency_ns + 30 * BR_SEC};
    if (rc == 0)
        rc = braid_httpd_start(host, port, &so, setup, fs, &fs->httpd);
    if (rc != 0) {
        fixture_free(fs);
        return rc;
    }
    *out = fs;
    return 0;
}

const char *braid_fixture_server_url(const braid_fixture_server *s) {
    return s == NULL ? NULL : braid_httpd_url(s->httpd);
}

int braid_fixture_server_port(const braid_fixture_server *s) {
    return s == NULL ? BR_EINVAL : braid_httpd_port(s->httpd);
}

int braid_fixture_server_stop(braid_fixture_server *s) {
    if (s == NULL)
        return BR_EINVAL;
    int rc = braid_httpd_stop(s->httpd, br_deadline_after_s(5));
    fixture_free(s);
    return rc;
}
