/* httpd.c: an http server on a thread and loop of its own (httpd.h).
 *
 * The server thread owns the loop and the br_http_server: it makes both, listens, and
 * tells the starter the outcome through a future, from a callback that runs once the
 * loop is running (so a stop can never come before the loop it stops). stop() calls
 * br_http_server_shutdown from the caller's thread (callable from any thread: it
 * returns when every connection is gone), then br_loop_stop; the thread frees the
 * server and the loop after its run returns.
 */
#include "httpd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct braid_httpd {
    char host[128];
    int port;
    br_http_server_opts opts;
    bool have_opts;
    braid_httpd_setup_fn setup;
    void *arg;
    br_future *ready; /* i64 port, or the failure code */
    br_loop *loop;
    br_http_server *server;
    br_thread *thread;
    char url[192];
};

static void on_running(void *arg) {
    braid_httpd *h = arg;
    br_future_set_result_i64(h->ready, br_http_server_port(h->server));
}

static void serve_thread(void *arg) {
    braid_httpd *h = arg;
    int rc = br_loop_new(&h->loop);
    if (rc == 0)
        rc = br_http_server_new(&h->server, h->have_opts ? &h->opts : NULL);
    if (rc == 0 && h->setup != NULL)
        rc = h->setup(h->server, h->arg);
    if (rc == 0)
        rc = br_http_server_listen(h->server, h->loop, h->host, h->port);
    if (rc == 0)
        rc = br_call_soon(h->loop, on_running, h);
    if (rc == 0)
        rc = br_loop_run_forever(h->loop);
    else
        br_future_set_exception(h->ready, rc, "the server could not start");
    if (h->server != NULL)
        br_http_server_free(h->server);
    h->server = NULL;
    if (h->loop != NULL)
        br_loop_free(h->loop);
    h->loop = NULL;
}

int braid_httpd_start(const char *host, int port, const br_http_server_opts *opts,
                      braid_httpd_setup_fn setup, void *arg, braid_httpd **out) {
    if (out == NULL || port < 0 || port > 65535)
        return BR_EINVAL;
    if (host == NULL)
        host = "127.0.0.1";
    if (strlen(host) >= sizeof((braid_httpd *)0)->host)
        return BR_EINVAL;
    braid_httpd *h = calloc(1, sizeof *h);
    if (h == NULL)
        return BR_ENOMEM;
    snprintf(h->host, sizeof h->host, "%s", host);
    h->port = port;
    if (opts != NULL) {
        h->opts = *opts;
        h->have_opts = true;
    }
    h->setup = setup;
    h->arg = arg;
    int rc = br_future_new(&h->ready);
    if (rc != 0) {
        free(h);
        return rc;
    }
    rc = br_thread_start(&h->thread, serve_thread, h, &(br_thread_opts){.name = "braid-httpd", .daemon = true});
    if (rc != 0) {
        br_future_release(h->ready);
        free(h);
        return rc;
    }
    int64_t got = 0;
    rc = br_future_result_i64(h->ready, BR_FOREVER, &got);
    if (rc != 0) {
        br_thread_join(h->thread, BR_FOREVER);
        br_thread_free(h->thread);
        br_future_release(h->ready);
        free(h);
        return rc;
    }
    h->port = (int)got;
    snprintf(h->url, sizeof h->url, strchr(host, ':') ? "http://[%s]:%d/" : "http://%s:%d/",
             host, h->port);
    *out = h;
    return 0;
}

int braid_httpd_port(const braid_httpd *h) { return h == NULL ? BR_EINVAL : h->port; }

const char *braid_httpd_url(const braid_httpd *h) { return h == NULL ? NULL : h->url; }

int braid_httpd_stop(braid_httpd *h, int64_t deadline) {
    if (h == NULL)
        return BR_EINVAL;
    int rc = br_http_server_shutdown(h->server, deadline);
    br_loop_stop(h->loop);
    br_thread_join(h->thread, BR_FOREVER);
    br_thread_free(h->thread);
    br_future_release(h->ready);
    free(h);
    return rc;
}
