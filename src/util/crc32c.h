/* CRC-32C (Castagnoli), the checksum of every on-disk structure. */
#ifndef MMAPFS_CRC32C_H
#define MMAPFS_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/* Continue a CRC-32C over buf[0..len). Start with crc = 0; the value is the
 * standard CRC-32C (initial ~0, final xor ~0 are applied inside), so
 * mfs_crc32c(mfs_crc32c(0, a), b) == mfs_crc32c(0, a ‖ b). "123456789" -> 0xE3069283. */
uint32_t mfs_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
