/*
 * test_crc32c.c — src/util/crc32c.h against a bit-by-bit reference: the
 * standard check value, every length up to 3 blocks at every alignment
 * (the three-stretch path, its joins and its tails), and a CRC continued
 * over pieces equal to the CRC of the whole.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util/crc32c.h"

/* CRC-32C one bit at a time: the definition, nothing shared with the code. */
static uint32_t ref_crc(uint32_t crc, const uint8_t *p, size_t len)
{
    uint32_t c = ~crc;

    while (len--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
    }
    return ~c;
}

static uint8_t *random_buf(size_t n, unsigned seed)
{
    uint8_t *b = malloc(n);

    assert_non_null(b);
    srand(seed);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)rand();
    return b;
}

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(mfs_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(mfs_crc32c(0, "", 0), 0);
}

static void test_every_length_and_alignment(void **state)
{
    (void)state;
    const size_t max = 3 * 4096 + 17;
    uint8_t *b = random_buf(max + 8, 1);

    for (size_t off = 0; off < 8; off++)
        for (size_t len = 0; len + off <= max; len += (len < 600 ? 1 : 13))
            assert_int_equal(mfs_crc32c(0, b + off, len), ref_crc(0, b + off, len));
    /* the lengths the filesystem checksums, exactly */
    size_t lens[] = { 4088, 4092, 4096, 4080, 4081, 504, 503, 505, 8192 };
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
        assert_int_equal(mfs_crc32c(0x1234u, b + 3, lens[i]), ref_crc(0x1234u, b + 3, lens[i]));
    free(b);
}

static void test_zeros_and_ones(void **state)
{
    (void)state;
    uint8_t z[4096], o[4096];

    memset(z, 0, sizeof(z));
    memset(o, 0xff, sizeof(o));
    assert_int_equal(mfs_crc32c(0, z, sizeof(z)), ref_crc(0, z, sizeof(z)));
    assert_int_equal(mfs_crc32c(0, o, sizeof(o)), ref_crc(0, o, sizeof(o)));
    assert_int_equal(mfs_crc32c(7, z, 4095), ref_crc(7, z, 4095));
}

static void test_continued(void **state)
{
    (void)state;
    const size_t n = 10000;
    uint8_t *b = random_buf(n, 2);
    uint32_t whole = ref_crc(0, b, n);

    srand(3);
    for (int round = 0; round < 200; round++) {
        size_t cut1 = (size_t)rand() % n, cut2 = (size_t)rand() % n;
        if (cut1 > cut2) {
            size_t t = cut1;
            cut1 = cut2;
            cut2 = t;
        }
        uint32_t c = mfs_crc32c(0, b, cut1);
        c = mfs_crc32c(c, b + cut1, cut2 - cut1);
        c = mfs_crc32c(c, b + cut2, n - cut2);
        assert_int_equal(c, whole);
    }
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),
        cmocka_unit_test(test_every_length_and_alignment),
        cmocka_unit_test(test_zeros_and_ones),
        cmocka_unit_test(test_continued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
