# shellcheck shell=bash
#
# tests/lib/common.sh — helpers for the integration tests (real mounts).
#
# Source it from a test script that runs under `set -euo pipefail`:
#
#   #!/usr/bin/env bash
#   set -euo pipefail
#   . "$(dirname "$0")/../lib/common.sh"
#   t_init "$@"                          # $1 = build dir (default: build)
#   img=$T_DIR/disk.img mnt=$T_DIR/mnt
#   make_image "$img" 1G                 # sparse image made by mkfs.mmapfs
#   mount_image "$img" "$mnt"            # mounted with build/mmapfs
#   check "write a file" dd if=/dev/zero of="$mnt/f" bs=1M count=1
#   ...
#   t_finish                              # unmounts, fsck -n every image, tally
#
# (The helpers change global state: call them directly, never inside $(...).)
#
# What it provides
#   t_init [BUILD]        temp dir $T_DIR, traps, binaries $MKFS $MMAPFS $FSCK $MSTAT
#   make_image IMG SIZE [mkfs args...]   new sparse image file (mkfs.mmapfs --sparse)
#   mkfs_target TARGET [mkfs args...]    mkfs.mmapfs -q -f TARGET (its whole size)
#   mount_image TARGET MNT [mmapfs args...]   mounts (daemonised) and checks it
#   unmount_fs MNT        fusermount3 -u, then waits until the daemon is gone
#   fsck_clean TARGET     asserts `fsck.mmapfs -n TARGET` exits 0
#   new_loop FILE VAR     attaches FILE to a loop device, its path in $VAR
#                         (detached again by the cleanup trap)
#   mount_other DIR ARGS...   mount ARGS... DIR (a tmpfs, a bind mount: not
#                         mmapfs); the cleanup trap unmounts it. Returns 1
#                         if mount fails
#   umount_first DIR...   the EXIT trap unmounts these (not mmapfs: ext4 of
#                         on_ext4, an overlay on mmapfs) before anything else
#   compile_c OUT SRC [CFLAGS...]   cc -O2 -Wall SRC into OUT (a test helper
#                         program); a failure ends the script
#   make_immutable FILE   chattr +i FILE; the cleanup trap undoes it.
#                         Returns 1 if the filesystem does not support it
#   check DESC CMD...     asserts CMD exits 0      (under `timeout`)
#   check_sh DESC 'SH' [ARG0 ARGS...]   asserts bash -c 'SH' ARG0... exits 0
#   check_fail DESC CMD...    asserts CMD exits non-zero (a timeout is a failure)
#   check_fail_sh DESC 'SH'
#   check_eq DESC EXPECTED ACTUAL
#   check_range DESC LOW HIGH VALUE
#   check_errno DESC EXPECT 'PYTHON'  runs tests/lib/errno_check.py: EXPECT is
#                         OK or an errno name, alternatives with '|' (EPERM|EACCES)
#   check_errno_as_nobody DESC EXPECT 'PYTHON'   the same as uid/gid 65534
#   wait_until DESC SECONDS 'SH'   polls until bash -c 'SH' succeeds
#   pass DESC / fail DESC [details] / skip DESC   record a result by hand
#   require_cmd CMD...    skips the whole script (exit 77) if CMD is missing
#   skip_script REASON    skips the whole script (exit 77)
#   as_nobody CMD...      runs CMD as uid/gid 65534 with no groups
#   "${AS_NOBODY[@]}"     the same as a command prefix, for check/check_fail
#   fs_used_bytes MNT / fs_size_bytes MNT / fs_avail_bytes MNT   from statfs
#   file_manifest DIR OUT / meta_manifest DIR OUT   checksums / metadata lists
#
# Every step that could hang runs under `timeout` ($STEP_TIMEOUT seconds,
# default 120). The EXIT trap always unmounts what the script mounted
# (falling back to fusermount3 -u -z), stops a daemon that does not exit
# (by its PID), detaches the loop devices it created and removes $T_DIR.
# t_finish prints "N passed, M failed" and exits 1 if anything failed.
# A script skipped by require_cmd exits 77; tests/integration/run.sh
# reports it as SKIP.

