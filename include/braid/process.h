/* braid/process.h: processes (Python's multiprocessing.Process), start methods, the
 * spawn entry point, and functions that cross into a child.
 *
 * One task, any executor: a process runs a br_task_fn (braid/task.h) on argument bytes,
 * the same function a thread pool or a process pool runs.
 *
 * The spawn entry point. A spawned child re-executes this program's own binary
 * (/proc/self/exe), so main() must divert it before doing anything else, as Python's
 * `if __name__ == "__main__":` guard does:
 *
 *     int main(int argc, char **argv) {
 *         br_process_main(argc, argv);   returns at once in an ordinary run; in a
 *         ...                            spawned child it runs the task and exits
 *     }
 *
 * Functions reach a spawned child as (module, offset) or by a registered name:
 * any function of the program or of a shared library it loaded works; a pointer that is
 * not code in a module (heap, JIT) is refused with BR_EINVAL when the process starts.
 * Names (br_register_fn) must be registered before br_process_main is called (a child
 * registers them on its way to the diversion), or from a constructor.
 */
#ifndef BRAID_PROCESS_H
#define BRAID_PROCESS_H

#include "braid/core.h"
#include "braid/future.h"
#include "braid/task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How a child process starts (Python's start methods).
 *   BR_START_FORK        fork(): the child is a copy of the parent and runs the function
 *                        pointer as is. Fastest. Unsafe when other threads of the parent
 *                        hold locks (malloc's excepted: the C library resets those), so
 *                        braid warns once on stderr when it forks a parent that runs
 *                        other threads (braid's own child watcher doesn't count).
 *   BR_START_SPAWN       fork() + exec of /proc/self/exe: a fresh process that runs main()
 *                        up to br_process_main, which runs the task. Safe with threads;
 *                        needs br_process_main at the top of main and a function that
 *                        can cross (above). The argument bytes are copied.
 *   BR_START_FORKSERVER  a server process, spawned once (at the first forkserver start,
 *                        again if it died), forks each child: a copy of a fresh,
 *                        single-threaded image of the program, cheaper than spawn. As
 *                        spawn: br_process_main and functions that can cross; the child
 *                        gets the server's stdio, cwd and environment (those of the
 *                        parent when the server started), and a daemon child dies with
 *                        the server, which ends when this process does.
 *   BR_START_DEFAULT     br_get_start_method(): BR_START_FORK unless changed with
 *                        br_set_start_method (docs/multiprocessing.md says why). */
typedef enum br_start_method {
    BR_START_DEFAULT = 0,
    BR_START_FORK = 1,
    BR_START_SPAWN = 2,
    BR_START_FORKSERVER = 3
} br_start_method;

/* The spawn entry point: call it first thing in main, with main's arguments. In an
 * ordinary run it notes that the program can divert spawned children and returns 0 at
 * once. In a spawned child (argv[1] is braid's marker) it never returns: it runs the task
 * and exits with 0 (the task succeeded), 1 (it failed: the failure is printed on stderr,
 * or the function could not be resolved), or whatever the task passed to _exit/exit. */
BR_API int br_process_main(int argc, char **argv);

/* The default start method for processes started with BR_START_DEFAULT (Python's
 * multiprocessing.set_start_method). 0, BR_EINVAL (an unknown method or
 * BR_START_DEFAULT). */
BR_API int br_set_start_method(br_start_method method);
/* The current default: BR_START_FORK unless set. */
BR_API br_start_method br_get_start_method(void);
/* "fork", "spawn", "forkserver" or "default"; "?" for anything else. */
BR_API const char *br_start_method_name(br_start_method method);

/* --- functions reached by name -------------------------------------------------- */

enum { BR_FN_NAME_MAX = 64 }; /* bytes, with the NUL */

/* Registers fn under name (copied), so that it crosses into a spawned child (or an MPI
 * rank) by name, whatever binary runs there. A function registered under a name always
 * crosses by its name. Register before br_process_main (a spawned child must register
 * the same names before it diverts). 0, BR_EINVAL (name NULL, empty or longer than
 * BR_FN_NAME_MAX - 1, fn NULL), BR_EEXIST (name taken by another function; the same pair
 * again is 0), BR_ENOMEM. Thread-safe. */
BR_API int br_register_fn(const char *name, br_task_fn fn);
/* The function registered under name into *out. 0, BR_ENOENT, BR_EINVAL. */
BR_API int br_registered_fn(const char *name, br_task_fn *out);

/* --- processes (Python's multiprocessing.Process) -------------------------------- */

typedef struct br_process br_process;

