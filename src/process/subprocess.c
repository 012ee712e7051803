/* Python's subprocess (braid/subprocess.h): br_run and br_popen.
 *
 * Design notes.
 *
 * Start. br__spawn (platform/linux/spawn.c: posix_spawn, every fd >= 3 closed in the
 * child, signals reset) runs the program; the parent's pipe ends are close-on-exec
 * from their creation (pipe2), and every pipe fd is moved to >= 3 before the spawn
 * (br__spawn's promise: no dup2 onto itself). Then the child gets a pidfd and goes to
 * the child watcher (process/watch.h), which reaps it and finishes its future with
 * the returncode: nothing here ever calls waitpid, except when the watcher can't take
 * the child (BR_ENOMEM...), where the start kills and reaps it before failing, so a
 * failed start leaves no process behind.
 *
 * Waiting is waiting on that future (br_future_wait, br_future_result_i64): the waiter
 * path every blocking call in braid takes. Signals go through the pidfd (never a
 * recycled pid); on a kernel without pidfds, kill(pid) while the future isn't done
 * (a pid reaped in between could then be reused: the watch.h fallback's limit).
 *
 * communicate (pump). One wait over the parent's ends of the three pipes, all
 * non-blocking for the duration: stdin is written as it drains, stdout and stderr are
 * read as they fill, so neither side ever waits on a full pipe whatever the sizes.
 * stdin is closed once the input is written (or at once: no input), which is the
 * child's EOF. EPIPE on stdin (the child closed it) drops the rest of the input, as
 * Python does; SIGPIPE is blocked in the calling thread around each write and a
 * SIGPIPE the write caused is consumed before the mask is restored (one that was
 * pending before is left alone). The wait: a thread ppolls; a coroutine waits through
 * the child watcher (br__fds_wait: the watcher's epoll finishes a future, which the
 * coroutine awaits), so it suspends and its loop runs its other tasks meanwhile. A
 * deadline that passes, or a coroutine's cancel, leaves everything where it was: what
 * was read stays in the handle's buffers, the input offset is kept, and a later call
 * resumes.
 *
 * br_run's deadline: the child is killed (SIGKILL through the pidfd), its end waited
 * for (that can't take long: SIGKILL can't be caught), then whatever is already in the
 * pipes is read without waiting and handed over. A grandchild that still holds a pipe
 * open is not waited for (Python's run would wait for it in its second communicate).
 *
 * Ownership. A captured stream's buffer is allocated at the start (so handing it over
 * never fails), grown by the pump, and moved to the caller's br_completed, which frees
 * it with br_completed_destroy. argv, env, cwd and input are read only during the call.
 */
#include "braid/subprocess.h"

#include "core/lib.h"
#include "platform/platform.h"
#include "process/watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A captured stream's buffer starts at BUF_FIRST bytes and doubles (at least to
 * BUF_GROWN) whenever less than READ_MIN is free for the next read. */
enum { BUF_FIRST = 256, BUF_GROWN = 8192, READ_MIN = 2048 };

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

struct br_popen {
    pid_t pid;
    int pidfd;          /* ours, or -1 (no pidfds on this kernel) */
    br_future *fut;     /* the child's end: one reference, ours */
    int fd[3];          /* our ends of the pipes, or -1 */
    bool had_stdin;     /* stdin was a pipe */
    bool capture[2];    /* stdout / stderr go to buffers (a pipe) */
    bool communicated;  /* communicate returned 0 once */
    size_t in_off;      /* input bytes written so far */
    buf b[2];           /* what communicate read from stdout, stderr */
};

void br_completed_destroy(br_completed *r) {
    if (!r)
        return;
    br__free(r->out);
    br__free(r->err);
    memset(r, 0, sizeof *r);
}

/* --- start ------------------------------------------------------------------------ */

