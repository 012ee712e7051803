/* braid crawl (apps/braid/crawl.c): what it writes, under every model, against the
 * fixture site's own server, against nginx serving the same pages, and against a test
 * server of raw sockets whose routes fail in every way a page can fail.
 *
 * The command runs in-process (braid_crawl_main with an argv), except for the SIGINT
 * test, which runs the braid program as a child. Outputs are compared as multisets of lines; no
 * test measures time (the only waits are guards against hangs).
 *
 * braid-test-timeout: 180
 */
#include "harness.h"

#include "crawl.h"
#include "fixture.h"

#include <braid/http.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- files and lines --------------------------------------------------------------- */

static char g_dir[256];

static void tmpdir_make(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/braid-crawl-test-XXXXXX");
    BR_CHECK(mkdtemp(g_dir) != NULL);
}

static void tmpdir_remove(void) {
    DIR *d = opendir(g_dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", g_dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d2 = opendir(path);
            struct dirent *e2;
            char p2[768];
            while (d2 && (e2 = readdir(d2)) != NULL) {
                if (e2->d_name[0] == '.')
                    continue;
                snprintf(p2, sizeof p2, "%s/%s", path, e2->d_name);
                unlink(p2);
            }
            if (d2)
                closedir(d2);
            rmdir(path);
        } else {
            unlink(path);
        }
    }
    closedir(d);
    rmdir(g_dir);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    if (len)
        *len = got;
    return s;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Splits text into its lines (each must end with '\n'), sorted. */
static char **lines_sorted(char *text, size_t *n) {
    size_t cap = 16, k = 0;
    char **v = malloc(cap * sizeof *v);
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        BR_CHECK(nl != NULL); /* every line whole */
        *nl = '\0';
        if (k == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        v[k++] = p;
        p = nl + 1;
    }
    qsort(v, k, sizeof *v, cmp_str);
    *n = k;
    return v;
}

/* The output file equals the fixture's expected.tsv as a multiset of lines. */
static void check_equals_expected(const char *path) {
    char *want = NULL;
    size_t wlen = 0;
    BR_CHECK_OK(braid_fixture_expected(&want, &wlen));
    char *got = read_file(path, NULL);
    BR_CHECK(got != NULL);
    size_t nw, ng;
    char **w = lines_sorted(want, &nw), **g = lines_sorted(got, &ng);
    BR_CHECK_EQ(nw, 1000);
    BR_CHECK_EQ(ng, nw);
    for (size_t i = 0; i < nw; i++)
        if (strcmp(w[i], g[i]) != 0)
            fail_msg("line %zu differs: got '%s', want '%s'", i, g[i], w[i]);
    free(w);
    free(g);
    free(want);
    free(got);
}

static int run_crawl(int n, const char **args) {
    char **argv = calloc((size_t)n + 2, sizeof *argv);
    argv[0] = (char *)"crawl";
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    int st = braid_crawl_main(n + 1, argv);
    free(argv);
    return st;
}
#define CRAWL(...) run_crawl((int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), \
                             (const char *[]){__VA_ARGS__})

/* --- a test server of raw sockets --------------------------------------------------- */

typedef struct tserver {
    int fd, port;
    int stop[2];
    pthread_t acceptor;
    atomic_int hits_flaky, hits_ok[8], hits_private, hits_slow;
    atomic_int conns;
    /* /gate/N.html: held until gate_want of them are open at once (then the gate stays
     * open), or until the hang guard; gate_max is the most that were open at once. */
    atomic_int gate_in, gate_max, gate_open, gate_want;
} tserver;

static tserver g_ts;

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        c += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *ctype, const char *extra, const char *body,
                  size_t len) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status, ctype, len, extra ? extra : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

static const char PAGE_FMT[] =
    "<html><head><meta charset=\"utf-8\"><title>t</title></head><body>"
    "<a class=\"post-item-title\" href=\"https://example.org/%d/a\">Page %d, \"quoted\" &amp; more</a>"
    "<a class=\"post-item-title\" href=\"https://example.org/%d/b\">并发 %d</a>"
    "</body></html>";

static void serve_page(int fd, int n) {
    char body[1024];
    int len = snprintf(body, sizeof body, PAGE_FMT, n, n, n, n);
    reply(fd, 200, "text/html; charset=utf-8", NULL, body, (size_t)len);
}

