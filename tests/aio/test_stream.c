/* Streams (braid/stream.h), first on threads: a server thread and a client over loopback.
 * Echo of lines and of a large payload, lines arriving in pieces, readexactly and
 * readuntil at the end of the stream and past their limit, a peer's reset, writing to
 * a closed peer (an error code, never SIGPIPE), calls on a closed stream, deadlines
 * (the stream stays usable after one), refused connections and unknown hosts,
 * addresses, Unix-domain sockets, streams over a socketpair, a pipe and a child's
 * pipes, and no descriptor leaked by any of it. Then on a loop: a server with many
 * client coroutines (TCP and Unix), a coroutine cancelled in a read (the stream stays
 * usable), deadlines in coroutines (the loop runs others meanwhile), and a loop
 * thread's server with plain threads as clients.
 *
 * The pauses some servers take (a line written in pieces) only shape how the bytes
 * arrive; no check depends on how long they last.
 */
#include "harness.h"

#include <braid/aio.h>
#include <braid/stream.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* --- a one-connection server on a thread ------------------------------------------- */

typedef void (*serve_fn)(br_stream *s, void *arg);

struct server {
    br_listener *l;
    serve_fn fn;
    void *arg;
    br_thread *t;
    int accept_rc;
};

static void server_main(void *p) {
    struct server *sv = p;
    br_stream *s = NULL;
    sv->accept_rc = br_listener_accept(sv->l, br_test_hang_guard(), &s);
    if (sv->accept_rc != 0)
        return;
    sv->fn(s, sv->arg);
    br_stream_free(s);
}

static void server_start(struct server *sv, serve_fn fn, void *arg) {
    memset(sv, 0, sizeof *sv);
    BR_CHECK_OK(br_listen_tcp("127.0.0.1", 0, 0, &sv->l));
    BR_CHECK(br_listener_port(sv->l) > 0);
    sv->fn = fn;
    sv->arg = arg;
    BR_CHECK_OK(br_thread_start(&sv->t, server_main, sv, NULL));
}

