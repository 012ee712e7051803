/* Starting a program on Linux (platform/platform.h, "spawn"): glibc's posix_spawn.
 *
 * glibc (>= 2.24) runs the child with clone(CLONE_VM | CLONE_VFORK) on a stack of its
 * own: no copy of the parent's page tables, however big the parent, and the parent is
 * suspended only until the exec. The child carries out the file actions in order, then
 * the attributes, then execs; any failure (a dup2, the chdir, the exec) ends it and its
 * errno becomes posix_spawn's return value, so a missing program is an error here, in
 * the parent, at the call.
 *
 * The order of the file actions matters and is the protocol of this file:
 *   1. chdir (so that a relative program path and relative opens are the child's);
 *   2. fds 0, 1, 2: dup2 of the request's fds, or an open of /dev/null; fd 2 may be
 *      dup2(1, 2) and so comes after fd 1. The request's fds are >= 3 (the caller's
 *      promise), so no dup2 overwrites a source a later one still needs, and dup2 always
 *      changes the fd (dup2(x, x) would leave FD_CLOEXEC set on x);
 *   3. the kept fds (pass_fds): dup2 of a close-on-exec copy the caller made onto each
 *      kept number (the copy is a new fd, so never a kept number, and dup2 onto a
 *      different fd clears FD_CLOEXEC there);
 *   4. close every fd >= 3 but the kept ones, last, after the dups have read their
 *      sources: each number below the highest kept one (a number that isn't open is
 *      no error for posix_spawn's close), then closefrom above it.
 *
 * Signals: the mask is emptied and every signal set to SIG_DFL in the child
 * (POSIX_SPAWN_SETSIGMASK | SETSIGDEF), glibc's internal ones included
 * (add_internal_signals says why they need help).
 */
#include "platform/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/lib.h"

extern char **environ;

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#  define HAVE_ADDCLOSEFROM 1
#endif
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 29))
#  define HAVE_ADDCHDIR 1
#endif

static bool kept(const br__spawn_req *r, long fd) {
    for (size_t i = 0; i < r->nkeep; i++)
        if (r->keep_dst[i] == fd)
            return true;
    return false;
}

/* Step 4: close each fd >= 3 that would survive the exec, but the kept ones. */
static int add_close_others(posix_spawn_file_actions_t *fa, const br__spawn_req *r) {
#ifdef HAVE_ADDCLOSEFROM
    int top = 2, rc = 0;
    for (size_t i = 0; i < r->nkeep; i++)
        if (r->keep_dst[i] > top)
            top = r->keep_dst[i];
    for (int fd = 3; fd < top && rc == 0; fd++)
        if (!kept(r, fd))
            rc = posix_spawn_file_actions_addclose(fa, fd);
    return rc ? rc : posix_spawn_file_actions_addclosefrom_np(fa, top + 1);
#else
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return errno;
    int self = dirfd(d), rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end || end == de->d_name || fd < 3 || fd == self || kept(r, fd))
            continue;
        int fl = fcntl((int)fd, F_GETFD);
        if (fl >= 0 && !(fl & FD_CLOEXEC))
            rc = posix_spawn_file_actions_addclose(fa, (int)fd);
    }
    closedir(d);
    return rc;
#endif
}

/* glibc's own signals (32 and 33, below SIGRTMIN: thread cancellation and setxid).
 * sigaddset refuses them, and glibc's spawn sets each one the child has blocked (it
 * blocks all while it runs) to SIG_IGN unless the default set names it: so without
 * this every child would start with them ignored, and a program whose C library uses
 * them differently (musl, Go's runtime) would inherit that through the exec. The set's
 * bits are written directly; glibc reads them back the same way. */
static void add_internal_signals(sigset_t *set) {
#if defined(__GLIBC__)
    enum { BITS = 8 * sizeof(unsigned long) };
    for (int s = 32; s < SIGRTMIN; s++)
        set->__val[(s - 1) / BITS] |= 1UL << ((s - 1) % BITS);
#else
    (void)set;
#endif
}

