/* The HTTP client (braid/http.h): against the HTTP server in client_server.c, from
 * coroutines on a loop and from plain threads, pool workers and a process pool's
 * worker. braid-test-timeout: 120 */
#include "harness.h"

#include "client_server.c"

#include <braid/http.h>

#include "http/client.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static char *url_of(const tsrv *s, const char *path) {
    static _Thread_local char buf[8][256];
    static _Thread_local int next;
    char *b = buf[next++ % 8];
    snprintf(b, 256, "http://127.0.0.1:%d%s", tsrv_port(s), path);
    return b;
}

/* One fetch with the client's defaults but a deadline; the reply or NULL and *rc. */
static br_http_response *get(br_http_client *c, const char *url, int *rc) {
    br_http_request rq = {.url = url, .deadline = br_test_hang_guard()};
    br_http_response *r = NULL;
    *rc = br_http_fetch(c, &rq, &r);
    return r;
}

/* Runs fn(arg) as the main coroutine of a fresh loop; fails the test on a failure. */
static void in_loop(br_task_fn fn, void *arg) {
    int code = -1;
    BR_CHECK_OK(br_aio_run(fn, arg, 0, &code));
    BR_CHECK_OK(code);
}

typedef struct ctx {
    tsrv *s;
    br_http_client *c;
    int n;
} ctx;

/* --- requests and replies ---------------------------------------------------------- */

static void check_echo(br_http_client *c, tsrv *s) {
    /* The tutorials' POST of JSON with custom headers. */
    const char *json = "{\"name\": \"braid\", \"n\": 3}";
    br_http_header hs[] = {{"Content-Type", "application/json"}, {"X-Token", "abc123"}};
    br_http_request rq = {.url = url_of(s, "/echo"), .headers = hs, .nheaders = 2,
                          .body = json, .body_len = strlen(json),
                          .deadline = br_test_hang_guard()};
    br_http_response *r = NULL;
    BR_CHECK_OK(br_http_fetch(c, &rq, &r));
    BR_CHECK_EQ(r->status, 200);
    BR_CHECK(strncmp(r->body, "POST /echo\n", 11) == 0);
    BR_CHECK(strstr(r->body, "\nContent-Type: application/json\n") != NULL);
    BR_CHECK(strstr(r->body, "\nX-Token: abc123\n") != NULL);
    BR_CHECK(strstr(r->body, "\nUser-Agent: braid/") != NULL);
    BR_CHECK(strstr(r->body, "Expect:") == NULL);
    size_t bl = r->body_len, jl = strlen(json);
    BR_CHECK(bl > jl && memcmp(r->body + bl - jl, json, jl) == 0);
    BR_CHECK_EQ(r->body[bl], '\0');
    BR_CHECK(strcmp(r->content_type, "text/plain") == 0);
    BR_CHECK(r->charset == NULL);
    BR_CHECK(strcmp(r->url, url_of(s, "/echo")) == 0);
    BR_CHECK_EQ(r->redirects, 0);
    BR_CHECK_EQ(r->retry_after_ns, -1);
    br_http_response_free(r);

    rq = (br_http_request){.url = url_of(s, "/echo"), .deadline = br_test_hang_guard()};
    BR_CHECK_OK(br_http_fetch(c, &rq, &r));
    BR_CHECK(strncmp(r->body, "GET /echo\n", 10) == 0);
    BR_CHECK(strstr(r->body, "\nAccept-Encoding: ") != NULL);
    br_http_response_free(r);

    rq.method = "PUT";
    rq.body = "x=1";
    rq.body_len = 3;
    BR_CHECK_OK(br_http_fetch(c, &rq, &r));
    BR_CHECK(strncmp(r->body, "PUT /echo\n", 10) == 0);
    BR_CHECK(memcmp(r->body + r->body_len - 4, "\nx=1", 4) == 0);
    br_http_response_free(r);
}

static int echo_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    check_echo(x->c, x->s);
    return 0;
}

static void get_post_echo(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, NULL));
    ctx x = {s, c, 0};
    in_loop(echo_coro, &x);
    check_echo(c, s); /* and from the thread */
    br_http_client_free(c);
    tsrv_stop(s);
    /* The thread's own easy handle stays, until the thread ends: its connection (which
     * the server has cut) and libcurl's wake-up socket pair. */
    BR_CHECK(br_test_count_fds() <= fds + 3);
}

