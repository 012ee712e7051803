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
