# The MPI executor's tests (braid/mpi.h), registered only when the MPI part is on.
#
# Every test runs its binary under scripts/braid-mpirun with 3 ranks (rank 0 runs the
# test, ranks 1 and 2 serve), one cmocka entry per CTest test: mpi.conformance.<name>
# (the executor conformance suite) and mpi.cases.<name> (tests/mpi/mpi_cases.c). The
# sources aren't named test_*.c, so the generic registration leaves them alone.
# mpi.cases.rank_killed runs under expect_abort.cmake: Open MPI ends the whole job when a
# rank dies, and that is what it checks. mpi.hostfile.<name> runs a case with its ranks
# placed by a hostfile (tests/mpi/hostfile.localhost: this host, 3 slots), the
# multi-host launch on one host.
#
# The tests share RESOURCE_LOCK mpi: each job is 3 busy processes on a 2-core machine.
#
# Sanitizers. AddressSanitizer: Open MPI leaks at init and finalize; LeakSanitizer reads
# scripts/lsan-mpi.supp, which suppresses leaks whose stacks are inside libmpi,
# libopen-pal, libopen-rte and the components they load only (never braid), passed to
# every rank with mpirun -x (with the two settings below that let it see those stacks).
# ThreadSanitizer: every run stops inside MPI_Init, before any braid code, on Open MPI's
# own reports (a lock-order inversion in the TCP transport's add_procs, a "double lock"
# in the PMIx client's init, Debian's Open MPI 4.1.4); with Open MPI's libraries
# suppressed as called_from_lib, TSan aborts when Open MPI unloads libpmix. So the tests
# are registered as skipped under TSan, saying so; they run under ASan+UBSan and plain.
if(NOT BRAID_HAVE_MPI)
  return()
endif()

add_library(braid_mpi_testlib STATIC ${CMAKE_CURRENT_LIST_DIR}/../harness.c
            ${CMAKE_CURRENT_LIST_DIR}/../parker.c ${CMAKE_CURRENT_LIST_DIR}/../cancel_util.c)
target_include_directories(braid_mpi_testlib PUBLIC ${CMAKE_CURRENT_LIST_DIR}/..
                                                    ${PROJECT_SOURCE_DIR}/src)
target_link_libraries(braid_mpi_testlib PUBLIC braid_mpi_static PkgConfig::CMOCKA)
target_compile_definitions(braid_mpi_testlib PUBLIC _GNU_SOURCE)
braid_warnings(braid_mpi_testlib)

set(_mpi_launcher ${PROJECT_SOURCE_DIR}/scripts/braid-mpirun)
set(_mpi_ranks 3)
math(EXPR _mpi_timeout "180 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
# The hang guard (30 s x the multiplier) only guards against hangs: three processes
# that spin and probe on two loaded cores made conformance_stress pass 30 s once, so
# the MPI tests guard at 4x (the CTest timeout above stays well beyond it).
set(_mpi_hang_mult 4)
if(BRAID_TEST_TIMEOUT_MULTIPLIER GREATER 4)
  set(_mpi_hang_mult ${BRAID_TEST_TIMEOUT_MULTIPLIER})
endif()
set(_mpi_env "")
set(_mpi_x "")
if(BRAID_SANITIZE MATCHES "address")
  # Open MPI unloads its components at MPI_Finalize, and their code has no frame
  # pointers: without these, a leak's stack is one frame in "<unknown module>" and no
  # suppression by module can match it. Components stay loaded, stacks are unwound fully.
  set(_mpi_env "LSAN_OPTIONS=suppressions=${PROJECT_SOURCE_DIR}/scripts/lsan-mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0"
               "OMPI_MCA_mca_base_component_disable_dlclose=1")
  set(_mpi_x -x LSAN_OPTIONS -x OMPI_MCA_mca_base_component_disable_dlclose)
endif()
set(_mpi_tsan_why "ThreadSanitizer stops every run inside MPI_Init on Open MPI's own reports (TCP transport lock order, PMIx client init), and aborts when Open MPI unloads libpmix if those libraries are suppressed; the MPI tests run under ASan+UBSan and in the plain build")
if(BRAID_SANITIZE MATCHES "thread")
  message(STATUS "braid: the MPI tests are skipped under ThreadSanitizer: ${_mpi_tsan_why}")
endif()

# braid_mpi_test(<test name> <exe> <entry> [ABORT | HOSTFILE <file>]): one cmocka entry
# under the launcher.
function(braid_mpi_test name exe entry)
  if(BRAID_SANITIZE MATCHES "thread")
    add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -E echo "${name} skipped: ${_mpi_tsan_why}")
    set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION "skipped:" LABELS mpi)
    return()
  endif()
  if(ARGN STREQUAL "ABORT")
    add_test(NAME ${name}
             COMMAND ${CMAKE_COMMAND} -DLAUNCHER=${_mpi_launcher} -DRANKS=${_mpi_ranks}
                     -DEXE=$<TARGET_FILE:${exe}> -DENTRY=${entry} "-DXARGS=${_mpi_x}"
                     -P ${CMAKE_CURRENT_FUNCTION_LIST_DIR}/expect_abort.cmake)
  else()
    set(hostargs "")
    if(ARGN MATCHES "^HOSTFILE;")
      list(GET ARGN 1 hostfile)
      set(hostargs --hostfile ${hostfile})
    endif()
    add_test(NAME ${name}
             COMMAND ${_mpi_launcher} ${_mpi_x} ${hostargs} -n ${_mpi_ranks}
                     $<TARGET_FILE:${exe}> ${entry})
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${_mpi_timeout} LABELS mpi
                       RESOURCE_LOCK mpi
                       ENVIRONMENT "BRAID_TEST_NAME=${name};BRAID_TEST_TIMEOUT_MULTIPLIER=${_mpi_hang_mult};${_mpi_env}")