static void check_redirects(br_http_client *c, tsrv *s) {
    int rc;
    br_http_response *r = get(c, url_of(s, "/redirect/3"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 200);
    BR_CHECK_EQ(r->redirects, 3);
    BR_CHECK(strcmp(r->body, "done") == 0);
    BR_CHECK(strcmp(r->url, url_of(s, "/redirect/0")) == 0);
    br_http_response_free(r);
    char err[256] = "";
    br_http_request rq = {.url = url_of(s, "/redirect/5"), .deadline = br_test_hang_guard(),
                          .error = err, .error_cap = sizeof err};
    BR_CHECK_ERR(br_http_fetch(c, &rq, &r), BR_EREDIRECT); /* the client caps at 4 */
    BR_CHECK(r == NULL);
    BR_CHECK(err[0] != '\0');
    r = get(c, url_of(s, "/to-ftp"), &rc);
    BR_CHECK_ERR(rc, BR_EREDIRECT);
    BR_CHECK(r == NULL);
}

static int redirects_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    check_redirects(x->c, x->s);
    return 0;
}

static void redirects(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.max_redirects = 4}));
    ctx x = {s, c, 0};
    in_loop(redirects_coro, &x);
    check_redirects(c, s);
    /* max_redirects -1: a 3xx is the reply. */
    br_http_client *c2;
    BR_CHECK_OK(br_http_client_new(&c2, &(br_http_client_opts){.max_redirects = -1}));
    int rc;
    br_http_response *r = get(c2, url_of(s, "/redirect/1"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 302);
    BR_CHECK(strcmp(br_http_response_header(r, "location"), "/redirect/0") == 0);
    br_http_response_free(r);
    br_http_client_free(c2);
    br_http_client_free(c);
    tsrv_stop(s);
}

