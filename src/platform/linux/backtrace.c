/* The platform's backtrace (platform/platform.h): glibc's <execinfo.h> unwinder and
 * dladdr, for the misuse report on its way to abort().
 *
 * Finding the caller: every frame whose return address lies in the module (the ELF
 * object) holding this file's code belongs to libbraid, when libbraid is a shared
 * library; the innermost frame in another module is the code that called into it (or
 * a callback braid ran, which is where a task or a done-callback misused an API).
 * Linked statically, libbraid shares the program's module and no frame can be told
 * apart that way: the report is then the backtrace alone. dladdr names only symbols in
 * the dynamic symbol table, so a program's own functions have names only if it was
 * linked with -rdynamic; the module and offset are always there. */
#include "core/lib.h"

#include <stdio.h>
#include <unistd.h>

#if defined(__has_include)
#  if __has_include(<execinfo.h>) && __has_include(<dlfcn.h>) && __has_include(<sys/auxv.h>)
#    define HAVE_BACKTRACE 1
#  endif
#endif

#ifdef HAVE_BACKTRACE
#  include <dlfcn.h>
#  include <execinfo.h>
#  include <sys/auxv.h>

enum { MAX_FRAMES = 64 };

/* The base of the module holding addr (info filled in), or NULL if none does. */
static const void *module_of(const void *addr, Dl_info *info) {
    if (addr == NULL || dladdr(addr, info) == 0)
        return NULL;
    return info->dli_fbase;
}

void br__print_backtrace(int skip) {
    void *frames[MAX_FRAMES];
    int n = backtrace(frames, MAX_FRAMES);
    int first = skip + 1; /* frame 0 is this function */
    Dl_info self, prog, at;
    const void *own = module_of((const void *)(uintptr_t)&br__print_backtrace, &self);
    const void *main_module = module_of((const void *)(uintptr_t)getauxval(AT_PHDR), &prog);
    if (own != NULL && own != main_module) {
        for (int i = first; i < n; i++) {
            const void *m = module_of(frames[i], &at);
            if (m == own)
                continue;
            if (m == NULL)
                fprintf(stderr, "braid: called from %p\n", frames[i]);
            else if (at.dli_sname != NULL)
                fprintf(stderr, "braid: called from %s+0x%zx (%s+0x%zx)\n", at.dli_fname,
                        (size_t)((const char *)frames[i] - (const char *)m), at.dli_sname,
                        (size_t)((const char *)frames[i] - (const char *)at.dli_saddr));
            else
                fprintf(stderr, "braid: called from %s+0x%zx\n", at.dli_fname,
                        (size_t)((const char *)frames[i] - (const char *)m));
            break;
        }
    }
    fprintf(stderr, "braid: backtrace, innermost first:\n");
    fflush(stderr);
    if (n > first)
        backtrace_symbols_fd(frames + first, n - first, STDERR_FILENO);
}

#else

void br__print_backtrace(int skip) {
    (void)skip;
}

#endif
