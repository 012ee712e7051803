/* Starting children (process/start.h): the start methods, the spawn entry point
 * (br_process_main), the child's side of a start, pids.
 *
 * Design notes (the protocol a change must keep):
 *
 * fork. The child runs spec->fn on the parent's copy of the arguments, then _exits. The
 * lifecycle's fork hooks (core/lifecycle.c) reset what the parent's other threads left
 * behind in braid (the watcher's list, ...); what they left in the program's own locks is
 * the program's risk, hence the warning: once per process, on stderr, when a fork start
 * finds threads other than the caller and braid's child watcher (/proc/self/task).
 *
 * spawn. The parent writes the spec into a memfd (layout: spec_hdr, then nfds int32 fd
 * numbers, the name and its NUL, zero padding to a multiple of 16, the argument bytes;
 * magic and version first: arg_offset), vforks (vfork_exec: no copy of our page tables),
 * and the child, with only raw system calls (it shares our memory until the exec, and
 * the parent may run threads), resets signal handlers, sets its parent-death signal
 * (daemon), marks every descriptor >= 3 close-on-exec except the spec's memfd and the
 * listed fds, and execs /proc/self/exe with
 *     argv = {argv[0] as br_process_main saw it, SPAWN_MARKER, "<memfd>", NULL}
 * and the parent's environment. br_process_main in the new image sees the marker, reads
 * and closes the memfd, resolves the function (process/fnref.c) and runs the task. A
 * close-on-exec pipe tells the parent whether exec worked: EOF means it did; an int
 * (errno) means it didn't, and the start fails with that code (the child _exits 127
 * and is reaped by the watcher like any other).
 *
 * Exit. The child's code is 0 if the task succeeded, 1 if it failed (printed on stderr
 * first: "Process <name>:" and "<BR_E...>: <message>"). Before it exits the child runs
 * the exit hook the process registry set (br__child_set_exit_hook: terminate daemon
 * children, join the others, as Python's Process does in its child), flushes stdio and
 * _exits: under fork the parent's atexit handlers must not run twice; under spawn the
 * same, so that both methods end alike.
 *
 * Daemon children get PR_SET_PDEATHSIG(SIGKILL): the kernel kills them when the
 * *thread* that forked them ends (see braid/process.h for the rule it imposes). The
 * child can't tell whether that thread ended before its request was in place (getppid()
 * names the process, which lives on), so the start doesn't return before the request is
 * in place: the child closes its end of a close-on-exec pipe once it is (fork), or the
 * exec closes it (spawn: the signal survives the exec), and the parent reads the pipe
 * to EOF. After br__child_start returns, the tie to the calling thread holds.
 */
#include "process/start.h"

#include "future/for_executors.h"
#include "process/shm.h"
#include "process/watch.h"

#include <dirent.h>
#include <pthread.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define SPAWN_MARKER "--braid-spawned-child"
#define SPEC_MAGIC "BRSPAWN1"
enum { SPEC_VERSION = 1, NAME_MAX_ = 255 };

typedef struct spec_hdr {
    char magic[8];
    uint32_t version;
    uint32_t daemon;
    int32_t ppid;
    uint32_t name_len; /* without the NUL */
    uint32_t nfds;
    uint32_t pad_;
    uint64_t arg_len;
    br__fnref fn;
} spec_hdr;

/* Where the argument starts in a spec: after the header, the fds and the name, rounded
 * up to 16 so that the child's copy is as aligned as a malloc'ed buffer. */
static size_t arg_offset(size_t nfds, size_t name_len) {
    size_t off = sizeof(spec_hdr) + nfds * sizeof(int32_t) + name_len + 1;
    return (off + 15) & ~(size_t)15;
}

static _Atomic int default_method = BR_START_FORK;
static _Atomic bool main_seen;
static const char *saved_argv0;
static _Atomic bool warned_threads;

/* Held by a start from the pipe's creation to its EOF, so that no other start's fork
 * copies that pipe's write end into a child of its own (which would hold the EOF back
 * for as long as that child lives: a fork child never execs, and close-on-exec doesn't
 * reach it). Re-made in a fork child (whose copy may be held). */
