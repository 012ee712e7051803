/* A TCP echo server on libuv, for bench_echo's side-by-side runs (braid's own peer
 * program, written for this benchmark): one thread, one uv loop, 127.0.0.1 only. Each
 * connection has one 64 KiB buffer: what a read brings is written back from it with
 * uv_write, and reading stops until that write completes (no allocation per message,
 * and never more than one write in flight per connection).
 *
 *   uv_echo PORT
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_write_t req;
    char buf[65536];
} conn;

static void on_closed(uv_handle_t *h) {
    free(h);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    conn *c = (conn *)h;
    *buf = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_written(uv_write_t *req, int status) {
    uv_stream_t *s = req->handle;
    if (status < 0) {
        if (!uv_is_closing((uv_handle_t *)s))
            uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    uv_read_start(s, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    conn *c = (conn *)s;
    if (n > 0) {
        uv_read_stop(s);
        uv_buf_t out = uv_buf_init(buf->base, (unsigned)n);
        if (uv_write(&c->req, s, &out, 1, on_written) != 0)
            uv_close((uv_handle_t *)s, on_closed);
        return;
    }
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_closed);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    conn *c = malloc(sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(server->loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: uv_echo PORT\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    uv_tcp_t server;
    struct sockaddr_in addr;
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 128, on_connection);
    if (rc != 0) {
        fprintf(stderr, "uv_echo: %s\n", uv_strerror(rc));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
