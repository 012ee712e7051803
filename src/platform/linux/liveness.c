/* Process liveness on Linux (platform/platform.h, "process liveness"): kill(pid, 0)
 * for existence, /proc/<pid>/stat for the zombie state (dead, not yet reaped). */
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool br__pid_gone(int pid) {
    if (pid <= 0)
        return true;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return true;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    /* "pid (comm) S ...": the state follows the last ')' (comm may hold parentheses). */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return false;
    return p[2] == 'Z' || p[2] == 'X' || p[2] == 'x';
}
