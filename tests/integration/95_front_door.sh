#!/usr/bin/env bash
#
# 95_front_door.sh — bad input at the front door of mmapfs, mkfs.mmapfs,
# fsck.mmapfs, mmapfs-resize and mmapfs-trim: every bad option value, a
# missing or unusable target, a directory or a too small target, a bad
# mount point, a target in use.
# Each case asserts the exit status (docs/man/*.8, EXIT STATUS), that the
# message is one line (two where fs_mount names the detail first), and a
# word of it. Nothing may get mounted and no file may be created by a
# refusal. Bounded: every command runs under timeout; the EXIT trap undoes
# every mount, loop device and immutable flag (common.sh).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
STEP_TIMEOUT=40
t_init "$@"
require_cmd chattr losetup truncate mount umount

M=$T_DIR/mnt
IMG=$T_DIR/good.img
IMMUTABLE=""


# expect DESC CODE PATTERN CMD... : CMD exits CODE, prints exactly one
# line (stdout and stderr together) and the line matches PATTERN (grep -E).
expect() {
    expect_lines "$1" "$2" "$3" 1 "${@:4}"
}

# expect_lines DESC CODE PATTERN MAXLINES CMD... : as expect, at most
# MAXLINES lines, the last one matching PATTERN.
expect_lines() {
    local desc=$1 code=$2 pattern=$3 max=$4 lines
    shift 4
    _run "$@" </dev/null
    lines=$(printf '%s' "$T_OUT" | grep -c '' || true)
    if [ "$T_RC" -eq "$code" ] && [ "$lines" -ge 1 ] && [ "$lines" -le "$max" ] &&
        tail -n 1 <<<"$T_OUT" | grep -Eq -- "$pattern"; then
        pass "$desc (exit $code)"
    else
        fail "$desc" "command: $(_cmdline "$@")" \
            "expected: exit $code, 1..$max lines, last matching /$pattern/" \
            "got:      exit $T_RC, $lines lines"
        _tail_output "$T_OUT"
    fi
}

make_image "$IMG" 32M
mkdir -p "$M" "$T_DIR/dir"
truncate -s 0 "$T_DIR/empty.img"
truncate -s 100 "$T_DIR/tiny.img"
truncate -s 32M "$T_DIR/zeros.img"

# ---- mmapfs: usage (2) ----------------------------------------------------------------------
expect "mmapfs: no arguments" 2 "no TARGET given" "$MMAPFS"
expect "mmapfs: no mount point" 2 "no MOUNTPOINT given" "$MMAPFS" "$IMG"
expect "mmapfs: a third positional" 2 "unexpected argument 'extra'" "$MMAPFS" "$IMG" "$M" extra
expect "mmapfs: unknown dash option" 2 "unknown option '--frobnicate'" "$MMAPFS" "$IMG" "$M" --frobnicate
expect_lines "mmapfs: unknown -o option (libfuse names it)" 2 "invalid FUSE option" 2 \
    "$MMAPFS" "$IMG" "$M" -o no_such_option
check_sh "mmapfs: the unknown -o option is named" \
    'out=$("$0" "$1" "$2" -o no_such_option 2>&1); grep -q no_such_option <<<"$out"' \
    "$MMAPFS" "$IMG" "$M"
while read -r opt want; do
    expect "mmapfs: -o $opt" 2 "^mmapfs: .*$want" "$MMAPFS" "$IMG" "$M" -o "$opt"
done <<'EOF'
io=floppy io=floppy: expected io=mmap or io=pread
commit=5x commit=5x: expected seconds, 1..86400
commit=0 commit=0: expected seconds, 1..86400
commit=86401 commit=86401: expected seconds
sync_delay=-1 sync_delay=-1: expected microseconds
sync_delay=10000001 sync_delay=10000001: expected microseconds
entry_timeout=-1 entry_timeout=-1: expected seconds
entry_timeout=nan entry_timeout=nan: expected seconds
attr_timeout=1e9 attr_timeout=1e9: expected seconds
max_threads=0 max_threads=0: expected 1..1024
max_threads=1025 max_threads=1025: expected 1..1024
max_idle_threads=0 max_idle_threads=0: expected 1..max_threads
max_threads=4,max_idle_threads=5 max_idle_threads=5: expected 1..max_threads
spin=1001 spin=1001: expected microseconds, 0..1000
spin=-1 spin=-1: expected microseconds
readdirplus=never readdirplus=never: expected readdirplus=always
max_ratio=101 max_ratio=101: expected a percentage
min_ratio=x min_ratio=x: expected a percentage
max_ratio=10,min_ratio=20 min_ratio=20 is above max_ratio=10
subtype=x subtype=x: the subtype is always mmapfs
EOF

