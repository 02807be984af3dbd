#!/usr/bin/env bash
#
# 82_fsx.sh — data integrity under random operations on one file
# (tests/integration/fsx.c, in the manner of xfstests' fsx).
#
# fsx runs FSX_OPS (default 3000) random operations on one file — pwrite,
# pread, truncate up and down, fallocate (mode 0, KEEP_SIZE, PUNCH_HOLE,
# ZERO_RANGE with and without KEEP_SIZE, COLLAPSE_RANGE, INSERT_RANGE), mmap
# writes and reads (also writes past the end of the file in its last page,
# which must never become data), O_DIRECT writes and reads (-Z), fsync,
# fdatasync, close and reopen, dropping the file's page cache
# (POSIX_FADV_DONTNEED after fdatasync, so that later reads reach the
# filesystem), lseek SEEK_DATA and SEEK_HOLE — and checks every read and
# seek, and the whole file every 64 operations, against an in-memory model.
# Normal mode (files up to 256 KiB) and small-file mode (-s: sizes around
# 0..600 bytes and the 4 KiB boundary: inline data in the inode and its move
# to a block).
#
# 1. ext4 on a loop device (4 KiB blocks), the reference: proves the
#    exerciser right; there every operation must be supported.
# 2. mmapfs with the default options and with -o nowriteback_cache, seeds
#    1 2 3 and one from $RANDOM (printed), and one run of seed 1 on files
#    up to 4 MiB (1500 operations of up to 512 KiB): after each run the
#    model is saved (-x), the image unmounted and found clean by
#    fsck.mmapfs -n, mounted again, and the file compared with the saved
#    model (-c). Only COLLAPSE_RANGE and INSERT_RANGE may be refused
#    (EOPNOTSUPP: the kernel does not forward them to a FUSE daemon,
#    docs/LINUX.md).
#
# Replay a failure: the failing fsx command line (with its -S seed) is
# printed; FSX_SEED=N replaces the random seed, FSX_OPS=N the count,
# FSX_TIMEOUT=SEC (default 60) bounds each fsx run.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd cc
export LC_ALL=C

ops=${FSX_OPS:-3000}
random_seed=${FSX_SEED:-$RANDOM}
seeds=(1 2 3 "$random_seed")
echo "   seeds: ${seeds[*]} (the last one random: replay with FSX_SEED=$random_seed)"

FSX=$T_DIR/fsx
compile_c "$FSX" "$T_ROOT/tests/integration/fsx.c"

# Runs of each seed: normal files and small files, both with O_DIRECT.
modes=("-Z" "-s -Z")
# On mmapfs also once per cache mode (seed 1): files up to 4 MiB, 1500
# operations (the last -N wins) of up to 512 KiB.
large="-Z -l 4194304 -o 524288 -N 1500"

# fsx_run DESC ALLOWED_DISABLED FSX_ARGS... : fsx must pass, and the
# operations it disabled (refused by the filesystem) must be exactly
# ALLOWED_DISABLED (a comma-separated list, "" for none). On a failure
# the whole report is printed (operation log, first difference, seed).
fsx_run() {
    local desc=$1 allowed=$2
    shift 2
    local failed=$T_FAIL
    STEP_TIMEOUT=${FSX_TIMEOUT:-60} check "$desc" "$FSX" "$@"
    if [ "$T_FAIL" -ne "$failed" ]; then
        printf '%s\n' "$T_OUT" | head -n 120 | sed 's/^/       | /'
        return 0
    fi
    local summary disabled=""
    summary=$(printf '%s\n' "$T_OUT" | tail -n 1)
    printf '     %s\n' "$summary"
    if [[ "$summary" == *"; disabled: "* ]]; then
        disabled=${summary#*; disabled: }
        disabled=${disabled%%;*}
    fi
    check_eq "$desc: operations refused by the filesystem" "$allowed" "$disabled"
}

# ---- ext4 on a loop device: the reference ------------------------------------------
E4=$T_DIR/ext4
umount_first "$E4"
ext4_runs() {
    local seed mode
    for seed in 1 2; do
        for mode in "${modes[@]}"; do
            # shellcheck disable=SC2086 # mode is a list of options
            fsx_run "ext4: fsx -S $seed $mode" "" -N "$ops" -S "$seed" $mode "$E4/f$seed"
        done
    done
}
EXT4_SIZE=512M on_ext4 "$E4" ext4_runs

# ---- mmapfs, with and without the writeback cache ---------------------------------
# Each run is "SEED OPTIONS": every seed in both modes, and the large run.
runs=("1 $large" "${seeds[@]/%/ ${modes[0]}}" "${seeds[@]/%/ ${modes[1]}}")
img=$T_DIR/fsx.img
M=$T_DIR/mnt
make_image "$img" 256M
n=0
for cache in writeback_cache nowriteback_cache; do
    for run in "${runs[@]}"; do
        seed=${run%% *} mode=${run#* }
        n=$((n + 1))
        file=$M/f$n model=$T_DIR/model$n
        desc="mmapfs $cache: fsx -S $seed $mode"
        mount_image "$img" "$M" -o "$cache"
        # shellcheck disable=SC2086 # mode is a list of options
        fsx_run "$desc" "collapse, insert" -N "$ops" -S "$seed" $mode -x "$model" "$file"
        unmount_fs "$M" || break 2
        fsck_clean "$img" "$desc: fsck.mmapfs -n clean afterwards"
        mount_image "$img" "$M" -o "$cache"
        [ ! -e "$model" ] || check "$desc: after a remount the file matches the saved model" \
            "$FSX" -c "$model" "$file"
        unmount_fs "$M" || break 2
    done
done
t_finish
