/* Servers (braid/stream.h, br_start_server): a listener, a coroutine that accepts on
 * it, and one coroutine per connection, all on one loop.
 *
 * Design note: the rules a change must keep.
 *
 *  - `live` counts the coroutines of the server that have not finished: the acceptor
 *    (counted from the start) and every connection task (counted by the acceptor
 *    before it creates the task, so the count never touches 0 while the acceptor
 *    runs). Whoever takes it to 0 sets `idle`; since the acceptor only ends after
 *    br_server_close, `idle` set means "closed and every handler returned", which is
 *    what br_server_wait waits for (an event: a thread or a coroutine may wait).
 *
 *  - br_server_close may run on any thread: it raises `closing` and asks the acceptor
 *    task to cancel (br_future_cancel: a request to a running coroutine, which makes
 *    its accept wait return BR_ECANCELED). The listener is closed by the acceptor
 *    by the acceptor's done-callback: on the loop's thread when the acceptor ran (so
 *    that no descriptor is closed under a wait that the loop's poller still holds),
 *    or on the closing thread when the cancel caught it before it started (nothing
 *    waits on the descriptor then). The callback is also the acceptor's `leave`.
 *
 *  - `refs` keeps the struct's memory: the owner's reference (dropped by
 *    br_server_free) and one per coroutine, dropped after its last touch (the set of
 *    `idle` included). The last one frees it, so a free right after a wait can't pull
 *    the event out from under a setter that is still returning.
 *
 *  - A connection's stream belongs to its task: the handler borrows it; the task frees
 *    it after the handler returns.
 */
#include "braid/aio.h"
#include "braid/stream.h"
#include "braid/thread.h"
#include "core/lib.h"

struct br_server {
    br_listener *l;
    int port;
    br_stream_handler handler;
    void *arg;
    br_loop *loop;
    br_future *acceptor;
    atomic_bool closing;
    atomic_int live;
    atomic_int refs;
    br_event idle;
};

struct conn_arg {
    br_server *srv;
    br_stream *s;
};

static void unref(br_server *srv) {
    if (atomic_fetch_sub_explicit(&srv->refs, 1, memory_order_acq_rel) != 1)
        return;
    br_future_release(srv->acceptor);
    (void)br_event_destroy(&srv->idle);
    br__free(srv);
}

/* A coroutine of the server ends: the last one sets idle. Its reference goes after
 * the set has returned, so that the event outlives every call on it. */
static void leave(br_server *srv) {
    if (atomic_fetch_sub_explicit(&srv->live, 1, memory_order_acq_rel) == 1)
        (void)br_event_set(&srv->idle);
    unref(srv);
}

static int conn_main(br_task *t) {
    const struct conn_arg *a = br_task_arg(t, NULL);
    br_server *srv = a->srv;
    int rc = srv->handler(a->s, srv->arg);
    br_stream_free(a->s);
    leave(srv);
    return rc > 0 ? 0 : rc;
}

static int acceptor_main(br_task *t) {
    br_server *srv = *(br_server *const *)br_task_arg(t, NULL);
    int rc = 0;
    while (!atomic_load_explicit(&srv->closing, memory_order_acquire)) {
        br_stream *s;
        rc = br_listener_accept(srv->l, BR_FOREVER, &s);
        if (rc == BR_ECANCELED || rc == BR_EBADF)
            break;
        if (rc != 0) {
            /* Out of descriptors or memory: the connection stays queued; let the
             * handlers release some, then try again. */
            if (br_aio_sleep(10 * BR_MSEC) == BR_ECANCELED)
                break;
            continue;
        }
        atomic_fetch_add_explicit(&srv->live, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&srv->refs, 1, memory_order_relaxed);
        struct conn_arg a = {.srv = srv, .s = s};
        br_future *f;
        rc = br_create_task(srv->loop, conn_main, &a, sizeof a, &f);
        if (rc != 0) {
            br_stream_free(s);
            leave(srv);
            continue;
        }
        br_future_release(f);
    }
    return 0;
}