static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;
static BR__TLS bool holding_start_lock; /* this thread holds start_lock */
static void start_child_hook(void) {
    if (holding_start_lock) { /* our own start forked: the lock is this thread's */
        holding_start_lock = false;
        pthread_mutex_unlock(&start_lock);
    } else { /* another thread's fork while a start ran: its holder isn't here */
        pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
        start_lock = fresh;
    }
}
static br__hooks start_hooks = {.order = BR__ORDER_PROCESS, .name = "process.start",
                                .child = start_child_hook};

/* The child's side: what br__child_start handed it. */
static int inherited[BR__CHILD_MAX_FDS];
static size_t ninherited;
static void (*exit_hook)(void);

/* --- start methods ----------------------------------------------------------------- */

int br_set_start_method(br_start_method method) {
    if (method != BR_START_FORK && method != BR_START_SPAWN && method != BR_START_FORKSERVER)
        return BR__MISUSE(BR_EINVAL, "br_set_start_method: unknown start method");
    atomic_store(&default_method, (int)method);
    return 0;
}

br_start_method br_get_start_method(void) {
    return (br_start_method)atomic_load(&default_method);
}

const char *br_start_method_name(br_start_method method) {
    switch (method) {
    case BR_START_DEFAULT: return "default";
    case BR_START_FORK: return "fork";
    case BR_START_SPAWN: return "spawn";
    case BR_START_FORKSERVER: return "forkserver";
    }
    return "?";
}

int br_getpid(void) { return (int)getpid(); }
int br_getppid(void) { return (int)getppid(); }

bool br__process_main_seen(void) { return atomic_load(&main_seen); }

void br__child_set_exit_hook(void (*hook)(void)) { exit_hook = hook; }

size_t br__child_inherited_count(void) { return ninherited; }
int br__child_inherited_fd(size_t i) { return i < ninherited ? inherited[i] : -1; }

/* --- threads ---------------------------------------------------------------------- */

int br__other_threads(void) {
    int self = br__thread_native_id();
    int watcher = br__child_watch_tid();
    while (watcher == -1) { /* started, not yet running: it will be ours */
        sched_yield();
        watcher = br__child_watch_tid();
    }
    int calib = br__calib_helper_gone(); /* a short-lived helper, braid's own */
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int tid = atoi(e->d_name);
        if (tid != self && tid != watcher && tid != calib)
            n++;
    }
    closedir(d);
    return n;
}

static void warn_threads(void) {
    if (atomic_load_explicit(&warned_threads, memory_order_relaxed))
        return;
    int n = br__other_threads();
    if (n > 0) {
        /* The spin calibration's helper (core/calib.c) may be the thread we saw: it
         * lives for a millisecond or so. Let it finish, then count again (its id, once
         * it has returned, is left out). */
        (void)br__calib_spin_ns();
        int64_t until = br_deadline_after(100 * BR_MSEC);
        while (br__calib_helper_gone() < 0 && br_now() < until)
            br_sleep(100 * BR_USEC);
        n = br__other_threads();
    }
    if (n <= 0 || atomic_exchange(&warned_threads, true))
        return;
    fprintf(stderr,
            "braid: warning: process %d runs %d other thread%s and forks a child "
            "(BR_START_FORK): the child may deadlock on a lock one of them held; "
            "BR_START_SPAWN is safe (shown once)\n",
            (int)getpid(), n, n == 1 ? "" : "s");
}

/* --- the child's side -------------------------------------------------------------- */

static char current_name[NAME_MAX_ + 1] = "MainProcess";

const char *br_process_current_name(void) { return current_name; }

static void set_child_name(const char *name) {
    if (name && name[0]) {
        br__set_thread_name(name);
        snprintf(current_name, sizeof current_name, "%s", name);
    }
}