static void check_replies(br_http_client *c, tsrv *s) {
    int rc;
    br_http_response *r = get(c, url_of(s, "/gzip"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->body_len, 20 * strlen(GZIP_PLAIN_REPEAT));
    for (int i = 0; i < 20; i++)
        BR_CHECK(memcmp(r->body + i * 17, GZIP_PLAIN_REPEAT, 17) == 0);
    br_http_response_free(r);
    r = get(c, url_of(s, "/status/404"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 404);
    BR_CHECK(strcmp(r->body, "status") == 0);
    br_http_response_free(r);
    r = get(c, url_of(s, "/status/500"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 500);
    br_http_response_free(r);
    r = get(c, url_of(s, "/retry/7"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 429);
    BR_CHECK_EQ(r->retry_after_ns, 7 * BR_SEC);
    br_http_response_free(r);
    r = get(c, url_of(s, "/retrydate"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 503);
    BR_CHECK_EQ(r->retry_after_ns, 0); /* a date in the past: now */
    br_http_response_free(r);
    r = get(c, url_of(s, "/hdr"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK(strcmp(r->content_type, "text/html; Charset=\"ISO-8859-1\"") == 0);
    BR_CHECK(strcmp(r->charset, "iso-8859-1") == 0);
    BR_CHECK(strcmp(br_http_response_header(r, "x-multi"), "a") == 0);
    int multi = 0;
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i].name, "X-Multi") == 0)
            BR_CHECK_EQ(r->headers[i].value[0], multi++ == 0 ? 'a' : 'b');
    BR_CHECK_EQ(multi, 2);
    BR_CHECK(br_http_response_header(r, "Content-Length") != NULL);
    BR_CHECK(br_http_response_header(r, "X-None") == NULL);
    br_http_response_free(r);
    r = get(c, url_of(s, "/trickle"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK(strcmp(r->body, "trickle-trickle") == 0);
    br_http_response_free(r);
    /* The headers are the final response's, after redirects. */
    r = get(c, url_of(s, "/redirect/1"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK(br_http_response_header(r, "Location") == NULL);
    BR_CHECK_EQ(r->body_len, 4);
    br_http_response_free(r);
}

static int replies_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    check_replies(x->c, x->s);
    return 0;
}

static void gzip_status_headers_trickle(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, NULL));
    ctx x = {s, c, 0};
    in_loop(replies_coro, &x);
    check_replies(c, s);
    br_http_client_free(c);
    tsrv_stop(s);
}

/* --- failures --------------------------------------------------------------------------- */

static int refused_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd); /* bound, never listened: nobody is there */
    return ntohs(a.sin_port);
}

static void check_failures(br_http_client *c, tsrv *s) {
    int rc;
    char url[128];
    BR_CHECK(get(c, url_of(s, "/reset"), &rc) == NULL);
    BR_CHECK_ERR(rc, BR_ECONNRESET);
    br_http_request rq = {.url = url_of(s, "/stall"),
                          .deadline = br_now() + 200 * BR_MSEC};
    br_http_response *r = NULL;
    BR_CHECK_ERR(br_http_fetch(c, &rq, &r), BR_ETIMEDOUT);
    BR_CHECK(r == NULL);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", refused_port());
    BR_CHECK(get(c, url, &rc) == NULL);
    BR_CHECK_ERR(rc, BR_ECONNREFUSED);
    BR_CHECK(get(c, "http://nonexistent.invalid/", &rc) == NULL);
    BR_CHECK_ERR(rc, BR_ENAME);
    BR_CHECK(get(c, url_of(s, "/big/5000"), &rc) == NULL); /* declared too long */
    BR_CHECK_ERR(rc, BR_EMSGSIZE);
    BR_CHECK(get(c, url_of(s, "/bigclose/5000"), &rc) == NULL); /* found too long */
    BR_CHECK_ERR(rc, BR_EMSGSIZE);
    r = get(c, url_of(s, "/big/1000"), &rc); /* exactly the cap */
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->body_len, 1000);
    br_http_response_free(r);
    /* A deadline already passed, bad urls and methods: nothing is sent. */
    rq = (br_http_request){.url = url_of(s, "/n/1"), .deadline = br_now() - 1};
    BR_CHECK_ERR(br_http_fetch(c, &rq, &r), BR_ETIMEDOUT);
    const char *bad[] = {"ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1/x",
                         "http://exa mple.com/", "http://a/\r\nX: y"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        BR_CHECK(get(c, bad[i], &rc) == NULL);
        BR_CHECK_ERR(rc, BR_EINVAL);
    }
    rq = (br_http_request){.url = url_of(s, "/n/1"), .method = "GE T"};
    BR_CHECK_ERR(br_http_fetch(c, &rq, &r), BR_EINVAL);
    br_http_header h = {"X-Bad", "a\r\nInjected: 1"};
    rq = (br_http_request){.url = url_of(s, "/n/1"), .headers = &h, .nheaders = 1};
    BR_CHECK_ERR(br_http_fetch(c, &rq, &r), BR_EINVAL);
    /* And the client still works. */
    r = get(c, url_of(s, "/n/9"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK(strcmp(r->body, "page 9") == 0);
    br_http_response_free(r);
}

static int failures_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    check_failures(x->c, x->s);
    return 0;
}

static void failures(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.max_body = 1000}));
    int fds = br_test_count_fds();
    ctx x = {s, c, 0};
    in_loop(failures_coro, &x);
    br_http_client_free(c);
    br_test_wait_fds(fds); /* every socket of the loop's transfers closed */
    BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.max_body = 1000}));
    check_failures(c, s);
    br_http_client_free(c);
    tsrv_stop(s);
}

static void misuse(void **state) {
    (void)state;
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, NULL));
    br_http_request rq = {.url = "http://127.0.0.1:1/"};
    br_http_response *r;
    br_future *f;
    BR_CHECK_ERR(br_http_fetch_async(c, &rq, &f), BR_EPERM); /* no loop here */
    BR_CHECK_ERR(br_http_fetch(NULL, &rq, &r), BR_EINVAL);
    BR_CHECK_ERR(br_http_fetch(c, NULL, &r), BR_EINVAL);
    BR_CHECK_ERR(br_http_fetch(c, &rq, NULL), BR_EINVAL);
    br_http_client *c2 = c;
    BR_CHECK_ERR(br_http_client_new(&c2, &(br_http_client_opts){.max_per_host = -1}),
                 BR_EINVAL);
    BR_CHECK(c2 == NULL);
    br_http_response_free(NULL);
    BR_CHECK(br_http_response_header(NULL, "x") == NULL);
    br_http_client_free(c);
    br_http_client_free(NULL);
}

