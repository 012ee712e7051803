/* platform/platform.h: the platform contract. Any library file may include it (core/lib.h
 * does). Never installed.
 *
 * Everything braid needs from the operating system beyond C11, <pthread.h> and POSIX
 * time goes through the functions below, so that porting braid means writing one
 * directory, src/platform/<os>/, that CMake chooses (src/CMakeLists.txt). Today there
 * is one: linux/ (one file per service below). A port must keep every
 * promise written here; where an OS can't, the contract says what the fallback is.
 *
 * Services in use:
 *   futex        wait on a 32-bit word with an absolute monotonic deadline; wake
 *   cpu count    br_cpu_count(): affinity and CPU quota aware; br__cpu_parallel()
 *   threads      the kernel's name of the calling thread; the thread's numeric id
 *   membarrier   a full barrier on every CPU running one of our threads (optional)
 *   backtrace    the calling thread's stack, for the misuse report (optional)
 *   shm          anonymous shared memory that frees itself (the process layer)
 *   pidfd        a descriptor for a child process that can't name a recycled pid
 *   robust       a process-shared mutex the kernel releases when its owner dies
 *   spawn        start a program (posix_spawn) with chosen fds, cwd and default signals
 *   liveness     whether a process id (not our child) still names a live process
 *   child        what a forked child sets up before it runs or execs (parent-death signal)
 *   fdpass       a descriptor sent to another process (SCM_RIGHTS)
 *
 * Slots the next layers fill (each lands with the layer that needs it, with its tests;
 * nothing is declared before it exists, so nothing here can be called half-made):
 *   poller       (aio) register fds for readiness and wait with a deadline, woken
 *                from any thread: epoll + eventfd on Linux, kqueue elsewhere.
 */
#ifndef BRAID_PLATFORM_H
#define BRAID_PLATFORM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "braid/core.h"

/* BR__EXT: an internal function the extension libraries (libbraid_http, libbraid_mpi)
 * call. libbraid.so hides every br__ name (visibility hidden); these few are exported
 * under the version node BRAID_PRIVATE (src/braid.map), which is not API: no header is
 * installed for them, and they change with any release. A new internal call from
 * src/http or src/mpi into libbraid needs BR__EXT on its declaration, or the shared
 * extension library fails to link ("undefined reference"). Defined here, the first
 * internal header every layer includes (core/lib.h includes this one). */
#if defined(__GNUC__)
#  define BR__EXT __attribute__((visibility("default")))
#else
#  define BR__EXT
#endif

/* --- futex (linux/futex.c) ---------------------------------------------------------
 *
 * The one primitive every blocking path ends in: the thread parker, br__ilock and the
 * queue's side locks. A port without futexes implements it with a table of condition
 * variables hashed by address (as glibc's old emulations did); the promises below are
 * what the callers rely on. */

/* Sleeps while *addr == val, until woken or `deadline` (absolute, monotonic ns;
 * BR_FOREVER for none; any deadline <= 0 returns BR_ETIMEDOUT at once). Returns 0
 * (woken, or *addr != val at the call: spurious wake-ups happen, so callers loop),
 * BR_ETIMEDOUT, or BR_EINTR (a signal; callers loop). `shared`: the word may live in
 * memory shared between processes. */
int br__futex_wait(_Atomic uint32_t *addr, uint32_t val, int64_t deadline, bool shared);
/* Wakes up to n sleepers on addr. addr may point into memory that is gone by now (a
 * waiter's stack after it returned): the kernel only uses the address as a key, and
 * every sleeper re-checks its word. Never fails. Returns how many it woke (a port that
 * can't tell returns n). */
int br__futex_wake(_Atomic uint32_t *addr, int n, bool shared);

/* --- cpu count (linux/cpu.c) -------------------------------------------------------- */

/* How many of our threads can run at the same instant: the CPUs the affinity mask
 * allows, not limited by a CPU quota (br_cpu_count's answer), which throttles over a
 * period but still runs threads in parallel. Cheap (no file is read): the spin
 * calibration asks it (core/calib.c). At least 1. */
int br__cpu_parallel(void);

/* --- threads (linux/thread.c) ------------------------------------------------------ */

/* Sets the calling thread's kernel name (what /proc/.../comm, top and gdb show) to the
 * first 15 bytes of name. Best effort: an OS without thread names ignores it. */
void br__set_thread_name(const char *name);
/* The kernel's id of the calling thread (Python's threading.get_native_id()); equal to
 * the process id on the process's first thread. */
int br__thread_native_id(void);
/* Lets a thread created with attr run anywhere our affinity mask allows except the
 * CPU we run on now. Best effort (nothing changes where the OS can't tell or when no
 * other CPU is allowed): the spin calibration's helper (core/calib.c), which must
 * measure a cache line crossing between CPUs, not two threads sharing one. */
