/*
 * ops_i.h — the FUSE request handlers, one group per file (see fuse_i.h).
 * Each handler decodes the request, calls fs, and replies exactly once.
 */
#ifndef MMAPFS_FUSE_OPS_I_H
#define MMAPFS_FUSE_OPS_I_H

#include <sys/stat.h>

#include "fuse/fuse_i.h"

/* ops_names.c */
/* True if the caller of req (ctx) has gid as primary or supplementary group. */
int mfs_caller_in_group(fuse_req_t req, const struct fuse_ctx *ctx, uint32_t gid);
int mfs_caller_capable(fuse_req_t req, int cap);
void mfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void mfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void mfs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void mfs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                 struct fuse_file_info *fi);
void mfs_readlink(fuse_req_t req, fuse_ino_t ino);
void mfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
               dev_t rdev);
void mfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void mfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void mfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void mfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void mfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                fuse_ino_t newparent, const char *newname, unsigned int flags);
void mfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void mfs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                struct fuse_file_info *fi);

/* ops_data.c */
void mfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
              struct fuse_file_info *fi);
void mfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
               off_t off, struct fuse_file_info *fi);
void mfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* FSYNC / FSYNCDIR of ino: answered (mfs_fsync_done) once it is durable,
 * maybe later from the journal's commit thread (mfs_reply_owed). */
void mfs_fsync_start(fuse_req_t req, fuse_ino_t ino, int datasync);
void mfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);
void mfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
                   off_t length, struct fuse_file_info *fi);
void mfs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
               struct fuse_file_info *fi);
void mfs_statfs(fuse_req_t req, fuse_ino_t ino);
/* Data written but not yet written back (the writeback cache, or stores
 * through a shared mapping on any mount) lives only in the kernel: fs
 * would not see it (nor the size it gave the file). Invalidating the
 * inode's page cache makes the kernel write its dirty pages back first
 * (served by another request thread: callers wait in place only while
 * one stays free, else on the deferral thread, defer.c) and wait for
 * them. Nothing on a read-only mount. */
void mfs_flush_kernel_pages(fuse_req_t req, fuse_ino_t ino);

/* defer.c: a request thread may wait for the kernel's write-back only
 * while another stays free to serve its WRITEs. mfs_wait_slot_take: 1 if
 * the caller may wait in place (then mfs_wait_slot_give after); 0: hand
 * the rest of req to mfs_defer, with d a malloc'd record (NULL if the
 * allocation failed: then, as on any failure, req is answered with the
 * error and d freed). */
int mfs_wait_slot_take(struct mmapfs_fuse *m);
void mfs_wait_slot_give(struct mmapfs_fuse *m);
void mfs_defer(struct mmapfs_fuse *m, fuse_req_t req, struct mfs_deferred *d);

/* defer.c: a reply another thread owes after its handler returned (an
 * FSYNC the journal's commit thread answers): mfs_reply_owed before the
 * handler hands req on, mfs_reply_paid once it was answered. The loop's
 * end waits for them (mfs_defer_stop), so that none is written to the
 * device after fuse_session_unmount closed it. */
void mfs_reply_owed(struct mmapfs_fuse *m);
/* defer.c: around a wait for the kernel's write-back (mfs_flush_kernel_pages):
 * 0 from mfs_flush_begin means shutdown has begun, skip the wait. */
int mfs_flush_begin(struct mmapfs_fuse *m);
void mfs_flush_end(struct mmapfs_fuse *m);
void mfs_reply_paid(struct mmapfs_fuse *m);

/* ops_dir.c */
void mfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                 struct fuse_file_info *fi);
void mfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                     struct fuse_file_info *fi);
void mfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void mfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
                  struct fuse_file_info *fi);

/* ops_xattr.c */
/* POSIX ACLs of new inodes (a no-op unless ACLs were negotiated). Before
 * creating: masks *mode by parent's default ACL, or by the caller's umask
 * (FUSE_CAP_DONT_MASK: the kernel leaves it to us). The create stores the
 * ACLs the inode inherits itself, in its own journal operation
 * (fs_set_acl_inherit, turned on in mfs_init with ACLs). */
int mfs_acl_new_mode(fuse_req_t req, fuse_ino_t parent, mode_t *mode);
void mfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
                  const char *value, size_t size, int flags);
void mfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void mfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void mfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
