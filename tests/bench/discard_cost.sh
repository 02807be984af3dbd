#!/usr/bin/env bash
#
# discard_cost.sh BUILD [ROUNDS] — what -o discard costs (docs/MOUNT.md,
# "discard"): for discard and nodiscard, on a fresh sparse 4 GiB image in
# /var/tmp, times
#   rm -rf of 20000 files of 4 KiB (in 20 directories), then syncfs,
#     until the freed blocks are released (fs_blocks_pending_free 0);
#   rm of one 1 GiB file, the same;
#   fsync rows: 2000 x (create, write 16 KiB, fsync, unlink) in one process;
# and prints the engine's discard counters. Root only (mounts).
set -euo pipefail
B=${1:-build}
ROUNDS=${2:-1}
case "$B" in /*) ;; *) B=$PWD/$B ;; esac
T=$(mktemp -d /var/tmp/mmapfs-discard-bench.XXXXXX)
M=$T/mnt
mkdir -p "$M"
cleanup() { mountpoint -q "$M" && fusermount3 -u "$M"; sleep 1; rm -rf "$T"; }
trap cleanup EXIT

metric() { getfattr --only-values -n trusted.mmapfs.metrics "$M" 2>/dev/null | awk -v k="$1" '$1==k{print $2}'; }
now() { date +%s.%N; }
wait_released() {
    for _ in $(seq 200); do
        [ "$(metric fs_blocks_pending_free)" = 0 ] && return 0
        sleep 0.05
    done
    echo "pending frees not released" >&2
}

for round in $(seq "$ROUNDS"); do
for mode in nodiscard discard; do
    rm -f "$T/img"
    "$B/mkfs.mmapfs" -q -f --sparse -s 4G "$T/img"
    "$B/mmapfs" "$T/img" "$M" -o "$mode,commit=1"
    python3 - "$M" <<'PY'
import os, sys
b = b"x" * 4096
for d in range(20):
    os.mkdir(f"{sys.argv[1]}/d{d}")
    for f in range(1000):
        with open(f"{sys.argv[1]}/d{d}/f{f}", "wb") as fh:
            fh.write(b)
PY
    dd if=/dev/urandom of="$M/big" bs=1M count=1024 status=none
    sync
    t0=$(now); rm -rf "$M"/d*; sync -f "$M"; wait_released; t1=$(now)
    rm "$M/big"; sync -f "$M"; wait_released; t2=$(now)
    python3 - "$M" <<'PY'
import os, sys, time
d = sys.argv[1]
buf = os.urandom(16384)
t = time.monotonic()
for i in range(2000):
    p = f"{d}/fs{i}"
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, buf)
    os.fsync(fd)
    os.close(fd)
    os.unlink(p)
el = time.monotonic() - t
print(f"fsync_rows_per_s {2000 / el:.0f}")
PY
    printf '%s round %s: rm -rf 20000 files %.2f s, rm 1 GiB %.2f s, discards %s, discard_bytes %s, discard_us %s\n' \
        "$mode" "$round" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" \
        "$(metric mmio_discards)" "$(metric mmio_discard_bytes)" "$(metric mmio_discard_us)"
    fusermount3 -u "$M"; sleep 1
done
done
