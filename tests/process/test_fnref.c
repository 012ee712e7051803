/* Function references (process/start.h): a function in the executable, in libbraid.so
 * (dlopen'ed), by registered name; a heap or data pointer refused at the parent's call
 * with BR_EINVAL and a reason; a reference from another build refused in the resolver
 * (BR_ESTATE); a spawned child that must load the module itself. */
#include "harness.h"
#include "braid/process.h"
#include "process/start.h"

#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int task_in_exe(br_task *t) { return br_task_return_i64(t, 42); }
static int task_other(br_task *t) { return br_task_return_i64(t, 43); }

static int some_data = 7;

static void in_executable(void **state) {
    (void)state;
    br__fnref ref;
    char why[256] = "";
    BR_CHECK_OK(br__fnref_make(&ref, (br__fnptr)task_in_exe, why, sizeof why));
    BR_CHECK_EQ(ref.kind, BR__FNREF_MODULE);
    BR_CHECK_EQ(ref.path[0], 0); /* the main program */
    br__fnptr fn = NULL;
    BR_CHECK_OK(br__fnref_resolve(&ref, &fn, why, sizeof why));
    BR_CHECK(fn == (br__fnptr)task_in_exe);
}

static void refused_pointers(void **state) {
    (void)state;
    br__fnref ref;
    char why[256] = "";
    void *heap = malloc(64);
    BR_CHECK(heap != NULL);
    BR_CHECK_ERR(br__fnref_make(&ref, (br__fnptr)heap, why, sizeof why), BR_EINVAL);
    BR_CHECK(strstr(why, "not code in a loaded module") != NULL);
    free(heap);
    why[0] = 0;
    BR_CHECK_ERR(br__fnref_make(&ref, (br__fnptr)(void *)&some_data, why, sizeof why),
                 BR_EINVAL);
    BR_CHECK(strstr(why, "not code") != NULL);
    int local = 0;
    BR_CHECK_ERR(br__fnref_make(&ref, (br__fnptr)(void *)&local, NULL, 0), BR_EINVAL);
    BR_CHECK_ERR(br__fnref_make(&ref, NULL, NULL, 0), BR_EINVAL);
    BR_CHECK_ERR(br__fnref_make(NULL, (br__fnptr)task_in_exe, NULL, 0), BR_EINVAL);
}

