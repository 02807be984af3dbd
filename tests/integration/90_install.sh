#!/usr/bin/env bash
#
# tests/integration/90_install.sh [BUILD] — installing mmapfs like any Linux
# filesystem: make install / make uninstall and their manifest, the
# installed engine library (header, libmmio.a, pkg-config), the man pages,
# the mount helper (mount -t mmapfs, an fstab line), mkfs -t and fsck -t,
# and mmapfs-stat --json / --prometheus / -w under 8 parallel
# write+fsync loops.
#
# 1. make install DESTDIR=STAGE: every file is in the manifest with its
#    checksum and nothing else is in STAGE; a program including
#    <mmapfs/mmio.h> is built with pkg-config against STAGE and runs; every
#    man page renders without warnings; make uninstall removes exactly what
#    the manifest lists (a foreign file stays, a changed file is kept).
# 2. make install into the system paths (PREFIX=/usr/local, mount helper in
#    /sbin), inside a private mount namespace whose /usr/local and /sbin are
#    overlays over the real ones: mount(8), mkfs(8), fsck(8), man and
#    pkg-config find the installed files where they would on the system,
#    while the real system is never changed and concurrent runs do not
#    collide. After make uninstall the overlays hold no file: install plus
#    uninstall changed nothing else.
# 3. systemd: only if systemd is PID 1, the example .mount unit of
#    mount-scripts/ (otherwise skipped, with the reason).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd make cc pkg-config man unshare sha256sum mount umount mkfs fsck

STAGE=$T_DIR/stage
SYSMNT=$T_DIR/sysmnt
MAKE=(make -s -C "$T_ROOT" B="$T_BUILD")
VERSION=$(sed -n 's/^#define MMAPFS_VERSION_STRING "\(.*\)"$/\1/p' "$T_ROOT/src/fuse/version_i.h")
export T_ROOT T_BUILD T_DIR STAGE SYSMNT VERSION PY

# Daemons serving SYSMNT in the namespace of part 2 are invisible to the
# mount cleanup of common.sh; if that part was killed, stop them by PID.
UNIT_FILE=""         # part 3: the unit it wrote, and whether it installed
SYSTEM_INSTALLED=0   # into the real system (undone here if it failed)
_install_cleanup() {
    local rc=$? d pid n
    set +e        # (exit "$rc") below must not end the trap early
    if [ -n "$UNIT_FILE" ]; then
        systemctl stop "$(basename "$UNIT_FILE")" 2>/dev/null
        rm -f "$UNIT_FILE"
        systemctl daemon-reload 2>/dev/null
    fi
    if [ "$SYSTEM_INSTALLED" -eq 1 ] && [ -e /usr/local/share/mmapfs/install-manifest ]; then
        "${MAKE[@]}" uninstall >/dev/null
    fi
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        [ "$(basename "$(readlink "$d/exe" 2>/dev/null)")" == mmapfs ] || continue
        tr '\0' '\n' <"$d/cmdline" 2>/dev/null | grep -qxF "$SYSMNT" || continue
        echo "[$T_NAME] cleanup: stopping daemon $pid of $SYSMNT" >&2
        kill -TERM "$pid" 2>/dev/null || true
        for n in $(seq 50); do [ -d "$d" ] || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    (exit "$rc")
    _t_cleanup
}
trap _install_cleanup EXIT

# ---- 1. make install DESTDIR=STAGE --------------------------------------------------------------
MANIFEST_FILE=$STAGE/usr/local/share/mmapfs/install-manifest
export MANIFEST_FILE
check "make install DESTDIR=STAGE" "${MAKE[@]}" install DESTDIR="$STAGE"
check_sh "the manifest exists" '[ -s "$MANIFEST_FILE" ]'
check_sh "programs, library, header, pkg-config file, man pages and mount helper installed" '
    for f in usr/local/sbin/mmapfs usr/local/sbin/mkfs.mmapfs usr/local/sbin/fsck.mmapfs \
        usr/local/sbin/mmapfs-stat usr/local/sbin/mmapfs-mount-all usr/local/lib/libmmio.a \
        usr/local/sbin/mmapfs-resize usr/local/sbin/mmapfs-trim \
        usr/local/share/man/man8/mmapfs-resize.8 usr/local/share/man/man8/mmapfs-trim.8 \
        usr/local/include/mmapfs/mmio.h usr/local/lib/pkgconfig/mmio.pc \
        usr/local/share/man/man3/mmio.3 usr/local/share/man/man8/mmapfs.8 \
        usr/local/share/man/man8/mount.mmapfs.8 usr/local/share/man/man8/mmapfs-stat.8 \
        sbin/mount.mmapfs; do
        [ -f "$STAGE/$f" ] || { echo "missing $f"; exit 1; }
    done
    [ -x "$STAGE/sbin/mount.mmapfs" ] && [ -x "$STAGE/usr/local/sbin/mmapfs" ]'
