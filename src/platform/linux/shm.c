/* Anonymous shared memory on Linux (platform/platform.h, "shm"): memfd_create. The
 * memory has no name in any file system, so nothing is left behind when every process
 * that mapped it or holds its descriptor is gone, however they died (a SIGKILL
 * included): the kernel frees it with the last reference. */
#include "platform/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

int br__shm_fd(const char *name, size_t size) {
    if (!name)
        name = "braid";
    int fd;
#if defined(SYS_memfd_create)
    fd = (int)syscall(SYS_memfd_create, name, MFD_CLOEXEC);
#else
    errno = ENOSYS;
    fd = -1;
#endif
    if (fd < 0)
        return -errno;
    while (ftruncate(fd, (off_t)size) != 0) {
        if (errno == EINTR)
            continue;
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}
