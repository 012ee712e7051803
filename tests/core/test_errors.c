/* The error table: every code has a distinct name and message; unknown codes are safe. */
#include "harness.h"

#include <errno.h>
#include <string.h>

static const int all_codes[] = {
#define XX(name, value, msg) BR_##name,
    BR_ERRNO_MAP(XX)
#undef XX
};
#define NCODES (sizeof all_codes / sizeof all_codes[0])

static void names_and_messages_are_distinct(void **state) {
    (void)state;
    for (size_t i = 0; i < NCODES; i++) {
        BR_CHECK(all_codes[i] < 0);
        BR_CHECK(strcmp(br_err_name(all_codes[i]), "BR_UNKNOWN") != 0);
        BR_CHECK(strcmp(br_strerror(all_codes[i]), "unknown error") != 0);
        for (size_t j = i + 1; j < NCODES; j++) {
            BR_CHECK(all_codes[i] != all_codes[j]);
            BR_CHECK(strcmp(br_err_name(all_codes[i]), br_err_name(all_codes[j])) != 0);
            BR_CHECK(strcmp(br_strerror(all_codes[i]), br_strerror(all_codes[j])) != 0);
        }
    }
}

static void posix_codes_are_negative_errno(void **state) {
    (void)state;
    BR_CHECK_EQ(BR_ETIMEDOUT, -ETIMEDOUT);
    BR_CHECK_EQ(BR_ECANCELED, -ECANCELED);
    BR_CHECK_EQ(BR_EAGAIN, -EAGAIN);
    BR_CHECK_EQ(BR_EINVAL, -EINVAL);
    BR_CHECK_EQ(BR_EPERM, -EPERM);
    BR_CHECK_EQ(BR_EDEADLK, -EDEADLK);
    BR_CHECK_EQ(BR_EOVERFLOW, -EOVERFLOW);
    BR_CHECK_EQ(BR_ENOMEM, -ENOMEM);
    BR_CHECK_EQ(BR_EBUSY, -EBUSY);
    /* braid's own codes stay clear of every errno value */
    BR_CHECK(BR_ESHUTDOWN <= -3000 && BR_ESHUTDOWN > -3100);
    BR_CHECK(BR_EBROKEN <= -3000 && BR_EBROKEN > -3100);
}

static void names_match_the_enum(void **state) {
    (void)state;
    assert_string_equal(br_err_name(BR_ETIMEDOUT), "BR_ETIMEDOUT");
    assert_string_equal(br_err_name(BR_ESHUTDOWN), "BR_ESHUTDOWN");
    assert_string_equal(br_err_name(0), "BR_OK");
    assert_string_equal(br_strerror(BR_ETIMEDOUT), "timed out");
}

static void unknown_codes(void **state) {
    (void)state;
    assert_string_equal(br_err_name(-9999), "BR_UNKNOWN");
    assert_string_equal(br_strerror(-9999), "unknown error");
    assert_string_equal(br_err_name(42), "BR_UNKNOWN");
    char buf[64];
    assert_string_equal(br_strerror_r(-9999, buf, sizeof buf), "unknown error -9999");
    assert_string_equal(br_strerror_r(BR_EPIPE, buf, sizeof buf), "broken pipe");
    /* truncation keeps the buffer terminated */
    char small[5];
    br_strerror_r(BR_ETIMEDOUT, small, sizeof small);
    assert_string_equal(small, "time");
    BR_CHECK(br_strerror_r(BR_ETIMEDOUT, NULL, 0) == NULL);
}

static void version(void **state) {
    (void)state;
    assert_string_equal(br_version(), "0.1.0");
}

BR_TEST_MAIN(cmocka_unit_test(names_and_messages_are_distinct),
             cmocka_unit_test(posix_codes_are_negative_errno),
             cmocka_unit_test(names_match_the_enum), cmocka_unit_test(unknown_codes),
             cmocka_unit_test(version))
