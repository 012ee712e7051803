/* Function references (process/start.h): a function as it crosses into another process
 * that runs the same program, and the registry of named functions (braid/process.h).
 *
 * Design notes (the protocol a change must keep):
 *
 *   - A reference is plain bytes (br__fnref): made in one process, read in another that
 *     runs the same binary (a spawned child, later an MPI rank), so its layout is shared
 *     by construction; anything that reads one made by another binary must check kind and
 *     the string terminators, as resolve does.
 *   - Module references: the module is found with dl_iterate_phdr, as the loaded object
 *     one of whose PT_LOAD segments with PF_X holds the address; dladdr alone would also
 *     accept data addresses. The main program has dlpi_name "" (glibc lists it first) and
 *     is referred to as path ""; any other module by its absolute, resolved path. The
 *     offset is from dlpi_addr (the load bias), which is what differs between processes
 *     under ASLR.
 *   - Identity: the module's GNU build-id note when it has one (the same build on another
 *     machine has the same id), else its file's size and mtime. A mismatch is an error in
 *     the child (BR_ESTATE), never a call into another build's bytes.
 *   - The child loads a module the parent had (dlopen'ed later, say) with dlopen(RTLD_NOW)
 *     and never closes it.
 *   - Names: the registry maps name -> pointer; a registered pointer crosses by name
 *     (names survive a different build). It only grows; `reg_lock` guards it.
 */
#include "process/start.h"

#include <dlfcn.h>
#include <elf.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void say(char *why, size_t whylen, const char *fmt, ...) BR_PRINTF(3, 4);
static void say(char *why, size_t whylen, const char *fmt, ...) {
    if (!why || whylen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* --- the registry ------------------------------------------------------------------ */

typedef struct reg_entry {
    char name[BR_FN_NAME_MAX];
    br__fnptr fn;
} reg_entry;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *reg;
static size_t reg_n, reg_cap;

static bool name_ok(const char *name) {
    if (!name || !name[0])
        return false;
    return strnlen(name, BR_FN_NAME_MAX) < BR_FN_NAME_MAX;
}

int br_register_fn(const char *name, br_task_fn fn) {
    if (!name_ok(name) || !fn)
        return BR__MISUSE(BR_EINVAL, "br_register_fn: name NULL, empty or too long, or "
                                     "fn NULL");
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++) {
        if (strcmp(reg[i].name, name) == 0) {
            rc = reg[i].fn == (br__fnptr)fn ? 0 : BR_EEXIST;
            goto out;
        }
    }
    if (reg_n == reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 16;
        reg_entry *n = br__realloc(reg, cap * sizeof *n);
        if (!n) {
            rc = BR_ENOMEM;
            goto out;
        }
        reg = n;
        reg_cap = cap;
    }
    strcpy(reg[reg_n].name, name);
    reg[reg_n].fn = (br__fnptr)fn;
    reg_n++;
out:
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static br__fnptr lookup_name(const char *name) {
    br__fnptr fn = NULL;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++)
        if (strcmp(reg[i].name, name) == 0) {
            fn = reg[i].fn;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return fn;
}

static bool lookup_fn(br__fnptr fn, char name[BR_FN_NAME_MAX]) {
    bool found = false;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < reg_n; i++)
        if (reg[i].fn == fn) {
            memcpy(name, reg[i].name, BR_FN_NAME_MAX);
            found = true;
            break;
        }
    pthread_mutex_unlock(&reg_lock);
    return found;
}

int br_registered_fn(const char *name, br_task_fn *out) {
    if (!name_ok(name) || !out)
        return BR__MISUSE(BR_EINVAL, "br_registered_fn: name or out NULL");
    br__fnptr fn = lookup_name(name);
    *out = (br_task_fn)fn;
    return fn ? 0 : BR_ENOENT;
}

/* --- modules -------------------------------------------------------------------------- */

/* What a walk over the loaded modules looks for and finds. */
typedef struct walk {
    uintptr_t addr;      /* find the module holding addr in an executable segment... */
    const char *path;    /* ...or the module called path ("" the main program) */
    bool found, first;
    bool exec;           /* addr (or base + offset) is in a PF_X PT_LOAD segment */
    uint64_t offset;     /* when looking by path: the offset to check */
    uintptr_t base;
    char name[BR__FNREF_PATH_MAX];
    bool name_too_long;
    unsigned char id[BR__FNREF_ID_MAX];
    uint32_t id_len;
} walk;

static bool in_exec_segment(const struct dl_phdr_info *info, uintptr_t a) {
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (a >= lo && a < lo + ph->p_memsz)
            return true;
    }
    return false;
}