# ---- mmapfs: TARGET (3: access, 4: kind) --------------------------------------------------
expect "mmapfs: missing image" 3 "no such file or device" "$MMAPFS" "$T_DIR/no-such.img" "$M"
check_fail "mmapfs: the missing image was not created" test -e "$T_DIR/no-such.img"
expect "mmapfs: image in a missing directory" 3 "no such file or device" \
    "$MMAPFS" "$T_DIR/no-dir/x.img" "$M"
expect "mmapfs: TARGET is a directory" 4 "is a directory: give the image file" \
    "$MMAPFS" "$T_DIR/dir" "$M"
expect "mmapfs: TARGET is a character device" 4 "not a regular file or block device" \
    "$MMAPFS" /dev/null "$M"
expect "mmapfs: empty TARGET" 4 "0 bytes: too small" "$MMAPFS" "$T_DIR/empty.img" "$M"
expect "mmapfs: 100-byte TARGET" 4 "100 bytes: too small" "$MMAPFS" "$T_DIR/tiny.img" "$M"
expect_lines "mmapfs: TARGET that is not mmapfs" 4 "not an mmapfs filesystem" 2 \
    "$MMAPFS" "$T_DIR/zeros.img" "$M"
cp --sparse=always "$IMG" "$T_DIR/corrupt.img"
printf '\xff' | dd of="$T_DIR/corrupt.img" bs=1 seek=300 conv=notrunc status=none
expect_lines "mmapfs: corrupt superblock" 7 "corrupt; run fsck.mmapfs" 2 \
    "$MMAPFS" "$T_DIR/corrupt.img" "$M"
# an image cut short: the message says how to get it back, not "run fsck"
# (fsck cannot repair a cut image either), and the advice works
cp --sparse=always "$IMG" "$T_DIR/short.img"
truncate -s 24M "$T_DIR/short.img"
expect "mmapfs: image cut short" 4 "image is 25165824 bytes, its filesystem 33554432.*truncate -s 33554432" \
    "$MMAPFS" "$T_DIR/short.img" "$M"
expect "fsck: image cut short" 8 "image is 25165824 bytes.*truncate -s 33554432" \
    "$FSCK" -y "$T_DIR/short.img"
expect "mmapfs-trim: image cut short" 4 "image is 25165824 bytes.*truncate -s 33554432" \
    "$T_BUILD/mmapfs-trim" "$T_DIR/short.img"
truncate -s 33554432 "$T_DIR/short.img"
check_sh "fsck: the image given its size back is clean" '"$0" -n "$1" >/dev/null' \
    "$FSCK" "$T_DIR/short.img"
cp --sparse=always "$IMG" "$T_DIR/immutable.img"
if make_immutable "$T_DIR/immutable.img"; then
    IMMUTABLE=$T_DIR/immutable.img
    expect "mmapfs: immutable image, read-write" 3 "cannot open it for writing.*-o ro" \
        "$MMAPFS" "$IMMUTABLE" "$M"
    mount_image "$IMMUTABLE" "$M" -o ro
    pass "mmapfs: immutable image mounts with -o ro"
    check "mmapfs -o ro of an immutable image: files readable" test -d "$M/lost+found"
    unmount_fs "$M"
    T_DIRTY["$IMMUTABLE"]=0          # read-only: nothing to check afterwards
else
    skip "immutable image: chattr +i not supported here"
fi
if dev=$(timeout -k 5 30 losetup -r --find --show "$IMG" 2>/dev/null); then
    T_LOOPS+=("$dev")
    expect "mmapfs: read-only loop device, read-write" 3 "cannot open it for writing.*-o ro" \
        "$MMAPFS" "$dev" "$M"
    expect "mkfs: read-only loop device" 3 "cannot write it" "$MKFS" -q -f "$dev"
    expect "fsck -y: read-only loop device" 8 "cannot open it for writing.*use -n" \
        "$FSCK" -y "$dev"
    drop_loop "$dev" || true
else
    skip "read-only loop device: losetup does not work here"
fi

# ---- mmapfs: MOUNTPOINT (6) ----------------------------------------------------------------
expect "mmapfs: missing mount point" 6 "does not exist: create it" \
    "$MMAPFS" "$IMG" "$T_DIR/no-such-dir"
