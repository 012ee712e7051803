/* braid/mp_queue.h: multiprocessing's Queue, JoinableQueue, SimpleQueue and Pipe, for C.
 *
 *   multiprocessing.Queue(maxsize)     br_mp_queue_new(&q, &(br_mp_queue_opts){.maxsize = n})
 *   multiprocessing.JoinableQueue()    .kind = BR_MP_JOINABLE
 *   multiprocessing.SimpleQueue()      .kind = BR_MP_SIMPLE
 *   q.put(obj, timeout=t)              br_mp_queue_put(q, data, len, br_deadline_after_s(t))
 *   q.put_nowait(obj)                  br_mp_queue_put(q, data, len, BR_NOWAIT) -> BR_ETIMEDOUT if full
 *   q.get()                            br_mp_queue_get(q, &data, &len, BR_FOREVER) (free(data))
 *                                      br_mp_queue_get_into(q, buf, cap, &len, deadline)
 *   q.get_nowait()                     ... BR_NOWAIT -> BR_ETIMEDOUT if empty
 *   q.task_done(), q.join()            br_mp_queue_task_done(q), br_mp_queue_join(q, deadline)
 *   q.qsize(), empty(), full()         br_mp_queue_qsize(q), _empty, _full
 *   q.close()                          br_mp_queue_close(q) (this handle only)
 *   (queue.Queue.shutdown, 3.13)       br_mp_queue_shutdown(q, immediate) (every process)
 *   a, b = Pipe(duplex=True)           br_pipe_new(&a, &b, true)
 *   r, w = Pipe(duplex=False)          br_pipe_new(&r, &w, false): r receives, w sends
 *   c.send_bytes(b)                    br_pipe_send(c, data, len, BR_FOREVER)
 *   c.recv_bytes()                     br_pipe_recv(c, &data, &len, BR_FOREVER) (free(data))
 *   c.recv_bytes_into(buf)             br_pipe_recv_into(c, buf, cap, &len, deadline)
 *   c.poll(timeout)                    br_pipe_poll(c, deadline)
 *   c.close()                          br_pipe_close(c)
 *   c.fileno()                         br_pipe_fileno(c)
 *
 * Messages are bytes (pointer + length, any length from 0 up). A put or send copies
 * them into shared memory; a get or recv copies them out. Nothing is pickled: the bytes
 * are whatever the caller chose to send.
 *
 * Sharing with child processes. A queue or pipe made before fork() works in the child
 * as it is: the child inherits the handle, the shared mapping and the descriptors.
 * A child started with exec (the spawn start method) needs descriptors passed to it
 * (inherited without close-on-exec, or sent over a socket) and rebuilds its handle with
 * br_mp_queue_attach or br_pipe_import: list the descriptors in br_process_opts.fds
 * and the start method passes them, at the same numbers.
 *
 * Deaths. No call waits forever for a process that died: a queue's lock held by a dead
 * process is taken over by the next caller, a pipe's peer that died gives BR_EOF (recv)
 * or BR_EPIPE (send). What a death mid-operation can cost is documented at
 * br_mp_queue_lost and in docs/multiprocessing.md ("Queues and pipes"). No call raises SIGPIPE.
 *
 * Threads: every function may be called from any thread of any process holding the
 * handle; blocking calls block the calling thread (these waits are between processes,
 * so they never suspend a coroutine and never return BR_ECANCELED).
 */
#ifndef BRAID_MP_QUEUE_H
#define BRAID_MP_QUEUE_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- Queue, JoinableQueue, SimpleQueue ----------------------------------------- */

typedef struct br_mp_queue br_mp_queue;

typedef enum br_mp_queue_kind {
    BR_MP_QUEUE = 0,  /* multiprocessing.Queue: task_done and join are BR_ENOTSUP */
    BR_MP_JOINABLE,   /* multiprocessing.JoinableQueue */
    BR_MP_SIMPLE      /* multiprocessing.SimpleQueue: unbounded, no task_done/join */
} br_mp_queue_kind;

typedef struct br_mp_queue_opts {
    br_mp_queue_kind kind;
    /* Python's maxsize: 0 is unbounded; put waits while the queue holds maxsize
     * messages. Must be 0 for BR_MP_SIMPLE. Independently of it, the queue's bytes in
     * flight are bounded by the ring (ring_bytes): a put also waits for room there. */
    size_t maxsize;
    /* Size of the shared ring that carries the bytes: 0 means 256 KiB; otherwise
     * rounded up to a power of two, 4 KiB to 64 MiB (BR_EINVAL beyond). A message
     * whose record takes at most half the ring travels whole; a larger one streams
     * through the ring in fragments of a quarter of it (see br_mp_queue_put). */
    size_t ring_bytes;
    /* More fields may be added at any time; zero always keeps the default. */
} br_mp_queue_opts;

