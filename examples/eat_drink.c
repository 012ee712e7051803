/* eat_drink.c: two named threads, with and without join, daemon or not.
 *
 * Ports 002_777bae947f90e707.txt, "多线程编程 - threading", the first three listings:
 * eat() and drink() each print "start ...", sleep 2 s and print "end ..."; main starts
 * both and prints "last time" at once. Then thread1.setDaemon(True) /
 * thread2.setDaemon(True), and then thread1.join() / thread2.join(). The mode argument
 * picks the variant:
 *   eat_drink          neither daemon nor joined: main's "last time" is about 0, and
 *                      the process still waits for both threads when main returns
 *   eat_drink daemon   both daemon: main returns and the process ends at once; neither
 *                      "end" line is ever printed
 *   eat_drink join     main joins both: "last time" is about 2 (scaled)
 *   eat_drink mixed    eat is a daemon that would sleep twice as long, drink is not: the
 *                      exit waits for drink, not for eat
 * Sleeps scaled by 0.25 (2 s -> 0.5 s). The threads are named "eat" and "drink" (the
 * tutorial leaves Python's Thread-1 and Thread-2).
 */
#include <braid.h>

#include "example.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCALE 0.25

static double eat_seconds = 2 * SCALE;

static void eat(void *x) {
    (void)x;
    printf("start eat (thread %s)\n", br_thread_current_name());
    br_sleep_s(eat_seconds);
    printf("end eat\n");
}

static void drink(void *x) {
    (void)x;
    printf("start drink (thread %s)\n", br_thread_current_name());
    br_sleep_s(2 * SCALE);
    printf("end drink\n");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "plain";
    bool join = strcmp(mode, "join") == 0;
    bool eat_daemon = strcmp(mode, "daemon") == 0 || strcmp(mode, "mixed") == 0;
    bool drink_daemon = strcmp(mode, "daemon") == 0;
    if (!join && !eat_daemon && strcmp(mode, "plain") != 0) {
        fprintf(stderr, "usage: %s [plain|daemon|join|mixed]\n", argv[0]);
        return 2;
    }
    if (strcmp(mode, "mixed") == 0)
        eat_seconds = 4 * SCALE;
    setvbuf(stdout, NULL, _IOLBF, 0);

    br_thread *thread1, *thread2;
    int64_t start_time = br_now();
    must(br_thread_start(&thread1, eat, "",
                         &(br_thread_opts){.name = "eat", .daemon = eat_daemon}),
         "start"); /* 启动线程 */
    must(br_thread_start(&thread2, drink, "",
                         &(br_thread_opts){.name = "drink", .daemon = drink_daemon}),
         "start");
    printf("eat daemon: %s, drink daemon: %s\n", br_thread_is_daemon(thread1) ? "yes" : "no",
           br_thread_is_daemon(thread2) ? "yes" : "no");
    if (join) {
        must(br_thread_join(thread1, BR_FOREVER), "join");
        must(br_thread_join(thread2, BR_FOREVER), "join");
    }
    printf("last time: %.3f\n", (double)(br_now() - start_time) / BR_SEC);
    br_thread_free(thread1); /* the handles; the threads run on */
    br_thread_free(thread2);
    printf("main returns\n");
    return 0; /* exit() waits for the non-daemon threads still running */
}