/* --- connections ------------------------------------------------------------------------- */

static int seq20_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    for (int i = 0; i < 20; i++) {
        char path[32];
        snprintf(path, sizeof path, "/n/%d", i);
        int rc;
        br_http_response *r = get(x->c, url_of(x->s, path), &rc);
        BR_CHECK_OK(rc);
        char want[32];
        snprintf(want, sizeof want, "page %d", i);
        BR_CHECK(strcmp(r->body, want) == 0);
        br_http_response_free(r);
    }
    return 0;
}

static void keepalive(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    for (int mode = 0; mode < 4; mode++) {
        bool fresh = mode & 1, thread = mode & 2;
        br_http_client *c;
        BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.no_keepalive = fresh}));
        tsrv_reset_counts(s);
        ctx x = {s, c, 0};
        int before = tsrv_accepted(s);
        if (thread) {
            for (int i = 0; i < 20; i++) {
                int rc;
                br_http_response *r = get(c, url_of(s, "/n/1"), &rc);
                BR_CHECK_OK(rc);
                br_http_response_free(r);
            }
        } else {
            in_loop(seq20_coro, &x);
        }
        int conns = tsrv_accepted(s) - before;
        BR_CHECK_EQ(conns, fresh ? 20 : 1);
        br_http_client_free(c);
    }
    tsrv_stop(s);
}

typedef struct many {
    tsrv *s;
    br_http_client *c;
    int i;
    int *ok;
} many;

static int one_fetch(br_task *t) {
    const many *m = br_task_arg(t, NULL);
    char path[32], want[32];
    snprintf(path, sizeof path, "/n/%d", m->i);
    snprintf(want, sizeof want, "page %d", m->i);
    int rc;
    br_http_response *r = get(m->c, url_of(m->s, path), &rc);
    if (rc != 0)
        return rc;
    if (r->status == 200 && strcmp(r->body, want) == 0)
        m->ok[m->i]++;
    br_http_response_free(r);
    return 0;
}

static int fanout_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    int n = x->n;
    br_future **fs = calloc((size_t)n, sizeof *fs);
    int *ok = calloc((size_t)n, sizeof *ok);
    for (int i = 0; i < n; i++) {
        many m = {x->s, x->c, i, ok};
        BR_CHECK_OK(br_create_task(NULL, one_fetch, &m, sizeof m, &fs[i]));
    }
    BR_CHECK_OK(br_gather(fs, (size_t)n, true, br_test_hang_guard()));
    for (int i = 0; i < n; i++) {
        int code = -1;
        BR_CHECK_OK(br_future_exception(fs[i], BR_NOWAIT, &code, NULL));
        BR_CHECK_OK(code);
        BR_CHECK_EQ(ok[i], 1); /* each page once, its own */
        br_future_release(fs[i]);
    }
    free(fs);
    free(ok);
    return 0;
}

static void per_host_cap(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.max_per_host = 3}));
    ctx x = {s, c, 50};
    in_loop(fanout_coro, &x);
    BR_CHECK(tsrv_max_open(s) <= 3);
    BR_CHECK(tsrv_accepted(s) >= 1);
    br_http_client_free(c);
    tsrv_stop(s);
}

static void many_concurrent(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.max_per_host = 64}));
    ctx x = {s, c, 200};
    in_loop(fanout_coro, &x);
    /* A second loop: the first one's multi, idle, moves over with its connections. */
    int conns = tsrv_accepted(s);
    in_loop(fanout_coro, &x);
    BR_CHECK_EQ(tsrv_accepted(s), conns);
    BR_CHECK(tsrv_max_open(s) <= 64);
    br_http_client_free(c);
    tsrv_stop(s);
    br_test_wait_fds(fds);
}

/* One client shared by loops on three threads at once, and by a plain thread. */
static void *loop_thread(void *arg) {
    in_loop(fanout_coro, arg);
    return NULL;
}

