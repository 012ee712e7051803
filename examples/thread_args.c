/* thread_args.c: the four steps of a thread: a function, create, start, join.
 *
 * Ports 000_b9e24c88e52a00dc.txt, In [4] ("Python创建多线程的方法"):
 *   1. 准备一个函数 my_func(a, b)   2. t = threading.Thread(target=my_func, args=(100, 200))
 *   3. t.start()                     4. t.join()
 * (In the notebook my_func calls an undefined do_craw and the thread dies with a
 * NameError; here do_craw exists and prints its arguments.)
 *
 * Porting note: a thread function takes one void *; Python's args tuple becomes a
 * struct that must outlive the thread (here it lives in main, which joins).
 */
#include <braid.h>

#include <stdio.h>
#include <stdlib.h>

typedef struct my_func_args {
    int a, b;
} my_func_args;

static void do_craw(int a, int b) { /* 执行爬虫方法 */
    printf("do_craw(%d, %d) in thread %s\n", a, b, br_thread_current_name());
}

static void my_func(void *arg) { /* 1. 准备一个函数 */
    my_func_args *args = arg;
    do_craw(args->a, args->b);
}

int main(void) {
    my_func_args args = {100, 200};
    br_thread *t;
    int rc = br_thread_start(&t, my_func, &args, NULL); /* 2 + 3. 创建并启动线程 */
    if (rc != 0) {
        fprintf(stderr, "br_thread_start: %s\n", br_strerror(rc));
        return 1;
    }
    rc = br_thread_join(t, BR_FOREVER); /* 4. 等待结束 */
    br_thread_free(t);
    printf("joined: %s\n", br_err_name(rc));
    return rc == 0 ? 0 : 1;
}