static void registered_names(void **state) {
    (void)state;
    BR_CHECK_OK(br_register_fn("fnref.test", task_in_exe));
    BR_CHECK_OK(br_register_fn("fnref.test", task_in_exe)); /* the same pair again */
    BR_CHECK_ERR(br_register_fn("fnref.test", task_other), BR_EEXIST);
    BR_CHECK_ERR(br_register_fn("", task_other), BR_EINVAL);
    BR_CHECK_ERR(br_register_fn(NULL, task_other), BR_EINVAL);
    BR_CHECK_ERR(br_register_fn("x", NULL), BR_EINVAL);
    char longname[BR_FN_NAME_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[BR_FN_NAME_MAX] = 0;
    BR_CHECK_ERR(br_register_fn(longname, task_other), BR_EINVAL);
    longname[BR_FN_NAME_MAX - 1] = 0; /* 63 bytes: the longest */
    BR_CHECK_OK(br_register_fn(longname, task_other));
    br_task_fn fn = NULL;
    BR_CHECK_OK(br_registered_fn("fnref.test", &fn));
    BR_CHECK(fn == task_in_exe);
    BR_CHECK_ERR(br_registered_fn("fnref.none", &fn), BR_ENOENT);
    BR_CHECK(fn == NULL);

    br__fnref ref;
    BR_CHECK_OK(br__fnref_make(&ref, (br__fnptr)task_in_exe, NULL, 0));
    BR_CHECK_EQ(ref.kind, BR__FNREF_NAME);
    BR_CHECK(strcmp(ref.name, "fnref.test") == 0);
    br__fnptr got = NULL;
    BR_CHECK_OK(br__fnref_resolve(&ref, &got, NULL, 0));
    BR_CHECK(got == (br__fnptr)task_in_exe);
    char why[256] = "";
    strcpy(ref.name, "fnref.elsewhere");
    BR_CHECK_ERR(br__fnref_resolve(&ref, &got, why, sizeof why), BR_ENOENT);
    BR_CHECK(strstr(why, "fnref.elsewhere") != NULL);
}

static void other_build_refused(void **state) {
    (void)state;
    br__fnref ref;
    BR_CHECK_OK(br__fnref_make(&ref, (br__fnptr)task_in_exe, NULL, 0));
    br__fnref bad = ref;
    char why[256] = "";
    br__fnptr fn = NULL;
    if (bad.id_len)
        bad.id[0] ^= 0xff;
    else
        bad.file_size++;
    BR_CHECK_ERR(br__fnref_resolve(&bad, &fn, why, sizeof why), BR_ESTATE);
    BR_CHECK(strstr(why, "another build") != NULL);
    BR_CHECK(fn == NULL);
    bad = ref;
    bad.offset = 0; /* the ELF header: not code */
    BR_CHECK_ERR(br__fnref_resolve(&bad, &fn, NULL, 0), BR_EINVAL);
    bad = ref;
    bad.kind = 99;
    BR_CHECK_ERR(br__fnref_resolve(&bad, &fn, NULL, 0), BR_EINVAL);
    bad = ref;
    memset(bad.path, 'x', sizeof bad.path); /* no terminator */
    BR_CHECK_ERR(br__fnref_resolve(&bad, &fn, NULL, 0), BR_EINVAL);
    bad = ref;
    strcpy(bad.path, "/nonexistent/libnothing.so");
    BR_CHECK_ERR(br__fnref_resolve(&bad, &fn, why, sizeof why), BR_ENOENT);
    BR_CHECK(strstr(why, "can't load") != NULL);
}

/* libbraid.so beside the test's build tree (build/tests/.. -> build/src/libbraid.so.0),
 * or NULL in a static-only build. */
static void *open_libbraid(char path[PATH_MAX], size_t size) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *dir = dirname(exe);
    const char *up[] = {"..", "../.."};
    for (size_t i = 0; i < 2; i++) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s/src/libbraid.so.0", dir, up[i]);
        if (access(p, R_OK) == 0 && realpath(p, path) && strlen(path) < size)
            return dlopen(path, RTLD_NOW | RTLD_LOCAL);
    }
    return NULL;
}

static void in_shared_library(void **state) {
    (void)state;
    char path[PATH_MAX];
    void *h = open_libbraid(path, sizeof path);
    if (!h) {
        print_message("no libbraid.so.0 beside the tests: skipped\n");
        skip();
    }
    br__fnptr f = (br__fnptr)dlsym(h, "br_strerror");
    BR_CHECK(f != NULL);
    br__fnref ref;
    char why[256] = "";
    BR_CHECK_OK(br__fnref_make(&ref, f, why, sizeof why));
    BR_CHECK_EQ(ref.kind, BR__FNREF_MODULE);
    BR_CHECK(ref.path[0] == '/');
    BR_CHECK(strstr(ref.path, "libbraid.so") != NULL);
    br__fnptr got = NULL;
    BR_CHECK_OK(br__fnref_resolve(&ref, &got, why, sizeof why));
    BR_CHECK(got == f);
    /* The same function as seen by the executable (braid linked statically here) is
     * another module's: the references differ. */
    br__fnref mine;
    BR_CHECK_OK(br__fnref_make(&mine, (br__fnptr)br_strerror, NULL, 0));
    BR_CHECK(mine.path[0] == 0);
    dlclose(h);
}

/* A spawned child resolves a reference into a module it hasn't loaded: its argument is
 * the reference; it loads libbraid.so.0 and checks the pointer against dlsym's. */
