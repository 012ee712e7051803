/* braid serve and the crawl fixture server, over real sockets: the routes' exact bodies,
 * 400s and 404s, the fan-out's three results, a killed process-pool worker (one 500,
 * then served again), a graceful stop with a request in progress, SIGTERM to the
 * command (exit 0, nothing left of its process group), and no leaked children or
 * descriptors. The client here is a few lines of raw HTTP/1.1, so that these tests
 * depend on the server alone.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef BRAID_APP_HTTP

#include "cli.h"
#include "fixture.h"
#include "serve.h"

typedef struct reply {
    int status;
    char *raw;        /* the whole reply, NUL-terminated */
    const char *body; /* into raw, or the decoded chunks */
    size_t len;
    char *decoded;
} reply;

static void reply_free(reply *r) {
    free(r->raw);
    free(r->decoded);
    memset(r, 0, sizeof *r);
}

static int conn_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    BR_CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BR_CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_get(int fd, const char *path) {
    char rq[12000];
    int n = snprintf(rq, sizeof rq,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    BR_CHECK(n > 0 && (size_t)n < sizeof rq);
    BR_CHECK_EQ(write(fd, rq, (size_t)n), n);
}

static const char *header_end(const char *raw) {
    const char *e = strstr(raw, "\r\n\r\n");
    return e != NULL ? e + 4 : NULL;
}

static void dechunk(reply *r, const char *p, const char *end) {
    r->decoded = malloc((size_t)(end - p) + 1);
    size_t n = 0;
    for (;;) {
        char *next = NULL;
        unsigned long sz = strtoul(p, &next, 16);
        const char *crlf = strstr(p, "\r\n");
        BR_CHECK(crlf != NULL && next <= crlf);
        p = crlf + 2;
        if (sz == 0)
            break;
        BR_CHECK(p + sz + 2 <= end);
        memcpy(r->decoded + n, p, sz);
        n += sz;
        p += sz + 2;
    }
    r->decoded[n] = '\0';
    r->body = r->decoded;
    r->len = n;
}

/* Reads the reply to EOF (the request said Connection: close). false if the server
 * closed without answering. */
static bool read_reply(int fd, reply *r) {
    memset(r, 0, sizeof *r);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int64_t deadline = br_test_hang_guard();
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(br_deadline_left(deadline) / 1000000);
        BR_CHECK(left > 0);
        int pr = poll(&p, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        BR_CHECK(pr == 1);
        if (n + 1 == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == ECONNRESET)
            break;
        BR_CHECK(got >= 0);
        if (got == 0)
            break;
        n += (size_t)got;
        /* complete by its Content-Length: done (a server may keep the connection a
         * moment before closing it) */
        buf[n] = '\0';
        const char *body = header_end(buf);
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (body != NULL && cl != NULL && cl < body &&
            (size_t)(buf + n - body) >= strtoul(cl + 17, NULL, 10))
            break;
    }
    close(fd);
    buf[n] = '\0';
    r->raw = buf;
    if (n == 0)
        return false;
    BR_CHECK(sscanf(buf, "HTTP/1.1 %d ", &r->status) == 1);
    const char *body = header_end(buf);
    BR_CHECK(body != NULL);
    if (strcasestr(buf, "\r\nTransfer-Encoding: chunked") != NULL &&
        strcasestr(buf, "\r\nTransfer-Encoding: chunked") < body) {
        dechunk(r, body, buf + n);
    } else {
        r->body = body;
        r->len = (size_t)(buf + n - body);
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl != NULL && cl < body)
            BR_CHECK_EQ(strtoul(cl + 17, NULL, 10), r->len);
    }
    return true;
}

static void get(int port, const char *path, reply *r) {
    int fd = conn_open(port);
    send_get(fd, path);
    BR_CHECK(read_reply(fd, r));
}

