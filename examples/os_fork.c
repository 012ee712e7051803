/* os_fork.c: os.fork, the parent and the child.
 *
 * Ports 002_777bae947f90e707.txt, "multiprocessing 多进程编程" (the fork listing):
 *   pid = os.fork()
 *   print("jack")
 *   if pid == 0: print('子进程 {} ,父进程是: {}.'.format(os.getpid(), os.getppid()))
 *   else:        print('我是父进程:{}.'.format(pid))
 *   time.sleep(2)
 * Both processes print "jack". The Python parent sleeps so that the child prints before
 * the program ends; the port waits for the child instead (os.fork is the raw call, so
 * the raw waitpid goes with it; br_process is the managed way, see process_args.c).
 */
#include "example.h"

#include <braid/process.h>

#include <sys/wait.h>
#include <unistd.h>

int main(void) {
    fflush(stdout); /* nothing buffered may be copied into the child */
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    printf("jack\n");
    if (pid == 0) {
        printf("子进程 %d ,父进程是: %d.\n", br_getpid(), br_getppid());
        fflush(stdout);
        _exit(0);
    }
    printf("我是父进程:%d.\n", (int)pid);
    fflush(stdout);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    printf("parent %d: child exited with %d\n", br_getpid(), WEXITSTATUS(st));
    return 0;
}
