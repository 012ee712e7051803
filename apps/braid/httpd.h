/* httpd.h: an http server on a thread and loop of its own, for the braid program's
 * services (braid serve, the crawl fixture) and for tests that start them in-process.
 *
 * start() makes the thread, which makes a loop and a br_http_server, lets `setup` add
 * the routes, listens, and reports the port once its loop runs; stop() shuts the server
 * down gracefully (requests in progress finish, idle connections close; at the deadline
 * what is left is cancelled), stops the loop, joins the thread and frees everything.
 */
#ifndef BRAID_APP_HTTPD_H
#define BRAID_APP_HTTPD_H

#include <braid.h>
#include <braid/http.h>

typedef struct braid_httpd braid_httpd;

/* Adds the routes to s (on the server's thread, before it listens): 0 or a code. */
typedef int (*braid_httpd_setup_fn)(br_http_server *s, void *arg);

/* opts may be NULL. host NULL: "127.0.0.1". 0 or the first failing call's code (the
 * setup's, br_http_server_listen's: BR_EADDRINUSE, ...). */
int braid_httpd_start(const char *host, int port, const br_http_server_opts *opts,
                      braid_httpd_setup_fn setup, void *arg, braid_httpd **out);
int braid_httpd_port(const braid_httpd *h);
/* "http://HOST:PORT/" (an IPv6 host in brackets). */
const char *braid_httpd_url(const braid_httpd *h);
/* Graceful shutdown with `deadline` (absolute), then frees h. 0 or the shutdown's code. */
int braid_httpd_stop(braid_httpd *h, int64_t deadline);

#endif
