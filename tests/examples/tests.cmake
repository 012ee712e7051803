# The tutorial examples (examples/*.c) and the braid program, run and checked.
#
# Each test runs one program under run_example.cmake, which requires exit status 0 and
# then calls check_<name> from checks.cmake to parse the output and assert exactly what
# the program guarantees. Tests are named example.<check> and apps.braid.<check>
# (`ctest -R example`, `ctest -R apps`). An example is registered only if its source is
# there, so a layer's examples arrive with the layer.
#
# ThreadSanitizer: the intentionally racy demonstrations (counter_unlocked,
# account_unlocked, and counter_work's unlocked half) run under TSan like everything
# else. Their "unlocked" updates are relaxed atomic loads and stores: updates are still
# lost, but there is no C data race (which C11 makes undefined behaviour), so there is
# nothing for TSan to report and nothing to skip.

set(BRAID_EXAMPLE_RUNNER ${CMAKE_CURRENT_LIST_DIR}/run_example.cmake)
set(BRAID_EXAMPLE_SOURCES ${PROJECT_SOURCE_DIR}/examples)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             ${CMAKE_CURRENT_LIST_DIR}/run_example.cmake ${CMAKE_CURRENT_LIST_DIR}/checks.cmake)

# braid_checked_run(<test name> <check> <target> <timeout s> [EXIT <status>] [args...])
function(braid_checked_run name check target timeout)
  set(rc 0)
  set(argv ${ARGN})
  if(ARGC GREATER 5 AND ARGV4 STREQUAL "EXIT")
    set(rc ${ARGV5})
    list(REMOVE_AT argv 0 1)
  endif()
  math(EXPR t "${timeout} * ${BRAID_TEST_TIMEOUT_MULTIPLIER}")
  math(EXPR guard "${t} + 15")
  string(REPLACE ";" "," args "${argv}")
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -DEXE=$<TARGET_FILE:${target}> "-DARGS=${args}"
                   -DCHECK=${check} -DTIMEOUT=${t} -DEXPECT_RC=${rc}
                   -DMULT=${BRAID_TEST_TIMEOUT_MULTIPLIER}
                   -P ${BRAID_EXAMPLE_RUNNER})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${guard} LABELS examples)
endfunction()

# braid_example_test(<check> <example> [args...])
function(braid_example_test check example)
  if(BRAID_BUILD_EXAMPLES AND EXISTS ${BRAID_EXAMPLE_SOURCES}/${example}.c)
    braid_checked_run(example.${check} ${check} example_${example} 60 ${ARGN})
  endif()
endfunction()

# threading
braid_example_test(counter_unlocked counter_unlocked)
braid_example_test(counter_lock counter_lock)
braid_example_test(counter_rlock counter_rlock)
braid_example_test(counter_work counter_work)
braid_example_test(account_unlocked account_unlocked)
braid_example_test(account_lock account_lock)
braid_example_test(lock_styles lock_styles)
braid_example_test(lock_print_time lock_print_time)
braid_example_test(cond_poem cond_poem)
braid_example_test(sem_downloads sem_downloads)
braid_example_test(thread_args thread_args)
braid_example_test(thread_target thread_target)
braid_example_test(thread_subclass thread_subclass)
braid_example_test(thread_names thread_names)
braid_example_test(eat_drink_plain eat_drink)
braid_example_test(eat_drink_daemon eat_drink daemon)
braid_example_test(eat_drink_join eat_drink join)
braid_example_test(eat_drink_mixed eat_drink mixed)
braid_example_test(crawl_threads crawl_threads)
braid_example_test(crawl_threads_004 crawl_threads 004)
braid_example_test(shared_list shared_list)

# queue
braid_example_test(pc_crawl pc_crawl)
braid_example_test(pc_crawl_3parsers pc_crawl 3)
braid_example_test(queue_join queue_join)
braid_example_test(prio_workers prio_workers)

# thread pool
braid_example_test(pool_done pool_done)
braid_example_test(pool_as_completed pool_as_completed)
braid_example_test(pool_map pool_map)
braid_example_test(pool_wait_first pool_wait_first)
braid_example_test(pool_fib pool_fib)
braid_example_test(pool_sleep pool_sleep)
braid_example_test(pool_get_data pool_get_data)
braid_example_test(pool_future_print pool_future_print)
braid_example_test(web_fanout web_fanout)
braid_example_test(primes_map primes_map)
braid_example_test(pool_crawl pool_crawl)
braid_example_test(spider_pool spider_pool)
braid_example_test(cheatsheet_threads cheatsheet_threads)

# The braid program: `braid compare --quick`, as a table and as JSON; `braid --help`.
if(BRAID_BUILD_APPS AND EXISTS ${PROJECT_SOURCE_DIR}/apps/braid/compare.c)
  braid_checked_run(apps.braid.help help braid_cli 30 --help)
  braid_checked_run(apps.braid.unknown_command unknown_command braid_cli 30 EXIT 2 frobnicate)
  # Under a sanitizer one round (the crawl's six models take ~2.5 s a round each there):
  # the checks are the same, and the plain build checks the default of 3.
  # The JSON run there is W1 and W2 alone (--only cpu): the IO and crawl rows are printed
  # by the same code, and compare_quick checks all of them under every tree.
  set(cmp_rounds "")
  set(cmp_json_parts "")
  if(BRAID_SANITIZE)
    set(cmp_rounds --rounds 1)
    set(cmp_json_parts --only cpu)
  endif()
  braid_checked_run(apps.braid.compare_quick compare_quick braid_cli 120 compare --quick
                    ${cmp_rounds})
  braid_checked_run(apps.braid.compare_quick_json compare_quick_json braid_cli 120
                    compare --quick --json ${cmp_rounds} ${cmp_json_parts})
endif()

# subprocess
braid_example_test(subprocess_capture subprocess_capture)
braid_example_test(subprocess_fail subprocess_fail)
# the process pool
braid_example_test(mp_apply_async mp_apply_async)
braid_example_test(mp_imap mp_imap)
braid_example_test(ppe_primes ppe_primes)

# processes
braid_example_test(process_args process_args)
braid_example_test(process_args_spawn process_args spawn)
braid_example_test(process_global process_global)
braid_example_test(os_fork os_fork)
braid_example_test(process_daemon process_daemon)
braid_example_test(process_daemon_crash process_daemon crash)
braid_example_test(cpu_pids cpu_pids)
# queues, pipes and shared state between processes
braid_example_test(mp_queue mp_queue)
braid_example_test(mp_pipe mp_pipe)
braid_example_test(mp_manager mp_manager)
braid_example_test(mp_pool_apply mp_pool_apply)
# asyncio
braid_example_test(aio_hello aio_hello)
braid_example_test(aio_work aio_work)
braid_example_test(aio_create_task aio_create_task)
braid_example_test(aio_gather_wait aio_gather_wait)
braid_example_test(aio_await aio_await)
braid_example_test(aio_sem aio_sem)
braid_example_test(aio_queue_lock aio_queue_lock)
