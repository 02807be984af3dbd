#!/usr/bin/env bash
#
# 55_collapse.sh — FALLOC_FL_COLLAPSE_RANGE and FALLOC_FL_INSERT_RANGE,
# mmapfs against ext4. The same file (data, a hole, an unwritten range, a
# partial last block) gets the same sequence of collapses and inserts,
# errno cases included, on ext4 on a loop device (the reference) and on
# mmapfs; the errno of every operation, the final size and the final
# content must be equal.
#
# The kernel does not forward these two modes to a FUSE daemon (its
# fuse_file_fallocate refuses every mode but KEEP_SIZE, PUNCH_HOLE and
# ZERO_RANGE with EOPNOTSUPP before sending FALLOCATE), so through the
# mount `fallocate -c` / `-i` fail with EOPNOTSUPP and the file, as read
# through the page cache, stays as it was: checked with and without the
# writeback cache. The mmapfs side of the comparison therefore runs
# through the fs core on the unmounted image (shift_probe.c), and the
# result is then read back through a fresh mount in both cache modes.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3 cc sha256sum fallocate

E4=$T_DIR/ext4
BS=4096

PROBE=$T_DIR/shift_probe
if ! T_OUT=$(cc -I"$T_ROOT/src" -I"$T_ROOT/include" -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 \
        -std=gnu11 -O2 -Wall -o "$PROBE" "$T_ROOT/tests/integration/shift_probe.c" \
        "$MMAPFS_BUILD/libmmapfs.a" "$MMAPFS_BUILD/libmmio.a" -lpthread 2>&1); then
    fail "compile shift_probe.c" "$T_OUT"
    t_finish
fi

# shift.py make DIR       : DIR/f: 256 blocks + 1000 bytes of pattern, a
#                           hole at blocks 40..49, unwritten blocks 100..109
# shift.py ops DIR OP...  : applies MODE:OFFSET:LENGTH operations to DIR/f,
#                           prints "MODE OFFSET LENGTH OK|ERRNO" and "size N"
cat >"$T_DIR/shift.py" <<'PY'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
BS = 4096
KEEP, PUNCH = 0x01, 0x02

def falloc(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) == 0:
        return "OK"
    e = ctypes.get_errno()
    return "EOPNOTSUPP" if e == errno.EOPNOTSUPP else errno.errorcode.get(e, str(e))

cmd, path = sys.argv[1], sys.argv[2] + "/f"
if cmd == "make":
    data = bytes((i * 7 + i // 4096) & 0xff or 1 for i in range(256 * BS + 1000))
    with open(path, "wb") as f:
        f.write(data)
    fd = os.open(path, os.O_RDWR)
    for mode, off, n in ((PUNCH | KEEP, 40, 10), (PUNCH | KEEP, 100, 10), (KEEP, 100, 10)):
        r = falloc(fd, mode, off * BS, n * BS)
        if r != "OK":
            sys.exit("fallocate %d: %s" % (mode, r))
    os.fsync(fd)
    os.close(fd)
else:
    fd = os.open(path, os.O_RDWR)
    for op in sys.argv[3:]:
        mode, off, length = (int(x, 0) for x in op.split(":"))
        print(mode, off, length, falloc(fd, mode, off, length))
    print("size", os.fstat(fd).st_size)
    os.close(fd)
PY

C=8 I=32 K=1
OPS=(
    "$C:0:$((8 * BS))"                    # collapse at the start
    "$C:$((60 * BS)):$((20 * BS))"        # over the unwritten range
    "$I:$((30 * BS)):$((16 * BS))"        # insert in the middle (over the hole)
    "$I:0:$((4 * BS))"                    # insert at the start
    "$C:$((200 * BS)):$((BS))"            # collapse near the end
    "$I:$((240 * BS)):$((2 * BS))"        # insert into the last, partial block
    "$C:1:$BS"                            # unaligned offset: EINVAL
    "$I:0:100"                            # unaligned length: EINVAL
    "$((C | K)):0:$BS"                    # not alone: EOPNOTSUPP (6.x; EINVAL before)
    "$((C | I)):0:$BS"                    # both: EOPNOTSUPP (6.x; EINVAL before)
    "$C:$((240 * BS)):$((10 * BS))"       # reaching past the end: EINVAL
    "$C:$((243 * BS)):$BS"                # collapse again near the end
    "$C:$((1000 * BS)):$BS"               # past the end: EINVAL
    "$I:$((1000 * BS)):$BS"               # insert past the end: EINVAL
    "$I:0:$((1 << 46))"                   # past the maximum size: EFBIG
)

# ---- ext4 on a loop device: the reference ------------------------------------------
ref_ops=""
run_ext4() {
    check "ext4: make the file" python3 "$T_DIR/shift.py" make "$E4"
    if ! ref_ops=$(timeout -k 5 60 python3 "$T_DIR/shift.py" ops "$E4" "${OPS[@]}" 2>&1); then
        fail "ext4: operations ran" "$ref_ops"
        ref_ops=""
        return
    fi
    pass "ext4: operations ran"
    sha256sum <"$E4/f" | cut -d' ' -f1 >"$T_DIR/ref.sha"
}
on_ext4 "$E4" run_ext4
if [ -z "$ref_ops" ]; then
    skip "mmapfs against ext4 (no ext4 reference)"
    t_finish
fi

# ---- mmapfs: the kernel refuses the modes; the fs core does them -----------------------
img=$T_DIR/shift.img
make_image "$img" 128M
M=$T_DIR/mnt
mount_image "$img" "$M"
check "mmapfs: make the file" python3 "$T_DIR/shift.py" make "$M"
before=$(sha256sum <"$M/f" | cut -d' ' -f1)
unmount_fs "$M"
for opts in writeback_cache nowriteback_cache; do
    mount_image "$img" "$M" -o "$opts"
    cat "$M/f" >/dev/null                     # in the page cache
    check_fail "mmapfs -o $opts: fallocate -c through the mount fails" \
        fallocate -c -o 0 -l $BS "$M/f"
    for mode in FALLOC_FL_COLLAPSE_RANGE FALLOC_FL_INSERT_RANGE; do
        check_errno "mmapfs -o $opts: $mode through the mount is EOPNOTSUPP" EOPNOTSUPP \
            "fallocate(os.open('$M/f', os.O_RDWR), $mode, 0, $BS)"
    done
    check_eq "mmapfs -o $opts: file unchanged (page cache and daemon)" "$before" \
        "$(sha256sum <"$M/f" | cut -d' ' -f1)"
    unmount_fs "$M"
done

out=""
if ! out=$(timeout -k 5 60 "$PROBE" "$img" f "$T_DIR/core.out" "${OPS[@]}" 2>&1); then
    fail "mmapfs core: operations ran" "$out"
else
    pass "mmapfs core: operations ran"
fi
check_eq "mmapfs core: errno of each operation and final size as on ext4" "$ref_ops" "$out"
ref_sha=$(cat "$T_DIR/ref.sha")
check_eq "mmapfs core: content as on ext4" "$ref_sha" "$(sha256sum <"$T_DIR/core.out" | cut -d' ' -f1)"
fsck_clean "$img"
for opts in writeback_cache nowriteback_cache; do
    mount_image "$img" "$M" -o "$opts"
    check_eq "mmapfs -o $opts: shifted content read through a new mount as on ext4" \
        "$ref_sha" "$(sha256sum <"$M/f" | cut -d' ' -f1)"
    unmount_fs "$M"
done

t_finish
