/* cond_poem.c: two threads recite a poem, line by line, through a Condition.
 *
 * Ports 002_777bae947f90e707.txt, "线程同步 - condition 使用以及源码分析": the threads
 * 天猫精灵 (TianMao) and 小爱 (XiaoAi) share one threading.Condition(); each says a
 * line, notify()s the other and wait()s for its answer, twelve lines in strict
 * alternation, starting with "天猫精灵 : 小爱同学".
 *
 * Porting note: the tutorial's version only works if 小爱 is already waiting when
 * 天猫精灵 says its first line. If 天猫精灵 gets the lock first, its notify() wakes
 * nobody, both threads end up in wait(), and the program hangs (a lost wake-up). The
 * port keeps the shape (one Condition, `with cond:`, notify after each line) and adds
 * what makes a condition variable reliable: a shared state to wait on. `next` is the
 * index of the line to say; each thread waits until it is its turn
 * (br_cond_wait_for, Python's cond.wait_for), says it, advances `next` and notifies.
 * Any start order gives the same twelve lines.
 */
#include <braid.h>

#include "example.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define LINES 12

static const char *const poem[LINES] = {
    "小爱同学",       "在",       /* 天猫精灵, 小爱, ... */
    "我们来对古诗吧", "好啊",     "我住长江头",     "君住长江尾",
    "日日思君不见君", "共饮长江水", "此水几时休",     "此恨何时已",
    "只愿君心似我心", "定不负相思意",
};

typedef struct dialogue {
    br_cond cond; /* threading.Condition(): its own RLock */
    int next;     /* the line to say next; guarded by cond */
} dialogue;

typedef struct speaker {
    dialogue *d;
    int parity; /* 0: says lines 0, 2, 4, ... (天猫精灵); 1: lines 1, 3, ... (小爱) */
} speaker;

static bool my_turn(void *arg) {
    speaker *s = arg;
    return s->d->next >= LINES || s->d->next % 2 == s->parity;
}

static void run(void *arg) {
    speaker *s = arg;
    dialogue *d = s->d;
    BR_WITH(&d->cond) { /* with self.cond: */
        for (;;) {
            must(br_cond_wait_for(&d->cond, my_turn, s, BR_FOREVER), "wait");
            if (d->next >= LINES)
                break;
            printf("%s : %s\n", br_thread_current_name(), poem[d->next]);
            d->next++;
            must(br_cond_notify(&d->cond, 1), "notify");
        }
    }
}

int main(void) {
    dialogue d = {BR_COND_INIT, 0};
    speaker xiaoai_s = {&d, 1}, tianmao_s = {&d, 0};
    br_thread *xiaoai, *tianmao;
    must(br_thread_start(&xiaoai, run, &xiaoai_s, &(br_thread_opts){.name = "小爱"}),
         "start 小爱");
    must(br_thread_start(&tianmao, run, &tianmao_s, &(br_thread_opts){.name = "天猫精灵"}),
         "start 天猫精灵");
    must(br_thread_join(xiaoai, BR_FOREVER), "join");
    must(br_thread_join(tianmao, BR_FOREVER), "join");
    br_thread_free(xiaoai);
    br_thread_free(tianmao);
    must(br_cond_destroy(&d.cond), "destroy");
    return 0;
}
