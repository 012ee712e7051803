/* subprocess_capture.c: start external programs and talk to them through their output.
 *
 * Ports 001_0d5cedca80a60342.txt, "python对并发编程的支持": "使用subprocess启动外部程序的
 * 进程，并进行输出交互" (start an external program's process with subprocess and
 * interact with its output). The tutorial names the module without a listing; this is
 * the listing its readers write:
 *
 *     r = subprocess.run(["echo", "hello from a child"], capture_output=True, text=True)
 *     print(r.returncode, repr(r.stdout))
 *     p = subprocess.Popen(["sort"], stdin=PIPE, stdout=PIPE, text=True)
 *     out, _ = p.communicate("pear\napple\nfig\n")
 *     print(out, p.returncode)
 *     r = subprocess.run("echo $((6 * 7))", shell=True, capture_output=True, text=True)
 *
 * Porting notes: argv is a NULL-terminated array; the captured bytes belong to the
 * br_completed (freed with br_completed_destroy), NUL-terminated so they print as text.
 * communicate writes and reads at once, so any amount of input is safe.
 */
#include <braid.h>
#include <braid/subprocess.h>

#include "example.h"

#include <stdio.h>

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* subprocess.run(..., capture_output=True) */
    br_completed r;
    must(br_run((const char *const[]){"echo", "hello from a child", NULL},
                &(br_subprocess_opts){.capture_output = true}, &r),
         "run echo");
    printf("echo: returncode %d, stdout '%.*s', stderr %zu bytes\n", r.returncode,
           (int)r.out_len - 1, r.out, r.err_len); /* without its newline */
    br_completed_destroy(&r);

    /* Popen(["sort"], stdin=PIPE, stdout=PIPE).communicate(input) */
    br_popen *p;
    must(br_popen_start(&p, (const char *const[]){"sort", NULL},
                        &(br_subprocess_opts){.in = BR_STDIO_PIPE, .out = BR_STDIO_PIPE}),
         "start sort");
    const char input[] = "pear\napple\nfig\n";
    must(br_popen_communicate(p, input, sizeof input - 1, BR_FOREVER, &r), "communicate");
    printf("sort (pid %s):\n%s", br_popen_pid(p) > 0 ? "known" : "missing", r.out);
    printf("sort: returncode %d\n", r.returncode);
    br_completed_destroy(&r);
    must(br_popen_free(p), "free");

    /* shell=True */
    must(br_run((const char *const[]){"echo $((6 * 7))", NULL},
                &(br_subprocess_opts){.shell = true, .out = BR_STDIO_PIPE}, &r),
         "run sh");
    printf("sh: %s", r.out);
    br_completed_destroy(&r);
    return 0;
}