void br__attr_other_cpu(pthread_attr_t *attr);
/* True while the process has exactly one thread (glibc's __libc_single_threaded);
 * false where the C library can't tell. The lock's fast paths use plain loads and
 * stores while it is true (thread/private.h). */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
#  include <sys/single_threaded.h>
#  define BR__SINGLE_THREADED() (__libc_single_threaded != 0)
#else
#  define BR__SINGLE_THREADED() 0
#endif

/* --- membarrier (linux/membarrier.c) ------------------------------------------------
 *
 * An asymmetric fence: br__membarrier() runs a full memory barrier on every CPU that is
 * running a thread of this process, so that code on the fast side of a Dekker pair can
 * use plain stores and compiler barriers (the thread pool's cancel protocol,
 * executor/pool/cancel.c). Optional: where it is missing, callers use atomic RMWs. */

/* Registers the process for expedited barriers; true if br__membarrier() is usable
 * from now on. Call again in a forked child (registration is per address space);
 * calling it twice is harmless. */
bool br__membarrier_init(void);
/* The barrier. 0, or -1 if it failed (never after br__membarrier_init returned true,
 * but callers treat -1 as "don't rely on it"). */
int br__membarrier(void);

/* --- backtrace (linux/backtrace.c) --------------------------------------------------
 *
 * For the misuse report (core/errors.c) on its way to abort(), and nothing else: it may
 * allocate and take locks (the unwinder loads its library on first use). Optional: a
 * port without an unwinder prints nothing. */

/* Writes to stderr, for the calling thread's stack less its `skip` innermost frames
 * (this function's own frame is never shown):
 *   braid: called from <module>+0x<offset> (<symbol>+0x<off>)
 * naming the innermost frame outside libbraid, when libbraid is a shared library of its
 * own (<offset> is the return address's offset in <module>; the symbol part only when
 * the module exports one there); then
 *   braid: backtrace, innermost first:
 * and one line per frame, "<module>(<symbol>+0x<off>) [<address>]" (backtrace_symbols_fd's
 * format). */
void br__print_backtrace(int skip);

/* --- shm (linux/shm.c) -------------------------------------------------------------
 *
 * Shared memory for the process layer (process/shm.c maps it). Anonymous: no name in
 * any file system, freed by the kernel when the last descriptor and the last mapping
 * are gone, however their processes ended, so a crash leaves nothing in /dev/shm. The
 * descriptor survives fork and, passed or inherited, lets a spawned child map the same
 * memory. memfd_create on Linux; a port uses shm_open with a random name unlinked at
 * once. */

/* A new shared-memory object of `size` bytes, zero-filled, close-on-exec; `name` (may
 * be NULL) is only a debugging label (/proc/<pid>/fd shows it). The descriptor (>= 0),
 * or a negative errno code: BR_EMFILE, BR_ENOMEM, BR_ENOSYS... */
int br__shm_fd(const char *name, size_t size);

/* --- pidfd (linux/pidfd.c) ---------------------------------------------------------
 *
 * A descriptor for a child process: readable (poll, epoll) once the child has ended,
 * and, unlike a pid, never the name of another process after the child is reaped. The
 * child watcher (process/watch.c) waits on them; signals go through them. Linux >= 5.3;
 * a port without them returns BR_ENOSYS and the watcher polls waitpid instead. */

/* A close-on-exec pidfd for pid (a live or not yet reaped child). The descriptor, or
 * BR_EINVAL, BR_ESRCH, BR_EMFILE, BR_ENOSYS (no pidfds here). */
int br__pidfd_open(pid_t pid);
/* Sends sig to the process behind pidfd. 0, BR_ESRCH (it has ended, even if not yet
 * reaped), BR_EINVAL, BR_EPERM, BR_ENOSYS. */
int br__pidfd_signal(int pidfd, int sig);

/* --- robust process-shared mutex (linux/robust.c) ---------------------------------
 *
 * The process layer's br_mp_lock and br_mp_rlock (process/mp_sync.c) sit on a mutex
 * that lives in shared memory and that the kernel releases when its owner dies:
 * glibc's robust process-shared pthread mutex, whose owner's id is in its futex word
 * and which the kernel's robust list (set up by the C library for every thread) marks
 * OWNER_DIED when the owning thread or process ends, SIGKILL included, waking a
 * waiter at once. The storage is a pthread_mutex_t placed by the caller; its only
 * pointers (the robust list's links) are written by the owner and used by the kernel in
 * the owner's address space, so the mapping may sit at a different address in each
 * process. A port needs robust mutexes (POSIX 2008) and a monotonic timed lock. */