static void close_fd(int *fd) {
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Moves fd to a number >= 3 (close-on-exec), closing the old one. 0 or -errno. */
static int lift(int *fd) {
    if (*fd >= 3)
        return 0;
    int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
    if (n < 0)
        return -errno;
    close(*fd);
    *fd = n;
    return 0;
}

/* A close-on-exec pipe, both ends >= 3. */
static int make_pipe(int fds[2]) {
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    int rc = lift(&fds[0]);
    if (rc == 0)
        rc = lift(&fds[1]);
    if (rc != 0) {
        close_fd(&fds[0]);
        close_fd(&fds[1]);
    }
    return rc;
}

static bool valid_stdio(br_stdio s, bool is_err, int fd) {
    return s == BR_STDIO_INHERIT || s == BR_STDIO_PIPE || s == BR_STDIO_DEVNULL ||
           (is_err && s == BR_STDIO_STDOUT) || (s == BR_STDIO_FD && fd >= 0);
}

/* The environment for env_add: the parent's entries not named in `add`, then `add`.
 * A new array of borrowed strings, or NULL (BR_ENOMEM). */
static char **merge_env(const char *const *add) {
    size_t na = 0, np = 0;
    while (add[na])
        na++;
    for (char **e = environ; e && *e; e++)
        np++;
    char **out = br__malloc((np + na + 1) * sizeof *out);
    if (!out)
        return NULL;
    size_t n = 0;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t klen = eq ? (size_t)(eq - *e) : strlen(*e);
        bool replaced = false;
        for (size_t i = 0; i < na && !replaced; i++)
            replaced = strncmp(add[i], *e, klen) == 0 && add[i][klen] == '=';
        if (!replaced)
            out[n++] = *e;
    }
    for (size_t i = 0; i < na; i++)
        out[n++] = (char *)add[i];
    out[n] = NULL;
    return out;
}

/* Starts the child. `for_run`: opts->input/check/deadline are allowed (br_run's). */
static int start(br_popen **out, const char *const *argv, const br_subprocess_opts *o,
                 bool for_run) {
    static const br_subprocess_opts defaults;
    if (!o)
        o = &defaults;
    br_stdio in = o->in, sout = o->out, serr = o->err;
    if (!valid_stdio(in, false, o->in_fd) || !valid_stdio(sout, false, o->out_fd) ||
        !valid_stdio(serr, true, o->err_fd))
        return BR_EINVAL;
    if (o->capture_output) {
        if (sout != BR_STDIO_INHERIT || serr != BR_STDIO_INHERIT)
            return BR_EINVAL;
        sout = serr = BR_STDIO_PIPE;
    }
    if (!for_run && (o->input || o->input_len || o->check || o->deadline))
        return BR_EINVAL;
    if (o->input_len && !o->input)
        return BR_EINVAL;
    if (o->input) {
        if (in != BR_STDIO_INHERIT)
            return BR_EINVAL;
        in = BR_STDIO_PIPE;
    }
    if (o->env_add && !o->env)
        return BR_EINVAL;
    if (o->pass_fds_len && !o->pass_fds)
        return BR_EINVAL;
    for (size_t i = 0; i < o->pass_fds_len; i++) {
        if (o->pass_fds[i] < 3)
            return BR_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (o->pass_fds[j] == o->pass_fds[i])
                return BR_EINVAL;
    }

    br_popen *p = br__calloc(1, sizeof *p);
    if (!p)
        return BR_ENOMEM;
    p->pidfd = -1;
    p->fd[0] = p->fd[1] = p->fd[2] = -1;
    int child[3] = {BR__SPAWN_INHERIT, BR__SPAWN_INHERIT, BR__SPAWN_INHERIT};
    char **sh_argv = NULL, **env = NULL;
    int rc = 0;
    /* pass_fds: a close-on-exec copy of each, which the spawn dup2s onto the number */
    size_t npass = o->pass_fds_len;
    int *pass_src = NULL;
    if (npass) {
        pass_src = br__malloc(npass * sizeof *pass_src);
        if (!pass_src)
            rc = BR_ENOMEM;
        for (size_t i = 0; i < npass && rc == 0; i++) {
            pass_src[i] = fcntl(o->pass_fds[i], F_DUPFD_CLOEXEC, 3);
            if (pass_src[i] < 0) {
                rc = errno == EBADF ? BR_EINVAL : -errno;
                npass = i;
            }
        }
    }

    br_stdio modes[3] = {in, sout, serr};
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (modes[i] == BR_STDIO_FD) {
            /* A close-on-exec copy >= 3 of the caller's fd: the spawn's dup2 then
             * always moves it (br__spawn's rule), and the caller's stays theirs. */
            int user = i == 0 ? o->in_fd : i == 1 ? o->out_fd : o->err_fd;
            int dup = fcntl(user, F_DUPFD_CLOEXEC, 3);
            if (dup < 0)
                rc = errno == EBADF ? BR_EINVAL : -errno;
            else
                child[i] = dup;
        } else if (modes[i] == BR_STDIO_DEVNULL) {
            child[i] = BR__SPAWN_DEVNULL;
        } else if (modes[i] == BR_STDIO_STDOUT) {
            child[i] = 1;
        } else if (modes[i] == BR_STDIO_PIPE) {
            int fds[2];
            rc = make_pipe(fds);
            if (rc != 0)
                break;
            p->fd[i] = i == 0 ? fds[1] : fds[0];
            child[i] = i == 0 ? fds[0] : fds[1];
            if (i == 0) {
                p->had_stdin = true;
            } else {
                p->capture[i - 1] = true;
                p->b[i - 1].p = br__malloc(BUF_FIRST);
                if (!p->b[i - 1].p)
                    rc = BR_ENOMEM;
                p->b[i - 1].cap = BUF_FIRST;
            }
        }
    }

    br__spawn_req req = {.cwd = o->cwd, .keep_src = pass_src, .keep_dst = o->pass_fds,
                         .nkeep = npass, .setsid = o->start_new_session};
    memcpy(req.fds, child, sizeof child);
    if (rc == 0 && o->shell) {
        size_t n = 0;
        while (argv[n])
            n++;
        sh_argv = br__malloc((n + 3) * sizeof *sh_argv);
        if (!sh_argv) {
            rc = BR_ENOMEM;
        } else {
            sh_argv[0] = (char *)"/bin/sh";
            sh_argv[1] = (char *)"-c";
            for (size_t i = 0; i <= n; i++)
                sh_argv[i + 2] = (char *)argv[i];
            req.path = "/bin/sh";
            req.argv = sh_argv;
        }
    } else if (rc == 0) {
        req.path = argv[0];
        req.search = strchr(argv[0], '/') == NULL;
        req.argv = (char *const *)argv;
    }
    if (rc == 0 && o->env) {
        if (o->env_add) {
            env = merge_env(o->env);
            if (!env)
                rc = BR_ENOMEM;
            req.envp = env;
        } else {
            req.envp = (char *const *)o->env;
        }
    }
    if (rc == 0)
        rc = br__spawn(&req, &p->pid);
    br__free(sh_argv);
    br__free(env);
    for (int i = 0; i < 3; i++)
        if (child[i] >= 3)
            close(child[i]); /* the child has its copies */
    for (size_t i = 0; i < npass; i++)
        close(pass_src[i]);
    br__free(pass_src);
    if (rc != 0)
        goto fail;

    int pidfd = br__pidfd_open(p->pid);
    p->pidfd = pidfd >= 0 ? pidfd : -1; /* no pidfd: the watcher polls */
    rc = br__child_watch(p->pid, p->pidfd, &p->fut);
    if (rc != 0) {
        /* Nothing watches it: end it here, so that no process outlives the error. */
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
        }
        goto fail;
    }
    *out = p;
    return 0;