/* The value of a response header (case-insensitive name), copied into out. */
static bool header(const reply *r, const char *name, char *out, size_t cap) {
    char want[128];
    snprintf(want, sizeof want, "\r\n%s:", name);
    const char *h = strcasestr(r->raw, want);
    const char *end = header_end(r->raw);
    if (h == NULL || h > end)
        return false;
    h += strlen(want);
    while (*h == ' ')
        h++;
    size_t n = strcspn(h, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, h);
    return true;
}

static void check_body(const reply *r, int status, const char *body) {
    if (r->status != status || r->len != strlen(body) || memcmp(r->body, body, r->len) != 0)
        fail_msg("got %d '%.*s', want %d '%s'", r->status, (int)r->len, r->body, status, body);
}

static int port_of(const char *url) {
    const char *colon = strrchr(url, ':');
    BR_CHECK(colon != NULL);
    return atoi(colon + 1);
}

static braid_serve *start(int workers) {
    braid_serve *s = NULL;
    BR_CHECK_OK(braid_serve_start(&(braid_serve_opts){.port = 0, .workers = workers}, &s));
    BR_CHECK(strncmp(braid_serve_url(s), "http://127.0.0.1:", 17) == 0);
    return s;
}

static void stop(braid_serve *s) {
    BR_CHECK_OK(braid_serve_stop(s, br_test_hang_guard()));
    br_test_wait_no_children();
}

/* --- braid serve's routes --- */

static void is_prime_json(void **state) {
    (void)state;
    braid_serve *s = start(2);
    int port = port_of(braid_serve_url(s));
    reply r;
    get(port, "/is_prime/2,3,4,5,97,1,0,-7,15,7919", &r);
    check_body(&r,
               200,
               "{\"2\": true, \"3\": true, \"4\": false, \"5\": true, \"97\": true, \"1\": false, "
               "\"0\": false, \"-7\": false, \"15\": false, \"7919\": true}");
    char ct[128];
    BR_CHECK(header(&r, "Content-Type", ct, sizeof ct));
    BR_CHECK(strncmp(ct, "application/json", 16) == 0);
    reply_free(&r);

    /* Python's dict: a repeated number keeps its first place; +5 and 007 are 5 and 7 */
    get(port, "/is_prime/7,2,7,+5,007", &r);
    check_body(&r, 200, "{\"7\": true, \"2\": true, \"5\": true}");
    reply_free(&r);

    /* the largest int64 prime below 2^31 squared checks quickly; int64 limits parse */
    get(port, "/is_prime/9223372036854775807,-9223372036854775808,2147483647", &r);
    check_body(&r, 200,
               "{\"9223372036854775807\": false, \"-9223372036854775808\": false, "
               "\"2147483647\": true}");
    reply_free(&r);

    /* every number up to 1000 (the cap), against the same function in-process */
    char *path = malloc(8000);
    size_t n = (size_t)snprintf(path, 8000, "/is_prime/");
    for (int i = 1; i <= BRAID_SERVE_MAX_NUMBERS; i++)
        n += (size_t)snprintf(path + n, 8000 - n, "%s%d", i > 1 ? "," : "", i);
    get(port, path, &r);
    BR_CHECK_EQ(r.status, 200);
    const char *at = r.body;
    int primes = 0;
    for (int i = 1; i <= BRAID_SERVE_MAX_NUMBERS; i++) {
        char want[40];
        snprintf(want, sizeof want, "\"%d\": %s", i, braid_serve_is_prime(i) ? "true" : "false");
        at = strstr(at, want);
        if (at == NULL)
            fail_msg("no %s in order", want);
        primes += braid_serve_is_prime(i);
    }
    BR_CHECK_EQ(primes, 168);
    reply_free(&r);
    free(path);
    stop(s);
    /* nothing left behind: a second service's life leaves the count where the first
     * left it (the first may start the process-wide child watcher, which stays) */
    int fds = br_test_count_fds();
    stop(start(2));
    br_test_wait_fds(fds);
}