static void *plain_thread(void *arg) {
    ctx *x = arg;
    for (int i = 0; i < 20; i++) {
        int rc;
        br_http_response *r = get(x->c, url_of(x->s, "/n/2"), &rc);
        BR_CHECK_OK(rc);
        BR_CHECK(strcmp(r->body, "page 2") == 0);
        br_http_response_free(r);
    }
    return NULL;
}

static void shared_by_threads(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, NULL));
    int fds = br_test_count_fds();
    for (int round = 0; round < 2; round++) { /* the second takes over idle multis */
        ctx x = {s, c, 40};
        pthread_t th[4];
        for (int i = 0; i < 3; i++)
            pthread_create(&th[i], NULL, loop_thread, &x);
        pthread_create(&th[3], NULL, plain_thread, &x);
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
    }
    br_http_client_free(c);
    br_test_wait_fds(fds); /* the plain threads' handles went with them */
    tsrv_stop(s);
}

/* --- cancellation --------------------------------------------------------------------------- */

static int stall_fetch(br_task *t) {
    ctx *x = *(ctx *const *)br_task_arg(t, NULL);
    int rc;
    br_http_response *r = get(x->c, url_of(x->s, "/stall"), &rc);
    BR_CHECK(r == NULL);
    x->n = rc;
    return rc;
}

static int cancel_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    br_future *f;
    BR_CHECK_OK(br_create_task(NULL, stall_fetch, &x, sizeof x, &f));
    /* Wait until the server has the request: the transfer is under way. */
    while (tsrv_accepted(x->s) == 0)
        BR_CHECK_OK(br_aio_sleep(BR_MSEC));
    BR_CHECK_OK(br_aio_sleep(20 * BR_MSEC));
    BR_CHECK(!br_future_done(f));
    /* The client's socket to the server is close-on-exec. */
    int clients = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        if (getpeername(fd, (struct sockaddr *)&a, &al) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == tsrv_port(x->s)) {
            BR_CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC);
            clients++;
        }
    }
    BR_CHECK_EQ(clients, 1);
    BR_CHECK(br_future_cancel(f));
    BR_CHECK_ERR(br_future_wait(f, br_test_hang_guard()), 0);
    BR_CHECK(br_future_cancelled(f));
    BR_CHECK_ERR(x->n, BR_ECANCELED);
    br_future_release(f);
    /* The loop goes on, and so does the client. */
    int rc;
    br_http_response *r = get(x->c, url_of(x->s, "/n/5"), &rc);
    BR_CHECK_OK(rc);
    BR_CHECK(strcmp(r->body, "page 5") == 0);
    br_http_response_free(r);

    /* fetch_async's future cancelled from outside, and one completed. */
    br_future *a, *b;
    br_http_request rq = {.url = url_of(x->s, "/stall"), .deadline = br_test_hang_guard()};
    BR_CHECK_OK(br_http_fetch_async(x->c, &rq, &a));
    rq.url = url_of(x->s, "/n/6");
    BR_CHECK_OK(br_http_fetch_async(x->c, &rq, &b));
    void *p = NULL;
    BR_CHECK_OK(br_future_take_ptr(b, br_test_hang_guard(), &p));
    BR_CHECK(strcmp(((br_http_response *)p)->body, "page 6") == 0);
    br_http_response_free(p);
    BR_CHECK(br_future_cancel(a));
    BR_CHECK(br_future_cancelled(a));
    br_future_release(a);
    br_future_release(b);
    /* One left unread: the future frees its reply. */
    rq.url = url_of(x->s, "/n/7");
    BR_CHECK_OK(br_http_fetch_async(x->c, &rq, &a));
    BR_CHECK_OK(br_future_wait(a, br_test_hang_guard()));
    br_future_release(a);
    return 0;
}

/* A cancel from another thread while the fetch's loop isn't running (its thread is
 * busy elsewhere): the future is cancelled at once, for every waiter; the transfer
 * itself (libcurl's easy handle, the connection) can only leave the multi on the
 * loop's thread, and does at the loop's next iteration (docs/http-client.md says
 * why). */
typedef struct blocked {
    ctx *x;
    br_future *f;
} blocked;