check_sh "the manifest lists exactly the files in STAGE" '
    diff <(awk -F "\t" "\$1 == \"f\" || \$1 == \"m\" { print \$3 }" "$MANIFEST_FILE" | sort) \
         <(cd "$STAGE" && find . ! -type d | sed "s|^\.||" | sort)'
check_sh "the manifest lists exactly the directories in STAGE" '
    diff <(awk -F "\t" "\$1 == \"d\" { print \$3 }" "$MANIFEST_FILE" | sort) \
         <(cd "$STAGE" && find . -mindepth 1 -type d | sed "s|^\.||" | sort)'
check_sh "the manifest checksums match the installed files" '
    awk -F "\t" -v s="$STAGE" "\$1 == \"f\" { print \$2 \"  \" s \$3 }" "$MANIFEST_FILE" | sha256sum --quiet -c'
check_sh "mount.mmapfs runs the installed daemon by its PREFIX path, not the staging path" \
    'grep -qx "MMAPFS=/usr/local/sbin/mmapfs" "$STAGE/sbin/mount.mmapfs"'

# the engine from outside, through the installed header and pkg-config
export PKG_CONFIG_PATH=$STAGE/usr/local/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$STAGE
check_eq "pkg-config --modversion mmio" "$VERSION" "$(pkg-config --modversion mmio 2>&1)"
check_sh "pkg-config --cflags --libs mmio point into the staged tree" \
    'out=$(pkg-config --cflags --libs mmio) && grep -qF -- "-I$STAGE/usr/local/include" <<<"$out" && grep -qF -- "-lmmio" <<<"$out"'
mkdir -p "$T_DIR/outside"
cp "$T_ROOT/tests/link/mmio_outside.c" "$T_DIR/outside/prog.c"
check_sh "a program including <mmapfs/mmio.h> builds with pkg-config flags only" \
    'cd "$T_DIR/outside" && cc -std=gnu11 -Wall -Wextra -Werror $(pkg-config --cflags mmio) prog.c -o prog $(pkg-config --libs mmio)'
check "and runs (writes, syncs, reads back through libmmio)" "$T_DIR/outside/prog"
unset PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR

# man pages: the installed ones are the tree's
for page in "$STAGE"/usr/local/share/man/man*/*; do
    check_sh "man --warnings -l $(basename "$page"): no warnings" \
        'err=$(MANWIDTH=80 man --warnings -l "$0" 2>&1 >/dev/null); [ -z "$err" ] || { echo "$err"; exit 1; }' "$page"
done
check_sh "every page of docs/man is installed" \
    'for p in "$T_ROOT"/docs/man/*.[0-9]; do n=$(basename "$p"); cmp "$p" "$STAGE/usr/local/share/man/man${n##*.}/$n" || exit 1; done'

# mmapfs-stat's option rules (before it looks at the mount point)
for bad in "--json --prometheus" "-w 1 --prometheus" "-c 2" "-w 0" "-w x" "-w 1 -c 0"; do
    _run "$MSTAT" $bad "$T_DIR"
    check_eq "mmapfs-stat $bad: usage error (exit 2)" 2 "$T_RC"
done
check_fail "mmapfs-stat --json on a directory that is not a mount" "$MSTAT" --json "$T_DIR"

cp "$MANIFEST_FILE" "$T_DIR/manifest.1"
check "make install again (overwrites)" "${MAKE[@]}" install DESTDIR="$STAGE"
check "the second install writes the same manifest" cmp "$T_DIR/manifest.1" "$MANIFEST_FILE"

echo foreign >"$STAGE/usr/local/sbin/not-mmapfs"
check "make uninstall DESTDIR=STAGE" "${MAKE[@]}" uninstall DESTDIR="$STAGE"
check_sh "nothing listed in the manifest is left" '
    awk -F "\t" "\$1 != \"d\" && /^[dfm]\t/ { print \$3 }" "$T_DIR/manifest.1" |
        while IFS= read -r p; do [ ! -e "$STAGE$p" ] || { echo "left: $p"; exit 1; }; done'
check_eq "only the foreign file and its directories are left" \
    "/usr /usr/local /usr/local/sbin /usr/local/sbin/not-mmapfs" \
    "$(cd "$STAGE" && find . -mindepth 1 | sed 's|^\.||' | sort | tr '\n' ' ' | sed 's/ $//')"
rm -f "$STAGE/usr/local/sbin/not-mmapfs"

check "install, to test a changed file" "${MAKE[@]}" install DESTDIR="$STAGE"
echo "local edit" >>"$STAGE/usr/local/share/doc/mmapfs/examples/fstab.example"
check_fail "make uninstall fails when an installed file was changed" \
    "${MAKE[@]}" uninstall DESTDIR="$STAGE"
check_sh "the changed file is kept, everything else removed, the manifest lists it" '
    [ -f "$STAGE/usr/local/share/doc/mmapfs/examples/fstab.example" ] &&
    [ ! -e "$STAGE/usr/local/sbin/mmapfs" ] && [ ! -e "$STAGE/sbin/mount.mmapfs" ] &&
    [ "$(grep -c "^f" "$MANIFEST_FILE")" -eq 1 ] &&
    grep -q "examples/fstab.example$" "$MANIFEST_FILE"'
rm -rf "$STAGE"

# ---- 2. the system paths, in a mount namespace over overlays -------------------------------------
cat >"$T_DIR/ns.sh" <<'EOF'
# Runs in a private mount namespace (see 90_install.sh, part 2).
set -u
ns_dir=$T_DIR
. "$T_ROOT/tests/lib/common.sh"      # (resets T_DIR)
T_DIR=$ns_dir
T_NAME=90_install/system
case "$T_DIR" in /?*/*) ;; *) echo "ns.sh: bad T_DIR '$T_DIR'"; exit 4 ;; esac
mkdir -p "$SYSMNT"
MMAPFS=/usr/local/sbin/mmapfs        # for _daemon_pids
IMG=$T_DIR/sys.img
export IMG
WRITERS=()
STOP=$T_DIR/stop-writers

ns_cleanup() {
    local p
    touch "$STOP"
    for p in "${WRITERS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${WRITERS[@]}"; do wait "$p" 2>/dev/null || true; done
    if mountpoint -q "$SYSMNT"; then
        umount "$SYSMNT" 2>/dev/null || umount -l "$SYSMNT" 2>/dev/null || true
    fi
    _wait_daemon_gone "$SYSMNT" 30 || for p in $(_daemon_pids "$SYSMNT"); do kill -KILL "$p"; done
    echo "$T_PASS $T_FAIL $T_SKIP" >"$T_DIR/ns.counts"
}
trap ns_cleanup EXIT

# Unmounts SYSMNT with umount(8) and waits for the daemon to finish.
ns_umount() {
    check "umount DIR ($1)" umount "$SYSMNT"
    if _wait_daemon_gone "$SYSMNT" 60; then pass "its daemon exits"; else fail "its daemon exits"; fi
}

# The overlays: writes go to upper directories under T_DIR.
sbin=$(readlink -f /sbin)
for d in /usr/local "$sbin"; do
    o=$T_DIR/ovl$(echo "$d" | tr / _)
    mkdir -p "$o/upper" "$o/work"
    if ! mount -t overlay overlay -o "lowerdir=$d,upperdir=$o/upper,workdir=$o/work" "$d"; then
        echo "overlay on $d failed"
        exit 3
    fi
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

check "make install (PREFIX=/usr/local, mount helper in /sbin)" make -s -C "$T_ROOT" B="$T_BUILD" install
M=/usr/local/share/mmapfs/install-manifest
cp "$M" "$T_DIR/sys.manifest"
check_sh "mount.mmapfs is in /sbin, where mount(8) looks" '[ -x /sbin/mount.mmapfs ]'

# the installed header and library, found without any path given
check_eq "pkg-config finds mmio in /usr/local" "$VERSION" "$(pkg-config --modversion mmio 2>&1)"
check_sh "cc prog.c \$(pkg-config --cflags --libs mmio) builds and runs" \
    'cd "$T_DIR/outside" && cc -std=gnu11 -Wall -Wextra -Werror prog.c -o prog2 $(pkg-config --cflags --libs mmio) && ./prog2'
