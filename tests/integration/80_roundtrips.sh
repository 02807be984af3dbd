#!/usr/bin/env bash
#
# 80_roundtrips.sh — FUSE round trips per operation, counted by the
# daemon's own per-kind request counters (fuse_req_* in the metrics xattr),
# and the correctness of what the kernel caches with the long default
# timeouts, negative entries and READDIRPLUS:
#   - a stat after a listing needs no LOOKUP (READDIRPLUS), a second one
#     no request at all; rm -rf after a listing needs no LOOKUP; a second
#     listing leaves the kernel's cached attributes and POSIX ACLs alone
#     (an ACL read once is not asked for again);
#   - a missing name is looked up once (negative entry), and creating it
#     afterwards (open O_CREAT) needs no LOOKUP: MKNOD plus the
#     directory's GETATTR, and no RELEASE at close (the daemon answers the
#     mount's first CREATE and OPEN with ENOSYS, so the kernel makes files
#     with MKNOD and opens them without a request);
#   - write+fsync costs at most 3 requests (WRITE, SETATTR, FSYNC): with
#     HANDLE_KILLPRIV_V2 no GETXATTR security.capability per write (4 with
#     -o nokillpriv_v2, run below);
#   - after rename, unlink, link, chmod, chown, truncate, utime, rmdir,
#     mkdir/symlink/mknod over cached negative entries, stat sees the new
#     state at once, and a listing shows exactly the names that exist;
#   - max_ratio=/min_ratio= reach the mount's bdi (root, sysfs files present).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3
export LC_ALL=C

IMG=$T_DIR/rt.img
M=$T_DIR/mnt
make_image "$IMG" 512M

# Counts are only meaningful with the default caching options.
counts=1
case ",${MMAPFS_IT_OPTS:-}," in
    *timeout=*|*readdirplus=*) counts=0 ;;
esac
# The kernel caches POSIX ACLs only when the daemon negotiates them.
acl=1
! it_opts_have noacl || acl=0

# run_py DESC 'PYTHON' : runs the snippet (M, N, COUNTS set; helpers
# below); every line "PASS desc" / "FAIL desc: details" it prints becomes
# a result; a crash or timeout is a failure.
cat >"$T_DIR/rt_lib.py" <<'EOF'
import os, stat, sys
M = os.environ["M"]
N = int(os.environ["N"])
COUNTS = os.environ["COUNTS"] == "1"
ACL = os.environ["ACL"] == "1"

def counters():
    """The daemon's request counters."""
    text = os.getxattr(M, "trusted.mmapfs.metrics").decode()
    c = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k.startswith("fuse_req_"):
            c[k[9:]] = int(v)
    return c

def notes():
    """(sent, skipped): the daemon's notifications of changed attributes."""
    text = os.getxattr(M, "trusted.mmapfs.metrics").decode()
    v = dict(line.split(" ", 1) for line in text.splitlines())
    return int(v["fuse_attr_notifications"]), int(v["fuse_attr_notifications_skipped"])

# GETXATTRs one counters() costs (Python tries a small buffer first).
_c0 = counters()
READ_COST = counters()["getxattr"] - _c0.get("getxattr", 0)

def delta(a, b):
    """Requests between two readings, without those of the reading."""
    d = {k: b.get(k, 0) - a.get(k, 0) for k in set(a) | set(b)}
    d["getxattr"] = d.get("getxattr", 0) - READ_COST
    return {k: v for k, v in d.items() if v}

def sync_requests(d):
    """Requests a caller waits for (FORGET and RELEASE are asynchronous)."""
    return sum(v for k, v in d.items() if k not in ("forget", "batch_forget", "release"))

def check(desc, ok, details=""):
    print(("PASS %s" % desc) if ok else ("FAIL %s: %s" % (desc, details)), flush=True)

def check_counts(desc, ok, d):
    if COUNTS:
        check(desc, ok, "requests %s" % sorted(d.items()))
EOF
run_py() {
    local desc=$1 code=$2 out line
    if ! out=$(cd "$T_DIR" && M=$M N=$N COUNTS=$counts ACL=$acl timeout -k 5 "$STEP_TIMEOUT" \
               "$PY" -c "from rt_lib import *
$code" 2>&1); then
        fail "$desc" "python failed"
        _tail_output "$out"
    fi
    while IFS= read -r line; do
        case "$line" in
            PASS\ *) pass "${line#PASS }" ;;
            FAIL\ *) fail "${line#FAIL }" ;;
            *) [ -z "$line" ] || t_log "$line" ;;
        esac
    done <<<"$out"
}