static void server_join(struct server *sv) {
    BR_CHECK_OK(br_thread_join(sv->t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(sv->t));
    BR_CHECK_OK(sv->accept_rc);
    br_listener_free(sv->l);
}

static br_stream *connect_to(struct server *sv) {
    br_stream *c = NULL;
    BR_CHECK_OK(br_open_connection("127.0.0.1", br_listener_port(sv->l),
                                   br_test_hang_guard(), &c));
    return c;
}

static void pause_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

/* --- echo ---------------------------------------------------------------------------- */

static void serve_echo_lines(br_stream *s, void *arg) {
    (void)arg;
    static char line[1 << 20];
    for (;;) {
        size_t got;
        int rc = br_stream_readline(s, line, sizeof line, br_test_hang_guard(), &got);
        if (rc == BR_EOF) {
            if (got > 0)
                BR_CHECK_OK(br_stream_write(s, line, got));
            break;
        }
        BR_CHECK_OK(rc);
        BR_CHECK_OK(br_stream_write(s, line, got));
        BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
    }
    BR_CHECK_OK(br_stream_write_eof(s, br_test_hang_guard()));
}

static void make_line(char *buf, size_t len, int seed) {
    for (size_t i = 0; i + 1 < len; i++)
        buf[i] = (char)('a' + (i * 7 + (size_t)seed) % 26);
    buf[len - 1] = '\n';
}

static void echo_lines(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_echo_lines, NULL);
    br_stream *c = connect_to(&sv);
    static char out[300000], in[300000];
    /* Sizes from one byte (the newline) to more than the socket buffers hold, so
     * that write queues and drain waits. */
    const size_t sizes[] = {1, 2, 10, 100, 4095, 4096, 4097, 65536, 200000, 299999};
    for (int round = 0; round < 3; round++) {
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            make_line(out, sizes[k], (int)k + round);
            BR_CHECK_OK(br_stream_write(c, out, sizes[k]));
            BR_CHECK_OK(br_stream_drain(c, br_test_hang_guard()));
            BR_CHECK_EQ(br_stream_pending(c), 0);
            size_t got;
            BR_CHECK_OK(br_stream_readline(c, in, sizeof in, br_test_hang_guard(), &got));
            BR_CHECK_EQ(got, sizes[k]);
            BR_CHECK(memcmp(in, out, got) == 0);
        }
    }
    /* Many lines written before any is read back: order kept, none lost. */
    for (int i = 0; i < 1000; i++) {
        char l[32];
        int n = snprintf(l, sizeof l, "line %d\n", i);
        BR_CHECK_OK(br_stream_write(c, l, (size_t)n));
    }
    BR_CHECK_OK(br_stream_drain(c, br_test_hang_guard()));
    for (int i = 0; i < 1000; i++) {
        char l[32], want[32];
        size_t got;
        int n = snprintf(want, sizeof want, "line %d\n", i);
        BR_CHECK_OK(br_stream_readline(c, l, sizeof l, br_test_hang_guard(), &got));
        BR_CHECK_EQ(got, n);
        BR_CHECK(memcmp(l, want, got) == 0);
    }
    /* A last line without a newline comes back with BR_EOF. */
    BR_CHECK_OK(br_stream_write(c, "tail", 4));
    BR_CHECK_OK(br_stream_write_eof(c, br_test_hang_guard()));
    BR_CHECK_ERR(br_stream_write(c, "x", 1), BR_EBADF);
    size_t got;
    BR_CHECK_ERR(br_stream_readline(c, in, sizeof in, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 4);
    BR_CHECK(memcmp(in, "tail", 4) == 0);
    BR_CHECK(br_stream_at_eof(c));
    BR_CHECK_ERR(br_stream_read(c, in, 10, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 0);
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

/* --- pieces ------------------------------------------------------------------------- */

static void serve_pieces(br_stream *s, void *arg) {
    (void)arg;
    const char *pieces[] = {"hel", "lo wo", "rld", "\nsec", "ond\r", "\nthi", "rd\n"};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        BR_CHECK_OK(br_stream_write(s, pieces[i], strlen(pieces[i])));
        BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
        pause_ms(20);
    }
}

static void partial_reads(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_pieces, NULL);
    br_stream *c = connect_to(&sv);
    char buf[64];
    size_t got;
    BR_CHECK_OK(br_stream_readline(c, buf, sizeof buf, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 12);
    BR_CHECK(memcmp(buf, "hello world\n", 12) == 0);
    /* A two-byte separator split across two arrivals. */
    BR_CHECK_OK(br_stream_readuntil(c, "\r\n", 2, buf, sizeof buf, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 8);
    BR_CHECK(memcmp(buf, "second\r\n", 8) == 0);
    BR_CHECK_OK(br_stream_readexactly(c, buf, 6, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 6);
    BR_CHECK(memcmp(buf, "third\n", 6) == 0);
    BR_CHECK_ERR(br_stream_read(c, buf, sizeof buf, br_test_hang_guard(), &got), BR_EOF);
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

/* --- the end of the stream and limits ----------------------------------------------- */

static void serve_ten_then_close(br_stream *s, void *arg) {
    (void)arg;
    BR_CHECK_OK(br_stream_write(s, "0123456789", 10));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
}

static void readexactly_eof(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_ten_then_close, NULL);
    br_stream *c = connect_to(&sv);
    char buf[32];
    size_t got;
    BR_CHECK_OK(br_stream_readexactly(c, buf, 4, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 4);
    BR_CHECK(memcmp(buf, "0123", 4) == 0);
    BR_CHECK_ERR(br_stream_readexactly(c, buf, 20, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 6);
    BR_CHECK(memcmp(buf, "456789", 6) == 0);
    BR_CHECK(br_stream_at_eof(c));
    BR_CHECK_ERR(br_stream_readexactly(c, buf, 1, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 0);
    BR_CHECK_ERR(br_stream_readline(c, buf, sizeof buf, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 0);
    /* readexactly of 0 bytes is 0, even at the end. */
    BR_CHECK_OK(br_stream_readexactly(c, buf, 0, br_test_hang_guard(), &got));
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

static void serve_limit(br_stream *s, void *arg) {
    (void)arg;
    BR_CHECK_OK(br_stream_write(s, "abcdefghij\r\nxyz", 15));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
}

static void readuntil_limit(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_limit, NULL);
    br_stream *c = connect_to(&sv);
    char buf[64];
    size_t got;
    /* The separator ends at byte 12: a limit of 5 (no separator yet in 5 bytes) and of
     * 11 (found, but past the limit) both refuse, and consume nothing. */
    BR_CHECK_ERR(br_stream_readuntil(c, "\r\n", 2, buf, 5, br_test_hang_guard(), &got), BR_ERANGE);
    BR_CHECK_EQ(got, 0);
    BR_CHECK_ERR(br_stream_readuntil(c, "\r\n", 2, buf, 11, br_test_hang_guard(), &got), BR_ERANGE);
    BR_CHECK_OK(br_stream_readuntil(c, "\r\n", 2, buf, 12, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 12);
    BR_CHECK(memcmp(buf, "abcdefghij\r\n", 12) == 0);
    /* The rest ends without a separator: BR_EOF with what was left. */
    BR_CHECK_ERR(br_stream_readuntil(c, "\r\n", 2, buf, sizeof buf, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 3);
    BR_CHECK(memcmp(buf, "xyz", 3) == 0);
    BR_CHECK_ERR(br_stream_readuntil(c, "", 0, buf, sizeof buf, BR_NOWAIT, &got), BR_EINVAL);
    BR_CHECK_ERR(br_stream_readuntil(c, "\n", 1, buf, 0, BR_NOWAIT, &got), BR_EINVAL);
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

/* --- resets and closed peers ---------------------------------------------------------- */

static void serve_reset(br_stream *s, void *arg) {
    (void)arg;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    BR_CHECK(setsockopt(br_stream_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    /* Read what the client sent first, so that the reset isn't about unread data. */
    char b[4];
    size_t got;
    BR_CHECK_OK(br_stream_readexactly(s, b, 4, br_test_hang_guard(), &got));
    BR_CHECK_OK(br_stream_close(s));
}

static void peer_reset(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_reset, NULL);
    br_stream *c = connect_to(&sv);
    BR_CHECK_OK(br_stream_write(c, "ping", 4));
    char buf[16];
    size_t got;
    BR_CHECK_ERR(br_stream_read(c, buf, sizeof buf, br_test_hang_guard(), &got), BR_ECONNRESET);
    BR_CHECK_EQ(got, 0);
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

static void serve_close_at_once(br_stream *s, void *arg) {
    (void)s;
    (void)arg;
}

static void write_to_closed_peer(void **state) {
    (void)state;
    /* SIGPIPE's default action would end the test: its absence is part of the check. */
    signal(SIGPIPE, SIG_DFL);
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_close_at_once, NULL);
    br_stream *c = connect_to(&sv);
    server_join(&sv); /* the peer has closed */
    /* The first writes may be taken by the kernel; the peer answers them with a reset,
     * and a later one fails. */
    char chunk[1024];
    memset(chunk, 'x', sizeof chunk);
    int rc = 0;
    int64_t guard = br_test_hang_guard();
    while (rc == 0 && br_now() < guard) {
        rc = br_stream_write(c, chunk, sizeof chunk);
        if (rc == 0)
            rc = br_stream_drain(c, guard);
        if (rc == 0)
            pause_ms(1);
    }
    if (rc != BR_EPIPE && rc != BR_ECONNRESET)
        fail_msg("write to a closed peer: got %s", br_err_name(rc));
    /* The error sticks. */
    BR_CHECK_ERR(br_stream_write(c, "y", 1), rc);
    BR_CHECK_ERR(br_stream_drain(c, BR_NOWAIT), rc);
    br_stream_free(c);
    br_test_wait_fds(fds);
}

/* --- a closed stream ----------------------------------------------------------------- */

static void closed_stream(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_close_at_once, NULL);
    br_stream *c = connect_to(&sv);
    BR_CHECK(br_stream_fd(c) >= 0);
    BR_CHECK_OK(br_stream_close(c));
    BR_CHECK_EQ(br_stream_fd(c), -1);
    char buf[8];
    size_t got;
    int port;
    BR_CHECK_ERR(br_stream_read(c, buf, sizeof buf, BR_FOREVER, &got), BR_EBADF);
    BR_CHECK_ERR(br_stream_readline(c, buf, sizeof buf, BR_FOREVER, &got), BR_EBADF);
    BR_CHECK_ERR(br_stream_readexactly(c, buf, 2, BR_FOREVER, &got), BR_EBADF);
    BR_CHECK_ERR(br_stream_readuntil(c, ":", 1, buf, sizeof buf, BR_FOREVER, &got), BR_EBADF);
    BR_CHECK_ERR(br_stream_write(c, "a", 1), BR_EBADF);
    BR_CHECK_ERR(br_stream_drain(c, BR_FOREVER), BR_EBADF);
    BR_CHECK_ERR(br_stream_write_eof(c, BR_FOREVER), BR_EBADF);
    BR_CHECK_ERR(br_stream_peername(c, buf, sizeof buf, &port), BR_EBADF);
    BR_CHECK_OK(br_stream_close(c));
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

/* --- deadlines ------------------------------------------------------------------------- */

struct gate {
    br_event go;
};

static void serve_after_gate(br_stream *s, void *arg) {
    struct gate *g = arg;
    BR_CHECK_OK(br_stream_write(s, "par", 3));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
    BR_CHECK_OK(br_event_wait(&g->go, br_test_hang_guard()));
    BR_CHECK_OK(br_stream_write(s, "tial\n", 5));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
    char b[1];
    size_t got;
    BR_CHECK_ERR(br_stream_read(s, b, 1, br_test_hang_guard(), &got), BR_EOF);
}

static void deadlines(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct gate g;
    BR_CHECK_OK(br_event_init(&g.go));
    struct server sv;
    server_start(&sv, serve_after_gate, &g);
    br_stream *c = connect_to(&sv);
    char buf[32];
    size_t got;
    BR_CHECK_ERR(br_stream_readline(c, buf, sizeof buf, BR_NOWAIT, &got), BR_ETIMEDOUT);
    BR_CHECK_EQ(got, 0);
    BR_CHECK_ERR(br_stream_readline(c, buf, sizeof buf, br_deadline_after(30 * BR_MSEC), &got),
                 BR_ETIMEDOUT);
    BR_CHECK_ERR(br_stream_readexactly(c, buf, 10, br_deadline_after(30 * BR_MSEC), &got),
                 BR_ETIMEDOUT);
    /* readexactly consumed what came ("par" or a prefix, or nothing yet): put it
     * back in front of what follows by reading the rest of the line. */
    size_t first = got;
    BR_CHECK(first <= 3);
    BR_CHECK(memcmp(buf, "par", first) == 0);
    BR_CHECK_OK(br_event_set(&g.go));
    BR_CHECK_OK(br_stream_readline(c, buf + first, sizeof buf - first, br_test_hang_guard(), &got));
    BR_CHECK_EQ(first + got, 8);
    BR_CHECK(memcmp(buf, "partial\n", 8) == 0);
    BR_CHECK_OK(br_stream_write_eof(c, br_test_hang_guard()));
    br_stream_free(c);
    server_join(&sv);
    BR_CHECK_OK(br_event_destroy(&g.go));
    br_test_wait_fds(fds);
}

static void serve_line_after_gate(br_stream *s, void *arg) {
    struct gate *g = arg;
    BR_CHECK_OK(br_stream_write(s, "half", 4));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
    BR_CHECK_OK(br_event_wait(&g->go, br_test_hang_guard()));
    BR_CHECK_OK(br_stream_write(s, " and half\n", 10));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
}

/* A readline that times out consumes nothing, even when part of the line came. */
static void readline_timeout_keeps_data(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct gate g;
    BR_CHECK_OK(br_event_init(&g.go));
    struct server sv;
    server_start(&sv, serve_line_after_gate, &g);
    br_stream *c = connect_to(&sv);
    char buf[32];
    size_t got;
    for (int i = 0; i < 3; i++)
        BR_CHECK_ERR(br_stream_readline(c, buf, sizeof buf, br_deadline_after(10 * BR_MSEC), &got),
                     BR_ETIMEDOUT);
    BR_CHECK_OK(br_event_set(&g.go));
    BR_CHECK_OK(br_stream_readline(c, buf, sizeof buf, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 14);
    BR_CHECK(memcmp(buf, "half and half\n", 14) == 0);
    br_stream_free(c);
    server_join(&sv);
    BR_CHECK_OK(br_event_destroy(&g.go));
    br_test_wait_fds(fds);
}

/* --- connecting: refused, unknown, by name ------------------------------------------- */

static void connect_errors(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_listener *l;
    BR_CHECK_OK(br_listen_tcp("127.0.0.1", 0, 0, &l));
    int port = br_listener_port(l);
    br_listener_free(l); /* nobody listens there now */
    br_stream *c = NULL;
    BR_CHECK_ERR(br_open_connection("127.0.0.1", port, br_test_hang_guard(), &c), BR_ECONNREFUSED);
    BR_CHECK(c == NULL);
    /* A name that can't resolve ("invalid" is reserved for that): no such host, or a
     * resolver that can't be reached here. */
    int rc = br_open_connection("no-such-host.invalid", 80, br_test_hang_guard(), &c);
    if (rc != BR_ENOENT && rc != BR_EAGAIN)
        fail_msg("unknown host: got %s", br_err_name(rc));
    BR_CHECK_ERR(br_open_connection("127.0.0.1", 70000, BR_FOREVER, &c), BR_EINVAL);
    BR_CHECK_ERR(br_open_connection("127.0.0.1", -1, BR_FOREVER, &c), BR_EINVAL);
    BR_CHECK_ERR(br_open_connection(NULL, 80, BR_FOREVER, &c), BR_EINVAL);
    BR_CHECK_ERR(br_open_connection("", 80, BR_FOREVER, &c), BR_EINVAL);
    BR_CHECK_ERR(br_open_connection("127.0.0.1", 80, BR_FOREVER, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_stream_from_fd(-1, &c), BR_EINVAL);
    /* Two listeners on one port. */
    BR_CHECK_OK(br_listen_tcp("127.0.0.1", 0, 0, &l));
    br_listener *l2 = NULL;
    BR_CHECK_ERR(br_listen_tcp("127.0.0.1", br_listener_port(l), 0, &l2), BR_EADDRINUSE);
    br_listener_free(l);
    br_test_wait_fds(fds);
}

static void serve_hello(br_stream *s, void *arg) {
    (void)arg;
    BR_CHECK_OK(br_stream_write(s, "hello\n", 6));
    BR_CHECK_OK(br_stream_drain(s, br_test_hang_guard()));
}

/* "localhost" is a name: resolved on the helper thread, each address tried in turn
 * (::1 may come first and be refused: the listener is on 127.0.0.1). */
static void connect_by_name(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_hello, NULL);
    br_stream *c = NULL;
    int rc = br_open_connection("localhost", br_listener_port(sv.l), br_test_hang_guard(), &c);
    if (rc == BR_ENOENT || rc == BR_EAGAIN) {
        /* No resolver entry for localhost here: let the server go and skip. */
        BR_CHECK_OK(br_open_connection("127.0.0.1", br_listener_port(sv.l), br_test_hang_guard(), &c));
    } else {
        BR_CHECK_OK(rc);
    }
    char buf[16];
    size_t got;
    BR_CHECK_OK(br_stream_readline(c, buf, sizeof buf, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 6);
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

/* --- addresses --------------------------------------------------------------------------- */

static void addresses(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct server sv;
    server_start(&sv, serve_hello, NULL);
    br_stream *c = connect_to(&sv);
    char host[64];
    int port = -1, lport = -1;
    BR_CHECK_OK(br_stream_peername(c, host, sizeof host, &port));
    BR_CHECK(strcmp(host, "127.0.0.1") == 0);
    BR_CHECK_EQ(port, br_listener_port(sv.l));
    BR_CHECK_OK(br_stream_sockname(c, host, sizeof host, &lport));
    BR_CHECK(strcmp(host, "127.0.0.1") == 0);
    BR_CHECK(lport > 0 && lport != port);
    BR_CHECK_ERR(br_stream_sockname(c, host, 4, &lport), BR_ERANGE);
    BR_CHECK_ERR(br_stream_sockname(c, NULL, 4, &lport), BR_EINVAL);
    size_t got;
    BR_CHECK_OK(br_stream_readline(c, host, sizeof host, br_test_hang_guard(), &got));
    br_stream_free(c);
    server_join(&sv);
    br_test_wait_fds(fds);
}

/* --- Unix-domain sockets ------------------------------------------------------------------ */

struct unix_server {
    br_listener *l;
    int rc;
    char peer[108];
};

static void unix_server_main(void *p) {
    struct unix_server *u = p;
    br_stream *s;
    u->rc = br_listener_accept(u->l, br_test_hang_guard(), &s);
    if (u->rc != 0)
        return;
    serve_echo_lines(s, NULL);
    br_stream_free(s);
}

static void unix_sockets(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    char path[64];
    snprintf(path, sizeof path, "/tmp/braid-test-stream-%d.sock", (int)getpid());
    unlink(path);
    struct unix_server u = {0};
    BR_CHECK_OK(br_listen_unix(path, 0, &u.l));
    BR_CHECK_EQ(br_listener_port(u.l), 0);
    br_listener *again = NULL;
    BR_CHECK_ERR(br_listen_unix(path, 0, &again), BR_EADDRINUSE);
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, unix_server_main, &u, NULL));
    br_stream *c = NULL;
    BR_CHECK_OK(br_open_unix_connection(path, br_test_hang_guard(), &c));
    char host[128];
    int port = -1;
    BR_CHECK_OK(br_stream_peername(c, host, sizeof host, &port));
    BR_CHECK(strcmp(host, path) == 0);
    BR_CHECK_EQ(port, 0);
    BR_CHECK_OK(br_stream_sockname(c, host, sizeof host, &port));
    BR_CHECK(strcmp(host, "") == 0);
    char line[256];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(line, sizeof line, "unix %d\n", i);
        BR_CHECK_OK(br_stream_write(c, line, (size_t)n));
    }
    BR_CHECK_OK(br_stream_drain(c, br_test_hang_guard()));
    for (int i = 0; i < 100; i++) {
        char want[32];
        size_t got;
        int n = snprintf(want, sizeof want, "unix %d\n", i);
        BR_CHECK_OK(br_stream_readline(c, line, sizeof line, br_test_hang_guard(), &got));
        BR_CHECK_EQ(got, n);
        BR_CHECK(memcmp(line, want, got) == 0);
    }
    BR_CHECK_OK(br_stream_write_eof(c, br_test_hang_guard()));
    size_t got;
    BR_CHECK_ERR(br_stream_read(c, line, sizeof line, br_test_hang_guard(), &got), BR_EOF);
    br_stream_free(c);
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_OK(u.rc);
    br_listener_free(u.l);
    BR_CHECK(access(path, F_OK) != 0 && errno == ENOENT); /* the socket file is gone */
    BR_CHECK_ERR(br_open_unix_connection(path, br_test_hang_guard(), &c), BR_ENOENT);
    char longpath[200];
    memset(longpath, 'p', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    BR_CHECK_ERR(br_open_unix_connection(longpath, BR_FOREVER, &c), BR_ENAMETOOLONG);
    BR_CHECK_ERR(br_listen_unix(longpath, 0, &again), BR_ENAMETOOLONG);
    br_test_wait_fds(fds);
}

/* --- streams over descriptors ------------------------------------------------------------- */

struct bulk {
    br_stream *s;
    size_t total;
    int64_t sum;
    int rc;
};

static unsigned char byte_at(size_t i) {
    return (unsigned char)(i * 131u + (i >> 13));
}

static void bulk_writer(void *p) {
    struct bulk *b = p;
    static unsigned char chunk[70000];
    size_t off = 0;
    while (off < b->total && b->rc == 0) {
        size_t n = b->total - off < sizeof chunk ? b->total - off : sizeof chunk;
        n = n > 1 + off % 69999 ? 1 + off % 69999 : n; /* uneven pieces */
        for (size_t i = 0; i < n; i++)
            chunk[i] = byte_at(off + i);
        b->rc = br_stream_write(b->s, chunk, n);
        if (b->rc == 0)
            b->rc = br_stream_drain(b->s, br_test_hang_guard());
        off += n;
    }
    if (b->rc == 0)
        b->rc = br_stream_write_eof(b->s, br_test_hang_guard());
}

static void bulk_over(int rfd, int wfd) {
    br_stream *r, *w;
    BR_CHECK_OK(br_stream_from_fd(rfd, &r));
    BR_CHECK_OK(br_stream_from_fd(wfd, &w));
    struct bulk b = {.s = w, .total = (size_t)br_test_scaled(16 << 20, 1 << 20)};
    br_thread *t;
    BR_CHECK_OK(br_thread_start(&t, bulk_writer, &b, NULL));
    static unsigned char buf[100000];
    size_t off = 0;
    for (;;) {
        size_t got;
        int rc = br_stream_read(r, buf, sizeof buf, br_test_hang_guard(), &got);
        if (rc == BR_EOF)
            break;
        BR_CHECK_OK(rc);
        for (size_t i = 0; i < got; i++)
            if (buf[i] != byte_at(off + i))
                fail_msg("byte %zu: %u != %u", off + i, buf[i], byte_at(off + i));
        off += got;
    }
    BR_CHECK_EQ(off, b.total);
    BR_CHECK_OK(br_thread_join(t, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(t));
    BR_CHECK_OK(b.rc);
    br_stream_free(r);
    br_stream_free(w);
}

static void socketpair_and_pipe(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    int sv[2];
    BR_CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    bulk_over(sv[0], sv[1]);
    int p[2];
    BR_CHECK(pipe(p) == 0);
    bulk_over(p[0], p[1]);
    br_test_wait_fds(fds);
    /* A pipe whose reader is gone: BR_EPIPE, no SIGPIPE. */
    signal(SIGPIPE, SIG_DFL);
    BR_CHECK(pipe(p) == 0);
    close(p[0]);
    br_stream *w;
    BR_CHECK_OK(br_stream_from_fd(p[1], &w));
    BR_CHECK_ERR(br_stream_write(w, "x", 1), BR_EPIPE);
    BR_CHECK_ERR(br_stream_drain(w, BR_FOREVER), BR_EPIPE);
    br_stream_free(w);
    br_test_wait_fds(fds);
}

/* --- a child's pipes as streams ------------------------------------------------------ */

static void subprocess_streams(void **state) {
    (void)state;
    /* The child watcher keeps descriptors of its own once started: start it first. */
    br_completed r;
    BR_CHECK_OK(br_run((const char *const[]){"true", NULL}, NULL, &r));
    br_completed_destroy(&r);
    int fds = br_test_count_fds();
    const char *argv[] = {"cat", NULL};
    br_subprocess_opts o = {.in = BR_STDIO_PIPE, .out = BR_STDIO_PIPE};
    br_popen *p;
    BR_CHECK_OK(br_popen_start(&p, argv, &o));
    br_stream *in, *out;
    BR_CHECK_OK(br_popen_stream(p, 0, &in));
    BR_CHECK_OK(br_popen_stream(p, 1, &out));
    BR_CHECK_EQ(br_popen_fd(p, 0), -1); /* the streams own the pipes now */
    BR_CHECK_ERR(br_popen_stream(p, 0, &in), BR_EBADF);
    BR_CHECK_ERR(br_popen_stream(p, 2, &in), BR_EBADF); /* stderr isn't a pipe */
    BR_CHECK_ERR(br_popen_stream(p, 3, &in), BR_EINVAL);
    /* More than a pipe holds, line by line, read back as it comes. */
    char line[64], want[64];
    int n = (int)br_test_scaled(20000, 2000);
    int next_read = 0;
    for (int i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "child line %d\n", i);
        BR_CHECK_OK(br_stream_write(in, line, (size_t)len));
        if (br_stream_pending(in) > 0) {
            /* The pipe is full: read what cat has echoed so far, then go on. */
            while (next_read < i) {
                size_t got;
                int wl = snprintf(want, sizeof want, "child line %d\n", next_read);
                BR_CHECK_OK(br_stream_readline(out, line, sizeof line, br_test_hang_guard(), &got));
                BR_CHECK_EQ(got, wl);
                BR_CHECK(memcmp(line, want, got) == 0);
                next_read++;
            }
            /* cat has room again: the rest of line i (one line at most) goes. */
            BR_CHECK_OK(br_stream_drain(in, br_test_hang_guard()));
        }
    }
    BR_CHECK_OK(br_stream_write_eof(in, br_test_hang_guard()));
    for (; next_read < n; next_read++) {
        size_t got;
        int wl = snprintf(want, sizeof want, "child line %d\n", next_read);
        BR_CHECK_OK(br_stream_readline(out, line, sizeof line, br_test_hang_guard(), &got));
        BR_CHECK_EQ(got, wl);
        BR_CHECK(memcmp(line, want, got) == 0);
    }
    size_t got;
    BR_CHECK_ERR(br_stream_readline(out, line, sizeof line, br_test_hang_guard(), &got), BR_EOF);
    int code = -1;
    BR_CHECK_OK(br_popen_wait(p, br_test_hang_guard(), &code));
    BR_CHECK_EQ(code, 0);
    br_stream_free(in);
    br_stream_free(out);
    BR_CHECK_OK(br_popen_free(p));
    br_test_wait_no_children();
    br_test_wait_fds(fds);
}

/* --- coroutines on a loop -------------------------------------------------------------
 *
 * Checks inside a coroutine don't jump out of it (its stack isn't the test's): they
 * make the coroutine fail with the line, and the test checks the tasks' codes. */

#define CO_CHECK(t, cond)                                                               \
    do {                                                                              \
        if (!(cond))                                                                  \
            return br_task_fail((t), BR_EFAILED, "%s:%d: %s", __FILE__, __LINE__, #cond); \
    } while (0)
#define CO_OK(t, expr)                                                                  \
    do {                                                                              \
        int co_rc_ = (expr);                                                          \
        if (co_rc_ != 0)                                                              \
            return br_task_fail((t), co_rc_ < 0 ? co_rc_ : BR_EFAILED, "%s:%d: %s: %s", \
                                __FILE__, __LINE__, #expr, br_err_name(co_rc_));      \
    } while (0)

struct echo_stats {
    int conns;    /* handlers that ran to the end of their stream */
    int failures; /* handlers that saw anything else */
    int lines;
};

static int handle_echo(br_stream *s, void *arg) {
    struct echo_stats *st = arg;
    char line[256];
    for (;;) {
        size_t got;
        int rc = br_stream_readline(s, line, sizeof line, br_test_hang_guard(), &got);
        if (rc == BR_EOF && got == 0)
            break;
        if (rc == 0)
            rc = br_stream_write(s, line, got);
        if (rc == 0)
            rc = br_stream_drain(s, br_test_hang_guard());
        if (rc != 0) {
            st->failures++;
            return rc;
        }
        st->lines++;
    }
    st->conns++;
    return 0;
}

struct client_arg {
    int port;
    int id;
    int lines;
    const char *unix_path;
};

static int client_main(br_task *t) {
    const struct client_arg *a = br_task_arg(t, NULL);
    br_stream *c = NULL;
    if (a->unix_path != NULL)
        CO_OK(t, br_open_unix_connection(a->unix_path, br_test_hang_guard(), &c));
    else
        CO_OK(t, br_open_connection("127.0.0.1", a->port, br_test_hang_guard(), &c));
    char out[64], in[64];
    /* Half the lines written at once, then read back; the rest one by one. */
    int half = a->lines / 2;
    for (int j = 0; j < half; j++) {
        int n = snprintf(out, sizeof out, "client %d line %d\n", a->id, j);
        CO_OK(t, br_stream_write(c, out, (size_t)n));
    }
    CO_OK(t, br_stream_drain(c, br_test_hang_guard()));
    for (int j = 0; j < a->lines; j++) {
        int n = snprintf(out, sizeof out, "client %d line %d\n", a->id, j);
        if (j >= half) {
            CO_OK(t, br_stream_write(c, out, (size_t)n));
            CO_OK(t, br_stream_drain(c, br_test_hang_guard()));
        }
        size_t got;
        CO_OK(t, br_stream_readline(c, in, sizeof in, br_test_hang_guard(), &got));
        CO_CHECK(t, got == (size_t)n && memcmp(in, out, got) == 0);
    }
    CO_OK(t, br_stream_write_eof(c, br_test_hang_guard()));
    size_t got;
    CO_CHECK(t, br_stream_read(c, in, sizeof in, br_test_hang_guard(), &got) == BR_EOF);
    br_stream_free(c);
    return 0;
}

struct many_arg {
    int clients, lines;
    struct echo_stats st;
    bool use_unix;
    char path[64];
};

static int many_main(br_task *t) {
    struct many_arg *m = (struct many_arg *)br_task_arg(t, NULL);
    br_server *srv;
    if (m->use_unix)
        CO_OK(t, br_start_unix_server(NULL, m->path, handle_echo, &m->st, &srv));
    else
        CO_OK(t, br_start_server(NULL, "127.0.0.1", 0, handle_echo, &m->st, &srv));
    CO_CHECK(t, br_server_wait(srv, BR_NOWAIT) == BR_ESTATE); /* not closed yet */
    CO_CHECK(t, br_server_free(srv) == BR_EBUSY);
    br_future **fs = calloc((size_t)m->clients, sizeof *fs);
    CO_CHECK(t, fs != NULL);
    for (int i = 0; i < m->clients; i++) {
        struct client_arg a = {.port = br_server_port(srv), .id = i, .lines = m->lines,
                               .unix_path = m->use_unix ? m->path : NULL};
        CO_OK(t, br_create_task(NULL, client_main, &a, sizeof a, &fs[i]));
    }
    int bad = 0;
    for (int i = 0; i < m->clients; i++) {
        int code = -1;
        CO_OK(t, br_future_exception(fs[i], br_test_hang_guard(), &code, NULL));
        bad += code != 0;
        br_future_release(fs[i]);
    }
    free(fs);
    CO_CHECK(t, bad == 0);
    CO_OK(t, br_server_close(srv));
    CO_OK(t, br_server_close(srv)); /* twice is 0 */
    CO_OK(t, br_server_wait(srv, br_test_hang_guard()));
    CO_OK(t, br_server_free(srv));
    return 0;
}

/* Many clients and their handlers, all coroutines of one loop on this thread. */
static void server_many_clients(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    int threads = br_test_count_threads();
    struct many_arg m = {.clients = (int)br_test_scaled(200, 20), .lines = 20};
    int code = -1;
    BR_CHECK_OK(br_aio_run(many_main, &m, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK_EQ(m.st.failures, 0);
    BR_CHECK_EQ(m.st.conns, m.clients);
    BR_CHECK_EQ(m.st.lines, m.clients * m.lines);
    BR_CHECK_EQ(br_test_count_threads(), threads); /* no thread helped */
    br_test_wait_fds(fds);
}

static void unix_server_coroutines(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct many_arg m = {.clients = 10, .lines = 50, .use_unix = true};
    snprintf(m.path, sizeof m.path, "/tmp/braid-test-userver-%d.sock", (int)getpid());
    unlink(m.path);
    int code = -1;
    BR_CHECK_OK(br_aio_run(many_main, &m, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK_EQ(m.st.conns, 10);
    BR_CHECK_EQ(m.st.lines, 500);
    BR_CHECK(access(m.path, F_OK) != 0); /* removed with the server's listener */
    br_test_wait_fds(fds);
}

/* A server whose handler writes a line in pieces with sleeps between them (the loop
 * runs the client meanwhile), then waits on an Event before its last line. */
struct slow_arg {
    br_event go;
    int served;
};

static int handle_slow(br_stream *s, void *arg) {
    struct slow_arg *a = arg;
    const char *pieces[] = {"hel", "lo wo", "rld", "\n"};
    for (int i = 0; i < 4; i++) {
        int rc = br_stream_write(s, pieces[i], strlen(pieces[i]));
        if (rc == 0)
            rc = br_stream_drain(s, br_test_hang_guard());
        if (rc == 0)
            rc = br_aio_sleep(5 * BR_MSEC);
        if (rc != 0)
            return rc;
    }
    int rc = br_event_wait(&a->go, br_test_hang_guard());
    if (rc == 0)
        rc = br_stream_write(s, "late\n", 5);
    if (rc == 0)
        rc = br_stream_drain(s, br_test_hang_guard());
    a->served += rc == 0;
    return rc;
}

struct reader_arg {
    br_stream *s;
    int rc;
    bool started;
};

static int reader_main(br_task *t) {
    struct reader_arg *r = (struct reader_arg *)br_task_arg(t, NULL);
    char buf[64];
    size_t got;
    r->started = true;
    r->rc = br_stream_readline(r->s, buf, sizeof buf, BR_FOREVER, &got);
    return r->rc;
}

static int cancel_main(br_task *t) {
    struct slow_arg *a = (struct slow_arg *)br_task_arg(t, NULL);
    br_server *srv;
    CO_OK(t, br_start_server(NULL, "127.0.0.1", 0, handle_slow, a, &srv));
    br_stream *c;
    CO_OK(t, br_open_connection("127.0.0.1", br_server_port(srv), br_test_hang_guard(), &c));
    char buf[64];
    size_t got;
    CO_OK(t, br_stream_readline(c, buf, sizeof buf, br_test_hang_guard(), &got));
    CO_CHECK(t, got == 12 && memcmp(buf, "hello world\n", 12) == 0);
    /* A reader coroutine blocks in readline (the handler waits for the event); once
     * it has run, it can only be suspended in its wait: cancel it there. */
    struct reader_arg r = {.s = c, .rc = 1};
    br_future *rf;
    CO_OK(t, br_create_task(NULL, reader_main, &r, 0, &rf));
    while (!r.started)
        CO_OK(t, br_aio_yield());
    CO_OK(t, br_aio_yield());
    CO_CHECK(t, !br_future_done(rf));
    br_future_cancel(rf);
    int code;
    CO_CHECK(t, br_future_exception(rf, br_test_hang_guard(), &code, NULL) == BR_ECANCELED);
    CO_CHECK(t, br_future_cancelled(rf));
    CO_CHECK(t, r.rc == BR_ECANCELED);
    br_future_release(rf);
    /* The stream is still usable: the next line arrives whole. */
    CO_OK(t, br_event_set(&a->go));
    CO_OK(t, br_stream_readline(c, buf, sizeof buf, br_test_hang_guard(), &got));
    CO_CHECK(t, got == 5 && memcmp(buf, "late\n", 5) == 0);
    CO_CHECK(t, br_stream_read(c, buf, sizeof buf, br_test_hang_guard(), &got) == BR_EOF);
    br_stream_free(c);
    CO_OK(t, br_server_close(srv));
    CO_OK(t, br_server_wait(srv, br_test_hang_guard()));
    CO_OK(t, br_server_free(srv));
    return 0;
}

static void cancel_blocked_read(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    struct slow_arg a = {.served = 0};
    BR_CHECK_OK(br_event_init(&a.go));
    int code = -1;
    BR_CHECK_OK(br_aio_run(cancel_main, &a, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK_EQ(a.served, 1);
    BR_CHECK_OK(br_event_destroy(&a.go));
    br_test_wait_fds(fds);
}

/* Deadlines in coroutines, while another coroutine keeps running (the loop isn't
 * blocked by the wait). */
struct ticker_arg {
    int ticks;
    bool stop;
};

static int ticker_main(br_task *t) {
    struct ticker_arg *k = (struct ticker_arg *)br_task_arg(t, NULL);
    while (!k->stop) {
        k->ticks++;
        CO_OK(t, br_aio_sleep(BR_MSEC));
    }
    return 0;
}

static int silent_handler(br_stream *s, void *arg) {
    br_event *go = arg;
    (void)s;
    return br_event_wait(go, br_test_hang_guard());
}

static int deadline_main(br_task *t) {
    br_event *go = (br_event *)br_task_arg(t, NULL);
    br_server *srv;
    CO_OK(t, br_start_server(NULL, "127.0.0.1", 0, silent_handler, go, &srv));
    br_stream *c;
    CO_OK(t, br_open_connection("127.0.0.1", br_server_port(srv), br_test_hang_guard(), &c));
    struct ticker_arg k = {0};
    br_future *kf;
    CO_OK(t, br_create_task(NULL, ticker_main, &k, 0, &kf));
    char buf[8];
    size_t got;
    CO_CHECK(t, br_stream_readline(c, buf, sizeof buf, br_deadline_after(50 * BR_MSEC), &got) ==
                    BR_ETIMEDOUT);
    CO_CHECK(t, k.ticks > 0); /* the ticker ran while this coroutine waited */
    CO_CHECK(t, br_stream_read(c, buf, sizeof buf, BR_NOWAIT, &got) == BR_ETIMEDOUT);
    k.stop = true;
    CO_OK(t, br_future_wait(kf, br_test_hang_guard()));
    br_future_release(kf);
    CO_OK(t, br_event_set(go));
    CO_CHECK(t, br_stream_read(c, buf, sizeof buf, br_test_hang_guard(), &got) == BR_EOF);
    br_stream_free(c);
    CO_OK(t, br_server_close(srv));
    CO_OK(t, br_server_wait(srv, br_test_hang_guard()));
    CO_OK(t, br_server_free(srv));
    return 0;
}

static void coroutine_deadlines(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_event go;
    BR_CHECK_OK(br_event_init(&go));
    int code = -1;
    BR_CHECK_OK(br_aio_run(deadline_main, &go, 0, &code));
    BR_CHECK_EQ(code, 0);
    BR_CHECK_OK(br_event_destroy(&go));
    br_test_wait_fds(fds);
}

/* A loop on its own thread serving clients that are plain threads; the server is
 * started, closed and waited for from the test's thread. */
static void loop_thread_main(void *arg) {
    br_loop *l = arg;
    BR_CHECK_OK(br_loop_run_forever(l));
}

struct thread_client {
    int port, id;
    int rc;
};

static void thread_client_main(void *arg) {
    struct thread_client *c = arg;
    br_stream *s = NULL;
    c->rc = br_open_connection("127.0.0.1", c->port, br_test_hang_guard(), &s);
    for (int j = 0; j < 100 && c->rc == 0; j++) {
        char out[64], in[64];
        size_t got;
        int n = snprintf(out, sizeof out, "thread %d line %d\n", c->id, j);
        c->rc = br_stream_write(s, out, (size_t)n);
        if (c->rc == 0)
            c->rc = br_stream_drain(s, br_test_hang_guard());
        if (c->rc == 0)
            c->rc = br_stream_readline(s, in, sizeof in, br_test_hang_guard(), &got);
        if (c->rc == 0 && (got != (size_t)n || memcmp(in, out, got) != 0))
            c->rc = BR_EFAILED;
    }
    if (c->rc == 0)
        c->rc = br_stream_write_eof(s, br_test_hang_guard());
    br_stream_free(s);
}

static void threads_against_loop_server(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    struct echo_stats st = {0};
    br_server *srv;
    BR_CHECK_ERR(br_start_server(NULL, "127.0.0.1", 0, handle_echo, &st, &srv), BR_EPERM);
    BR_CHECK_OK(br_start_server(l, "127.0.0.1", 0, handle_echo, &st, &srv));
    br_thread *lt;
    BR_CHECK_OK(br_thread_start(&lt, loop_thread_main, l, NULL));
    enum { N = 8 };
    struct thread_client cs[N];
    br_thread *ts[N];
    for (int i = 0; i < N; i++) {
        cs[i] = (struct thread_client){.port = br_server_port(srv), .id = i, .rc = 1};
        BR_CHECK_OK(br_thread_start(&ts[i], thread_client_main, &cs[i], NULL));
    }
    for (int i = 0; i < N; i++) {
        BR_CHECK_OK(br_thread_join(ts[i], br_test_hang_guard()));
        BR_CHECK_OK(br_thread_free(ts[i]));
        BR_CHECK_OK(cs[i].rc);
    }
    BR_CHECK_OK(br_server_close(srv));
    BR_CHECK_OK(br_server_wait(srv, br_test_hang_guard()));
    BR_CHECK_OK(br_server_free(srv));
    BR_CHECK_EQ(st.conns, N);
    BR_CHECK_EQ(st.lines, N * 100);
    BR_CHECK_EQ(st.failures, 0);
    BR_CHECK_OK(br_loop_stop(l));
    BR_CHECK_OK(br_thread_join(lt, br_test_hang_guard()));
    BR_CHECK_OK(br_thread_free(lt));
    BR_CHECK_OK(br_loop_free(l));
    br_test_wait_fds(fds);
}

/* A server closed before its loop ever ran its acceptor: nothing leaks, wait returns. */
static void server_closed_before_it_runs(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_loop *l;
    BR_CHECK_OK(br_loop_new(&l));
    struct echo_stats st = {0};
    br_server *srv;
    BR_CHECK_OK(br_start_server(l, "127.0.0.1", 0, handle_echo, &st, &srv));
    BR_CHECK(br_server_port(srv) > 0);
    BR_CHECK_OK(br_server_close(srv));
    BR_CHECK_OK(br_server_wait(srv, br_test_hang_guard()));
    BR_CHECK_OK(br_server_free(srv));
    BR_CHECK_OK(br_loop_free(l)); /* the acceptor, cancelled before it ran, is over */
    BR_CHECK_EQ(st.conns, 0);
    br_test_wait_fds(fds);
}

/* --- bad input ---------------------------------------------------------------------------- */

static void bad_input(void **state) {
    (void)state;
    char buf[4];
    size_t got;
    BR_CHECK_ERR(br_stream_read(NULL, buf, 4, BR_NOWAIT, &got), BR_EINVAL);
    BR_CHECK_ERR(br_stream_readline(NULL, buf, 4, BR_NOWAIT, &got), BR_EINVAL);
    BR_CHECK_ERR(br_stream_readexactly(NULL, buf, 4, BR_NOWAIT, &got), BR_EINVAL);
    BR_CHECK_ERR(br_stream_write(NULL, buf, 4), BR_EINVAL);
    BR_CHECK_ERR(br_stream_drain(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_stream_close(NULL), BR_EINVAL);
    BR_CHECK_EQ(br_stream_fd(NULL), -1);
    BR_CHECK(!br_stream_at_eof(NULL));
    br_stream_free(NULL);
    br_listener_free(NULL);
    br_stream *s;
    BR_CHECK_ERR(br_listener_accept(NULL, BR_NOWAIT, &s), BR_EINVAL);
    BR_CHECK_ERR(br_listen_tcp("127.0.0.1", 1 << 20, 0, NULL), BR_EINVAL);
    BR_CHECK_ERR(br_listen_unix(NULL, 0, NULL), BR_EINVAL);
    /* accept with nothing queued and BR_NOWAIT: would block. */
    br_listener *l;
    BR_CHECK_OK(br_listen_tcp(NULL, 0, 0, &l));
    BR_CHECK_ERR(br_listener_accept(l, BR_NOWAIT, &s), BR_ETIMEDOUT);
    br_listener_free(l);
}

/* After a short read the next read waits for readiness before it reads (stream.c's
 * notes): data already there is read under BR_NOWAIT and under a short deadline,
 * a wait that times out loses nothing, and the end of the stream is still seen. Run
 * on a thread (poll) and in a coroutine (the loop's epoll). */
static void short_reads_body(void) {
    int sv[2];
    BR_CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    br_stream *s;
    BR_CHECK_OK(br_stream_from_fd(sv[0], &s));
    char buf[16];
    size_t got = 0;
    BR_CHECK_EQ(send(sv[1], "ab", 2, 0), 2);
    BR_CHECK_OK(br_stream_read(s, buf, sizeof buf, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 2); /* short: the next read waits first */
    BR_CHECK(memcmp(buf, "ab", 2) == 0);
    BR_CHECK_EQ(send(sv[1], "cd", 2, 0), 2);
    BR_CHECK_OK(br_stream_read(s, buf, sizeof buf, BR_NOWAIT, &got));
    BR_CHECK_EQ(got, 2);
    BR_CHECK(memcmp(buf, "cd", 2) == 0);
    BR_CHECK_EQ(send(sv[1], "ef", 2, 0), 2);
    BR_CHECK_OK(br_stream_read(s, buf, sizeof buf, br_deadline_after(BR_MSEC), &got));
    BR_CHECK_EQ(got, 2);
    BR_CHECK(memcmp(buf, "ef", 2) == 0);
    BR_CHECK_ERR(br_stream_read(s, buf, sizeof buf, br_deadline_after(BR_MSEC), &got),
                 BR_ETIMEDOUT);
    BR_CHECK_EQ(send(sv[1], "gh", 2, 0), 2);
    BR_CHECK_OK(br_stream_read(s, buf, sizeof buf, br_test_hang_guard(), &got));
    BR_CHECK_EQ(got, 2);
    BR_CHECK(memcmp(buf, "gh", 2) == 0);
    BR_CHECK_EQ(close(sv[1]), 0);
    BR_CHECK_ERR(br_stream_read(s, buf, sizeof buf, br_test_hang_guard(), &got), BR_EOF);
    BR_CHECK_EQ(got, 0);
    BR_CHECK_OK(br_stream_close(s));
    br_stream_free(s);
}

static int short_reads_main(br_task *t) {
    (void)t;
    short_reads_body();
    return 0;
}

static void short_reads_wait_first(void **state) {
    (void)state;
    short_reads_body();
    int code = -1;
    BR_CHECK_OK(br_aio_run(short_reads_main, NULL, 0, &code));
    BR_CHECK_EQ(code, 0);
}

BR_TEST_MAIN(cmocka_unit_test(echo_lines), cmocka_unit_test(partial_reads),
             cmocka_unit_test(short_reads_wait_first),
             cmocka_unit_test(readexactly_eof), cmocka_unit_test(readuntil_limit),
             cmocka_unit_test(peer_reset), cmocka_unit_test(write_to_closed_peer),
             cmocka_unit_test(closed_stream), cmocka_unit_test(deadlines),
             cmocka_unit_test(readline_timeout_keeps_data), cmocka_unit_test(connect_errors),
             cmocka_unit_test(connect_by_name), cmocka_unit_test(addresses),
             cmocka_unit_test(unix_sockets), cmocka_unit_test(socketpair_and_pipe),
             cmocka_unit_test(subprocess_streams), cmocka_unit_test(server_many_clients),
             cmocka_unit_test(unix_server_coroutines), cmocka_unit_test(cancel_blocked_read),
             cmocka_unit_test(coroutine_deadlines),
             cmocka_unit_test(threads_against_loop_server),
             cmocka_unit_test(server_closed_before_it_runs),
             cmocka_unit_test(bad_input))