check_eq "man -w mmio finds mmio(3)" /usr/local/share/man/man3/mmio.3 \
    "$(man -w 3 mmio 2>&1 | sed 's|^/usr/local/man/|/usr/local/share/man/|')"
check_sh "man -w mount.mmapfs finds the page" 'man -w mount.mmapfs | grep -q "/man8/mount.mmapfs.8"'

# mkfs(8), mount(8), fsck(8) by type
check "mkfs -t mmapfs" mkfs -t mmapfs -q --sparse -s 512M "$IMG"
check "mount -t mmapfs IMG DIR" mount -t mmapfs "$IMG" "$SYSMNT"
check_eq "mounted as type fuse.mmapfs from IMG" "$IMG $SYSMNT fuse.mmapfs" \
    "$(awk -v m="$SYSMNT" '$2 == m { print $1, $2, $3 }' /proc/self/mounts)"
check_sh "write a file" 'echo mount-t >"$SYSMNT/hello" && sync "$SYSMNT/hello"'

# mmapfs-stat, installed
check_sh "mmapfs-stat --json parses (python3 -m json.tool)" \
    'mmapfs-stat --json "$SYSMNT" | "$PY" -m json.tool >/dev/null'
check_sh "mmapfs-stat --json: the mount point, and every value a number" \
    'mmapfs-stat --json "$SYSMNT" | "$PY" -c "
