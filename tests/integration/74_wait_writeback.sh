#!/usr/bin/env bash
#
# 74_wait_writeback.sh — requests that wait for the kernel's write-back
# never take the last request thread. Before a rename replaces a file and
# before SEEK_DATA/SEEK_HOLE the daemon has the kernel write the file's
# cached pages back and waits; those WRITEs need another request thread.
# With every thread waiting like that the mount hung (8 processes with
# max_threads=2, 100 with the default 64: each writes a file, keeps it open
# and renames it over another or seeks for data). Now at most
# max_threads - 1 wait in place, the rest on the deferral thread
# (src/fuse/defer.c). A run that makes no progress for 10 s is a hang: the
# script aborts the FUSE connection (so that nothing stays stuck) and fails.
# Last, SIGTERM under the same load must end the daemon (term_case).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3
export LC_ALL=C

IMG=$T_DIR/ww.img
M=$T_DIR/mnt
make_image "$IMG" 512M

cat >"$T_DIR/ww.py" <<'EOF'
import multiprocessing as mp, os, sys, time
M, W, SECS = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def worker(i, cnt):
    d = "%s/d%d" % (M, i)
    os.makedirs(d, exist_ok=True)
    end, n = time.time() + SECS, 0
    while time.time() < end:
        fd = os.open(d + "/tmp", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, bytes([n % 251 + 1]) * 65536)
        if n % 2:
            os.rename(d + "/tmp", d + "/target")        # writer still open
        elif os.lseek(fd, 0, os.SEEK_DATA) != 0:
            sys.exit("d%d: SEEK_DATA of a written file is not 0" % i)
        os.close(fd)
        n += 1
        cnt[i] = n
if __name__ == "__main__":
    cnt = mp.Array("i", W)
    ps = [mp.Process(target=worker, args=(i, cnt)) for i in range(W)]
    for p in ps:
        p.start()
    last, still = -1, 0
    while any(p.is_alive() for p in ps):
        time.sleep(1)
        s = sum(cnt)
        still = still + 1 if s == last else 0
        last = s
        if still >= 10 and len(sys.argv) < 5:    # a 4th argument: never abort
            minor = os.stat(M).st_dev & 0xff | (os.stat(M).st_dev >> 12) & ~0xff
            with open("/sys/fs/fuse/connections/%d/abort" % minor, "w") as f:
                f.write("1")
            print("HANG: no progress for 10 s after %d operations; connection aborted" % s)
            os._exit(1)
    bad = [p.exitcode for p in ps if p.exitcode]
    if bad:
        sys.exit("workers failed: %s" % bad)
    print("%d operations" % sum(cnt))
EOF

# run_case DESC OPTS WORKERS
run_case() {
    local desc=$1 opts=$2 workers=$3
    mount_image "$IMG" "$M" -o "$opts"
    _run timeout 60 python3 "$T_DIR/ww.py" "$M" "$workers" 3
    t_log "$desc: $T_OUT"
    check_eq "$desc: no hang, every worker done" 0 "$T_RC"
    check_sh "$desc: every replaced target holds one whole version" '
        for f in "$1"/d*/target; do
            [ "$(stat -c %s "$f")" = 65536 ] || exit 1
            [ "$(od -An -tx1 -v "$f" | tr -s " \n" "\n\n" | sort -u | grep -c .)" = 1 ] || exit 1
        done' _ "$M"
    if mountpoint -q "$M"; then
        unmount_fs "$M"
    else
        _forget_mount "$M"
    fi
    fsck_clean "$IMG" "$desc: fsck.mmapfs -n is clean"
}

# term_case DESC OPTS ROUNDS : SIGTERM while 8 processes replace files and
# seek; the daemon must exit within 20 s each time. A handler waiting in
# the kernel for write-back needs the loop to serve the WRITEs; once the
# session was marked exited nobody did, and the daemon never exited (about
# one SIGTERM in three). Now the shutdown thread first lets those waits end
# and keeps new ones from starting (src/fuse/defer.c, mfs_defer_no_flush).
# A race: before the fix 3 rounds caught it about 7 times in 10.
term_case() {
    local desc=$1 opts=$2 rounds=$3 r dpid py i
    for r in $(seq "$rounds"); do
        mount_fg "$IMG" "$M" "$T_DIR/term.$r.log" -o "$opts" || return 0
        dpid=$T_DPID
        "$PY" "$T_DIR/ww.py" "$M" 8 30 noabort >/dev/null 2>&1 &
        py=$!
        sleep 2
        kill -TERM "$dpid"
        for i in $(seq 100); do
            kill -0 "$dpid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$dpid" 2>/dev/null; then
            fail "$desc, round $r: the daemon exits within 20 s of SIGTERM" \
                "threads waiting for write-back: $(grep -l folio_wait /proc/"$dpid"/task/*/stack 2>/dev/null | wc -l)"
            echo 1 >"/sys/fs/fuse/connections/$(mountpoint -d "$M" | cut -d: -f2)/abort" || true
        else
            pass "$desc, round $r: the daemon exits within 20 s of SIGTERM"
        fi
        wait "$dpid" || true
        kill "$py" 2>/dev/null || true
        wait "$py" || true
        mountpoint -q "$M" && umount -l "$M"
        _forget_mount "$M"
        fsck_clean "$IMG" "$desc, round $r: fsck.mmapfs -n is clean"
    done
}

run_case "max_threads=2, 8 processes (hot loop)" max_threads=2 8
run_case "max_threads=3, 12 processes (libfuse's loop)" max_threads=3,nohotloop 12
term_case "SIGTERM, max_threads=2" max_threads=2 3
t_finish