/* Initialises m as robust, process-shared and error-checking. 0 or BR_ENOMEM/-errno. */
int br__robust_init(pthread_mutex_t *m);
/* Locks m, waiting until `deadline` (absolute monotonic ns; BR_FOREVER; <= now only
 * tries). 0; BR_EOWNERDEAD (the owner died holding it: the caller holds it now, not
 * consistent); BR_ENOTRECOVERABLE (not held); BR_ETIMEDOUT; BR_EDEADLK (the calling
 * thread holds it already). */
int br__robust_lock(pthread_mutex_t *m, int64_t deadline);
/* 0, or BR_EPERM (the calling thread doesn't hold it). Unlocking a mutex that came back
 * BR_EOWNERDEAD without br__robust_consistent makes it not recoverable for good. */
int br__robust_unlock(pthread_mutex_t *m);
/* Marks a mutex held after BR_EOWNERDEAD consistent again. 0, or BR_EINVAL (not in that
 * state, or not held by the caller). */
int br__robust_consistent(pthread_mutex_t *m);
/* True if the calling thread holds m (by the futex word's owner id, which the kernel
 * clears when the owner dies, so a recycled thread id never passes). */
bool br__robust_held_by_me(const pthread_mutex_t *m);
/* True if some thread holds m (or held it and died, until someone takes it). */
bool br__robust_locked(const pthread_mutex_t *m);

/* --- spawn (linux/spawn.c) ----------------------------------------------------------
 *
 * Starting a program as a child without copying the parent (the subprocess layer,
 * process/subprocess.c). glibc's posix_spawn: clone(CLONE_VM | CLONE_VFORK) and
 * execve, the exec's errno handed back to the caller. The child gets:
 *   - fds 0, 1, 2 as the request says, and nothing else: every fd >= 3 is closed
 *     (closefrom in the child where the C library has it, glibc >= 2.34; else each
 *     open fd >= 3 without FD_CLOEXEC, listed from /proc/self/fd at the call, is
 *     closed: one opened by another thread during the call may slip through);
 *   - an empty signal mask and every signal at its default disposition;
 *   - cwd, if given, before the exec (so a relative program path is relative to it);
 *   - the kept fds at the numbers asked, and a new session if asked.
 * A port without posix_spawn uses vfork + exec with a close-on-exec pipe for the
 * exec's errno; the promises are the same. */

/* What a child's standard fd becomes. */
enum { BR__SPAWN_INHERIT = -1, BR__SPAWN_DEVNULL = -2 };

typedef struct br__spawn_req {
    const char *path;       /* the program; searched in PATH when `search` */
    bool search;            /* path has no '/': search the PATH of envp (or the
                             * parent's when envp is NULL; "/bin:/usr/bin" if none) */
    char *const *argv;      /* NULL-terminated */
    char *const *envp;      /* NULL-terminated; NULL: the parent's environ */
    const char *cwd;        /* NULL: the parent's */
    /* The child's fd i (0..2): an fd of ours (>= 3) dup'ed there, BR__SPAWN_INHERIT,
     * BR__SPAWN_DEVNULL, or for fd 2 only, 1 (wherever fd 1 went). */
    int fds[3];
    /* Kept fds (Python's pass_fds): keep_src[i] (ours, >= 3, not one of keep_dst) is
     * dup'ed to keep_dst[i] (>= 3, distinct) after fds 0..2, and survives the exec;
     * every other fd >= 3 is still closed. */
    const int *keep_src, *keep_dst;
    size_t nkeep;
    bool setsid; /* the child starts a new session (POSIX_SPAWN_SETSID) */
} br__spawn_req;

/* Starts the child. 0 and *pid, or a negative errno: the exec's (BR_ENOENT, BR_EACCES,
 * -ENOEXEC...), the chdir's (BR_ENOENT...), or the start's (BR_EAGAIN, BR_ENOMEM).
 * Every request fd must be >= 3 (the caller moves lower ones up). */
int br__spawn(const br__spawn_req *r, pid_t *pid);

/* --- process liveness (linux/liveness.c): the cross-process queue and pipe ----------
 *
 * Whether a process that holds a shared lock or streams a message still runs, for the
 * sleepers that watch it (process/mp_ring.c), and whether a spawned MPI worker does. */

/* True when no process `pid` runs any more: it doesn't exist, or it has died and waits
 * to be reaped (a zombie, which kill(pid, 0) would still find). A recycled pid reads as
 * alive: callers accept that (it takes a pid wrap-around within one holder's death).
 * Also the MPI executor's check of its spawned workers. */
BR__EXT bool br__pid_gone(int pid);

