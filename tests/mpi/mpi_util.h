/* Helpers the MPI executor's test programs share (tests/mpi/mpi_cases.c, mpi_spawn.c):
 * a tiny task and a br_map of n of them, every result at its index, the count and the
 * sum checked; a task that kills its rank. Included by one source file each. */
#ifndef BRAID_TESTS_MPI_UTIL_H
#define BRAID_TESTS_MPI_UTIL_H

#include "harness.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static int tiny_task(br_task *t) {
    int32_t x;
    memcpy(&x, br_task_arg(t, NULL), sizeof x);
    return br_task_return_i64(t, 2 * (int64_t)x + 1);
}

static void check_map(br_executor *ex, int32_t n, size_t chunk) {
    int32_t *in = malloc((size_t)n * sizeof *in);
    BR_CHECK(in != NULL);
    for (int32_t i = 0; i < n; i++)
        in[i] = i;
    br_map *m;
    BR_CHECK_OK(br_map_new(&m, ex, tiny_task, in, (size_t)n, sizeof in[0],
                           &(br_map_opts){.chunksize = chunk}));
    int64_t sum = 0, count = 0, v;
    for (int32_t i = 0; i < n; i++) {
        BR_CHECK_OK(br_map_next_i64(m, &v));
        BR_CHECK_EQ(v, 2 * (int64_t)i + 1);
        sum += v;
        count++;
    }
    BR_CHECK_ERR(br_map_next_i64(m, &v), BR_EOF);
    BR_CHECK_OK(br_map_free(m));
    BR_CHECK_EQ(count, n);
    BR_CHECK_EQ(sum, (int64_t)n * n); /* sum of the first n odd numbers */
    free(in);
}

/* A task that SIGKILLs its rank (the rank-killed tests). */
static int kill_self_task(br_task *t) {
    (void)t;
    raise(SIGKILL);
    return 0;
}

#endif
