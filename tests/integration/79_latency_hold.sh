#!/usr/bin/env bash
#
# 79_latency_hold.sh — the CPU latency hold of the request loop
# (latency_hold=, docs/MOUNT.md "Waking the caller"): while requests keep
# coming the daemon holds a PM QoS CPU latency request of 0 us, seen as
# the machine's value in /dev/cpu_dma_latency; it gives it back after the
# last request, when the daemon is killed, and never takes it with
# latency_hold=0 or with libfuse's loops; bad values are refused.
#
# /dev/cpu_dma_latency holds one machine-wide value (the lowest request of
# all processes), so this runs alone (run.sh: SERIAL) and skips if another
# process already holds 0.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd python3 od
export LC_ALL=C

QOS=/dev/cpu_dma_latency
[ -c "$QOS" ] || skip_script "$QOS is missing (kernel without PM QoS)"
# The machine's value: reading opens a request of our own at the default,
# which changes nothing.
qos() { od -An -td4 -N4 "$QOS" | tr -d ' '; }
[ "$(qos)" != 0 ] || skip_script "another process already holds $QOS at 0"

IMG=$T_DIR/lh.img
M=$T_DIR/mnt
make_image "$IMG" 512M
export M

stat_of() { "$MSTAT" "$M" | awk -v k="$1" '$1 == k { print $2 }'; }

# burst SECONDS : creates and removes files in a loop for about SECONDS in
# the background (one caller waiting for each request); sets BURST_PID.
burst() {
    python3 - "$1" 2>/dev/null <<'EOF' &
import os, sys, time
d = os.path.join(os.environ["M"], "burst")
os.makedirs(d, exist_ok=True)
end = time.monotonic() + float(sys.argv[1])
i = 0
while time.monotonic() < end:
    p = os.path.join(d, "f%d" % (i % 500))
    try:
        os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        os.unlink(p)
    i += 1
EOF
    BURST_PID=$!
}

# sample_zero SECONDS : prints how many of the samples (every 50 ms for
# SECONDS) saw the machine's value at 0.
sample_zero() {
    local n=0 i
    for i in $(seq $(( $1 * 20 ))); do
        [ "$(qos)" != 0 ] || n=$((n + 1))
        sleep 0.05
    done
    echo "$n"
}

# ---- defaults: taken while requests come, given back after ------------------
mount_image "$IMG" "$M"
# The mount's own first requests (INIT, the checks of mount_image) may come
# in two ticks in a row and take a hold; it ends 1 s after them. After
# that, an idle mount must leave the value alone: sampled for a second
# with no request at all (the metrics are read only afterwards, since that
# read is a request too).
wait_until "the mount's start holds the machine's value for at most 1 s" 2 \
    '[ "$(od -An -td4 -N4 '"$QOS"' | tr -d " ")" != 0 ]'
zero=$(sample_zero 1)
check_eq "an idle mount leaves the machine's value alone (samples at 0)" 0 "$zero"
holds=$(stat_of fuse_cpu_latency_holds)
check "an idle mount took no hold beyond its start (fuse_cpu_latency_holds $holds, at most 1)" \
    test "$holds" -le 1
burst 2
zero=$(sample_zero 1)
check "during a burst of creates the machine's value is 0 ($zero of 20 samples)" test "$zero" -ge 15
wait "$BURST_PID"
wait_until "given back within 1 s of the last request" 1 '[ "$(od -An -td4 -N4 '"$QOS"' | tr -d " ")" != 0 ]'
holds=$(( $(stat_of fuse_cpu_latency_holds) - holds ))
check "fuse_cpu_latency_holds counts it ($holds, 1..20)" test "$holds" -ge 1 -a "$holds" -le 20
held=$(stat_of fuse_cpu_latency_held_us)
check "fuse_cpu_latency_held_us covers the burst ($held us, at least 1 s)" test "$held" -ge 1000000
check "mmapfs-stat --prometheus names it in seconds" \
    bash -c '"$1" --prometheus "$2" | grep -c "^mmapfs_fuse_cpu_latency_held_seconds_total{" >/dev/null' _ "$MSTAT" "$M"
unmount_fs "$M"

# ---- the daemon killed in the middle of a hold: the kernel drops it ---------
mount_fg "$IMG" "$M" "$T_DIR/fg.log"
burst 3
wait_until "the foreground daemon takes it during a burst" 2 '[ "$(od -An -td4 -N4 '"$QOS"' | tr -d " ")" = 0 ]'
dpid=$T_DPID
crash_daemon "$dpid" "$M" "$IMG" "kill -9 while holding"
wait "$BURST_PID" 2>/dev/null || true
check "after kill -9 the machine's value is back" test "$(qos)" != 0

# ---- off: latency_hold=0, and libfuse's loops ---------------------------------
for opts in latency_hold=0 nohotloop; do
    mount_image "$IMG" "$M" -o "$opts"
    burst 1
    zero=$(sample_zero 1)
    wait "$BURST_PID"
    check_eq "-o $opts: never 0 during a burst (samples at 0)" 0 "$zero"
    check_eq "-o $opts: fuse_cpu_latency_holds stays 0" 0 "$(stat_of fuse_cpu_latency_holds)"
    unmount_fs "$M"
done

# ---- bad values ----------------------------------------------------------------
for bad in latency_hold=1001 latency_hold=-1 latency_hold=10ms; do
    _run "$MMAPFS" "$IMG" "$M" -o "$bad"
    check_eq "-o $bad: usage error (exit 2)" 2 "$T_RC"
    check_sh "-o $bad: the message names latency_hold" 'grep -q "latency_hold" <<<"$1"' _ "$T_OUT"
    check_fail "-o $bad: nothing mounted" mountpoint -q "$M"
done

t_finish
