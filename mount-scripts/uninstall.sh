#!/bin/sh
#
# mount-scripts/uninstall.sh — removes what mount-scripts/install.sh (make
# install) installed, as listed in its manifest, and nothing else (what
# `make uninstall` runs):
#   - each listed file, unless it was changed since (its SHA-256 differs):
#     such a file is kept and reported, and the exit status is 1;
#   - each listed directory that install.sh created, if it is empty now
#     (deepest first); a directory holding anything else is kept;
#   - the manifest, unless something listed was kept: then the manifest is
#     rewritten with what is left.
#
# Environment: PREFIX (default /usr/local), MANIFEST (default
# $PREFIX/share/mmapfs/install-manifest) and DESTDIR, as given to install.
set -eu

PREFIX=${PREFIX:-/usr/local}
MANIFEST=${MANIFEST:-$PREFIX/share/mmapfs/install-manifest}
DESTDIR=${DESTDIR:-}
manifest=$DESTDIR$MANIFEST
tab=$(printf '\t')

if [ ! -f "$manifest" ]; then
    echo "uninstall.sh: no manifest $manifest: nothing installed with this PREFIX/DESTDIR" >&2
    exit 1
fi
kept=$(mktemp "${TMPDIR:-/tmp}/mmapfs-uninstall.XXXXXX")
trap 'rm -f "$kept"' EXIT

# files
while IFS="$tab" read -r kind sum path; do
    [ "$kind" = f ] || continue
    case "$path" in /*) ;; *) echo "uninstall.sh: ignoring bad entry '$path'" >&2; continue ;; esac
    f=$DESTDIR$path
    if [ ! -e "$f" ] && [ ! -L "$f" ]; then
        continue
    fi
    if [ -f "$f" ] && [ ! -L "$f" ] && [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$sum" ]; then
        rm -f "$f"
        echo "removed $f"
    else
        echo "uninstall.sh: kept $f: changed since it was installed" >&2
        printf 'f\t%s\t%s\n' "$sum" "$path" >>"$kept"
    fi
done <"$manifest"

# the manifest, then the directories install.sh created, deepest first
dirs=$(awk -F "$tab" '$1 == "d" && $3 ~ /^\// { print $3 }' "$manifest" | LC_ALL=C sort -r)
if [ -s "$kept" ]; then
    grep "^d$tab" "$manifest" >>"$kept" || true
    { echo "# mmapfs install manifest: files kept by uninstall.sh (changed since install)"
      cat "$kept"; printf 'm\t-\t%s\n' "$MANIFEST"; } >"$manifest.new"
    mv -f "$manifest.new" "$manifest"
    echo "uninstall.sh: $manifest lists what was kept" >&2
    status=1
else
    rm -f "$manifest"
    echo "removed $manifest"
    status=0
fi
printf '%s\n' "$dirs" | while IFS= read -r d; do
    [ -n "$d" ] && [ -d "$DESTDIR$d" ] || continue
    if rmdir "$DESTDIR$d" 2>/dev/null; then
        echo "removed $DESTDIR$d/"
    fi
done
exit "$status"