endfunction()

foreach(unit conformance cases)
  set(src ${CMAKE_CURRENT_LIST_DIR}/mpi_${unit}.c)
  add_executable(mpi_${unit} ${src})
  target_link_libraries(mpi_${unit} PRIVATE braid_mpi_testlib)
  braid_warnings(mpi_${unit})
  file(READ ${src} body)
  if(unit STREQUAL "conformance")
    file(READ ${CMAKE_CURRENT_LIST_DIR}/../executor/conformance_executor.h hbody)
    string(REGEX MATCH "#define BR_CONFORMANCE_TESTS[^#]*" body "${hbody}")
  endif()
  string(REGEX MATCHALL "cmocka_unit_test\\([A-Za-z0-9_]+" hits "${body}")
  list(REMOVE_DUPLICATES hits)
  if(unit STREQUAL "conformance" AND BRAID_SANITIZE MATCHES "address")
    # Under ASan one job runs the whole suite (every case, in order, as mpi.spawn.conformance
    # does): each job's start costs 5-7 s there, 23 of them were 150 s of CI's ASan tree,
    # run one at a time under the lock. The plain tree keeps one test per case.
    braid_mpi_test(mpi.conformance.all mpi_conformance "")
    set(hits "")
  endif()
  foreach(hit ${hits})
    string(REGEX REPLACE ".*\\(" "" entry ${hit})
    if(entry STREQUAL "rank_killed")
      braid_mpi_test(mpi.${unit}.${entry} mpi_${unit} ${entry} ABORT)
    else()
      braid_mpi_test(mpi.${unit}.${entry} mpi_${unit} ${entry})
    endif()
  endforeach()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${src})
endforeach()
# Spawn launch (tests/mpi/mpi_spawn.c): the binary runs alone, an MPI singleton, and
# its executor spawns 2 workers. No launcher, so the environment says what braid-mpirun
# would: as root, Open MPI's runtime needs the run-as-root pair. The conformance suite
# runs as one test (one spawn for all its executors: a spawn costs seconds here), its
# stress counts at a quarter (BRAID_TEST_SCALE; under a sanitizer at their floors): the
# messages are the SPMD suite's, run at full counts above, and at full counts the
# suite's one-task-in-flight round trips took 24 s on a loaded machine.
add_executable(mpi_spawn ${CMAKE_CURRENT_LIST_DIR}/mpi_spawn.c)
target_link_libraries(mpi_spawn PRIVATE braid_mpi_testlib)
braid_warnings(mpi_spawn)
set(_mpi_spawn_env "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
foreach(entry conformance spawn_map spawn_rank_killed spawn_big_result_killed spawn_fails)
  set(name mpi.spawn.${entry})
  if(BRAID_SANITIZE MATCHES "thread")
    add_test(NAME ${name} COMMAND ${CMAKE_COMMAND} -E echo "${name} skipped: ${_mpi_tsan_why}")
    set_tests_properties(${name} PROPERTIES SKIP_REGULAR_EXPRESSION "skipped:" LABELS mpi)
    continue()
  endif()
  add_test(NAME ${name} COMMAND $<TARGET_FILE:mpi_spawn> ${entry})
  set(scale "")
  if(entry STREQUAL "conformance" AND NOT BRAID_SANITIZE)
    set(scale "BRAID_TEST_SCALE=0.25;")
  elseif(entry STREQUAL "conformance")
    # under ASan the stress cases' floors (500 and 1,000 a submitter): 58 s at a tenth
    set(scale "BRAID_TEST_SCALE=0.025;")
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${_mpi_timeout} LABELS mpi
                       RESOURCE_LOCK mpi
                       ENVIRONMENT "BRAID_TEST_NAME=${name};BRAID_TEST_TIMEOUT_MULTIPLIER=${_mpi_hang_mult};${scale}${_mpi_spawn_env};${_mpi_env}")
endforeach()
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/mpi_spawn.c)

foreach(entry map_100k failure_rank)
  braid_mpi_test(mpi.hostfile.${entry} mpi_cases ${entry}
                 HOSTFILE ${CMAKE_CURRENT_LIST_DIR}/hostfile.localhost)
endforeach()
