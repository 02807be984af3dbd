#!/usr/bin/env bash
#
# 10_tour.sh — ordinary tools on a real mount: cp -a / diff -r of a real
# tree, tar round trip, rsync, git, links, mv, chmod/chown/touch with
# nanoseconds, truncate, df, find/du, xattrs, FIFOs and device nodes,
# sqlite3, mmapfs-stat; then unmount, fsck -n, remount and verify every
# file by checksum and every entry's metadata.
#
# TOUR_SRC (default /usr/share/doc) is the tree copied; keep it to a few
# hundred MB so the suite stays within its time budget.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd diff tar rsync git sqlite3 setfattr getfattr sha256sum
export TZ=UTC LC_ALL=C

SRC=${TOUR_SRC:-/usr/share/doc}
IMG_SIZE=2G
img=$T_DIR/tour.img
M=$T_DIR/mnt
export M SRC
make_image "$img" "$IMG_SIZE" -L tour
mount_image "$img" "$M"

# ---- copies of a real tree -----------------------------------------------------------
check "cp -a $SRC into the mount" cp -a "$SRC" "$M/tree"
check "diff -r $SRC and the copy" diff -r --no-dereference "$SRC" "$M/tree"
src_files=$(find "$SRC" -type f | wc -l)
check_eq "find counts the same regular files" "$src_files" "$(find "$M/tree" -type f | wc -l)"
check_eq "find counts the same symlinks" "$(find "$SRC" -type l | wc -l)" "$(find "$M/tree" -type l | wc -l)"
check_eq "sum of file sizes equal" \
    "$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')" \
    "$(find "$M/tree" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')"

mkdir "$M/untar"
check_sh "tar c | tar x round trip inside the mount" \
    'tar -C "$M" -cf - tree | tar -C "$M/untar" -xpf -'
check "diff -r of the tar round trip" diff -r --no-dereference "$M/tree" "$M/untar/tree"
check_sh "tar -tv listings identical (names, types, modes, owners, sizes, mtimes, links)" \
    'diff <(tar -C "$SRC" -cf - --sort=name . | tar -tvf -) <(tar -C "$M/tree" -cf - --sort=name . | tar -tvf -)'

check "rsync -a --checksum into the mount" rsync -a --checksum "$SRC/" "$M/rsync/"
check_sh "rsync dry run afterwards finds nothing to do (checksums, times, modes)" \
    'out=$(rsync -a --checksum --dry-run --itemize-changes "$SRC/" "$M/rsync/"); [ -z "$out" ] || { echo "$out" | head; exit 1; }'
check "rsync -a back out of the mount and diff" \
    bash -c 'rsync -a "$M/rsync/" "$0/back/" && diff -r --no-dereference "$SRC" "$0/back"' "$T_DIR"
rm -rf "$T_DIR/back"

# ---- git ---------------------------------------------------------------------------
G="git -c user.name=tester -c user.email=tester@example.com -c init.defaultBranch=main"
export G
check_sh "git init/add/commit on the mount" '
    cd "$M" && git init -q repo && cd repo &&
    for d in $(ls "$M/tree" | head -40); do cp -a "$M/tree/$d" .; done &&
    echo hello > hello.txt &&
    $G add -A && $G commit -q -m first &&
    echo more >> hello.txt && $G commit -q -am second &&
    $G mv hello.txt renamed.txt && $G commit -q -m third'
check_eq "git log shows 3 commits" 3 "$(cd "$M/repo" && git log --oneline | wc -l)"
check_sh "git fsck --full is clean" 'cd "$M/repo" && git fsck --full --no-progress'
check_sh "git status is clean" 'cd "$M/repo" && [ -z "$(git status --porcelain)" ]'
check_sh "git gc repacks on the mount" 'cd "$M/repo" && $G gc -q && git fsck --no-progress'

