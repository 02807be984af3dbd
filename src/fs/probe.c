/*
 * probe.c — recognises existing filesystems and other signatures at the
 * start of a target, so that mkfs.mmapfs refuses to overwrite them without
 * -f. The list is documented in docs/man/mkfs.mmapfs.8.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/format.h"
#include "fs/mkfs.h"

struct signature {
    size_t off;
    const char *magic;
    size_t len;
    const char *what;
};

#define SIG(off, magic, what) { off, magic, sizeof(magic) - 1, what }

/* Checked in order; the first match is reported. */
static const struct signature signatures[] = {
    SIG(0, MMAPFS_MAGIC, "mmapfs filesystem"),
    SIG(1080, "\x53\xef", "ext2/ext3/ext4 filesystem"),
    SIG(0, "XFSB", "XFS filesystem"),
    SIG(65600, "_BHRfS_M", "btrfs filesystem"),
    SIG(4086, "SWAPSPACE2", "Linux swap space"),
    SIG(4086, "SWAP-SPACE", "Linux swap space (old format)"),
    SIG(32769, "CD001", "ISO 9660 filesystem"),
    SIG(0, "LUKS\xba\xbe", "LUKS encrypted volume"),
    SIG(0, "SKUL\xba\xbe", "LUKS2 encrypted volume (secondary header)"),
    SIG(0, "hsqs", "squashfs filesystem"),
    SIG(3, "NTFS    ", "NTFS filesystem"),
    SIG(1024, "\x10\x20\xf5\xf2", "F2FS filesystem"),
    SIG(536, "LVM2 001", "LVM2 physical volume"),
    SIG(0, "\xfc\x4e\x2b\xa9", "Linux MD RAID member (1.1)"),
    SIG(4096, "\xfc\x4e\x2b\xa9", "Linux MD RAID member (1.2)"),
    SIG(512, "EFI PART", "GPT partition table"),
};

/* Does head[off..off+len) exist and equal magic? */
static int match(const unsigned char *head, size_t head_len, size_t off,
                 const char *magic, size_t len)
{
    return off <= head_len && len <= head_len - off && memcmp(head + off, magic, len) == 0;
}

int fs_mkfs_probe_buffer(const void *head_v, size_t len, char *what, size_t what_len)
{
    const unsigned char *head = head_v;
    for (size_t i = 0; i < sizeof(signatures) / sizeof(signatures[0]); i++) {
        const struct signature *s = &signatures[i];
        if (match(head, len, s->off, s->magic, s->len)) {
            snprintf(what, what_len, "%s", s->what);
            return 1;
        }
    }
    /* FAT: a boot sector with "FAT" in the FAT12/16 or FAT32 type field */
    int boot_sig = match(head, len, 510, "\x55\xaa", 2);
    if (boot_sig && (match(head, len, 54, "FAT", 3) || match(head, len, 82, "FAT", 3))) {
        snprintf(what, what_len, "FAT/vfat filesystem");
        return 1;
    }
    if (boot_sig) {
        snprintf(what, what_len, "DOS/MBR partition table or boot sector");
        return 1;
    }
    return 0;
}

int fs_mkfs_probe(struct mmio *io, char *what, size_t what_len)
{
    uint64_t size = mmio_size(io);
    size_t len = size < MKFS_PROBE_BYTES ? (size_t)size : MKFS_PROBE_BYTES;
    unsigned char *head = malloc(MKFS_PROBE_BYTES);
    if (!head)
        return -ENOMEM;
    int err = mmio_read_at(io, 0, head, len);
    int found = err ? err : fs_mkfs_probe_buffer(head, len, what, what_len);
    free(head);
    return found;
}
