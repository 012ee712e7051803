/* TCP echo (N5's event-loop side): one client, the same for every server, against an
 * echo server in its own process: braid's (this program's "serve" mode), or a peer's
 * (bench/peers: libuv's uv_echo, Go's go_echo; `make -C bench/peers`).
 *
 *   bench_echo [--impl NAME] [--server 'CMD'] [VARIANT...]
 *   bench_echo serve PORT            braid's echo server (what --server defaults to):
 *                                    one loop, a coroutine per connection
 *   bench_echo serve-threads PORT    the same streams with a thread per connection
 *
 * The server command gets a free port appended, and is stopped with SIGTERM after the
 * run. VARIANT (default: all):
 *   pingpong-1     one connection, a 1-byte message and its echo, 200,000 round trips
 *   pingpong-64    the same with 64-byte messages
 *   conns-64       64 connections, one 64-byte message in flight on each, 200,000
 *                  round trips in all (the client multiplexes them with poll)
 *   stream         one connection, 256 MiB sent by one client thread and read back by
 *                  another, MB/s
 * Figures: rps (round trips/s) and mb_per_s, and for the round-trip variants
 * rps_per_core: round trips per second of CPU time the server process used (all its
 * threads, from the scheduler's /proc/PID/task/TID/schedstat before and after): the
 * "per server core" figure. A one-connection ping-pong leaves the server idle most of
 * the time (its wall time is the kernel's loopback wake-ups, the same for every
 * server), and a runtime may spread its work over more threads than it is told to
 * (Go's syscalls and netpoller): the CPU it burns is what a core is spent on. braid's server is one loop on one thread
 * with a coroutine per connection (br_start_server, br_stream_read/write/drain);
 * libuv's is one loop; Go's is a goroutine per connection on GOMAXPROCS threads as set
 * by the caller (GOMAXPROCS=1 for a per-core figure). Every echo is checked byte for
 * byte before a figure is printed.
 *
 * The client is plain blocking POSIX sockets, so that it costs every server the same.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <braid/aio.h>
#include <braid/stream.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* --- braid's server ------------------------------------------------------------------ */

/* One coroutine per connection (br_start_server's handler). */
static int echo_handler(br_stream *s, void *arg) {
    (void)arg;
    char buf[65536];
    for (;;) {
        size_t got;
        int rc = br_stream_read(s, buf, sizeof buf, BR_FOREVER, &got);
        if (rc == 0)
            rc = br_stream_write(s, buf, got);
        if (rc == 0 && br_stream_pending(s) > 0)
            rc = br_stream_drain(s, BR_FOREVER);
        if (rc != 0)
            return rc == BR_EOF ? 0 : rc;
    }
}

static int serve_main(br_task *t) {
    int port = (int)br_task_arg_i64(t);
    br_server *srv;
    BENCH_CHECK_OK(br_start_server(NULL, "127.0.0.1", port, echo_handler, NULL, &srv));
    /* Until SIGTERM, with no timer pending: a far deadline would still be a timeout
     * on every epoll_wait, which the peers' servers don't pay. */
    static br_event never = BR_EVENT_INIT;
    return br_event_wait(&never, BR_FOREVER);
}

static int serve(int port) {
    int64_t p = port;
    int code;
    BENCH_CHECK_OK(br_aio_run(serve_main, &p, sizeof p, &code));
    return 0;
}

/* The same over threads: a thread per connection (for comparison). */
static void serve_conn(void *arg) {
    br_stream *s = arg;
    static __thread char buf[65536];
    for (;;) {
        size_t got;
        int rc = br_stream_read(s, buf, sizeof buf, BR_FOREVER, &got);
        if (rc != 0)
            break;
        if (br_stream_write(s, buf, got) != 0 || br_stream_drain(s, BR_FOREVER) != 0)
            break;
    }
    br_stream_free(s);
}

static int serve_threads(int port) {
    br_listener *l;
    BENCH_CHECK_OK(br_listen_tcp("127.0.0.1", port, 0, &l));
    for (;;) {
        br_stream *s;
        int rc = br_listener_accept(l, BR_FOREVER, &s);
        if (rc != 0)
            continue;
        br_thread *t;
        br_thread_opts o = {.daemon = true};
        if (br_thread_start(&t, serve_conn, s, &o) != 0) {
            br_stream_free(s);
            continue;
        }
        br_thread_free(t);
    }
}