static int resolve_in_child(br_task *t) {
    size_t len = 0;
    const br__fnref *ref = br_task_arg(t, &len);
    if (len != sizeof *ref)
        return br_task_fail(t, BR_EINVAL, "argument of %zu bytes", len);
    void *before = dlopen(ref->path, RTLD_NOW | RTLD_NOLOAD);
    if (before)
        return br_task_fail(t, BR_ESTATE, "module loaded already");
    char why[256] = "";
    br__fnptr fn = NULL;
    int rc = br__fnref_resolve(ref, &fn, why, sizeof why);
    if (rc != 0)
        return br_task_fail(t, rc, "%s", why);
    void *h = dlopen(ref->path, RTLD_NOW | RTLD_NOLOAD);
    if (!h || (br__fnptr)dlsym(h, "br_strerror") != fn)
        return br_task_fail(t, BR_EINVAL, "resolved to another address");
    const char *(*se)(int) = (const char *(*)(int))fn;
    if (strcmp(se(BR_ETIMEDOUT), br_strerror(BR_ETIMEDOUT)) != 0)
        return br_task_fail(t, BR_EINVAL, "the function does something else");
    return 0;
}

static void spawned_child_loads_module(void **state) {
    (void)state;
    char path[PATH_MAX];
    void *h = open_libbraid(path, sizeof path);
    if (!h) {
        print_message("no libbraid.so.0 beside the tests: skipped\n");
        skip();
    }
    br__fnref ref;
    BR_CHECK_OK(br__fnref_make(&ref, (br__fnptr)dlsym(h, "br_strerror"), NULL, 0));
    br__child_spec spec = {.fn = resolve_in_child, .arg = &ref, .len = sizeof ref,
                           .name = "fnref-child", .method = BR_START_SPAWN};
    br__child c;
    char why[256] = "";
    BR_CHECK_OK(br__child_start(&spec, &c, why, sizeof why));
    int64_t code = -1000;
    BR_CHECK_OK(br_future_result_i64(c.exit, br_test_hang_guard(), &code));
    BR_CHECK_EQ(code, 0);
    br__child_close(&c);
    dlclose(h);
}

/* A function registered by name before br_process_main (here: a constructor, which
 * runs in every spawned child too) crosses by its name. */
static int named_task(br_task *t) {
    return br_task_arg_i64(t) == 77 ? 0 : br_task_fail(t, BR_EINVAL, "argument");
}
static int unnamed_elsewhere(br_task *t) {
    (void)t;
    return 0;
}
__attribute__((constructor)) static void register_named(void) {
    if (br_register_fn("fnref.named_task", named_task) != 0)
        abort();
}

static int64_t spawn_and_wait(br_task_fn fn, int64_t arg) {
    br__child_spec spec = {.fn = fn, .arg = &arg, .len = sizeof arg,
                           .method = BR_START_SPAWN, .name = "named"};
    br__child c;
    BR_CHECK_OK(br__child_start(&spec, &c, NULL, 0));
    int64_t code = -1000;
    BR_CHECK_OK(br_future_result_i64(c.exit, br_test_hang_guard(), &code));
    br__child_close(&c);
    return code;
}

static void spawned_child_by_name(void **state) {
    (void)state;
    br__fnref ref;
    BR_CHECK_OK(br__fnref_make(&ref, (br__fnptr)named_task, NULL, 0));
    BR_CHECK_EQ(ref.kind, BR__FNREF_NAME);
    BR_CHECK_EQ(spawn_and_wait(named_task, 77), 0);
    BR_CHECK_EQ(spawn_and_wait(named_task, 1), 1); /* it ran, and failed: its check */
    /* Registered here only, after br_process_main: the child can't resolve the name. It
     * says so and exits with 1; nothing crashes. */
    BR_CHECK_OK(br_register_fn("fnref.parent_only", unnamed_elsewhere));
    BR_CHECK_EQ(spawn_and_wait(unnamed_elsewhere, 0), 1);
}

BR_TEST_MAIN(cmocka_unit_test(in_executable), cmocka_unit_test(refused_pointers),
             cmocka_unit_test(registered_names), cmocka_unit_test(other_build_refused),
             cmocka_unit_test(in_shared_library),
             cmocka_unit_test(spawned_child_loads_module),
             cmocka_unit_test(spawned_child_by_name))
