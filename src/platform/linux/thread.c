/* Thread names and ids on Linux (platform/platform.h). */
#include "platform/platform.h"

#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void br__set_thread_name(const char *name) {
    char kname[16]; /* the kernel keeps 15 bytes and a NUL */
    size_t n = strlen(name);
    if (n > 15)
        n = 15;
    memcpy(kname, name, n);
    kname[n] = 0;
    pthread_setname_np(pthread_self(), kname);
}

int br__thread_native_id(void) { return (int)syscall(SYS_gettid); }
