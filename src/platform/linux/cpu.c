/* br_cpu_count: CPUs this process may actually use. The affinity mask, limited by a
 * cgroup CPU quota (v2 cpu.max at every level of our cgroup path, or v1's
 * cfs_quota_us/cfs_period_us), rounded up. Containers that set a quota on a big host
 * get pools sized for the quota, not for the host. */
#include "core/lib.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int affinity_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Quota as a CPU count, rounded up; 0 when unlimited or unreadable. */
static int quota_cpus(long long quota, long long period) {
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > 0 ? (int)n : 1;
}

static int cgroup_v2_limit(void) {
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    char line[4096], path[4096] = "";
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(path, sizeof path, "%s", line + 3);
            path[strcspn(path, "\n")] = 0;
            break;
        }
    }
    fclose(f);
    if (!path[0])
        return 0;
    int best = 0;
    for (;;) {
        char file[4200];
        snprintf(file, sizeof file, "/sys/fs/cgroup%s/cpu.max", strcmp(path, "/") ? path : "");
        FILE *m = fopen(file, "re");
        if (m) {
            char q[64] = "";
            long long period = 0;
            if (fscanf(m, "%63s %lld", q, &period) == 2 && strcmp(q, "max") != 0) {
                int n = quota_cpus(atoll(q), period);
                if (n > 0 && (best == 0 || n < best))
                    best = n;
            }
            fclose(m);
        }
        char *slash = strrchr(path, '/');
        if (!slash || slash == path) {
            if (strcmp(path, "/") == 0 || !slash)
                break;
            strcpy(path, "/");
            continue;
        }
        *slash = 0;
    }
    return best;
}

static long long read_ll(const char *file) {
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    long long v = -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static int cgroup_v1_limit(void) {
    static const char *dirs[] = {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char q[256], p[256];
        snprintf(q, sizeof q, "%s/cpu.cfs_quota_us", dirs[i]);
        snprintf(p, sizeof p, "%s/cpu.cfs_period_us", dirs[i]);
        int n = quota_cpus(read_ll(q), read_ll(p));
        if (n > 0)
            return n;
    }
    return 0;
}

int br__cpu_parallel(void) { return affinity_count(); }

int br_cpu_count(void) {
    int n = affinity_count();
    int q = cgroup_v2_limit();
    if (q == 0)
        q = cgroup_v1_limit();
    if (q > 0 && q < n)
        n = q;
    return n > 0 ? n : 1;
}
