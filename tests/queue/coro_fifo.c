/* queue.Queue's conformance suite with every blocking side a coroutine (each on a loop
 * of its own thread, coro_host.h): the same calls, values, orderings and cancellations
 * as test_fifo.c, parked through the coroutine parker and woken from threads and other
 * loops. Run a second time on shared stacks (tests/queue/tests.cmake).
 *
 * braid-test-timeout: 120
 */
#define QKIND BR_QUEUE_FIFO
#define CONF_CORO 1
#include "conformance_queue.h"

BR_TEST_MAIN(CONFORMANCE_TESTS)