typedef struct br_process_opts {
    /* The process's name, copied (up to 255 bytes). NULL gives Python's "Process-N".
     * The child's kernel name (ps, /proc/<pid>/comm) is its first 15 bytes;
     * br_process_current_name() in the child gives all of it. */
    const char *name;
    /* Python's daemon flag. A daemon child is killed (SIGKILL) by the kernel when the
     * thread that started it ends, even if the parent crashes (PR_SET_PDEATHSIG); so
     * start daemon processes from a thread that lives as long as the process (the main
     * thread). At a normal exit (exit() or a return from main) braid terminates daemon
     * children (SIGTERM) and then waits for every child, daemon or not, that is still
     * running, as Python does. A non-daemon child outlives a parent that crashes.
     * Under BR_START_FORKSERVER the tie is to the server instead (it ends when this
     * process ends, whichever thread started the child). */
    bool daemon;
    /* BR_START_DEFAULT: br_get_start_method(). */
    br_start_method start_method;
    /* Descriptors the child keeps, open at the same numbers, under every start method
     * (up to BR_PROCESS_MAX_FDS): how a spawned or forkserver child gets a shared
     * object made in the parent (br_mp_value_fd, br_mp_queue_fd...; the child attaches
     * it: br_mp_value_attach). A forked child inherits every descriptor anyway; listing
     * one there is harmless. Each must be open at the call (BR_EINVAL otherwise).
     * Python passes a shared object in Process(args=...); braid passes the number in
     * the argument bytes and the descriptor here. */
    const int *fds;
    size_t nfds;
    /* More fields may be added; zero always keeps the default. */
} br_process_opts;

/* The most descriptors br_process_opts.fds may list. */
#define BR_PROCESS_MAX_FDS 64

/* Starts a child process running fn on a copy of arg[0..len) (braid/task.h: the task's
 * argument; arg may be NULL when len is 0). The child's exit code is 0 when the task
 * returns 0, 1 when it fails (its code and message are printed on stderr first, as
 * Python prints the traceback), or what the task passed to _exit()/exit(). On success
 * *out is a handle you own (br_process_free). 0, or: BR_EINVAL (out or fn NULL, len > 0
 * with arg NULL, nfds above BR_PROCESS_MAX_FDS or a listed descriptor not open, an
 * unknown start method; under spawn or forkserver, fn not code of a
 * loaded module: a heap or JIT pointer), BR_ESTATE (spawn or forkserver without
 * br_process_main at the top of main), BR_EBROKEN (the forkserver can't be started, or
 * died twice in a row), BR_EAGAIN (no more processes), BR_EMFILE, BR_ENOMEM.
 * On error nothing was started and *out is unchanged. Under BR_START_FORK, a parent
 * running other threads gets a warning on stderr, once per process. */
BR_API int br_process_start(br_process **out, br_task_fn fn, const void *arg, size_t len,
                            const br_process_opts *opts);

/* Waits until the child has ended (and been reaped) or the deadline passes: 0,
 * BR_ETIMEDOUT, BR_ECANCELED (the calling coroutine was cancelled; nothing happened),
 * BR_ECHILD (called in another process than the one that started it), BR_EINVAL (p
 * NULL). Joining through the child's exit future: it goes through the waiter. */
BR_API int br_process_join(br_process *p, int64_t deadline);

/* The child's exit future (borrowed: valid until br_process_free; br_future_retain it to
 * keep it longer). It finishes, never fails, with the returncode as an int64
 * (br_future_result_i64): what br_process_exitcode gives. Mix it with other futures in
 * br_wait / br_as_completed, or add a done-callback (it runs on braid's watcher thread:
 * keep it short). NULL if p is NULL. */
BR_API br_future *br_process_future(br_process *p);

/* True until the child has ended and been reaped. */
BR_API bool br_process_is_alive(const br_process *p);

/* Python's exitcode: 0 with *code = the exit status (0..255), or -N when signal N ended
 * the child; BR_ESTATE while it runs (Python's None); BR_EINVAL (p or code NULL). */
BR_API int br_process_exitcode(const br_process *p, int *code);

/* The child's pid (stays set after it ended; don't signal it yourself: use the calls
 * below, which can't reach a recycled pid). -1 if p is NULL. */
BR_API int br_process_pid(const br_process *p);
/* The name (owned by p). NULL if p is NULL. */
BR_API const char *br_process_name(const br_process *p);
BR_API bool br_process_is_daemon(const br_process *p);

/* Sends SIGTERM (terminate) or SIGKILL (kill) through the child's pidfd. 0 (also when
 * the child has ended already: nothing is sent), BR_ECHILD (another process than the one
 * that started it), BR_EINVAL. */
BR_API int br_process_terminate(br_process *p);
BR_API int br_process_kill(br_process *p);

/* Python's close(): frees the handle once the child has ended. BR_EBUSY while it runs
 * (p stays valid: kill or join it first); 0 or BR_EINVAL (p NULL) otherwise. Freeing a
 * handle twice is a use after free. */
BR_API int br_process_free(br_process *p);

/* The calling process's name: "MainProcess", or in a child started by br_process_start
 * (or a pool) the name it was given. */
BR_API const char *br_process_current_name(void);

/* --- process ids -------------------------------------------------------------- */

/* os.getpid(), os.getppid(). */
BR_API int br_getpid(void);
BR_API int br_getppid(void);

#ifdef __cplusplus
}
#endif
#endif
