#!/usr/bin/env bash
#
# 87_timestamps.sh — timestamps the kernel sets and timestamps the daemon
# sets never go backwards relative to each other. With the writeback cache
# the kernel stamps the ctime of a regular file itself at link, rename and
# unlink (from its coarse clock), while the daemon stamps a file it
# creates. A file created just before (the reference) must not look newer
# than the link, rename or unlink that followed it. The same probe runs on
# ext4 on a loop device as the reference, and on mmapfs with and without
# the writeback cache.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3

E4=$T_DIR/ext4
ROUNDS=${TS_ROUNDS:-300}

cat >"$T_DIR/ts.py" <<'EOF'
import os, sys
d, rounds = sys.argv[1] + "/ts", int(sys.argv[2])
os.mkdir(d)
a = d + "/a"
open(a, "w").close()
bad = {"link": 0, "rename": 0, "unlink": 0}

def ref(name):
    """ctime of a file created now (stamped by the filesystem)."""
    p = d + "/" + name
    open(p, "w").close()
    return os.stat(p).st_ctime_ns

for i in range(rounds):
    r = ref("r%d" % i)
    os.link(a, d + "/l%d" % i)
    bad["link"] += os.stat(a).st_ctime_ns < r
    r = ref("s%d" % i)
    os.rename(d + "/l%d" % i, d + "/m%d" % i)
    bad["rename"] += os.stat(a).st_ctime_ns < r
    r = ref("u%d" % i)
    os.unlink(d + "/m%d" % i)
    bad["unlink"] += os.stat(a).st_ctime_ns < r
for op, n in bad.items():
    print("%s %d" % (op, n))
EOF

# The times a size change leaves: truncate(2), ftruncate(2) and
# open(O_TRUNC), to a new size and to the same one, and fallocate(2).
# ext4 marks mtime and ctime for update in every case (POSIX asks it of
# open(O_TRUNC) whatever the size). FUSE sends open(O_TRUNC) and
# ftruncate(2) to the daemon without a time, for the daemon to stamp (the kernel's update_mtime()).
cat >"$T_DIR/trunc.py" <<'EOF'
import ctypes, os, sys, time
d = sys.argv[1] + "/trunc"
os.mkdir(d)
def case(name, size, op):
    p = d + "/" + name
    with open(p, "wb") as f:
        f.write(b"x" * size)
    os.utime(p, ns=(10**9, 10**9))
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.02)          # past the coarse clock's tick
    op(p)
    st = os.stat(p)
    print(name, "mtime", "changed" if st.st_mtime_ns != 10**9 else "same",
          "ctime", "changed" if st.st_ctime_ns != c0 else "same")
def ftrunc(n):
    def op(p):
        fd = os.open(p, os.O_RDWR)
        os.ftruncate(fd, n)
        os.close(fd)
    return op
case("truncate-shorter", 100, lambda p: os.truncate(p, 50))
case("truncate-same", 100, lambda p: os.truncate(p, 100))
case("ftruncate-shorter", 100, ftrunc(50))
case("ftruncate-same", 100, ftrunc(100))
case("open-O_TRUNC", 100, lambda p: os.close(os.open(p, os.O_WRONLY | os.O_TRUNC)))
case("open-O_TRUNC-empty", 0, lambda p: os.close(os.open(p, os.O_WRONLY | os.O_TRUNC)))
# fallocate(2) in every mode ext4 and FUSE share: ext4 stamps mtime and
# ctime (file_modified) whether or not the size or the blocks change.
libc = ctypes.CDLL(None, use_errno=True)
KEEP, PUNCH, ZERO = 0x01, 0x02, 0x10
def falloc(mode, off, n):
    def op(p):
        fd = os.open(p, os.O_RDWR)
        try:
            r = libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(n))
            if r:
                raise OSError(ctypes.get_errno(), "fallocate")
        finally:
            os.close(fd)
    return op
case("fallocate-inside", 20000, falloc(0, 0, 8192))
case("fallocate-grow", 100, falloc(0, 0, 8192))
case("fallocate-keep-size", 20000, falloc(KEEP, 0, 40000))
case("fallocate-punch", 20000, falloc(KEEP | PUNCH, 4096, 4096))
case("fallocate-zero", 20000, falloc(ZERO, 4096, 4096))
EOF

# trunc_times DIR : the lines of trunc.py for DIR (empty on failure).
trunc_times() {
    timeout -k 5 60 python3 "$T_DIR/trunc.py" "$1" 2>&1 || true
}
ext4_probes() {
    probe "ext4" "$E4"
    trunc_times "$E4" >"$T_DIR/trunc.ext4"
}

# probe DESC DIR : no link/rename/unlink ctime older than the reference.
probe() {
    local desc=$1 dir=$2 out
    if ! out=$(timeout -k 5 120 python3 "$T_DIR/ts.py" "$dir" "$ROUNDS" 2>&1); then
        fail "$desc: probe ran" "$out"
        return
    fi
    local op n
    while read -r op n; do
        check_eq "$desc: $op ctime never before a file created just before it ($ROUNDS rounds)" 0 "$n"
    done <<<"$out"
}

# ---- ext4 on a loop device: the reference ------------------------------------------
on_ext4 "$E4" ext4_probes

# ---- mmapfs, with and without the writeback cache ---------------------------------
img=$T_DIR/ts.img
make_image "$img" 128M
for opts in writeback_cache nowriteback_cache; do
    M=$T_DIR/mnt-$opts
    mount_image "$img" "$M" -o "$opts"
    rm -rf "$M/ts"
    probe "mmapfs -o $opts" "$M"
    rm -rf "$M/trunc"
    if [ -s "$T_DIR/trunc.ext4" ]; then
        got=$(trunc_times "$M")
        want=$(cat "$T_DIR/trunc.ext4")
        if [ "$opts" = writeback_cache ]; then
            # truncate(2) to the same size sends no time, and the kernel
            # keeps its own mtime/ctime of the file (docs/MOUNT.md)
            got=$(grep -v '^truncate-same ' <<<"$got")
            want=$(grep -v '^truncate-same ' <<<"$want")
        fi
        check_eq "mmapfs -o $opts: times after truncate/ftruncate/O_TRUNC as on ext4" "$want" "$got"
    fi
    unmount_fs "$M"
done

t_finish
