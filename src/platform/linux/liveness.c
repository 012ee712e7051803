/* Process liveness on Linux (platform/platform.h, "process liveness").
 *
 * "Gone" means the whole process (thread group) has exited, not just its main thread: a
 * main thread that called pthread_exit() shows as a zombie in /proc/<pid>/stat while
 * the other threads still run, so that file alone is not the answer. In order:
 *  - kill(pid, 0) == ESRCH: no such process (reaped).
 *  - pidfd_open (5.3) and poll(POLLIN, 0): a pidfd becomes readable when the thread
 *    group has exited (a zombie waiting to be reaped counts as gone).
 *  - where pidfds are refused (ENOSYS, or a filter's EPERM) or out of descriptors:
 *    every /proc/<pid>/task/<tid>/stat shows Z or X (or the task directory is gone).
 * Anything unclear answers "not gone": a caller only waits longer. */
#include "platform/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#  define SYS_pidfd_open 434
#endif

/* 1: the stat file at path shows a dead task (Z, X) or is gone; 0: alive; -1: unclear. */
static int stat_dead(const char *path) {
    char buf[512];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? 1 : -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return n == 0 || errno == ESRCH ? 1 : -1;
    buf[n] = '\0';
    /* "tid (comm) S ...": the state follows the last ')' (comm may hold parentheses). */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    return p[2] == 'Z' || p[2] == 'X' || p[2] == 'x';
}

/* Every thread of pid dead (the fallback without pidfds). */
static bool tasks_dead(int pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    if (!d)
        return errno == ENOENT || errno == ESRCH;
    bool dead = true;
    struct dirent *e;
    while (dead && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char sp[96];
        snprintf(sp, sizeof sp, "/proc/%d/task/%.16s/stat", pid, e->d_name);
        if (stat_dead(sp) != 1)
            dead = false;
    }
    closedir(d);
    return dead;
}

bool br__pid_gone(int pid) {
    if (pid <= 0)
        return true;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd p = {.fd = (int)fd, .events = POLLIN};
        int n;
        do
            n = poll(&p, 1, 0);
        while (n < 0 && errno == EINTR);
        close((int)fd);
        return n > 0 && (p.revents & (POLLIN | POLLHUP));
    }
    if (errno == ESRCH)
        return true;
    if (errno == EINVAL)
        return false; /* not a process id (a thread's, on kernels before 6.9) */
    return tasks_dead(pid);
}
