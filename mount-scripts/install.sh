#!/bin/sh
#
# mount-scripts/install.sh [BUILD] — installs mmapfs (what `make install`
# runs) and writes a manifest of every file and directory it created, which
# mount-scripts/uninstall.sh (`make uninstall`) reads to remove exactly
# those. Running it again overwrites the same files and keeps the manifest
# complete.
#
#   BUILD     directory with the built programs and libmmio.a (default: build)
#
# Environment (every directory absolute; defaults as `make install`):
#   PREFIX            /usr/local
#   SBINDIR           $PREFIX/sbin    mmapfs, mkfs.mmapfs, fsck.mmapfs,
#                                     mmapfs-stat, mmapfs-resize,
#                                     mmapfs-trim, mmapfs-mount-all
#   LIBDIR            $PREFIX/lib     libmmio.a
#   INCLUDEDIR        $PREFIX/include mmapfs/mmio.h
#   PKGCONFIGDIR      $LIBDIR/pkgconfig   mmio.pc
#   MANDIR            $PREFIX/share/man   man3/mmio.3, man8/*.8
#   DOCDIR            $PREFIX/share/doc/mmapfs   examples/ (fstab, systemd, init)
#   MANIFEST          $PREFIX/share/mmapfs/install-manifest
#   MOUNT_HELPER_DIR  where mount.mmapfs goes; empty (the default of this
#                     script) installs no mount helper. `make install` sets
#                     /sbin: mount(8) looks for mount.TYPE only in /sbin (and
#                     /sbin/fs.d, /sbin/fs), whatever the PREFIX.
#   DESTDIR           staging root put before every path (packaging); the
#                     installed files and the manifest name paths without it.
#
# Manifest lines (tab-separated): "f SHA256 PATH" for a file, "d - PATH" for a
# directory this script created, "m - PATH" for the manifest itself.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
PREFIX=${PREFIX:-/usr/local}
SBINDIR=${SBINDIR:-$PREFIX/sbin}
LIBDIR=${LIBDIR:-$PREFIX/lib}
INCLUDEDIR=${INCLUDEDIR:-$PREFIX/include}
PKGCONFIGDIR=${PKGCONFIGDIR:-$LIBDIR/pkgconfig}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/mmapfs}
MANIFEST=${MANIFEST:-$PREFIX/share/mmapfs/install-manifest}
MOUNT_HELPER_DIR=${MOUNT_HELPER_DIR:-}
DESTDIR=${DESTDIR:-}

