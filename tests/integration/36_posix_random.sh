#!/usr/bin/env bash
#
# 36_posix_random.sh — seeded random system calls run in lockstep on ext4
# (loop device, 4 KiB blocks) and on mmapfs, compared after every step
# (tests/lib/posix_random.py: results and errnos, then type, mode, nlink,
# owner, size, symlink target, content, xattrs and entries of every path,
# and on some steps which of mtime/ctime changed), with remounts of
# mmapfs at random steps, each checked by fsck.mmapfs -n, and a final one.
# Runs on a mount with the writeback cache and on one without.
#
# Environment: POSIX_RANDOM_SEEDS (how many seeds per mount, default 2),
# POSIX_RANDOM_FIRST (first seed, default 1), POSIX_RANDOM_STEPS (steps
# per seed, default 200). A long run, e.g.:
#   POSIX_RANDOM_SEEDS=200 POSIX_RANDOM_STEPS=2000 IT_SCRIPT_TIMEOUT=36000 \
#     IT_ONLY=36_ tests/integration/run.sh build
# A failure prints the seed and the step; rerun that seed alone with
# POSIX_RANDOM_FIRST=SEED POSIX_RANDOM_SEEDS=1 (add POSIX_RANDOM_VERBOSE=1
# to see every step).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
export LC_ALL=C

RANDOM_PY="$T_ROOT/tests/lib/posix_random.py"
nseeds=${POSIX_RANDOM_SEEDS:-2}
first=${POSIX_RANDOM_FIRST:-1}
steps=${POSIX_RANDOM_STEPS:-200}
seeds=$(seq -s, "$first" $((first + nseeds - 1)))
verbose=()
[ -z "${POSIX_RANDOM_VERBOSE:-}" ] || verbose=(--verbose)

E=$T_DIR/ext4
run_on() {
    local name=$1 opts=$2 img=$T_DIR/$1.img mnt=$T_DIR/mnt-$1
    make_image "$img" 256M
    if [ -n "$opts" ]; then
        mount_image "$img" "$mnt" -o "$opts"
    else
        mount_image "$img" "$mnt"
    fi
    # the script's own remounts take the options mount_image gave
    opts=$opts${MMAPFS_IT_OPTS:+,$MMAPFS_IT_OPTS}
    check "$name: seeds $seeds, $steps steps each, as on ext4" \
        "$PY" "$RANDOM_PY" --ref "$E" --mnt "$mnt" --image "$img" --mmapfs "$MMAPFS" \
        --fsck "$FSCK" --opts "${opts#,}" --seeds "$seeds" --steps "$steps" "${verbose[@]}"
    printf '%s\n' "$T_OUT"
    unmount_fs "$mnt" && fsck_clean "$img"
}
compare() {
    check_eq "ext4 reference has 4 KiB blocks" 4096 "$(stat -f -c %S "$E")"
    run_on wb allow_other
    run_on nowb allow_other,nowriteback_cache
}
STEP_TIMEOUT=$((120 + nseeds * steps / 10))
# 600 MiB: mkfs.ext4 takes 4 KiB blocks from 512 MiB on (sparse file)
EXT4_SIZE=600M on_ext4 "$E" compare

t_finish