static int start_stalled(br_task *t) {
    blocked *b = *(blocked *const *)br_task_arg(t, NULL);
    br_http_request rq = {.url = url_of(b->x->s, "/stall"), .deadline = br_test_hang_guard()};
    BR_CHECK_OK(br_http_fetch_async(b->x->c, &rq, &b->f));
    int64_t guard = br_test_hang_guard();
    while (tsrv_accepted(b->x->s) == 0) { /* the transfer is under way */
        BR_CHECK(br_now() < guard);
        BR_CHECK_OK(br_aio_sleep(BR_MSEC));
    }
    return 0;
}

static int one_iteration(br_task *t) {
    (void)t;
    BR_CHECK_OK(br_aio_yield());
    return br_aio_yield();
}

static void *cancel_from_thread(void *arg) {
    blocked *b = arg;
    BR_CHECK(br_future_cancel(b->f));
    BR_CHECK_ERR(br_future_wait(b->f, BR_NOWAIT), 0);
    return NULL;
}

static int sockets_to(int port) {
    int n = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        if (getpeername(fd, (struct sockaddr *)&a, &al) == 0 && a.sin_family == AF_INET &&
            ntohs(a.sin_port) == port)
            n++;
    }
    return n;
}

static void cancel_while_loop_blocked(void **state) {
    (void)state;
    ctx x = {.s = tsrv_start()};
    BR_CHECK_OK(br_http_client_new(&x.c, NULL));
    br_loop *loop;
    BR_CHECK_OK(br_loop_new(&loop));
    blocked b = {&x, NULL};
    blocked *bp = &b;
    br_future *t;
    BR_CHECK_OK(br_create_task(loop, start_stalled, &bp, sizeof bp, &t));
    BR_CHECK_OK(br_loop_run_until_complete(loop, t));
    br_future_release(t);
    /* the loop is idle now: this thread is its only runner, and it is here */
    BR_CHECK_EQ(sockets_to(tsrv_port(x.s)), 1);
    pthread_t th;
    BR_CHECK(pthread_create(&th, NULL, cancel_from_thread, &b) == 0);
    BR_CHECK(pthread_join(th, NULL) == 0);
    BR_CHECK(br_future_cancelled(b.f));
    BR_CHECK_EQ(sockets_to(tsrv_port(x.s)), 1); /* the abort waits for the loop */
    BR_CHECK_OK(br_create_task(loop, one_iteration, NULL, 0, &t));
    BR_CHECK_OK(br_loop_run_until_complete(loop, t));
    br_future_release(t);
    BR_CHECK_EQ(sockets_to(tsrv_port(x.s)), 0);
    br_future_release(b.f);
    br_http_client_free(x.c);
    BR_CHECK_OK(br_loop_free(loop));
    tsrv_stop(x.s);
}

/* Cancels racing completions: transfers cancelled after 0, 1, 2 ... loop iterations,
 * from the loop and from another thread. Each future ends cancelled, or with its own
 * page; nothing leaks (ASan), no socket stays open. */
typedef struct race {
    br_future *fs[64];
    _Atomic int ready;
} race;

static void *cancel_thread(void *arg) {
    race *r = arg;
    while (atomic_load(&r->ready) == 0)
        sched_yield();
    for (int i = 1; i < 64; i += 2)
        (void)br_future_cancel(r->fs[i]);
    atomic_store(&r->ready, 2);
    return NULL;
}