static int setup_actions(posix_spawn_file_actions_t *fa, const br__spawn_req *r) {
    int rc = 0;
    if (r->cwd) {
#ifdef HAVE_ADDCHDIR
        rc = posix_spawn_file_actions_addchdir_np(fa, r->cwd);
#else
        rc = ENOSYS;
#endif
        if (rc)
            return rc;
    }
    for (int i = 0; i < 3 && rc == 0; i++) {
        int fd = r->fds[i];
        if (fd == BR__SPAWN_INHERIT)
            continue;
        if (fd == BR__SPAWN_DEVNULL)
            rc = posix_spawn_file_actions_addopen(fa, i, "/dev/null",
                                                  i == 0 ? O_RDONLY : O_WRONLY, 0);
        else if (i == 2 && fd == 1)
            rc = posix_spawn_file_actions_adddup2(fa, 1, 2);
        else if (fd >= 3)
            rc = posix_spawn_file_actions_adddup2(fa, fd, i);
        else
            rc = EINVAL;
    }
    for (size_t i = 0; i < r->nkeep && rc == 0; i++)
        rc = posix_spawn_file_actions_adddup2(fa, r->keep_src[i], r->keep_dst[i]);
    if (rc == 0)
        rc = add_close_others(fa, r);
    return rc;
}

static const char *env_path(char *const *envp) {
    for (; *envp; envp++)
        if (strncmp(*envp, "PATH=", 5) == 0)
            return *envp + 5;
    return NULL;
}

/* The program's path when the child's PATH is not the parent's: the first directory of
 * `path` (":"-separated, an empty entry is ".") holding an executable regular file, as
 * execvp searches. *buf is ours to br__free. 0, BR_ENOENT, BR_EACCES (found, but none
 * executable), BR_ENOMEM, BR_ENAMETOOLONG. */
static int search(const char *file, const char *path, char **buf) {
    size_t flen = strlen(file);
    int err = BR_ENOENT;
    *buf = NULL;
    if (flen == 0)
        return BR_ENOENT;
    for (const char *p = path;; ) {
        const char *colon = strchr(p, ':');
        size_t dlen = colon ? (size_t)(colon - p) : strlen(p);
        char *cand = br__malloc(dlen + flen + 3);
        if (!cand)
            return BR_ENOMEM;
        if (dlen == 0)
            memcpy(cand, ".", (dlen = 1));
        else
            memcpy(cand, p, dlen);
        cand[dlen] = '/';
        memcpy(cand + dlen + 1, file, flen + 1);
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(cand, X_OK) == 0) {
                *buf = cand;
                return 0;
            }
            err = BR_EACCES;
        } else if (errno == EACCES) {
            err = BR_EACCES;
        }
        br__free(cand);
        if (!colon)
            return err;
        p = colon + 1;
    }
}

int br__spawn(const br__spawn_req *r, pid_t *pid) {
    if (!r || !r->path || !r->argv || !pid)
        return BR_EINVAL;
    char *const *envp = r->envp ? r->envp : environ;
    const char *prog = r->path;
    char *found = NULL;
    bool use_p = false;
    if (r->search) {
        /* posix_spawnp searches the parent's PATH; that is right whenever the child's
         * PATH is the same string. */
        const char *mine = getenv("PATH");
        const char *theirs = r->envp ? env_path(r->envp) : mine;
        if ((mine == NULL && theirs == NULL) ||
            (mine && theirs && strcmp(mine, theirs) == 0)) {
            use_p = true;
        } else {
            int rc = search(r->path, theirs ? theirs : "/bin:/usr/bin", &found);
            if (rc != 0)
                return rc;
            prog = found;
        }
    }

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc) {
        br__free(found);
        return -rc;
    }
    rc = posix_spawnattr_init(&at);
    if (rc) {
        posix_spawn_file_actions_destroy(&fa);
        br__free(found);
        return -rc;
    }
    rc = setup_actions(&fa, r);
    if (rc == 0) {
        sigset_t none, all;
        sigemptyset(&none);
        sigemptyset(&all);
        for (int s = 1; s < NSIG; s++)
            if (s != SIGKILL && s != SIGSTOP)
                sigaddset(&all, s); /* the C library refuses its own: see below */
        add_internal_signals(&all);
        rc = posix_spawnattr_setsigmask(&at, &none);
        if (rc == 0)
            rc = posix_spawnattr_setsigdefault(&at, &all);
        short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
        if (r->setsid) {
#ifdef POSIX_SPAWN_SETSID
            flags |= POSIX_SPAWN_SETSID;
#else
            rc = ENOTSUP;
#endif
        }
        if (rc == 0)
            rc = posix_spawnattr_setflags(&at, flags);
    }
    if (rc == 0) {
        if (use_p)
            rc = posix_spawnp(pid, prog, &fa, &at, r->argv, envp);
        else
            rc = posix_spawn(pid, prog, &fa, &at, r->argv, envp);
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    br__free(found);
    return rc ? -rc : 0;
}