static void read_build_id(const struct dl_phdr_info *info, walk *w) {
    w->id_len = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const char *p = (const char *)(info->dlpi_addr + ph->p_vaddr);
        const char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)(const void *)p;
            const char *nm = p + sizeof *n;
            const char *desc = nm + ((n->n_namesz + 3) & ~3u);
            const char *next = desc + ((n->n_descsz + 3) & ~3u);
            if (next > end)
                break;
            if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
                memcmp(nm, "GNU", 4) == 0 && n->n_descsz > 0) {
                uint32_t len = n->n_descsz;
                if (len > BR__FNREF_ID_MAX)
                    len = BR__FNREF_ID_MAX;
                memcpy(w->id, desc, len);
                w->id_len = len;
                return;
            }
            p = next;
        }
    }
}

static int walk_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    (void)size;
    walk *w = arg;
    bool first = w->first;
    w->first = false;
    const char *nm = info->dlpi_name ? info->dlpi_name : "";
    if (w->path) {
        /* By path: the main program is the first entry (its name is ""). */
        bool match = w->path[0] ? strcmp(nm, w->path) == 0 : first;
        if (!match)
            return 0;
        w->exec = in_exec_segment(info, info->dlpi_addr + (uintptr_t)w->offset);
    } else {
        if (!in_exec_segment(info, w->addr))
            return 0;
        w->exec = true;
    }
    w->found = true;
    w->base = info->dlpi_addr;
    size_t l = strlen(first ? "" : nm);
    w->name_too_long = l >= sizeof w->name;
    if (!w->name_too_long)
        memcpy(w->name, first ? "" : nm, l + 1);
    read_build_id(info, w);
    return 1;
}

