/* A program that misuses braid with panic on, linked against the shared libbraid (as
 * users link it) and with -rdynamic (misuse_from_helper is made visible for it: the
 * build hides symbols by default), for core.misuse.shared_library_names_the_caller:
 * its report must name misuse_from_helper as the caller. */
#include <braid.h>

void misuse_from_helper(void);

__attribute__((noinline, visibility("default"))) void misuse_from_helper(void) {
    br_lock l = BR_LOCK_INIT;
    br_lock_release(&l); /* not held: aborts */
}

int main(void) {
    br_set_panic_on_misuse(true);
    misuse_from_helper();
    return 0; /* not reached */
}
