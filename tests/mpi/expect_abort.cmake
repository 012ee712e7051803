# mpi.cases.rank_killed: a worker rank SIGKILLs itself while running a task. Open MPI's
# default (no fault tolerance) is to end the whole job: mpirun kills every rank, rank 0
# included, and exits non-zero. braid documents exactly that (docs/mpi.md, "When a rank
# dies"), and this checks it:
#   - the job ends (the CTest timeout guards against a hang), with a non-zero status;
#   - rank 0 got as far as submitting ("MARK: submitted") and never past the wait
#     ("MARK: survived" absent): the future did not resolve, the job was ended;
#   - mpirun says which rank died and of what signal;
#   - no process of the job is left running (a zombie, dead and waiting to be reaped by
#     whoever adopted it, is not running).
#
#   cmake -DLAUNCHER=<braid-mpirun> -DRANKS=<n> -DEXE=<mpi_cases> -DENTRY=rank_killed
#         [-DXARGS=<mpirun args>] -P expect_abort.cmake
cmake_minimum_required(VERSION 3.20)
execute_process(COMMAND ${LAUNCHER} ${XARGS} -n ${RANKS} ${EXE} ${ENTRY}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
set(all "${out}\n${err}")
message(STATUS "mpirun exited with ${rc}; its output:\n${all}")
if(rc STREQUAL "0")
  message(FATAL_ERROR "rank_killed: the job ended with status 0; Open MPI should have aborted it")
endif()
if(NOT all MATCHES "MARK: submitted")
  message(FATAL_ERROR "rank_killed: rank 0 never submitted the task")
endif()
if(all MATCHES "MARK: survived")
  message(FATAL_ERROR "rank_killed: rank 0 went on after the rank died; the documented behaviour is that the job ends")
endif()
if(NOT all MATCHES "rank [0-9]+ .*(signal 9|Killed)")
  message(FATAL_ERROR "rank_killed: mpirun didn't report the killed rank")
endif()
get_filename_component(name ${EXE} NAME)
execute_process(COMMAND ps -C ${name} -o pid=,stat= OUTPUT_VARIABLE left)
string(REGEX MATCHALL "[0-9]+ +[^Z \n][^\n]*" running "${left}")
if(running)
  message(FATAL_ERROR "rank_killed: processes of the job are left running: ${running}")
endif()
