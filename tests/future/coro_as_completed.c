/* test_as_completed.c's table with every thread it starts a coroutine on a loop of its own
 * thread instead (coro_host.h): futures waited on and completed from coroutines, mixed
 * with the test's own thread.
 *
 * braid-test-timeout: 120
 */
#include <pthread.h>

#include "coro_host.h"
#define pthread_create conf_coro_pthread_create
#include "test_as_completed.c"
