/* braid: Python's concurrency toolkit for C.
 *
 * One header for everything; each layer also has its own under braid/.
 *   braid/core.h      errors, deadlines, br_cpu_count
 *   braid/thread.h    threading: threads, Lock, RLock, Condition, Semaphore, Event, Barrier
 *   braid/queue.h     queue: FIFO, LIFO, priority and simple queues
 *   braid/future.h    concurrent.futures.Future, wait, as_completed
 *   braid/task.h      what a task function sees
 *   braid/executor.h  Executor and the thread pool
 *   braid/process.h   multiprocessing.Process, start methods, the spawn entry point
 *   braid/processpool.h ProcessPoolExecutor and multiprocessing.Pool
 *   braid/mp_sync.h   process-shared Lock, RLock, Condition, Semaphore, Event, Barrier
 *   braid/mp_queue.h  multiprocessing Queue, JoinableQueue, SimpleQueue, Pipe
 *   braid/mp_shared.h shared dict, list, Value, Array, SharedMemory (no server process)
 *   braid/subprocess.h subprocess.run and Popen
 *   braid/aio.h       asyncio: the event loop, coroutine tasks, gather/wait_for/TaskGroup
 *   braid/stream.h    asyncio streams: TCP and Unix connections, servers
 *   braid/pipeline.h  stages joined by bounded queues, on threads, coroutines or processes
 * Not included here: braid/executor_impl.h, the extension API for writing executors.
 */
#ifndef BRAID_H
#define BRAID_H

#include "braid/core.h"
#include "braid/thread.h"
#include "braid/queue.h"
#include "braid/future.h"
#include "braid/task.h"
#include "braid/executor.h"
#include "braid/process.h"
#include "braid/processpool.h"
#include "braid/mp_sync.h"
#include "braid/mp_queue.h"
#include "braid/mp_shared.h"
#include "braid/subprocess.h"
#include "braid/aio.h"
#include "braid/stream.h"
#include "braid/pipeline.h"

#endif
