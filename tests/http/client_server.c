/* The client tests' HTTP server (client_server.h). Included by test_client.c: the
 * test build makes one executable per test_*.c file. */
#include "client_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TSRV_MAXC 1024

struct tsrv {
    int lfd, port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int conns[TSRV_MAXC];        /* open connections' descriptors, or -1 */
    pthread_t threads[TSRV_MAXC]; /* every connection's thread, joined at stop */
    int nthreads;
    int nconn;      /* open connections */
    int accepted, max_open;
    bool stopping;
};

typedef struct conn {
    tsrv *s;
    int fd, slot;
} conn;

static const unsigned char gzip_body[] = {
    0x1f, 0x8b, 0x8, 0x0, 0x0, 0x0, 0x0, 0x0, 0x2, 0x3, 0xcb, 0x48, 0xcd, 0xc9,
    0xc9, 0xd7, 0x51, 0x48, 0xaf, 0xca, 0x2c, 0x50, 0x48, 0xca, 0x4f, 0xa9, 0xe4, 0xca,
    0x18, 0x15, 0xa0, 0x54, 0x0, 0x0, 0x6a, 0x2d, 0x63, 0xfb, 0x54, 0x1, 0x0, 0x0};

static bool send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

static bool reply(int fd, int status, const char *extra, const void *body, size_t len) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n%s\r\n", status, len,
                     extra ? extra : "");
    return send_all(fd, head, (size_t)n) && send_all(fd, body, len);
}

static void nap_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Handles one request; false: close the connection. */
static bool handle(int fd, const char *req, size_t hlen, const char *body, size_t blen) {
    char method[16] = "", path[256] = "";
    sscanf(req, "%15s %255s", method, path);
    if (strcmp(path, "/echo") == 0) {
        size_t cap = hlen + blen + 300;
        char *out = malloc(cap);
        int n = snprintf(out, cap, "%s %s\n", method, path);
        const char *l = strstr(req, "\r\n") + 2;
        const char *end = req + hlen;
        while (l < end && l[0] != '\r') {
            const char *e = strstr(l, "\r\n");
            n += snprintf(out + n, cap - (size_t)n, "%.*s\n", (int)(e - l), l);
            l = e + 2;
        }
        out[n++] = '\n';
        memcpy(out + n, body, blen);
        bool ok = reply(fd, 200, "Content-Type: text/plain\r\n", out, (size_t)n + blen);
        free(out);
        return ok;
    }
    int k;
    if (sscanf(path, "/redirect/%d", &k) == 1) {
        if (k <= 0)
            return reply(fd, 200, NULL, "done", 4);
        char extra[64];
        snprintf(extra, sizeof extra, "Location: /redirect/%d\r\n", k - 1);
        return reply(fd, 302, extra, "moved", 5);
    }
    if (strcmp(path, "/to-ftp") == 0)
        return reply(fd, 302, "Location: ftp://127.0.0.1/file\r\n", "", 0);
    if (strcmp(path, "/gzip") == 0)
        return reply(fd, 200, "Content-Encoding: gzip\r\nContent-Type: text/plain\r\n",
                     gzip_body, sizeof gzip_body);
    if (sscanf(path, "/status/%d", &k) == 1)
        return reply(fd, k, NULL, "status", 6);
    if (strcmp(path, "/reset") == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789";
        send_all(fd, h, strlen(h));
        nap_ms(20);
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        return false;
    }
    if (strcmp(path, "/stall") == 0) {
        char b[64];
        while (recv(fd, b, sizeof b, 0) > 0) {
        }
        return false;
    }
    if (strcmp(path, "/trickle") == 0) {
        const char *h = "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\ntrickle-trickle";
        for (const char *p = h; *p; p++) {
            if (!send_all(fd, p, 1))
                return false;
            nap_ms(1);
        }
        return true;
    }
    if (sscanf(path, "/big/%d", &k) == 1 || sscanf(path, "/bigclose/%d", &k) == 1) {
        bool close_it = strncmp(path, "/bigclose/", 10) == 0;
        char *b = malloc((size_t)k);
        memset(b, 'x', (size_t)k);
        bool ok;
        if (close_it) {
            const char *h = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            ok = send_all(fd, h, strlen(h)) && send_all(fd, b, (size_t)k);
            ok = false;
        } else {
            ok = reply(fd, 200, NULL, b, (size_t)k);
        }
        free(b);
        return ok;
    }
    if (sscanf(path, "/retry/%d", &k) == 1) {
        char extra[64];
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", k);
        return reply(fd, 429, extra, "slow down", 9);
    }
    if (strcmp(path, "/retrydate") == 0)
        return reply(fd, 503, "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", "later", 5);
    if (strcmp(path, "/hdr") == 0)
        return reply(fd, 200,
                     "Content-Type: text/html; Charset=\"ISO-8859-1\"\r\nX-Multi: a\r\n"
                     "X-Multi: b\r\n",
                     "<p>hi</p>", 9);
    if (sscanf(path, "/slow/%d", &k) == 1) {
        nap_ms(k);
        return reply(fd, 200, NULL, "slow", 4);
    }
    if (sscanf(path, "/n/%d", &k) == 1) {
        char b[32];
        int n = snprintf(b, sizeof b, "page %d", k);
        return reply(fd, 200, "Content-Type: text/plain\r\n", b, (size_t)n);
    }
    return reply(fd, 404, NULL, "no such path", 12);
}