/* Creates a queue (NULL opts: an unbounded Queue with a 256 KiB ring) in anonymous
 * shared memory that frees itself with the last process using it. 0, BR_EINVAL (bad
 * kind, maxsize on a SimpleQueue, ring_bytes out of range), BR_ENOMEM, BR_EMFILE. */
BR_API int br_mp_queue_new(br_mp_queue **out, const br_mp_queue_opts *opts);
/* Frees this process's handle: unmaps the ring and closes its descriptor. Other
 * processes' handles stay valid; the memory goes with the last one. Messages still
 * queued stay for the other processes. The caller must be the last user of q in this
 * process (no call in progress in another thread). 0 or BR_EINVAL (q NULL). */
BR_API int br_mp_queue_free(br_mp_queue *q);

/* Appends a copy of data[0..len) (data may be NULL when len is 0). Waits until the
 * deadline while the queue holds maxsize messages or the ring lacks room. A message
 * larger than half the ring streams through it: the put then returns once a consumer
 * has taken all but the last fragments, and if its deadline passes mid-message the
 * message is withdrawn (consumers drop what they had of it) and put returns
 * BR_ETIMEDOUT: either the whole message is delivered once, or none of it.
 * 0, BR_ETIMEDOUT (full; under BR_NOWAIT, "would block"), BR_ESHUTDOWN, BR_ESTATE
 * (this handle was closed), BR_EINVAL. The caller keeps data. */
BR_API int br_mp_queue_put(br_mp_queue *q, const void *data, size_t len, int64_t deadline);

/* Removes the next message and returns it in *data (malloc'ed; the caller frees it with
 * free(); NULL when *len is 0), its length in *len. Waits until the deadline while the
 * queue is empty. Once a get has begun to receive a message that streams (larger than
 * half the ring), it waits for the rest as long as its producer is alive and busy with
 * it, whatever the deadline (the producer's own deadline bounds that); a message its
 * producer withdrew or died in the middle of is dropped and the get goes on waiting.
 * 0, BR_ETIMEDOUT (empty), BR_ESHUTDOWN (shut down and empty, or shut down
 * immediately), BR_ENOMEM (the message stays queued), BR_ESTATE (closed handle),
 * BR_EINVAL. */
BR_API int br_mp_queue_get(br_mp_queue *q, void **data, size_t *len, int64_t deadline);
/* The same into the caller's buf[0..cap). If the next message is longer than cap,
 * nothing is removed: returns BR_ERANGE with the message's length in *len (get again
 * with a buffer that big). */
BR_API int br_mp_queue_get_into(br_mp_queue *q, void *buf, size_t cap, size_t *len,
                                int64_t deadline);

/* Approximate, as in Python: another process may change them right after. */
BR_API size_t br_mp_queue_qsize(br_mp_queue *q);
BR_API bool br_mp_queue_empty(br_mp_queue *q);
BR_API bool br_mp_queue_full(br_mp_queue *q);
BR_API size_t br_mp_queue_maxsize(const br_mp_queue *q);

/* JoinableQueue only (BR_ENOTSUP for the other kinds). task_done marks one message as
 * processed: BR_EOVERFLOW when called more times than messages were put (Python's
 * ValueError). join waits until every message put has been marked done (or drained by
 * an immediate shutdown): 0 or BR_ETIMEDOUT. */
BR_API int br_mp_queue_task_done(br_mp_queue *q);
BR_API int br_mp_queue_join(br_mp_queue *q, int64_t deadline);

/* Python's Queue.close(): this handle will neither put nor get any more (BR_ESTATE
 * from then on); the other processes' handles and the messages are untouched. Free the
 * handle with br_mp_queue_free. 0 or BR_EINVAL. */
BR_API int br_mp_queue_close(br_mp_queue *q);
/* Shuts the queue down for every process, as Python 3.13's queue.Queue.shutdown: put
 * fails with BR_ESHUTDOWN, blocked putters wake with it; get drains what is queued,
 * then returns BR_ESHUTDOWN. immediate: the queued messages are dropped at once (each
 * counts as task_done) and get returns BR_ESHUTDOWN at once. Calling it again may
 * upgrade to immediate. 0 or BR_EINVAL. */
BR_API int br_mp_queue_shutdown(br_mp_queue *q, bool immediate);
BR_API bool br_mp_queue_is_shutdown(br_mp_queue *q);

/* Messages lost to deaths: a message whose put had completed but that a consumer dying
 * in the middle of receiving it took with it (the next consumer drops its remaining
 * fragments). A producer dying mid-put loses only its own message, which never counted
 * as put, and is not counted here. */
BR_API uint64_t br_mp_queue_lost(br_mp_queue *q);

