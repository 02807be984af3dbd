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
on_ext4 "$E4" probe "ext4" "$E4"

# ---- mmapfs, with and without the writeback cache ---------------------------------
img=$T_DIR/ts.img
make_image "$img" 128M
for opts in writeback_cache nowriteback_cache; do
    M=$T_DIR/mnt-$opts
    mount_image "$img" "$M" -o "$opts"
    rm -rf "$M/ts"
    probe "mmapfs -o $opts" "$M"
    unmount_fs "$M"
done

t_finish