static int race_coro(br_task *t) {
    ctx *x = (ctx *)br_task_arg(t, NULL);
    int rounds = (int)br_test_scaled(20, 4);
    for (int round = 0; round < rounds; round++) {
        race r = {.ready = 0};
        pthread_t th;
        pthread_create(&th, NULL, cancel_thread, &r);
        for (int i = 0; i < 64; i++) {
            char path[32];
            snprintf(path, sizeof path, "/n/%d", i);
            br_http_request rq = {.url = url_of(x->s, path), .deadline = br_test_hang_guard()};
            BR_CHECK_OK(br_http_fetch_async(x->c, &rq, &r.fs[i]));
        }
        atomic_store(&r.ready, 1);
        for (int i = 0; i < 64; i += 2) {
            for (int k = 0; k < (i / 2 + round) % 4; k++)
                BR_CHECK_OK(br_aio_yield());
            (void)br_future_cancel(r.fs[i]);
        }
        while (atomic_load(&r.ready) != 2)
            BR_CHECK_OK(br_aio_yield());
        pthread_join(th, NULL);
        for (int i = 0; i < 64; i++) {
            BR_CHECK_OK(br_future_wait(r.fs[i], br_test_hang_guard()));
            if (!br_future_cancelled(r.fs[i])) {
                void *p;
                BR_CHECK_OK(br_future_take_ptr(r.fs[i], BR_NOWAIT, &p));
                char want[32];
                snprintf(want, sizeof want, "page %d", i);
                BR_CHECK(strcmp(((br_http_response *)p)->body, want) == 0);
                br_http_response_free(p);
            }
            br_future_release(r.fs[i]);
        }
    }
    /* The aborts the other thread posted run on this loop: every transfer leaves the
     * client's multi (the record's own count, read on its loop's thread). */
    int64_t guard = br_test_hang_guard();
    while (br__hloop_running(x->c, br_loop_current()) > 0) {
        BR_CHECK(br_now() < guard);
        BR_CHECK_OK(br_aio_yield());
    }
    int rc;
    br_http_response *resp = get(x->c, url_of(x->s, "/n/3"), &rc);
    BR_CHECK_OK(rc);
    br_http_response_free(resp);
    return 0;
}

static void cancel_races_completion(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, &(br_http_client_opts){.max_per_host = 8}));
    int fds = br_test_count_fds();
    ctx x = {s, c, 0};
    in_loop(race_coro, &x);
    br_http_client_free(c);
    br_test_wait_fds(fds);
    tsrv_stop(s);
}

static void cancel_mid_transfer(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, NULL));
    int fds = br_test_count_fds();
    ctx x = {s, c, 1};
    in_loop(cancel_coro, &x);
    br_http_client_free(c);
    br_test_wait_fds(fds);
    tsrv_stop(s);
}

/* An idle client holds nothing on the loop: the loop frees (no task left behind: no
 * socket watcher, no timer), and the client goes on with a new loop. */
static void idle_client_leaves_loop(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_http_client *c;
    BR_CHECK_OK(br_http_client_new(&c, NULL));
    for (int round = 0; round < 3; round++) {
        br_loop *l;
        BR_CHECK_OK(br_loop_new(&l));
        ctx x = {s, c, 20};
        br_future *f;
        BR_CHECK_OK(br_create_task(l, fanout_coro, &x, 0, &f));
        BR_CHECK_OK(br_loop_run_until_complete(l, f));
        BR_CHECK_OK(br_future_result(f, BR_NOWAIT, NULL, NULL));
        br_future_release(f);
        BR_CHECK_OK(br_loop_free(l));
    }
    br_http_client_free(c);
    tsrv_stop(s);
}

/* --- HTTPS ---------------------------------------------------------------------------------- */

/* openssl s_server -www on a self-signed certificate made for the test: a client that
 * verifies refuses it (BR_ETLS), an insecure one gets its page; loop and thread. */
typedef struct tls_ctx {
    const char *url;
    br_http_client *secure, *insecure;
} tls_ctx;

static void check_tls(const tls_ctx *x) {
    int rc;
    br_http_response *r = get(x->insecure, x->url, &rc);
    BR_CHECK_OK(rc);
    BR_CHECK_EQ(r->status, 200);
    BR_CHECK(strstr(r->body, "s_server") != NULL);
    br_http_response_free(r);
    char err[256] = "";
    br_http_request rq = {.url = x->url, .deadline = br_test_hang_guard(), .error = err,
                          .error_cap = sizeof err};
    BR_CHECK_ERR(br_http_fetch(x->secure, &rq, &r), BR_ETLS);
    BR_CHECK(err[0] != '\0');
}

static int tls_coro(br_task *t) {
    check_tls(br_task_arg(t, NULL));
    return 0;
}