/* --- the client ------------------------------------------------------------------------ */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    BENCH_CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    BENCH_CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int dial(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int64_t until = bench_now() + 10 * BR_SEC;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        BENCH_CHECK(fd >= 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        close(fd);
        if (bench_now() > until) {
            bench_note("bench_echo: no server on port %d", port);
            exit(1);
        }
        usleep(10000);
    }
}

static void send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        BENCH_CHECK(w > 0);
        c += w;
        n -= (size_t)w;
    }
}

static void recv_all(int fd, void *p, size_t n) {
    char *c = p;
    while (n > 0) {
        ssize_t r = recv(fd, c, n, 0);
        BENCH_CHECK(r > 0);
        c += r;
        n -= (size_t)r;
    }
}

/* The server's CPU time so far, in seconds: the scheduler's run time (ns) of each of its
 * threads, summed over /proc/PID/task/TID/schedstat. Exact, where utime and stime are
 * sampled at the clock tick. A thread that has exited no longer counts: the servers
 * here keep theirs. */
static pid_t g_server;

static double server_cpu(void) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)g_server);
    DIR *d = opendir(path);
    BENCH_CHECK(d != NULL);
    unsigned long long ns = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[384];
        snprintf(p, sizeof p, "%s/%s/schedstat", path, e->d_name);
        FILE *f = fopen(p, "re");
        if (f == NULL)
            continue; /* the thread exited since readdir */
        unsigned long long run = 0;
        if (fscanf(f, "%llu", &run) == 1)
            ns += run;
        fclose(f);
    }
    closedir(d);
    return (double)ns / 1e9;
}

/* Both figures of a round-trip variant: rps, and rps per core of server CPU. */
static void emit_rt(const char *variant, const char *impl, long n, double s, double cpu) {
    bench_emit("N5", variant, impl, "rps", n / s, "rps");
    BENCH_CHECK(cpu > 0);
    bench_note("%s %s: the server used %.3f s of CPU (%.2f cores), %.2f us per round trip",
               impl, variant, cpu, cpu / s, cpu / n * 1e6);
    bench_emit("N5", variant, impl, "rps_per_core", n / cpu, "rps/core");
}

static void pingpong(int port, size_t size, long n, const char *impl, const char *variant) {
    int fd = dial(port);
    double c0 = server_cpu();
    char out[64], in[64];
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < size; k++)
            out[k] = (char)(i + (long)k);
        send_all(fd, out, size);
        recv_all(fd, in, size);
        BENCH_CHECK(memcmp(in, out, size) == 0);
    }
    double s = bench_secs(t0, bench_now());
    double cpu = server_cpu() - c0;
    close(fd);
    bench_note("%s %s: %ld round trips in %.3f s: %.0f rps, %.2f us each", impl, variant,
               n, s, n / s, s / n * 1e6);
    emit_rt(variant, impl, n, s, cpu);
}

static void conns(int port, int nconn, long total, const char *impl, const char *variant) {
    struct pollfd *p = calloc((size_t)nconn, sizeof *p);
    long *sent = calloc((size_t)nconn, sizeof *sent);
    BENCH_CHECK(p != NULL && sent != NULL);
    for (int i = 0; i < nconn; i++) {
        p[i].fd = dial(port);
        p[i].events = POLLIN;
    }
    long per = total / nconn, done = 0;
    double c0 = server_cpu();
    int64_t t0 = bench_now();
    char msg[64], in[64];
    for (int i = 0; i < nconn; i++) {
        memset(msg, (char)(i + sent[i]), sizeof msg);
        send_all(p[i].fd, msg, sizeof msg);
        sent[i]++;
    }
    while (done < per * nconn) {
        BENCH_CHECK(poll(p, (nfds_t)nconn, 10000) > 0);
        for (int i = 0; i < nconn; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            recv_all(p[i].fd, in, sizeof in);
            memset(msg, (char)(i + sent[i] - 1), sizeof msg);
            BENCH_CHECK(memcmp(in, msg, sizeof msg) == 0);
            done++;
            if (sent[i] < per) {
                memset(msg, (char)(i + sent[i]), sizeof msg);
                send_all(p[i].fd, msg, sizeof msg);
                sent[i]++;
            }
        }
    }
    double s = bench_secs(t0, bench_now());
    double cpu = server_cpu() - c0;
    for (int i = 0; i < nconn; i++)
        close(p[i].fd);
    free(p);
    free(sent);
    bench_note("%s %s: %ld round trips on %d connections in %.3f s: %.0f rps", impl,
               variant, done, nconn, s, done / s);
    emit_rt(variant, impl, done, s, cpu);
}