/* Runs fn on arg in this (child) process: the exit code (0 or 1). */
static int run_task(br_task_fn fn, const void *arg, size_t len, const char *name) {
    int code = 0;
    const char *msg = NULL;
    br_future *f = br__task_prepare(fn, arg, len, BR__ARG_BORROW, BR_FOREVER, 2);
    if (!f) {
        code = BR_ENOMEM;
        msg = "can't start the task";
    } else {
        br__task_run(br__future_task(f));
        if (br_future_cancelled(f))
            code = BR_ECANCELED;
        else
            br_future_exception(f, BR_NOWAIT, &code, &msg);
    }
    int ret = 0;
    if (code != 0) {
        fprintf(stderr, "Process %s:\n%s: %s\n", name && name[0] ? name : "?",
                br_err_name(code), msg ? msg : br_strerror(code));
        ret = 1;
    }
    if (f)
        br_future_release(f);
    return ret;
}

static _Noreturn void child_exit(int code) {
    if (exit_hook)
        exit_hook();
    fflush(NULL);
    _exit(code);
}

/* --- spawn: the child's entry ------------------------------------------------------- */

static _Noreturn void spawned_fail(const char *name, int code, const char *why) {
    fprintf(stderr, "Process %s:\n%s: %s\n", name ? name : "?", br_err_name(code), why);
    fflush(NULL);
    _exit(1);
}

static _Noreturn void spawned_main(const char *fdarg) {
    char *end = NULL;
    long fd = strtol(fdarg, &end, 10);
    if (!end || *end || fd < 0 || fd > 1 << 20)
        spawned_fail(NULL, BR_EINVAL, "braid: a spawned child without its spec");
    br__child_run_spec((int)fd);
}

void br__child_run_spec(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0 ||
        (size_t)st.st_size < sizeof(spec_hdr))
        spawned_fail(NULL, BR_EINVAL, "braid: a spawned child without its spec");
    size_t size = (size_t)st.st_size;
    unsigned char *buf = br__malloc(size);
    if (!buf)
        spawned_fail(NULL, BR_ENOMEM, "braid: no memory for the spec");
    for (size_t got = 0; got < size;) {
        ssize_t r = pread((int)fd, buf + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            spawned_fail(NULL, BR_EIO, "braid: can't read the spec");
        got += (size_t)r;
    }
    close((int)fd);
    spec_hdr h;
    memcpy(&h, buf, sizeof h);
    size_t need = arg_offset(h.nfds, h.name_len);
    if (memcmp(h.magic, SPEC_MAGIC, 8) != 0 || h.version != SPEC_VERSION ||
        h.nfds > BR__CHILD_MAX_FDS || h.name_len > NAME_MAX_ || need > size ||
        h.arg_len != size - need)
        spawned_fail(NULL, BR_EINVAL, "braid: a malformed spec");
    const unsigned char *p = buf + sizeof h;
    for (uint32_t i = 0; i < h.nfds; i++) {
        int32_t v;
        memcpy(&v, p + i * sizeof v, sizeof v);
        inherited[i] = v;
        /* Ours to use, but not to hand on to our own children's exec. */
        int fl = fcntl(v, F_GETFD);
        if (fl >= 0)
            fcntl(v, F_SETFD, fl | FD_CLOEXEC);
    }
    ninherited = h.nfds;
    p += h.nfds * sizeof(int32_t);
    const char *name = (const char *)p;
    if (name[h.name_len] != 0)
        spawned_fail(NULL, BR_EINVAL, "braid: a malformed spec");
    p = buf + need; /* the argument, 16-aligned as malloc's memory is */
    set_child_name(name);
    char why[256];
    br__fnptr fn = NULL;
    int rc = br__fnref_resolve(&h.fn, &fn, why, sizeof why);
    if (rc != 0)
        spawned_fail(name, rc, why);
    int code = run_task((br_task_fn)fn, h.arg_len ? p : NULL, (size_t)h.arg_len, name);
    br__free(buf);
    child_exit(code);
}

int br_process_main(int argc, char **argv) {
    if (argc >= 3 && argv && argv[1] && argv[2] && strcmp(argv[1], SPAWN_MARKER) == 0)
        spawned_main(argv[2]);
    if (argc >= 3 && argv && argv[1] && argv[2] &&
        strcmp(argv[1], BR__FORKSERVER_MARKER) == 0)
        br__forkserver_main(argv[2]);
    if (argc >= 1 && argv && argv[0])
        saved_argv0 = argv[0];
    atomic_store(&main_seen, true);
    return 0;
}

/* --- starting ------------------------------------------------------------------------ */

