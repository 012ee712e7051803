/* Shared mappings (process/shm.h). */
#include "process/shm.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static void clear(br__shm *s) {
    s->base = NULL;
    s->size = 0;
    s->fd = -1;
}

static int map(br__shm *s, int fd, size_t size) {
    if (br__alloc_should_fail())
        return BR_ENOMEM;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return errno == ENOMEM ? BR_ENOMEM : -errno;
    s->base = p;
    s->size = size;
    s->fd = fd;
    return 0;
}

int br__shm_new(br__shm *s, size_t size, const char *label) {
    if (!s)
        return BR_EINVAL;
    clear(s);
    if (size == 0)
        return BR_EINVAL;
    int fd = br__shm_fd(label, size);
    if (fd < 0)
        return fd;
    int rc = map(s, fd, size);
    if (rc != 0) {
        close(fd);
        clear(s);
    }
    return rc;
}

int br__shm_attach(br__shm *s, int fd, size_t size) {
    if (!s)
        return BR_EINVAL;
    clear(s);
    if (fd < 0 || size == 0)
        return BR_EINVAL;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0)
        return -errno;
    int rc = map(s, dup, size);
    if (rc != 0) {
        close(dup);
        clear(s);
    }
    return rc;
}

void br__shm_drop_fd(br__shm *s) {
    if (s && s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

void br__shm_close(br__shm *s) {
    if (!s)
        return;
    if (s->base)
        munmap(s->base, s->size);
    br__shm_drop_fd(s);
    clear(s);
}