static void *conn_thread(void *arg) {
    int fd = (int)(intptr_t)arg;
    char req[4096];
    size_t got = 0;
    while (got < sizeof req - 1) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[got] = '\0';
    char path[1024] = "";
    sscanf(req, "GET %1023s", path);
    int n;
    if (sscanf(path, "/ok/%d.html", &n) == 1 && n >= 0 && n < 8) {
        atomic_fetch_add(&g_ts.hits_ok[n], 1);
        serve_page(fd, n);
    } else if (strcmp(path, "/index.html") == 0) {
        char body[2048];
        int len = snprintf(body, sizeof body,
                           "<html><body><a href=\"/ok/1.html\">1</a><a href=\"ok/2.html\">2</a>"
                           "<a href=\"/ok/1.html#frag\">1 again</a><a href=\"http://127.0.0.1:%d/ok/3.html\">3</a>"
                           "<a href=\"/./ok/2.html\">2 again</a><a href=\"http://other.invalid/x\">away</a>"
                           "<a href=\"mailto:a@b\">mail</a></body></html>",
                           g_ts.port);
        reply(fd, 200, "text/html", NULL, body, (size_t)len);
    } else if (strcmp(path, "/404") == 0) {
        reply(fd, 404, "text/html", NULL, "no", 2);
    } else if (strcmp(path, "/500") == 0) {
        reply(fd, 500, "text/html", NULL, "err", 3);
    } else if (strcmp(path, "/flaky") == 0) {
        if (atomic_fetch_add(&g_ts.hits_flaky, 1) == 0)
            reply(fd, 503, "text/html", "Retry-After: 1\r\n", "busy", 4);
        else
            serve_page(fd, 7);
    } else if (strcmp(path, "/reset") == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n<html>";
        send_all(fd, h, strlen(h));
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    } else if (strcmp(path, "/stall") == 0) {
        struct pollfd p = {g_ts.stop[0], POLLIN, 0};
        poll(&p, 1, (int)(br_test_hang_guard_ns() / 1000000));
    } else if (strcmp(path, "/loop") == 0) {
        reply(fd, 302, "text/html", "Location: /loop\r\n", "", 0);
    } else if (strcmp(path, "/huge") == 0) {
        size_t len = 2u << 20;
        char *body = malloc(len);
        memset(body, 'x', len);
        reply(fd, 200, "text/html", NULL, body, len);
        free(body);
    } else if (strcmp(path, "/garbage") == 0) {
        char body[256];
        for (int i = 0; i < 256; i++)
            body[i] = (char)i;
        reply(fd, 200, "application/octet-stream", NULL, body, sizeof body);
    } else if (strcmp(path, "/robots.txt") == 0) {
        const char *b = "User-agent: *\nDisallow: /private/\nAllow: /private/ok\n";
        reply(fd, 200, "text/plain", NULL, b, strlen(b));
    } else if (strncmp(path, "/private/", 9) == 0) {
        atomic_fetch_add(&g_ts.hits_private, 1);
        serve_page(fd, 6);
    } else if (sscanf(path, "/gate/%d.html", &n) == 1) {
        int in = atomic_fetch_add(&g_ts.gate_in, 1) + 1;
        int max = atomic_load(&g_ts.gate_max);
        while (in > max && !atomic_compare_exchange_weak(&g_ts.gate_max, &max, in)) {
        }
        if (in >= atomic_load(&g_ts.gate_want))
            atomic_store(&g_ts.gate_open, 1);
        int64_t dl = br_test_hang_guard();
        while (!atomic_load(&g_ts.gate_open) && br_now() < dl) {
            struct pollfd p = {g_ts.stop[0], POLLIN, 0};
            if (poll(&p, 1, 1) > 0)
                break;
        }
        atomic_fetch_sub(&g_ts.gate_in, 1);
        serve_page(fd, n % 8);
    } else if (sscanf(path, "/slow/%d.html", &n) == 1) {
        atomic_fetch_add(&g_ts.hits_slow, 1);
        struct pollfd p = {g_ts.stop[0], POLLIN, 0};
        poll(&p, 1, 100);
        serve_page(fd, n % 8);
    } else {
        reply(fd, 404, "text/html", NULL, "none", 4);
    }
    close(fd);
    atomic_fetch_sub(&g_ts.conns, 1);
    return NULL;
}

