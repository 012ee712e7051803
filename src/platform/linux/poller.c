/* The event loop's poller on Linux (platform/platform.h, "poller"): epoll,
 * level-triggered, plus an eventfd for wake-ups from other threads.
 *
 * Design notes. The eventfd is registered with data NULL, so a wake-up is told apart
 * from a descriptor's readiness without a lookup; wait drains it (one read) and does
 * not report it. wake is one write(2) of 1 to the eventfd: it never blocks (the counter
 * saturates long after any caller could fill it, and EAGAIN then means a wake is
 * pending anyway), so it is safe from any thread and under any lock. Timeouts are
 * rounded up to the next millisecond (epoll_wait's unit), never down: a loop waking
 * early would spin until its timer is due. */
#include "core/lib.h"
#include "platform/platform.h"

#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct br__poller {
    int ep;
    int efd;
};

int br__poller_new(br__poller **out) {
    br__poller *p = br__malloc(sizeof *p);
    if (p == NULL)
        return BR_ENOMEM;
    p->ep = epoll_create1(EPOLL_CLOEXEC);
    if (p->ep < 0) {
        int e = -errno;
        br__free(p);
        return e;
    }
    p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (p->efd < 0) {
        int e = -errno;
        close(p->ep);
        br__free(p);
        return e;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(p->ep, EPOLL_CTL_ADD, p->efd, &ev) != 0) {
        int e = -errno;
        close(p->efd);
        close(p->ep);
        br__free(p);
        return e;
    }
    *out = p;
    return 0;
}

static uint32_t to_epoll(uint32_t events) {
    uint32_t e = 0;
    if (events & BR__POLL_IN)
        e |= EPOLLIN | EPOLLRDHUP;
    if (events & BR__POLL_OUT)
        e |= EPOLLOUT;
    return e;
}

static int ctl(br__poller *p, int op, int fd, uint32_t events, void *data) {
    struct epoll_event ev = {.events = to_epoll(events), .data.ptr = data};
    return epoll_ctl(p->ep, op, fd, &ev) == 0 ? 0 : -errno;
}

int br__poller_add(br__poller *p, int fd, uint32_t events, void *data) {
    return ctl(p, EPOLL_CTL_ADD, fd, events, data);
}

int br__poller_mod(br__poller *p, int fd, uint32_t events, void *data) {
    return ctl(p, EPOLL_CTL_MOD, fd, events, data);
}

int br__poller_del(br__poller *p, int fd) { return ctl(p, EPOLL_CTL_DEL, fd, 0, NULL); }

int br__poller_wait(br__poller *p, br__poll_event *out, int cap, int64_t deadline) {
    enum { BATCH = 64 };
    struct epoll_event ev[BATCH];
    if (cap > BATCH)
        cap = BATCH;
    int ms = -1;
    if (deadline != BR_FOREVER) {
        int64_t left = deadline - br_now();
        if (deadline == BR_NOWAIT || left <= 0)
            ms = 0;
        else if (left >= (int64_t)1000000 * BR_MSEC)
            ms = 1000000;
        else
            ms = (int)((left + BR_MSEC - 1) / BR_MSEC);
    }
    int n = epoll_wait(p->ep, ev, cap, ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (ev[i].data.ptr == NULL) {
            uint64_t v;
            ssize_t r = read(p->efd, &v, sizeof v);
            (void)r; /* EAGAIN: another wait drained it; nothing to do */
            continue;
        }
        uint32_t e = 0;
        if (ev[i].events & (EPOLLIN | EPOLLRDHUP))
            e |= BR__POLL_IN;
        if (ev[i].events & EPOLLOUT)
            e |= BR__POLL_OUT;
        if (ev[i].events & (EPOLLERR | EPOLLHUP))
            e |= BR__POLL_IN | BR__POLL_OUT;
        out[k].data = ev[i].data.ptr;
        out[k].events = e;
        k++;
    }
    return k;
}

void br__poller_wake(br__poller *p) {
    uint64_t one = 1;
    ssize_t r = write(p->efd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is full, a wake is pending anyway */
}

void br__poller_close(br__poller *p) {
    if (p == NULL)
        return;
    close(p->efd);
    close(p->ep);
    br__free(p);
}