/* For a spawned child: the queue's shared-memory descriptor (close-on-exec: clear
 * FD_CLOEXEC on it, or dup it, for the child to inherit it; -1 on a NULL q). The child
 * maps the same queue with br_mp_queue_attach(&q, fd) (which takes its own duplicate:
 * the caller keeps fd). 0, BR_EINVAL (not a braid queue), BR_ENOMEM. */
BR_API int br_mp_queue_fd(const br_mp_queue *q);
BR_API int br_mp_queue_attach(br_mp_queue **out, int fd);

/* --- Pipe --------------------------------------------------------------------- */

typedef struct br_pipe br_pipe;

/* Makes a pipe's two ends, Python's Pipe(duplex): duplex, both ends send and receive;
 * one-way, *a only receives and *b only sends (Python's r, w = Pipe(False)). The
 * messages travel through shared-memory rings (one per direction); each end also
 * holds one socket per direction, the doorbell that wakes a sleeping peer and that the
 * kernel closes when its process dies (so a survivor learns of the death). After
 * fork(), each process closes the end it doesn't use (as with Python's Pipe and with
 * any pipe): an end stays open while any process holds it. 0, BR_EINVAL, BR_ENOMEM,
 * BR_EMFILE. */
BR_API int br_pipe_new(br_pipe **a, br_pipe **b, bool duplex);

/* Sends a copy of data[0..len) as one message, waiting until the deadline for room.
 * Messages larger than half the ring (128 KiB) stream through it, as br_mp_queue_put.
 * 0, BR_EPIPE (the other end was closed by every process that had it, or its
 * processes died: detected at once for a close, and for a death as soon as the
 * receiver is found asleep or the ring full; a message sent just before a death is
 * detected is lost, as bytes written to a socket whose reader dies are),
 * BR_ETIMEDOUT, BR_EPERM (this end can't send: one-way pipe), BR_ESTATE (closed
 * handle), BR_EINVAL. Never raises SIGPIPE. The caller keeps data. */
BR_API int br_pipe_send(br_pipe *p, const void *data, size_t len, int64_t deadline);
/* Receives the next message, as br_mp_queue_get (the caller frees *data with free()).
 * BR_EOF once the other end is closed or dead and every message it sent was received.
 * 0, BR_EOF, BR_ETIMEDOUT, BR_ENOMEM, BR_EPERM (this end can't receive), BR_ESTATE,
 * BR_EINVAL. */
BR_API int br_pipe_recv(br_pipe *p, void **data, size_t *len, int64_t deadline);
/* Into buf[0..cap); a longer message stays: BR_ERANGE, its length in *len. */
BR_API int br_pipe_recv_into(br_pipe *p, void *buf, size_t cap, size_t *len,
                             int64_t deadline);
/* Waits until a recv would not block: 0 when a message is there or the other end is
 * gone (recv then answers BR_EOF), BR_ETIMEDOUT otherwise. BR_EPERM (a send-only end),
 * BR_ESTATE, BR_EINVAL. */
BR_API int br_pipe_poll(br_pipe *p, int64_t deadline);
/* Closes this process's handle and frees it. When no process holds the end any more,
 * the peer's recv answers BR_EOF once it has read everything and its send BR_EPIPE.
 * 0 or BR_EINVAL (p NULL). */
BR_API int br_pipe_close(br_pipe *p);
/* The descriptor that becomes readable when a recv may have something (a message, or
 * the peer gone), for an event loop; -1 for a send-only end. The pipe owns it. The
 * doorbell is rung only when the receiver declared it sleeps, so a loop should try
 * br_pipe_recv(p, ..., BR_NOWAIT) until BR_ETIMEDOUT before waiting on it. */
BR_API int br_pipe_fileno(const br_pipe *p);

/* For a spawned child: the descriptors that make an end (all close-on-exec in this
 * process; clear FD_CLOEXEC or dup them for the child), and the end's place. */
typedef struct br_pipe_fds {
    int shm;   /* the shared rings */
    int rx;    /* receive doorbell socket, -1 if the end doesn't receive */
    int tx;    /* send doorbell socket, -1 if the end doesn't send */
    int side;  /* 0: the end made as *a, 1: as *b */
} br_pipe_fds;
/* Fills *out with p's descriptors (still owned by p). 0 or BR_EINVAL. */
BR_API int br_pipe_export(const br_pipe *p, br_pipe_fds *out);
/* Makes an end from descriptors received from the exporting process; takes duplicates
 * (the caller keeps and closes its own). The end counts as held by one more process
 * until br_pipe_close; the exporting process keeps its own handle until the import is
 * done (closed first, the end could be counted as closed by everyone in between).
 * 0, BR_EINVAL, BR_ENOMEM, BR_EMFILE. */
BR_API int br_pipe_import(br_pipe **out, const br_pipe_fds *fds);

#ifdef __cplusplus
}
#endif
#endif
