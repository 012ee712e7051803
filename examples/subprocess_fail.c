/* subprocess_fail.c: a command that fails, one that doesn't exist, one that takes too
 * long: what Python raises, braid returns, and the example prints it.
 *
 * Ports the subprocess line of 001_0d5cedca80a60342.txt ("使用subprocess启动外部程序的进
 * 程，并进行输出交互") the way its readers meet errors:
 *
 *     try:
 *         subprocess.run("echo partial; echo 'disk full' >&2; exit 3", shell=True,
 *                        check=True, capture_output=True, text=True)
 *     except subprocess.CalledProcessError as e:
 *         print(e.returncode, e.stdout, e.stderr)
 *     try:
 *         subprocess.run(["no-such-program"])
 *     except FileNotFoundError as e: print(e)
 *     try:
 *         subprocess.run(["sleep", "10"], timeout=0.2)
 *     except subprocess.TimeoutExpired as e: print(e)
 *
 * Porting notes: CalledProcessError is BR_EFAILED, and the br_completed still holds the
 * returncode and the output; FileNotFoundError is BR_ENOENT, returned by the call that
 * starts the child; TimeoutExpired is BR_ETIMEDOUT, the child killed and reaped (its
 * returncode -9). The sleep is cut at 0.2 s, as in the listing.
 */
#include <braid.h>
#include <braid/subprocess.h>

#include "example.h"

#include <signal.h>
#include <stdio.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    br_completed r;

    int rc = br_run((const char *const[]){"echo partial; echo 'disk full' >&2; exit 3", NULL},
                    &(br_subprocess_opts){.shell = true, .check = true,
                                          .capture_output = true},
                    &r);
    printf("check=True: %s, returncode %d, stdout '%.*s', stderr '%.*s'\n", br_err_name(rc),
           r.returncode, (int)r.out_len - 1, r.out, (int)r.err_len - 1, r.err);
    br_completed_destroy(&r);

    rc = br_run((const char *const[]){"no-such-program", NULL}, NULL, &r);
    printf("no-such-program: %s (%s)\n", br_err_name(rc), br_strerror(rc));
    br_completed_destroy(&r);

    int64_t t0 = br_now();
    rc = br_run((const char *const[]){"sleep", "10", NULL},
                &(br_subprocess_opts){.deadline = br_deadline_after_s(0.2)}, &r);
    double took = (double)(br_now() - t0) / 1e9;
    printf("sleep 10, timeout 0.2 s: %s, returncode %d (SIGKILL is %d), after %s 0.2 s\n",
           br_err_name(rc), r.returncode, SIGKILL, took >= 0.2 ? "at least" : "less than");
    br_completed_destroy(&r);
    return 0;
}