static void *acceptor(void *arg) {
    (void)arg;
    for (;;) {
        struct pollfd p[2] = {{g_ts.fd, POLLIN, 0}, {g_ts.stop[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int c = accept4(g_ts.fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        atomic_fetch_add(&g_ts.conns, 1);
        pthread_t t;
        if (pthread_create(&t, NULL, conn_thread, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else {
            close(c);
            atomic_fetch_sub(&g_ts.conns, 1);
        }
    }
    return NULL;
}

static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    BR_CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    BR_CHECK(listen(fd, 128) == 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void tserver_start(void) {
    memset(&g_ts, 0, sizeof g_ts);
    g_ts.fd = listen_any(&g_ts.port);
    BR_CHECK(pipe2(g_ts.stop, O_CLOEXEC) == 0);
    BR_CHECK(pthread_create(&g_ts.acceptor, NULL, acceptor, NULL) == 0);
}

static void tserver_stop(void) {
    close(g_ts.stop[1]);
    pthread_join(g_ts.acceptor, NULL);
    int64_t dl = br_test_hang_guard();
    while (atomic_load(&g_ts.conns) > 0 && br_now() < dl)
        usleep(1000);
    close(g_ts.fd);
    close(g_ts.stop[0]);
}

/* Writes a URL list of the test server's pages dir/0.html .. dir/(n-1).html to
 * g_dir/name; the list's path into path[0..cap). */
static void tserver_list(char *path, size_t cap, const char *name, const char *dir, int n) {
    snprintf(path, cap, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "we");
    BR_CHECK(f != NULL);
    for (int i = 0; i < n; i++)
        fprintf(f, "http://127.0.0.1:%d%s/%d.html\n", g_ts.port, dir, i);
    BR_CHECK(fclose(f) == 0);
}

static char *turl(const char *path) {
    char *s = malloc(strlen(path) + 64);
    sprintf(s, "http://127.0.0.1:%d%s", g_ts.port, path);
    return s;
}

/* --- every model against the fixture's server -------------------------------------- */

static void models_against(const char *base) {
    for (int m = 0; m < 6; m++) {
        char out[512], url_list[512];
        snprintf(out, sizeof out, "%s/out-%s.tsv", g_dir, braid_crawl_models[m]);
        snprintf(url_list, sizeof url_list, "%s/urls.txt", g_dir);
        FILE *f = fopen(url_list, "w");
        for (int p = 1; p <= BRAID_FIXTURE_PAGES; p++)
            fprintf(f, "%spage-%02d.html\n", base, p);
        fclose(f);
        int st = CRAWL("--model", braid_crawl_models[m], "--input", url_list, "--format", "tsv",
                       "--output", out, "--no-progress");
        if (st != 0)
            fail_msg("model %s: exit status %d", braid_crawl_models[m], st);
        check_equals_expected(out);
    }
}

static void every_model_fixture_server(void **state) {
    (void)state;
    tmpdir_make();
    braid_fixture_server *fx = NULL;
    BR_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0, 0, &fx));
    models_against(braid_fixture_server_url(fx));
    BR_CHECK_OK(braid_fixture_server_stop(fx));
    tmpdir_remove();
    br_test_wait_no_children();
}

static pid_t g_nginx;
static void nginx_kill(void) {
    if (g_nginx > 0)
        kill(g_nginx, SIGKILL);
}

/* The same against nginx serving the pages from a directory. */
static void every_model_nginx(void **state) {
    (void)state;
    if (access("/usr/sbin/nginx", X_OK) != 0) {
        skip(); /* nginx is not installed */
        return;
    }
    tmpdir_make();
    char path[512];
    snprintf(path, sizeof path, "%s/site", g_dir);
    BR_CHECK(mkdir(path, 0755) == 0);
    chmod(g_dir, 0755); /* nginx's worker may run as another user */
    for (int p = 1; p <= BRAID_FIXTURE_PAGES; p++) {
        char *body;
        size_t len;
        BR_CHECK_OK(braid_fixture_page(p, &body, &len));
        snprintf(path, sizeof path, "%s/site/page-%02d.html", g_dir, p);
        FILE *f = fopen(path, "wb");
        fwrite(body, 1, len, f);
        fclose(f);
        chmod(path, 0644);
        free(body);
    }
    int port;
    int lfd = listen_any(&port); /* a free port: released just before nginx takes it */
    close(lfd);
    snprintf(path, sizeof path, "%s/nginx.conf", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
            "events { worker_connections 512; }\n"
            "http { access_log off; default_type text/html; charset utf-8;\n"
            "  types { text/html html; }\n"
            "  client_body_temp_path %s; proxy_temp_path %s; fastcgi_temp_path %s;\n"
            "  uwsgi_temp_path %s; scgi_temp_path %s;\n"
            "  server { listen 127.0.0.1:%d; root %s/site; } }\n",
            g_dir, g_dir, g_dir, g_dir, g_dir, g_dir, g_dir, port, g_dir);
    fclose(f);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    g_nginx = pid;
    atexit(nginx_kill); /* a failed check leaves through exit: nginx must not outlive us */
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execl("/usr/sbin/nginx", "nginx", "-p", g_dir, "-c", path, "-e", "stderr", (char *)NULL);
        _exit(127);
    }
    /* Wait for it to listen (a hang guard, not a timing). */
    int64_t dl = br_test_hang_guard();
    bool up = false;
    while (!up && br_now() < dl) {
        int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        up = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (!up)
            usleep(10000);
        int wst;
        if (!up && waitpid(pid, &wst, WNOHANG) == pid)
            fail_msg("nginx exited at start (status %d)", wst);
    }
    BR_CHECK(up);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/", port);
    models_against(base);
    kill(pid, SIGQUIT);
    int wst = br_test_wait_child(pid);
    g_nginx = 0;
    BR_CHECK(WIFEXITED(wst) || WIFSIGNALED(wst));
    tmpdir_remove();
}

/* --- failures: one error record each, the rest completes ----------------------------- */

static json_t *load_jsonl(const char *path, size_t *n) {
    char *text = read_file(path, NULL);
    BR_CHECK(text != NULL);
    json_t *arr = json_array();
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        BR_CHECK(nl != NULL);
        *nl = '\0';
        json_error_t e;
        json_t *j = json_loads(p, 0, &e); /* jansson rejects invalid UTF-8 */
        if (j == NULL)
            fail_msg("not a JSON line: %s (%s)", p, e.text);
        json_array_append_new(arr, j);
        p = nl + 1;
    }
    free(text);
    *n = json_array_size(arr);
    return arr;
}

static const char *jstr(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k));
}

static void failures_one_record_each(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    int rport;
    int rfd = listen_any(&rport);
    close(rfd); /* nothing listens there now: refused */
    char refused[64];
    snprintf(refused, sizeof refused, "http://127.0.0.1:%d/x", rport);
    struct {
        char *url;
        const char *error;
    } cases[] = {
        {turl("/404"), "HTTP_404"},
        {turl("/500"), "HTTP_500"},
        {turl("/reset"), "BR_ECONNRESET"},
        {turl("/loop"), "BR_EREDIRECT"},
        {turl("/huge"), "BR_EMSGSIZE"},
        {turl("/garbage"), "BR_EPROTO"},
        {strdup("http://nonexistent.invalid/"), "BR_ENAME"},
        {strdup(refused), "BR_ECONNREFUSED"},
    };
    enum { NCASES = sizeof cases / sizeof cases[0] };
    char list[512], out[512];
    snprintf(list, sizeof list, "%s/urls.txt", g_dir);
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    for (int m = 0; m < 6; m++) {
        FILE *f = fopen(list, "w");
        fprintf(f, "http://127.0.0.1:%d/ok/1.html\n", g_ts.port);
        for (int i = 0; i < NCASES; i++)
            fprintf(f, "%s\n", cases[i].url);
        fprintf(f, "http://127.0.0.1:%d/ok/2.html\n", g_ts.port);
        fclose(f);
        int st = CRAWL("--model", braid_crawl_models[m], "--input", list, "--output", out,
                       "--retries", "1", "--backoff", "1", "--max-bytes", "100000", "--quiet");
        BR_CHECK_EQ(st, 1);
        size_t n;
        json_t *arr = load_jsonl(out, &n);
        int good = 0;
        int seen[NCASES] = {0};
        for (size_t k = 0; k < n; k++) {
            json_t *o = json_array_get(arr, k);
            if (jstr(o, "error") == NULL) {
                good++;
                BR_CHECK(strstr(jstr(o, "page"), "/ok/") != NULL);
                continue;
            }
            int hit = -1;
            for (int i = 0; i < NCASES; i++)
                if (strcmp(jstr(o, "url"), cases[i].url) == 0)
                    hit = i;
            if (hit < 0)
                fail_msg("an error record for an unknown URL: %s", jstr(o, "url"));
            if (strcmp(jstr(o, "error"), cases[hit].error) != 0)
                fail_msg("model %s, %s: error %s, want %s (%s)", braid_crawl_models[m],
                         cases[hit].url, jstr(o, "error"), cases[hit].error, jstr(o, "message"));
            BR_CHECK(jstr(o, "message") != NULL);
            seen[hit]++;
        }
        for (int i = 0; i < NCASES; i++)
            if (seen[i] != 1)
                fail_msg("model %s: %d records for %s", braid_crawl_models[m], seen[i], cases[i].url);
        BR_CHECK_EQ(good, 4); /* 2 records from each good page */
        BR_CHECK_EQ(n, NCASES + 4);
        json_decref(arr);

        /* A server that never answers: the request's timeout (the only case here whose
         * outcome is a timeout: a page of its own, so no other page races the clock). */
        char *stall = turl("/stall");
        st = CRAWL("--model", braid_crawl_models[m], stall, "--output", out, "--retries", "1",
                   "--backoff", "1", "--timeout", "0.5", "--quiet");
        BR_CHECK_EQ(st, 1);
        arr = load_jsonl(out, &n);
        BR_CHECK_EQ(n, 1);
        BR_CHECK(strcmp(jstr(json_array_get(arr, 0), "error"), "BR_ETIMEDOUT") == 0);
        BR_CHECK(strcmp(jstr(json_array_get(arr, 0), "url"), stall) == 0);
        json_decref(arr);
        free(stall);
    }
    for (int i = 0; i < NCASES; i++)
        free(cases[i].url);
    tserver_stop();
    tmpdir_remove();
    br_test_wait_no_children();
}

/* 503 with Retry-After, then 200: one retry, and the page's records. */
static void retry_after_honoured(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char *u = turl("/flaky"), out[512];
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    int st = CRAWL(u, "--output", out, "--retries", "3", "--quiet");
    BR_CHECK_EQ(st, 0);
    BR_CHECK_EQ(atomic_load(&g_ts.hits_flaky), 2);
    size_t n;
    json_t *arr = load_jsonl(out, &n);
    BR_CHECK_EQ(n, 2);
    BR_CHECK(strcmp(jstr(json_array_get(arr, 0), "url"), "https://example.org/7/a") == 0);
    json_decref(arr);
    /* With no retries the 503 is the page's error. */
    atomic_store(&g_ts.hits_flaky, 0);
    st = CRAWL(u, "--output", out, "--retries", "0", "--quiet");
    BR_CHECK_EQ(st, 1);
    arr = load_jsonl(out, &n);
    BR_CHECK_EQ(n, 1);
    BR_CHECK(strcmp(jstr(json_array_get(arr, 0), "error"), "HTTP_503") == 0);
    json_decref(arr);
    free(u);
    tserver_stop();
    tmpdir_remove();
}

/* robots.txt's Disallow is honoured with --robots (loopback is exempt by default). */
static void robots_disallow_honoured(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char *a = turl("/ok/1.html"), *b = turl("/private/secret.html"), *c = turl("/private/ok.html");
    char out[512];
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    for (int m = 0; m < 6; m++) {
        atomic_store(&g_ts.hits_private, 0);
        int st = CRAWL("--model", braid_crawl_models[m], a, b, c, "--robots", "--output", out, "--quiet");
        BR_CHECK_EQ(st, 0);
        BR_CHECK_EQ(atomic_load(&g_ts.hits_private), 1); /* only the Allowed one */
        size_t n;
        json_t *arr = load_jsonl(out, &n);
        BR_CHECK_EQ(n, 4);
        for (size_t k = 0; k < n; k++)
            BR_CHECK(strstr(jstr(json_array_get(arr, k), "page"), "secret") == NULL);
        json_decref(arr);
    }
    /* Without --robots, loopback pages are all fetched. */
    atomic_store(&g_ts.hits_private, 0);
    BR_CHECK_EQ(CRAWL(a, b, "--output", out, "--quiet"), 0);
    BR_CHECK_EQ(atomic_load(&g_ts.hits_private), 1);
    free(a);
    free(b);
    free(c);
    tserver_stop();
    tmpdir_remove();
    br_test_wait_no_children();
}

/* --depth 1 from an index: each linked page once (canonical dedup), same host only. */
static void depth_follows_with_dedup(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char *idx = turl("/index.html"), out[512];
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    for (int m = 0; m < 6; m++) {
        for (int i = 0; i < 8; i++)
            atomic_store(&g_ts.hits_ok[i], 0);
        int st = CRAWL("--model", braid_crawl_models[m], idx, "--depth", "1", "--output", out, "--quiet");
        BR_CHECK_EQ(st, 0);
        BR_CHECK_EQ(atomic_load(&g_ts.hits_ok[1]), 1);
        BR_CHECK_EQ(atomic_load(&g_ts.hits_ok[2]), 1);
        BR_CHECK_EQ(atomic_load(&g_ts.hits_ok[3]), 1);
        size_t n;
        json_t *arr = load_jsonl(out, &n);
        BR_CHECK_EQ(n, 6);
        json_decref(arr);
    }
    /* depth 0: the index alone (it has no titles: no records, no error). */
    for (int i = 0; i < 8; i++)
        atomic_store(&g_ts.hits_ok[i], 0);
    BR_CHECK_EQ(CRAWL(idx, "--output", out, "--quiet"), 0);
    BR_CHECK_EQ(atomic_load(&g_ts.hits_ok[1]), 0);
    free(idx);
    tserver_stop();
    tmpdir_remove();
    br_test_wait_no_children();
}

/* The fixture's index at depth 1 gives exactly its 50 pages' 1000 lines. */
static void depth_fixture_index(void **state) {
    (void)state;
    tmpdir_make();
    braid_fixture_server *fx = NULL;
    BR_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0, 0, &fx));
    char out[512];
    snprintf(out, sizeof out, "%s/out.tsv", g_dir);
    BR_CHECK_EQ(CRAWL(braid_fixture_server_url(fx), "--depth", "1", "--format", "tsv",
                      "--output", out, "--quiet"),
                0);
    check_equals_expected(out);
    BR_CHECK_OK(braid_fixture_server_stop(fx));
    tmpdir_remove();
}