T_PASS=0
T_FAIL=0
T_SKIP=0
T_MOUNTS=()        # mount points made by mount_image, in order
T_IMAGES=()        # targets given to mount_image, checked by t_finish
declare -A T_DIRTY=()  # target -> 1 if mounted since its last fsck_clean
T_LOOPS=()         # loop devices made by new_loop
T_OTHER_MOUNTS=()  # mounts made by mount_other
T_UMOUNT_FIRST=()  # non-mmapfs mounts the EXIT trap undoes first (umount_first)
T_IMMUTABLE=()     # files made immutable by make_immutable
T_DIR=""
STEP_TIMEOUT=${STEP_TIMEOUT:-120}
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || echo python3)
ERRNO_CHECK="$T_ROOT/tests/lib/errno_check.py"
NOBODY_UID=65534
NOBODY_GID=65534

# ---- reporting --------------------------------------------------------------

# Prints a line to stderr prefixed with the script name.
t_log() {
    printf '[%s] %s\n' "${T_NAME:-test}" "$*" >&2
}

# Records a passed assertion.
pass() {
    T_PASS=$((T_PASS + 1))
    printf 'ok   %s\n' "$1"
}

# Records a failed assertion; further arguments are printed as details.
fail() {
    local desc=$1
    shift
    T_FAIL=$((T_FAIL + 1))
    printf 'FAIL %s\n' "$desc"
    local line
    for line in "$@"; do
        printf '       %s\n' "$line"
    done
}

# Records a skipped assertion with its reason.
skip() {
    T_SKIP=$((T_SKIP + 1))
    printf 'skip %s\n' "$1"
}

# results_from DESC TEXT : records each line of TEXT that a checker
# program printed as "ok   WHAT", "FAIL WHAT" or "skip WHAT" as a result
# named "DESC: WHAT", and shows its "info" lines.
results_from() {
    local desc=$1 line
    while IFS= read -r line; do
        case "$line" in
        "ok   "*) pass "$desc: ${line#ok   }" ;;
        "FAIL "*) fail "$desc: ${line#FAIL }" ;;
        "skip "*) skip "$desc: ${line#skip }" ;;
        info*) printf '     %s: %s\n' "$desc" "$line" ;;
        esac
    done <<<"$2"
}

# checker_run DESC CMD... : runs CMD, a checker program that prints "ok"
# and "FAIL" lines (tests/integration/tmpfile.py, btime.py), records them
# as results (results_from) and keeps them under DESC for checker_compare;
# an exit status other than 0 is a failure too.
CHECKER_LINES=""
checker_run() {
    local desc=$1
    shift
    _run "$@"
    results_from "$desc" "$T_OUT"
    [ "$T_RC" -eq 0 ] ||
        fail "$desc: $(basename "$1") exited $T_RC" "$(printf '%s\n' "$T_OUT" | tail -n 5)"
    CHECKER_LINES+="== $desc"$'\n'"$T_OUT"$'\n'
}

# checker_compare REF DESC : the ok/FAIL lines checker_run kept under DESC
# must be those it kept under REF (the reference, e.g. ext4; nothing is
# compared when REF has none, as when the reference was skipped).
checker_compare() {
    local ref desc
    ref=$(printf '%s' "$CHECKER_LINES" |
        awk -v d="$1" '/^== /{w=(substr($0, 4)==d)} w && /^(ok|FAIL) /' | sort)
    desc=$(printf '%s' "$CHECKER_LINES" |
        awk -v d="$2" '/^== /{w=(substr($0, 4)==d)} w && /^(ok|FAIL) /' | sort)
    [ -z "$ref" ] || check_eq "$2 gives the results $1 gives" "$ref" "$desc"
}

# Quotes a command line for messages.
_cmdline() {
    local out="" a
    for a in "$@"; do out+="$(printf '%q' "$a") "; done
    out=${out% }
    [ "${#out}" -le 400 ] || out="${out:0:400}..."
    printf '%s' "$out"
}

# Prints the last lines of a command's output, indented, for a failure.
_tail_output() {
    local text=$1
    [ -n "$text" ] || return 0
    printf '%s\n' "$text" | tail -n 15 | sed 's/^/       | /'
}

# Runs CMD under timeout with output captured; sets T_OUT and T_RC.
_run() {
    T_RC=0
    T_OUT=$(timeout -k 5 "$STEP_TIMEOUT" "$@" 2>&1) || T_RC=$?
}