/* --- fdpass (linux/fdpass.c): the process pool's descriptors and workers -------------
 *
 * A message carries one descriptor from one process to another (a pool worker's
 * big-message memfd). */

/* A close-on-exec socketpair for descriptor messages. 0 or -errno. */
int br__fdpass_pair(int sv[2]);
/* Sends fd (the caller keeps its own) as one message. 0, BR_EPIPE (the peer is gone;
 * never SIGPIPE), or another -errno. */
int br__fdpass_send(int sock, int fd);
/* Receives one descriptor (close-on-exec): the descriptor, BR_EAGAIN (none yet and
 * wait false), BR_EPIPE (the peer is gone), BR_EIO (a message without one), -errno. */
int br__fdpass_recv(int sock, bool wait);

/* --- child (linux/child.c) ---------------------------------------------------------
 *
 * What a child needs between fork() and exec (or before it runs a task): each call is
 * async-signal-safe (raw system calls, no allocation, no lock), so it may run in the
 * child of a multi-threaded parent. The process layer (process/start.c) uses them. */

/* Asks the kernel to send sig to the calling process when the thread that forked it
 * ends (PR_SET_PDEATHSIG: the parent *thread*, not the parent process, on Linux), and
 * then checks the race: if the parent is no longer parent_pid (it ended before the
 * request was in place), raises sig at once. 0, or BR_ENOSYS where the OS has no such
 * thing (the caller then has no crash-proof tie to its parent). */
int br__set_parent_death_signal(int sig, pid_t parent_pid);

/* Marks every descriptor >= lowfd close-on-exec (close_range(CLOSE_RANGE_CLOEXEC), or a
 * loop up to the descriptor limit on an older kernel), so that an exec keeps only the
 * descriptors the caller then unmarks. Never fails. */
void br__cloexec_from(int lowfd);

/* --- poller (linux/poller.c): the event loop's readiness and wake-up ------------------
 *
 * A poller watches descriptors for the loop that owns it (aio/loop.c) and can be woken
 * from any thread. Linux: epoll (level-triggered) plus an eventfd for the wake-up.
 * Contract: new/add/mod/del/wait/close are called by the owning thread only; wake is
 * the one call safe from any thread (one write to the eventfd; a wake before a wait
 * makes that wait return at once). Events are BR__POLL_IN / BR__POLL_OUT; errors and
 * hang-ups are reported as both, so that the waiter's next call sees them. */
enum { BR__POLL_IN = 1, BR__POLL_OUT = 2 };
typedef struct br__poller br__poller;
typedef struct br__poll_event {
    void *data;      /* what add/mod registered for the descriptor */
    uint32_t events; /* BR__POLL_* */
} br__poll_event;
/* 0, BR_ENOMEM, or -errno (BR_EMFILE). */
int br__poller_new(br__poller **out);
/* Watches fd for events (BR__POLL_*), reporting data. 0 or -errno (BR_EEXIST...). */
int br__poller_add(br__poller *p, int fd, uint32_t events, void *data);
int br__poller_mod(br__poller *p, int fd, uint32_t events, void *data);
int br__poller_del(br__poller *p, int fd);
/* Waits until the deadline (absolute monotonic ns; BR_NOWAIT polls, BR_FOREVER has
 * none) for up to cap events. Returns the count (0: timed out, or only a wake-up), or
 * -errno. A wake-up is consumed here and reported as nothing. */
int br__poller_wait(br__poller *p, br__poll_event *ev, int cap, int64_t deadline);
/* Makes the current or next wait return. Any thread; never blocks. */
void br__poller_wake(br__poller *p);
void br__poller_close(br__poller *p);

/* --- sock (linux/sock.c): the stream layer's sockets (aio/stream.c) ---------------
 *
 * Sockets as the aio layer wants them: non-blocking and close-on-exec from birth (no
 * window in which a fork+exec elsewhere inherits one), and sends that never raise
 * SIGPIPE. Each returns -errno on failure. */

/* socket(family, SOCK_STREAM) non-blocking and close-on-exec: the descriptor. */
int br__sock_stream(int family);
/* accept, the new descriptor non-blocking and close-on-exec: the descriptor, or
 * BR_EAGAIN when none is queued. */
int br__sock_accept(int fd);
/* send with MSG_NOSIGNAL on a socket, write on anything else (is_sock false): the
 * count sent, BR_EAGAIN when the descriptor is full, BR_EPIPE / BR_ECONNRESET when
 * the peer is gone. */
long br__sock_send(int fd, const void *buf, size_t len, bool is_sock);
/* Makes fd non-blocking and close-on-exec; *is_sock tells whether it is a socket. */
int br__sock_adopt(int fd, bool *is_sock);

#endif