/* --resume: pages already in the output are not fetched again, nor written twice. */
static void resume_skips_recorded(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char *a = turl("/ok/1.html"), *b = turl("/ok/2.html"), *e = turl("/404");
    for (int fmt = 0; fmt < 2; fmt++) {
        const char *format = fmt ? "csv" : "jsonl";
        char out[512];
        snprintf(out, sizeof out, "%s/out.%s", g_dir, format);
        for (int i = 0; i < 8; i++)
            atomic_store(&g_ts.hits_ok[i], 0);
        BR_CHECK_EQ(CRAWL(a, e, "--format", format, "--output", out, "--quiet"), 1);
        BR_CHECK_EQ(CRAWL(a, b, e, "--format", format, "--output", out, "--resume", "--quiet"), 1);
        BR_CHECK_EQ(atomic_load(&g_ts.hits_ok[1]), 1);
        BR_CHECK_EQ(atomic_load(&g_ts.hits_ok[2]), 1);
        char *text = read_file(out, NULL);
        size_t n;
        char **lines = lines_sorted(text, &n);
        /* jsonl: 2+2 records and the 404's two error records (it is tried again);
         * csv: the header once more */
        BR_CHECK_EQ(n, fmt ? 7 : 6);
        int headers = 0;
        for (size_t i = 0; i < n; i++)
            headers += strncmp(lines[i], "page,", 5) == 0;
        BR_CHECK_EQ(headers, fmt ? 1 : 0);
        free(lines);
        free(text);
    }
    free(a);
    free(b);
    free(e);
    tserver_stop();
    tmpdir_remove();
}

