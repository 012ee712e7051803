/* The Pipe (braid/mp_queue.h): whole messages of every size both ways, one-way pipes
 * refusing the wrong direction, poll with deadlines, EOF when the peer closes or is
 * killed, BR_EPIPE (never SIGPIPE) when sending to a closed or dead peer, descriptors
 * passed on for a spawned child, and no leaked descriptors or children.
 *
 * braid-test-timeout: 120
 */
#include "harness.h"

#include <braid/mp_queue.h>

#include "process/mp_ring.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char pattern(size_t size, size_t i) { return (unsigned char)(i * 131u + size + (i >> 12)); }

static void fill(unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(n, i);
}

static bool check_fill(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != pattern(n, i))
            return false;
    return true;
}

/* Waits until process pid sleeps in a recv on ring r. */
static void wait_receiver_sleeps(br__mpr *r, pid_t pid) {
    int64_t guard = br_test_hang_guard();
    br__mpr_debug d;
    for (;;) {
        br__mpr_debug_get(r, &d);
        if (d.glock == (uint32_t)pid && d.data_wait)
            return;
        if (br_now() > guard)
            fail_msg("the receiver never slept");
        usleep(200);
    }
}

enum { RING = 256 << 10 };

/* Every size, both ways: the child echoes each message back. */
static void duplex_echo_sizes(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    const size_t sizes[] = {0, 1, 8, RING / 2 - 9, RING / 2 - 8, RING / 2 - 7, RING - 1, RING,
                            RING + 1, 1 << 20, 16 << 20};
    const size_t n = sizeof sizes / sizeof sizes[0];
    br_pipe *a, *b;
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(a);
        for (;;) {
            void *m;
            size_t len;
            int rc = br_pipe_recv(b, &m, &len, BR_FOREVER);
            if (rc == BR_EOF)
                break;
            if (rc != 0)
                _exit(10);
            if (br_pipe_send(b, m, len, BR_FOREVER) != 0)
                _exit(11);
            free(m);
        }
        br_pipe_close(b);
        _exit(0);
    }
    BR_CHECK_OK(br_pipe_close(b));
    unsigned char *buf = malloc(16 << 20);
    BR_CHECK(buf);
    for (size_t i = 0; i < n; i++) {
        fill(buf, sizes[i]);
        BR_CHECK_OK(br_pipe_send(a, buf, sizes[i], br_test_hang_guard()));
        void *m;
        size_t len;
        BR_CHECK_OK(br_pipe_recv(a, &m, &len, br_test_hang_guard()));
        BR_CHECK_EQ(len, sizes[i]);
        BR_CHECK(check_fill(m, len));
        BR_CHECK_EQ(br_test_checksum(m, len), br_test_checksum(buf, sizes[i]));
        free(m);
    }
    free(buf);
    BR_CHECK_OK(br_pipe_close(a)); /* the child's recv sees EOF and it exits */
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* Many small messages in order, both directions at once (ping-pong with a counter). */
static void ping_pong_in_order(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    long n = br_test_scaled(20000, 500);
    br_pipe *a, *b;
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(a);
        for (long i = 0; i < n; i++) {
            long v;
            size_t len;
            if (br_pipe_recv_into(b, &v, sizeof v, &len, BR_FOREVER) != 0 || v != i)
                _exit(20);
            v = -i;
            if (br_pipe_send(b, &v, sizeof v, BR_FOREVER) != 0)
                _exit(21);
        }
        br_pipe_close(b);
        _exit(0);
    }
    BR_CHECK_OK(br_pipe_close(b));
    for (long i = 0; i < n; i++) {
        long v = i;
        size_t len;
        BR_CHECK_OK(br_pipe_send(a, &v, sizeof v, br_test_hang_guard()));
        BR_CHECK_OK(br_pipe_recv_into(a, &v, sizeof v, &len, br_test_hang_guard()));
        BR_CHECK_EQ(v, -i);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    long v;
    size_t len;
    BR_CHECK_ERR(br_pipe_recv_into(a, &v, sizeof v, &len, br_test_hang_guard()), BR_EOF);
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void one_way_refuses_wrong_direction(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_pipe *r, *w;
    BR_CHECK_OK(br_pipe_new(&r, &w, false));
    void *m;
    size_t len;
    BR_CHECK_ERR(br_pipe_send(r, "x", 1, BR_NOWAIT), BR_EPERM);
    BR_CHECK_ERR(br_pipe_recv(w, &m, &len, BR_NOWAIT), BR_EPERM);
    BR_CHECK_ERR(br_pipe_recv_into(w, NULL, 0, &len, BR_NOWAIT), BR_EPERM);
    BR_CHECK_ERR(br_pipe_poll(w, BR_NOWAIT), BR_EPERM);
    BR_CHECK_EQ(br_pipe_fileno(w), -1);
    BR_CHECK(br_pipe_fileno(r) >= 0);
    BR_CHECK_OK(br_pipe_send(w, "x", 1, BR_NOWAIT));
    BR_CHECK_OK(br_pipe_recv(r, &m, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 1);
    BR_CHECK_EQ(*(char *)m, 'x');
    free(m);
    BR_CHECK_OK(br_pipe_close(r));
    BR_CHECK_OK(br_pipe_close(w));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void poll_and_deadlines(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_pipe *a, *b;
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    BR_CHECK_ERR(br_pipe_poll(a, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_pipe_poll(a, br_deadline_after(5 * BR_MSEC)), BR_ETIMEDOUT);
    char c;
    size_t len;
    BR_CHECK_ERR(br_pipe_recv_into(a, &c, 1, &len, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_ERR(br_pipe_recv_into(a, &c, 1, &len, br_deadline_after(5 * BR_MSEC)), BR_ETIMEDOUT);
    /* a sender in another process wakes the poller */
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(a);
        wait_receiver_sleeps(br__pipe_tx_ring(b), getppid());
        _exit(br_pipe_send(b, "z", 1, BR_FOREVER) == 0 ? 0 : 30);
    }
    BR_CHECK_OK(br_pipe_poll(a, br_test_hang_guard()));
    BR_CHECK_OK(br_pipe_poll(a, BR_NOWAIT)); /* still there: poll doesn't take it */
    BR_CHECK_OK(br_pipe_recv_into(a, &c, 1, &len, BR_NOWAIT));
    BR_CHECK_EQ(c, 'z');
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    /* the child's copy of b is gone with it; ours still holds b open */
    BR_CHECK_ERR(br_pipe_poll(a, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_pipe_close(b));
    BR_CHECK_OK(br_pipe_poll(a, BR_NOWAIT)); /* EOF: recv won't block */
    BR_CHECK_ERR(br_pipe_recv_into(a, &c, 1, &len, BR_NOWAIT), BR_EOF);
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* The peer sends, closes and exits: every message, then BR_EOF, for good. */
static void eof_after_close(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_pipe *r, *w;
    BR_CHECK_OK(br_pipe_new(&r, &w, false));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(r);
        for (int i = 0; i < 3; i++)
            if (br_pipe_send(w, &i, sizeof i, BR_FOREVER) != 0)
                _exit(40);
        br_pipe_close(w);
        pause(); /* still alive: the EOF comes from the close, not the exit */
        _exit(0);
    }
    BR_CHECK_OK(br_pipe_close(w));
    for (int i = 0; i < 3; i++) {
        int v;
        size_t len;
        BR_CHECK_OK(br_pipe_recv_into(r, &v, sizeof v, &len, br_test_hang_guard()));
        BR_CHECK_EQ(v, i);
    }
    int v;
    size_t len;
    BR_CHECK_ERR(br_pipe_recv_into(r, &v, sizeof v, &len, br_test_hang_guard()), BR_EOF);
    BR_CHECK_ERR(br_pipe_recv_into(r, &v, sizeof v, &len, BR_NOWAIT), BR_EOF);
    BR_CHECK_EQ(kill(pid, SIGKILL), 0);
    br_test_wait_child(pid);
    BR_CHECK_OK(br_pipe_close(r));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* The peer is killed, without closing, while this process sleeps in recv: the messages
 * it sent, then BR_EOF. */
static void eof_on_sigkill(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_pipe *r, *w;
    BR_CHECK_OK(br_pipe_new(&r, &w, false));
    pid_t sender = fork();
    BR_CHECK(sender >= 0);
    if (sender == 0) {
        br_pipe_close(r);
        for (int i = 0; i < 2; i++)
            if (br_pipe_send(w, &i, sizeof i, BR_FOREVER) != 0)
                _exit(50);
        pause();
        _exit(0);
    }
    BR_CHECK_OK(br_pipe_close(w));
    for (int i = 0; i < 2; i++) {
        int v;
        size_t len;
        BR_CHECK_OK(br_pipe_recv_into(r, &v, sizeof v, &len, br_test_hang_guard()));
        BR_CHECK_EQ(v, i);
    }
    /* a killer process waits until we sleep in recv, then kills the sender */
    pid_t self = getpid();
    pid_t killer = fork();
    BR_CHECK(killer >= 0);
    if (killer == 0) {
        wait_receiver_sleeps(br__pipe_rx_ring(r), self);
        _exit(kill(sender, SIGKILL) == 0 ? 0 : 51);
    }
    int v;
    size_t len;
    BR_CHECK_ERR(br_pipe_recv_into(r, &v, sizeof v, &len, br_test_hang_guard()), BR_EOF);
    BR_CHECK_CHILD_OK(br_test_wait_child(killer));
    int st = br_test_wait_child(sender);
    BR_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    BR_CHECK_ERR(br_pipe_recv_into(r, &v, sizeof v, &len, BR_NOWAIT), BR_EOF);
    BR_CHECK_OK(br_pipe_close(r));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* Sending to a peer that closed, or died asleep in recv, or died busy: BR_EPIPE, and
 * SIGPIPE (left at its default, which would kill us) is never raised. */
static void epipe_without_sigpipe(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    int fds = br_test_count_fds();

    /* closed */
    br_pipe *r, *w;
    BR_CHECK_OK(br_pipe_new(&r, &w, false));
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(w);
        br_pipe_close(r);
        _exit(0);
    }
    BR_CHECK_OK(br_pipe_close(r));
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_ERR(br_pipe_send(w, "x", 1, BR_NOWAIT), BR_EPIPE);
    BR_CHECK_ERR(br_pipe_send(w, "x", 1, br_test_hang_guard()), BR_EPIPE);
    BR_CHECK_OK(br_pipe_close(w));

    /* killed while asleep in recv: the doorbell finds it gone */
    BR_CHECK_OK(br_pipe_new(&r, &w, false));
    pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(w);
        char c;
        size_t len;
        br_pipe_recv_into(r, &c, 1, &len, BR_FOREVER);
        _exit(52);
    }
    BR_CHECK_OK(br_pipe_close(r));
    wait_receiver_sleeps(br__pipe_tx_ring(w), pid); /* the ring it receives on */
    BR_CHECK_EQ(kill(pid, SIGKILL), 0);
    int st = br_test_wait_child(pid);
    BR_CHECK(WIFSIGNALED(st));
    BR_CHECK_ERR(br_pipe_send(w, "x", 1, br_test_hang_guard()), BR_EPIPE);
    BR_CHECK_OK(br_pipe_close(w));

    /* killed while busy: sends fill the ring, then BR_EPIPE */
    BR_CHECK_OK(br_pipe_new(&r, &w, false));
    pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        br_pipe_close(w);
        pause();
        _exit(53);
    }
    BR_CHECK_OK(br_pipe_close(r));
    BR_CHECK_EQ(kill(pid, SIGKILL), 0);
    st = br_test_wait_child(pid);
    BR_CHECK(WIFSIGNALED(st));
    int rc = 0;
    long sent = 0;
    while ((rc = br_pipe_send(w, &sent, sizeof sent, br_test_hang_guard())) == 0)
        BR_CHECK(++sent <= RING / 16);
    BR_CHECK_ERR(rc, BR_EPIPE);
    BR_CHECK_OK(br_pipe_close(w));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void recv_into_too_small(void **state) {
    (void)state;
    br_pipe *a, *b;
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    BR_CHECK_OK(br_pipe_send(b, "hello", 5, BR_NOWAIT));
    char buf[8];
    size_t len = 0;
    BR_CHECK_ERR(br_pipe_recv_into(a, buf, 4, &len, BR_NOWAIT), BR_ERANGE);
    BR_CHECK_EQ(len, 5);
    BR_CHECK_OK(br_pipe_recv_into(a, buf, sizeof buf, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 5);
    BR_CHECK_EQ(memcmp(buf, "hello", 5), 0);
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_OK(br_pipe_close(b));
}

/* What a spawned child does: rebuild an end from the exported descriptors. The end
 * stays open while the imported handle holds it. */
static void export_import(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_pipe *a, *b, *b2;
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    br_pipe_fds f;
    BR_CHECK_OK(br_pipe_export(b, &f));
    BR_CHECK(f.shm >= 0 && f.rx >= 0 && f.tx >= 0 && f.side == 1);
    BR_CHECK_OK(br_pipe_import(&b2, &f));
    BR_CHECK_OK(br_pipe_close(b));
    BR_CHECK_OK(br_pipe_send(b2, "via b2", 6, BR_NOWAIT));
    char buf[8];
    size_t len;
    BR_CHECK_OK(br_pipe_recv_into(a, buf, sizeof buf, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 6);
    BR_CHECK_OK(br_pipe_send(a, "to b2", 5, BR_NOWAIT));
    BR_CHECK_OK(br_pipe_recv_into(b2, buf, sizeof buf, &len, BR_NOWAIT));
    BR_CHECK_EQ(len, 5);
    BR_CHECK_ERR(br_pipe_recv_into(a, buf, sizeof buf, &len, BR_NOWAIT), BR_ETIMEDOUT);
    BR_CHECK_OK(br_pipe_close(b2));
    BR_CHECK_ERR(br_pipe_recv_into(a, buf, sizeof buf, &len, BR_NOWAIT), BR_EOF);
    BR_CHECK_ERR(br_pipe_send(a, "x", 1, BR_NOWAIT), BR_EPIPE);
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void bad_input(void **state) {
    (void)state;
    br_pipe *a, *b;
    BR_CHECK_ERR(br_pipe_new(NULL, &b, true), BR_EINVAL);
    BR_CHECK_ERR(br_pipe_send(NULL, "x", 1, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_ERR(br_pipe_close(NULL), BR_EINVAL);
    BR_CHECK_ERR(br_pipe_poll(NULL, BR_NOWAIT), BR_EINVAL);
    BR_CHECK_EQ(br_pipe_fileno(NULL), -1);
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    BR_CHECK_ERR(br_pipe_send(a, NULL, 3, BR_NOWAIT), BR_EINVAL);
    size_t len;
    BR_CHECK_ERR(br_pipe_recv(a, NULL, &len, BR_NOWAIT), BR_EINVAL);
    br_pipe_fds f = {.shm = -1, .rx = -1, .tx = -1, .side = 0};
    br_pipe *c;
    BR_CHECK_ERR(br_pipe_import(&c, &f), BR_EINVAL);
    BR_CHECK_OK(br_pipe_export(a, &f));
    f.side = 2;
    BR_CHECK_ERR(br_pipe_import(&c, &f), BR_EINVAL);
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_OK(br_pipe_close(b));
}

/* --- a child started with exec ----------------------------------------------------
 *
 * What the spawn start method will do: the parent passes a queue's and a pipe end's
 * descriptors to a child that runs this same program afresh (exec), which rebuilds its
 * handles from them. The child's side runs in a constructor, before cmocka, when
 * BRAID_TEST_MPQ_FDS is set: "queue_fd shm rx tx side". */

static void exec_child_side(void) __attribute__((constructor));
static void exec_child_side(void) {
    const char *env = getenv("BRAID_TEST_MPQ_FDS");
    if (!env)
        return;
    int qfd;
    br_pipe_fds f;
    if (sscanf(env, "%d %d %d %d %d", &qfd, &f.shm, &f.rx, &f.tx, &f.side) != 5)
        _exit(70);
    br_mp_queue *q;
    br_pipe *p;
    if (br_mp_queue_attach(&q, qfd) != 0 || br_pipe_import(&p, &f) != 0)
        _exit(71);
    close(qfd);
    close(f.shm);
    close(f.rx);
    close(f.tx);
    void *m;
    size_t len;
    if (br_mp_queue_get(q, &m, &len, BR_FOREVER) != 0)
        _exit(72);
    /* echo it back reversed through the pipe, then close: the parent sees EOF */
    for (size_t i = 0; i < len / 2; i++) {
        char c = ((char *)m)[i];
        ((char *)m)[i] = ((char *)m)[len - 1 - i];
        ((char *)m)[len - 1 - i] = c;
    }
    if (br_pipe_send(p, m, len, BR_FOREVER) != 0)
        _exit(73);
    free(m);
    br_pipe_close(p);
    br_mp_queue_free(q);
    _exit(0);
}

/* A descriptor the child inherits across exec (not close-on-exec). */
static int inheritable(int fd) {
    int d = dup(fd); /* dup clears FD_CLOEXEC */
    BR_CHECK(d >= 0);
    return d;
}

static void exec_child_by_descriptor(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_mp_queue *q;
    BR_CHECK_OK(br_mp_queue_new(&q, NULL));
    br_pipe *a, *b;
    BR_CHECK_OK(br_pipe_new(&a, &b, true));
    br_pipe_fds f;
    BR_CHECK_OK(br_pipe_export(b, &f));
    int pass[5] = {inheritable(br_mp_queue_fd(q)), inheritable(f.shm), inheritable(f.rx),
                   inheritable(f.tx), f.side};
    char env[128];
    snprintf(env, sizeof env, "%d %d %d %d %d", pass[0], pass[1], pass[2], pass[3], pass[4]);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        setenv("BRAID_TEST_MPQ_FDS", env, 1);
        char *argv[] = {(char *)"test_process_pipe", NULL};
        execv("/proc/self/exe", argv);
        _exit(74);
    }
    for (int i = 0; i < 4; i++)
        close(pass[i]);
    /* b is counted three times now: ours, the fork's (which the exec'd image never
     * gives back) and the child's import; so the EOF below comes from the sockets'
     * hang-up once the child is gone and we close b. */
    BR_CHECK_OK(br_mp_queue_put(q, "spawned", 7, br_test_hang_guard()));
    char buf[16];
    size_t len;
    BR_CHECK_OK(br_pipe_recv_into(a, buf, sizeof buf, &len, br_test_hang_guard()));
    BR_CHECK_EQ(len, 7);
    BR_CHECK_EQ(memcmp(buf, "denwaps", 7), 0);
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_OK(br_pipe_close(b));
    BR_CHECK_ERR(br_pipe_recv_into(a, buf, sizeof buf, &len, br_test_hang_guard()), BR_EOF);
    BR_CHECK_OK(br_pipe_close(a));
    BR_CHECK_OK(br_mp_queue_free(q));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

/* The tutorials' shape: a producer process and a consumer process joined by a pipe
 * (receive_pipe, send_pipe = Pipe()); the parent only starts and joins them. */
static void tutorial_producer_consumer(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br_pipe *receive, *send;
    BR_CHECK_OK(br_pipe_new(&receive, &send, false));
    br_pipe *res_r, *res_w;
    BR_CHECK_OK(br_pipe_new(&res_r, &res_w, false));
    const int pages = 200;
    pid_t producer = fork();
    BR_CHECK(producer >= 0);
    if (producer == 0) {
        br_pipe_close(receive);
        br_pipe_close(res_r);
        br_pipe_close(res_w);
        char url[64];
        for (int i = 1; i <= pages; i++) {
            int n = snprintf(url, sizeof url, "https://example.org/page/%d", i);
            if (br_pipe_send(send, url, (size_t)n, BR_FOREVER) != 0)
                _exit(60);
        }
        br_pipe_close(send); /* the consumer sees EOF */
        _exit(0);
    }
    pid_t consumer = fork();
    BR_CHECK(consumer >= 0);
    if (consumer == 0) {
        br_pipe_close(send);
        br_pipe_close(res_r);
        long sum = 0, count = 0;
        for (;;) {
            void *url;
            size_t len;
            int rc = br_pipe_recv(receive, &url, &len, BR_FOREVER);
            if (rc == BR_EOF)
                break;
            if (rc != 0)
                _exit(61);
            char s[64];
            memcpy(s, url, len);
            s[len] = '\0';
            free(url);
            sum += atol(strrchr(s, '/') + 1);
            count++;
        }
        long r[2] = {count, sum};
        _exit(br_pipe_send(res_w, r, sizeof r, BR_FOREVER) == 0 ? 0 : 62);
    }
    BR_CHECK_OK(br_pipe_close(receive));
    BR_CHECK_OK(br_pipe_close(send));
    BR_CHECK_OK(br_pipe_close(res_w));
    long r[2];
    size_t len;
    BR_CHECK_OK(br_pipe_recv_into(res_r, r, sizeof r, &len, br_test_hang_guard()));
    BR_CHECK_EQ(r[0], pages);
    BR_CHECK_EQ(r[1], pages * (pages + 1) / 2);
    BR_CHECK_CHILD_OK(br_test_wait_child(producer));
    BR_CHECK_CHILD_OK(br_test_wait_child(consumer));
    BR_CHECK_ERR(br_pipe_recv_into(res_r, r, sizeof r, &len, br_test_hang_guard()), BR_EOF);
    BR_CHECK_OK(br_pipe_close(res_r));
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

BR_TEST_MAIN(cmocka_unit_test(duplex_echo_sizes), cmocka_unit_test(ping_pong_in_order),
             cmocka_unit_test(one_way_refuses_wrong_direction),
             cmocka_unit_test(poll_and_deadlines), cmocka_unit_test(eof_after_close),
             cmocka_unit_test(eof_on_sigkill), cmocka_unit_test(epipe_without_sigpipe),
             cmocka_unit_test(recv_into_too_small), cmocka_unit_test(export_import),
             cmocka_unit_test(bad_input), cmocka_unit_test(exec_child_by_descriptor),
             cmocka_unit_test(tutorial_producer_consumer))