import json, sys
d = json.load(sys.stdin)
m = d[\"metrics\"]
assert d[\"mountpoint\"] == sys.argv[1], d[\"mountpoint\"]
assert len(m) > 20 and \"fs_fsyncs\" in m and \"mmio_syncs\" in m, sorted(m)
bad = [k for k, v in m.items() if type(v) not in (int, float)]
assert not bad, bad
" "$SYSMNT"'
check_sh "mmapfs-stat text lines are the --json metrics" \
    'diff <(mmapfs-stat "$SYSMNT" | cut -d" " -f1 | grep -v "^fuse_req_") \
          <(mmapfs-stat --json "$SYSMNT" | "$PY" -c "import json,sys; print(\"\n\".join(k for k in json.load(sys.stdin)[\"metrics\"] if not k.startswith(\"fuse_req_\")))")'
check_sh "mmapfs-stat --prometheus: # HELP and # TYPE before every family, units in the names" \
    'mmapfs-stat --prometheus "$SYSMNT" | "$PY" -c "
import re, sys
typed, helped, samples = {}, set(), 0
for line in sys.stdin:
    line = line.rstrip(\"\n\")
    if line.startswith(\"# HELP \"):
        helped.add(line.split()[2]); continue
    if line.startswith(\"# TYPE \"):
        _, _, name, kind = line.split(); typed[name] = kind; continue
    mt = re.fullmatch(r\"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (-?[0-9.]+(e[-+]?[0-9]+)?)\", line)
    assert mt, line
    name = mt.group(1); samples += 1
    assert name in typed and name in helped, \"no HELP/TYPE before \" + name
    assert \"mountpoint=\\\"\" in mt.group(2), line
    assert not name.endswith(\"_us\"), \"unit not in base units: \" + name
    assert typed[name] != \"counter\" or name.endswith(\"_total\"), \"counter without _total: \" + name
for want in (\"mmapfs_mmio_sync_seconds_total\", \"mmapfs_fs_fsyncs_total\", \"mmapfs_mmio_write_bytes_total\",
             \"mmapfs_fs_blocks_free\", \"mmapfs_fuse_requests_total\"):
    assert want in typed, \"missing \" + want
assert samples > 20
"'

# 8 parallel write+fsync loops: the counters move, and group commit
# shares device syncs among the fsyncs
cat >"$T_DIR/writer.py" <<'PYEOF'
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
buf = os.urandom(4096)
end = time.monotonic() + 60
while not os.path.exists(stop) and time.monotonic() < end:
    os.write(fd, buf)
    os.fsync(fd)
os.close(fd)
PYEOF
counters() {
    mmapfs-stat --json "$SYSMNT" | "$PY" -c 'import json, sys
m = json.load(sys.stdin)["metrics"]
print(m["fs_fsyncs"], m["mmio_syncs"], m["jnl_commits"], m["fs_write_bytes"])'
}
rm -f "$STOP"
for i in 1 2 3 4 5 6 7 8; do
    "$PY" "$T_DIR/writer.py" "$SYSMNT/w$i" "$STOP" &
    WRITERS+=($!)
done
wait_until "the 8 writers are running (fsyncs counted)" 60 \
    '[ "$(mmapfs-stat --json "$SYSMNT" | "$PY" -c "import json,sys; print(json.load(sys.stdin)[\"metrics\"][\"fs_fsyncs\"])")" -gt 100 ]'
read -r f0 s0 c0 b0 < <(counters)
check_sh "mmapfs-stat -w 1 -c 3: a header and 3 lines of rates, fsyncs in each" \
    'out=$(mmapfs-stat -w 1 -c 3 "$SYSMNT") && echo "$out" &&
     [ "$(echo "$out" | wc -l)" -eq 4 ] && head -1 <<<"$out" | grep -q "fsync/s.*sync/fsync.*free MiB" &&
     tail -n 3 <<<"$out" | awk "NF != 7 || \$1 <= 0 { exit 1 }"'
check_sh "mmapfs-stat -w 0.5 -c 2 --json: one JSON object per line, rates as numbers" \
    'mmapfs-stat -w 0.5 -c 2 --json "$SYSMNT" | "$PY" -c "
import json, sys
lines = sys.stdin.read().splitlines()
assert len(lines) == 2, lines
for l in lines:
    d = json.loads(l)
    assert d[\"fsyncs_per_second\"] > 0 and d[\"device_syncs_per_second\"] >= 0, d
    assert 0.3 < d[\"interval_seconds\"] < 5 and d[\"free_bytes\"] > 0, d
"'
read -r f1 s1 c1 b1 < <(counters)
touch "$STOP"
for p in "${WRITERS[@]}"; do wait "$p" || true; done
WRITERS=()
echo "while writing: fsyncs $f0 -> $f1, device syncs $s0 -> $s1, commits $c0 -> $c1, bytes written $b0 -> $b1"
check_range "fsyncs increased while the loops ran" 1 999999999 $((f1 - f0))
check_range "commits increased" 1 999999999 $((c1 - c0))
check_range "bytes written increased" 1 999999999999 $((b1 - b0))
check_range "device syncs fewer than fsyncs (shared by group commit)" 0 $((f1 - f0 - 1)) $((s1 - s0))
ns_umount "mount -t mmapfs"
check "fsck -t mmapfs -n IMG is clean" fsck -t mmapfs -n "$IMG"

# an fstab line, from a temporary fstab (the real /etc/fstab is not read)
printf '%s %s mmapfs defaults,noatime,commit=2 0 0\n' "$IMG" "$SYSMNT" >"$T_DIR/fstab"
check "mount -T TMPFSTAB DIR (type mmapfs)" mount -T "$T_DIR/fstab" "$SYSMNT"
check_sh "mounted from the fstab line, with its noatime" \
    'awk -v m="$SYSMNT" -v i="$IMG" "\$2 == m && \$1 == i && \$3 == \"fuse.mmapfs\" && \$4 ~ /(^|,)noatime(,|$)/ { f = 1 } END { exit !f }" /proc/self/mounts'
check_eq "the file written before is there" mount-t "$(cat "$SYSMNT/hello" 2>&1)"
ns_umount "fstab"

check "mount -t fuse.mmapfs IMG DIR (mount.fuse3) still works" mount -t fuse.mmapfs "$IMG" "$SYSMNT"
check_eq "mounted through mount.fuse3" "$IMG fuse.mmapfs" \
    "$(awk -v m="$SYSMNT" '$2 == m { print $1, $3 }' /proc/self/mounts)"
ns_umount "fuse.mmapfs"

# the helper's own rules
check "mount.mmapfs -f (fake) exits 0" /sbin/mount.mmapfs "$IMG" "$SYSMNT" -f -o rw
check_fail_sh "and mounts nothing" 'mountpoint -q "$SYSMNT"'
_run /sbin/mount.mmapfs "$IMG"
check_eq "mount.mmapfs without a mount point: exit 1 (usage)" 1 "$T_RC"
_run /sbin/mount.mmapfs "$T_DIR/no-such.img" "$SYSMNT"
check_eq "mount.mmapfs of a missing image: exit 32 (mount failure)" 32 "$T_RC"
check "fsck -t mmapfs -n IMG is clean at the end" fsck -t mmapfs -n "$IMG"

# uninstall: nothing of the manifest is left, nothing else changed
check "make uninstall" make -s -C "$T_ROOT" B="$T_BUILD" uninstall
check_sh "nothing listed in the manifest is left" '
    awk -F "\t" "\$1 != \"d\" && /^[dfm]\t/ { print \$3 }" "$T_DIR/sys.manifest" |
        while IFS= read -r p; do [ ! -e "$p" ] || { echo "left: $p"; exit 1; }; done'
check_sh "the overlays hold no file: install + uninstall changed nothing else" \
    'left=$(find "$T_DIR"/ovl_*/upper ! -type d); [ -z "$left" ] || { echo "$left"; exit 1; }'
EOF
if ! unshare --mount --propagation private true 2>/dev/null; then
    skip "system install in a mount namespace: unshare --mount does not work here"
else
    rc=0
    timeout -k 10 240 unshare --mount --propagation private bash "$T_DIR/ns.sh" || rc=$?
    if [ "$rc" -eq 3 ]; then
        skip "system install: overlayfs over /usr/local and /sbin is not available here"
    elif [ -s "$T_DIR/ns.counts" ]; then
        read -r p f s <"$T_DIR/ns.counts"
        T_PASS=$((T_PASS + p)) T_FAIL=$((T_FAIL + f)) T_SKIP=$((T_SKIP + s))
    else
        fail "system install part ended without results (exit $rc)"
    fi
fi

# ---- 3. systemd: the example .mount unit --------------------------------------------------------
pid1=$(cat /proc/1/comm 2>/dev/null || echo unknown)
if [ "$pid1" != systemd ]; then
    skip "systemd .mount unit (mount-scripts/mnt-mmapfs.mount): systemd is not PID 1 here (PID 1 is $pid1)"
elif [ -e /sbin/mount.mmapfs ] || [ -e /usr/local/sbin/mmapfs ] || [ -e /usr/local/share/mmapfs/install-manifest ]; then
    skip "systemd .mount unit: mmapfs is installed on this system already; not replacing it"
else
    # systemd mounts in the real namespace: install for real (serialised
    # with other runs), start a copy of the example unit for a mount point
    # under T_DIR, stop it, uninstall.
    exec {lock}>/run/lock/mmapfs-90_install.lock
    flock -w 120 "$lock"
    UNITMNT=$T_DIR/unitmnt
    UNIT=$(systemd-escape --path --suffix=mount "$UNITMNT")
    mkdir -p "$UNITMNT"
    make_image "$T_DIR/unit.img" 256M
    UNIT_FILE=/run/systemd/system/$UNIT
    sed -e "s|^What=.*|What=$T_DIR/unit.img|" -e "s|^Where=.*|Where=$UNITMNT|" \
        -e "s|^RequiresMountsFor=.*|RequiresMountsFor=$T_DIR|" \
        "$T_ROOT/mount-scripts/mnt-mmapfs.mount" >"$UNIT_FILE"
    T_MOUNTS+=("$UNITMNT")
    T_IMAGES+=("$T_DIR/unit.img")
    T_DIRTY["$T_DIR/unit.img"]=1
    SYSTEM_INSTALLED=1
    check "make install (system)" "${MAKE[@]}" install
    check "systemctl daemon-reload" systemctl daemon-reload
    check "systemctl start $UNIT" systemctl start "$UNIT"
    check_eq "the unit mounted the image" "fuse.mmapfs" \
        "$(awk -v m="$UNITMNT" '$2 == m { print $3 }' /proc/self/mounts)"
    check_sh "write through the unit's mount" 'echo unit >"$0/f" && sync "$0/f"' "$UNITMNT"
    check "systemctl stop $UNIT" systemctl stop "$UNIT"
    if _wait_daemon_gone "$UNITMNT" 60; then pass "its daemon exits"; else fail "its daemon exits"; fi
    check_fail_sh "unmounted" 'mountpoint -q "$0"' "$UNITMNT"
    rm -f "$UNIT_FILE"
    UNIT_FILE=""
    systemctl daemon-reload || true
    check "make uninstall (system)" "${MAKE[@]}" uninstall
    SYSTEM_INSTALLED=0
    check_sh "nothing of the system install is left" '[ ! -e /sbin/mount.mmapfs ] && [ ! -e /usr/local/sbin/mmapfs ]'
    flock -u "$lock"
fi

t_finish