# ---- links, mv ---------------------------------------------------------------------
mkdir -p "$M/links/a" "$M/links/b"
echo "link target" >"$M/links/a/file"
check "ln (hard link)" ln "$M/links/a/file" "$M/links/b/hard"
check_eq "link count 2 after ln" 2 "$(stat -c %h "$M/links/a/file")"
check_eq "hard link shares the inode" "$(stat -c %i "$M/links/a/file")" "$(stat -c %i "$M/links/b/hard")"
check "ln -s (symlink)" ln -s ../a/file "$M/links/b/sym"
check_eq "readlink" "../a/file" "$(readlink "$M/links/b/sym")"
check_eq "read through the symlink" "link target" "$(cat "$M/links/b/sym")"
check_eq "stat of symlink: type and size" "symbolic link 9" "$(stat -c '%F %s' "$M/links/b/sym")"
long_target=$(printf 'x%.0s' $(seq 1 4000))
check "ln -s with a 4000-byte target" ln -s "$long_target" "$M/links/longsym"
check_eq "readlink of the 4000-byte target" "$long_target" "$(readlink "$M/links/longsym")"
check "rm one hard link" rm "$M/links/b/hard"
check_eq "link count back to 1" 1 "$(stat -c %h "$M/links/a/file")"
ino=$(stat -c %i "$M/links/a/file")
check "mv a file across directories" mv "$M/links/a/file" "$M/links/b/moved"
check_eq "moved file keeps its inode" "$ino" "$(stat -c %i "$M/links/b/moved")"
check_fail "the old name is gone" stat "$M/links/a/file"
check_eq "moved file keeps its content" "link target" "$(cat "$M/links/b/moved")"
check "mv a directory tree into another directory" mv "$M/untar" "$M/links/a/untar"
check "moved tree intact" diff -r --no-dereference "$M/tree" "$M/links/a/untar/tree"
check_eq "directory link count counts subdirectories" 3 "$(stat -c %h "$M/links/a")"

# ---- attributes ----------------------------------------------------------------------
f=$M/attrs
echo data >"$f"
check "chmod 640" chmod 640 "$f"
check_eq "mode is 640" "640 regular file" "$(stat -c '%a %F' "$f")"
check "chmod 4755" chmod 4755 "$f"
check_eq "mode is 4755" 4755 "$(stat -c %a "$f")"
check "chown 1234:5678" chown 1234:5678 "$f"
check_eq "owner is 1234:5678" "1234:5678" "$(stat -c %u:%g "$f")"
check "touch -d with nanoseconds" touch -d '2020-01-02 03:04:05.123456789' "$f"
check_eq "mtime with nanoseconds" "2020-01-02 03:04:05.123456789 +0000" "$(stat -c %y "$f")"
check_eq "atime with nanoseconds" "2020-01-02 03:04:05.123456789 +0000" "$(stat -c %x "$f")"
check "touch -m -d 1999 (mtime only)" touch -m -d '1999-12-31 23:59:59.5' "$f"
check_eq "mtime changed" "1999-12-31 23:59:59.500000000 +0000" "$(stat -c %y "$f")"
check_eq "atime unchanged" "2020-01-02 03:04:05.123456789 +0000" "$(stat -c %x "$f")"
before_ctime=$(stat -c %Z.%z "$f")
sleep 1.1
check "chmod updates ctime" chmod 600 "$f"
after_ctime=$(stat -c %Z.%z "$f")
[ "$before_ctime" != "$after_ctime" ] && pass "ctime moved on chmod" ||
    fail "ctime moved on chmod" "before: $before_ctime" "after: $after_ctime"

# ---- truncate --------------------------------------------------------------------------
t=$M/trunc
printf '0123456789abcdef' >"$t"
check "truncate -s 1M (grow)" truncate -s 1M "$t"
check_eq "size after growing" 1048576 "$(stat -c %s "$t")"
check_sh "old bytes kept, new bytes are zeros" \
    '[ "$(head -c 16 "$M/trunc")" = 0123456789abcdef ] && cmp <(tail -c +17 "$M/trunc") <(head -c $((1048576-16)) /dev/zero)'
check "truncate -s 10 (shrink)" truncate -s 10 "$t"
check_eq "content after shrinking" "0123456789" "$(cat "$t")"
check "truncate -s 20000 (grow again)" truncate -s 20000 "$t"
check_sh "no stale bytes after shrink+grow" \
    'cmp <(tail -c +11 "$M/trunc") <(head -c 19990 /dev/zero)'
check "truncate -s 0" truncate -s 0 "$t"
check_eq "empty after truncate -s 0" "0 0" "$(stat -c '%s %b' "$t")"