/* Starts the braid program (beside this test in the build tree: build/tests/ and
 * build/apps/braid/) as a child with args, its stderr on errfd (-1: this process's).
 * A forked copy of this process, which runs threads, would do too, but
 * ThreadSanitizer can't follow threads started in such a child. */
static pid_t braid_spawn(const char *const args[], int errfd) {
    char exe[512], bin[600];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    BR_CHECK(el > 0);
    exe[el] = '\0';
    *strrchr(exe, '/') = '\0';
    snprintf(bin, sizeof bin, "%s/../apps/braid/braid", exe);
    BR_CHECK(access(bin, X_OK) == 0);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        if (errfd >= 0 && dup2(errfd, 2) < 0)
            _exit(126);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    return pid;
}

/* Waits until the file at path has some bytes (or the hang guard). */
static void wait_nonempty(const char *path) {
    int64_t dl = br_test_hang_guard();
    size_t len = 0;
    char *text = NULL;
    while (br_now() < dl) {
        free(text);
        text = read_file(path, &len);
        if (text && len > 0)
            break;
        usleep(5000);
    }
    BR_CHECK(len > 0);
    free(text);
}

/* The first SIGINT: the pages in flight finish, the output is flushed, every line is
 * whole, and the status says the crawl was cut short. */
static void sigint_model(const char *model) {
    tmpdir_make();
    tserver_start();
    char out[512], list[512];
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    tserver_list(list, sizeof list, "urls.txt", "/slow", 400);
    pid_t pid = braid_spawn((const char *const[]){"braid", "crawl", "--model", model,
                                                  "--concurrency", "2", "--input", list,
                                                  "--output", out, "--quiet", NULL},
                            -1);
    wait_nonempty(out);
    kill(pid, SIGINT);
    int wst = br_test_wait_child(pid);
    BR_CHECK(WIFEXITED(wst));
    BR_CHECK_EQ(WEXITSTATUS(wst), 1);
    size_t n;
    json_t *arr = load_jsonl(out, &n); /* every line whole and valid */
    BR_CHECK(n >= 2 && n < 800);
    BR_CHECK_EQ(n % 2, 0); /* a page's two records both, or neither */
    json_decref(arr);
    tserver_stop();
    tmpdir_remove();
}

static void sigint_graceful(void **state) {
    (void)state;
    sigint_model("threads");
}

/* The same through braid's pipeline (what is in its stages drains) and the process
 * model (the batches in the workers come back and are written). */
static void sigint_graceful_pipeline(void **state) {
    (void)state;
    sigint_model("pipeline");
}

static void sigint_graceful_process(void **state) {
    (void)state;
    sigint_model("process");
}

/* The second SIGINT exits at once with 130, even with a page still in flight (it
 * stalls until the test server stops): the first only stopped the frontier and said
 * so; the lines written before are whole. */