# check DESC CMD... : CMD must exit 0 within $STEP_TIMEOUT seconds.
check() {
    local desc=$1
    shift
    _run "$@"
    if [ "$T_RC" -eq 0 ]; then
        pass "$desc"
        return 0
    fi
    local why="exit $T_RC"
    [ "$T_RC" -eq 124 ] && why="timed out after ${STEP_TIMEOUT}s"
    fail "$desc" "command: $(_cmdline "$@")" "expected: exit 0, got: $why"
    _tail_output "$T_OUT"
    return 0
}

# check_sh DESC 'shell code' [ARG0 ARGS...] : the bash snippet must exit 0;
# the extra arguments become its $0, $1, ...
check_sh() {
    check "$1" bash -o pipefail -c "$2" "${@:3}"
}

# check_fail DESC CMD... : CMD must fail (non-zero exit, but not a timeout).
check_fail() {
    local desc=$1
    shift
    _run "$@"
    if [ "$T_RC" -ne 0 ] && [ "$T_RC" -ne 124 ] && [ "$T_RC" -ne 137 ]; then
        pass "$desc"
        return 0
    fi
    local why="exit 0"
    [ "$T_RC" -eq 124 ] && why="timed out after ${STEP_TIMEOUT}s"
    fail "$desc" "command: $(_cmdline "$@")" "expected: failure, got: $why"
    _tail_output "$T_OUT"
    return 0
}

# check_fail_sh DESC 'shell code' [ARG0 ARGS...] : the bash snippet must fail.
check_fail_sh() {
    check_fail "$1" bash -o pipefail -c "$2" "${@:3}"
}

# check_eq DESC EXPECTED ACTUAL
check_eq() {
    if [ "$2" == "$3" ]; then
        pass "$1"
    else
        fail "$1" "expected: '$2'" "got:      '$3'"
    fi
    return 0
}

# check_range DESC LOW HIGH VALUE : LOW <= VALUE <= HIGH (integers).
check_range() {
    local desc=$1 low=$2 high=$3 value=$4
    if [[ "$value" =~ ^-?[0-9]+$ ]] && [ "$value" -ge "$low" ] && [ "$value" -le "$high" ]; then
        pass "$desc"
    else
        fail "$desc" "expected: $low <= value <= $high" "got:      '$value'"
    fi
    return 0
}

# check_errno DESC EXPECT 'python code' : see tests/lib/errno_check.py.
# $ERRNO_PRELUDE (if set) is put before the code, e.g. variable settings.
check_errno() {
    local desc=$1 expect=$2 code=$3
    _run "$PY" "$ERRNO_CHECK" "$expect" "${ERRNO_PRELUDE:-}$code"
    if [ "$T_RC" -eq 0 ]; then
        pass "$desc"
    else
        fail "$desc" "python: $code" "expected: $expect"
        _tail_output "$T_OUT"
    fi
    return 0
}

# check_errno_as_nobody DESC EXPECT 'python code' : as uid/gid 65534.
check_errno_as_nobody() {
    local desc=$1 expect=$2 code=$3
    _run setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups -- \
        "$PY" "$ERRNO_CHECK" "$expect" "${ERRNO_PRELUDE:-}$code"
    if [ "$T_RC" -eq 0 ]; then
        pass "$desc"
    else
        fail "$desc" "as uid $NOBODY_UID, python: $code" "expected: $expect"
        _tail_output "$T_OUT"
    fi
    return 0
}

# as_nobody CMD... : runs CMD as uid/gid 65534 without supplementary groups.
# For check/check_fail use the array: check DESC "${AS_NOBODY[@]}" CMD...
AS_NOBODY=(setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups --)
as_nobody() {
    "${AS_NOBODY[@]}" "$@"
}

# wait_until DESC SECONDS 'shell code' : polls (every 0.2 s) until the bash
# snippet succeeds; records a pass, or a failure after SECONDS.
wait_until() {
    local desc=$1 secs=$2 code=$3
    local deadline=$((SECONDS + secs))
    while true; do
        if timeout -k 5 "$STEP_TIMEOUT" bash -o pipefail -c "$code" >/dev/null 2>&1; then
            pass "$desc"
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            local out
            out=$(timeout -k 5 "$STEP_TIMEOUT" bash -o pipefail -x -c "$code" 2>&1 || true)
            fail "$desc" "condition still false after ${secs}s: $code"
            _tail_output "$out"
            return 0
        fi
        sleep 0.2
    done
}