struct streamer {
    int fd;
    size_t total;
};

static unsigned char pat(size_t i) {
    return (unsigned char)(i * 7 + (i >> 16));
}

static void stream_writer(void *arg) {
    struct streamer *w = arg;
    static unsigned char chunk[65536];
    for (size_t off = 0; off < w->total; off += sizeof chunk) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = pat(off + i);
        send_all(w->fd, chunk, sizeof chunk);
    }
}

static void stream(int port, const char *impl) {
    struct streamer w = {.fd = dial(port), .total = (size_t)256 << 20};
    static unsigned char buf[65536];
    int64_t t0 = bench_now();
    br_thread *t;
    BENCH_CHECK_OK(br_thread_start(&t, stream_writer, &w, NULL));
    size_t off = 0;
    while (off < w.total) {
        ssize_t r = recv(w.fd, buf, sizeof buf, 0);
        BENCH_CHECK(r > 0);
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != pat(off + (size_t)i)) {
                bench_note("stream: byte %zu differs", off + (size_t)i);
                exit(1);
            }
        off += (size_t)r;
    }
    double s = bench_secs(t0, bench_now());
    BENCH_CHECK_OK(br_thread_join(t, BR_FOREVER));
    br_thread_free(t);
    close(w.fd);
    double mb = (double)w.total / (1 << 20) / s;
    bench_note("%s stream: %zu MiB echoed in %.3f s: %.0f MB/s", impl, w.total >> 20, s, mb);
    bench_emit("N5", "stream", impl, "mb_per_s", mb, "MB/s");
}

static pid_t start_server(const char *cmd, int port) {
    char line[1024];
    snprintf(line, sizeof line, "exec %s %d", cmd, port);
    char *argv[] = {"sh", "-c", line, NULL};
    pid_t pid;
    BENCH_CHECK(posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) == 0);
    return pid;
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    if (argc == 3 && strcmp(argv[1], "serve") == 0)
        return serve(atoi(argv[2]));
    if (argc == 3 && strcmp(argv[1], "serve-threads") == 0)
        return serve_threads(atoi(argv[2]));
    const char *impl = "braid", *cmd = NULL;
    char self[900];
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--impl") == 0 && i + 1 < argc)
            impl = argv[++i];
        else if (strcmp(argv[i], "--server") == 0 && i + 1 < argc)
            cmd = argv[++i];
        else
            break;
    }
    if (cmd == NULL) {
        snprintf(self, sizeof self, "%s serve", argv[0]);
        cmd = self;
    }
    int port = free_port();
    pid_t pid = start_server(cmd, port);
    g_server = pid;
    const char *all[] = {"pingpong-1", "pingpong-64", "conns-64", "stream"};
    const char **vs = i < argc ? (const char **)argv + i : all;
    int nv = i < argc ? argc - i : 4;
    for (int k = 0; k < nv; k++) {
        if (strcmp(vs[k], "pingpong-1") == 0)
            pingpong(port, 1, 200000, impl, vs[k]);
        else if (strcmp(vs[k], "pingpong-64") == 0)
            pingpong(port, 64, 200000, impl, vs[k]);
        else if (strcmp(vs[k], "conns-64") == 0)
            conns(port, 64, 200000, impl, vs[k]);
        else if (strcmp(vs[k], "stream") == 0)
            stream(port, impl);
        else {
            bench_note("bench_echo: unknown variant %s", vs[k]);
            kill(pid, SIGTERM);
            return 2;
        }
    }
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    return 0;
}