static void *conn_main(void *arg) {
    conn *c = arg;
    tsrv *s = c->s;
    int fd = c->fd, slot = c->slot;
    free(c);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        char *end = NULL;
        while ((end = len ? memmem(buf, len, "\r\n\r\n", 4) : NULL) == NULL) {
            if (len + 1 >= cap)
                goto out;
            ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
            if (k <= 0)
                goto out;
            len += (size_t)k;
            buf[len] = '\0';
        }
        size_t hlen = (size_t)(end - buf) + 4;
        buf[len] = '\0';
        size_t blen = 0;
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        if (cl && cl < end)
            blen = (size_t)strtoul(cl + 17, NULL, 10);
        if (blen > cap - hlen - 1)
            goto out;
        while (len < hlen + blen) {
            ssize_t k = recv(fd, buf + len, cap - 1 - len, 0);
            if (k <= 0)
                goto out;
            len += (size_t)k;
        }
        char save = buf[hlen - 1];
        buf[hlen - 1] = '\0';
        bool keep = handle(fd, buf, hlen - 1, buf + hlen, blen);
        buf[hlen - 1] = save;
        if (!keep)
            break;
        memmove(buf, buf + hlen + blen, len - hlen - blen);
        len -= hlen + blen;
    }
out:
    free(buf);
    pthread_mutex_lock(&s->mu);
    s->conns[slot] = -1;
    close(fd);
    s->nconn--;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void *accept_main(void *arg) {
    tsrv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&s->mu);
        if (s->stopping || s->nthreads >= TSRV_MAXC) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            continue;
        }
        int slot = s->nthreads++;
        s->conns[slot] = fd;
        s->nconn++;
        s->accepted++;
        if (s->nconn > s->max_open)
            s->max_open = s->nconn;
        conn *c = malloc(sizeof *c);
        c->s = s;
        c->fd = fd;
        c->slot = slot;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 256 * 1024);
        pthread_create(&s->threads[slot], &at, conn_main, c);
        pthread_attr_destroy(&at);
        pthread_mutex_unlock(&s->mu);
    }
}

tsrv *tsrv_start(void) {
    tsrv *s = calloc(1, sizeof *s);
    for (int i = 0; i < TSRV_MAXC; i++)
        s->conns[i] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s->lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(s->lfd, 512) != 0)
        abort();
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    pthread_create(&s->acceptor, NULL, accept_main, s);
    return s;
}

int tsrv_port(const tsrv *s) { return s->port; }

int tsrv_accepted(const tsrv *s) {
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    int n = s->accepted;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
    return n;
}

int tsrv_max_open(const tsrv *s) {
    pthread_mutex_lock((pthread_mutex_t *)&s->mu);
    int n = s->max_open;
    pthread_mutex_unlock((pthread_mutex_t *)&s->mu);
    return n;
}

void tsrv_reset_counts(tsrv *s) {
    pthread_mutex_lock(&s->mu);
    s->accepted = 0;
    s->max_open = s->nconn;
    pthread_mutex_unlock(&s->mu);
}

void tsrv_stop(tsrv *s) {
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    shutdown(s->lfd, SHUT_RDWR);
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nthreads; i++)
        if (s->conns[i] >= 0)
            shutdown(s->conns[i], SHUT_RDWR);
    int n = s->nthreads;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++)
        pthread_join(s->threads[i], NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