static void https_self_signed(void **state) {
    (void)state;
    char dir[] = "/tmp/braid-tls-XXXXXX";
    BR_CHECK(mkdtemp(dir) != NULL);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout %s/k.pem -out %s/c.pem -days 1 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", dir, dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        (void)system(cmd);
        fprintf(stderr, "https_self_signed: skipped: no openssl program to serve TLS "
                        "(apt-get install openssl)\n");
        skip();
    }
    int port = refused_port();
    char portstr[16], cert[300], key[300];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(cert, sizeof cert, "%s/c.pem", dir);
    snprintf(key, sizeof key, "%s/k.pem", dir);
    pid_t pid = fork();
    if (pid == 0) {
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        execlp("openssl", "openssl", "s_server", "-quiet", "-www", "-accept", portstr,
               "-cert", cert, "-key", key, (char *)NULL);
        _exit(127);
    }
    BR_CHECK(pid > 0);
    /* Up once it accepts. */
    int64_t guard = br_test_hang_guard();
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
        if (ok == 0)
            break;
        BR_CHECK(br_now() < guard);
        nap_ms(10);
    }
    char url[64];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", port);
    tls_ctx x = {url, NULL, NULL};
    BR_CHECK_OK(br_http_client_new(&x.secure, NULL));
    BR_CHECK_OK(br_http_client_new(&x.insecure, &(br_http_client_opts){.insecure = true}));
    in_loop(tls_coro, &x);
    check_tls(&x);
    br_http_client_free(x.secure);
    br_http_client_free(x.insecure);
    kill(pid, SIGTERM);
    int st;
    BR_CHECK_EQ(waitpid(pid, &st, 0), pid);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    BR_CHECK_EQ(system(cmd), 0);
}

/* --- pools ---------------------------------------------------------------------------------- */

/* A task for any executor: fetches the url in its argument with a client of its own;
 * returns "status body". */
static int fetch_task(br_task *t) {
    size_t len;
    const char *url = br_task_arg(t, &len);
    br_http_client *c;
    int rc = br_http_client_new(&c, NULL);
    if (rc != 0)
        return rc;
    br_http_response *r = NULL;
    br_http_request rq = {.url = url, .deadline = br_test_hang_guard()};
    rc = br_http_fetch(c, &rq, &r);
    if (rc == 0) {
        char out[128];
        snprintf(out, sizeof out, "%d %s", r->status, r->body);
        rc = br_task_return_str(t, out);
        br_http_response_free(r);
    }
    br_http_client_free(c);
    return rc;
}

static void check_pool(br_executor *ex, tsrv *s) {
    br_future *fs[8];
    char urls[8][128];
    for (int i = 0; i < 8; i++) {
        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d/n/%d", tsrv_port(s), i);
        BR_CHECK_OK(br_submit(ex, fetch_task, urls[i], strlen(urls[i]) + 1, &fs[i]));
    }
    for (int i = 0; i < 8; i++) {
        const char *out;
        BR_CHECK_OK(br_future_result_str(fs[i], br_test_hang_guard(), &out));
        char want[32];
        snprintf(want, sizeof want, "200 page %d", i);
        BR_CHECK(strcmp(out, want) == 0);
        br_future_release(fs[i]);
    }
}

static void pools(void **state) {
    (void)state;
    tsrv *s = tsrv_start();
    br_executor *tp;
    BR_CHECK_OK(br_threadpool_new(&tp, &(br_threadpool_opts){.max_workers = 3}));
    check_pool(tp, s);
    BR_CHECK_OK(br_executor_free(tp));
    br_executor *pp;
    BR_CHECK_OK(br_processpool_new(
        &pp, &(br_processpool_opts){.max_workers = 2, .start_method = BR_START_FORK}));
    check_pool(pp, s);
    BR_CHECK_OK(br_executor_free(pp));
    tsrv_stop(s);
}

BR_TEST_MAIN(cmocka_unit_test(get_post_echo), cmocka_unit_test(redirects),
             cmocka_unit_test(gzip_status_headers_trickle), cmocka_unit_test(failures),
             cmocka_unit_test(misuse), cmocka_unit_test(keepalive),
             cmocka_unit_test(per_host_cap), cmocka_unit_test(many_concurrent),
             cmocka_unit_test(shared_by_threads),
             cmocka_unit_test(cancel_mid_transfer),
             cmocka_unit_test(cancel_races_completion),
             cmocka_unit_test(cancel_while_loop_blocked),
             cmocka_unit_test(idle_client_leaves_loop), cmocka_unit_test(pools),
             cmocka_unit_test(https_self_signed))