static void say(char *why, size_t whylen, const char *s) {
    if (why && whylen)
        snprintf(why, whylen, "%s", s);
}

static int write_all_at(int fd, const void *p, size_t n, size_t off) {
    const unsigned char *b = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : BR_EIO;
        b += w;
        off += (size_t)w;
        n -= (size_t)w;
    }
    return 0;
}

/* The spec memfd for spawn, or a negative code. */
static int write_spec(const br__child_spec *spec, const br__fnref *ref, const char *name,
                      size_t name_len) {
    spec_hdr h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, SPEC_MAGIC, 8);
    h.version = SPEC_VERSION;
    h.daemon = spec->daemon;
    h.ppid = (int32_t)getpid();
    h.name_len = (uint32_t)name_len;
    h.nfds = (uint32_t)spec->nfds;
    h.arg_len = spec->len;
    h.fn = *ref;
    size_t argoff = arg_offset(spec->nfds, name_len);
    size_t size = argoff + spec->len;
    int fd = br__shm_fd("braid-spawn-spec", size);
    if (fd < 0)
        return fd;
    size_t off = 0;
    int rc = write_all_at(fd, &h, sizeof h, off);
    off += sizeof h;
    for (size_t i = 0; rc == 0 && i < spec->nfds; i++, off += sizeof(int32_t)) {
        int32_t v = spec->fds[i];
        rc = write_all_at(fd, &v, sizeof v, off);
    }
    if (rc == 0)
        rc = write_all_at(fd, name, name_len + 1, off);
    if (rc == 0 && spec->len)
        rc = write_all_at(fd, spec->arg, spec->len, argoff);
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

static void keep_across_exec(int fd) {
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0)
        fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
}

/* True on braid's watcher thread, which blocks every signal: a child started there (a
 * pool's replacement worker, from a done-callback) gets an empty signal mask instead of
 * the watcher's, or SIGTERM would never reach it. Any other thread's mask is inherited,
 * as with fork. */
static bool from_watcher(void) { return br__child_watch_tid() == br__thread_native_id(); }

/* fork: the child runs the task. The parent gets the pid, or a negative code. */
static pid_t fork_child(const br__child_spec *spec, const char *name,
                        const int errpipe[2]) {
    pid_t parent = getpid();
    /* What the parent printed must not be printed twice (a fork child's copy of the
     * buffers) or come after the child's lines: flush first, as Python does. */
    fflush(stdout);
    fflush(stderr);
    bool unblock = from_watcher(); /* asked before the fork: its hook forgets the tid */
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? (pid_t)-errno : pid;
    /* The child. */
    if (unblock) { /* a pool replacing a worker from a done-callback */
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, NULL);
    }
    if (spec->daemon)
        br__set_parent_death_signal(SIGKILL, parent);
    /* The parent waits for this EOF: the parent-death signal is in place before the
     * starting thread can end (see "Daemon children" above). */
    if (errpipe[0] >= 0) {
        close(errpipe[0]);
        close(errpipe[1]);
    }
    for (size_t i = 0; i < spec->nfds; i++)
        inherited[i] = spec->fds[i];
    ninherited = spec->nfds;
    set_child_name(name);
    child_exit(run_task(spec->fn, spec->arg, spec->len, name));
}

/* spawn: vfork + exec, as posix_spawn does, so that the parent's page tables aren't
 * copied for a child that execs at once. The child shares our memory until the exec,
 * so it makes raw system calls only and writes nothing but its own stack (and errno,
 * which the parent ignores). Signals: blocked around the vfork; the child resets every
 * handler to the default before it unblocks them, so that no handler of ours runs on our
 * memory in the child. The parent is suspended until the child execs or exits. */
