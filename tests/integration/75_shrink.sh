#!/usr/bin/env bash
#
# 75_shrink.sh — the image file is truncated on the host under a busy mount.
#
# A 256 MiB image holds a tree (directories, small files, larger files);
# a workload of four processes walks it (find-like os.walk + stat), reads
# files (cat) and writes new ones. In the middle, the image is cut to
# 4 MiB with truncate(1). Metadata and data pages beyond the cut vanish
# from under the daemon's mapping: every access must come back to the
# caller as EIO (a few other errors a damaged filesystem gives, ENOENT,
# EUCLEAN, EROFS, ENOSPC, are tolerated), never ENOTCONN (the daemon
# died). Then: the daemon is alive, a cat of a file whose data is gone
# gets EIO (the zero-copy read path hands the kernel iovecs into the
# mapping), the mount still answers (stat of the root: EIO once its
# inode is gone, but an answer), fusermount3 -u
# works and the daemon exits. Finally the image is extended back to its
# size and fsck.mmapfs -n must report the damage (non-zero exit, a
# message), not crash. docs/ROBUSTNESS.md.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd truncate
export LC_ALL=C

img=$T_DIR/shrink.img
M=$T_DIR/mnt
make_image "$img" 256M
size=$(stat -c %s "$img")
mount_image "$img" "$M" -o nowriteback_cache
dpid=$(_daemon_pids "$M" | head -1)
[ -n "$dpid" ] || { fail "daemon pid found"; t_finish; }

# ---- a tree to work on ------------------------------------------------------------
check "populate: 20 dirs x 100 files, 8 files of 4 MiB" "$PY" -c '
import os, sys
m = sys.argv[1]
for d in range(20):
    os.mkdir(f"{m}/d{d}")
    for f in range(100):
        with open(f"{m}/d{d}/f{f}", "wb") as fh:
            fh.write(os.urandom(3000))
os.mkdir(f"{m}/big")
for f in range(8):
    with open(f"{m}/big/b{f}", "wb") as fh:
        fh.write(os.urandom(4 << 20))
os.sync()
' "$M"
# Drop the page cache of the image and of the mount so that the workload
# has to fault pages of the mapping in (after the cut, those are gone).
sync
echo 3 >/proc/sys/vm/drop_caches

# ---- the workload: walk, stat, cat, write; errno tally per process ---------------
work=$T_DIR/work
mkdir -p "$work"
cat >"$work/load.py" <<'EOF'
import errno, os, sys, time, json
m, role, out, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
tally = {}
def note(e):
    name = errno.errorcode.get(e.errno, str(e.errno))
    tally[name] = tally.get(name, 0) + 1
end = time.time() + secs
i = 0
while time.time() < end:
    i += 1
    try:
        if role == "walk":
            for root, dirs, files in os.walk(m, onerror=note):
                for f in files:
                    try:
                        os.stat(os.path.join(root, f))
                    except OSError as e:
                        note(e)
        elif role == "cat":
            for d in ["big"] + [f"d{k}" for k in range(20)]:
                try:
                    names = os.listdir(f"{m}/{d}")
                except OSError as e:
                    note(e); continue
                for f in names:
                    try:
                        with open(f"{m}/{d}/{f}", "rb") as fh:
                            while fh.read(1 << 20):
                                pass
                    except OSError as e:
                        note(e)
        elif role == "write":
            p = f"{m}/w{i % 50}"
            try:
                with open(p, "wb") as fh:
                    fh.write(os.urandom(64 << 10))
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as e:
                note(e)
    except OSError as e:
        note(e)
    tally["rounds"] = i
    with open(out, "w") as fh:
        json.dump(tally, fh)
    time.sleep(0.01)
EOF
loads=()
for role in walk cat write write; do
    "$PY" "$work/load.py" "$M" "$role" "$work/$role.$(( ${#loads[@]} )).json" 8 &
    loads+=($!)
done
sleep 2
check "truncate the image to 4 MiB under the mount" truncate -s 4M "$img"
for p in "${loads[@]}"; do
    timeout 60 tail --pid="$p" -f /dev/null || true
    wait "$p" 2>/dev/null || true
done
pass "the workload finished"
check_sh "the image is still 4 MiB (the driver never extends it: cut pages must fault, not read as zeros)" \
    '[ "$(stat -c %s "$0")" = 4194304 ]' "$img"

# ---- what the callers saw ---------------------------------------------------------
tallies=$(cat "$work"/*.json | tr '\n' ' ')
t_log "errno tallies: $tallies"
check_sh "no caller saw ENOTCONN (the daemon did not die)" '! grep -q ENOTCONN "$0"/*.json' "$work"
check_sh "callers saw EIO after the cut" 'grep -q "\"EIO\"" "$0"/*.json' "$work"
check_sh "no unexpected errno" '
for f in "$0"/*.json; do
    "$1" -c "
import json, sys
t = json.load(open(sys.argv[1]))
bad = [k for k in t if k not in (\"rounds\", \"EIO\", \"ENOENT\", \"EUCLEAN\", \"EROFS\", \"ENOSPC\")]
sys.exit(1 if bad else 0)
" "$f" || { echo "unexpected in $f: $(cat "$f")"; exit 1; }
done' "$work" "$PY"
check "the daemon is alive" kill -0 "$dpid"
check_errno "the mount answers stat of its root (the root inode may be gone)" "OK|EIO" "os.stat('$M')"
# The cat load may have read b7 before the cut: its clean pages would still
# be in the kernel's page cache and a read would not reach the daemon.
check "drop the kernel's clean page cache" sh -c 'echo 1 > /proc/sys/vm/drop_caches'
check_errno "cat of a file whose data is gone: EIO" "EIO" "
with open('$M/big/b7', 'rb') as fh:
    while fh.read(1 << 20):
        pass"
check_errno "a new file: EIO or EROFS" "EIO|EROFS" "
with open('$M/after-cut', 'wb') as fh:
    fh.write(b'x' * 100000)
    os.fsync(fh.fileno())"
check "the daemon is still alive" kill -0 "$dpid"

# ---- unmount, restore the size, fsck reports the damage ---------------------------------
if unmount_fs "$M"; then
    pass "fusermount3 -u works and the daemon exits"
fi
check "extend the image back to $size bytes" truncate -s "$size" "$img"
_run "$FSCK" -n "$img"
t_log "fsck -n exit $T_RC: $(printf '%s\n' "$T_OUT" | head -5 | tr '\n' '|')"
if [ "$T_RC" -ge 4 ] && [ "$T_RC" -lt 124 ] && [ -n "$T_OUT" ]; then
    pass "fsck.mmapfs -n reports the damage (exit $T_RC)"
else
    fail "fsck.mmapfs -n reports the damage" "expected: exit >= 4 (errors left uncorrected) with a report" \
        "got: exit $T_RC"
    _tail_output "$T_OUT"
fi
T_DIRTY["$img"]=0    # damaged on purpose: no final clean fsck
t_finish
