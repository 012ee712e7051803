/* process_daemon.c: a daemon process ends with its parent.
 *
 * Ports 003_1126844284e665b9.txt, "12. 守护进程daemon=True 主进程结束，子进程也结束":
 *   p1 = Process(target=run1, args=(li,)); p1.daemon = True; p1.start()
 *   for i in li: print(i)      # nothing: the main process ends, the child with it
 * The child here sleeps 300 ms before it would print; it never gets there.
 *
 * `process_daemon crash`: the parent doesn't end normally but is killed (SIGKILL, as in
 * a crash); its daemon child dies with it all the same (braid asks the kernel for that:
 * PR_SET_PDEATHSIG). The main program runs that parent as a process of its own and
 * joins it.
 */
#include "example.h"

#include <braid/process.h>

#include <signal.h>
#include <string.h>

static int run1(br_task *t) {
    (void)t;
    br_sleep(300 * BR_MSEC);
    printf("run1函数执行完成 (a daemon child outlived its parent!)\n");
    return 0;
}

/* The parent that crashes: starts the daemon child, then is killed. */
static int crashing_parent(br_task *t) {
    (void)t;
    br_process_opts o = {.name = "daemon-child", .daemon = true};
    br_process *p1;
    must(br_process_start(&p1, run1, NULL, 0, &o), "p1.start");
    printf("parent %d: daemon child %d started; now the parent is killed\n", br_getpid(),
           br_process_pid(p1));
    fflush(stdout);
    raise(SIGKILL);
    return 0;
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "crash") == 0) {
        br_process *parent;
        must(br_process_start(&parent, crashing_parent, NULL, 0, NULL), "parent.start");
        must(br_process_join(parent, BR_FOREVER), "parent.join");
        int code;
        must(br_process_exitcode(parent, &code), "parent.exitcode");
        printf("parent exitcode %d\n", code); /* -9 */
        br_process_free(parent);
        return 0;
    }
    br_process_opts o = {.daemon = true};
    br_process *p1;
    must(br_process_start(&p1, run1, NULL, 0, &o), "p1.start");
    printf("daemon: %s\n", br_process_is_daemon(p1) ? "yes" : "no");
    printf("main process ends\n"); /* braid terminates the daemon child at exit */
    return 0;
}
