/*
 * fsck/dirent.c — one directory entry: what is wrong with it and what the
 * repaired entry is. Pass 2 reports with it; a directory rebuild
 * (fsck/repair_dir.c) applies the same verdicts, so a rebuilt directory
 * passes the next round's check.
 *
 * Verdicts: a bad value, a target out of range, free, corrupt or the root
 * drops the entry; an invalid byte in the name ('/' or NUL) becomes '_';
 * a wrong type is set from the target's mode; a key that does not match
 * the name's hash gets a new key (the smallest free suffix), ./.. are
 * dropped.
 */
#include <inttypes.h>
#include <string.h>

#include "fsck/fsck_i.h"

#define DE_ERROR(fmt, ...)                                                             \
    do {                                                                               \
        if (report)                                                                    \
            fsck_error(c, "directory %" PRIu64 ": " fmt, dir, __VA_ARGS__);           \
    } while (0)

/* See fsck_i.h. */
int fsck_dent_examine(struct check *c, uint64_t dir, uint64_t key, const void *val,
                       size_t len, int report, struct check_dent *out)
{
    const uint8_t *v = val;
    struct mmapfs_disk_dirent de;
    int verdict = DENT_KEEP;

    memset(out, 0, offsetof(struct check_dent, name));
    if (len < sizeof(de) || len > sizeof(de) + MMAPFS_NAME_MAX) {
        DE_ERROR("entry with key %#" PRIx64 ": value of %zu bytes", key, len);
        return DENT_DROP;
    }
    memcpy(&de, v, sizeof(de));
    const char *name = (const char *)v + sizeof(de);
    size_t name_len = len - sizeof(de);
    char shown[4 * MMAPFS_NAME_MAX + 1];
    fsck_escape(shown, sizeof(shown), name, name_len);
    if (de.name_len != name_len || de.name_len == 0) {
        DE_ERROR("entry with key %#" PRIx64 ": name length %u, value holds %zu bytes of "
                 "name", key, de.name_len, name_len);
        return DENT_DROP;
    }
    if ((name_len == 1 && name[0] == '.') || (name_len == 2 && !memcmp(name, "..", 2))) {
        DE_ERROR("entry '%s': invalid name", shown);
        return DENT_DROP;
    }
    out->key = key;
    out->ino = de.ino;
    out->type = de.type;
    out->name_len = de.name_len;
    memcpy(out->name, name, name_len);
    if (memchr(name, '/', name_len) || memchr(name, '\0', name_len)) {
        DE_ERROR("entry '%s': invalid name", shown);
        for (size_t i = 0; i < name_len; i++)
            if (out->name[i] == '/' || out->name[i] == '\0')
                out->name[i] = '_';
        verdict = DENT_FIX;
    }
    uint64_t hash = mmapfs_name_hash(name, name_len);
    if (key >> 8 != hash)
        DE_ERROR("entry '%s': key %#" PRIx64 " does not match the name's hash %#" PRIx64,
                 shown, key, hash);
    if (key >> 8 != mmapfs_name_hash(out->name, name_len)) {
        out->rekey = 1;
        out->key = 0;
        verdict = DENT_FIX;
    }

    uint64_t t = de.ino;
    if (t < 1 || t > c->inode_count) {
        DE_ERROR("entry '%s': inode %" PRIu64 " out of range", shown, t);
        return DENT_DROP;
    }
    struct check_inode *ti = fsck_ci(c, t);
    if (!(ti->state & CI_USED)) {
        DE_ERROR("entry '%s': inode %" PRIu64 " is free", shown, t);
        return DENT_DROP;
    }
    if (!(ti->state & CI_VALID)) {
        DE_ERROR("entry '%s': inode %" PRIu64 " is corrupt", shown, t);
        if (report)         /* pass 2: the entry's type, for mending the record */
            fsck_note_entry_type(ti, de.type);
        return DENT_DROP;
    }
    if (de.type != ti->dtype) {
        DE_ERROR("entry '%s': type %u, but inode %" PRIu64 " has type %u", shown, de.type,
                 t, ti->dtype);
        out->type = ti->dtype;
        verdict = DENT_FIX;
    }
    if (t == MMAPFS_ROOT_INO) {
        DE_ERROR("entry '%s' names the root directory", shown);
        return DENT_DROP;
    }
    return verdict;
}

/* See fsck_i.h. */
int fsck_dent_trustworthy(struct check *c, uint64_t key, const void *val, size_t len)
{
    struct mmapfs_disk_dirent de;
    if (len < sizeof(de) || len > sizeof(de) + MMAPFS_NAME_MAX)
        return 0;
    memcpy(&de, val, sizeof(de));
    const char *name = (const char *)val + sizeof(de);
    size_t name_len = len - sizeof(de);
    if (de.name_len != name_len || !name_len || memchr(name, '/', name_len) ||
        memchr(name, '\0', name_len) || (name_len == 1 && name[0] == '.') ||
        (name_len == 2 && !memcmp(name, "..", 2)))
        return 0;
    if (key >> 8 != mmapfs_name_hash(name, name_len))
        return 0;
    if (de.ino <= MMAPFS_ROOT_INO || de.ino > c->inode_count)
        return 0;
    const struct check_inode *ti = fsck_ci(c, de.ino);
    return (ti->state & CI_VALID) && ti->dtype == de.type;
}
