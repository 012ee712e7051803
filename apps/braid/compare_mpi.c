/* compare_mpi.c: braid-compare-mpi, the MPI row of `braid compare --mpi N`.
 *
 *   braid-mpirun -n N+1 braid-compare-mpi CALLS
 *
 * Rank 0 times W1 (is_prime(112272535095293) x CALLS, workloads.h) through br_map on an
 * MPI executor over the N worker ranks (one slot each, chunksize 1, every call submitted
 * at once), checks every result and prints "SECONDS CORRECT WORKERS", the line compare.c
 * reads (as it reads the Python rows'). A separate program because it links
 * libbraid_mpi, and `braid` links libbraid (or libbraid_http): one program holds one copy
 * of braid. Exit status: 0, or 1 with the reason on stderr.
 */
#include <braid.h>
#include <braid/mpi.h>

#include <stdio.h>
#include <stdlib.h>

#include "workloads.h"

static int is_prime_task(br_task *t) {
    return br_task_return_i64(t, is_prime((uint64_t)br_task_arg_i64(t)));
}

int main(int argc, char **argv) {
    int rc = br_mpi_main(&argc, &argv); /* the worker ranks serve there and never return */
    if (rc != 0) {
        fprintf(stderr, "braid-compare-mpi: br_mpi_main: %s\n", br_strerror(rc));
        return 1;
    }
    long calls = argc > 1 ? strtol(argv[1], NULL, 10) : 100;
    if (calls < 1 || calls > 1000000) {
        fprintf(stderr, "usage: braid-mpirun -n N+1 braid-compare-mpi CALLS (1..1000000)\n");
        return 1;
    }
    br_executor *ex;
    rc = br_mpi_executor_new(&ex, NULL);
    if (rc != 0) {
        fprintf(stderr, "braid-compare-mpi: br_mpi_executor_new: %s%s\n", br_strerror(rc),
                rc == BR_ESTATE ? " (run it with at least 2 ranks)" : "");
        return 1;
    }
    int64_t *in = malloc((size_t)calls * sizeof *in);
    if (in == NULL)
        return 1;
    for (long i = 0; i < calls; i++)
        in[i] = (int64_t)w1_number;
    long correct = 0;
    int64_t t0 = br_now();
    br_map *m = NULL;
    rc = br_map_new(&m, ex, is_prime_task, in, (size_t)calls, sizeof in[0],
                    &(br_map_opts){.chunksize = 1, .buffersize = (size_t)calls});
    for (long i = 0; rc == 0 && i < calls; i++) {
        int64_t v = 0;
        rc = br_map_next_i64(m, &v);
        correct += rc == 0 && v == 1;
    }
    double secs = (double)(br_now() - t0) / BR_SEC;
    if (m != NULL)
        (void)br_map_free(m);
    int workers = br_executor_max_workers(ex);
    int frc = br_executor_free(ex);
    free(in);
    if (rc != 0 || frc != 0) {
        fprintf(stderr, "braid-compare-mpi: %s\n", br_strerror(rc ? rc : frc));
        return 1;
    }
    printf("%.6f %ld %d\n", secs, correct, workers);
    return 0;
}
