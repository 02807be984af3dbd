#!/usr/bin/env bash
#
# 37_data_random.sh — seeded random data operations on two files in
# lockstep on ext4 (loop device, 4 KiB blocks) and on mmapfs, the contents
# compared byte for byte after every step (tests/lib/data_random.py):
# shared mappings that live across the steps (stores, loads, stores past
# the end of the file, msync, munmap), buffered, O_APPEND and O_DIRECT
# descriptors side by side, truncate down and up, fallocate modes,
# copy_file_range, sendfile, a second process writing, truncating and
# storing through its own mapping, POSIX_FADV_DONTNEED; meanwhile another
# process seeks (SEEK_DATA/SEEK_HOLE), syncs and reads the mmapfs files;
# now and then a remount checked by fsck.mmapfs -n, or an fsync of both
# files and a kill -9 of the daemon (the data must survive the replay).
# Runs on a mount with the writeback cache and on one without.
#
# Environment: DATA_RANDOM_SEEDS (how many seeds per mount, default 1),
# DATA_RANDOM_FIRST (first seed, default 1), DATA_RANDOM_STEPS (steps
# per seed, default 150), DATA_RANDOM_BIG (largest offset, default
# 300000). A long run, e.g.:
#   DATA_RANDOM_SEEDS=300 DATA_RANDOM_STEPS=1000 IT_SCRIPT_TIMEOUT=36000 \
#     IT_ONLY=37_ tests/integration/run.sh build
# A failure prints the seed and the step; rerun that seed alone with
# DATA_RANDOM_FIRST=SEED DATA_RANDOM_SEEDS=1 (DATA_RANDOM_VERBOSE=1 shows
# every step).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
export LC_ALL=C

verbose=()
[ -z "${DATA_RANDOM_VERBOSE:-}" ] || verbose=(--verbose)
lockstep_vs_ext4 "$T_ROOT/tests/lib/data_random.py" "${DATA_RANDOM_FIRST:-1}" \
    "${DATA_RANDOM_SEEDS:-1}" "${DATA_RANDOM_STEPS:-150}" 5 \
    --big "${DATA_RANDOM_BIG:-300000}" --noise "${verbose[@]}"

t_finish
