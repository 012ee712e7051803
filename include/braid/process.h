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
 *   BR_START_FORKSERVER  not built in this version: BR_ENOTSUP.
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
 * BR_START_DEFAULT), BR_ENOTSUP (BR_START_FORKSERVER). */
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

/* --- process ids -------------------------------------------------------------- */

/* os.getpid(), os.getppid(). */
BR_API int br_getpid(void);
BR_API int br_getppid(void);

#ifdef __cplusplus
}
#endif
#endif