static pid_t vfork_exec(const br__child_spec *spec, int specfd, int errfd,
                        char *const argv[]) {
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    sigset_t all, old, child_mask;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    child_mask = old;
    if (from_watcher())
        sigemptyset(&child_mask);
    pid_t pid = vfork();
    if (pid == 0) {
        for (int sig = 1; sig < NSIG; sig++) {
            struct sigaction sa;
            if (sig == SIGKILL || sig == SIGSTOP)
                continue;
            if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_DFL &&
                sa.sa_handler != SIG_IGN) {
                sa.sa_handler = SIG_DFL;
                sa.sa_flags = 0;
                sigaction(sig, &sa, NULL);
            }
        }
        if (spec->daemon)
            br__set_parent_death_signal(SIGKILL, parent);
        br__cloexec_from(3);
        keep_across_exec(specfd);
        for (size_t i = 0; i < spec->nfds; i++)
            keep_across_exec(spec->fds[i]);
        pthread_sigmask(SIG_SETMASK, &child_mask, NULL);
        execve("/proc/self/exe", argv, environ);
        int e = errno;
        ssize_t w = write(errfd, &e, sizeof e);
        (void)w;
        _exit(127);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pid < 0 ? (pid_t)-e : pid;
}

static int child_start(const br__child_spec *spec, br__child *out, char *why,
                       size_t whylen);

int br__spawn_helper(const char *marker, int fd, pid_t *pid) {
    if (!br__process_main_seen())
        return BR_ESTATE;
    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0)
        return -errno;
    char fdstr[16];
    snprintf(fdstr, sizeof fdstr, "%d", fd);
    char *argv[4] = {(char *)(saved_argv0 ? saved_argv0 : "braid-helper"), (char *)marker,
                     fdstr, NULL};
    br__child_spec none = {0};
    pid_t p = vfork_exec(&none, fd, errpipe[1], argv);
    close(errpipe[1]);
    if (p < 0) {
        close(errpipe[0]);
        return (int)p == -EAGAIN ? BR_EAGAIN : (int)p;
    }
    int e = 0;
    ssize_t r;
    do
        r = read(errpipe[0], &e, sizeof e);
    while (r < 0 && errno == EINTR);
    close(errpipe[0]);
    *pid = p;
    if (r == (ssize_t)sizeof e)
        return e > 0 ? -e : BR_EIO; /* it _exits 127: the caller reaps it */
    return 0;
}

/* spawn and forkserver: the child's spec, its function as a reference, in a memfd (the
 * descriptor, or a negative code with the reason in why). */
static int spec_memfd(const br__child_spec *spec, const char *method, const char *name,
                      size_t name_len, char *why, size_t whylen) {
    if (!br__process_main_seen()) {
        if (why && whylen)
            snprintf(why, whylen, "%s needs br_process_main(argc, argv) at the top of main",
                     method);
        return BR_ESTATE;
    }
    br__fnref ref;
    int rc = br__fnref_make(&ref, (br__fnptr)spec->fn, why, whylen);
    if (rc != 0)
        return rc;
    int fd = write_spec(spec, &ref, name, name_len);
    if (fd < 0 && why && whylen)
        snprintf(why, whylen, "can't write the %s spec", method);
    return fd;
}

int br__child_start(const br__child_spec *spec, br__child *out, char *why, size_t whylen) {
    pthread_mutex_lock(&start_lock);
    holding_start_lock = true;
    int rc = child_start(spec, out, why, whylen);
    holding_start_lock = false;
    pthread_mutex_unlock(&start_lock);
    return rc;
}