N=200
mount_image "$IMG" "$M"

# ---- counts ----------------------------------------------------------------------------
run_py "negative entries and create" '
os.mkdir(M + "/d")
names = [M + "/d/n%d" % i for i in range(N)]
a = counters()
for p in names:
    try:
        os.stat(p)
        check("missing name %s" % p, False, "stat succeeded")
    except FileNotFoundError:
        pass
b = counters()
d = delta(a, b)
check_counts("first stat of %d missing names: one LOOKUP each" % N,
             d.get("lookup", 0) == N and sync_requests(d) <= N + 2, d)
for p in names:
    try:
        os.stat(p)
    except FileNotFoundError:
        pass
c = counters()
d = delta(b, c)
check_counts("second stat of the missing names: no request (negative entries cached)",
             sync_requests(d) == 0, d)
for p in names:
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
e = counters()
d = delta(c, e)
check_counts("open(O_CREAT) of %d negatively cached names: no LOOKUP, MKNOD + dir GETATTR, "
             "no RELEASE (after the mount\x27s first CREATE and OPEN answer ENOSYS)" % N,
             d.get("lookup", 0) == 0 and d.get("mknod", 0) == N and d.get("create", 0) <= 1 and
             d.get("open", 0) <= 1 and d.get("release", 0) == 0 and
             sync_requests(d) <= 2 * N + 4, d)
missing = [p for p in names if not os.path.exists(p)]
check("negative entries do not hide the created files", not missing, missing[:3])
'

