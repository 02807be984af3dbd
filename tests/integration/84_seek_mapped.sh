#!/usr/bin/env bash
#
# 84_seek_mapped.sh — SEEK_DATA/SEEK_HOLE see bytes stored through a
# shared mapping that the kernel has not written back yet.
#
# A 1 MiB file that is all hole is mapped MAP_SHARED and 10 bytes are
# stored at 512 KiB (no msync). From a second descriptor, SEEK_DATA from 0
# must find 512 KiB, SEEK_HOLE from there must lie past the 10 bytes, and
# a copy of the data segments only (what `cp --sparse`, tar and backup
# tools do with SEEK_DATA/SEEK_HOLE) must hold the bytes. Then msync: the
# same again.
#
# ext4 on a loop device is the reference; mmapfs runs with the default
# writeback cache, with -o nowriteback_cache and with -s (single-threaded
# loop, no writeback cache). Without the writeback cache the daemon used
# not to have the kernel write the file's pages back before answering, so
# SEEK_DATA said ENXIO (the whole file a hole) and the copy lost the bytes;
# with -s that write-back also has to wait on the deferral thread
# (src/fuse/defer.c), or the only request thread waits for itself.
#
# Second probe, same filesystems: bytes stored through a shared mapping
# past the end of a 100-byte file (the rest of its last page), msync'd and
# unmapped, must not become file data: after a truncate up to 8 KiB the
# file reads 100 bytes and then zeros, from the page cache and again after
# the caches are dropped (read back from the image).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
export LC_ALL=C

cat >"$T_DIR/seek_mapped.py" <<'EOF'
import mmap, os, sys, time
p = sys.argv[1] + "/mapped"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, 1 << 20)
m = mmap.mmap(fd, 1 << 20)
m[512 << 10:(512 << 10) + 10] = b"0123456789"
r = os.open(p, os.O_RDONLY)

def check(when):
    try:
        d = os.lseek(r, 0, os.SEEK_DATA)
    except OSError as e:
        sys.exit("%s: SEEK_DATA from 0: %s (the stored bytes are data)" % (when, e))
    if d > 512 << 10:
        sys.exit("%s: SEEK_DATA from 0 = %d, past the stored bytes at %d" % (when, d, 512 << 10))
    h = os.lseek(r, 512 << 10, os.SEEK_HOLE)
    if h < (512 << 10) + 10:
        sys.exit("%s: SEEK_HOLE from %d = %d, inside the stored bytes" % (when, 512 << 10, h))
    copy, pos = bytearray(1 << 20), 0
    while True:
        try:
            pos = os.lseek(r, pos, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(r, pos, os.SEEK_HOLE)
        copy[pos:end] = os.pread(r, end - pos, pos)
        pos = end
    if bytes(copy) != m[:]:
        sys.exit("%s: a copy of the data segments differs from the file" % when)

def probe():
    check("before msync")
    m.flush()
    check("after msync")

# A hang (the only request thread waiting for a write-back that it would
# have to serve itself) would never end: after 10 s the FUSE connection is
# aborted, so that nothing stays stuck, and the probe fails.
pid = os.fork()
if pid == 0:
    try:
        probe()
    except SystemExit as e:
        print(e, file=sys.stderr)
        os._exit(1)
    os._exit(0)
for _ in range(100):
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(os.waitstatus_to_exitcode(status))
    time.sleep(0.1)
if os.path.ismount(sys.argv[1]):
    dev = os.stat(sys.argv[1]).st_dev
    with open("/sys/fs/fuse/connections/%d/abort" % os.minor(dev), "w") as f:
        f.write("1")
sys.exit("HANG: no answer within 10 s; FUSE connection aborted")
EOF

cat >"$T_DIR/eof_mapped.py" <<'EOF'
import ctypes, ctypes.util, os, sys
p = sys.argv[1] + "/eofmapped"
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"A" * 100)
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
PROT_RW, MAP_SHARED, MS_SYNC = 3, 1, 4
addr = libc.mmap(None, 4096, PROT_RW, MAP_SHARED, fd, 0)
if addr in (None, ctypes.c_void_p(-1).value):
    sys.exit("mmap: %s" % os.strerror(ctypes.get_errno()))
ctypes.memset(addr + 100, ord("Z"), 4096 - 100)      # the page past EOF
if libc.msync(addr, 4096, MS_SYNC) != 0 or libc.munmap(addr, 4096) != 0:
    sys.exit("msync/munmap: %s" % os.strerror(ctypes.get_errno()))
os.ftruncate(fd, 8192)
os.fsync(fd)
os.close(fd)

def check(when):
    with open(p, "rb") as f:
        d = f.read()
    if len(d) != 8192 or d[:100] != b"A" * 100:
        sys.exit("%s: size %d or the first 100 bytes wrong" % (when, len(d)))
    bad = [i for i in range(100, 8192) if d[i]]
    if bad:
        sys.exit("%s: %d bytes past the old end are not zero (first at %d: %r)"
                 % (when, len(bad), bad[0], d[bad[0]:bad[0] + 1]))

check("after the truncate up")
with open("/proc/sys/vm/drop_caches", "w") as f:
    f.write("3")
check("after dropping caches")
os.unlink(p)
EOF

# seek DESC DIR : the probe on DIR.
seek() {
    STEP_TIMEOUT=30 check "$1" "$PY" "$T_DIR/seek_mapped.py" "$2"
}
# eof DESC DIR : the past-EOF probe on DIR.
eof() {
    STEP_TIMEOUT=30 check "$1" "$PY" "$T_DIR/eof_mapped.py" "$2"
}

E4=$T_DIR/ext4
umount_first "$E4"
on_ext4 "$E4" seek "ext4: SEEK_DATA/SEEK_HOLE see unwritten-back mapped stores" "$E4"
on_ext4 "$E4" eof "ext4: mapped stores past EOF do not become data" "$E4"

img=$T_DIR/seek.img
M=$T_DIR/mnt
make_image "$img" 64M
for opts in "" "-o nowriteback_cache" "-s"; do
    # shellcheck disable=SC2086 # opts is a list of arguments
    mount_image "$img" "$M" $opts
    seek "mmapfs ${opts:-(default)}: SEEK_DATA/SEEK_HOLE see unwritten-back mapped stores" "$M"
    eof "mmapfs ${opts:-(default)}: mapped stores past EOF do not become data" "$M"
    if mountpoint -q "$M" && [ -z "$(ls "$M" 2>&1 >/dev/null)" ]; then
        unmount_fs "$M" || break
    else
        fusermount3 -u "$M" 2>/dev/null || fusermount3 -u -z "$M" 2>/dev/null || true
        _forget_mount "$M"
        break
    fi
done
t_finish
