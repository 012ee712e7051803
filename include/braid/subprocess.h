/* braid/subprocess.h: Python's `subprocess`, for C.
 *
 *   subprocess.run(args, input=, capture_output=,      br_run(argv, &opts, &result)
 *                  check=, timeout=, env=, cwd=,
 *                  shell=, stdin=, stdout=, stderr=)
 *   CompletedProcess (returncode, stdout, stderr)      br_completed (+ _destroy)
 *   CalledProcessError                                 BR_EFAILED (result kept)
 *   TimeoutExpired                                     BR_ETIMEDOUT (output so far kept)
 *   PIPE / DEVNULL / None / STDOUT / a file or fd      BR_STDIO_PIPE / _DEVNULL /
 *                                                      _INHERIT / _STDOUT / _FD
 *   p = Popen(args, stdin=PIPE, ...)                   br_popen_start(&p, argv, &opts)
 *   p.stdin / p.stdout / p.stderr                      br_popen_fd(p, 0 / 1 / 2)
 *   p.communicate(input, timeout)                      br_popen_communicate(p, in, n,
 *                                                          deadline, &result)
 *   p.poll(), p.wait(timeout), p.returncode            br_popen_poll, br_popen_wait
 *   p.send_signal / terminate / kill, p.pid            br_popen_send_signal /
 *                                                      _terminate / _kill, br_popen_pid
 *   (no Python counterpart) the end as a future        br_popen_future: br_wait mixes
 *                                                      it with any other future
 *
 * Starting. A child starts with posix_spawn (no fork of the parent's memory), with:
 *   - its program: argv[0], looked up in PATH when it holds no '/' (the child's PATH:
 *     opts.env's when that sets one, else the parent's), as Python does; a missing
 *     program is BR_ENOENT and one that can't be run BR_EACCES, from the start call
 *     itself, never a silently empty result;
 *   - shell = true: /bin/sh -c argv[0], with argv[1..] as the shell's $0, $1, ...
 *     (Python's shell=True with a list); off unless asked;
 *   - only fds 0, 1 and 2, and those opts.pass_fds names: every other descriptor is
 *     closed in the child, the caller's own non-close-on-exec ones included (Python's
 *     close_fds=True);
 *   - an empty signal mask and every signal's disposition at its default, whatever
 *     the parent blocks or ignores (a parent that ignores SIGPIPE doesn't hand that to
 *     `cat`).
 *
 * Waiting. Every child braid starts is reaped by braid's child watcher, never by the
 * caller (don't waitpid it, and don't set SIGCHLD to SIG_IGN: the status would be
 * lost, and its future fails with BR_ECHILD). Waits go through braid's waiter, so a
 * thread blocks and a braid coroutine suspends (communicate and br_run's pipes too:
 * a coroutine's wait for them goes through the child watcher); they take an absolute
 * deadline (braid/core.h). A returncode is Python's: the exit status 0..255, or -N
 * when signal N ended the child.
 *
 * Memory. argv, env, cwd and input are only read during the call that takes them
 * (never kept). Captured output belongs to the br_completed it was handed over in, and
 * br_completed_destroy frees it. Every allocation goes through braid's allocator:
 * BR_ENOMEM when it fails, nothing leaked, no child left behind.
 *
 * Signals. braid blocks SIGPIPE in the calling thread while it writes to a child's
 * stdin (a child that exits without reading its input is not a crash: the rest of the
 * input is dropped, as Python does). The fds br_popen_fd hands out are ordinary pipes:
 * writing to them yourself, handle SIGPIPE yourself.
 */
#ifndef BRAID_SUBPROCESS_H
#define BRAID_SUBPROCESS_H

#include "braid/core.h"
#include "braid/future.h"

#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where one of the child's standard streams goes. Zero (the default) is INHERIT. */
typedef enum br_stdio {
    BR_STDIO_INHERIT = 0, /* None: the parent's own fd */
    BR_STDIO_PIPE = 1,    /* PIPE: captured by br_run, a pipe end for br_popen's caller */
    BR_STDIO_DEVNULL = 2, /* DEVNULL: /dev/null */
    BR_STDIO_STDOUT = 3,  /* STDOUT, for .err only: wherever the child's stdout goes */
    BR_STDIO_FD = 4       /* a file object or fd: the fd in in_fd / out_fd / err_fd
                           * (yours: the child gets a copy, yours stays open). A
                           * pipeline: .in = BR_STDIO_FD, .in_fd = br_popen_fd(p1, 1),
                           * then br_popen_close_fd(p1, 1) */
} br_stdio;