run_py "create after a listing" '
os.mkdir(M + "/c")
os.listdir(M + "/c")
n0 = notes()
a = counters()
for i in range(N):
    os.close(os.open(M + "/c/f%d" % i, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
d = delta(a, counters())
n1 = notes()
check_counts("O_CREAT|O_EXCL of %d new names: at most LOOKUP, dir GETATTR, MKNOD each, "
             "no CREATE, OPEN or RELEASE" % N,
             d.get("mknod", 0) == N and d.get("create", 0) == 0 and d.get("open", 0) == 0 and
             d.get("release", 0) == 0 and sync_requests(d) <= 3 * N + 2, d)
# one process alone: the kernel need not be told that the directory changed
# (src/util/attr_owner.h), at most the first time
check("creates by one process: at most 1 notification of the changed directory, "
      "%d left out" % N, n1[0] - n0[0] <= 1 and n1[1] - n0[1] >= N - 1, (n0, n1))
# another process answered with its attributes in between: told again
pid = os.fork()
if pid == 0:
    os.stat(M + "/c")
    os._exit(0)
os.waitpid(pid, 0)
os.close(os.open(M + "/c/other", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
n2 = notes()
check("a create after another process stat-ed the directory notifies",
      n2[0] - n1[0] == 1, (n1, n2))
os.unlink(M + "/c/other")
check("the stat right after it is current", os.stat(M + "/c").st_mtime_ns >= os.stat(M + "/c/f0").st_mtime_ns)
'

# Fresh kernel caches: stat after a listing.
unmount_fs "$M"
mount_image "$IMG" "$M"
run_py "stat after readdirplus" '
a = counters()
with os.scandir(M + "/c") as it:
    names = [e.name for e in it]
b = counters()
sts = [os.stat(M + "/c/" + n) for n in names]
c = counters()
check("listing shows the %d created files" % N, sorted(names) == sorted("f%d" % i for i in range(N)),
      len(names))
d = delta(a, b)
check_counts("listing used READDIRPLUS", d.get("readdirplus", 0) >= 1 and d.get("readdir", 0) == 0, d)
d = delta(b, c)
check_counts("stat of %d listed files: no LOOKUP, no GETATTR" % N,
             d.get("lookup", 0) == 0 and d.get("getattr", 0) == 0, d)
for n in names:
    os.stat(M + "/c/" + n)
d = delta(c, counters())
check_counts("second stat of the files: no request", sync_requests(d) == 0, d)
check("all are empty regular files", all(stat.S_ISREG(s.st_mode) and s.st_size == 0 for s in sts))

# A listing of inodes the kernel holds gives them without attributes, so
# the kernel keeps its cached POSIX ACLs (it drops them when it applies an
# entry): `ls -l` asks for system.posix_acl_access of every file, and a
# second `ls -l` then costs no GETXATTR for it.
def acl_round():
    for n in names:
        try:
            os.getxattr(M + "/c/" + n, "system.posix_acl_access")
        except OSError:
            pass
a = counters()
acl_round()
b = counters()
with os.scandir(M + "/c") as it:
    again = sorted(e.name for e in it)
sts2 = [os.stat(M + "/c/" + n) for n in names]
c = counters()
acl_round()
e = counters()
check("second listing shows the same files", again == sorted(names), len(again))
check("second listing: the same attributes",
      [(s.st_ino, s.st_mode, s.st_nlink, s.st_size) for s in sts2] ==
      [(s.st_ino, s.st_mode, s.st_nlink, s.st_size) for s in sts])
d = delta(b, c)
check_counts("second listing and stat of its files: no request per file",
             d.get("lookup", 0) == 0 and d.get("getattr", 0) <= 1 and
             d.get("getxattr", 0) == 0 and d.get("readdirplus", 0) >= 1, d)
if ACL:
    check_counts("ACL of %d files read once: one GETXATTR each" % N,
                 delta(a, b).get("getxattr", 0) == N, delta(a, b))
    check_counts("ACL read again after a second listing: no GETXATTR",
                 delta(c, e).get("getxattr", 0) == 0, delta(c, e))
'

run_py "unlink after a listing" '
os.listdir(M + "/c")
a = counters()
for i in range(N):
    os.unlink(M + "/c/f%d" % i)
d = delta(a, counters())
check_counts("unlink of %d listed files: no LOOKUP" % N,
             d.get("lookup", 0) == 0 and d.get("unlink", 0) == N, d)
check("directory empty after the unlinks", os.listdir(M + "/c") == [], os.listdir(M + "/c")[:3])
'

WRITE_FSYNC_PY='
K = 100
fd = os.open(M + "/w", os.O_CREAT | os.O_WRONLY, 0o644)
a = counters()
for i in range(K):
    os.pwrite(fd, b"x" * 4096, i * 4096)
    os.fsync(fd)
d = delta(a, counters())
os.close(fd)
PER = 4 if os.environ.get("NOKILLPRIV") else 3
check_counts("%d x (4 KiB write + fsync): at most %d requests each" % (K, PER),
             d.get("fsync", 0) == K and d.get("write", 0) <= K and
             sync_requests(d) <= PER * K + 2, d)
# GETXATTR: the kernel asks at the first write and after each refresh of
# its attributes (it clears S_NOSEC then); the first write-back that
# allocates drops them once (st_blocks), so a third one.
check_counts("GETXATTR security.capability: %s" % ("per write" if PER == 4 else "at most 3 times"),
             d.get("getxattr", 0) >= K if PER == 4 else d.get("getxattr", 0) <= 3, d)
check_counts("GETATTR: not per write (st_blocks refreshes are rate-limited)",
             d.get("getattr", 0) <= 3, d)
check("size after the writes", os.stat(M + "/w").st_size == K * 4096, os.stat(M + "/w").st_size)
check("st_blocks after close", os.stat(M + "/w").st_blocks >= K * 8, os.stat(M + "/w").st_blocks)
'
run_py "write and fsync" "$WRITE_FSYNC_PY"

# ---- what the kernel caches stays right ---------------------------------------------------
run_py "cached attributes and entries" '
d = M + "/k"
os.mkdir(d)
open(d + "/a", "w").close()
ino = os.stat(d + "/a").st_ino
os.rename(d + "/a", d + "/b")
check("rename: old name gone at once", not os.path.exists(d + "/a"))
check("rename: new name has the inode", os.stat(d + "/b").st_ino == ino)
try:
    os.stat(d + "/c")
except FileNotFoundError:
    pass
os.rename(d + "/b", d + "/c")
check("rename onto a negatively cached name", os.stat(d + "/c").st_ino == ino)
os.link(d + "/c", d + "/l")
check("link: nlink 2 at once", os.stat(d + "/c").st_nlink == 2, os.stat(d + "/c").st_nlink)
os.unlink(d + "/l")
check("unlink of a link: nlink 1 at once", os.stat(d + "/c").st_nlink == 1, os.stat(d + "/c").st_nlink)
check("unlinked name gone", not os.path.exists(d + "/l"))
os.chmod(d + "/c", 0o600)
check("chmod seen at once", stat.S_IMODE(os.stat(d + "/c").st_mode) == 0o600,
      oct(os.stat(d + "/c").st_mode))
os.chown(d + "/c", 1234, 5678)
s = os.stat(d + "/c")
check("chown seen at once", (s.st_uid, s.st_gid) == (1234, 5678), (s.st_uid, s.st_gid))
with open(d + "/c", "wb") as f:
    f.write(b"0123456789")
check("size after write seen at once", os.stat(d + "/c").st_size == 10, os.stat(d + "/c").st_size)
os.truncate(d + "/c", 3)
check("truncate seen at once", os.stat(d + "/c").st_size == 3, os.stat(d + "/c").st_size)
os.utime(d + "/c", ns=(1000000000123, 2000000000456))
s = os.stat(d + "/c")
check("utime seen at once", (s.st_atime_ns, s.st_mtime_ns) == (1000000000123, 2000000000456),
      (s.st_atime_ns, s.st_mtime_ns))
before = os.stat(d).st_mtime_ns
for name in ("sub", "sym", "fifo"):
    try:
        os.stat(d + "/" + name)
    except FileNotFoundError:
        pass
os.mkdir(d + "/sub")
os.symlink("c", d + "/sym")
os.mkfifo(d + "/fifo")
check("mkdir over a negative entry", stat.S_ISDIR(os.stat(d + "/sub").st_mode))
check("symlink over a negative entry", os.readlink(d + "/sym") == "c")
check("mknod over a negative entry", stat.S_ISFIFO(os.stat(d + "/fifo").st_mode))
check("directory nlink counts the subdirectory", os.stat(d).st_nlink == 3, os.stat(d).st_nlink)
check("directory mtime moved with its entries", os.stat(d).st_mtime_ns >= before)
os.rmdir(d + "/sub")
check("rmdir: gone at once", not os.path.exists(d + "/sub"))
check("rmdir: parent nlink back to 2", os.stat(d).st_nlink == 2, os.stat(d).st_nlink)
check("listing shows exactly the existing names", sorted(os.listdir(d)) == ["c", "fifo", "sym"],
      sorted(os.listdir(d)))
os.rename(d + "/c", M + "/moved")
check("rename across directories", os.stat(M + "/moved").st_ino == ino and not os.path.exists(d + "/c"))
'

# ---- the dirty-page share -------------------------------------------------------------------
# The ratios as set at mount hold on an image with room (4 GiB, sparse:
# more than twice the 460 MiB of max_ratio=10 free); on this 512 MiB one
# the cap follows free space from the start (src/fuse/dirty.c).
dev=$(mountpoint -d "$M")
if [ "$(id -u)" = 0 ] && [ -w "/sys/class/bdi/$dev/max_bytes" ]; then
    if it_opts_have nowriteback_cache; then
        # without the writeback cache the cap stays as the ratios set it
        skip "512 MiB image: the cap follows free space only with the writeback cache"
    else
        free=$(fs_avail_bytes "$M")
        check_range "512 MiB image: the dirty-page cap is between a quarter and half of the free space" \
            $((free / 4 - 4096)) $((free / 2)) \
            "$("$MSTAT" "$M" | awk '$1 == "fuse_dirty_cap_bytes" { print $2 }')"
        check_eq "512 MiB image: min_ratio 0 below the mount's cap" 0 \
            "$(cat "/sys/class/bdi/$dev/min_ratio")"
    fi
    unmount_fs "$M"
    big=$T_DIR/bdi.img
    make_image "$big" 4G
    mount_image "$big" "$M"
    dev=$(mountpoint -d "$M")
    check_eq "default max_ratio/min_ratio reach the bdi" 10/5 \
        "$(cat "/sys/class/bdi/$dev/max_ratio")/$(cat "/sys/class/bdi/$dev/min_ratio")"
    # read-ahead 1 MiB, written after INIT (which sets it again): a cold
    # sequential read of 16 MiB takes READs of 1 MiB (128 KiB before: 128)
    wait_until "read_ahead_kb 1024 reaches the bdi" 5 \
        '[ "$(cat "/sys/class/bdi/'"$dev"'/read_ahead_kb")" = 1024 ]'
    dd if=/dev/urandom of="$M/ra" bs=1M count=16 conv=fsync status=none
    unmount_fs "$M"
    mount_image "$big" "$M"
    dev=$(mountpoint -d "$M")
    wait_until "read_ahead_kb 1024 after a remount" 5 \
        '[ "$(cat "/sys/class/bdi/'"$dev"'/read_ahead_kb")" = 1024 ]'
    r0=$("$MSTAT" "$M" | awk '$1 == "fuse_req_read" { print $2 }')
    cat "$M/ra" >/dev/null
    r1=$("$MSTAT" "$M" | awk '$1 == "fuse_req_read" { print $2 }')
    check_range "cold sequential read of 16 MiB: READs of up to 1 MiB" 16 24 $((r1 - ${r0:-0}))
    unmount_fs "$M"
    mount_image "$big" "$M" -o max_ratio=25,min_ratio=3,read_ahead_kb=0
    dev=$(mountpoint -d "$M")
    check_eq "max_ratio=25,min_ratio=3 reach the bdi" 25/3 \
        "$(cat "/sys/class/bdi/$dev/max_ratio")/$(cat "/sys/class/bdi/$dev/min_ratio")"
    sleep 0.2
    check_eq "read_ahead_kb=0 keeps the kernel's 128" 128 "$(cat "/sys/class/bdi/$dev/read_ahead_kb")"
    unmount_fs "$M"
    rm -f "$big"
    mount_image "$IMG" "$M"
else
    skip "max_ratio: not root or no bdi max_bytes file"
fi
# ---- an idle mount wakes no thread ----------------------------------------------------------
# The request loop's monitor ticks every 0.5 ms while requests flow and
# sleeps once none came for a second (it used to tick 100 times a second
# forever). Counted: the voluntary context switches of all the daemon's
# threads over 3 s, after 2 s without requests.
pid=$(_daemon_pids "$M" | head -n 1)
switches() { cat /proc/"$pid"/task/*/status 2>/dev/null | awk '/^voluntary_ctxt/ { v += $2 } END { print v + 0 }'; }
sleep 2
a=$(switches)
sleep 3
b=$(switches)
check_range "idle mount: no thread wakes in 3 s (voluntary switches)" 0 20 $((b - a))
echo awake >"$M/idle-probe"
check_eq "requests after idling are served" awake "$(cat "$M/idle-probe")"
rm -f "$M/idle-probe"
# ---- st_blocks after an xattr block comes and goes ----------------------------------------------
# statx for STATX_BLOCKS alone (as stat -c %b asks), all from one thread:
# the kernel marks only ctime stale after setxattr/removexattr, so the
# daemon's notification, which it sends for them even to a caller it alone
# answered (docs/MOUNT.md, "When the notification is left out"), is what
# makes the count current.
run_py "st_blocks after xattr changes" '
import ctypes, struct
libc = ctypes.CDLL(None, use_errno=True)
def blocks(p):
    buf = ctypes.create_string_buffer(256)
    # AT_FDCWD, AT_SYMLINK_NOFOLLOW, STATX_BLOCKS; stx_blocks at offset 48
    if libc.statx(-100, p.encode(), 0x100, 0x400, buf) != 0:
        raise OSError(ctypes.get_errno(), "statx " + p)
    return struct.unpack_from("Q", buf.raw, 48)[0]
p = M + "/xb"
with open(p, "w") as f:
    f.write("x")
os.stat(p)
b0 = blocks(p)
os.setxattr(p, "user.big", b"x" * 3000)
b1 = blocks(p)
os.removexattr(p, "user.big")
b2 = blocks(p)
check("statx(STATX_BLOCKS) sees an xattr block come and go (before, with, after)",
      (b1, b2) == (b0 + 8, b0), (b0, b1, b2))
os.unlink(p)
'
# ---- without HANDLE_KILLPRIV_V2: a GETXATTR security.capability per write -------------------
unmount_fs "$M"
mount_image "$IMG" "$M" -o nokillpriv_v2
rm -f "$M/w"
NOKILLPRIV=1 run_py "write and fsync, nokillpriv_v2" "$WRITE_FSYNC_PY"

check_fail "max_ratio=101 is refused" "$MMAPFS" "$IMG" "$T_DIR/nomnt" -o max_ratio=101
check_fail "min_ratio above max_ratio is refused" "$MMAPFS" "$IMG" "$T_DIR/nomnt" -o max_ratio=5,min_ratio=6
check_fail "readdirplus=sometimes is refused" "$MMAPFS" "$IMG" "$T_DIR/nomnt" -o readdirplus=sometimes

t_finish
