# mpi.cases.rank_killed: a worker rank SIGKILLs itself while running a task. Open MPI's
# default (no fault tolerance) is to end the whole job: mpirun kills every rank, rank 0
# included, and exits non-zero. braid documents exactly that (docs/mpi.md, "When a rank
# dies"), and this checks it:
#   - the job ends (the CTest timeout guards against a hang), with a non-zero status;
#   - rank 0 got as far as submitting ("MARK: submitted") and never past the wait
#     ("MARK: survived" absent): the future did not resolve, the job was ended;
#   - mpirun says which rank died and of what signal;
#   - no process of the job is left running (a zombie, dead and waiting to be reaped by
#     whoever adopted it, is not running). The job's processes are told by a tag in
#     their environment (BRAID_JOB_TAG, random per run, which mpirun passes on to the
#     ranks it starts), not by name: another run of the same test, or any program
#     called mpi_cases, is not this job.
#
#   cmake -DLAUNCHER=<braid-mpirun> -DRANKS=<n> -DEXE=<mpi_cases> -DENTRY=rank_killed
#         [-DXARGS=<mpirun args>] -P expect_abort.cmake
cmake_minimum_required(VERSION 3.20)
string(RANDOM LENGTH 24 ALPHABET 0123456789abcdef tag)
execute_process(COMMAND ${CMAKE_COMMAND} -E env BRAID_JOB_TAG=${tag}
                        ${LAUNCHER} ${XARGS} -n ${RANKS} ${EXE} ${ENTRY}
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
# The job's processes still running: "pid state" lines, for every process (of any
# name) whose environment holds this run's tag and whose state is not Z. A process that
# mpirun killed may take a moment to be gone after mpirun itself has exited: look again
# for a while (a guard against a slow machine, not a timing: it ends as soon as none
# is left).
set(scan [=[
for e in /proc/[0-9]*/environ; do
  tr '\000' '\n' 2>/dev/null < "$e" | grep -qx "BRAID_JOB_TAG=$1" || continue
  p=${e#/proc/}; p=${p%/environ}
  s=$(sed 's/.*) //' 2>/dev/null "/proc/$p/stat" | cut -d' ' -f1)
  [ -n "$s" ] && [ "$s" != Z ] && echo "$p $s $(tr '\000' ' ' 2>/dev/null < "/proc/$p/cmdline")"
done
exit 0
]=])
foreach(look RANGE 100)
  execute_process(COMMAND sh -c "${scan}" scan ${tag} OUTPUT_VARIABLE running)
  if(NOT running)
    break()
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 0.1)
endforeach()
if(running)
  message(FATAL_ERROR "rank_killed: processes of the job are left running:\n${running}")
endif()
