/* The HTTP client on braid's loop: libcurl's multi-socket interface driven by the loop
 * (br_http_fetch in a coroutine, br_http_fetch_async).
 *
 * Design notes: the protocol. Read all of it before changing this file.
 *
 * One multi handle per (client, loop). A client fetching on a loop gets a record (hm)
 * for that loop, made at its first fetch there and kept until the client is freed: its
 * CURLM holds the connection cache (keep-alive) and the per-host and total caps
 * (CURLMOPT_MAX_HOST_CONNECTIONS / MAX_TOTAL_CONNECTIONS, which queue transfers inside
 * libcurl). Per client rather than one per loop shared by all clients, because the
 * caps are the client's options. The records are a list under the client's mutex,
 * looked up by (loop, pid): a forked child never touches its parent's multi (whose
 * sockets are shared with the parent). Everything else of a record, and every libcurl
 * call on its multi, happens on that loop's thread: coroutines and callbacks of the
 * loop only.
 *
 * Sockets. CURLMOPT_SOCKETFUNCTION tells which descriptors libcurl wants watched and
 * for what. For each one a small watcher coroutine (a task on the loop) waits in
 * br__io_wait for that direction and then calls curl_multi_socket_action; a change of
 * direction pokes the watcher out of its wait (a cancel request on its task, which the
 * watcher tells from a real cancel by its `poked` flag) and it waits again for the new
 * one; CURL_POLL_REMOVE marks it dead and wakes it to exit. A new socket and a removed
 * one are both br__io_forget'ed: libcurl closes some descriptors itself (its
 * resolver's) and parks idle connections with a REMOVE, and the loop must not keep a
 * registration for a number that may come back as another file (aio/io.h's rule); so a
 * kept-alive connection costs one epoll_ctl out and one back in per request. The
 * watcher's record (hs) is freed by whichever ends last: the watcher coroutine
 * (w_done) or libcurl's interest (the REMOVE, or the multi's cleanup: c_done).
 *
 * The timer. CURLMOPT_TIMERFUNCTION asks for one timer: a br_call_at on the loop whose
 * callback calls socket_action(CURL_SOCKET_TIMEOUT); a new value replaces it, -1
 * removes it, 0 fires at the loop's next iteration (never inside libcurl's callback,
 * the recursion its docs warn of). While no transfer runs, the record arms no timer,
 * so an idle client holds nothing on the loop: the loop can end, or be freed, with the
 * client still alive.
 *
 * Completion. After every socket_action the record drains curl_multi_info_read; a done
 * transfer (hx) is removed from the multi (outside libcurl's callbacks), its reply or
 * code built by br__hx_finish (client.c) and its future completed (a pointer result
 * whose dtor frees the reply). Easy handles go back to a small per-record free list.
 *
 * Cancellation, and the race with completion. A transfer's future (br_future_new,
 * never RUNNING, so br_future_cancel works on it at any time) has a done-callback.
 * The transfer record (ax) has two references: the loop's (dropped when it leaves the
 * multi) and the callback's (dropped when the callback has run and, for a cancel, its
 * abort has). A cancel, from any thread, runs the callback, which sends the abort to
 * the loop (directly when already on its thread, else br_call_soon_threadsafe); the
 * abort, on the loop's thread, removes the easy handle only if the transfer is still
 * in the multi (`active`, loop thread only). A completion on the loop clears `active`
 * first, then completes the future: if a cancel got there first, the set fails
 * (BR_ESTATE) and the reply is freed here. So the record outlives both sides, the
 * easy handle leaves the multi once, and nothing is completed twice.
 */
#include "http/client.h"

#include "aio/io.h"
#include "aio/loop.h"

#include <string.h>
#include <unistd.h>

typedef struct hs hs;

struct br__hmulti {
    br__hmulti *next;
    br_loop *loop;
    pid_t pid;
    br_http_client *c;
    CURLM *multi;
    br_timer *timer;   /* the armed timer's handle, or NULL */
    size_t running;    /* transfers in the multi */
    hs *socks;         /* the watchers libcurl's interest still holds */
    CURL *spare[32];   /* easy handles for reuse */
    size_t nspare;
};