static void is_prime_bad_numbers(void **state) {
    (void)state;
    braid_serve *s = start(1);
    int port = port_of(braid_serve_url(s));
    static const char *const bad[] = {"/is_prime/2,x", "/is_prime/2,,3", "/is_prime/3,",
                                      "/is_prime/abc", "/is_prime/1.5",
                                      "/is_prime/99999999999999999999",
                                      "/is_prime/-9223372036854775809", "/is_prime/%20%207",
                                      "/is_prime/--3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reply r;
        get(port, bad[i], &r);
        if (r.status != 400 || strstr(r.body, "\"error\"") == NULL)
            fail_msg("%s: got %d '%s'", bad[i], r.status, r.body);
        char ct[128];
        BR_CHECK(header(&r, "Content-Type", ct, sizeof ct));
        BR_CHECK(strncmp(ct, "application/json", 16) == 0);
        reply_free(&r);
    }
    /* one over the cap */
    char *path = malloc(4000);
    size_t n = (size_t)snprintf(path, 4000, "/is_prime/");
    for (int i = 0; i <= BRAID_SERVE_MAX_NUMBERS; i++)
        n += (size_t)snprintf(path + n, 4000 - n, "%s2", i > 0 ? "," : "");
    reply r;
    get(port, path, &r);
    BR_CHECK_EQ(r.status, 400);
    BR_CHECK(strstr(r.body, "too many numbers") != NULL);
    reply_free(&r);
    free(path);
    /* and the service is fine after all that */
    get(port, "/is_prime/13", &r);
    check_body(&r, 200, "{\"13\": true}");
    reply_free(&r);
    stop(s);
}

static void index_fans_out(void **state) {
    (void)state;
    braid_serve *s = start(1);
    int port = port_of(braid_serve_url(s));
    /* three requests at once: 9 reads on 6 threads, each request gets its own results */
    int fds[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = conn_open(port);
        send_get(fds[i], "/");
    }
    for (int i = 0; i < 3; i++) {
        reply r;
        BR_CHECK(read_reply(fds[i], &r));
        check_body(&r, 200,
                   "{\"result_file\": \"file result\", \"result_db\": \"db result\", "
                   "\"result_api\": \"api result\"}");
        reply_free(&r);
    }
    stop(s);
}

static void hello_and_404(void **state) {
    (void)state;
    braid_serve *s = start(1);
    int port = port_of(braid_serve_url(s));
    reply r;
    get(port, "/hello", &r);
    check_body(&r, 200, "Hello, World!");
    reply_free(&r);
    get(port, "/nope", &r);
    BR_CHECK_EQ(r.status, 404);
    reply_free(&r);
    get(port, "/is_prime", &r);
    BR_CHECK_EQ(r.status, 404);
    reply_free(&r);
    stop(s);
}

