/* process/start.h: starting a child that runs a task, for the process layer's files
 * (br_process, the process pool; later the MPI executor). Never installed.
 *
 * Two pieces:
 *
 *   br__fnref   a function as it crosses a process boundary: the module that holds it
 *               (its path, "" for the main program, and what tells one build of it from
 *               another: the GNU build-id, or the file's size and mtime when it has
 *               none) and its offset from the module's load address; or a name given
 *               with br_register_fn. Made from a pointer in the parent (which refuses,
 *               at the parent's call, a pointer that isn't in an executable segment of
 *               a module a child can load: a heap or JIT pointer, the vDSO), resolved
 *               back to a pointer in the child (loading the module if the child hasn't
 *               yet, checking it is the same build).
 *
 *   br__child_start
 *               forks a child that runs a br_task_fn on argument bytes, by one of the
 *               start methods (braid/process.h): fork (the child runs the parent's
 *               pointer in a copy of the parent) or spawn (the child re-executes
 *               /proc/self/exe; br_process_main, called at the top of main, finds the
 *               spec on an inherited descriptor, resolves the function and runs it).
 *               The child is watched (process/watch.h): its exit future gives its
 *               returncode.
 *
 * A start may be made from any thread, braid's watcher included (a pool replacing a
 * worker from a done-callback: that child gets an empty signal mask instead of the
 * watcher's all-blocked one; any other thread's mask is inherited). Starts are
 * serialized (start.c, start_lock).
 *
 * What the child does, under every method: sets its name (the kernel's thread name), a
 * parent-death SIGKILL if daemon, keeps the listed descriptors (at the same numbers, which
 * br__child_inherited_fd gives back), runs the task through a future block (so
 * br_task_return*, br_task_fail and br_task_arg work as on any executor), prints a failure
 * to stderr ("Process <name>:" then the code and message, as Python prints a traceback),
 * flushes stdio and _exits with 0 (success) or 1 (failure). A task may also end the
 * process itself (_exit(7) is returncode 7).
 */
#ifndef BRAID_PROCESS_START_H
#define BRAID_PROCESS_START_H

#include "braid/future.h"
#include "braid/process.h"
#include "braid/task.h"
#include "core/lib.h"

#include <sys/types.h>

/* --- function references (process/fnref.c) ---------------------------------------- */

enum {
    BR__FNREF_MODULE = 1, /* path + identity + offset */
    BR__FNREF_NAME = 2,   /* a br_register_fn name */
    BR__FNREF_PATH_MAX = 512,
    BR__FNREF_NAME_MAX = BR_FN_NAME_MAX, /* bytes with the NUL */
    BR__FNREF_ID_MAX = 32
};

/* Plain bytes, no pointers: copied as is into a spawned child's spec (the child is the
 * same binary, so the layout matches). */
typedef struct br__fnref {
    uint32_t kind;    /* BR__FNREF_* */
    uint32_t id_len;  /* build-id bytes in id; 0: file_size + file_mtime_ns identify it */
    uint64_t offset;  /* from the module's load address (dlpi_addr) */
    uint64_t file_size;
    int64_t file_mtime_ns;
    unsigned char id[BR__FNREF_ID_MAX];
    char path[BR__FNREF_PATH_MAX]; /* "" = the main program */
    char name[BR__FNREF_NAME_MAX]; /* kind NAME */
} br__fnref;

/* A generic function pointer (a br_task_fn, a pool's initializer...). */
typedef void (*br__fnptr)(void);

/* Makes *ref for fn: its registered name if it has one (br_register_fn), else its module
 * and offset. 0, or BR_EINVAL (fn NULL; fn not inside an executable segment of a loaded
 * module: a heap, stack or JIT address; a module without a file a child could load, such
 * as the vDSO, or whose path is too long or can't be found) with the reason written to
 * why[0..whylen) (may be NULL). Never allocates. */
BR__EXT int br__fnref_make(br__fnref *ref, br__fnptr fn, char *why, size_t whylen);

/* Resolves ref in this process: *out is the function. Loads the module (dlopen) if it
 * isn't loaded yet and keeps it loaded. 0, or BR_ENOENT (no such registered name, or
 * the module can't be loaded), BR_ESTATE (the module is another build than the one the
 * reference was made in), BR_EINVAL (ref malformed, or the offset is not in an
 * executable segment of the module), with the reason in why. */
BR__EXT int br__fnref_resolve(const br__fnref *ref, br__fnptr *out, char *why,
                              size_t whylen);

/* --- starting children (process/start.c) -------------------------------------------- */