/* Options of br_run and br_popen_start. NULL or all-zero: inherit all three streams,
 * the parent's environment and directory, no shell, no deadline, no check. */
typedef struct br_subprocess_opts {
    br_stdio in, out, err;   /* the child's stdin, stdout, stderr */
    bool capture_output;     /* Python's capture_output=True: out and err become PIPE
                              * (both must be left INHERIT, else BR_EINVAL) */
    /* br_run only (br_popen_start: BR_EINVAL if set; give input to communicate):
     * input: bytes for the child's stdin (input_len of them; a non-NULL input with
     * length 0 is an empty stdin, closed at once). Implies in = PIPE (in must be left
     * INHERIT, else BR_EINVAL). */
    const void *input;
    size_t input_len;
    bool check;              /* a non-zero returncode is BR_EFAILED */
    int64_t deadline;        /* absolute (br_deadline_after_s(timeout)); 0: none */
    /* The child's environment: NULL, the parent's (environ at the call). Else a
     * NULL-terminated array of "NAME=value" strings: the whole environment, or with
     * env_add, entries added to the parent's (replacing a parent's entry of the same
     * NAME). */
    const char *const *env;
    bool env_add;
    const char *cwd;         /* the child's working directory; NULL: the parent's */
    bool shell;              /* run argv[0] with /bin/sh -c */
    int in_fd, out_fd, err_fd; /* for BR_STDIO_FD (read only then; an fd < 0 or not
                                * open is BR_EINVAL) */
    /* Python's pass_fds: these fds of the parent stay open in the child, at the same
     * numbers (pass_fds_len of them; read during the call only). Each must be >= 3
     * (the standard streams are in, out and err) and open, else BR_EINVAL; a
     * close-on-exec one is passed all the same, as Python does. Every other fd >= 3
     * is still closed in the child. */
    const int *pass_fds;
    size_t pass_fds_len;
    /* Python's start_new_session: the child calls setsid() before the exec, so it
     * leads a new session and process group (a terminal's signals for the parent's
     * group don't reach it). BR_ENOTSUP where the C library can't. */
    bool start_new_session;
} br_subprocess_opts;

/* What a finished child left: Python's CompletedProcess. `out` and `err` hold the
 * captured bytes (out_len, err_len of them, followed by a NUL that isn't counted, so
 * text prints as a C string), or are NULL for a stream that wasn't captured (and when
 * stderr went to STDOUT: its bytes are in `out`). Owned by the struct: free with
 * br_completed_destroy. */
typedef struct br_completed {
    int returncode; /* exit status, or -N for signal N */
    pid_t pid;      /* the child's (0 when none was started) */
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
} br_completed;

/* Frees r's captured output and zeroes r (destroying it again is harmless). NULL is
 * ignored. */
BR_API void br_completed_destroy(br_completed *r);

/* Runs argv (NULL-terminated; argv[0] the program, or the shell command) to its end:
 * Python's subprocess.run. Writes opts->input to its stdin, captures what opts asks,
 * waits. *result (required) is always written, and is yours to br_completed_destroy
 * after any return (all zero when the child never started).
 * Returns:
 *   0             the child ran and ended; result->returncode says how (any value
 *                 unless opts->check)
 *   BR_EFAILED    opts->check and a non-zero returncode (CalledProcessError): the
 *                 returncode and everything captured are in *result
 *   BR_ETIMEDOUT  opts->deadline passed: the child was killed (SIGKILL) and reaped;
 *                 *result holds what was captured until then (returncode -9). Output a
 *                 grandchild writes after the kill is not waited for.
 *   BR_ECANCELED  (in a coroutine, which the call suspends) its task was cancelled: the
 *                 child is killed and reaped as at the deadline.
 *   BR_ENOENT     argv[0] (or cwd) doesn't exist, or is not in PATH
 *   BR_EACCES     argv[0] isn't executable (or cwd isn't reachable)
 *   BR_EINVAL     argv or argv[0] or result NULL, a bad br_stdio or combination
 *   BR_ENOMEM, BR_EMFILE, BR_ENFILE, BR_EAGAIN (no process could be made), or the
 *                 negative errno the kernel gave the exec (-ENOEXEC: not a program).
 *                 An error after the start (BR_ENOMEM while capturing) kills and reaps
 *                 the child as a deadline does, and keeps what was captured.
 * When it returns, no child of this call is running, except after BR_ETIMEDOUT, when
 * the child is dead but one of its own children might not be. */
BR_API int br_run(const char *const *argv, const br_subprocess_opts *opts,
                  br_completed *result);

/* --- Popen ------------------------------------------------------------------------ */