/* CPU ticks a process has used (utime + stime), from /proc/<pid>/stat. */
static long cpu_ticks(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    long ut = 0, st = 0;
    /* after the comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &ut, &st) != 2)
        return -1;
    return ut + st;
}

/* The pool's n workers' pids, once all n have started (they start on the pool's own
 * thread). */
static void wait_workers(braid_serve *s, int *pids, int n) {
    int64_t deadline = br_test_hang_guard();
    while (braid_serve_worker_pids(s, pids, n) != n && br_now() < deadline)
        br_sleep(1000000);
    BR_CHECK_EQ(braid_serve_worker_pids(s, pids, n), n);
}

/* A prime whose trial division takes seconds (2^62 - 57): a request in progress. */
#define SLOW_PRIME "4611686018427387847"

/* Waits until one of the pool's workers has used CPU since `base`: it runs the slow
 * task. Returns its pid. */
static int busy_worker(braid_serve *s, const long *base, const int *pids, int n) {
    int64_t deadline = br_test_hang_guard();
    while (br_now() < deadline) {
        for (int i = 0; i < n; i++)
            if (cpu_ticks(pids[i]) > base[i] + 5)
                return pids[i];
        br_sleep(10 * 1000000);
    }
    (void)s;
    fail_msg("no worker started the slow task");
    return -1;
}

static void killed_worker_fails_one_request(void **state) {
    (void)state;
    braid_serve *s = start(2);
    int port = port_of(braid_serve_url(s));
    int pids[2];
    wait_workers(s, pids, 2);
    long base[2] = {cpu_ticks(pids[0]), cpu_ticks(pids[1])};
    int fd = conn_open(port);
    send_get(fd, "/is_prime/" SLOW_PRIME);
    int victim = busy_worker(s, base, pids, 2);
    print_message("killing %d of %d %d\n", victim, pids[0], pids[1]);
    BR_CHECK_EQ(kill(victim, SIGKILL), 0);
    reply r;
    BR_CHECK(read_reply(fd, &r));
    BR_CHECK_EQ(r.status, 500);
    BR_CHECK(strstr(r.body, "worker died") != NULL);
    reply_free(&r);
    /* the pool replaced it: served again, on both workers */
    for (int i = 0; i < 4; i++) {
        get(port, "/is_prime/2,9,11", &r);
        check_body(&r, 200, "{\"2\": true, \"9\": false, \"11\": true}");
        reply_free(&r);
    }
    wait_workers(s, pids, 2);
    BR_CHECK(pids[0] != victim && pids[1] != victim);
    stop(s);
}

/* A request in progress when the stop comes is answered before the server goes. */
static void stop_drains_request_in_progress(void **state) {
    (void)state;
    braid_serve *s = start(1);
    int port = port_of(braid_serve_url(s));
    int fd = conn_open(port);
    send_get(fd, "/");
    int64_t deadline = br_test_hang_guard();
    while (braid_serve_in_flight(s) == 0 && br_now() < deadline)
        br_sleep(1000000);
    BR_CHECK_EQ(braid_serve_in_flight(s), 1);
    BR_CHECK_OK(braid_serve_stop(s, br_test_hang_guard()));
    reply r;
    BR_CHECK(read_reply(fd, &r));
    check_body(&r, 200,
               "{\"result_file\": \"file result\", \"result_db\": \"db result\", "
               "\"result_api\": \"api result\"}");
    reply_free(&r);
    br_test_wait_no_children();
    /* and the port is closed */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    BR_CHECK(connect(c, (struct sockaddr *)&a, sizeof a) != 0);
    close(c);
}

/* A request still running at the stop's deadline is cancelled (its task stops), the
 * stop returns, and the workers are reaped. */
static void stop_deadline_cancels(void **state) {
    (void)state;
    braid_serve *s = start(1);
    int port = port_of(braid_serve_url(s));
    int pids[1];
    wait_workers(s, pids, 1);
    long base[1] = {cpu_ticks(pids[0])};
    int fd = conn_open(port);
    send_get(fd, "/is_prime/" SLOW_PRIME);
    busy_worker(s, base, pids, 1);
    int rc = braid_serve_stop(s, br_now());
    BR_CHECK(rc == 0 || rc == BR_ETIMEDOUT);
    br_test_wait_no_children();
    reply r;
    if (read_reply(fd, &r)) /* an error status, or no answer at all */
        BR_CHECK(r.status >= 500);
    reply_free(&r);
}

/* The command: the URL on stdout, SIGTERM -> exit 0, nothing left of its group. */
static void command_sigterm_exits_cleanly(void **state) {
    (void)state;
    int out[2];
    BR_CHECK_EQ(pipe2(out, O_CLOEXEC), 0);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        setpgid(0, 0);
        dup2(out[1], 1);
        char *argv[] = {"serve", "--port", "0", "--workers", "2", NULL};
        _exit(braid_serve_main(5, argv));
    }
    close(out[1]);
    char line[256];
    size_t n = 0;
    int64_t deadline = br_test_hang_guard();
    while (n < sizeof line - 1 && (n == 0 || line[n - 1] != '\n')) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        BR_CHECK(poll(&p, 1, (int)(br_deadline_left(deadline) / 1000000)) == 1);
        ssize_t got = read(out[0], line + n, 1);
        BR_CHECK(got == 1);
        n++;
    }
    line[n] = '\0';
    BR_CHECK(strncmp(line, "http://127.0.0.1:", 17) == 0);
    int port = port_of(line);
    reply r;
    get(port, "/is_prime/2,3,4", &r);
    check_body(&r, 200, "{\"2\": true, \"3\": true, \"4\": false}");
    reply_free(&r);
    get(port, "/hello", &r);
    check_body(&r, 200, "Hello, World!");
    reply_free(&r);
    BR_CHECK_EQ(kill(pid, SIGTERM), 0);
    int st = br_test_wait_child(pid);
    BR_CHECK(WIFEXITED(st));
    BR_CHECK_EQ(WEXITSTATUS(st), 0);
    /* its pool's workers went with it */
    BR_CHECK(kill(-pid, 0) != 0 && errno == ESRCH);
    close(out[0]);
}

