/* The Pipe (braid/mp_queue.h): two shared-memory rings (process/mp_ring.c), one per
 * direction, and one socketpair per direction as the doorbell.
 *
 * Design notes.
 *  - Layout: a pipe_hdr, then the ring "to a" (b sends, a receives) at RING_OFF, then,
 *    duplex only, the ring "to b" after it. Side 0 is the end made as *a, side 1 as *b.
 *  - Doorbells: for each direction a socketpair; the sender holds one half, the
 *    receiver the other. Each end sleeps only on its own half (the receiver for data,
 *    the sender for room) and rings the peer by writing one byte to it; so the two
 *    kinds of sleep never share a socket. The kernel closes a dead process's halves,
 *    which is how a survivor learns of the death (POLLHUP, or EPIPE on the bell).
 *  - Holders: holders[side] counts the processes holding the end (1 at creation, +1
 *    per fork, counted by the parent in the fork hook's prepare step, and per br_pipe_import; -1 per br_pipe_close).
 *    When it reaches 0 the end's rings get TX_CLOSED (the peer's recv ends in BR_EOF
 *    after the last message) and RX_CLOSED (the peer's send answers BR_EPIPE), without
 *    a syscall on the peer's side. A process that dies without closing never
 *    decrements: the sockets' hang-up covers it.
 *  - Registry: every open handle of this process is on a list (under g_lock) so that
 *    the fork hook can count the child as a holder of each.
 */
#include "braid/mp_queue.h"

#include "process/mp_ring.h"
#include "process/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define PIPE_MAGIC 0x45504950u /* "PIPE" */
#define RING_OFF 4096

typedef struct pipe_hdr {
    uint32_t magic;
    uint32_t duplex;
    uint64_t cap;
    _Atomic uint32_t holders[2];
} pipe_hdr;

