/* /proc/self/mountinfo fields: paths there escape space, tab, newline and
 * backslash as \ooo (octal). */
#ifndef MMAPFS_MOUNTINFO_H
#define MMAPFS_MOUNTINFO_H

/* Decodes the \ooo escapes of a mountinfo field in place. */
void mfs_mountinfo_unescape(char *s);

#endif
