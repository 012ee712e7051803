/* fixture.h: the W9 crawl fixture site, generated in memory and served on loopback.
 *
 * The pages are those of the Python peer's generator (peers/python/fixture/gen_site.py):
 * 50 blog-list pages of ~70 KB each, 20 "post-item-title" links per page, and the 1000
 * "HREF\tTITLE\n" lines a correct extractor must produce, byte for byte the same (the
 * same splitmix64 stream, the same templates). The generator needs nothing but libc; the
 * server (fixture_server.c) needs the http layer.
 */
#ifndef BRAID_APP_FIXTURE_H
#define BRAID_APP_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

enum { BRAID_FIXTURE_PAGES = 50, BRAID_FIXTURE_POSTS_PER_PAGE = 20 };

/* Page n (1..50) as gen_site.py writes it: *body malloc'ed (NUL-terminated after *len),
 * the caller frees it. BR_EINVAL for n out of range or a NULL pointer, BR_ENOMEM. */
int braid_fixture_page(int n, char **body, size_t *len);
/* expected.tsv: the 1000 "HREF\tTITLE\n" lines in page order (TITLE with its entity
 * references decoded), malloc'ed and NUL-terminated; the caller frees it. */
int braid_fixture_expected(char **tsv, size_t *len);
/* hello.txt: "Hello, World!" (13 bytes, no newline); static, not to be freed. */
const char *braid_fixture_hello(size_t *len);

/* A fixture server on loopback on its own thread and loop: GET /page-NN.html
 * (text/html; charset=utf-8), /hello.txt (text/plain), / (an index page linking the 50
 * pages, for link following), /robots.txt (allow all), 404 otherwise; every response
 * after latency_ns (0: none; a coroutine sleep, the loop keeps serving). port 0: any.
 * The pages are generated once per server and kept in memory. */
typedef struct braid_fixture_server braid_fixture_server;
int braid_fixture_server_start(const char *host, int port, int64_t latency_ns,
                               braid_fixture_server **out);
/* "http://HOST:PORT/"; lives as long as the server. */
const char *braid_fixture_server_url(const braid_fixture_server *s);
int braid_fixture_server_port(const braid_fixture_server *s);
/* Graceful: requests in progress finish (within 5 s), then everything is freed. */
int braid_fixture_server_stop(braid_fixture_server *s);

/* The index page served at "/" (static, NUL-terminated): one <a href="page-NN.html">
 * per page, relative links, in page order. */
const char *braid_fixture_index(size_t *len);

#endif
