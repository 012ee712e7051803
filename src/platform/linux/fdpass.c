/* Passing descriptors on Linux (platform/platform.h, "fdpass"): a SOCK_SEQPACKET
 * socketpair carries one descriptor per message with SCM_RIGHTS (MSG_NOSIGNAL: a dead
 * peer is BR_EPIPE, never a SIGPIPE). */
#include "platform/platform.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int br__fdpass_pair(int sv[2]) {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    return 0;
}

int br__fdpass_send(int sock, int fd) {
    char byte = 'F';
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    memset(&c, 0, sizeof c);
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                       .msg_controllen = sizeof c.buf};
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    h->cmsg_level = SOL_SOCKET;
    h->cmsg_type = SCM_RIGHTS;
    h->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(h), &fd, sizeof fd);
    for (;;) {
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n == 1)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 ? -errno : BR_EIO;
    }
}

int br__fdpass_recv(int sock, bool wait) {
    char byte;
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int))];
    } c;
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = c.buf,
                       .msg_controllen = sizeof c.buf};
    for (;;) {
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC | (wait ? 0 : MSG_DONTWAIT));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return BR_EPIPE;
        break;
    }
    struct cmsghdr *h = CMSG_FIRSTHDR(&m);
    if (h == NULL || h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
        return BR_EIO;
    int fd;
    memcpy(&fd, CMSG_DATA(h), sizeof fd);
    return fd;
}
