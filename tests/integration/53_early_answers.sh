#!/usr/bin/env bash
#
# 53_early_answers.sh — an unlink, rmdir, setattr or rename over a file
# answered from inside the operation (docs/JOURNAL.md, "Early answers") is
# finished for every other process by the time the caller sees the answer.
#
# tests/integration/early.py: a changer unlinks, sets times, chmods,
# renames over files and removes directories; after each one an observer
# process checks at once that the name is gone (and an open descriptor of
# an unlinked file shows no link and still reads its bytes), that stat
# shows the times and mode set, that the renamed-over name reads the moved
# file, and now and then the whole listing. Run with the hot-thread loop
# (the default: the observer's request waits for the thread still writing
# the changes, or a backup takes it) and with libfuse's multi-threaded
# loop (nohotloop: another worker takes it at once). An unlink answered
# before the filesystem's lock is taken fails both (18 and 2,391 errors
# in 4,000 checks, tried by hand).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
export LC_ALL=C

EARLY_PY=$T_ROOT/tests/integration/early.py
img=$T_DIR/early.img
M=$T_DIR/mnt
make_image "$img" 256M

for loop in hotloop nohotloop; do
    opts=()
    [ "$loop" = nohotloop ] && opts=(-o nohotloop)
    mount_image "$img" "$M" "${opts[@]}"
    mkdir "$M/e"
    check "$loop: 1,000 unlinks, times, chmods, renames and rmdirs seen done by another process" \
        "$PY" "$EARLY_PY" "$M/e" 1000
    rm -rf "$M/e"
    unmount_fs "$M"
    fsck_clean "$img"
done
t_finish