struct br_pipe {
    br__shm shm;
    int side;
    br__mpr_side rx, tx; /* .r NULL: this end doesn't receive / send */
    struct br_pipe *next, *prev;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static br_pipe g_list = {.next = &g_list, .prev = &g_list};

/* The child is counted before the fork, by the parent: counted in the child, a parent
 * closing its copy right after fork() could see the count reach 0 first. A fork that
 * fails leaves the ends counted once too often: their close flags never come, and
 * the peer learns of the end's closing from the sockets' hang-up instead. */
static void fork_prepare(void) {
    pthread_mutex_lock(&g_lock);
    for (br_pipe *p = g_list.next; p != &g_list; p = p->next)
        atomic_fetch_add(&((pipe_hdr *)p->shm.base)->holders[p->side], 1);
}
static void fork_parent(void) { pthread_mutex_unlock(&g_lock); }
static void fork_child(void) { pthread_mutex_unlock(&g_lock); }
static br__hooks g_hooks = {.order = BR__ORDER_PROCESS, .name = "process/pipe",
                            .prepare = fork_prepare, .parent = fork_parent,
                            .child = fork_child};

static void enlist(br_pipe *p) {
    pthread_mutex_lock(&g_lock);
    p->next = &g_list;
    p->prev = g_list.prev;
    g_list.prev->next = p;
    g_list.prev = p;
    pthread_mutex_unlock(&g_lock);
}

static void delist(br_pipe *p) {
    pthread_mutex_lock(&g_lock);
    p->prev->next = p->next;
    p->next->prev = p->prev;
    pthread_mutex_unlock(&g_lock);
}

static br__mpr *ring_to(const br__shm *shm, int side) {
    const pipe_hdr *h = shm->base;
    return (br__mpr *)((char *)shm->base + RING_OFF + (side ? br__mpr_bytes((size_t)h->cap) : 0));
}

static void close_fd(int fd) {
    if (fd >= 0)
        close(fd);
}

/* An end of side `side` over shm (which it takes), with its doorbells rx and tx (taken
 * too; -1 where the end doesn't go that way). */
static br_pipe *make_end(const br__shm *shm, int side, int rx, int tx) {
    br_pipe *p = br__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    const pipe_hdr *h = shm->base;
    p->shm = *shm;
    p->side = side;
    p->rx.fd = rx;
    p->tx.fd = tx;
    /* side 0 (a) receives on "to a", sends on "to b"; side 1 the other way round. */
    if (rx >= 0)
        p->rx.r = ring_to(shm, side);
    if (tx >= 0 && (h->duplex || side == 1))
        p->tx.r = ring_to(shm, !side);
    return p;
}

int br_pipe_new(br_pipe **a, br_pipe **b, bool duplex) {
    if (!a || !b)
        return BR__MISUSE(BR_EINVAL, "br_pipe_new: a or b is NULL");
    *a = *b = NULL;
    br__hooks_register(&g_hooks);
    size_t cap = BR__MPR_DEFAULT_CAP;
    size_t bytes = RING_OFF + br__mpr_bytes(cap) * (duplex ? 2 : 1);
    int to_a[2] = {-1, -1}, to_b[2] = {-1, -1}; /* [0]: a's half, [1]: b's half */
    br__shm s1, s2;
    int rc = br__shm_new(&s1, bytes, "braid-pipe");
    if (rc)
        return rc;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, to_a) != 0 ||
        (duplex && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, to_b) != 0)) {
        rc = -errno;
        goto fail;
    }
    /* The second end needs its own mapping handle (each end is closed on its own). */
    rc = br__shm_attach(&s2, s1.fd, bytes);
    if (rc)
        goto fail;
    pipe_hdr *h = s1.base;
    h->magic = PIPE_MAGIC;
    h->duplex = duplex;
    h->cap = cap;
    atomic_store(&h->holders[0], 1);
    atomic_store(&h->holders[1], 1);
    br__mpr_init(ring_to(&s1, 0), cap, 0, 0);
    if (duplex)
        br__mpr_init(ring_to(&s1, 1), cap, 0, 0);
    /* a: receives "to a" on to_a[0]; sends "to b" (duplex) with to_b[0].
     * b: sends "to a" with to_a[1]; receives "to b" (duplex) on to_b[1]. */
    *a = make_end(&s1, 0, to_a[0], duplex ? to_b[0] : -1);
    *b = make_end(&s2, 1, duplex ? to_b[1] : -1, to_a[1]);
    if (!*a || !*b) {
        br__free(*a);
        br__free(*b);
        *a = *b = NULL;
        br__shm_close(&s2);
        rc = BR_ENOMEM;
        goto fail;
    }
    enlist(*a);
    enlist(*b);
    return 0;
fail:
    br__shm_close(&s1);
    close_fd(to_a[0]);
    close_fd(to_a[1]);
    close_fd(to_b[0]);
    close_fd(to_b[1]);
    return rc;
}

int br_pipe_close(br_pipe *p) {
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_pipe_close: p is NULL");
    delist(p);
    pipe_hdr *h = p->shm.base;
    if (atomic_fetch_sub(&h->holders[p->side], 1) == 1) {
        /* The last holder: the peer sees EOF and EPIPE without a syscall. */
        if (p->tx.r)
            br__mpr_set_state(p->tx.r, BR__MPR_TX_CLOSED, p->tx.fd);
        if (p->rx.r)
            br__mpr_set_state(p->rx.r, BR__MPR_RX_CLOSED, p->rx.fd);
    }
    close_fd(p->rx.fd);
    close_fd(p->tx.fd);
    br__shm_close(&p->shm);
    br__free_poisoned(p, sizeof *p);
    return 0;
}

int br_pipe_send(br_pipe *p, const void *data, size_t len, int64_t deadline) {
    if (BR__UNLIKELY(!p || (!data && len)))
        return BR__MISUSE(BR_EINVAL, "br_pipe_send: p is NULL, or data NULL with len > 0");
    if (BR__UNLIKELY(!p->tx.r))
        return BR__MISUSE(BR_EPERM, "br_pipe_send: this end of a one-way pipe only receives");
    return br__mpr_put(&p->tx, data, len, deadline);
}

