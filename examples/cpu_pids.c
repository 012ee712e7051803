/* cpu_pids.c: the CPU count and process ids.
 *
 * Ports 003_1126844284e665b9.txt, "11. 计算cpu数量":
 *   print(multiprocessing.cpu_count()); os.getpid()
 * and shows each child's pid and parent pid (os.getppid()), with its name.
 */
#include "example.h"

#include <braid/process.h>

static int who(br_task *t) {
    (void)t;
    printf("%s: pid %d, parent %d\n", br_process_current_name(), br_getpid(),
           br_getppid());
    return 0;
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    printf("cpu_count: %d\n", br_cpu_count());
    printf("main: pid %d (%s)\n", br_getpid(), br_process_current_name());
    fflush(stdout);
    for (int i = 0; i < 2; i++) {
        br_process *p;
        must(br_process_start(&p, who, NULL, 0, NULL), "start");
        must(br_process_join(p, BR_FOREVER), "join");
        printf("joined pid %d\n", br_process_pid(p));
        br_process_free(p);
    }
    return 0;
}
