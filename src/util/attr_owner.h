/* Who was answered with an inode's attributes, so that a change of the
 * inode tells the kernel only when it must (docs/MOUNT.md, "Why 1-hour
 * timeouts").
 *
 * The FUSE daemon notifies the kernel before it answers a request that
 * changed an inode's attributes in a way the answer does not carry (a
 * directory whose entries changed): the kernel only marks such an inode
 * stale, and an answer with its attributes computed before the change but
 * applied after it would otherwise be kept for the whole attribute
 * timeout; the notification raises the inode's attribute version in the
 * kernel, so such a late answer is discarded. The notification is not
 * needed when every answer that carried the inode's attributes since the
 * last one went to the thread that now changes it (a thread sends its
 * next request only after the kernel applied the answer to its last one),
 * or when there was no such answer.
 *
 * A table of MFS_ATTR_OWNER_SLOTS slots, one per hash of the inode number.
 * A slot's owner is MFS_ATTR_OWNER(ino, thread): the one thread such
 * answers went to since ino's last notification, NONE if none did, MIXED
 * if several did or if the record began by taking the slot over from
 * another inode (whose own history ends there: its next change notifies).
 * Only a notification makes a record NONE; only answers to that same
 * single thread keep it that thread's.
 *
 * Order. After its change, a changing request takes the next epoch,
 * raises the slot's changed_at to it and then reads the slot's owner
 * (mfs_attr_owner_change). An answering request notes the epoch when it
 * begins (mfs_attr_owner_epoch), and after reading the attributes raises
 * the slot's answered_at to that epoch, marks the owner and then reads
 * changed_at (mfs_attr_owner_answer). All of these are sequentially
 * consistent atomics, so either the change sees the mark (and notifies),
 * or the answer sees the change and must expire at once (timeout 0:
 * applied late, it is asked for again), or the answer began after the
 * change took its epoch and so read the attributes after the change (the
 * changing request made its change before that, under the lock the
 * answer's reading takes too). Such an answer may still reach the kernel
 * after the next change, so its mark must outlive this change's start of
 * a new record: when the change starts one (owner back to NONE) and then
 * finds answered_at at or past its epoch, it marks the slot MIXED again,
 * since the mark of an answer that left the owner as it was (MIXED
 * already, or its own thread's) cannot be told apart from the old record.
 *
 * Thread-safe; the table must be zeroed before use. */
#ifndef MMAPFS_ATTR_OWNER_H
#define MMAPFS_ATTR_OWNER_H

#include <stdint.h>

#define MFS_ATTR_OWNER_SLOTS 4096
#define MFS_ATTR_OWNER_TID_BITS 23          /* pid_max is at most 2^22 */

struct mfs_attr_owner {
    uint64_t owner[MFS_ATTR_OWNER_SLOTS];
    uint64_t changed_at[MFS_ATTR_OWNER_SLOTS];
    uint64_t answered_at[MFS_ATTR_OWNER_SLOTS];
    uint64_t epoch;
};

/* Tests only (NULL otherwise): called at the points where another
 * thread's call may come between two steps of this one, so that a test
 * can make it come there (tests/unit/test_attr_owner.c). */
enum mfs_attr_owner_point {
    MFS_ATTR_OWNER_AT_ANSWER_MARK = 1,  /* answer: slot read, not yet marked */
    MFS_ATTR_OWNER_AT_CHANGE_EPOCH,     /* change: epoch taken, changed_at not raised */
    MFS_ATTR_OWNER_AT_CHANGE_RESET,     /* change: owner read, record not started again */
};
extern void (*mfs_attr_owner_observe)(enum mfs_attr_owner_point at);

/* The epoch a request begins in: read before it reads any attributes. */
uint64_t mfs_attr_owner_epoch(const struct mfs_attr_owner *t);

/* An answer to thread tid (a request's pid; 0 or negative: unknown, such
 * as a caller in another pid namespace) carries ino's attributes, read
 * after begun was taken. Returns 1 if the answer must expire at once (a
 * change of ino may have raced with it), else 0. */
int mfs_attr_owner_answer(struct mfs_attr_owner *t, uint64_t ino, int32_t tid,
                          uint64_t begun);

/* Thread tid changed ino. Returns 1 if the kernel need not be told (every
 * answer with ino's attributes since the last notification went to tid,
 * or there was none); else 0: the record starts again, and the caller
 * notifies. */
int mfs_attr_owner_change(struct mfs_attr_owner *t, uint64_t ino, int32_t tid);

#endif