static int child_start(const br__child_spec *spec, br__child *out, char *why,
                       size_t whylen) {
    if (out)
        *out = (br__child){0, -1, NULL};
    if (!spec || !out || !spec->fn || (spec->len > 0 && !spec->arg) ||
        spec->nfds > BR__CHILD_MAX_FDS || (spec->nfds > 0 && !spec->fds)) {
        say(why, whylen, "bad spec");
        return BR_EINVAL;
    }
    for (size_t i = 0; i < spec->nfds; i++)
        if (spec->fds[i] < 0 || fcntl(spec->fds[i], F_GETFD) < 0) {
            say(why, whylen, "a descriptor to inherit is not open");
            return BR_EINVAL;
        }
    int method = spec->method == BR_START_DEFAULT ? (int)br_get_start_method() : spec->method;
    if (method != BR_START_FORK && method != BR_START_SPAWN &&
        method != BR_START_FORKSERVER) {
        say(why, whylen, "unknown start method");
        return BR_EINVAL;
    }
    const char *name = spec->name ? spec->name : "";
    size_t name_len = strnlen(name, NAME_MAX_);
    char namebuf[NAME_MAX_ + 1];
    memcpy(namebuf, name, name_len);
    namebuf[name_len] = 0;

    if (br__hooks_register(&start_hooks) != 0) {
        say(why, whylen, "can't register the fork hooks");
        return BR_ENOMEM;
    }
    int specfd = -1, errpipe[2] = {-1, -1};
    char fdstr[16];
    char *argv[4] = {NULL, NULL, NULL, NULL};
    if (method == BR_START_FORKSERVER) {
        specfd = spec_memfd(spec, "forkserver", namebuf, name_len, why, whylen);
        if (specfd < 0)
            return specfd;
        int rc = br__forkserver_start(spec, specfd, out, why, whylen);
        close(specfd);
        return rc;
    }
    if (method == BR_START_SPAWN) {
        specfd = spec_memfd(spec, "spawn", namebuf, name_len, why, whylen);
        if (specfd < 0)
            return specfd;
        if (pipe2(errpipe, O_CLOEXEC) != 0) {
            int e = -errno;
            close(specfd);
            say(why, whylen, "can't make the exec status pipe");
            return e;
        }
        snprintf(fdstr, sizeof fdstr, "%d", specfd);
        argv[0] = (char *)(saved_argv0 ? saved_argv0 : "braid-spawned-child");
        argv[1] = (char *)SPAWN_MARKER;
        argv[2] = fdstr;
    } else {
        if (!spec->quiet)
            warn_threads();
        if (spec->daemon && pipe2(errpipe, O_CLOEXEC) != 0) {
            int e = -errno;
            say(why, whylen, "can't make the start handshake pipe");
            return e;
        }
    }

    pid_t pid = method == BR_START_SPAWN
                    ? vfork_exec(spec, specfd, errpipe[1], argv)
                    : fork_child(spec, namebuf, errpipe);
    int rc = 0;
    if (pid < 0) {
        rc = (int)pid == -EAGAIN ? BR_EAGAIN : (int)pid;
        say(why, whylen, "fork failed");
    }
    if (specfd >= 0)
        close(specfd);
    if (errpipe[1] >= 0)
        close(errpipe[1]);
    int pidfd = -1;
    if (rc == 0) {
        pidfd = br__pidfd_open(pid);
        if (pidfd < 0) /* no pidfds here, or no descriptor left: the watcher polls */
            pidfd = -1;
        br_future *fut = NULL;
        int wrc = br__child_watch(pid, pidfd, &fut);
        if (wrc != 0) {
            /* Nobody watches it: end it and reap it here. */
            kill(pid, SIGKILL);
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            if (pidfd >= 0)
                close(pidfd);
            if (errpipe[0] >= 0)
                close(errpipe[0]);
            say(why, whylen, "can't watch the child");
            return wrc;
        }
        out->pid = pid;
        out->pidfd = pidfd;
        out->exit = fut;
    }
    if (errpipe[0] >= 0) {
        if (rc == 0) {
            int e = 0;
            ssize_t r;
            do
                r = read(errpipe[0], &e, sizeof e);
            while (r < 0 && errno == EINTR);
            if (r == (ssize_t)sizeof e) {
                rc = e > 0 ? -e : BR_EIO;
                say(why, whylen, "exec of /proc/self/exe failed");
                /* The child _exits 127; the watcher reaps it. */
                br__child_close(out);
            }
        }
        close(errpipe[0]);
    }
    return rc;
}

int br__child_signal(const br__child *c, int sig) {
    if (!c || c->pid <= 0)
        return BR_EINVAL;
    if (c->pidfd >= 0)
        return br__pidfd_signal(c->pidfd, sig);
    /* No pidfds: the pid can't name another process while its future is pending (the
     * watcher hasn't reaped it); the window after that is the fallback's cost. */
    if (c->exit && br_future_done(c->exit))
        return BR_ESRCH;
    return kill(c->pid, sig) == 0 ? 0 : -errno;
}

void br__child_close(br__child *c) {
    if (!c)
        return;
    if (c->pidfd >= 0)
        close(c->pidfd);
    if (c->exit)
        br_future_release(c->exit);
    *c = (br__child){0, -1, NULL};
}
