/* Shared mappings (process/shm.h): what one process writes another reads, through an
 * inherited mapping and through a descriptor attached again; nothing leaks. */
#include "harness.h"
#include "process/shm.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void shared_across_fork(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm s;
    BR_CHECK_OK(br__shm_new(&s, 1 << 20, "test"));
    BR_CHECK(s.base != NULL && s.fd >= 0 && s.size == 1 << 20);
    unsigned char *p = s.base;
    BR_CHECK_EQ(p[0], 0);
    BR_CHECK_EQ(p[(1 << 20) - 1], 0);
    pid_t pid = fork();
    BR_CHECK(pid >= 0);
    if (pid == 0) {
        memcpy(p + 4096, "from the child", 15);
        _exit(0);
    }
    BR_CHECK_CHILD_OK(br_test_wait_child(pid));
    BR_CHECK_EQ(strcmp((char *)p + 4096, "from the child"), 0);
    br__shm_close(&s);
    BR_CHECK(s.base == NULL && s.fd == -1);
    br__shm_close(&s); /* again: harmless */
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void attach_by_descriptor(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm a, b;
    BR_CHECK_OK(br__shm_new(&a, 8192, "test"));
    BR_CHECK_OK(br__shm_attach(&b, a.fd, 8192));
    BR_CHECK(a.base != b.base && a.fd != b.fd);
    strcpy((char *)a.base + 100, "seen twice");
    BR_CHECK_EQ(strcmp((char *)b.base + 100, "seen twice"), 0);
    br__shm_drop_fd(&a);
    BR_CHECK_EQ(a.fd, -1);
    strcpy((char *)b.base + 200, "still mapped");
    BR_CHECK_EQ(strcmp((char *)a.base + 200, "still mapped"), 0);
    br__shm_close(&a);
    br__shm_close(&b);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

static void bad_input(void **state) {
    (void)state;
    br__shm s;
    BR_CHECK_ERR(br__shm_new(NULL, 10, NULL), BR_EINVAL);
    BR_CHECK_ERR(br__shm_new(&s, 0, NULL), BR_EINVAL);
    BR_CHECK(s.base == NULL && s.fd == -1);
    BR_CHECK_ERR(br__shm_attach(&s, -1, 10), BR_EINVAL);
    BR_CHECK_ERR(br__shm_attach(&s, 1000000, 10), -EBADF); /* not open */
}

static void out_of_memory(void **state) {
    (void)state;
    int fds = br_test_count_fds();
    br__shm s;
    br__alloc_fail_after(0);
    int rc = br__shm_new(&s, 4096, NULL);
    br__alloc_fail_after(-1);
    BR_CHECK_ERR(rc, BR_ENOMEM);
    BR_CHECK(s.base == NULL && s.fd == -1);
    BR_CHECK_EQ(br_test_count_fds(), fds);
}

BR_TEST_MAIN(cmocka_unit_test(shared_across_fork), cmocka_unit_test(attach_by_descriptor),
             cmocka_unit_test(bad_input), cmocka_unit_test(out_of_memory))
