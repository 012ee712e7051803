/* process_args.c: two processes, started with arguments and joined.
 *
 * Ports 003_1126844284e665b9.txt, "5. 代码实现" and "6. 多进程传参" (and 004's
 * "多进程": p = Process(target=f, args=('bob',)); p.start(); p.join()):
 *   p1 = Process(target=run1, args=(5,))
 *   p2 = Process(target=run2, args=(5, "run2"))
 *   p1.start(); p2.start(); p1.join(); p2.join()
 * The 1 s sleeps are 40 ms here.
 *
 * Porting notes. A process runs a task (braid/task.h): its arguments are bytes, so
 * Python's args tuple becomes a struct copied into the child. `process_args spawn` runs
 * the same with the spawn start method: the child re-executes this program, and
 * br_process_main at the top of main (Python's `if __name__ == '__main__':`) diverts it
 * to the task.
 */
#include "example.h"

#include <braid/process.h>

#include <string.h>

typedef struct run_args {
    int num;
    char name[16];
} run_args;

static int run1(br_task *t) {
    const run_args *a = br_task_arg(t, NULL);
    for (int i = 0; i < a->num; i++) {
        br_sleep(40 * BR_MSEC);
        printf("run1函数执行完成\n");
        fflush(stdout);
    }
    return 0;
}

static int run2(br_task *t) {
    const run_args *a = br_task_arg(t, NULL);
    for (int i = 0; i < a->num; i++) {
        br_sleep(40 * BR_MSEC);
        printf("%s函数执行完成\n", a->name);
        fflush(stdout);
    }
    return 0;
}

int main(int argc, char **argv) {
    br_process_main(argc, argv); /* if __name__ == '__main__': */
    if (argc > 1 && strcmp(argv[1], "spawn") == 0)
        must(br_set_start_method(BR_START_SPAWN), "set_start_method");
    int64_t t1 = br_now();
    run_args a1 = {.num = 5}, a2 = {.num = 5, .name = "run2"};
    br_process *p1, *p2;
    must(br_process_start(&p1, run1, &a1, sizeof a1, NULL), "p1.start"); /* 开启p1进程 */
    must(br_process_start(&p2, run2, &a2, sizeof a2, NULL), "p2.start");
    must(br_process_join(p1, BR_FOREVER), "p1.join"); /* 阻塞等待p1子进程执行完 */
    must(br_process_join(p2, BR_FOREVER), "p2.join");
    int c1, c2;
    must(br_process_exitcode(p1, &c1), "p1.exitcode");
    must(br_process_exitcode(p2, &c2), "p2.exitcode");
    printf("子进程执行完成,继续开始主进程\n");
    printf("%s: exitcodes %d %d\n", br_start_method_name(br_get_start_method()), c1, c2);
    printf("%.3f\n", (double)(br_now() - t1) / BR_SEC);
    br_process_free(p1);
    br_process_free(p2);
    return 0;
}