/* A socket libcurl asked us to watch. */
struct hs {
    hs *next, *prev;     /* on hm->socks while !c_done */
    br__hmulti *hm;
    br_future *task;     /* the watcher coroutine (our reference) */
    int fd;
    int what;            /* CURL_POLL_IN / OUT / INOUT */
    bool started;        /* the watcher has begun (before, a cancel would drop it) */
    bool poked;          /* woken by us to look again, not cancelled */
    bool dead;           /* REMOVE'd: the watcher exits */
    bool c_done;         /* libcurl is done with it */
    bool w_done;         /* the watcher coroutine has ended */
};

/* A transfer on the loop. */
typedef struct ax {
    br__hx x;
    br__hmulti *hm;
    br_future *f;        /* our reference; the caller has its own */
    _Atomic int refs;
    bool active;         /* in the multi (loop thread) */
} ax;

static void ax_unref(ax *a) {
    if (atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
        return;
    br_future_release(a->f);
    br__free(a);
}

/* --- the watchers ------------------------------------------------------------------------ */

static void hs_unlink(hs *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        s->hm->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static void hs_maybe_free(hs *s) {
    if (s->c_done && s->w_done) {
        br_future_release(s->task);
        br__free(s);
    }
}

static void drain_done(br__hmulti *hm);

static void action(br__hmulti *hm, curl_socket_t fd, int mask) {
    int running = 0;
    (void)curl_multi_socket_action(hm->multi, fd, mask, &running);
    drain_done(hm);
}

static int watcher(br_task *t) {
    hs *s = (hs *)br_task_arg(t, NULL);
    s->started = true;
    while (!s->dead) {
        int what = s->what;
        uint32_t ev = ((what & CURL_POLL_IN) ? BR__IO_READ : 0) |
                      ((what & CURL_POLL_OUT) ? BR__IO_WRITE : 0);
        int rc = br__io_wait(s->fd, ev, BR_FOREVER);
        if (s->dead)
            break;
        if (rc == BR_ECANCELED) {
            if (!s->poked)
                break; /* a real cancel (the loop is ending): stop watching */
            s->poked = false;
            continue;
        }
        if (rc == BR_EBUSY) { /* a dead watcher of an earlier socket is still leaving */
            (void)br_aio_yield();
            continue;
        }
        int mask = rc != 0 ? CURL_CSELECT_ERR
                 : ev == BR__IO_READ ? CURL_CSELECT_IN
                 : ev == BR__IO_WRITE ? CURL_CSELECT_OUT : 0;
        action(s->hm, s->fd, mask);
    }
    s->w_done = true;
    hs_maybe_free(s);
    return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *clientp, void *socketp) {
    (void)easy;
    br__hmulti *hm = clientp;
    hs *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            curl_multi_assign(hm->multi, fd, NULL);
            s->dead = true;
            s->c_done = true;
            hs_unlink(s);
            hs_maybe_free(s); /* the watcher still runs: it frees s as it ends */
        }
        br__io_forget(fd); /* wakes the watcher if it waits; the fd may be closed next */
        return 0;
    }
    if (s != NULL) {
        if (s->what != what) {
            s->what = what;
            if (s->started) { /* else it reads `what` when it begins */
                s->poked = true;
                (void)br_future_request_cancel(s->task);
            }
        }
        return 0;
    }
    s = br__calloc(1, sizeof *s);
    if (s == NULL)
        return -1;
    s->hm = hm;
    s->fd = fd;
    s->what = what;
    br__io_forget(fd); /* a stale registration of this number must not stay */
    br_task_opts to = {.stack_size = 64 * 1024, .name = "http-socket"};
    if (br_create_task_opts(hm->loop, watcher, s, 0, &to, &s->task) != 0) {
        br__free(s);
        return -1;
    }
    s->next = hm->socks;
    if (s->next)
        s->next->prev = s;
    hm->socks = s;
    curl_multi_assign(hm->multi, fd, s);
    return 0;
}

/* --- the timer ------------------------------------------------------------------------------ */

static bool on_our_loop(const br__hmulti *hm) { return br_loop_current() == hm->loop; }

static void timer_drop(br__hmulti *hm) {
    if (hm->timer) {
        (void)br_timer_cancel(hm->timer); /* frees the handle, fired or not */
        hm->timer = NULL;
    }
}