static void sigint_twice_exits_now(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char out[512], err[512], list[512];
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    snprintf(err, sizeof err, "%s/stderr.txt", g_dir);
    snprintf(list, sizeof list, "%s/urls.txt", g_dir);
    FILE *f = fopen(list, "we");
    BR_CHECK(f != NULL);
    fprintf(f, "http://127.0.0.1:%d/ok/0.html\nhttp://127.0.0.1:%d/ok/1.html\n", g_ts.port,
            g_ts.port);
    fprintf(f, "http://127.0.0.1:%d/stall\n", g_ts.port);
    BR_CHECK(fclose(f) == 0);
    int efd = open(err, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    BR_CHECK(efd >= 0);
    /* _exit from the handler leaves the fetching threads unjoined, on purpose: under
     * ThreadSanitizer the child isn't to report them as leaked (its exit code would
     * then be TSan's 66). The option is only read by a TSan build. */
    const char *tsan = getenv("TSAN_OPTIONS");
    char *saved = tsan ? strdup(tsan) : NULL, opts[1024];
    snprintf(opts, sizeof opts, "%s%sreport_thread_leaks=0", saved ? saved : "",
             saved ? ":" : "");
    setenv("TSAN_OPTIONS", opts, 1);
    pid_t pid = braid_spawn((const char *const[]){"braid", "crawl", "--model", "threads",
                                                  "--concurrency", "2", "--input", list,
                                                  "--output", out, "--quiet", NULL},
                            efd);
    if (saved)
        setenv("TSAN_OPTIONS", saved, 1);
    else
        unsetenv("TSAN_OPTIONS");
    free(saved);
    close(efd);
    wait_nonempty(out); /* a line written: the SIGINT handler is in place */
    kill(pid, SIGINT);
    /* the first one is taken: said on stderr, and the crawl goes on (pages stall) */
    int64_t dl = br_test_hang_guard();
    char *text = NULL;
    size_t len = 0;
    while (br_now() < dl) {
        free(text);
        text = read_file(err, &len);
        if (text && strstr(text, "Ctrl-C again to quit now"))
            break;
        usleep(5000);
    }
    BR_CHECK(text && strstr(text, "Ctrl-C again to quit now"));
    free(text);
    int wst;
    BR_CHECK_EQ(waitpid(pid, &wst, WNOHANG), 0);
    kill(pid, SIGINT);
    wst = br_test_wait_child(pid);
    text = read_file(err, &len);
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 130)
        fail_msg("wait status %#x, not exit 130; stderr: %s", wst, text ? text : "");
    BR_CHECK(text && strstr(text, "interrupted again, exiting now\n"));
    free(text);
    size_t n;
    json_t *arr = load_jsonl(out, &n); /* the two /ok pages' lines, whole */
    BR_CHECK(n >= 2 && n <= 4);
    BR_CHECK_EQ(n % 2, 0);
    json_decref(arr);
    tserver_stop();
    tmpdir_remove();
}

/* A pseudo-terminal: *slave is its other end, for a child's stderr. */
static int pty_open(int *slave) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    BR_CHECK(m >= 0);
    BR_CHECK(grantpt(m) == 0 && unlockpt(m) == 0);
    *slave = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
    BR_CHECK(*slave >= 0);
    return m;
}

/* Reads the pty's master into b (NUL-terminated) until `want` appears, or with want
 * NULL until the other end is closed (EIO); false at the hang guard. */
