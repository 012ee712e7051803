/* A TCP echo server on libuv, for bench_echo's side-by-side runs (braid's own peer
 * program, written for this benchmark): one thread, one uv loop, each connection's
 * bytes written back as they arrive (a read buffer handed to uv_write and freed when
 * the write completes), 127.0.0.1 only.
 *
 *   uv_echo PORT
 */
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
} echo_write;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h;
    (void)hint;
    buf->base = malloc(65536);
    buf->len = buf->base ? 65536 : 0;
}

static void on_closed(uv_handle_t *h) {
    free(h);
}

static void on_written(uv_write_t *req, int status) {
    echo_write *w = (echo_write *)req;
    uv_handle_t *h = (uv_handle_t *)req->handle;
    free(w->buf.base);
    free(w);
    if (status < 0 && !uv_is_closing(h))
        uv_close(h, on_closed);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    if (n > 0) {
        echo_write *w = malloc(sizeof *w);
        if (w == NULL) {
            free(buf->base);
            uv_close((uv_handle_t *)s, on_closed);
            return;
        }
        w->buf = uv_buf_init(buf->base, (unsigned)n);
        if (uv_write(&w->req, s, &w->buf, 1, on_written) != 0) {
            free(buf->base);
            free(w);
            uv_close((uv_handle_t *)s, on_closed);
        }
        return;
    }
    free(buf->base);
    if (n < 0 && !uv_is_closing((uv_handle_t *)s))
        uv_close((uv_handle_t *)s, on_closed);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    if (c == NULL)
        return;
    uv_tcp_init(server->loop, c);
    if (uv_accept(server, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, on_closed);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
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