/* A handle is used by one thread at a time for communicate, close_fd and free;
 * poll, wait, send_signal, terminate, kill, pid and future may be called from any
 * thread meanwhile (they only read the child's future and pidfd). */
typedef struct br_popen br_popen;

/* Starts argv as a child (Python's Popen(args, ...)) and returns at once. Streams set
 * to PIPE get a pipe whose other end is br_popen_fd's. opts->input, check and
 * deadline belong to br_run and are BR_EINVAL here. *out: the handle, yours to
 * br_popen_free. Errors as br_run's start errors (BR_ENOENT, BR_EACCES, BR_EINVAL,
 * BR_ENOMEM, BR_EMFILE...); on error *out is NULL and no child exists. */
BR_API int br_popen_start(br_popen **out, const char *const *argv,
                          const br_subprocess_opts *opts);

/* The parent's end of the child's stream `which` (0 stdin, 1 stdout, 2 stderr): a
 * blocking, close-on-exec pipe fd owned by p (don't close it: br_popen_close_fd), or
 * -1 if that stream isn't a pipe or was closed. */
BR_API int br_popen_fd(const br_popen *p, int which);
/* Closes p's end of stream `which` (closing stdin is the child's end-of-input). 0, or
 * BR_EINVAL (p NULL, which not 0..2); closing an fd that isn't there is 0. */
BR_API int br_popen_close_fd(br_popen *p, int which);

/* Python's communicate(input, timeout): writes input (len bytes; NULL or 0: none) to
 * the child's stdin and closes it, reads stdout and stderr to their end, all at once
 * (one poll over the three pipes: neither side ever blocks on a full pipe whatever the
 * sizes), then waits for the child's end. On 0, *result (required) gets the returncode
 * and what was read (streams that aren't pipes: NULL), yours to br_completed_destroy;
 * every pipe of p is closed.
 * BR_ETIMEDOUT: the deadline passed first. Nothing is lost, the child keeps running
 * (it isn't killed, as in Python), *result is zeroed: call again (with the same input,
 * of which braid skips what it wrote already) to go on, or kill and call again.
 * BR_ECANCELED (in a coroutine: its task was cancelled): as BR_ETIMEDOUT, nothing lost.
 * BR_EINVAL: p or result NULL, or input given without a stdin pipe; BR_ESTATE: called
 * after it has returned 0 once; BR_ENOMEM; BR_ECHILD (see br_popen_wait). In a
 * coroutine it suspends only the coroutine. */
BR_API int br_popen_communicate(br_popen *p, const void *input, size_t len,
                                int64_t deadline, br_completed *result);

/* Python's poll(): 0 and *returncode once the child has ended, BR_ETIMEDOUT while it
 * runs (the NOWAIT spelling of "would block"); returncode may be NULL. BR_EINVAL (p
 * NULL), BR_ECHILD (somebody else reaped it: waitpid(-1) or SIGCHLD ignored). */
BR_API int br_popen_poll(br_popen *p, int *returncode);
/* Python's wait(timeout): waits for the child's end until deadline. 0 and
 * *returncode (may be NULL), BR_ETIMEDOUT (still running), BR_EINVAL, BR_ECHILD.
 * Doesn't read the pipes: a child that fills one waits for you forever (use
 * communicate). */
BR_API int br_popen_wait(br_popen *p, int64_t deadline, int *returncode);

/* Sends sig to the child, through its pidfd: never to another process, even after
 * the child's pid is reused. A child that has already ended is 0 (nothing to do, as
 * Python). BR_EINVAL (p NULL, bad sig), BR_EPERM. */
BR_API int br_popen_send_signal(br_popen *p, int sig);
/* send_signal(SIGTERM), send_signal(SIGKILL). */
BR_API int br_popen_terminate(br_popen *p);
BR_API int br_popen_kill(br_popen *p);

/* The child's pid (for logs: signal through br_popen_send_signal). 0 if p is NULL. */
BR_API pid_t br_popen_pid(const br_popen *p);
/* The child's end as a future (borrowed: valid until br_popen_free; br_future_retain
 * it to keep it longer). It finishes with the returncode as an int64
 * (br_future_result_i64), so br_wait and br_as_completed mix children with any other
 * futures. NULL if p is NULL. */
BR_API br_future *br_popen_future(const br_popen *p);

/* Closes p's pipes and frees p. A child still running is left running (as Python's
 * Popen leaves it) but never becomes a zombie: braid's watcher reaps it when it ends.
 * Kill and wait first to end it. 0, or BR_EINVAL (p NULL). */
BR_API int br_popen_free(br_popen *p);

#ifdef __cplusplus
}
#endif

#endif