/* The file's size and mtime, for a module without a build-id. */
static int file_identity(const char *path, uint64_t *size, int64_t *mtime_ns) {
    struct stat st;
    if (stat(path[0] ? path : "/proc/self/exe", &st) != 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

int br__fnref_make(br__fnref *ref, br__fnptr fn, char *why, size_t whylen) {
    if (!ref || !fn) {
        say(why, whylen, "no function");
        return BR_EINVAL;
    }
    memset(ref, 0, sizeof *ref);
    if (lookup_fn(fn, ref->name)) {
        ref->kind = BR__FNREF_NAME;
        return 0;
    }
    walk w = {.addr = (uintptr_t)fn, .first = true};
    dl_iterate_phdr(walk_cb, &w);
    if (!w.found) {
        say(why, whylen,
            "function %p is not code in a loaded module (a heap, stack or JIT address?): "
            "it can't reach another process; register a module function with "
            "br_register_fn or use BR_START_FORK",
            (void *)(uintptr_t)fn);
        return BR_EINVAL;
    }
    if (w.name_too_long) {
        say(why, whylen, "the module holding function %p has a path over %d bytes",
            (void *)(uintptr_t)fn, BR__FNREF_PATH_MAX - 1);
        return BR_EINVAL;
    }
    if (w.name[0]) {
        /* Another process must be able to load it by that path. */
        char real[PATH_MAX];
        if (w.name[0] != '/' && !realpath(w.name, real)) {
            say(why, whylen,
                "function %p is in module '%s', which has no file another process could "
                "load",
                (void *)(uintptr_t)fn, w.name);
            return BR_EINVAL;
        }
        if (w.name[0] != '/') {
            if (strlen(real) >= sizeof ref->path) {
                say(why, whylen, "module path too long: %s", real);
                return BR_EINVAL;
            }
            strcpy(w.name, real);
        }
        struct stat st;
        if (stat(w.name, &st) != 0) {
            say(why, whylen, "function %p is in module '%s', which can't be found (%s)",
                (void *)(uintptr_t)fn, w.name, strerror(errno));
            return BR_EINVAL;
        }
    }
    ref->kind = BR__FNREF_MODULE;
    ref->offset = (uint64_t)((uintptr_t)fn - w.base);
    memcpy(ref->path, w.name, strlen(w.name) + 1);
    ref->id_len = w.id_len;
    memcpy(ref->id, w.id, w.id_len);
    if (w.id_len == 0) {
        int rc = file_identity(ref->path, &ref->file_size, &ref->file_mtime_ns);
        if (rc != 0) {
            say(why, whylen, "module '%s': can't read its size and time (%s)",
                ref->path[0] ? ref->path : "(main program)", br_strerror(rc));
            return BR_EINVAL;
        }
    }
    return 0;
}

int br__fnref_resolve(const br__fnref *ref, br__fnptr *out, char *why, size_t whylen) {
    if (!ref || !out) {
        say(why, whylen, "no reference");
        return BR_EINVAL;
    }
    *out = NULL;
    if (ref->kind == BR__FNREF_NAME) {
        if (memchr(ref->name, 0, sizeof ref->name) == NULL || !ref->name[0]) {
            say(why, whylen, "malformed function name");
            return BR_EINVAL;
        }
        br__fnptr fn = lookup_name(ref->name);
        if (!fn) {
            say(why, whylen,
                "no function registered as '%s' in this process (br_register_fn must "
                "run before br_process_main)",
                ref->name);
            return BR_ENOENT;
        }
        *out = fn;
        return 0;
    }
    if (ref->kind != BR__FNREF_MODULE || memchr(ref->path, 0, sizeof ref->path) == NULL ||
        ref->id_len > BR__FNREF_ID_MAX) {
        say(why, whylen, "malformed function reference");
        return BR_EINVAL;
    }
    walk w = {.path = ref->path, .offset = ref->offset, .first = true};
    dl_iterate_phdr(walk_cb, &w);
    if (!w.found && ref->path[0]) {
        if (!dlopen(ref->path, RTLD_NOW | RTLD_LOCAL)) {
            const char *e = dlerror();
            say(why, whylen, "can't load module '%s': %s", ref->path, e ? e : "?");
            return BR_ENOENT;
        }
        w = (walk){.path = ref->path, .offset = ref->offset, .first = true};
        dl_iterate_phdr(walk_cb, &w);
    }
    const char *shown = ref->path[0] ? ref->path : "(main program)";
    if (!w.found) {
        say(why, whylen, "module '%s' is not loaded", shown);
        return BR_ENOENT;
    }
    bool same;
    if (ref->id_len) {
        same = w.id_len == ref->id_len && memcmp(w.id, ref->id, ref->id_len) == 0;
    } else {
        uint64_t size = 0;
        int64_t mtime = 0;
        same = w.id_len == 0 && file_identity(ref->path, &size, &mtime) == 0 &&
               size == ref->file_size && mtime == ref->file_mtime_ns;
    }
    if (!same) {
        say(why, whylen, "module '%s' is another build than the parent's", shown);
        return BR_ESTATE;
    }
    if (!w.exec) {
        say(why, whylen, "offset 0x%llx is not code in module '%s'",
            (unsigned long long)ref->offset, shown);
        return BR_EINVAL;
    }
    *out = (br__fnptr)(w.base + (uintptr_t)ref->offset);
    return 0;
}
