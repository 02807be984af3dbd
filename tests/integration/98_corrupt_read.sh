#!/usr/bin/env bash
#
# 98_corrupt_read.sh — reading a file whose extent tree is damaged part way
# returns the data before the damage and then EIO: never zeros in place of
# the data, never a silent end of file.
#
# A file of 800 blocks written one block at a time, interleaved with a
# second file and fsync'd after each block, has 800 extents: a tree of
# several leaves. Each tree node of the image is damaged in turn (64 bytes
# overwritten, checksum left wrong) on a copy, mounted (alternately with
# and without the writeback cache), and the file read to the end with
# read(2): every byte returned must be the byte written, and the read must
# either reach the full size or stop with EIO. Until 2026-12-05 the daemon
# answered a READ that failed after some data with the data alone; the
# kernel takes that for the end of the file: with the writeback cache it
# filled the rest of the request with zeros (24 blocks of zeros, then
# EIO), without it the read ended early with no error.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3

BLOCKS=800
img=$T_DIR/frag.img
M=$T_DIR/mnt
make_image "$img" 32M
mount_image "$img" "$M"
check "write a file of $BLOCKS extents (interleaved with another, fsync each block)" \
    "$PY" -c '
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
a = os.open(m + "/a", os.O_WRONLY | os.O_CREAT, 0o644)
b = os.open(m + "/b", os.O_WRONLY | os.O_CREAT, 0o644)
for i in range(n):
    os.pwrite(a, bytes([i % 251 + 1]) * 4096, i * 4096)
    os.fsync(a)
    os.pwrite(b, b"b" * 4096, i * 4096)
    os.fsync(b)
' "$M" "$BLOCKS"
unmount_fs "$M"

nodes=$("$PY" - "$img" <<'EOF'
import struct, sys
with open(sys.argv[1], "rb") as f:
    sb = f.read(4096)
    vals = struct.unpack_from("<QQQQQQQQQQQ", sb, 16)
    blocks, data_start = vals[0], vals[10]
    found = []
    for b in range(data_start, blocks):
        f.seek(b * 4096)
        if f.read(4) == b"MMBT":
            found.append(b)
print(" ".join(map(str, found)))
EOF
)
check_range "the file's extents need several tree nodes" 3 1000 "$(wc -w <<<"$nodes")"

cat >"$T_DIR/readall.py" <<'EOF'
import os, sys
path, n = sys.argv[1], int(sys.argv[2])
got, end = bytearray(), "EOF"
try:
    fd = os.open(path, os.O_RDONLY)     # a damaged directory node: EIO here
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        got += chunk
except OSError as e:
    end = "EIO" if e.errno == 5 else os.strerror(e.errno)
bad = [i for i in range(len(got) // 4096)
       if got[i * 4096:(i + 1) * 4096] != bytes([i % 251 + 1]) * 4096]
if len(got) % 4096:
    bad.append(len(got) // 4096)
whole = len(got) == n * 4096 and end == "EOF"
print("%s %d %d %s" % ("whole" if whole else end, len(got), len(bad), bad[:3]))
EOF

errors=0 i=0
for n in $nodes; do
    i=$((i + 1))
    opts=writeback_cache
    [ $((i % 2)) -eq 0 ] && opts=nowriteback_cache
    cp --sparse=always "$img" "$T_DIR/c.img"
    "$PY" -c 'import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2]) * 4096 + 2000)
    f.write(b"\xff" * 64)' "$T_DIR/c.img" "$n"
    mount_image "$T_DIR/c.img" "$M" -o "$opts"
    out=$(timeout -k 5 60 "$PY" "$T_DIR/readall.py" "$M/a" "$BLOCKS" 2>&1 || true)
    read -r how len nbad _ <<<"$out"
    case "$how" in
    whole | EIO)
        check_eq "node $n damaged, -o $opts: the bytes read are the bytes written ($how after $len)" 0 "$nbad" ;;
    *)
        fail "node $n damaged, -o $opts: a read of the file ends with its size or EIO" "got: $out" ;;
    esac
    [ "$how" = EIO ] && errors=$((errors + 1))
    unmount_fs "$M"
done
rm -f "$T_DIR/c.img"    # damaged on purpose: not for the final fsck
check_range "some damaged node made the read stop with EIO" 1 1000 "$errors"
t_finish
