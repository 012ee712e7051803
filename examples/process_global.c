/* process_global.c: a child changes its copy of a global, not the parent's.
 *
 * Ports 003_1126844284e665b9.txt, "7. 子进程未修改全局变量":
 *   num = 2
 *   def run1(): global num; num = 1
 *   p1 = Process(target=run1); p1.start(); p1.join(); print(num)   # 2
 */
#include "example.h"

#include <braid/process.h>

static int num = 2;

static int run1(br_task *t) {
    (void)t;
    num = 1;
    printf("run1函数执行完成 (num = %d in the child)\n", num);
    return 0;
}

int main(int argc, char **argv) {
    br_process_main(argc, argv);
    br_process *p1;
    must(br_process_start(&p1, run1, NULL, 0, NULL), "p1.start");
    must(br_process_join(p1, BR_FOREVER), "p1.join");
    br_process_free(p1);
    printf("%d\n", num); /* 2 */
    return 0;
}