int br_pipe_recv(br_pipe *p, void **data, size_t *len, int64_t deadline) {
    if (BR__UNLIKELY(!p || !data || !len))
        return BR__MISUSE(BR_EINVAL, "br_pipe_recv: p, data or len is NULL");
    if (BR__UNLIKELY(!p->rx.r))
        return BR__MISUSE(BR_EPERM, "br_pipe_recv: this end of a one-way pipe only sends");
    *data = NULL;
    return br__mpr_get(&p->rx, NULL, 0, data, len, deadline);
}

int br_pipe_recv_into(br_pipe *p, void *buf, size_t cap, size_t *len, int64_t deadline) {
    if (BR__UNLIKELY(!p || !len || (!buf && cap)))
        return BR__MISUSE(BR_EINVAL, "br_pipe_recv_into: p or len is NULL, or buf NULL with cap > 0");
    if (BR__UNLIKELY(!p->rx.r))
        return BR__MISUSE(BR_EPERM, "br_pipe_recv_into: this end of a one-way pipe only sends");
    return br__mpr_get(&p->rx, buf, cap, NULL, len, deadline);
}

int br_pipe_poll(br_pipe *p, int64_t deadline) {
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_pipe_poll: p is NULL");
    if (!p->rx.r)
        return BR__MISUSE(BR_EPERM, "br_pipe_poll: this end of a one-way pipe only sends");
    return br__mpr_poll(&p->rx, deadline);
}

int br_pipe_fileno(const br_pipe *p) { return p && p->rx.r ? p->rx.fd : -1; }

int br_pipe_export(const br_pipe *p, br_pipe_fds *out) {
    if (!p || !out)
        return BR__MISUSE(BR_EINVAL, "br_pipe_export: p or out is NULL");
    out->shm = p->shm.fd;
    out->rx = p->rx.r ? p->rx.fd : -1;
    out->tx = p->tx.r ? p->tx.fd : -1;
    out->side = p->side;
    return 0;
}

static int dup_fd(int fd) {
    if (fd < 0)
        return -1;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    return d < 0 ? -errno : d;
}

int br_pipe_import(br_pipe **out, const br_pipe_fds *fds) {
    if (!out || !fds)
        return BR__MISUSE(BR_EINVAL, "br_pipe_import: out or fds is NULL");
    *out = NULL;
    struct stat st;
    if (fds->shm < 0 || (fds->side != 0 && fds->side != 1) || (fds->rx < 0 && fds->tx < 0) ||
        fstat(fds->shm, &st) != 0 || (size_t)st.st_size < RING_OFF)
        return BR_EINVAL;
    br__hooks_register(&g_hooks);
    br__shm shm;
    int rc = br__shm_attach(&shm, fds->shm, (size_t)st.st_size);
    if (rc)
        return rc;
    pipe_hdr *h = shm.base;
    size_t need = RING_OFF + br__mpr_bytes((size_t)h->cap) * (h->duplex ? 2 : 1);
    if (h->magic != PIPE_MAGIC || h->cap < BR__MPR_MIN_CAP || h->cap > BR__MPR_MAX_CAP ||
        need > shm.size || br__mpr_check(ring_to(&shm, 0), shm.size - RING_OFF) != 0) {
        br__shm_close(&shm);
        return BR_EINVAL;
    }
    int rx = dup_fd(fds->rx), tx = dup_fd(fds->tx);
    if (rx < -1 || tx < -1) {
        rc = rx < -1 ? rx : tx;
        close_fd(rx);
        close_fd(tx);
        br__shm_close(&shm);
        return rc;
    }
    br_pipe *p = make_end(&shm, fds->side, rx, tx);
    if (!p) {
        close_fd(rx);
        close_fd(tx);
        br__shm_close(&shm);
        return BR_ENOMEM;
    }
    atomic_fetch_add(&h->holders[p->side], 1);
    enlist(p);
    *out = p;
    return 0;
}

br__mpr *br__pipe_rx_ring(br_pipe *p) { return p->rx.r; }

br__mpr *br__pipe_tx_ring(br_pipe *p) { return p->tx.r; }
