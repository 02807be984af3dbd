#!/usr/bin/env bash
#
# tests/integration/run.sh [BUILD] — runs every tests/integration/*.sh
# except itself, in name order, each under `timeout`, against the binaries
# in BUILD (default: build). Prints PASS/FAIL/SKIP per script and a final
# line "N passed, M failed"; exits non-zero if any script failed.
#
# A script passes with exit 0, is skipped with exit 77 (tests/lib/common.sh
# require_cmd/skip_script), and fails otherwise. After each script this
# runner also fails it if it left a mount or a loop device behind under the
# test temp directory (and removes them).
#
# Environment: IT_SCRIPT_TIMEOUT (seconds per script, default 300),
# IT_ONLY (a substring: run only scripts whose name contains it),
# MMAPFS_TEST_TMP (where this run's temp dir goes, default /var/tmp),
# MMAPFS_IT_OPTS (mount options added to every mount, e.g. io=pread).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
export MMAPFS_BUILD=$build
# One parent directory per run, so that the leak check below sees only
# this run's mounts even when other runs share the machine.
tmp_parent=$(mktemp -d "${MMAPFS_TEST_TMP:-/var/tmp}/mmapfs-it-run.XXXXXX")
chmod 0755 "$tmp_parent"
export MMAPFS_TEST_TMP=$tmp_parent
per_script=${IT_SCRIPT_TIMEOUT:-300}

# Prints mount points and loop devices left under the test temp dirs.
leftovers() {
    awk -v p="$tmp_parent/mmapfs-it." 'index($2, p) == 1 { print "mount " $2 }' /proc/mounts
    losetup -l -n -O NAME,BACK-FILE 2>/dev/null |
        awk -v p="$tmp_parent/mmapfs-it." 'index($2, p) == 1 { print "loop " $1 }'
}

# Removes what leftovers() found: lazy unmounts, loop detaches.
remove_leftovers() {
    local kind what
    while read -r kind what; do
        case "$kind" in
        mount) fusermount3 -u -z "$what" 2>/dev/null || umount -l "$what" 2>/dev/null || true ;;
        loop) losetup -d "$what" 2>/dev/null || true ;;
        esac
    done < <(leftovers)
}

passed=0
failed=0
skipped=0
results=()
suite_start=$SECONDS
for script in "$here"/*.sh; do
    name=$(basename "$script")
    [ "$name" != "run.sh" ] || continue
    if [ -n "${IT_ONLY:-}" ] && [[ "$name" != *"$IT_ONLY"* ]]; then
        continue
    fi
    before=$(leftovers)
    start=$SECONDS
    rc=0
    timeout -k 20 "$per_script" bash "$script" "$build" </dev/null || rc=$?
    secs=$((SECONDS - start))
    after=$(leftovers)
    leaked=""
    if [ -n "$after" ] && [ "$after" != "$before" ]; then
        leaked=$(printf '%s' "$after" | tr '\n' ',')
        remove_leftovers
    fi
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
    line="$status $name ($note)"
    echo "$line"
    results+=("$line")
done

echo
echo "integration scripts (${build}, $((SECONDS - suite_start))s):"
for line in "${results[@]}"; do echo "  $line"; done
[ -n "$(leftovers)" ] || rmdir "$tmp_parent" 2>/dev/null || true
[ "$skipped" -eq 0 ] || echo "$skipped skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
