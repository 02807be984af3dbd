#!/usr/bin/env bash
#
# 97_corrupt_mount.sh — the mounted daemon meets a damaged image.
#
# A small image (mkfs + a workload: files of several sizes, a large
# directory, nested directories, symlinks short and long, hard links,
# xattrs) is unmounted clean. Then, for each of CORRUPT_CASES cases
# (default 16), seeded and reproducible (CORRUPT_SEED, default 97; case i
# uses seed+i), a copy is damaged in its metadata blocks (superblock,
# bitmaps, inode table, B+tree nodes, xattr blocks) in one of these ways:
#   flip   1..8 random bytes of one block flipped (checksums left wrong)
#   zero   one whole block zeroed
#   field  a field set to an extreme (0, all ones, a large or off-by-one
#          value): sizes, block numbers, counts, nlink, mode, tree and
#          xattr pointers, node headers, item offsets, extents, dirents;
#          the checksum recomputed so that the value itself is tested
# and then:
#   - the mount either refuses with one line (exit non-zero; two where
#     fs_mount names the detail before the summary line, as in
#     95_front_door.sh), or mounts
#     and survives `find`, `stat` of every path and reading every file and
#     symlink and listing every xattr: every error is EIO or EUCLEAN, the
#     daemon is still alive afterwards and the mount still answers;
#   - after unmounting, `fsck.mmapfs -y` repairs (exit 0 or 1), then
#     `fsck.mmapfs -n` finds the image clean, and it mounts and survives
#     the same walk without a single error. The one exception is a
#     damaged superblock that fsck does not guess at: then fsck -y must
#     decline in a line or two (exit 4 or 8).
# Then the backup superblock (docs/FORMAT.md §4c): block 0 of a copy
# zeroed; the mount refuses in one line that names the backup and says
# "run fsck.mmapfs -y"; fsck -y restores it (exit 1), fsck -n is clean,
# and the image mounts and walks clean.
# Everything mounted is unmounted by the EXIT trap (common.sh).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3 getfattr setfattr find stat

CASES=${CORRUPT_CASES:-16}
SEED=${CORRUPT_SEED:-97}
STEP_TIMEOUT=30
base=$T_DIR/base.img
img=$T_DIR/case.img
M=$T_DIR/mnt
budget_end=$((SECONDS + ${CORRUPT_BUDGET_S:-100}))

# ---- the base image ------------------------------------------------------------

make_image "$base" 16M
mount_image "$base" "$M"
check_sh "workload on the base image" '
    set -e
    m=$0
    mkdir -p "$m/d/sub/deeper" "$m/big"
    for i in $(seq 1 150); do echo "file $i" > "$m/big/a-fairly-long-file-name-to-fill-index-leaves-$i"; done
    head -c 300000 /dev/urandom > "$m/d/random"
    dd if=/dev/zero of="$m/d/sparse" bs=4096 seek=100 count=1 status=none
    for i in $(seq 0 2 60); do dd if=/dev/urandom of="$m/d/fragmented" bs=4096 seek=$i count=1 conv=notrunc status=none; done
    echo hello > "$m/d/sub/deeper/text"
    ln -s sub/deeper/text "$m/d/link"
    ln -s "$(head -c 900 /dev/zero | tr "\0" x)" "$m/d/longlink"
    ln "$m/d/sub/deeper/text" "$m/hard"
    mkfifo "$m/d/fifo"
    for i in $(seq 1 10); do setfattr -n "user.attr$i" -v "value number $i" "$m/d/random"; done
    setfattr -n user.dir -v yes "$m/d/sub"
' "$M"
unmount_fs "$M"
fsck_clean "$base" "the base image is clean"

# ---- damage ----------------------------------------------------------------------

cat >"$T_DIR/corrupt.py" <<'PY'
import random, struct, sys

BS = 4096
POLY = 0x82F63B78
TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


path, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
with open(path, 'r+b') as f:
    sb = bytearray(f.read(BS))
    (block_count, inode_count, jstart, jblocks, bbm, bbm_n, ibm, ibm_n, itab, itab_n,
     data_start) = struct.unpack_from('<QQQQQQQQQQQ', sb, 16)

    def rd(blk):
        f.seek(blk * BS)
        return bytearray(f.read(BS))

    def wr(blk, b):
        f.seek(blk * BS)
        f.write(b)

    # the metadata blocks: superblock, bitmaps, used inode table blocks,
    # tree nodes and xattr blocks found in the data area
    meta = [('super', 0)]
    meta += [('bitmap', b) for b in list(range(bbm, bbm + bbm_n)) + list(range(ibm, ibm + ibm_n))]
    ibitmap = rd(ibm)
    for b in range(itab, itab + itab_n):
        first = (b - itab) * 16
        if any(ibitmap[(first + i) // 8] >> ((first + i) % 8) & 1 for i in range(16)):
            meta.append(('inode', b))
    for b in range(data_start, block_count):
        head = rd(b)[:4]
        if head == b'MMBT':
            meta.append(('node', b))
        elif head == b'MMXA':
            meta.append(('xattr', b))
    kind_of_damage = rng.choice(['flip', 'zero', 'field', 'field'])
    # the kind of block first, so that the few superblock, bitmap and inode
    # blocks are hit as often as the many tree nodes
    kind = rng.choice(sorted(set(k for k, _ in meta)))
    blk = rng.choice([b for k, b in meta if k == kind])
    if kind_of_damage == 'field' and kind == 'bitmap':
        kind_of_damage = 'flip'
    block = rd(blk)
    what = ''
    if kind_of_damage == 'flip':
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(BS)
            block[i] ^= 1 << rng.randrange(8)
    elif kind_of_damage == 'zero':
        block = bytearray(BS)
    else:
        def extreme(size, near=None):
            top = (1 << (8 * size)) - 1
            v = [0, top, top >> 1, 1 << (8 * size - 1), rng.randrange(top + 1)]
            if near is not None:
                v += [near - 1, near, near + 1]
            return rng.choice(v) & top
        fmt = {1: '<B', 2: '<H', 4: '<I', 8: '<Q'}
        if kind == 'super':
            off, size = rng.choice([(16, 8), (24, 8), (32, 8), (40, 8), (48, 8), (64, 8), (80, 8),
                                    (96, 8), (104, 8), (112, 8), (128, 8), (136, 8), (156, 4)])
            near = block_count
        elif kind == 'inode':
            rec = 256 * rng.randrange(16)
            field, size = rng.choice([(0, 4), (12, 4), (16, 8), (24, 8), (80, 8), (96, 8),
                                      (104, 8), (112, 8), (120, 8), (128, 4)])
            off = rec + field
            near = block_count if field in (96, 104) else inode_count
        elif kind == 'node':
            nitems = struct.unpack_from('<H', block, 18)[0]
            level = struct.unpack_from('<H', block, 16)[0]
            choices = [(8, 8), (16, 2), (18, 2), (20, 2), (22, 2)]
            if nitems:
                i = rng.randrange(nitems)
                if level == 0:
                    item = 32 + 12 * i
                    choices += [(item, 8), (item + 8, 2), (item + 10, 2)]
                    voff = struct.unpack_from('<H', block, item + 8)[0]
                    if voff + 16 <= BS:
                        choices += [(voff, 8), (voff + 8, 4), (voff + 9, 1), (voff + 12, 4)]
                else:
                    ptr = 32 + 16 * i
                    choices += [(ptr, 8), (ptr + 8, 8)]
            off, size = rng.choice(choices)
            near = block_count
        else:   # xattr
            off, size = rng.choice([(8, 8), (16, 2), (18, 2), (32, 1), (34, 2)])
            near = BS
        value = extreme(size, near)
        struct.pack_into(fmt[size], block, off, value)
        what = ' offset %d = %#x' % (off, value)
        # the checksum follows, so that the value is what gets tested
        if kind == 'super':
            struct.pack_into('<I', block, 4092, crc32c(bytes(block[:4092])))
        elif kind == 'inode':
            for r in range(16):
                ino = (blk - itab) * 16 + r + 1
                c = crc32c(bytes(block[256 * r:256 * r + 252]), crc32c(struct.pack('<Q', ino)))
                struct.pack_into('<I', block, 256 * r + 252, c)
        else:
            struct.pack_into('<I', block, 4, crc32c(bytes(block[8:]), crc32c(struct.pack('<Q', blk))))
    wr(blk, block)
    print('%s of %s block %d%s' % (kind_of_damage, kind, blk, what))
PY

# walk.py MNT LOG : what find, stat, cat, readlink and getfattr do, in one
# process: every directory listed, every path lstat'ed, every file read,
# every symlink read, every xattr listed and read. Each failure is one line
# "ERRNO-NAME operation path" in LOG. Exit 0 when all of it ran.
cat >"$T_DIR/walk.py" <<'PY'
import errno, os, sys

mnt, log = sys.argv[1], sys.argv[2]
out = open(log, 'w')


def note(op, path, e):
    out.write('%s %s %s\n' % (errno.errorcode.get(e.errno, str(e.errno)), op, path))


def visit(path):
    try:
        st = os.lstat(path)
    except OSError as e:
        return note('stat', path, e)
    try:
        if os.path.islink(path):
            os.readlink(path)
        elif os.path.isfile(path):
            with open(path, 'rb') as f:
                while f.read(1 << 20):
                    pass
        for name in os.listxattr(path, follow_symlinks=False):
            os.getxattr(path, name, follow_symlinks=False)
    except OSError as e:
        note('read', path, e)
    return st


for top, dirs, files in os.walk(mnt, onerror=lambda e: note('readdir', e.filename, e)):
    for name in dirs + files:
        visit(os.path.join(top, name))
PY

# the mmapfs daemon serving MNT (its PID), or nothing; a few tries, since a
# process list read while processes come and go can miss it
daemon_of() {
    local pid try
    for try in 1 2 3 4 5; do
        pid=$(_daemon_pids "$1" | head -n 1)
        [ -z "$pid" ] || break
        sleep 0.2
    done
    echo "$pid"
}

refused=0 mounted=0 repaired=0
for ((i = 0; i < CASES; i++)); do
    if [ "$SECONDS" -ge "$budget_end" ]; then
        skip "cases $i..$((CASES - 1)): time budget spent"
        break
    fi
    seed=$((SEED + i)) case_start=$SECONDS
    cp --sparse=always "$base" "$img"
    if ! what=$("$PY" "$T_DIR/corrupt.py" "$img" "$seed" 2>&1); then
        fail "case $i (seed $seed): damage the image" "$what"
        continue
    fi
    desc="case $i (seed $seed, $what)"
    mkdir -p "$M"
    T_MOUNTS+=("$M")
    _run "$MMAPFS" "$img" "$M"
    if [ "$T_RC" -ne 0 ]; then
        _forget_mount "$M"
        refused=$((refused + 1))
        # the front door's convention (95_front_door.sh): one line, or two
        # where fs_mount names the detail before the summary line
        lines=$(grep -c . <<<"$T_OUT" || true)
        if [ "$T_RC" -eq 124 ] || [ "$lines" -lt 1 ] || [ "$lines" -gt 2 ] ||
            ! tail -n 1 <<<"$T_OUT" | grep -q -e 'nothing mounted' -e 'run fsck.mmapfs'; then
            fail "$desc: a refused mount says one line (detail, then the summary)" "exit $T_RC"
            _tail_output "$T_OUT"
        else
            pass "$desc: mount refused: $(head -n 1 <<<"$T_OUT" | sed 's/^mmapfs: [^:]*: //')"
        fi
    else
        mounted=$((mounted + 1))
        pid=$(daemon_of "$M")
        timeout -k 5 60 "$PY" "$T_DIR/walk.py" "$M" "$T_DIR/walk.log" || true
        bad=$(grep -v -e '^EIO ' -e '^EUCLEAN ' "$T_DIR/walk.log" || true)
        alive=yes
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || alive="no (pid '$pid')"
        answers=yes
        timeout 10 stat "$M" >/dev/null 2>&1 && mountpoint -q "$M" || answers=no
        if [ "$alive" != yes ] || [ "$answers" != yes ]; then
            fail "$desc: the daemon survives the walk" "daemon alive: $alive, mount answers: $answers"
            _tail_output "$(cat "$T_DIR/walk.log")"
        elif [ -n "$bad" ]; then
            fail "$desc: every error of the walk is EIO or EUCLEAN" "$(head -n 5 <<<"$bad")"
        else
            pass "$desc: mounted, walked ($(grep -c . "$T_DIR/walk.log" || true) errors, all EIO/EUCLEAN), daemon alive"
        fi
        unmount_fs "$M" || { fusermount3 -u -z "$M" 2>/dev/null || true; _forget_mount "$M"; }
    fi
    # repair, then clean and mountable
    _run "$FSCK" -y "$img"
    if [[ "$what" == *" of super block "* ]] && [ "$T_RC" -ge 4 ]; then
        # a superblock fsck neither mends nor can replace by the backup
        # (one whose damage still passes the rules: the backup is then
        # the one that differs) is not guessed at (FSCK.md); fsck must
        # say so in one line
        if [ "$(grep -c . <<<"$T_OUT")" -le 2 ]; then
            pass "$desc: fsck -y declines (exit $T_RC): $(head -n 1 <<<"$T_OUT" | sed 's/^fsck.mmapfs: [^:]*: //')"
        else
            fail "$desc: fsck -y declines in a line or two" "exit $T_RC"
            _tail_output "$T_OUT"
        fi
        continue
    fi
    if [ "$T_RC" -ge 4 ]; then
        fail "$desc: fsck -y repairs (exit < 4)" "exit $T_RC"
        _tail_output "$T_OUT"
        continue
    fi
    repair_out=$T_OUT repair_rc=$T_RC
    _run "$FSCK" -n "$img"
    if [ "$T_RC" -ne 0 ]; then
        fail "$desc: fsck -n is clean after fsck -y (exit $repair_rc)" "fsck -n exit $T_RC"
        _tail_output "$repair_out"
        _tail_output "$T_OUT"
        continue
    fi
    repaired=$((repaired + 1))
    mount_image "$img" "$M"
    timeout -k 5 60 "$PY" "$T_DIR/walk.py" "$M" "$T_DIR/walk.log" || true
    if [ -s "$T_DIR/walk.log" ]; then
        fail "$desc: the repaired image walks without errors" "$(head -n 5 "$T_DIR/walk.log")"
    else
        pass "$desc: fsck -y (exit $repair_rc), fsck -n clean, mounts and walks clean"
    fi
    unmount_fs "$M"
    fsck_clean "$img" "$desc: clean after the repaired mount"
    t_log "case $i: $((SECONDS - case_start)) s"
done
t_log "$CASES cases: $refused mounts refused, $mounted mounted, $repaired repaired clean"

# zeroed_mount BLOCK : mounts a copy of the base image with BLOCK zeroed
# ($T_RC, $T_OUT); the caller checks the refusal.
zeroed_mount() {
    cp --sparse=always "$base" "$img"
    dd if=/dev/zero of="$img" bs=4096 seek="$1" count=1 conv=notrunc status=none
    mkdir -p "$M"
    T_MOUNTS+=("$M")
    _run "$MMAPFS" "$img" "$M"
    _forget_mount "$M"
}

# ---- the root inode's block zeroed -------------------------------------------------
# (a soak of 2,000 cases found it: the mount said the checksum mismatch,
# then that the root was corrupt, then the summary: three lines)
itab=$("$PY" -c 'import struct, sys
with open(sys.argv[1], "rb") as f:
    print(struct.unpack_from("<Q", f.read(4096), 80)[0])' "$base")
zeroed_mount "$itab"
if [ "$T_RC" -ne 0 ] && [ "$T_RC" -ne 124 ] && [ "$(grep -c . <<<"$T_OUT")" -le 2 ] &&
    head -n 1 <<<"$T_OUT" | grep -q "root directory (inode 1): inode 1: checksum mismatch" &&
    tail -n 1 <<<"$T_OUT" | grep -q "run fsck.mmapfs"; then
    pass "root inode's block zeroed: mount refused in one line naming the root, then the summary"
else
    fail "root inode's block zeroed: mount refused in one line naming the root" "exit $T_RC"
    _tail_output "$T_OUT"
fi
_run "$FSCK" -y "$img"
check "root inode's block zeroed: fsck -y repairs (exit 1)" test "$T_RC" -eq 1
fsck_clean "$img" "root inode's block zeroed: fsck -n clean after the repair"
mount_image "$img" "$M"
unmount_fs "$M"
fsck_clean "$img" "root inode's block zeroed: clean after the mount"

# ---- block 0 destroyed: the backup superblock ---------------------------------------
zeroed_mount 0
if [ "$T_RC" -ne 0 ] && [ "$T_RC" -ne 124 ] && [ "$(grep -c . <<<"$T_OUT")" -le 2 ] &&
    grep -q "backup superblock at block 1 is usable: run fsck.mmapfs -y" <<<"$T_OUT"; then
    pass "block 0 zeroed: mount refused, naming the backup and fsck.mmapfs -y"
else
    fail "block 0 zeroed: mount refused, naming the backup" "exit $T_RC"
    _tail_output "$T_OUT"
fi
_run "$FSCK" -y "$img"
if [ "$T_RC" -eq 1 ] && grep -q "restored from the backup superblock at block 1" <<<"$T_OUT"; then
    pass "block 0 zeroed: fsck -y restores it from the backup (exit 1)"
else
    fail "block 0 zeroed: fsck -y restores it from the backup" "exit $T_RC"
    _tail_output "$T_OUT"
fi
fsck_clean "$img" "block 0 zeroed: fsck -n clean after the restore"
mount_image "$img" "$M"
timeout -k 5 60 "$PY" "$T_DIR/walk.py" "$M" "$T_DIR/walk.log" || true
if [ -s "$T_DIR/walk.log" ]; then
    fail "block 0 zeroed: the restored image walks without errors" "$(head -n 5 "$T_DIR/walk.log")"
else
    pass "block 0 zeroed: the restored image mounts and walks clean"
fi
unmount_fs "$M"
fsck_clean "$img" "block 0 zeroed: clean after the mount"
rm -f "$img"
T_IMAGES=("$base")
t_finish