# require_cmd CMD... : skips the whole script (exit 77) if a command is missing.
require_cmd() {
    local c
    for c in "$@"; do
        if ! command -v "$c" >/dev/null 2>&1; then
            printf 'SKIP: %s: required command "%s" is not installed\n' "${T_NAME:-test}" "$c"
            exit 77
        fi
    done
}

# skip_script REASON : skips the whole script (exit 77) with a reason.
skip_script() {
    printf 'SKIP: %s: %s\n' "${T_NAME:-test}" "$1"
    exit 77
}

# ---- setup and cleanup ----------------------------------------------------------

# t_init [BUILD] : resolves the binaries, makes $T_DIR, installs the traps.
t_init() {
    local build=${1:-${MMAPFS_BUILD:-build}}
    case "$build" in /*) ;; *) build="$T_ROOT/$build" ;; esac
    T_BUILD=$build
    T_NAME=${T_NAME:-$(basename "$0" .sh)}
    MKFS="$build/mkfs.mmapfs"
    MMAPFS="$build/mmapfs"
    FSCK="$build/fsck.mmapfs"
    MSTAT="$build/mmapfs-stat"
    require_cmd timeout fusermount3 mountpoint flock setpriv
    if [ "$(id -u)" != 0 ]; then
        skip_script "must run as root (mounts with allow_other, chown, loop devices)"
    fi
    local b
    for b in "$MKFS" "$MMAPFS" "$FSCK"; do
        if [ ! -x "$b" ]; then
            echo "FAIL $T_NAME: binary $b is missing (run make all)"
            echo "0 passed, 1 failed"
            exit 1
        fi
    done
    local tmp_parent=${MMAPFS_TEST_TMP:-/var/tmp}
    T_DIR=$(mktemp -d "$tmp_parent/mmapfs-it.$T_NAME.XXXXXX")
    chmod 0755 "$T_DIR"   # the tests that run as nobody must reach the mounts
    # a copy nobody can read even if the work tree is not world-readable
    install -m 0644 "$T_ROOT/tests/lib/errno_check.py" "$T_DIR/errno_check.py"
    ERRNO_CHECK="$T_DIR/errno_check.py"
    trap '_t_cleanup' EXIT
    trap 'echo "[$T_NAME] interrupted" >&2; exit 130' INT
    trap 'echo "[$T_NAME] terminated" >&2; exit 143' TERM HUP
    echo "== $T_NAME (build: $build, temp: $T_DIR)"
}

# Lists the PIDs of mmapfs daemons whose command line has the argument MNT.
_daemon_pids() {
    local mnt=$1 exe pid arg
    exe=$(readlink -f "$MMAPFS")
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$d/exe" -ef "$exe" ] || continue   # no fork per process (test builtin)
        while IFS= read -r -d '' arg; do
            if [ "$arg" == "$mnt" ]; then
                echo "$pid"
                break
            fi
        done <"$d/cmdline" 2>/dev/null || true
    done
}

# Waits up to SECONDS for the daemons of MNT to exit; returns 1 if they
# are still running afterwards.
_wait_daemon_gone() {
    local mnt=$1 secs=${2:-60}
    local deadline=$((SECONDS + secs))
    while [ -n "$(_daemon_pids "$mnt")" ]; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.1
    done
    return 0
}

# Removes MNT from the list of mounts the cleanup trap must undo.
_forget_mount() {
    local mnt=$1 i
    for i in "${!T_MOUNTS[@]}"; do
        [ "${T_MOUNTS[$i]}" != "$mnt" ] || unset 'T_MOUNTS[i]'
    done
    T_MOUNTS=("${T_MOUNTS[@]}")
}

# The EXIT trap: unmount everything, stop stuck daemons, detach loop
# devices, remove the temp dir (only if nothing is mounted under it).
_t_cleanup() {
    local rc=$? i mnt pid
    trap - EXIT INT TERM HUP
    for ((i = ${#T_MOUNTS[@]} - 1; i >= 0; i--)); do
        mnt=${T_MOUNTS[$i]}
        if mountpoint -q "$mnt" 2>/dev/null; then
            echo "[$T_NAME] cleanup: unmounting $mnt" >&2
            timeout -k 5 30 fusermount3 -u "$mnt" 2>/dev/null ||
                timeout -k 5 30 fusermount3 -u -z "$mnt" 2>/dev/null ||
                echo "[$T_NAME] cleanup: could not unmount $mnt" >&2
        fi
        if ! _wait_daemon_gone "$mnt" 30; then
            for pid in $(_daemon_pids "$mnt"); do
                echo "[$T_NAME] cleanup: daemon $pid for $mnt still running; SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
            done
        fi
    done
    for ((i = ${#T_LOOPS[@]} - 1; i >= 0; i--)); do
        losetup -d "${T_LOOPS[$i]}" 2>/dev/null || true
    done
    for i in "${T_IMMUTABLE[@]}"; do
        chattr -i "$i" 2>/dev/null || true
    done
    for ((i = ${#T_OTHER_MOUNTS[@]} - 1; i >= 0; i--)); do
        mnt=${T_OTHER_MOUNTS[$i]}
        if mountpoint -q "$mnt" 2>/dev/null; then
            timeout -k 5 30 umount "$mnt" 2>/dev/null || timeout -k 5 30 umount -l "$mnt" ||
                echo "[$T_NAME] cleanup: could not unmount $mnt" >&2
        fi
    done
    if [ -n "$T_DIR" ] && [ -d "$T_DIR" ]; then
        if grep -q " $T_DIR" /proc/mounts; then
            echo "[$T_NAME] cleanup: something is still mounted under $T_DIR; not removing it" >&2
        else
            rm -rf "$T_DIR"
        fi
    fi
    exit "$rc"
}

# make_image IMG SIZE [mkfs args...] : makes a new sparse image file IMG of
# SIZE (e.g. 1G) with mkfs.mmapfs. Exits the script on failure.
make_image() {
    local img=$1 size=$2
    shift 2
    if ! T_OUT=$(timeout -k 5 "$STEP_TIMEOUT" "$MKFS" -q -f --sparse -s "$size" "$@" "$img" 2>&1); then
        fail "mkfs.mmapfs -s $size $(basename "$img")" "command: $(_cmdline "$MKFS" -q -f --sparse -s "$size" "$@" "$img")"
        _tail_output "$T_OUT"
        t_finish
    fi
}

# mkfs_target TARGET [mkfs args...] : mkfs.mmapfs -q -f on an existing file
# or device, using its whole size. Exits the script on failure.
mkfs_target() {
    local target=$1
    shift
    if ! T_OUT=$(timeout -k 5 "$STEP_TIMEOUT" "$MKFS" -q -f "$@" "$target" 2>&1); then
        fail "mkfs.mmapfs $* $target" "command: $(_cmdline "$MKFS" -q -f "$@" "$target")"
        _tail_output "$T_OUT"
        t_finish
    fi
}

# it_opts_have OPT : true if MMAPFS_IT_OPTS (the options every mount_image
# adds, to run the suite in another configuration) holds OPT, so that a
# check of what only the default configuration does can skip, saying why.
it_opts_have() {
    case ",${MMAPFS_IT_OPTS:-}," in
        *",$1,"*) return 0 ;;
    esac
    return 1
}

# mount_image TARGET MNT [mmapfs args...] : mounts TARGET (image file or
# block device) on the directory MNT (created if missing) with build/mmapfs,
# which daemonises and returns when the mount is usable. Exits the script
# on failure. Remembered for the cleanup trap and for t_finish's fsck.
mount_image() {
    local target=$1 mnt=$2
    shift 2
    mkdir -p "$mnt"
    T_MOUNTS+=("$mnt")
    _remember_image "$target"
    T_DIRTY["$target"]=1
    # MMAPFS_IT_OPTS (e.g. "io=pread,nowriteback_cache") is added to every
    # mount, to run the whole suite in another configuration.
    [ -z "${MMAPFS_IT_OPTS:-}" ] || set -- "$@" -o "$MMAPFS_IT_OPTS"
    if ! T_OUT=$(timeout -k 5 60 "$MMAPFS" "$target" "$mnt" "$@" 2>&1 </dev/null); then
        fail "mount $target on $mnt" "command: $(_cmdline "$MMAPFS" "$target" "$mnt" "$@")"
        _tail_output "$T_OUT"
        t_finish
    fi
    if ! mountpoint -q "$mnt"; then
        fail "mount $target on $mnt" "command: $(_cmdline "$MMAPFS" "$target" "$mnt" "$@")" \
            "mmapfs exited 0 but $mnt is not a mount point"
        _tail_output "$T_OUT"
        t_finish
    fi
}

# mount_fg TARGET MNT LOG [mmapfs args...] : runs the daemon in the
# foreground (-f), in the background of this shell, output to LOG, and
# waits for the mount; sets T_DPID to its PID (for kill -9). Returns 1
# (after recording a failure with LOG's tail) if no mount appears.
mount_fg() {
    local target=$1 mnt=$2 log=$3
    shift 3
    mkdir -p "$mnt"
    T_MOUNTS+=("$mnt")
    _remember_image "$target"
    T_DIRTY["$target"]=1
    "$MMAPFS" "$target" "$mnt" -f "$@" >"$log" 2>&1 </dev/null &
    T_DPID=$!
    for _ in $(seq 200); do
        mountpoint -q "$mnt" && break
        kill -0 "$T_DPID" 2>/dev/null || break
        sleep 0.05
    done
    mountpoint -q "$mnt" && return 0
    fail "mount $(basename "$target") on $mnt (daemon in the foreground)" "$(tail -5 "$log")"
    return 1
}

# crash_daemon PID MNT TARGET DESC : kill -9 of the daemon PID that serves
# MNT (a process crash), fusermount3 -u of the dead mount, then
# fsck.mmapfs -n TARGET (it replays the journal) must be clean.
crash_daemon() {
    local pid=$1 mnt=$2 target=$3 desc=$4 i
    kill -KILL "$pid"
    # A daemon thread waiting in the kernel for a write-back that only its
    # dead siblings could serve (rename over a file, SEEK_DATA) keeps the
    # process in state D with /dev/fuse open: umount -f aborts the
    # connection (docs/CRASH.md, "A killed daemon that does not go away").
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        t_log "daemon $pid alive 5 s after SIGKILL: umount -f $mnt"
        timeout 30 umount -f "$mnt" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    if timeout 30 fusermount3 -u "$mnt" 2>/dev/null || timeout 30 fusermount3 -u -z "$mnt"; then
        pass "$desc: fusermount3 -u of the dead mount"
    else
        fail "$desc: fusermount3 -u of the dead mount"
    fi
    _forget_mount "$mnt"
    check "$desc: fsck.mmapfs -n after the kill (replays the journal) is clean" "$FSCK" -n "$target"
}

# Adds TARGET to the list of images t_finish checks, once.
_remember_image() {
    local t
    for t in "${T_IMAGES[@]}"; do [ "$t" != "$1" ] || return 0; done
    T_IMAGES+=("$1")
}

# unmount_fs MNT : fusermount3 -u MNT, then waits for the daemon to finish
# (the clean unmount is written by the daemon after the kernel lets go).
# Records a failure if either step fails; returns 1 then.
unmount_fs() {
    local mnt=$1
    if ! T_OUT=$(timeout -k 5 60 fusermount3 -u "$mnt" 2>&1); then
        fail "unmount $mnt" "command: fusermount3 -u $mnt"
        _tail_output "$T_OUT"
        return 1
    fi
    if ! _wait_daemon_gone "$mnt" 60; then
        fail "unmount $mnt" "the mmapfs daemon (pid $(_daemon_pids "$mnt" | tr '\n' ' ')) did not exit within 60 s of fusermount3 -u"
        return 1
    fi
    _forget_mount "$mnt"
    return 0
}

# fsck_clean TARGET [DESC] : asserts that fsck.mmapfs -n TARGET exits 0.
fsck_clean() {
    local target=$1 desc=${2:-"fsck.mmapfs -n $(basename "$1") is clean (exit 0)"}
    _run "$FSCK" -n "$target"
    if [ "$T_RC" -eq 0 ]; then
        pass "$desc"
    else
        fail "$desc" "command: $(_cmdline "$FSCK" -n "$target")" "expected: exit 0, got: exit $T_RC"
        _tail_output "$T_OUT"
    fi
    T_DIRTY["$target"]=0
    return 0
}

# new_loop FILE VAR : attaches FILE to a free loop device and stores its
# path in the variable VAR; the cleanup trap detaches it. Returns 1 if
# losetup does not work here.
new_loop() {
    local _nl_file=$1 _nl_dev
    _nl_dev=$(timeout -k 5 30 losetup --find --show "$_nl_file" 2>/dev/null) || return 1
    T_LOOPS+=("$_nl_dev")
    [ -b "$_nl_dev" ] || return 1
    printf -v "$2" '%s' "$_nl_dev"
}

# on_ext4 DIR CMD... : the ext4 reference of a comparison test. Makes a
# 64 MiB ext4 (EXT4_SIZE, a truncate size, when set; from 512M up mkfs.ext4
# picks 4 KiB blocks) on a loop device, mounts it on DIR, runs CMD... (a function
# that records its own results), unmounts and detaches it. Skips with the
# reason where mkfs.ext4, losetup or the mount is not available.
on_ext4() {
    local dir=$1 dev=""
    shift
    if ! command -v mkfs.ext4 >/dev/null 2>&1 || ! command -v losetup >/dev/null 2>&1; then
        skip "ext4 reference (mkfs.ext4 or losetup missing)"
        return 0
    fi
    truncate -s "${EXT4_SIZE:-64M}" "$T_DIR/ext4.img"
    if ! new_loop "$T_DIR/ext4.img" dev; then
        skip "ext4 reference (losetup --find --show does not work here)"
        return 0
    fi
    if ! timeout -k 5 60 mkfs.ext4 -q -F "$dev" >/dev/null 2>&1; then
        fail "mkfs.ext4 $dev"
    else
        mkdir -p "$dir"
        if timeout -k 5 30 mount -t ext4 "$dev" "$dir"; then
            "$@"
            check "umount ext4" timeout -k 5 30 umount "$dir"
        else
            skip "ext4 reference (mount -t ext4 failed)"
        fi
    fi
    drop_loop "$dev" || fail "losetup -d $dev"
}

# lockstep_vs_ext4 PY FIRST NSEEDS STEPS STEP_DIVISOR [ARGS...] : runs the
# seeded random operations of PY (tests/lib/posix_random.py,
# data_random.py), seeds FIRST.. (NSEEDS of them), STEPS each, on an ext4
# reference and a fresh mmapfs image in lockstep, once with the writeback
# cache and once without; the image is checked clean after each. ARGS go
# to PY. STEP_TIMEOUT allows one second per STEP_DIVISOR steps (+120 s).
lockstep_vs_ext4() {
    local py=$1 first=$2 nseeds=$3 steps=$4 div=$5
    shift 5
    STEP_TIMEOUT=$((120 + nseeds * steps / div))
    LOCKSTEP=("$py" "$(seq -s, "$first" $((first + nseeds - 1)))" "$steps" "$@")
    # 600 MiB: mkfs.ext4 takes 4 KiB blocks from 512 MiB on (sparse file)
    EXT4_SIZE=600M on_ext4 "$T_DIR/ext4" _lockstep_both
}
_lockstep_both() {
    check_eq "ext4 reference has 4 KiB blocks" 4096 "$(stat -f -c %S "$T_DIR/ext4")"
    _lockstep_on wb allow_other
    _lockstep_on nowb allow_other,nowriteback_cache
}
_lockstep_on() {
    local name=$1 opts=$2 img=$T_DIR/$1.img mnt=$T_DIR/mnt-$1
    local py=${LOCKSTEP[0]} seeds=${LOCKSTEP[1]} steps=${LOCKSTEP[2]}
    make_image "$img" 256M
    mount_image "$img" "$mnt" -o "$opts"
    # the script's own remounts take the options mount_image gave
    opts=$opts${MMAPFS_IT_OPTS:+,$MMAPFS_IT_OPTS}
    check "$name: seeds $seeds, $steps steps each, as on ext4" \
        "$PY" "$py" --ref "$T_DIR/ext4" --mnt "$mnt" --image "$img" --mmapfs "$MMAPFS" \
        --fsck "$FSCK" --opts "$opts" --seeds "$seeds" --steps "$steps" "${LOCKSTEP[@]:3}"
    printf '%s\n' "$T_OUT"
    unmount_fs "$mnt" && fsck_clean "$img"
}

# umount_first DIR... : the EXIT trap unmounts DIR... (in the order given,
# lazily if need be) before the common cleanup: an ext4 on a loop device
# made by on_ext4, or an overlay whose upper layer is on mmapfs.
umount_first() {
    T_UMOUNT_FIRST=("$@")
    trap '_umount_first_cleanup $?' EXIT
}

# The EXIT trap of umount_first: RC is the script's exit status, which
# _t_cleanup reads from $? (set -e is turned off first, or the (exit RC)
# would end the trap).
_umount_first_cleanup() {
    local rc=$1 dir
    set +e
    for dir in "${T_UMOUNT_FIRST[@]}"; do
        if mountpoint -q "$dir" 2>/dev/null; then
            timeout -k 5 30 umount "$dir" 2>/dev/null || timeout -k 5 30 umount -l "$dir" 2>/dev/null
        fi
    done
    (exit "$rc")
    _t_cleanup
}

# compile_c OUT SRC [CFLAGS...] : compiles a test's helper program with cc;
# records a failure and ends the script if it does not compile.
compile_c() {
    local out=$1 src=$2
    shift 2
    if ! T_OUT=$(cc -O2 -Wall "$@" -o "$out" "$src" 2>&1); then
        fail "compile $(basename "$src")" "command: $(_cmdline cc -O2 -Wall "$@" -o "$out" "$src")"
        _tail_output "$T_OUT"
        t_finish
    fi
}

# mount_other DIR ARGS... : mount ARGS... DIR (not mmapfs: a tmpfs, a bind
# mount); the cleanup trap unmounts it. Returns 1 if mount fails.
mount_other() {
    local dir=$1
    shift
    mkdir -p "$dir"
    timeout -k 5 30 mount "$@" "$dir" || return 1
    T_OTHER_MOUNTS+=("$dir")
}

# make_immutable FILE : chattr +i FILE; the cleanup trap undoes it (a
# directory holding an immutable file cannot be removed). Returns 1 if the
# filesystem does not support it.
make_immutable() {
    chattr +i "$1" 2>/dev/null || return 1
    T_IMMUTABLE+=("$1")
}

# Detaches a loop device made by new_loop and forgets it.
drop_loop() {
    local dev=$1 i
    losetup -d "$dev" || return 1
    for i in "${!T_LOOPS[@]}"; do
        [ "${T_LOOPS[$i]}" != "$dev" ] || unset 'T_LOOPS[i]'
    done
    T_LOOPS=("${T_LOOPS[@]}")
}

# t_finish : unmounts what is still mounted, runs fsck.mmapfs -n on every
# image mounted since its last fsck_clean, prints the tally and exits
# (1 if anything failed).
t_finish() {
    local mnt target unmounted=1
    for mnt in "${T_MOUNTS[@]}"; do
        if mountpoint -q "$mnt" 2>/dev/null; then
            unmount_fs "$mnt" || unmounted=0
        fi
    done
    if [ "$unmounted" -eq 1 ]; then
        for target in "${T_IMAGES[@]}"; do
            if [ "${T_DIRTY[$target]:-0}" -eq 1 ] && [ -e "$target" ]; then
                fsck_clean "$target" "final fsck.mmapfs -n $(basename "$target") is clean"
            fi
        done
    fi
    [ "$T_SKIP" -eq 0 ] || echo "$T_SKIP skipped"
    echo "$T_PASS passed, $T_FAIL failed"
    [ "$T_FAIL" -eq 0 ] && exit 0
    exit 1
}

# ---- measurements ---------------------------------------------------------------

# fs_size_bytes MNT : total size from statfs (f_blocks * f_frsize).
fs_size_bytes() {
    local s b
    read -r s b _ _ < <(timeout 30 stat -f -c '%S %b %f %a' "$1")
    echo $((s * b))
}

# fs_used_bytes MNT : (f_blocks - f_bfree) * f_frsize.
fs_used_bytes() {
    local s b f
    read -r s b f _ < <(timeout 30 stat -f -c '%S %b %f %a' "$1")
    echo $((s * (b - f)))
}

# fs_avail_bytes MNT : f_bavail * f_frsize.
fs_avail_bytes() {
    local s a
    read -r s _ _ a < <(timeout 30 stat -f -c '%S %b %f %a' "$1")
    echo $((s * a))
}

# file_manifest DIR OUT : sha256sum of every regular file under DIR, paths
# relative to DIR, sorted. Check later with (cd DIR && sha256sum -c OUT).
file_manifest() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum) >"$2"
}

# meta_manifest DIR OUT : type, mode, owner, size (not for directories),
# link count, mtime in ns and symlink target of every entry under DIR.
meta_manifest() {
    (cd "$1" && find . -printf '%p|%y|%m|%U|%G|%n|%T@|%l|' -a \
        \( -type d -printf '-\n' -o -printf '%s\n' \) | LC_ALL=C sort) >"$2"
}
