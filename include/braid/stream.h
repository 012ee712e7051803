/* braid/stream.h: asyncio's streams for C. TCP and Unix-domain connections as
 * buffered streams, listeners, and servers that run one coroutine per connection.
 *
 *   r, w = await asyncio.open_connection(h, p)   br_open_connection(h, p, deadline, &s)
 *   r, w = await asyncio.open_unix_connection(p) br_open_unix_connection(p, deadline, &s)
 *   await r.read(n)                              br_stream_read(s, buf, n, deadline, &got)
 *   await r.readline()                           br_stream_readline(s, buf, cap, deadline, &got)
 *   await r.readexactly(n)                       br_stream_readexactly(s, buf, n, deadline, &got)
 *   await r.readuntil(sep) (limit)               br_stream_readuntil(s, sep, seplen, buf, cap, ...)
 *   r.at_eof()                                   br_stream_at_eof(s)
 *   w.write(data)                                br_stream_write(s, data, len)
 *   await w.drain()                              br_stream_drain(s, deadline)
 *   w.write_eof()                                br_stream_write_eof(s, deadline)
 *   w.close(); await w.wait_closed()             br_stream_close(s) (immediate), br_stream_free(s)
 *   w.get_extra_info('sockname'/'peername')      br_stream_sockname / br_stream_peername
 *   await asyncio.start_server(cb, h, p)         br_start_server(loop, h, p, handler, arg, &srv)
 *   await asyncio.start_unix_server(cb, path)    br_start_unix_server(loop, path, handler, arg, &srv)
 *   server.close(); await server.wait_closed()   br_server_close(srv); br_server_wait(srv, deadline)
 *   socket.listen() + await loop.sock_accept()   br_listen_tcp / br_listen_unix, br_listener_accept
 *   create_subprocess_exec(..., stdout=PIPE)     br_popen_start + br_popen_stream(p, 1, &s)
 *
 * One reader and one writer struct in asyncio are one br_stream here: a connected,
 * non-blocking, close-on-exec socket with a read buffer and a write buffer.
 *
 * Where the calls wait. Every call that can wait takes an absolute deadline
 * (BR_FOREVER, BR_NOWAIT, br_deadline_after...) and waits in one place, the aio
 * layer's descriptor wait: called from a coroutine on a loop it suspends only that
 * coroutine (the loop runs the others); called from a plain thread it blocks the
 * thread in poll(). So the same stream code serves threads and coroutines, and a
 * stream may be handed from one to the other between calls.
 *
 * Errors are codes, never signals: writing to a peer that has gone returns BR_EPIPE
 * or BR_ECONNRESET (sends use MSG_NOSIGNAL; no SIGPIPE). A reset seen by a read is
 * BR_ECONNRESET. BR_EOF is the end of the stream (the peer's write side closed).
 * A deadline that passes gives BR_ETIMEDOUT; a cancelled coroutine gets BR_ECANCELED.
 * After BR_ETIMEDOUT or BR_ECANCELED the stream stays usable and nothing is lost: the
 * read calls report what they consumed in *got (the bytes are in buf), readuntil and
 * readline consume nothing unless they return 0 or BR_EOF, and unsent writes stay
 * buffered for the next drain.
 *
 * Closing: br_stream_close closes the socket at once (unflushed writes are dropped:
 * drain first); every later call on the stream returns BR_EBADF until br_stream_free
 * releases it. br_stream_free closes too, so close is needed only to end the
 * connection while the handle is still shared.
 *
 * Thread-safety: a stream has no lock. Across threads it is used by one thread at a
 * time. On one loop, one coroutine may read while another writes (the reading and the
 * writing halves share no state, and the loop runs one coroutine at a time); a second
 * coroutine waiting in the same direction on one stream gets BR_EBUSY. Listeners
 * likewise, except br_server_close, which may be called from any thread.
 *
 * Addresses: host names are resolved with getaddrinfo on a helper thread (numeric
 * addresses without one), so a coroutine never blocks its loop on DNS. A name that
 * doesn't resolve is BR_ENOENT ("no such host"); a temporary resolver failure is
 * BR_EAGAIN.
 */
#ifndef BRAID_STREAM_H
#define BRAID_STREAM_H

#include "braid/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_stream br_stream;
typedef struct br_listener br_listener;
typedef struct br_server br_server;

/* --- connecting -------------------------------------------------------------------- */

/* Connects to host:port over TCP (IPv4 or IPv6: each address getaddrinfo gives is
 * tried in turn until one connects or the deadline passes). TCP_NODELAY is set, as
 * asyncio does. On success *out is a new stream that the caller owns (free it with
 * br_stream_free). Returns 0, BR_EINVAL (host or out NULL, port outside 0..65535),
 * BR_ENOENT (no such host), BR_EAGAIN (the resolver failed for now),
 * BR_ECONNREFUSED, BR_ETIMEDOUT, BR_ECANCELED, BR_ENOMEM, BR_EMFILE, or another
 * -errno of the last address tried (BR_EHOSTUNREACH, BR_ENETUNREACH...). */