fail:
    for (int i = 0; i < 3; i++)
        close_fd(&p->fd[i]);
    close_fd(&p->pidfd);
    br__free(p->b[0].p);
    br__free(p->b[1].p);
    br__free(p);
    return rc;
}

int br_popen_start(br_popen **out, const char *const *argv, const br_subprocess_opts *opts) {
    if (out)
        *out = NULL;
    if (!out || !argv || !argv[0])
        return BR__MISUSE(BR_EINVAL, "br_popen_start: NULL out, argv or argv[0]");
    return start(out, argv, opts, false);
}

/* --- the pump -------------------------------------------------------------------- */

/* Room for one more read into b (keeping a byte for the final NUL). */
static int grow(buf *b) {
    if (b->cap - b->len > READ_MIN)
        return 0;
    size_t cap = b->cap * 2 < BUF_GROWN ? BUF_GROWN : b->cap * 2;
    char *np = br__realloc(b->p, cap);
    if (!np)
        return BR_ENOMEM;
    b->p = np;
    b->cap = cap;
    return 0;
}

/* Reads what fd has into b: 1 at EOF (or a read error: the stream is over), 0 when it
 * would block, BR_ENOMEM. */
static int drain(int fd, buf *b) {
    for (;;) {
        int rc = grow(b);
        if (rc != 0)
            return rc;
        ssize_t n = read(fd, b->p + b->len, b->cap - b->len - 1);
        if (n > 0) {
            b->len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return 1;
    }
}

static void set_nonblock(int fd, bool on) {
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* Writes in[0..n) to fd (non-blocking) without a SIGPIPE: the signal is blocked in the
 * calling thread around the write alone, and one the write caused is consumed before the
 * mask comes back (one pending before is left alone). Per write, not per pump: a
 * coroutine's pump suspends between writes and may resume on another thread, so no
 * mask may stay set across a wait. The write's result, errno as it left it. */
static ssize_t write_quiet(int fd, const void *in, size_t n) {
    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    sigpending(&pending);
    bool had_pending = sigismember(&pending, SIGPIPE) == 1;
    ssize_t w = write(fd, in, n);
    int e = errno;
    if (w < 0 && e == EPIPE && !had_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    errno = e;
    return w;
}

/* Waits until one of the pipes in pf[0..n) is ready, the deadline passes (BR_ETIMEDOUT)
 * or, in a coroutine, the task is cancelled (BR_ECANCELED). A thread polls; a coroutine
 * waits through the child watcher (process/watch.h), which suspends only it, and then
 * every pipe counts as ready (the non-blocking calls that follow find out). */
static int pipes_wait(struct pollfd *pf, int n, int64_t deadline) {
    if (br__tls_now()->parker != NULL) {
        /* A look first (it never blocks): what is ready needs no watcher, and a passed
         * deadline still reads what is there, as the thread's ppoll does. */
        int r = poll(pf, (nfds_t)n, 0);
        if (r > 0)
            return 0;
        if (br__deadline_passed(deadline))
            return BR_ETIMEDOUT;
        int fds[3];
        uint32_t evs[3];
        for (int k = 0; k < n; k++) {
            fds[k] = pf[k].fd;
            evs[k] = pf[k].events & POLLOUT ? EPOLLOUT : EPOLLIN;
        }
        int rc = br__fds_wait(fds, evs, n, deadline);
        for (int k = 0; k < n; k++)
            pf[k].revents = rc == 0 ? pf[k].events : 0;
        return rc;
    }
    for (;;) {
        struct timespec ts, *tsp = NULL;
        if (deadline != BR_FOREVER) {
            int64_t left = br_deadline_left(deadline);
            ts.tv_sec = (time_t)(left / 1000000000);
            ts.tv_nsec = (long)(left % 1000000000);
            tsp = &ts;
        }
        int r = ppoll(pf, (nfds_t)n, tsp, NULL);
        if (r > 0)
            return 0;
        if (r == 0)
            return BR_ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Moves input to the child's stdin and its output to p's buffers until every pipe is
 * closed (0), the deadline passes (BR_ETIMEDOUT), the calling coroutine is cancelled
 * (BR_ECANCELED), or memory runs out (BR_ENOMEM). */
static int pump(br_popen *p, const char *in, size_t len, int64_t deadline) {
    if (p->fd[0] >= 0 && p->in_off >= len)
        close_fd(&p->fd[0]); /* no more input: the child's EOF */
    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            set_nonblock(p->fd[i], true);
    int rc = 0;
    for (;;) {
        struct pollfd pf[3];
        int idx[3], n = 0;
        for (int i = 0; i < 3; i++) {
            if (p->fd[i] < 0)
                continue;
            pf[n] = (struct pollfd){.fd = p->fd[i], .events = i == 0 ? POLLOUT : POLLIN};
            idx[n++] = i;
        }
        if (n == 0)
            break;
        rc = pipes_wait(pf, n, deadline);
        if (rc != 0)
            break;
        for (int k = 0; k < n && rc == 0; k++) {
            if (!pf[k].revents)
                continue;
            int i = idx[k];
            if (i == 0) {
                ssize_t w = write_quiet(p->fd[0], in + p->in_off, len - p->in_off);
                if (w > 0)
                    p->in_off += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                         errno != EINTR)
                    p->in_off = len; /* the child won't read the rest (EPIPE) */
                if (p->in_off >= len)
                    close_fd(&p->fd[0]);
            } else {
                int d = drain(p->fd[i], &p->b[i - 1]);
                if (d < 0)
                    rc = d;
                else if (d == 1)
                    close_fd(&p->fd[i]);
            }
        }
        if (rc != 0)
            break;
    }
    for (int i = 0; i < 3; i++)
        if (p->fd[i] >= 0)
            set_nonblock(p->fd[i], false);
    return rc;
}

static int returncode_of(br_popen *p, int64_t deadline, int *rc_out) {
    int64_t rc = 0;
    int r = br_future_result_i64(p->fut, deadline, &rc);
    if (r == 0 && rc_out)
        *rc_out = (int)rc;
    return r;
}

/* Moves the buffers to *r (the child has ended with returncode rc). */
static void hand_over(br_popen *p, int rc, br_completed *r) {
    r->returncode = rc;
    r->pid = p->pid;
    for (int k = 0; k < 2; k++) {
        buf *b = &p->b[k];
        if (!p->capture[k] || !b->p)
            continue;
        b->p[b->len] = '\0';
        if (k == 0) {
            r->out = b->p;
            r->out_len = b->len;
        } else {
            r->err = b->p;
            r->err_len = b->len;
        }
        *b = (buf){0};
    }
}

int br_popen_communicate(br_popen *p, const void *input, size_t len, int64_t deadline,
                         br_completed *result) {
    if (result)
        memset(result, 0, sizeof *result);
    if (!p || !result)
        return BR__MISUSE(BR_EINVAL, "br_popen_communicate: NULL handle or result");
    if (len && !input)
        return BR__MISUSE(BR_EINVAL, "br_popen_communicate: input NULL with a length");
    if (len && !p->had_stdin)
        return BR__MISUSE(BR_EINVAL, "br_popen_communicate: input without a stdin pipe");
    if (p->communicated)
        return BR_ESTATE;
    int rc = pump(p, input, len, deadline);
    if (rc != 0)
        return rc;
    int code = 0;
    rc = returncode_of(p, deadline, &code);
    if (rc != 0)
        return rc;
    hand_over(p, code, result);
    p->communicated = true;
    return 0;
}

/* --- run ------------------------------------------------------------------------- */

int br_run(const char *const *argv, const br_subprocess_opts *opts, br_completed *result) {
    if (result)
        memset(result, 0, sizeof *result);
    if (!argv || !argv[0] || !result)
        return BR__MISUSE(BR_EINVAL, "br_run: NULL argv, argv[0] or result");
    br_popen *p;
    int rc = start(&p, argv, opts, true);
    if (rc != 0)
        return rc;
    int64_t deadline = opts && opts->deadline ? opts->deadline : BR_FOREVER;
    const void *in = opts ? opts->input : NULL;
    size_t len = opts ? opts->input_len : 0;
    rc = br_popen_communicate(p, in, len, deadline, result);
    if (rc != 0) {
        /* The deadline passed (or memory ran out...): kill, wait for its end (SIGKILL
         * can't be caught), keep what is already in the pipes, without waiting for
         * anyone who still holds them. */
        br_popen_kill(p);
        int code = 0;
        int w = returncode_of(p, BR_FOREVER, &code);
        for (int i = 1; i < 3; i++) {
            if (p->fd[i] >= 0) {
                set_nonblock(p->fd[i], true);
                if (drain(p->fd[i], &p->b[i - 1]) < 0)
                    rc = BR_ENOMEM;
            }
        }
        hand_over(p, w == 0 ? code : -SIGKILL, result);
    } else if (rc == 0 && opts && opts->check && result->returncode != 0) {
        rc = BR_EFAILED;
    }
    br_popen_free(p);
    return rc;
}

/* --- the rest of Popen ------------------------------------------------------------- */

int br_popen_fd(const br_popen *p, int which) {
    if (!p || which < 0 || which > 2)
        return -1;
    return p->fd[which];
}

int br_popen_close_fd(br_popen *p, int which) {
    if (!p || which < 0 || which > 2)
        return BR__MISUSE(BR_EINVAL, "br_popen_close_fd: NULL handle or which not 0..2");
    close_fd(&p->fd[which]);
    return 0;
}

int br_popen_poll(br_popen *p, int *returncode) {
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_popen_poll: NULL handle");
    return returncode_of(p, BR_NOWAIT, returncode);
}

int br_popen_wait(br_popen *p, int64_t deadline, int *returncode) {
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_popen_wait: NULL handle");
    return returncode_of(p, deadline, returncode);
}

int br_popen_send_signal(br_popen *p, int sig) {
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_popen_send_signal: NULL handle");
    if (sig < 0 || sig >= NSIG)
        return BR__MISUSE(BR_EINVAL, "br_popen_send_signal: no such signal");
    if (br_future_done(p->fut))
        return 0; /* ended: nothing to signal (Python does nothing either) */
    int rc;
    if (p->pidfd >= 0)
        rc = br__pidfd_signal(p->pidfd, sig);
    else
        rc = kill(p->pid, sig) == 0 ? 0 : -errno;
    return rc == BR_ESRCH ? 0 : rc;
}

int br_popen_terminate(br_popen *p) { return br_popen_send_signal(p, SIGTERM); }
int br_popen_kill(br_popen *p) { return br_popen_send_signal(p, SIGKILL); }

pid_t br_popen_pid(const br_popen *p) { return p ? p->pid : 0; }

br_future *br_popen_future(const br_popen *p) { return p ? p->fut : NULL; }

int br_popen_free(br_popen *p) {
    if (!p)
        return BR__MISUSE(BR_EINVAL, "br_popen_free: NULL handle");
    for (int i = 0; i < 3; i++)
        close_fd(&p->fd[i]);
    close_fd(&p->pidfd);
    br_future_release(p->fut); /* the watcher keeps its own until it reaps the child */
    br__free(p->b[0].p);
    br__free(p->b[1].p);
    br__free(p);
    return 0;
}