expect "mmapfs: mount point is a file" 6 "is not a directory" "$MMAPFS" "$IMG" "$T_DIR/tiny.img"
if mount_other "$T_DIR/busy" -t tmpfs -o size=1m tmpfs; then
    expect "mmapfs: mount point already mounted" 6 "is already mounted: unmount it" \
        "$MMAPFS" "$IMG" "$T_DIR/busy"
    check_eq "mmapfs: nothing mounted over it" "tmpfs" "$(stat -f -c %T "$T_DIR/busy")"
    timeout -k 5 30 umount "$T_DIR/busy" || true
else
    skip "mount point already mounted: cannot mount a tmpfs"
fi

# ---- in use (5) --------------------------------------------------------------------------------
mount_image "$IMG" "$M"
mkdir -p "$T_DIR/mnt2"
expect "mmapfs: TARGET already mounted" 5 "is already mounted: unmount it first" \
    "$MMAPFS" "$IMG" "$T_DIR/mnt2"
expect "mmapfs: mount point already mounted (by mmapfs)" 6 "is already mounted" \
    "$MMAPFS" "$T_DIR/zeros.img" "$M"
expect "mkfs: TARGET mounted" 5 "in use .*unmount it first" "$MKFS" -q -f "$IMG"
expect "fsck -y: TARGET mounted" 8 "in use \(mounted\?\): refusing to repair" "$FSCK" -y "$IMG"
unmount_fs "$M"
check_fail_sh "no refusal mounted anything" \
    'mountpoint -q "$0" || mountpoint -q "$1" || mountpoint -q "$2"' "$M" "$T_DIR/mnt2" "$T_DIR/busy"

# ---- mkfs.mmapfs -------------------------------------------------------------------------------
expect "mkfs: no arguments" 2 "no TARGET given" "$MKFS"
expect "mkfs: two targets" 2 "more than one TARGET" "$MKFS" a b
expect "mkfs: unknown option" 2 "unknown option -z" "$MKFS" -z x
expect "mkfs: unknown long option" 2 "unknown option --frobnicate" "$MKFS" --frobnicate x
expect "mkfs: -s without a value" 2 "option -s needs a value" "$MKFS" -s
expect "mkfs: --size without a value" 2 "option --size needs a value" "$MKFS" --size
expect "mkfs: a value given to a flag" 2 "option --force takes no value" "$MKFS" --force=1 x
expect "mkfs: -s 12Q" 2 "-s 12Q: expected a size" "$MKFS" -s 12Q "$T_DIR/new.img"
expect "mkfs: -s 0" 2 "-s 0: expected a size" "$MKFS" -s 0 "$T_DIR/new.img"
expect "mkfs: -s -5M" 2 "-s -5M: expected a size" "$MKFS" -s -5M "$T_DIR/new.img"
expect "mkfs: -s ' -1' (a blank, then a sign)" 2 "-s  -1: expected a size" \
    "$MKFS" -s " -1" "$T_DIR/new.img"
expect "mkfs: -N ' -1'" 2 "-N  -1: expected a number" "$MKFS" -s 32M -N " -1" "$T_DIR/new.img"
expect "mkfs: -N 0" 2 "-N 0: expected a number" "$MKFS" -s 32M -N 0 "$T_DIR/new.img"
expect "mkfs: -N x" 2 "-N x: expected a number" "$MKFS" -s 32M -N x "$T_DIR/new.img"
expect "mkfs: -J 1x" 2 "-J 1x: expected a number" "$MKFS" -s 32M -J 1x "$T_DIR/new.img"
# below the minimum: the minimum, not "does not fit ...: at most 4096 blocks"
expect "mkfs: -J 1025" 2 "-J 1025: expected a number of 4 KiB blocks, at least 1026" \
    "$MKFS" -q --sparse -s 32M -J 1025 "$T_DIR/new.img"
expect "mkfs: -L of 65 bytes" 2 "-L: the label has 65 bytes" \
    "$MKFS" -s 32M -L "$(printf 'x%.0s' $(seq 65))" "$T_DIR/new.img"
expect "mkfs: -J larger than fits" 2 "-J 100000 does not fit in 33554432 bytes: at most [0-9]+ blocks" \
    "$MKFS" -q --sparse -s 32M -J 100000 "$T_DIR/new.img"
expect "mkfs: -N larger than fits" 2 "-N 1000000 does not fit in 33554432 bytes: at most [0-9]+ inodes" \
    "$MKFS" -q --sparse -s 32M -N 1000000 "$T_DIR/new.img"
expect "mkfs: missing TARGET without -s" 2 "does not exist: give its size with -s" \
    "$MKFS" "$T_DIR/new.img"