for d in "$PREFIX" "$SBINDIR" "$LIBDIR" "$INCLUDEDIR" "$PKGCONFIGDIR" "$MANDIR" \
    "$DOCDIR" "$MANIFEST" ${MOUNT_HELPER_DIR:+"$MOUNT_HELPER_DIR"}; do
    case "$d" in
    /*) ;;
    *) echo "install.sh: $d is not an absolute path" >&2; exit 2 ;;
    esac
done

missing=0
for f in mmapfs mkfs.mmapfs fsck.mmapfs mmapfs-stat mmapfs-resize mmapfs-trim libmmio.a; do
    if [ ! -f "$build/$f" ]; then
        echo "install.sh: $build/$f is missing (run make all first)" >&2
        missing=1
    fi
done
[ "$missing" -eq 0 ] || exit 1

tab=$(printf '\t')
work=$(mktemp -d "${TMPDIR:-/tmp}/mmapfs-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
: >"$work/entries"

# record KIND SUM PATH : one manifest line.
record() {
    printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$work/entries"
}

# make_dir DIR : creates DIR (and missing parents) under DESTDIR, recording
# each directory created here, parents first.
make_dir() {
    [ -d "$DESTDIR$1" ] && return 0
    [ "$1" = / ] || make_dir "$(dirname "$1")"
    mkdir -m 0755 "$DESTDIR$1"
    record d - "$1"
}

# put SOURCE PATH MODE : installs SOURCE as PATH (under DESTDIR).
put() {
    make_dir "$(dirname "$2")"
    install -m "$3" "$1" "$DESTDIR$2"
    record f "$(sha256sum <"$1" | cut -d' ' -f1)" "$2"
    echo "installed $DESTDIR$2"
}

# relative_to_prefix DIR : DIR with a leading $PREFIX written as ${prefix}
# (pkg-config variable), so that --define-variable=prefix=... relocates.
relative_to_prefix() {
    case "$1" in
    "$PREFIX"/*) printf '${prefix}%s' "${1#"$PREFIX"}" ;;
    *) printf '%s' "$1" ;;
    esac
}

[ -z "$DESTDIR" ] || mkdir -p "$DESTDIR"

# ---- programs, library, header ----------------------------------------------------
for bin in mmapfs mkfs.mmapfs fsck.mmapfs mmapfs-stat mmapfs-resize mmapfs-trim; do
    put "$build/$bin" "$SBINDIR/$bin" 0755
done
put "$here/mmapfs-mount-all" "$SBINDIR/mmapfs-mount-all" 0755
put "$build/libmmio.a" "$LIBDIR/libmmio.a" 0644
put "$root/include/mmapfs/mmio.h" "$INCLUDEDIR/mmapfs/mmio.h" 0644

version=$(sed -n 's/^#define MMAPFS_VERSION_STRING "\(.*\)"$/\1/p' "$root/src/fuse/version_i.h")
sed -e "s|@PREFIX@|$PREFIX|" \
    -e "s|@LIBDIR@|$(relative_to_prefix "$LIBDIR")|" \
    -e "s|@INCLUDEDIR@|$(relative_to_prefix "$INCLUDEDIR")|" \
    -e "s|@VERSION@|${version:-0}|" "$here/mmio.pc.in" >"$work/mmio.pc"
put "$work/mmio.pc" "$PKGCONFIGDIR/mmio.pc" 0644

# ---- man pages, examples -------------------------------------------------------------
for page in "$root"/docs/man/*.[0-9]; do
    [ -e "$page" ] || continue
    name=$(basename "$page")
    put "$page" "$MANDIR/man${name##*.}/$name" 0644
done
for ex in fstab.example mnt-mmapfs.mount mmapfs.init; do
    put "$here/$ex" "$DOCDIR/examples/$ex" 0644
done

# ---- mount helper: mount -t mmapfs / fstab type mmapfs ---------------------------------
if [ -n "$MOUNT_HELPER_DIR" ]; then
    sed -e "s|@MMAPFS@|$SBINDIR/mmapfs|" "$here/mount.mmapfs.in" >"$work/mount.mmapfs"
    put "$work/mount.mmapfs" "$MOUNT_HELPER_DIR/mount.mmapfs" 0755
else
    echo "install.sh: MOUNT_HELPER_DIR is empty: no mount.mmapfs installed ('mount -t mmapfs' needs it; 'make install' puts it in /sbin)"
fi

# ---- manifest ------------------------------------------------------------------------
# A previous install's entries that this one did not write again stay listed
# while they exist (directories it created, files it installed that this
# version no longer installs), so that uninstall still removes them.
make_dir "$(dirname "$MANIFEST")"
old="$DESTDIR$MANIFEST"
if [ -f "$old" ]; then
    while IFS="$tab" read -r kind sum path; do
        [ -n "$path" ] || continue
        cut -f3 "$work/entries" | grep -qxF "$path" && continue
        case "$kind" in
        d) [ -d "$DESTDIR$path" ] && record d - "$path" ;;
        f) [ -f "$DESTDIR$path" ] && record f "$sum" "$path" ;;
        esac
    done <"$old"
fi
{
    echo "# mmapfs install manifest, written by mount-scripts/install.sh (make install)"
    echo "# and read by mount-scripts/uninstall.sh (make uninstall). Paths without DESTDIR."
    # directories first, sorted (a parent before its children), then the files
    grep "^d$tab" "$work/entries" | LC_ALL=C sort -t "$tab" -k3,3 -u || true
    grep "^f$tab" "$work/entries" || true
    printf 'm\t-\t%s\n' "$MANIFEST"
} >"$work/manifest"
install -m 0644 "$work/manifest" "$old"
echo "installed $old (list of the installed files)"

# ---- notes -----------------------------------------------------------------------------
if [ -z "$DESTDIR" ]; then
    helper=""
    for d in /sbin /usr/sbin; do
        for h in mount.fuse3 mount.fuse; do
            [ -z "$helper" ] && [ -x "$d/$h" ] && helper="$d/$h"
        done
    done
    [ -n "$helper" ] || echo "install.sh: note: no /sbin/mount.fuse3 (package fuse3): 'mount -t fuse.mmapfs' will not work until it is installed ('mount -t mmapfs' does not need it)" >&2
    case ":${PATH:-}:" in
    *":$SBINDIR:"*) ;;
    *) echo "install.sh: note: $SBINDIR is not in PATH: mount.fuse3, mkfs -t and fsck -t look for the programs there" >&2 ;;
    esac
fi
exit 0