static void on_timer_fire(void *arg) {
    br__hmulti *hm = arg;
    timer_drop(hm);
    action(hm, CURL_SOCKET_TIMEOUT, 0);
}

static int on_timer(CURLM *multi, long timeout_ms, void *clientp) {
    (void)multi;
    br__hmulti *hm = clientp;
    if (!on_our_loop(hm))
        return 0; /* the multi's cleanup from elsewhere: nothing is armed then */
    timer_drop(hm);
    if (timeout_ms < 0 || hm->running == 0)
        return 0;
    int64_t when = br_now() + (int64_t)timeout_ms * BR_MSEC;
    return br_call_at(hm->loop, when, on_timer_fire, hm, &hm->timer) == 0 ? 0 : -1;
}

/* --- transfers -------------------------------------------------------------------------------- */

static int close_socket(void *clientp, curl_socket_t fd) {
    (void)clientp;
    return br__io_close(fd);
}

static void put_easy(br__hmulti *hm, CURL *e) {
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
    if (hm->nspare < sizeof hm->spare / sizeof hm->spare[0])
        hm->spare[hm->nspare++] = e;
    else
        curl_easy_cleanup(e);
}

/* Takes a out of the multi (loop thread; a->active). */
static void leave_multi(ax *a) {
    br__hmulti *hm = a->hm;
    a->active = false;
    curl_multi_remove_handle(hm->multi, a->x.easy);
    put_easy(hm, a->x.easy);
    a->x.easy = NULL;
    if (--hm->running == 0)
        timer_drop(hm);
}

static void finish(ax *a, CURLcode cc) {
    br_http_response *r = NULL;
    int rc = br__hx_finish(&a->x, cc, &r);
    char msg[CURL_ERROR_SIZE];
    memcpy(msg, a->x.errbuf, sizeof msg);
    leave_multi(a);
    br__hx_clear(&a->x);
    if (rc == 0) {
        if (br_future_set_result_ptr(a->f, r, (void (*)(void *))br_http_response_free) != 0)
            br_http_response_free(r); /* cancelled meanwhile */
    } else {
        (void)br_future_set_exception(a->f, rc, msg[0] ? msg : NULL);
    }
    ax_unref(a); /* the loop's reference */
}

static void drain_done(br__hmulti *hm) {
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(hm->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        ax *a = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&a);
        CURLcode cc = m->data.result;
        if (a != NULL && a->active)
            finish(a, cc);
    }
}

static void abort_now(void *arg) {
    ax *a = arg;
    if (a->active) {
        leave_multi(a);
        br__hx_clear(&a->x);
        ax_unref(a); /* the loop's reference */
    }
    ax_unref(a); /* the callback's */
}

static void on_done(br_future *f, void *arg) {
    ax *a = arg;
    if (!br_future_cancelled(f)) {
        ax_unref(a); /* completed by finish(): the transfer has left already */
        return;
    }
    if (on_our_loop(a->hm)) {
        abort_now(a);
        return;
    }
    if (br_call_soon_threadsafe(a->hm->loop, abort_now, a) != 0)
        ax_unref(a); /* no memory: the transfer runs to its deadline, then goes */
}

/* --- the records ---------------------------------------------------------------------------- */

static void hm_free(br__hmulti *hm) {
    bool here = on_our_loop(hm);
    if (here)
        timer_drop(hm);
    for (size_t i = 0; i < hm->nspare; i++)
        curl_easy_cleanup(hm->spare[i]);
    curl_multi_cleanup(hm->multi);
    /* What libcurl didn't REMOVE: its watchers end (on their loop; from elsewhere they
     * end when their loop cancels them). */
    while (hm->socks) {
        hs *s = hm->socks;
        hs_unlink(s);
        s->dead = true;
        s->c_done = true;
        if (here)
            br__io_forget(s->fd);
        else if (s->started)
            (void)br_future_request_cancel(s->task);
        hs_maybe_free(s);
    }
    if (hm->timer) /* a loop that ended: the handle is disarmed; this frees it */
        (void)br_timer_cancel(hm->timer);
    br__free(hm);
}