BR_API int br_open_connection(const char *host, int port, int64_t deadline,
                              br_stream **out);
/* Connects to the Unix-domain stream socket at path. As br_open_connection, and
 * BR_ENOENT (no socket at path), BR_ENAMETOOLONG (path longer than sun_path). */
BR_API int br_open_unix_connection(const char *path, int64_t deadline, br_stream **out);
/* Makes a stream of a descriptor the caller already has (a connected socket, one end
 * of a socketpair, a pipe): it is made non-blocking and close-on-exec, and the
 * stream owns it from now on (closed by br_stream_close/free; on error it is left
 * open, the caller's). 0, BR_EINVAL (fd < 0, out NULL), BR_ENOMEM. */
BR_API int br_stream_from_fd(int fd, br_stream **out);

struct br_popen;
/* asyncio's create_subprocess_exec(stdin=PIPE, stdout=PIPE...): start the child with
 * br_popen_start (braid/subprocess.h) and its pipes set to BR_STDIO_PIPE, then take
 * each pipe (which: 0 stdin, 1 stdout, 2 stderr) as a stream: it moves from p to the
 * new stream, the caller's to free (br_popen_fd then gives -1). write_eof on the
 * stdin stream closes it (the child's end of input). Wait for the child with
 * br_popen_wait or its future, which suspend a coroutine like any wait. 0,
 * BR_EBADF (that stream isn't a pipe, or was taken or closed), BR_EINVAL,
 * BR_ENOMEM, BR_EMFILE. */
BR_API int br_popen_stream(struct br_popen *p, int which, br_stream **out);

/* --- reading ------------------------------------------------------------------------ */

/* Reads up to n bytes (asyncio's read(n)): what is buffered, or else waits for the
 * next data. 0 with *got >= 1 (*got 0 only when n is 0); BR_EOF with *got 0 at the
 * end of the stream; BR_ETIMEDOUT, BR_ECANCELED, BR_ECONNRESET, BR_EBADF (closed),
 * BR_EINVAL (s, got NULL, or buf NULL with n > 0). */
BR_API int br_stream_read(br_stream *s, void *buf, size_t n, int64_t deadline,
                          size_t *got);
/* Reads exactly n bytes. 0 (*got == n); BR_EOF when the stream ended first: *got is
 * the partial count, those bytes are in buf (asyncio's IncompleteReadError.partial);
 * BR_ETIMEDOUT/BR_ECANCELED: *got bytes were read into buf and consumed. Else as
 * br_stream_read. */
BR_API int br_stream_readexactly(br_stream *s, void *buf, size_t n, int64_t deadline,
                                 size_t *got);
/* Reads up to and including the separator sep[0..seplen) into buf (cap bytes: the
 * limit; the separator must end within it). 0: *got bytes, the last seplen of them
 * the separator. BR_ERANGE: the limit would be exceeded (the separator isn't within
 * the first cap bytes): nothing is consumed, the data stays buffered (read it with
 * br_stream_read, as after asyncio's LimitOverrunError). BR_EOF: the stream ended
 * before a separator: the *got bytes left (possibly 0) are consumed into buf.
 * BR_ETIMEDOUT / BR_ECANCELED: nothing consumed (*got 0). BR_EINVAL: seplen 0, cap 0
 * or a NULL pointer. Else as br_stream_read. */
BR_API int br_stream_readuntil(br_stream *s, const void *sep, size_t seplen, void *buf,
                               size_t cap, int64_t deadline, size_t *got);
/* br_stream_readuntil with the separator "\n". Unlike asyncio's readline, a last line
 * without a newline comes with BR_EOF (so that the end is seen), not 0. */
BR_API int br_stream_readline(br_stream *s, void *buf, size_t cap, int64_t deadline,
                              size_t *got);
/* True once the peer's end has been read and the buffer is empty (asyncio's
 * at_eof). */
BR_API bool br_stream_at_eof(const br_stream *s);

/* --- writing ------------------------------------------------------------------------ */

/* Queues data[0..len) (copied) and sends what the socket takes now; never waits.
 * 0, BR_EPIPE or BR_ECONNRESET (the peer is gone: nothing queued, and every later
 * write and drain returns the same code), BR_EBADF (closed, or write_eof was called),
 * BR_ENOMEM, BR_EINVAL. */
BR_API int br_stream_write(br_stream *s, const void *data, size_t len);
/* Waits until every queued byte is handed to the kernel (stronger than asyncio's
 * drain, which waits for the buffer to fall below a high-water mark). 0, BR_EPIPE,
 * BR_ECONNRESET, BR_ETIMEDOUT, BR_ECANCELED (what is left stays queued), BR_EBADF. */