static bool pty_read(int m, char *b, size_t cap, size_t *len, const char *want) {
    int64_t dl = br_test_hang_guard();
    while (br_now() < dl) {
        if (want && strstr(b, want))
            return true;
        struct pollfd p = {m, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(m, b + *len, cap - 1 - *len);
        if (r <= 0)
            return want == NULL && (r == 0 || errno == EIO);
        *len += (size_t)r;
        b[*len] = '\0';
    }
    return false;
}

/* Runs the crawl of 4 gated pages with stderr on a pty (and `extra`, or NULL); opens
 * the gate once stderr shows `until` (NULL: once both fetches are in the gate); the
 * pty's whole output into b. */
static void crawl_on_pty(const char *list, const char *out, const char *extra,
                         const char *until, char *b, size_t cap) {
    atomic_store(&g_ts.gate_open, 0);
    atomic_store(&g_ts.gate_want, 1000); /* opened by this function only */
    int s, m = pty_open(&s);
    pid_t pid = braid_spawn((const char *const[]){"braid", "crawl", "--model", "threads",
                                                  "--concurrency", "2", "--input", list,
                                                  "--output", out, extra, NULL},
                            s);
    close(s);
    size_t len = 0;
    b[0] = '\0';
    if (until != NULL) {
        if (!pty_read(m, b, cap, &len, until))
            fail_msg("no \"%s\" on the terminal, which had: \"%s\"", until, b);
    } else {
        int64_t dl = br_test_hang_guard();
        while (atomic_load(&g_ts.gate_in) < 2 && br_now() < dl)
            usleep(1000);
        BR_CHECK(atomic_load(&g_ts.gate_in) >= 2); /* both fetches stalled at the gate */
    }
    atomic_store(&g_ts.gate_open, 1);
    BR_CHECK(pty_read(m, b, cap, &len, NULL));
    close(m);
    int wst = br_test_wait_child(pid);
    BR_CHECK(WIFEXITED(wst));
    BR_CHECK_EQ(WEXITSTATUS(wst), 0);
}

/* On a terminal, a progress bar redrawn in place ("\r[###...] done/total pages, in
 * flight, failed, pages/s"), then the stats line; --no-progress, or stderr not a
 * terminal: the stats line only. */
static void progress_bar_on_a_terminal(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char list[512], out[512], errpath[512];
    static char b[1 << 16];
    tserver_list(list, sizeof list, "gate.txt", "/gate", 4);
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);

    /* both pages in flight at the gate, none done: the bar says so */
    crawl_on_pty(list, out, NULL, "] 0/4 pages, 2 in flight, 0 failed", b, sizeof b);
    const char *bar = strstr(b, "\r[..............................] 0/4 pages, 2 in flight");
    BR_CHECK(bar != NULL);
    BR_CHECK(strstr(bar, "braid crawl: 4 pages in ") != NULL); /* the stats line after */
    size_t n;
    json_decref(load_jsonl(out, &n));
    BR_CHECK_EQ(n, 8);

    crawl_on_pty(list, out, "--no-progress", NULL, b, sizeof b);
    BR_CHECK(strstr(b, "\r[") == NULL);
    BR_CHECK(strstr(b, "braid crawl: 4 pages in ") != NULL);

    /* stderr a file */
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", g_dir);
    int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    BR_CHECK(efd >= 0);
    atomic_store(&g_ts.gate_open, 1);
    pid_t pid = braid_spawn((const char *const[]){"braid", "crawl", "--model", "threads",
                                                  "--concurrency", "2", "--input", list,
                                                  "--output", out, NULL},
                            efd);
    close(efd);
    int wst = br_test_wait_child(pid);
    BR_CHECK(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    size_t len;
    char *text = read_file(errpath, &len);
    BR_CHECK(text && strstr(text, "\r[") == NULL && strstr(text, "braid crawl: 4 pages in "));
    free(text);
    tserver_stop();
    tmpdir_remove();
}

/* CSV quoting (RFC 4180) and JSON Lines of UTF-8 for titles with commas and quotes. */
static void formats_quote_and_utf8(void **state) {
    (void)state;
    tmpdir_make();
    tserver_start();
    char *a = turl("/ok/3.html"), out[512];
    snprintf(out, sizeof out, "%s/out.csv", g_dir);
    BR_CHECK_EQ(CRAWL(a, "--format", "csv", "--output", out, "--quiet"), 0);
    char *text = read_file(out, NULL);
    char want[1024];
    snprintf(want, sizeof want,
             "page,url,title,error,message\r\n"
             "%s,https://example.org/3/a,\"Page 3, \"\"quoted\"\" & more\",,\r\n"
             "%s,https://example.org/3/b,并发 3,,\r\n",
             a, a);
    if (strcmp(text, want) != 0)
        fail_msg("csv:\n%s\nwant:\n%s", text, want);
    free(text);
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    BR_CHECK_EQ(CRAWL(a, "--output", out, "--quiet"), 0);
    size_t n;
    json_t *arr = load_jsonl(out, &n);
    BR_CHECK_EQ(n, 2);
    BR_CHECK(strcmp(jstr(json_array_get(arr, 0), "title"), "Page 3, \"quoted\" & more") == 0);
    BR_CHECK(strcmp(jstr(json_array_get(arr, 1), "title"), "并发 3") == 0);
    json_decref(arr);
    /* --field / --record */
    BR_CHECK_EQ(CRAWL(a, "--record", "//a", "--field", "link=@href", "--field", "text=.",
                      "--output", out, "--quiet"),
                0);
    arr = load_jsonl(out, &n);
    BR_CHECK_EQ(n, 2);
    BR_CHECK(strcmp(jstr(json_array_get(arr, 1), "link"), "https://example.org/3/b") == 0);
    json_decref(arr);
    free(a);
    tserver_stop();
    tmpdir_remove();
}

/* --extract article on the fixture: 20 articles a page with their four fields. */
static void article_extractor(void **state) {
    (void)state;
    tmpdir_make();
    braid_fixture_server *fx = NULL;
    BR_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0, 0, &fx));
    char url[256], out[512];
    snprintf(url, sizeof url, "%spage-01.html", braid_fixture_server_url(fx));
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    BR_CHECK_EQ(CRAWL(url, "--extract", "article", "--output", out, "--quiet"), 0);
    size_t n;
    json_t *arr = load_jsonl(out, &n);
    BR_CHECK_EQ(n, 20);
    char *want;
    size_t wlen;
    BR_CHECK_OK(braid_fixture_expected(&want, &wlen));
    char *tab = strchr(want, '\t'), *nl = strchr(want, '\n');
    *tab = *nl = '\0';
    json_t *o = json_array_get(arr, 0);
    BR_CHECK(strcmp(jstr(o, "url"), want) == 0);
    BR_CHECK(strcmp(jstr(o, "title"), tab + 1) == 0);
    BR_CHECK(strncmp(jstr(o, "avatar"), "https://", 8) == 0);
    BR_CHECK(strlen(jstr(o, "summary")) > 0 && strlen(jstr(o, "author")) > 0);
    free(want);
    json_decref(arr);
    BR_CHECK_OK(braid_fixture_server_stop(fx));
    tmpdir_remove();
}

static void usage_errors(void **state) {
    (void)state;
    BR_CHECK_EQ(CRAWL("--model", "fibers"), 2);
    BR_CHECK_EQ(CRAWL("--concurrency", "0"), 2);
    BR_CHECK_EQ(CRAWL("--format", "xml"), 2);
    BR_CHECK_EQ(CRAWL("--bogus"), 2);
    BR_CHECK_EQ(CRAWL("ftp://example.org/"), 2);
    BR_CHECK_EQ(CRAWL("--resume", "http://127.0.0.1:1/"), 2);
    BR_CHECK_EQ(CRAWL("--field", "novalue"), 2);
    BR_CHECK_EQ(CRAWL("--input", "/nonexistent/urls.txt"), 2);
    BR_CHECK_EQ(CRAWL("--timeout"), 2);
}