# ---- df --------------------------------------------------------------------------------
img_bytes=$(stat -c %s "$img")
read -r df_size df_used df_avail < <(df -B1 --output=size,used,avail "$M" | tail -1)
check_range "df size is close to the image size ($img_bytes)" $((img_bytes * 85 / 100)) "$img_bytes" "$df_size"
check_range "df used + avail <= size" 0 "$df_size" $((df_used + df_avail))
check_range "df avail is most of the disk" $((df_size / 2)) "$df_size" "$df_avail"
check_eq "df -i reports inodes" 1 "$(df -i "$M" | tail -1 | awk '{print ($2 > 0)}')"
used0=$(fs_used_bytes "$M")
check "write 64 MiB" dd if=/dev/urandom of="$M/df64" bs=1M count=64 conv=fsync status=none
used1=$(fs_used_bytes "$M")
check_range "df used grew by about 64 MiB" $((60 << 20)) $((80 << 20)) $((used1 - used0))
rm "$M/df64"
export used0
wait_until "df used shrinks back after rm" 20 \
    '[ $(( $(stat -f -c "%S * (%b - %f)" "$M") )) -le $((used0 + (4 << 20))) ]'

# ---- find, du --------------------------------------------------------------------------
check "dd 10 MiB for du" dd if=/dev/urandom of="$M/du10" bs=1M count=10 status=none
check_range "du -k of a 10 MiB file" 10240 10300 "$(du -k "$M/du10" | cut -f1)"
check "truncate a 100 MiB sparse file" truncate -s 100M "$M/sparse100"
check_range "du -k of a sparse file is ~0" 0 8 "$(du -k "$M/sparse100" | cut -f1)"
check_eq "du --apparent-size of the sparse file" 102400 "$(du -k --apparent-size "$M/sparse100" | cut -f1)"
tree_kb=$(du -sk "$M/tree" | cut -f1)
src_bytes=$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
check_range "du -sk of the copied tree >= its bytes" $((src_bytes / 1024)) $((src_bytes / 1024 * 3 + 100000)) "$tree_kb"
check_eq "find -name works" "$(cd "$SRC" && find . -name '*.gz' | sort | md5sum)" "$(cd "$M/tree" && find . -name '*.gz' | sort | md5sum)"
check_eq "find -type d counts" "$(find "$SRC" -type d | wc -l)" "$(find "$M/tree" -type d | wc -l)"

# ---- xattrs ----------------------------------------------------------------------------
x=$M/xattr
echo x >"$x"
check "setfattr user.color" setfattr -n user.color -v blue "$x"
check "setfattr user.bin (binary)" setfattr -n user.bin -v 0x00ff10 "$x"
check_eq "getfattr user.color" "blue" "$(getfattr --absolute-names --only-values -n user.color "$x")"
check_eq "getfattr user.bin (hex)" 'user.bin=0x00ff10' "$(getfattr --absolute-names -e hex -n user.bin "$x" | grep '^user')"
check_eq "getfattr -d lists both" "user.bin user.color" "$(getfattr --absolute-names -d -m '^user\.' "$x" | sed -n 's/=.*//p' | sort | xargs)"
check "setfattr replaces a value" setfattr -n user.color -v green "$x"
check_eq "replaced value" "green" "$(getfattr --absolute-names --only-values -n user.color "$x")"
check "setfattr -x user.color" setfattr -x user.color "$x"
check_fail "getfattr of a removed attribute fails" getfattr --absolute-names -n user.color "$x"
check_fail "getfattr of a missing attribute fails" getfattr --absolute-names -n user.nothere "$x"
check_fail "setfattr -x of a missing attribute fails" setfattr -x user.nothere "$x"
mkdir "$M/xdir"
check "setfattr on a directory" setfattr -n user.dir -v yes "$M/xdir"
check_eq "getfattr on a directory" "yes" "$(getfattr --absolute-names --only-values -n user.dir "$M/xdir")"
check "setfattr with a 1000-byte value" setfattr -n user.big -v "$(printf 'v%.0s' $(seq 1 1000))" "$x"
check_eq "1000-byte value read back" 1000 "$(getfattr --absolute-names --only-values -n user.big "$x" | wc -c)"