BR_API int br_stream_drain(br_stream *s, int64_t deadline);
/* Drains, then shuts down the write side (the peer reads BR_EOF); reading goes on.
 * On a stream that isn't a socket (a pipe's write end) it closes the descriptor, as
 * asyncio's pipe transport does. As br_stream_drain. Later writes return BR_EBADF. */
BR_API int br_stream_write_eof(br_stream *s, int64_t deadline);
/* Bytes queued and not yet sent. */
BR_API size_t br_stream_pending(const br_stream *s);

/* --- the end and the details -------------------------------------------------------- */

/* Closes the socket now (unsent data is dropped). Later calls return BR_EBADF. 0 or
 * BR_EINVAL (s NULL); closing twice is 0. */
BR_API int br_stream_close(br_stream *s);
/* Closes (if not yet) and frees the stream. NULL is a no-op. */
BR_API void br_stream_free(br_stream *s);
/* The descriptor (borrowed; -1 once closed). */
BR_API int br_stream_fd(const br_stream *s);
/* The local / remote address as text: "127.0.0.1", "::1", a Unix socket's path ("" for
 * an unnamed one), into host[0..cap) (always NUL-terminated), and the port (0 for Unix
 * sockets) into *port (may be NULL). 0, BR_EBADF, BR_ERANGE (cap too small),
 * BR_EINVAL, or -errno (BR_ENOTCONN for a peer that has gone). */
BR_API int br_stream_sockname(const br_stream *s, char *host, size_t cap, int *port);
BR_API int br_stream_peername(const br_stream *s, char *host, size_t cap, int *port);

/* --- listening ---------------------------------------------------------------------- */

/* A listening TCP socket on host:port (host NULL or "": every IPv4 interface; port 0:
 * a free port, read it with br_listener_port). SO_REUSEADDR is set. backlog 0 means
 * 128. The caller owns *out (br_listener_free). 0, BR_EADDRINUSE, BR_EACCES,
 * BR_ENOENT (no such host), BR_EINVAL, BR_ENOMEM, BR_EMFILE. */
BR_API int br_listen_tcp(const char *host, int port, int backlog, br_listener **out);
/* A listening Unix-domain socket at path; the socket file is removed by
 * br_listener_free. BR_EADDRINUSE if path exists (braid never removes a file it
 * didn't create), BR_ENAMETOOLONG. Else as br_listen_tcp. */
BR_API int br_listen_unix(const char *path, int backlog, br_listener **out);
/* Waits for a connection and returns it as a new stream the caller owns. 0,
 * BR_ETIMEDOUT, BR_ECANCELED, BR_EMFILE/BR_ENFILE (the connection stays queued),
 * BR_EBADF (the listener was closed), BR_ENOMEM, BR_EINVAL. */
BR_API int br_listener_accept(br_listener *l, int64_t deadline, br_stream **out);
/* The port a TCP listener is bound to (0 for a Unix one, -1 when closed). */
BR_API int br_listener_port(const br_listener *l);
/* The descriptor (borrowed; -1 once closed). */
BR_API int br_listener_fd(const br_listener *l);
/* Stops listening (pending connections are refused) and frees. NULL is a no-op. */
BR_API void br_listener_free(br_listener *l);

/* --- servers (coroutines on a loop) ------------------------------------------------- */

struct br_loop;

/* A connection's handler: runs as its own coroutine on the server's loop. It borrows
 * the stream, which the server closes and frees when the handler returns. Its return
 * value is the connection task's code (braid/task.h). */
typedef int (*br_stream_handler)(br_stream *s, void *arg);

/* Listens on host:port (as br_listen_tcp) and runs, on `loop` (NULL: the current
 * loop; BR_EPERM if none), a coroutine that accepts connections and starts
 * handler(stream, arg) as a new task for each. The caller owns *out: close it with
 * br_server_close, then br_server_wait, then br_server_free. The bound port:
 * br_server_port. */
BR_API int br_start_server(struct br_loop *loop, const char *host, int port,
                           br_stream_handler handler, void *arg, br_server **out);
BR_API int br_start_unix_server(struct br_loop *loop, const char *path,
                                br_stream_handler handler, void *arg, br_server **out);
BR_API int br_server_port(const br_server *srv);
/* Stops accepting: the listener closes once the accepting coroutine sees the close
 * (at once if it hasn't started yet); running handlers go on. Any thread. 0,
 * BR_EINVAL; twice is 0. */
BR_API int br_server_close(br_server *srv);
/* Waits until the server is closed and every handler has returned. 0, BR_ETIMEDOUT,
 * BR_ECANCELED, BR_ESTATE (not closed yet), BR_EINVAL. */
BR_API int br_server_wait(br_server *srv, int64_t deadline);
/* Frees a server that br_server_wait has seen finished. BR_EBUSY (nothing freed)
 * before that; BR_EINVAL for NULL. */
BR_API int br_server_free(br_server *srv);

#ifdef __cplusplus
}
#endif

#endif
