/* test_event.c's table with every spawned side a coroutine on a loop of its own thread
 * (CONF_CORO, thread_util.h): the same calls and checks, blocking through the coroutine
 * parker and woken from threads and other loops.
 *
 * braid-test-timeout: 120
 */
#define CONF_CORO 1
#include "test_event.c"