# ---- special files ---------------------------------------------------------------------
check "mkfifo" mkfifo "$M/fifo"
check_eq "fifo type" "fifo" "$(stat -c %F "$M/fifo")"
check_sh "data through the fifo" \
    'timeout 10 bash -c "echo through > \"\$M/fifo\"" & [ "$(timeout 10 cat "$M/fifo")" = through ]; rc=$?; wait; exit $rc'
check "mknod c 1 3" mknod "$M/null" c 1 3
check_eq "char device type and numbers" "character special file 1 3" "$(stat -c '%F %t %T' "$M/null")"
check "mknod b 7 200" mknod "$M/blk" b 7 200
check_eq "block device type and numbers" "block special file 7 c8" "$(stat -c '%F %t %T' "$M/blk")"
check "unix socket bind" "$PY" -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$M/sock"
check_eq "socket type" "socket" "$(stat -c %F "$M/sock")"

# ---- sqlite ----------------------------------------------------------------------------
{
    echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
    echo "BEGIN;"
    for i in $(seq 1 1000); do echo "INSERT INTO t(v) VALUES('row $i');"; done
    echo "COMMIT;"
} >"$T_DIR/insert.sql"
check_sh "sqlite3: 1000 inserts in one transaction" 'sqlite3 "$M/db.sqlite" < "$0"' "$T_DIR/insert.sql"
check_eq "sqlite3: select count" 1000 "$(sqlite3 "$M/db.sqlite" 'SELECT count(*) FROM t;')"

# ---- mmapfs-stat -----------------------------------------------------------------------
if [ -x "$MSTAT" ]; then
    # grep -c reads all of it: grep -q would exit at the first match and
    # could end mmapfs-stat with SIGPIPE, a failure under pipefail
    check_sh "mmapfs-stat prints counters" '[ "$("$0" "$M" | grep -c .)" -gt 0 ]' "$MSTAT"
    check_sh "mmapfs-stat --prometheus prints samples" \
        '"$0" --prometheus "$M" | grep -Ec "^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [-+0-9.eE]+$" >/dev/null' "$MSTAT"
else
    skip "mmapfs-stat not built"
fi

# ---- unmount, fsck, remount, verify ----------------------------------------------------
file_manifest "$M" "$T_DIR/sums"
used_before=$(fs_used_bytes "$M")
meta_manifest "$M" "$T_DIR/meta.before"
check_sh "manifest covers the tree" '[ $(wc -l < "$0") -gt '"$src_files"' ]' "$T_DIR/sums"
unmount_fs "$M"
fsck_clean "$img"
mount_image "$img" "$M"
check_sh "every file's sha256 after remount" 'cd "$M" && sha256sum --quiet -c "$0"' "$T_DIR/sums"
meta_manifest "$M" "$T_DIR/meta.after"
check "metadata of every entry after remount" diff "$T_DIR/meta.before" "$T_DIR/meta.after"
check_eq "xattr after remount" "1000" "$(getfattr --absolute-names --only-values -n user.big "$x" | wc -c)"
check_eq "sqlite3 after remount" "1000 ok" "$(sqlite3 "$M/db.sqlite" 'SELECT count(*) FROM t; PRAGMA integrity_check;' | xargs)"
check_sh "git fsck after remount" 'cd "$M/repo" && git fsck --full --no-progress && [ $(git log --oneline | wc -l) = 3 ]'
check_eq "nanosecond times after remount" "1999-12-31 23:59:59.500000000 +0000" "$(stat -c %y "$f")"
check_eq "device numbers after remount" "1 3" "$(stat -c '%t %T' "$M/null")"
check_range "df used after remount is what it was before (+-1 MiB)" \
    $((used_before - (1 << 20))) $((used_before + (1 << 20))) "$(fs_used_bytes "$M")"
check "rm -r of everything" rm -rf "$M/tree" "$M/rsync" "$M/links" "$M/repo"
check_eq "directory empty of those" "" "$(ls "$M" | grep -E '^(tree|rsync|links|repo)$' || true)"
unmount_fs "$M"
fsck_clean "$img" "fsck.mmapfs -n clean after rm -r"
t_finish
