/*
 * acl.h — POSIX ACLs (POSIX.1e draft, as Linux has them): the xattr format
 * the kernel exchanges (system.posix_acl_access / system.posix_acl_default),
 * the mapping between an ACL and the permission bits of the mode, and the
 * operations that keep both in sync on an inode (set, chmod, inheritance
 * of a directory's default ACL by new inodes). ACLs are stored as ordinary
 * xattrs through fs_setxattr (src/fs/xattr.c). Enforcement is the kernel's
 * (FUSE_POSIX_ACL); docs/LINUX.md "POSIX ACLs".
 */
#ifndef MMAPFS_FS_ACL_H
#define MMAPFS_FS_ACL_H

#include <stddef.h>
#include <stdint.h>

#include "fs/fs.h"

#define FS_ACL_XATTR_ACCESS  "system.posix_acl_access"
#define FS_ACL_XATTR_DEFAULT "system.posix_acl_default"

/* Xattr format (little-endian): a 4-byte header holding version 2, then
 * 8-byte entries {u16 tag, u16 perm, u32 id}. */
#define FS_ACL_XATTR_VERSION 2u
#define FS_ACL_HEADER_SIZE   4u
#define FS_ACL_ENTRY_SIZE    8u
/* More than the kernel sends (it refuses ACLs above one page: 511 entries). */
#define FS_ACL_MAX_ENTRIES   512u
#define FS_ACL_UNDEFINED_ID  0xffffffffu

enum fs_acl_tag {
    FS_ACL_USER_OBJ  = 0x01,
    FS_ACL_USER      = 0x02,
    FS_ACL_GROUP_OBJ = 0x04,
    FS_ACL_GROUP     = 0x08,
    FS_ACL_MASK      = 0x10,
    FS_ACL_OTHER     = 0x20,
};

struct fs_acl_entry {
    uint16_t tag;     /* enum fs_acl_tag */
    uint16_t perm;    /* rwx = 4|2|1 */
    uint32_t id;      /* uid (USER), gid (GROUP), else FS_ACL_UNDEFINED_ID */
};

struct fs_acl {
    unsigned count;
    struct fs_acl_entry e[FS_ACL_MAX_ENTRIES];
};

/* ---- format and mapping (pure, no I/O) ----------------------------------- */

/* Parses and validates an ACL xattr value: version 2, whole entries, tags
 * sorted by tag: USER_OBJ, USER..., GROUP_OBJ, GROUP..., MASK, OTHER (the
 * ids of named entries in any order, as the kernel and ext4 accept them;
 * never the undefined id), USER_OBJ, GROUP_OBJ and OTHER exactly once,
 * MASK at most once and present if there is a named entry, perms within
 * rwx. 0, -EINVAL (garbage), -E2BIG (more than FS_ACL_MAX_ENTRIES). */
int fs_acl_from_xattr(const void *value, size_t size, struct fs_acl *acl);

/* Writes acl in the xattr format into buf if size allows; returns the
 * length it needs. */
size_t fs_acl_to_xattr(const struct fs_acl *acl, void *buf, size_t size);

/* The permission bits acl gives the mode: owner = USER_OBJ, group = MASK
 * (GROUP_OBJ without one), other = OTHER; replaces the 0777 bits of *mode.
 * Returns 1 if the mode says all the ACL says (no MASK, no named entry:
 * it need not be stored, as ext4's posix_acl_equiv_mode), else 0. */
int fs_acl_equiv_mode(const struct fs_acl *acl, uint32_t *mode);

/* chmod of a file with an access ACL: USER_OBJ, MASK (GROUP_OBJ without
 * one) and OTHER take the owner, group and other bits of mode. */
void fs_acl_chmod(struct fs_acl *acl, uint32_t mode);

/* A new inode's access ACL from its directory's default ACL (given in acl,
 * changed in place) and the mode requested by create/mkdir/mknod: each of
 * the owner, group (MASK, or GROUP_OBJ) and other classes keeps the
 * permissions both allow, in the ACL and in the 0777 bits of *mode.
 * Returns 1 if the result must be stored as an access ACL, 0 if the mode
 * says it all. */
int fs_acl_create_masq(struct fs_acl *acl, uint32_t *mode);

/* ---- on an inode ------------------------------------------------------------ */

/* Reads the ACL stored under name (FS_ACL_XATTR_*) of ino. 0, -ENODATA
 * (none), -EUCLEAN (stored value invalid), xattr errors. */
int fs_acl_get(struct fs *fs, uint64_t ino, const char *name, struct fs_acl *acl);

/* setxattr/removexattr of an ACL name (value NULL: remove; a missing ACL
 * is not an error). An access ACL equivalent to a mode is stored as the
 * mode only; otherwise it is stored and the mode's permission bits follow
 * it. keep_sgid = 0 clears S_ISGID with the mode change (the caller is
 * neither in the file's group nor privileged). A default ACL on a
 * non-directory: -EACCES. -EINVAL for an invalid value. */
int fs_acl_set(struct fs *fs, uint64_t ino, const char *name, const void *value,
               size_t size, int keep_sgid);

/* After a chmod to mode: updates ino's access ACL, if it has one. */
int fs_acl_chmod_inode(struct fs *fs, uint64_t ino, uint32_t mode);

/* The mode of a new inode in directory parent: with a default ACL there,
 * *mode is masked by it (the umask is not applied) and 1 is returned;
 * without one, *mode &= ~umask and 0 is returned; or -errno. */
int fs_acl_create_mode(struct fs *fs, uint64_t parent, uint32_t *mode, uint32_t umask);

/* Gives the new inode ino (mode as created) the ACLs it inherits from
 * parent's default ACL: the default ACL itself for a directory, and the
 * access ACL unless the mode says it all. Nothing for symlinks or without
 * a default ACL. One journal operation. 0 or -errno. (Under
 * fs_set_acl_inherit, fs_mknod and fs_mkdir do this in their own.) */
int fs_acl_inherit(struct fs *fs, uint64_t parent, uint64_t ino, uint32_t mode);

#endif