typedef struct br__child_spec {
    br_task_fn fn;
    const void *arg;     /* the argument bytes (copied: the child gets its own) */
    size_t len;
    const char *name;    /* the child's name (NULL: "Process-<pid>"); cut to 255 bytes */
    bool daemon;         /* dies with the thread that starts it (parent-death SIGKILL) */
    int method;          /* BR_START_*; BR_START_DEFAULT: br_get_start_method() */
    const int *fds;      /* descriptors the child keeps, at the same numbers */
    size_t nfds;         /* at most BR__CHILD_MAX_FDS */
    bool quiet;          /* don't warn about forking a multi-threaded parent (a caller
                          * that warned already) */
} br__child_spec;

enum { BR__CHILD_MAX_FDS = BR_PROCESS_MAX_FDS };

typedef struct br__child {
    pid_t pid;
    int pidfd;        /* the caller's (close with br__child_close), or -1: no pidfds */
    br_future *exit;  /* the caller's reference: finishes with the returncode (int64) */
} br__child;

/* Starts a child per spec. On success *out is filled (the caller owns the pidfd and a
 * reference on the exit future; br__child_close gives both up and never waits). The
 * watcher reaps the child; nobody else may wait for it. Errors (nothing was started, *out
 * is {0, -1, NULL}): BR_EINVAL (spec or out NULL, fn NULL, len > 0 with arg NULL, nfds
 * too big or an fd < 0, unknown method; under spawn, a function that can't cross:
 * br__fnref_make's reasons, in why), BR_ESTATE (spawn or forkserver without br_process_main
 * having run in this process: the child would not divert), BR_EBROKEN (forkserver: the
 * server can't be started), BR_ENOMEM, BR_EAGAIN (fork failed: process limit), BR_EMFILE. */
int br__child_start(const br__child_spec *spec, br__child *out, char *why, size_t whylen);

/* Sends sig through c's pidfd (or to its pid while its exit future is pending, where
 * there are no pidfds). 0, BR_ESRCH (it has ended), BR_EINVAL. */
int br__child_signal(const br__child *c, int sig);

/* Closes c's pidfd and releases its exit future; does not wait (the watcher still reaps
 * the child). Safe on a zeroed/closed br__child. */
void br__child_close(br__child *c);

/* In a child started by br__child_start: how many descriptors it was given, and the i-th
 * (in spec order; -1 past the end). In any other process: 0 and -1. */
size_t br__child_inherited_count(void);
int br__child_inherited_fd(size_t i);

/* The registry's hook (process/process.c): what a child runs before it exits (its own
 * children's end, as Python's Process does). */
void br__child_set_exit_hook(void (*hook)(void));

/* --- helpers of the forkserver (process/forkserver.c) ------------------------------- */

#define BR__FORKSERVER_MARKER "--braid-forkserver"

/* Re-executes /proc/self/exe as argv {argv0, marker, "<fd>"}, keeping fd (every other
 * descriptor >= 3 is closed by the exec). *pid is the child's: the caller reaps it (the
 * watcher doesn't), also when the exec failed (the child _exits 127; the code is then
 * the exec's -errno). 0, BR_ESTATE (no br_process_main), BR_EAGAIN, -errno. */
int br__spawn_helper(const char *marker, int fd, pid_t *pid);

/* br_process_main's diversion into the forkserver (fdarg: the control socket). */
_Noreturn void br__forkserver_main(const char *fdarg);

/* The forkserver's start of the child that spec and specfd (a spawn spec: start.c's
 * write_spec) describe: the server is started on first use (or again if it died), forks
 * the child, and out is filled as br__child_start fills it; the watcher learns the
 * child's end from the server. Called under start.c's start lock. Errors as
 * br__child_start's, and BR_EBROKEN (the server can't be started or died twice). */
int br__forkserver_start(const br__child_spec *spec, int specfd, br__child *out,
                         char *why, size_t whylen);

/* Ends the forkserver if one runs (closes its control socket and waits until the server
 * has exited, at most until deadline): the next forkserver start starts a new one.
 * Children it forked that are still running lose their exit status (their futures fail
 * with BR_EBROKEN) and daemon ones are killed. Tests use it to leave nothing behind.
 * 0, BR_ETIMEDOUT. Not while a start is under way. */
int br__forkserver_stop(int64_t deadline);

/* The server's pid (0: none running). */
int br__forkserver_pid(void);

/* In a forkserver's child: runs the spawn spec in memfd fd (the descriptors it names
 * already at their numbers) and exits. */
_Noreturn void br__child_run_spec(int fd);

/* True once br_process_main ran in this process (spawn can divert a child). */
bool br__process_main_seen(void);

/* Threads of this process other than braid's own helpers (the child watcher) and the
 * caller: what makes fork risky. -1 if it can't be told. */
int br__other_threads(void);

#endif
