/* /proc/self/mountinfo, one mount per line:
 *   ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS
 * Paths there escape space, tab, newline and backslash as \ooo (octal). */
#ifndef MMAPFS_MOUNTINFO_H
#define MMAPFS_MOUNTINFO_H

/* One line, its paths decoded. Valid during the callback only. */
struct mfs_mount {
    const char *devid;      /* "MAJ:MIN" of the mount's superblock */
    const char *point;      /* mount point */
    const char *fstype;     /* "fuse.mmapfs", "ext4", ... */
    const char *source;     /* the device or image, as mounted */
};

/* Splits one line (changed in place: fields cut and decoded) into m,
 * whose strings point into it. 0, or -1 for a malformed line. */
int mfs_mountinfo_parse(char *line, struct mfs_mount *m);

/* Calls fn(mount, ctx) for the lines of /proc/self/mountinfo in order
 * (a mount on top of another comes later) until fn returns non-zero, and
 * returns that value; 0 after the last line; -errno if the file cannot be
 * opened. Malformed lines are skipped. */
int mfs_mountinfo_each(int (*fn)(const struct mfs_mount *m, void *ctx), void *ctx);

/* The topmost mount on a mount point (the last line naming it). */
struct mfs_mount_top {
    char fstype[64];
    char devid[64];
};

/* Fills top for the topmost mount on point. 0; -ENOENT if point is no
 * mount point; -errno if mountinfo cannot be read. */
int mfs_mountinfo_top(const char *point, struct mfs_mount_top *top);

/* Decodes the \ooo escapes of a mountinfo field in place. */
void mfs_mountinfo_unescape(char *s);

#endif
