/* Thread names and ids, and keeping a new thread off our CPU, on Linux
 * (platform/platform.h). */
#include "platform/platform.h"

#include <pthread.h>
#include <sched.h>
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

void br__attr_other_cpu(pthread_attr_t *attr) {
    cpu_set_t set;
    int here = sched_getcpu();
    if (here < 0 || sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    CPU_CLR(here, &set);
    if (CPU_COUNT(&set) > 0)
        pthread_attr_setaffinity_np(attr, sizeof set, &set);
}