static int hm_get(br_http_client *c, br_loop *loop, br__hmulti **out) {
    pid_t pid = getpid();
    pthread_mutex_lock(&c->lock);
    br__hmulti *hm = c->multis;
    while (hm && !(hm->loop == loop && hm->pid == pid))
        hm = hm->next;
    pthread_mutex_unlock(&c->lock);
    if (hm) {
        *out = hm;
        return 0;
    }
    hm = br__calloc(1, sizeof *hm);
    if (hm == NULL)
        return BR_ENOMEM;
    hm->loop = loop;
    hm->pid = pid;
    hm->c = c;
    hm->multi = curl_multi_init();
    if (hm->multi == NULL) {
        br__free(hm);
        return BR_ENOMEM;
    }
    CURLM *m = hm->multi;
    bool ok = true;
#define MSET(opt, val) ok = ok && curl_multi_setopt(m, opt, val) == CURLM_OK
    MSET(CURLMOPT_SOCKETFUNCTION, on_socket);
    MSET(CURLMOPT_SOCKETDATA, hm);
    MSET(CURLMOPT_TIMERFUNCTION, on_timer);
    MSET(CURLMOPT_TIMERDATA, hm);
    MSET(CURLMOPT_MAX_HOST_CONNECTIONS, (long)c->o.max_per_host);
    MSET(CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)c->o.max_total);
    MSET(CURLMOPT_MAXCONNECTS, (long)c->o.max_total);
#undef MSET
    if (!ok) {
        curl_multi_cleanup(m);
        br__free(hm);
        return BR_ENOMEM;
    }
    pthread_mutex_lock(&c->lock);
    hm->next = c->multis;
    c->multis = hm;
    pthread_mutex_unlock(&c->lock);
    *out = hm;
    return 0;
}

void br__hloop_free_all(br_http_client *c) {
    pthread_mutex_lock(&c->lock);
    br__hmulti *hm = c->multis;
    c->multis = NULL;
    pthread_mutex_unlock(&c->lock);
    pid_t pid = getpid();
    while (hm) {
        br__hmulti *next = hm->next;
        if (hm->pid == pid)
            hm_free(hm);
        /* else the parent's (we are a forked child): its sockets are the parent's */
        hm = next;
    }
}

int br__hloop_fetch_async(br_http_client *c, const br_http_request *rq, br_future **out) {
    br_loop *loop = br_loop_current();
    if (loop == NULL)
        return BR_EPERM;
    br__hmulti *hm;
    int rc = hm_get(c, loop, &hm);
    if (rc != 0)
        return rc;
    ax *a = br__calloc(1, sizeof *a);
    if (a == NULL)
        return BR_ENOMEM;
    a->hm = hm;
    a->x.easy = hm->nspare ? hm->spare[--hm->nspare] : curl_easy_init();
    if (a->x.easy == NULL) {
        br__free(a);
        return BR_ENOMEM;
    }
    rc = br__hx_setup(&a->x, c, rq);
    if (rc == 0 && (curl_easy_setopt(a->x.easy, CURLOPT_PRIVATE, (char *)a) != CURLE_OK ||
                    curl_easy_setopt(a->x.easy, CURLOPT_CLOSESOCKETFUNCTION, close_socket) !=
                        CURLE_OK))
        rc = BR_ENOMEM;
    if (rc == 0)
        rc = br_future_new(&a->f);
    if (rc != 0)
        goto fail;
    atomic_init(&a->refs, 2);
    hm->running++;
    a->active = true;
    if (curl_multi_add_handle(hm->multi, a->x.easy) != CURLM_OK) {
        a->active = false;
        hm->running--;
        br_future_release(a->f);
        rc = BR_ENOMEM;
        goto fail;
    }
    br_future_retain(a->f); /* the caller's */
    if (br_future_add_done_callback(a->f, on_done, a) != 0) {
        /* Without the callback a cancel couldn't reach the transfer: undo it. */
        leave_multi(a);
        br__hx_clear(&a->x);
        br_future_release(a->f);
        br_future_release(a->f);
        br__free(a);
        return BR_ENOMEM;
    }
    *out = a->f;
    return 0;
fail:
    put_easy(hm, a->x.easy);
    br__hx_clear(&a->x);
    br__free(a);
    return rc;
}