/* braid compare's entry: every model, the 1000 lines. */
static void bench_entry(void **state) {
    (void)state;
    braid_fixture_server *fx = NULL;
    BR_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0, 0, &fx));
    for (int m = 0; m < 6; m++) {
        double secs = -1;
        size_t lines = 0;
        char err[256];
        int rc = braid_crawl_bench(braid_crawl_models[m], braid_fixture_server_url(fx), 0,
                                   &secs, &lines, err, sizeof err);
        if (rc != 0)
            fail_msg("%s: %s", braid_crawl_models[m], err);
        BR_CHECK_EQ(lines, 1000);
        BR_CHECK(secs > 0);
    }
    double secs;
    size_t lines;
    char err[256];
    BR_CHECK_ERR(braid_crawl_bench("fibers", braid_fixture_server_url(fx), 0, &secs, &lines,
                                   err, sizeof err),
                 BR_EINVAL);
    BR_CHECK(strstr(err, "fibers") != NULL);
    BR_CHECK_OK(braid_fixture_server_stop(fx));
    br_test_wait_no_children();
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    BR_CHECK(d != NULL);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* The pipeline model (braid's pipeline: a stage of fetch coroutines on its own loop, a
 * stage of parse threads) and the process model (a batch of URLs per worker, fetched
 * by coroutines there) give the fixture's 1000 lines crawl after crawl, and leave no
 * descriptor open and no process behind: the stage's loop, the pool and every
 * connection go with the crawl. */
static void pipeline_process_release_everything(void **state) {
    (void)state;
    braid_fixture_server *fx = NULL;
    BR_CHECK_OK(braid_fixture_server_start("127.0.0.1", 0, 0, &fx));
    static const char *const models[] = {"pipeline", "process"};
    int concs[] = {0, 1, 3};
    /* braid's child watcher (one thread, an epoll and an eventfd, for the life of the
     * process) starts with the first child: a first crawl of the process model starts it
     * before the count. */
    double secs0;
    size_t lines0;
    char err0[256];
    BR_CHECK_OK(braid_crawl_bench("process", braid_fixture_server_url(fx), 1, &secs0, &lines0,
                                  err0, sizeof err0));
    br_test_wait_no_children();
    int64_t guard = br_test_hang_guard();
    int fds = count_fds();
    /* twice over in the plain build; once (still three crawls a model) under a sanitizer,
     * where each crawl takes about a second */
    int rounds = br_test_scale() < 1 ? 1 : 2;
    for (int round = 0; round < rounds; round++)
        for (int m = 0; m < 2; m++)
            for (int k = 0; k < 3; k++) {
                double secs = -1;
                size_t lines = 0;
                char err[256];
                int rc = braid_crawl_bench(models[m], braid_fixture_server_url(fx), concs[k],
                                           &secs, &lines, err, sizeof err);
                if (rc != 0)
                    fail_msg("%s, concurrency %d: %s", models[m], concs[k], err);
                BR_CHECK_EQ(lines, 1000);
                br_test_wait_no_children();
                /* The crawl's side is closed when it returns; the fixture server (here,
                 * on its own thread) closes its side once it sees that. */
                while (count_fds() > fds && br_now() < guard)
                    usleep(2000);
                if (count_fds() > fds)
                    fail_msg("%s, concurrency %d: %d descriptors open, %d before", models[m],
                             concs[k], count_fds(), fds);
            }
    BR_CHECK_OK(braid_fixture_server_stop(fx));
}

/* Every concurrent model has all the pages in flight at once when --concurrency allows:
 * the server holds each of 20 pages until all 20 are open together. A model that sends
 * them in rounds (the process model once shared the queue out over busy workers too,
 * in ever smaller batches) never gets there, and the gate's most-at-once says so. */
static void concurrent_models_fetch_all_at_once(void **state) {
    (void)state;
    enum { N = 20 };
    tmpdir_make();
    tserver_start();
    char list[512], out[512];
    tserver_list(list, sizeof list, "gate.txt", "/gate", N);
    snprintf(out, sizeof out, "%s/out.jsonl", g_dir);
    static const char *const models[] = {"threads", "pipeline", "pool", "process", "async"};
    for (size_t m = 0; m < sizeof models / sizeof models[0]; m++) {
        atomic_store(&g_ts.gate_open, 0);
        atomic_store(&g_ts.gate_max, 0);
        atomic_store(&g_ts.gate_want, N);
        int st = CRAWL("--model", models[m], "--concurrency", "64", "--input", list,
                       "--output", out, "--quiet");
        if (st != 0 || atomic_load(&g_ts.gate_max) != N)
            fail_msg("--model %s: exit %d, at most %d of %d pages in flight at once",
                     models[m], st, atomic_load(&g_ts.gate_max), N);
        size_t n;
        json_t *arr = load_jsonl(out, &n);
        BR_CHECK_EQ(n, 2 * N);
        json_decref(arr);
    }
    tserver_stop();
    tmpdir_remove();
}

BR_TEST_MAIN(cmocka_unit_test(every_model_fixture_server),
             cmocka_unit_test(every_model_nginx),
             cmocka_unit_test(failures_one_record_each),
             cmocka_unit_test(retry_after_honoured),
             cmocka_unit_test(robots_disallow_honoured),
             cmocka_unit_test(depth_follows_with_dedup),
             cmocka_unit_test(depth_fixture_index),
             cmocka_unit_test(resume_skips_recorded),
             cmocka_unit_test(sigint_graceful),
             cmocka_unit_test(sigint_graceful_pipeline),
             cmocka_unit_test(sigint_graceful_process),
             cmocka_unit_test(sigint_twice_exits_now),
             cmocka_unit_test(progress_bar_on_a_terminal),
             cmocka_unit_test(formats_quote_and_utf8),
             cmocka_unit_test(article_extractor),
             cmocka_unit_test(usage_errors),
             cmocka_unit_test(bench_entry),
             cmocka_unit_test(pipeline_process_release_everything),
             cmocka_unit_test(concurrent_models_fetch_all_at_once))
