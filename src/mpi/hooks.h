/* mpi/hooks.h: test hooks of the MPI executor (src/mpi/mpi.c). Not API: tests/mpi only;
 * nothing in a program calls them.
 *
 * br__mpi_test_die_before_rdata: called by a task on a worker rank, it makes that
 * worker, the next time it sends a RESULTS message carrying a big result (64 KiB or
 * more, whose bytes go as a message of their own: mpi.c's design notes), send that
 * message synchronously (MPI_Ssend: rank 0 has received it) and then SIGKILL itself
 * before it sends the bytes: a worker that dies halfway through sending a big result,
 * at the one moment that left rank 0 waiting for bytes that never come.
 *
 * br__mpi_test_spawn_no_oversubscribe(true): a singleton's spawn (opts.spawn) no longer
 * asks for oversubscription, so Open MPI refuses more processes than this host has cores
 * (MPI_Comm_spawn returns MPI_ERR_SPAWN): the BR_EIO path, as under an mpirun without
 * --oversubscribe. (A program that can't be found is no way to get there: Open MPI
 * 4.1.4's spawn then never returns in a singleton, and mpirun ends the job.) Rank 0,
 * before br_mpi_executor_new; false restores the default. */
#ifndef BRAID_MPI_HOOKS_H
#define BRAID_MPI_HOOKS_H

#include <stdbool.h>

void br__mpi_test_die_before_rdata(void);
void br__mpi_test_spawn_no_oversubscribe(bool on);

#endif
