/* braid/mpi.h: the executor over MPI ranks (mpi4py.futures' MPIPoolExecutor, for C).
 * Built when Open MPI (or another MPI) is found: libbraid_mpi, braid::braid_mpi,
 * pkg-config braid-mpi. docs/mpi.md is the guide.
 *
 *   mpiexec -n N python -m mpi4py.futures app.py     braid-mpirun -n N ./app
 *   MPIPoolExecutor(max_workers)                      br_mpi_executor_new(&ex, &opts)
 *   then everything in braid/executor.h, unchanged: br_submit*, br_map_new (chunksize:
 *   one MPI message per chunk), br_executor_shutdown, br_executor_free, and br_wait /
 *   br_as_completed over MPI futures and thread-pool or process-pool ones together.
 *
 * SPMD launch. Every rank runs the same program; br_mpi_main, first thing in main,
 * initialises MPI and diverts ranks 1..N-1 into a worker loop that serves tasks until
 * rank 0's program ends (they then finalize MPI and exit 0 without returning). Rank 0
 * returns from it and runs the program. At exit (atexit) rank 0 stops the workers and
 * finalizes MPI; br_mpi_finalize does the same earlier.
 *
 *   int main(int argc, char **argv) {
 *       if (br_mpi_main(&argc, &argv) != 0) return 1;   // workers never return
 *       br_executor *ex;
 *       br_mpi_executor_new(&ex, NULL);
 *       ...
 *   }
 *
 * Spawn launch. Started alone (`./app`, no mpirun) or with one rank, the program asks
 * for workers with opts.spawn = N: braid starts N processes of the same program with
 * MPI_Comm_spawn, and the same br_mpi_main at the top of their main diverts them.
 *
 * One task, any executor: a task is the same br_task_fn as on the thread pool. Its
 * function crosses as a reference (the module and offset, checked against the module's
 * build-id, or a br_register_fn name): every rank must run the same build. Arguments are
 * copied at submit; br_task_return_ptr fails with BR_ENOTSUP in the task.
 *
 * Slots. max_workers task slots are spread over the worker ranks round-robin (slot i
 * on rank 1 + i % (N-1)); a rank with k slots runs k tasks at once on k threads. Up to
 * `prefetch` tasks per slot are handed to a rank ahead of time: from then on they count
 * as running (br_future_cancel refuses them, br_future_request_cancel reaches them).
 *
 * Failures. A task's failure is its future's failure, with its code and its message,
 * prefixed "rank R: " unless opts.plain_messages. A rank that dies: Open MPI's default
 * (and the only behaviour of MPI without fault tolerance) is that mpirun kills every
 * rank of the job, rank 0 included; braid can't recover from it and doesn't try
 * (docs/mpi.md, "When a rank dies").
 *
 * One MPI executor at a time per process (a second br_mpi_executor_new while one is
 * alive: BR_EBUSY); executors may follow one another.
 */
#ifndef BRAID_MPI_H
#define BRAID_MPI_H

#include "braid/executor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Initialises MPI (MPI_Init_thread, asking for MPI_THREAD_MULTIPLE and needing at least
 * MPI_THREAD_SERIALIZED; nothing if the program initialised MPI itself) and, on ranks
 * other than 0, serves tasks until rank 0 ends, then calls MPI_Finalize and exit(0):
 * it returns on rank 0 only. argc and argv are MPI_Init's (may be NULL). 0; BR_ENOTSUP
 * (the MPI grants less than MPI_THREAD_SERIALIZED); BR_EIO (MPI_Init failed); BR_ESTATE
 * (called twice, or MPI was already finalized). */
BR_API int br_mpi_main(int *argc, char ***argv);

/* Rank 0: stops the worker ranks and calls MPI_Finalize (also done at exit). An MPI
 * executor still alive is shut down first (cancel_futures). 0, or BR_ESTATE (not rank
 * 0, or br_mpi_main didn't run). Called again: 0. */
BR_API int br_mpi_finalize(void);

/* This process's rank and the job's size (ranks, rank 0 included); -1 before
 * br_mpi_main. */
BR_API int br_mpi_rank(void);
BR_API int br_mpi_size(void);
/* Rank 0's process id, on any rank (for tools and tests that reach rank 0's /proc
 * entries when the ranks share a host); -1 before br_mpi_main. */
BR_API int br_mpi_root_pid(void);

typedef struct br_mpi_executor_opts {
    /* Task slots (tasks running at once), spread over the worker ranks; 0: one per
     * worker rank. At most 64 per worker rank. */
    int max_workers;
    /* Tasks handed to a rank ahead of time, per slot; 0: 8. At most 256. */
    int prefetch;
    /* Failure messages as the task wrote them, without the "rank R: " prefix. */
    bool plain_messages;
    /* Runs once on every worker rank the executor uses, before that rank's first task,
     * on the rank's main thread, as a task with the argument bytes
     * initarg[0..initarg_len) (copied at br_mpi_executor_new). It crosses as a task's
     * function does. A failure (a nonzero return) breaks the executor (Python's
     * BrokenExecutor): every pending future, queued or handed to a rank, fails with
     * BR_EBROKEN ("rank R: the initializer failed: <its message>"), and later submits
     * return BR_EBROKEN. Shutdown and free still end cleanly, and the ranks serve the
     * next executor. NULL: none. */
    br_task_fn initializer;
    const void *initarg;
    size_t initarg_len;
    /* Spawn launch: when the job has no worker ranks (the program was started without
     * mpirun, or with -n 1), start this many worker processes of this program with
     * MPI_Comm_spawn (their br_mpi_main diverts them) and run on them. They stay until
     * rank 0 finalizes and serve later executors too, whatever those ask. Ignored when
     * the job has worker ranks (SPMD, or spawned earlier). 0: no spawn. At most 1024.
     * As a singleton Open MPI allows more workers than cores; as root it needs
     * OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment
     * (docs/mpi.md, "Spawn launch"). */
    int spawn;
    /* More fields may be added at any time; zero always keeps the default. */
} br_mpi_executor_opts;

/* Makes an executor over the worker ranks (opts may be NULL: the defaults). Rank 0
 * only, after br_mpi_main. On success *out is the caller's; free it with
 * br_executor_free. 0; BR_EINVAL (out NULL, an option out of range, initarg NULL with
 * initarg_len > 0 or initarg_len over 1 GiB, an initializer no other rank can find: a
 * heap or JIT address, spawn out of range); BR_ESTATE (br_mpi_main didn't run here,
 * or the job has no worker ranks and opts.spawn is 0); BR_EIO (spawn: MPI couldn't
 * start the workers: docs/mpi.md, "Spawn launch");
 * BR_EBUSY (another MPI executor is alive); BR_ENOMEM; BR_EAGAIN (no thread). */
BR_API int br_mpi_executor_new(br_executor **out, const br_mpi_executor_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