/* The acceptor's end, however it came: returned, or cancelled before it ever ran (a
 * close right after the start). Runs on the thread that finished it; in the second
 * case no wait holds the listener's descriptor, so any thread may close it. */
static void acceptor_done(br_future *f, void *arg) {
    (void)f;
    br_server *srv = arg;
    br_listener_free(srv->l);
    srv->l = NULL;
    leave(srv);
}

static int start(br_loop *loop, br_listener *l, br_stream_handler handler, void *arg,
                 br_server **out) {
    if (loop == NULL)
        loop = br_loop_current();
    if (loop == NULL) {
        br_listener_free(l);
        return BR__MISUSE(BR_EPERM, "br_start_server: no loop given and none running here");
    }
    br_server *srv = br__calloc(1, sizeof *srv);
    if (srv == NULL) {
        br_listener_free(l);
        return BR_ENOMEM;
    }
    srv->l = l;
    srv->port = br_listener_port(l);
    srv->handler = handler;
    srv->arg = arg;
    srv->loop = loop;
    atomic_init(&srv->closing, false);
    atomic_init(&srv->live, 1);
    atomic_init(&srv->refs, 2); /* the owner's and the acceptor's */
    int rc = br_event_init(&srv->idle);
    if (rc == 0) {
        rc = br_create_task(loop, acceptor_main, &srv, sizeof srv, &srv->acceptor);
        if (rc != 0)
            (void)br_event_destroy(&srv->idle);
    }
    if (rc != 0) {
        br_listener_free(l);
        br__free(srv);
        return rc;
    }
    /* Can't fail for a live future; the callback owns the listener from here. */
    (void)br_future_add_done_callback(srv->acceptor, acceptor_done, srv);
    *out = srv;
    return 0;
}

int br_start_server(br_loop *loop, const char *host, int port, br_stream_handler handler,
                    void *arg, br_server **out) {
    if (handler == NULL || out == NULL)
        return BR__MISUSE(BR_EINVAL, "br_start_server: handler or out NULL");
    if (loop == NULL && br_loop_current() == NULL)
        return BR__MISUSE(BR_EPERM, "br_start_server: no loop given and none running here");
    br_listener *l;
    int rc = br_listen_tcp(host, port, 0, &l);
    if (rc != 0)
        return rc;
    return start(loop, l, handler, arg, out);
}

int br_start_unix_server(br_loop *loop, const char *path, br_stream_handler handler,
                         void *arg, br_server **out) {
    if (handler == NULL || out == NULL || path == NULL)
        return BR__MISUSE(BR_EINVAL, "br_start_unix_server: path, handler or out NULL");
    if (loop == NULL && br_loop_current() == NULL)
        return BR__MISUSE(BR_EPERM, "br_start_unix_server: no loop given and none running here");
    br_listener *l;
    int rc = br_listen_unix(path, 0, &l);
    if (rc != 0)
        return rc;
    return start(loop, l, handler, arg, out);
}

int br_server_port(const br_server *srv) {
    return srv == NULL ? -1 : srv->port;
}

int br_server_close(br_server *srv) {
    if (srv == NULL)
        return BR__MISUSE(BR_EINVAL, "br_server_close: srv NULL");
    if (!atomic_exchange_explicit(&srv->closing, true, memory_order_acq_rel))
        (void)br_future_cancel(srv->acceptor);
    return 0;
}

int br_server_wait(br_server *srv, int64_t deadline) {
    if (srv == NULL)
        return BR__MISUSE(BR_EINVAL, "br_server_wait: srv NULL");
    if (!atomic_load_explicit(&srv->closing, memory_order_acquire))
        return BR_ESTATE;
    return br_event_wait(&srv->idle, deadline);
}

int br_server_free(br_server *srv) {
    if (srv == NULL)
        return BR__MISUSE(BR_EINVAL, "br_server_free: srv NULL");
    if (!br_event_is_set(&srv->idle))
        return BR_EBUSY;
    unref(srv);
    return 0;
}