static void command_bad_usage(void **state) {
    (void)state;
    char *a1[] = {"serve", "--port", "70000", NULL};
    BR_CHECK_EQ(braid_serve_main(3, a1), 2);
    char *a2[] = {"serve", "--bogus", "1", NULL};
    BR_CHECK_EQ(braid_serve_main(3, a2), 2);
    char *a3[] = {"serve", "--latency", "5", NULL};
    BR_CHECK_EQ(braid_serve_main(3, a3), 2);
    char *a4[] = {"serve", "--workers", "0", NULL};
    BR_CHECK_EQ(braid_serve_main(3, a4), 2);
    char *a5[] = {"serve", "--port", NULL};
    BR_CHECK_EQ(braid_serve_main(2, a5), 2);
}

/* --- the fixture server --- */

static void fixture_serves_the_site(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    braid_fixture_server *fs = NULL;
    BR_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0, 0, &fs));
    const char *url = braid_fixture_server_url(fs);
    BR_CHECK(strncmp(url, "http://127.0.0.1:", 17) == 0);
    BR_CHECK_EQ(url[strlen(url) - 1], '/');
    int port = port_of(url);
    BR_CHECK_EQ(braid_fixture_server_port(fs), port);
    for (int n = 1; n <= BRAID_FIXTURE_PAGES; n++) {
        char path[32], *page = NULL;
        size_t len = 0;
        snprintf(path, sizeof path, "/page-%02d.html", n);
        BR_CHECK_OK(braid_fixture_page(n, &page, &len));
        reply r;
        get(port, path, &r);
        BR_CHECK_EQ(r.status, 200);
        BR_CHECK_EQ(r.len, len);
        BR_CHECK(memcmp(r.body, page, len) == 0);
        char ct[128];
        BR_CHECK(header(&r, "Content-Type", ct, sizeof ct));
        BR_CHECK(strcmp(ct, "text/html; charset=utf-8") == 0);
        reply_free(&r);
        free(page);
    }
    size_t len = 0;
    reply r;
    const char *idx = braid_fixture_index(&len);
    get(port, "/", &r);
    BR_CHECK_EQ(r.status, 200);
    BR_CHECK_EQ(r.len, len);
    BR_CHECK(memcmp(r.body, idx, len) == 0);
    reply_free(&r);
    get(port, "/hello.txt", &r);
    check_body(&r, 200, "Hello, World!");
    reply_free(&r);
    get(port, "/robots.txt", &r);
    check_body(&r, 200, "User-agent: *\nAllow: /\n");
    reply_free(&r);
    static const char *const missing[] = {"/page-51.html", "/page-00.html", "/page-7.html",
                                          "/page-07.htm", "/page-07.html/x", "/favicon.ico"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        get(port, missing[i], &r);
        if (r.status != 404)
            fail_msg("%s: got %d", missing[i], r.status);
        reply_free(&r);
    }
    BR_CHECK_OK(braid_fixture_server_stop(fs));
    br_test_wait_fds(fds);
}

