/* lock_print_time.c: two threads each print the time three times, one after the other,
 * because each holds a Lock while it prints.
 *
 * Ports 001_0d5cedca80a60342.txt, "使用 Thread 对象的 Lock 实现": MyThread(1, "Thread-1",
 * 1) and MyThread(2, "Thread-2", 2); run() prints "开启线程: <name>", takes my_lock,
 * calls print_time(name, delay, 3) (sleep delay, print "#<name>: <ctime>", three
 * times) and releases; main joins both and prints "退出主线程". The three lines of one
 * thread are never interleaved with the other's.
 *
 * Porting note: delays scaled by 0.05 (1 s -> 50 ms, 2 s -> 100 ms); ctime's seconds
 * barely move at that scale, so each line also shows the milliseconds since start.
 */
#include <braid.h>

#include "example.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SCALE 0.05

static br_lock my_lock = BR_LOCK_INIT;
static int64_t t0;

typedef struct my_thread {
    br_thread *thread;
    int thread_id;
    const char *name;
    int counter; /* the delay, in the tutorial's seconds */
} my_thread;

static void print_time(const char *thread_name, int delay, int counter) {
    while (counter) {
        br_sleep_s(delay * SCALE);
        time_t now = time(NULL);
        char buf[32];
        strftime(buf, sizeof buf, "%a %b %d %H:%M:%S %Y", localtime(&now));
        printf("#%s: %s (+%lld ms)\n", thread_name, buf,
               (long long)((br_now() - t0) / BR_MSEC));
        counter--;
    }
}

static void run(void *arg) {
    my_thread *self = arg;
    printf("开启线程: %s\n", self->name);
    must(br_lock_acquire(&my_lock, BR_FOREVER), "acquire"); /* 获取锁, 用于线程同步 */
    print_time(self->name, self->counter, 3);
    must(br_lock_release(&my_lock), "release"); /* 释放锁 */
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    t0 = br_now();
    my_thread thread1 = {NULL, 1, "Thread-1", 1}, thread2 = {NULL, 2, "Thread-2", 2};
    my_thread *threads[] = {&thread1, &thread2};
    for (int i = 0; i < 2; i++) /* 创建新线程 */
        must(br_thread_start(&threads[i]->thread, run, threads[i],
                             &(br_thread_opts){.name = threads[i]->name}),
             "start");
    for (int i = 0; i < 2; i++) {
        must(br_thread_join(threads[i]->thread, BR_FOREVER), "join");
        br_thread_free(threads[i]->thread);
    }
    printf("退出主线程\n");
    return 0;
}
