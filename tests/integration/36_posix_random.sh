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

verbose=()
[ -z "${POSIX_RANDOM_VERBOSE:-}" ] || verbose=(--verbose)
lockstep_vs_ext4 "$T_ROOT/tests/lib/posix_random.py" "${POSIX_RANDOM_FIRST:-1}" \
    "${POSIX_RANDOM_SEEDS:-2}" "${POSIX_RANDOM_STEPS:-200}" 10 "${verbose[@]}"

t_finish