expect "mkfs: empty TARGET without -s" 2 "is empty: give its size with -s" "$MKFS" "$T_DIR/empty.img"
check_fail "mkfs: no file was created by the refusals" test -e "$T_DIR/new.img"
expect "mkfs: size below the minimum" 4 "too small \(minimum 16 MiB\)" \
    "$MKFS" -q --sparse -s 1M "$T_DIR/new.img"
check_fail "mkfs: ... and nothing created" test -e "$T_DIR/new.img"
expect "mkfs: 100-byte TARGET" 4 "too small" "$MKFS" -q "$T_DIR/tiny.img"
expect "mkfs: TARGET is a directory" 4 "is a directory: give an image file" "$MKFS" -q "$T_DIR/dir"
expect "mkfs: TARGET is a character device" 4 "not a regular file or block device" "$MKFS" -q /dev/null
expect "mkfs: TARGET in a missing directory" 3 "cannot create it: No such file" \
    "$MKFS" -q -s 32M "$T_DIR/no-dir/x.img"
# too large for the host: a file size limit (as a host filesystem's largest
# file: ext4 16 TiB) and an address space limit (the image is mapped whole)
expect "mkfs: larger than the file size limit" 4 "no file of 4294967296 bytes is allowed here" \
    bash -c 'trap "" XFSZ; ulimit -f 1048576; exec "$@"' sh "$MKFS" -q --sparse -s 4G "$T_DIR/new.img"
check_fail "mkfs: ... and nothing left" test -e "$T_DIR/new.img"
if ! grep -q __asan_init "$MKFS"; then     # ASan reserves terabytes of address space
    expect "mkfs: larger than the address space limit" 4 "cannot map 4294967296 bytes: the image is mapped whole" \
        bash -c 'ulimit -v 1000000; exec "$@"' sh "$MKFS" -q --sparse -s 4G "$T_DIR/new.img"
    check_fail "mkfs: ... and nothing left" test -e "$T_DIR/new.img"
    make_image "$T_DIR/big.img" 4G
    expect_lines "mmapfs: an image larger than the address space limit" 1 \
        "cannot mount .*|cannot map the image: it is mapped whole" 2 \
        bash -c 'ulimit -v 1000000; exec "$@"' sh "$MMAPFS" "$T_DIR/big.img" "$M"
    check_sh "mmapfs: ... and says why" 'grep -q "cannot map the image: it is mapped whole" <<<"$0"' "$T_OUT"
    expect "fsck: an image larger than the address space limit" 8 \
        "cannot open: cannot map the image: it is mapped whole" \
        bash -c 'ulimit -v 1000000; exec "$@"' sh "$FSCK" -n "$T_DIR/big.img"
    rm -f "$T_DIR/big.img"
fi
expect "mkfs: existing mmapfs without -f" 8 "found .*use -f to overwrite it" "$MKFS" -q "$IMG"
if [ -n "$IMMUTABLE" ]; then
    expect "mkfs: immutable file" 3 "cannot open it \(Operation not permitted\)" \
        "$MKFS" -q -f "$IMMUTABLE"
fi
if mount_other "$T_DIR/small" -t tmpfs -o size=8m tmpfs; then
    expect "mkfs: no room to preallocate" 9 "has [0-9]+ MiB free, this needs [0-9]+ MiB more.*--sparse" \
        "$MKFS" -q -s 32M "$T_DIR/small/x.img"
    check_fail "mkfs: the new file was removed again" test -e "$T_DIR/small/x.img"
    expect "mkfs: --sparse, no room for the journal and metadata" 9 \
        "this needs [0-9]+ MiB more \(the journal and metadata of a --sparse image\): free space, choose a smaller -s$" \
        "$MKFS" -q --sparse -s 8G "$T_DIR/small/x.img"
    timeout -k 5 30 umount "$T_DIR/small" || true
else
    skip "mkfs on a full filesystem: cannot mount a tmpfs"
fi

