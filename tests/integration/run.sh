#!/usr/bin/env bash
#
# tests/integration/run.sh [BUILD] — runs every tests/integration/*.sh
# except itself, each under `timeout`, against the binaries in BUILD
# (default: build). Prints PASS/FAIL/SKIP per script and a final line
# "N passed, M failed"; exits non-zero if any script failed.
#
# IT_JOBS scripts (default 2) run at once, in name order; a script's
# output is printed whole when it ends. The scripts whose checks count
# requests, time waits or signals, drop the kernel's caches or read the
# machine's CPU latency value (SERIAL below) run afterwards, one at a
# time, so that a neighbour neither stretches what they time nor changes
# what they count. Two at a time on two cores: about 250 s instead of
# 420 s for the whole set.
#
# A script passes with exit 0, is skipped with exit 77 (tests/lib/common.sh
# require_cmd/skip_script), and fails otherwise. After each script this
# runner also fails it if it left a mount or a loop device behind under its
# test temp directory (and removes them).
#
# Environment: IT_SCRIPT_TIMEOUT (seconds per script, default 300),
# IT_ONLY (a substring: run only scripts whose name contains it),
# IT_JOBS (scripts at once, default 2), MMAPFS_TEST_TMP (where this
# run's temp dir goes, default /var/tmp), MMAPFS_IT_OPTS (mount options
# added to every mount, e.g. io=pread).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$root/tests/lib/pool.sh"
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
export MMAPFS_BUILD=$build
# One parent directory per run, so that the leak check below sees only
# this run's mounts even when other runs share the machine.
tmp_parent=$(mktemp -d "${MMAPFS_TEST_TMP:-/var/tmp}/mmapfs-it-run.XXXXXX")
chmod 0755 "$tmp_parent"
export MMAPFS_TEST_TMP=$tmp_parent
per_script=${IT_SCRIPT_TIMEOUT:-300}

SERIAL=" 35_posix_diff 36_posix_random 50_sqlite 70_kill9 71_term_fsync 74_wait_writeback "
SERIAL+="75_shrink 77_mmp 79_latency_hold 80_roundtrips 83_stress 87_timestamps 90_install fuse_smoke "
jobs=${IT_JOBS:-2}
case $jobs in ''|*[!0-9]*|0) jobs=1 ;; esac
out=$(mktemp -d "$tmp_parent/out.XXXXXX")

# Prints mount points and loop devices left under the temp dirs of the
# script named $1 (tests/lib/common.sh: T_DIR is mmapfs-it.NAME.XXXXXX).
leftovers() {
    local p="$tmp_parent/mmapfs-it.$1."
    awk -v p="$p" 'index($2, p) == 1 { print "mount " $2 }' /proc/mounts
    losetup -l -n -O NAME,BACK-FILE 2>/dev/null |
        awk -v p="$p" 'index($2, p) == 1 { print "loop " $1 }'
}

# Removes what leftovers $1 found: lazy unmounts, loop detaches.
remove_leftovers() {
    local kind what
    while read -r kind what; do
        case "$kind" in
        mount) fusermount3 -u -z "$what" 2>/dev/null || umount -l "$what" 2>/dev/null || true ;;
        loop) losetup -d "$what" 2>/dev/null || true ;;
        esac
    done < <(leftovers "$1")
}

# One script (path $1): its output, exit status and time go to files
# named after it; what it left behind is checked and removed.
run_one() {
    local script=$1 name f start rc=0 leaked=""
    name=$(basename "$script" .sh)
    f=$out/$name
    start=$SECONDS
    timeout -k 20 "$per_script" bash "$script" "$build" </dev/null >"$f.log" 2>&1 || rc=$?
    if [ -n "$(leftovers "$name")" ]; then
        leaked=$(leftovers "$name" | tr '\n' ',')
        remove_leftovers "$name"
    fi
    printf '%s %s %s\n' "$rc" "$((SECONDS - start))" "$leaked" >"$f.rc"
}

passed=0
failed=0
skipped=0
results=()

# Prints and counts one finished script.
report() {
    local name f rc secs leaked status note
    name=$(basename "$1" .sh)
    f=$out/$name
    read -r rc secs leaked <"$f.rc"
    cat "$f.log"
    if [ "$rc" -eq 77 ] && [ -z "$leaked" ]; then
        status=SKIP
        skipped=$((skipped + 1))
    elif [ "$rc" -eq 0 ] && [ -z "$leaked" ]; then
        status=PASS
        passed=$((passed + 1))
    else
        status=FAIL
        failed=$((failed + 1))
    fi
    note="${secs}s"
    [ "$rc" -eq 124 ] && note="$note, killed after ${per_script}s timeout"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] && [ "$rc" -ne 124 ] && note="$note, exit $rc"
    [ -n "$leaked" ] && note="$note, left behind: $leaked"
    line="$status $name.sh ($note)"
    echo "$line"
    results+=("$line")
}

suite_start=$SECONDS
scripts=()
for script in "$here"/*.sh; do
    name=$(basename "$script" .sh)
    [ "$name" != "run" ] || continue
    if [ -n "${IT_ONLY:-}" ] && [[ "$name.sh" != *"$IT_ONLY"* ]]; then
        continue
    fi
    scripts+=("$script")
done
pool_run "$jobs" "$SERIAL" "${scripts[@]}"

echo
echo "integration scripts (${build}, $((SECONDS - suite_start))s):"
for line in "${results[@]}"; do echo "  $line"; done
rm -rf "$out"
rmdir "$tmp_parent" 2>/dev/null || true
[ "$skipped" -eq 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
