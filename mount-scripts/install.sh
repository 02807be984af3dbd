#!/bin/sh
#
# mount-scripts/install.sh [BUILD] — installs the mmapfs binaries and man
# pages. Idempotent: running it again overwrites the same files.
#
#   BUILD     directory with the built binaries (default: build)
#
# Environment:
#   PREFIX    default /usr/local
#   SBINDIR   default $PREFIX/sbin     (mmapfs, mkfs.mmapfs, fsck.mmapfs, mmapfs-stat,
#             mmapfs-mount-all)
#   MANDIR    default $PREFIX/share/man (pages go to $MANDIR/man8)
#   DESTDIR   staging root prepended to every path (packaging), default empty
#
# `mount -t fuse.mmapfs IMAGE MNT` and fstab lines of type fuse.mmapfs go
# through mount.fuse3 (package fuse3), which runs "mmapfs" from PATH:
# SBINDIR must be in the PATH of whoever mounts (it is for root with the
# default /usr/local/sbin). Nothing outside SBINDIR and MANDIR is touched.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
PREFIX=${PREFIX:-/usr/local}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
MANDIR=${MANDIR:-$PREFIX/share/man}
DESTDIR=${DESTDIR:-}

missing=0
install -d "$DESTDIR$SBINDIR" "$DESTDIR$MANDIR/man8"
for bin in mmapfs mkfs.mmapfs fsck.mmapfs mmapfs-stat; do
    if [ -x "$build/$bin" ]; then
        install -m 0755 "$build/$bin" "$DESTDIR$SBINDIR/$bin"
        echo "installed $DESTDIR$SBINDIR/$bin"
    else
        echo "install.sh: $build/$bin is missing (run make all first)" >&2
        missing=1
    fi
done
install -m 0755 "$here/mmapfs-mount-all" "$DESTDIR$SBINDIR/mmapfs-mount-all"
echo "installed $DESTDIR$SBINDIR/mmapfs-mount-all"
for page in "$root"/docs/man/*.8; do
    [ -e "$page" ] || continue
    install -m 0644 "$page" "$DESTDIR$MANDIR/man8/$(basename "$page")"
    echo "installed $DESTDIR$MANDIR/man8/$(basename "$page")"
done

# mount(8) finds the helper for type fuse.mmapfs as mount.fuse.mmapfs or
# mount.fuse (both from fuse3); say so if neither is there.
helper=""
for d in /sbin /usr/sbin; do
    for h in mount.fuse.mmapfs mount.fuse mount.fuse3; do
        [ -z "$helper" ] && [ -x "$d/$h" ] && helper="$d/$h"
    done
done
if [ -z "$helper" ]; then
    echo "install.sh: note: no /sbin/mount.fuse3 (package fuse3): 'mount -t fuse.mmapfs' and fstab will not work until it is installed" >&2
fi
case ":${PATH:-}:" in
*":$SBINDIR:"*) ;;
*) [ -n "$DESTDIR" ] || echo "install.sh: note: $SBINDIR is not in PATH; mount.fuse3 runs 'mmapfs' from PATH" >&2 ;;
esac
exit "$missing"