# ---- fsck.mmapfs (fsck(8) codes: 8 operational, 16 usage) ---------------------------------
expect "fsck: no arguments" 16 "no TARGET given" "$FSCK"
expect "fsck: two targets" 16 "more than one TARGET" "$FSCK" a b
expect "fsck: unknown option" 16 "unknown option -z" "$FSCK" -z "$IMG"
expect "fsck: -n and -y" 16 "exclude each other" "$FSCK" -n -y "$IMG"
expect "fsck: missing TARGET" 8 "no such file or device" "$FSCK" -n "$T_DIR/no-such.img"
check_fail "fsck: the missing image was not created" test -e "$T_DIR/no-such.img"
expect "fsck: TARGET is a directory" 8 "is a directory" "$FSCK" -n "$T_DIR/dir"
expect "fsck -y: TARGET is a directory" 8 "is a directory" "$FSCK" -y "$T_DIR/dir"
expect "fsck: TARGET is a character device" 8 "not a regular file or block device" "$FSCK" -n /dev/null
expect "fsck: empty TARGET" 8 "0 bytes: too small" "$FSCK" -n "$T_DIR/empty.img"
expect "fsck: 100-byte TARGET" 8 "100 bytes: too small" "$FSCK" -n "$T_DIR/tiny.img"
expect "fsck: TARGET that is not mmapfs" 8 "not mmapfs|magic" "$FSCK" -n "$T_DIR/zeros.img"
check_sh "fsck: the good image is clean" '"$0" -n "$1" >/dev/null' "$FSCK" "$IMG"

# ---- mmapfs-resize, mmapfs-trim (one option loop: src/tools/cli.c) -------------------------
RESIZE="$T_BUILD/mmapfs-resize"
TRIM="$T_BUILD/mmapfs-trim"
GROW=$T_DIR/grow.img
cp --sparse=always "$IMG" "$GROW"
expect_lines "resize: --help" 0 "11 no room for a bitmap that large" 20 "$RESIZE" --help
expect "resize: -V" 0 "^mmapfs-resize [^ ]+ \(on-disk format [0-9]+\)$" "$RESIZE" -V
expect "resize: unknown option" 2 "^mmapfs-resize: unknown option -z \(see mmapfs-resize --help\)$" \
    "$RESIZE" -z "$GROW"
expect "resize: unknown long option" 2 "unknown option --frobnicate" "$RESIZE" --frobnicate "$GROW"
expect "resize: a value given to a flag" 2 \
    "^mmapfs-resize: option --dry-run takes no value \(see mmapfs-resize --help\)$" \
    "$RESIZE" --dry-run=3 "$GROW" 64M
expect "resize: no arguments" 2 "no TARGET given" "$RESIZE" -q
expect "resize: three arguments" 2 "too many arguments" "$RESIZE" a b c
expect "resize: bad SIZE" 2 "SIZE 12Q: expected bytes" "$RESIZE" "$GROW" 12Q
expect "resize: SIZE ' -8192'" 2 "SIZE  -8192: expected bytes" "$RESIZE" "$GROW" " -8192"
expect_lines "resize --dry-run: the plan" 0 "inodes" 4 "$RESIZE" --dry-run "$GROW" 64M
expect_lines "resize -n -q: the plan" 0 "inodes" 4 "$RESIZE" -n -q "$GROW" 64M
check_sh "resize -n changed nothing" '[ "$(stat -c %s "$0")" -eq $((32 << 20)) ]' "$GROW"
expect_lines "trim: --help" 0 "7 corrupt or not cleanly unmounted" 12 "$TRIM" --help
expect "trim: --version" 0 "^mmapfs-trim [^ ]+ \(on-disk format [0-9]+\)$" "$TRIM" --version
expect "trim: unknown option" 2 "^mmapfs-trim: unknown option -z \(see mmapfs-trim --help\)$" \
    "$TRIM" -z "$GROW"
expect "trim: no arguments" 2 "no TARGET given" "$TRIM" -v
expect "trim: two targets" 2 "more than one TARGET" "$TRIM" a b
expect "trim --verbose: what was given back" 0 "free blocks .* given back" "$TRIM" --verbose "$GROW"
check_sh "fsck: the trimmed image is clean" '"$0" -n "$1" >/dev/null' "$FSCK" "$GROW"
# an unusable TARGET: the codes of their man pages (3 cannot be opened, 4 not
# an image of mmapfs); a directory was exit 1, "failure"
for tool in "$RESIZE" "$TRIM"; do
    name=${tool##*/}
    expect "$name: missing TARGET" 3 "cannot open it read-write" "$tool" "$T_DIR/no-such.img"
    check_fail "$name: the missing image was not created" test -e "$T_DIR/no-such.img"
    expect "$name: TARGET below a file" 3 "cannot open it read-write" "$tool" \
        "$T_DIR/tiny.img/x"
    expect "$name: TARGET is a directory" 4 "Is a directory" "$tool" "$T_DIR/dir"
    expect "$name: TARGET is a character device" 4 "not a regular file or block device" \
        "$tool" /dev/null
    expect "$name: 100-byte TARGET" 4 "too small" "$tool" "$T_DIR/tiny.img"
    expect "$name: TARGET that is not mmapfs" 4 "no magic" "$tool" "$T_DIR/zeros.img"
done
t_finish
