/* BENCH.md N5 / W10 "hello": braid's HTTP server answering GET /hello.txt (and
 * /hello) with the 13 bytes "Hello, World!" as text/plain, as the peers' minimal
 * responders do (peers/native: libuv, Go net/http, nginx). It only serves: wrk
 * measures it; bench/http_hello.sh runs it and the peers under the same wrk command
 * and prints METRIC lines for tools/side-by-side.
 *
 *   bench_http_server PORT [--log | --no-handler-timeout]
 *                                      serves on 127.0.0.1:PORT until SIGTERM/SIGINT
 *
 * --log writes the access log to stderr (to see what a log line costs);
 * --no-handler-timeout runs the handler without its timeout scope (handler_timeout_ns
 * BR_FOREVER), to see what the default 30 s scope costs a request.
 * One loop on one thread (the main one); a signal shuts the server down gracefully.
 */
#define _GNU_SOURCE
#include <braid.h>
#include <braid/aio.h>
#include <braid/http.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int hello(br_http_req *req, br_http_res *res, void *arg) {
    (void)req;
    (void)arg;
    return br_http_res_send(res, 200, "text/plain", "Hello, World!", 13);
}

struct stopper {
    sigset_t set;
    br_http_server *s;
    br_loop *loop;
};

static void *stop_main(void *p) {
    struct stopper *st = p;
    int sig;
    sigwait(&st->set, &sig);
    (void)br_http_server_shutdown(st->s, br_deadline_after(BR_SEC));
    (void)br_loop_stop(st->loop);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_http_server PORT [--log | --no-handler-timeout]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    bool log = argc > 2 && strcmp(argv[2], "--log") == 0;
    bool no_timeout = argc > 2 && strcmp(argv[2], "--no-handler-timeout") == 0;
    struct stopper st;
    sigemptyset(&st.set);
    sigaddset(&st.set, SIGTERM);
    sigaddset(&st.set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &st.set, NULL);
    signal(SIGPIPE, SIG_IGN);

    br_http_server_opts o = {.access_log = log ? stderr : NULL,
                             .handler_timeout_ns = no_timeout ? BR_FOREVER : 0};
    int rc;
    if ((rc = br_loop_new(&st.loop)) != 0 || (rc = br_http_server_new(&st.s, &o)) != 0 ||
        (rc = br_http_route(st.s, "GET", "/hello.txt", hello, NULL)) != 0 ||
        (rc = br_http_route(st.s, "GET", "/hello", hello, NULL)) != 0 ||
        (rc = br_http_server_listen(st.s, st.loop, "127.0.0.1", port)) != 0) {
        fprintf(stderr, "bench_http_server: %s\n", br_strerror(rc));
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, stop_main, &st);
    rc = br_loop_run_forever(st.loop);
    pthread_join(t, NULL);
    br_http_server_free(st.s);
    (void)br_loop_free(st.loop);
    return rc == 0 ? 0 : 1;
}
