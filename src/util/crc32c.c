/* CRC-32C: SSE4.2 instruction when the CPU has it, a table otherwise. */
#include "util/crc32c.h"

#include <pthread.h>
#include <string.h>

static uint32_t table[256];

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[i] = c;
    }
}

static uint32_t crc_soft(uint32_t c, const uint8_t *p, size_t len)
{
    while (len--)
        c = table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
/* the stretches of crc_hw_3way, in bytes */
#define CRC_LONG  1360          /* 3 x 1360 = 4080: a block's checksummed part */
#define CRC_SHORT 168

/* ---- shifting a CRC over zeros --------------------------------------------------------
 *
 * The register update is linear over GF(2): running the raw CRC (no
 * inversions) from register c over n bytes D gives Z_n(c) ^ raw(0, D),
 * where Z_n runs c over n zero bytes. So three stretches A, B, C of n
 * bytes each can be run side by side from registers c, 0, 0 (giving a, b,
 * c') and joined as Z_n(Z_n(a) ^ b) ^ c'. Z_n of a 32-bit register is a
 * 32x32 bit matrix, kept as four tables of 256 entries (one per byte). */
struct zshift {
    uint32_t t[4][256];
};

static uint32_t zshift_apply(const struct zshift *z, uint32_t c)
{
    return z->t[0][c & 0xff] ^ z->t[1][(c >> 8) & 0xff] ^ z->t[2][(c >> 16) & 0xff] ^
           z->t[3][c >> 24];
}

/* n at most CRC_LONG */
static void zshift_init(struct zshift *z, size_t n)
{
    static const uint8_t zeros[CRC_LONG];
    uint32_t col[32];

    for (int bit = 0; bit < 32; bit++)          /* Z_n of each unit vector */
        col[bit] = crc_soft(1u << bit, zeros, n);
    for (int byte = 0; byte < 4; byte++)
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t r = 0;
            for (int bit = 0; bit < 8; bit++)
                if (v & (1u << bit))
                    r ^= col[byte * 8 + bit];
            z->t[byte][v] = r;
        }
}

/* Three stretches at once: the crc32 instruction takes 3 cycles and one
 * can start every cycle, so one chain of them waits; three keep the unit
 * busy (a 4 KiB block: about a third of the time). */

static struct zshift z_long, z_short;

__attribute__((target("sse4.2")))
static uint64_t crc_hw_serial(uint64_t c, const uint8_t *p, size_t n)
{
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
    }
    return c;
}

__attribute__((target("sse4.2")))
static uint64_t crc_hw_3way(uint64_t c0, const uint8_t *p, size_t n, const struct zshift *z)
{
    uint64_t c1 = 0, c2 = 0;

    for (size_t i = 0; i < n; i += 8) {
        uint64_t a, b, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + n + i, 8);
        memcpy(&d, p + 2 * n + i, 8);
        c0 = __builtin_ia32_crc32di(c0, a);
        c1 = __builtin_ia32_crc32di(c1, b);
        c2 = __builtin_ia32_crc32di(c2, d);
    }
    return zshift_apply(z, zshift_apply(z, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2")))
static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t len)
{
    uint64_t c64 = c;

    for (; len >= 3 * CRC_LONG; p += 3 * CRC_LONG, len -= 3 * CRC_LONG)
        c64 = crc_hw_3way(c64, p, CRC_LONG, &z_long);
    for (; len >= 3 * CRC_SHORT; p += 3 * CRC_SHORT, len -= 3 * CRC_SHORT)
        c64 = crc_hw_3way(c64, p, CRC_SHORT, &z_short);
    c64 = crc_hw_serial(c64, p, len);
    p += len & ~(size_t)7;
    len &= 7;
    c = (uint32_t)c64;
    while (len--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

static uint32_t (*impl)(uint32_t, const uint8_t *, size_t);

static void choose(void)
{
    table_init();
    impl = crc_soft;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        zshift_init(&z_long, CRC_LONG);
        zshift_init(&z_short, CRC_SHORT);
        impl = crc_hw;
    }
#endif
}

uint32_t mfs_crc32c(uint32_t crc, const void *buf, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, choose);
    return ~impl(~crc, buf, len);
}
