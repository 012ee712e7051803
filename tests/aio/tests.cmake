# The coroutine suites again, with every loop's tasks on shared stacks
# (BRAID_TEST_SHARED_STACKS=1, tests/harness.c): each primitive's wait parked from a
# shared-stack coroutine, whose frames are copied out while it waits, so its waiters,
# wait records and watch nodes must live off the stack (core/lib.h, park memory). One
# process per suite (its whole table), as these are many short tests. Not the stream
# suite: some of its tests hand a local's address to another task, which shared stacks
# don't allow (docs/aio-coro.md).
math(EXPR _shared_timeout "120 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
foreach(_suite waiters combine task loop loop2)
  add_test(NAME aio.on_shared_stacks.${_suite} COMMAND test_aio_${_suite})
  set_tests_properties(aio.on_shared_stacks.${_suite} PROPERTIES TIMEOUT ${_shared_timeout}
    LABELS aio ENVIRONMENT "BRAID_TEST_SHARED_STACKS=1;BRAID_TEST_NAME=aio.on_shared_stacks.${_suite}")
endforeach()

# The threading, queue and futures suites with their blocking sides as coroutines
# (tests/coro_host.h, tests/thread/thread_util.h's CONF_CORO): each tests/<layer>/coro_X.c
# includes that layer's test_X.c or conformance header in that mode. One process per
# suite, on own stacks and again on shared stacks (where every wait's park memory is on
# the heap; each blocking side is its loop's only task, so its frames are never copied
# out, and the copy-out cases are test_shared_stacks.c's).
math(EXPR _twin_timeout "300 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
foreach(_twin queue/coro_fifo thread/coro_lock thread/coro_rlock thread/coro_sem
              thread/coro_cond thread/coro_event thread/coro_barrier future/coro_future
              future/coro_wait future/coro_as_completed)
  get_filename_component(_layer ${_twin} DIRECTORY)
  get_filename_component(_name ${_twin} NAME)
  string(REGEX REPLACE "^coro_" "" _unit ${_name})
  set(_exe test_${_layer}_${_unit}_coro)
  add_executable(${_exe} ${CMAKE_CURRENT_SOURCE_DIR}/${_twin}.c)
  target_link_libraries(${_exe} PRIVATE braid_testlib)
  target_include_directories(${_exe} PRIVATE ${PROJECT_SOURCE_DIR}/src
                                             ${CMAKE_CURRENT_SOURCE_DIR}/${_layer})
  braid_warnings(${_exe})
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
               ${CMAKE_CURRENT_SOURCE_DIR}/${_twin}.c)
  set(_modes own shared)
  if(_layer STREQUAL "queue") # its stress cases are long: once, on shared stacks
    set(_modes shared)
  endif()
  foreach(_mode ${_modes})
    set(_t aio.coroutine_waiters.${_layer}_${_unit}.${_mode}_stacks)
    add_test(NAME ${_t} COMMAND ${_exe})
    set(_env "BRAID_TEST_NAME=${_t}")
    if(_mode STREQUAL "shared")
      set(_env "BRAID_TEST_SHARED_STACKS=1;${_env}")
    endif()
    set_tests_properties(${_t} PROPERTIES TIMEOUT ${_twin_timeout} LABELS aio
                                          ENVIRONMENT "${_env}")
  endforeach()
endforeach()

# Hand-offs (src/aio/loop.c, "Hand-offs") exist only without ASan and TSan, whose fiber
# hooks pair every switch with its resumer, so the sanitizer runs never take that path.
# In a plain build the loop and waiter suites run again under Valgrind's memcheck (a
# second or two each), which knows the coroutines' stacks (they are registered): the
# memory checker that does see the hand-offs. Valgrind is in scripts/deps.sh. It runs
# one thread at a time, and its default lock lets a thread that never makes a syscall
# (a loop whose tasks only yield) take it back at once, for seconds: the thread posting
# a threadsafe callback then starved until the hang guard in 2 runs of 8. Fair
# scheduling (--fair-sched=yes) hands the lock round in turn.
find_program(BRAID_VALGRIND valgrind)
if(BRAID_VALGRIND AND NOT BRAID_SANITIZE)
  math(EXPR _vg_timeout "300 * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
  foreach(_suite loop waiters)
    add_test(NAME aio.memcheck.${_suite}
             COMMAND ${BRAID_VALGRIND} -q --fair-sched=yes --error-exitcode=99
                     $<TARGET_FILE:test_aio_${_suite}>)
    set_tests_properties(aio.memcheck.${_suite} PROPERTIES TIMEOUT ${_vg_timeout} LABELS aio
      ENVIRONMENT "BRAID_TEST_NAME=aio.memcheck.${_suite}")
  endforeach()
elseif(NOT BRAID_SANITIZE)
  message(STATUS "No valgrind: the aio.memcheck tests are skipped")
endif()
