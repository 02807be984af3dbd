#!/bin/sh
# tests/layering.sh — checks the arrows between the parts of mmapfs
# (docs/DESIGN.md, "Parts and arrows"): every #include "..." of a file
# under src/ or include/ must name a header its part may use. Run by
# `make test` (target layering). Exit 0 when every include is allowed,
# 1 with one line per forbidden include otherwise.
#
#   tests/layering.sh [TOP]     TOP: the checkout (default: .)
#
# Allowed project headers per part (a trailing / allows the folder):
#   engine   src/io, include/mmapfs: io/ mmapfs/          (nothing else)
#   util     src/util:               util/
#   journal  src/journal:            journal/ io/observe.h mmapfs/ util/
#   core     src/fs:                 fs/ journal/journal.h journal/format.h mmapfs/ util/
#   checker  src/fsck:               fsck/ journal/journal.h io/observe.h mmapfs/ util/
#                                    and the core's public headers: fs/acl.h fs/btree.h
#                                    fs/format.h fs/fs.h fs/mkfs.h fs/mmp.h fs/offline.h
#                                    fs/inode.h fs/super.h fs/super_backup.h fs/xattr.h (no fs/*_i.h)
#   front    src/fuse:               fuse/ fs/fs.h fs/acl.h fs/format.h util/ mmapfs/
#                                    tools/exit_i.h
#   tools    src/tools:              tools/ fs/fs.h fs/format.h fs/mkfs.h fs/offline.h
#                                    fsck/fsck.h fuse/ util/ mmapfs/ io/observe.h
# So: the engine includes nothing of the project; the journal nothing of
# the core, the checker or the front end; the core nothing of the journal's
# private header, the checker, the front end or the tools; the checker
# nothing of the front end, nor the core's private headers; only the tools
# reach the checker.
set -u
top=${1:-.}
cd "$top" || exit 2
[ -d src ] || { echo "layering: no src/ under $top" >&2; exit 2; }

# The core's public headers (what a part outside src/fs may be allowed);
# every other header of src/fs is private to the core.
fs_public="fs/acl.h fs/btree.h fs/format.h fs/fs.h fs/mkfs.h fs/mmp.h fs/offline.h"
fs_public="$fs_public fs/inode.h fs/super.h fs/super_backup.h fs/xattr.h"

allowed() {   # part -> allowed list
    case $1 in
    io|mmapfs) echo "io/ mmapfs/" ;;
    util)      echo "util/" ;;
    journal)   echo "journal/ io/observe.h mmapfs/ util/" ;;
    fs)        echo "fs/ journal/journal.h journal/format.h mmapfs/ util/" ;;
    fsck)      echo "fsck/ $fs_public journal/journal.h io/observe.h mmapfs/ util/" ;;
    fuse)      echo "fuse/ fs/fs.h fs/acl.h fs/format.h util/ mmapfs/ tools/exit_i.h" ;;
    tools)     echo "tools/ fs/fs.h fs/format.h fs/mkfs.h fs/offline.h fsck/fsck.h fuse/ util/ mmapfs/ io/observe.h" ;;
    *)         echo "" ;;
    esac
}

bad=0
# every header of the core is either listed public or named *_i.h
for h in $(cd src && find fs -maxdepth 1 -name '*.h' | sort); do
    case " $fs_public " in *" $h "*) continue ;; esac
    case $h in *_i.h) continue ;; esac
    echo "layering: src/$h: neither private (*_i.h) nor in fs_public of tests/layering.sh"
    bad=1
done
files=$(find src include -type f \( -name '*.c' -o -name '*.h' \) | sort)
for f in $files; do
    case $f in
    include/mmapfs/*) part=mmapfs ;;
    src/*/*)          part=${f#src/}; part=${part%%/*} ;;
    *)                echo "layering: $f: not inside a part (src/<part>/ or include/mmapfs/)"; bad=1; continue ;;
    esac
    list=$(allowed "$part")
    if [ -z "$list" ]; then
        echo "layering: $f: unknown part src/$part/ (add it to tests/layering.sh and docs/DESIGN.md)"
        bad=1
        continue
    fi
    # "line:header" for every #include "header"
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
        sed 's/^\([0-9]*\):.*"\([^"]*\)".*/\1:\2/' > "${TMPDIR:-/tmp}/layering.$$" || true
    while IFS=: read -r line hdr; do
        ok=0
        case $hdr in
        */*) ;;
        *)   echo "layering: $f:$line: #include \"$hdr\": name project headers by part (\"$part/...\")"
             bad=1; continue ;;
        esac
        for a in $list; do
            case $a in
            */) case $hdr in "$a"*) ok=1 ;; esac ;;
            *)  [ "$hdr" = "$a" ] && ok=1 ;;
            esac
        done
        if [ $ok = 0 ]; then
            echo "layering: $f:$line: #include \"$hdr\": the $part part may include only: $list"
            bad=1
        fi
    done < "${TMPDIR:-/tmp}/layering.$$"
    rm -f "${TMPDIR:-/tmp}/layering.$$"
done
if [ $bad = 0 ]; then
    echo "layering: ok ($(echo "$files" | wc -l) files)"
fi
exit $bad
