/* The program tests/packaging/both_check.cmake builds against an installed braid with
 * both extension libraries, libbraid_http and libbraid_mpi, and runs under
 * braid-mpirun -n 2. It checks that the process holds one copy of braid's state: a
 * future made by libbraid_mpi's executor is awaited by libbraid_http's server
 * (br_http_await in a route's coroutine), on a loop and a thread of libbraid, and the
 * blocking client fetches the answer. With a copy of braid in each library, the
 * executor's future would belong to one copy and the server's waiter to another.
 *
 * Rank 0 prints one line, "braid <version> one copy 49 mpi <ranks>", and exits 0; any
 * failure prints what failed and exits 1. The worker rank never returns from
 * br_mpi_main. */
#include <braid.h>
#include <braid/http.h>
#include <braid/mpi.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(expr)                                                                  \
    do {                                                                             \
        int rc_ = (expr);                                                            \
        if (rc_ != 0) {                                                              \
            fprintf(stderr, "both: %s: %s\n", #expr, br_err_name(rc_));              \
            return 1;                                                                \
        }                                                                            \
    } while (0)

static br_executor *mpi_ex;
static br_loop *loop;

static int square(br_task *t) {
    int64_t x = br_task_arg_i64(t);
    return br_task_return_i64(t, x * x);
}

/* GET /square/{n}: n squared on the worker rank, awaited in this coroutine. */
static int square_route(br_http_req *req, br_http_res *res, void *arg) {
    (void)arg;
    br_future *f;
    int rc = br_submit_i64(mpi_ex, square, atoll(br_http_req_param(req, "n")), &f);
    if (rc != 0)
        return rc;
    rc = br_http_await(req, f, br_deadline_after_s(60));
    int64_t v = 0;
    if (rc == 0)
        rc = br_future_result_i64(f, 0, &v);
    br_future_release(f);
    if (rc != 0)
        return rc;
    char body[32];
    int n = snprintf(body, sizeof body, "%lld", (long long)v);
    return br_http_res_send(res, 200, "text/plain", body, (size_t)n);
}

static void loop_main(void *arg) {
    (void)arg;
    br_loop_run_forever(loop);
}

int main(int argc, char **argv) {
    CHECK(br_mpi_main(&argc, &argv)); /* the worker rank serves tasks in here */
    CHECK(br_mpi_executor_new(&mpi_ex, NULL));

    br_http_server *s;
    CHECK(br_loop_new(&loop));
    CHECK(br_http_server_new(&s, NULL));
    CHECK(br_http_route(s, "GET", "/square/{n}", square_route, NULL));
    CHECK(br_http_server_listen(s, loop, "127.0.0.1", 0));
    br_thread *t;
    CHECK(br_thread_start(&t, loop_main, NULL, NULL));

    br_http_client *c;
    CHECK(br_http_client_new(&c, NULL));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/square/7", br_http_server_port(s));
    br_http_response *r;
    CHECK(br_http_fetch(c, &(br_http_request){.url = url}, &r));
    if (r->status != 200) {
        fprintf(stderr, "both: GET %s: %d %s\n", url, r->status, r->body);
        return 1;
    }
    printf("braid %s one copy %s mpi %d\n", br_version(), r->body, br_mpi_size());
    br_http_response_free(r);
    br_http_client_free(c);

    CHECK(br_http_server_shutdown(s, br_deadline_after_s(60)));
    CHECK(br_loop_stop(loop));
    CHECK(br_thread_join(t, BR_FOREVER));
    CHECK(br_thread_free(t));
    br_http_server_free(s);
    CHECK(br_loop_free(loop));
    CHECK(br_executor_free(mpi_ex));
    return 0;
}