/* With latency, many requests at once are all answered, each with its own page: the
 * sleep suspends the connection's coroutine, not the loop. */
static void fixture_latency_concurrent(void **state) {
    (void)state;
    braid_fixture_server *fs = NULL;
    BR_CHECK_OK(braid_fixture_server_start(NULL, 0, 50 * 1000000LL, &fs));
    int port = braid_fixture_server_port(fs);
    int fds[BRAID_FIXTURE_PAGES];
    for (int n = 1; n <= BRAID_FIXTURE_PAGES; n++) {
        char path[32];
        snprintf(path, sizeof path, "/page-%02d.html", n);
        fds[n - 1] = conn_open(port);
        send_get(fds[n - 1], path);
    }
    for (int n = BRAID_FIXTURE_PAGES; n >= 1; n--) {
        char *page = NULL;
        size_t len = 0;
        BR_CHECK_OK(braid_fixture_page(n, &page, &len));
        reply r;
        BR_CHECK(read_reply(fds[n - 1], &r));
        BR_CHECK_EQ(r.status, 200);
        BR_CHECK_EQ(r.len, len);
        BR_CHECK(memcmp(r.body, page, len) == 0);
        reply_free(&r);
        free(page);
    }
    BR_CHECK_OK(braid_fixture_server_stop(fs));
    BR_CHECK_ERR(braid_fixture_server_start(NULL, 0, -1, &fs), BR_EINVAL);
    BR_CHECK_ERR(braid_fixture_server_start(NULL, 0, 0, NULL), BR_EINVAL);
}

#define SERVE_TESTS                                                                      \
    cmocka_unit_test(is_prime_json), cmocka_unit_test(is_prime_bad_numbers),             \
        cmocka_unit_test(index_fans_out), cmocka_unit_test(hello_and_404),               \
        cmocka_unit_test(killed_worker_fails_one_request),                               \
        cmocka_unit_test(stop_drains_request_in_progress),                               \
        cmocka_unit_test(stop_deadline_cancels),                                         \
        cmocka_unit_test(command_sigterm_exits_cleanly),                                 \
        cmocka_unit_test(command_bad_usage), cmocka_unit_test(fixture_serves_the_site),  \
        cmocka_unit_test(fixture_latency_concurrent)

#else /* no http layer: the same names, skipped */

static void no_http(void **state) {
    (void)state;
    print_message("skipped: braid built without the http layer\n");
    skip();
}
#define is_prime_json no_http
#define is_prime_bad_numbers no_http
#define index_fans_out no_http
#define hello_and_404 no_http
#define killed_worker_fails_one_request no_http
#define stop_drains_request_in_progress no_http
#define stop_deadline_cancels no_http
#define command_sigterm_exits_cleanly no_http
#define command_bad_usage no_http
#define fixture_serves_the_site no_http
#define fixture_latency_concurrent no_http
#define SERVE_TESTS                                                                      \
    cmocka_unit_test(is_prime_json), cmocka_unit_test(is_prime_bad_numbers),             \
        cmocka_unit_test(index_fans_out), cmocka_unit_test(hello_and_404),               \
        cmocka_unit_test(killed_worker_fails_one_request),                               \
        cmocka_unit_test(stop_drains_request_in_progress),                               \
        cmocka_unit_test(stop_deadline_cancels),                                         \
        cmocka_unit_test(command_sigterm_exits_cleanly),                                 \
        cmocka_unit_test(command_bad_usage), cmocka_unit_test(fixture_serves_the_site),  \
        cmocka_unit_test(fixture_latency_concurrent)
#endif

BR_TEST_MAIN(SERVE_TESTS)
