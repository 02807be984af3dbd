#!/usr/bin/env bash
#
# 47_setid.sh — set-user-ID / set-group-ID clearing exactly as ext4. One
# probe writes, truncates, fallocates and chowns files of modes 4755, 2755,
# 2666, 2767, 6766 and 6777 as a user outside the file's group, as a user
# in it, as the owner (chgrp, chown to -1:-1) and as root, and lists the
# resulting modes; writes, truncates and fallocates also as root without
# CAP_FSETID and as the outside user with it (the capability, not the uid,
# decides). It runs on ext4 on a loop device (the reference) and on mmapfs with and
# without the writeback cache; the listings must be equal, also after a
# remount (the modes the daemon stored, not only the kernel's cache).
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd fallocate truncate stat perl

OWNER=1001 OGROUP=1001 OTHERGRP=1002
OUT_GROUP=(setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups --)
IN_GROUP=(setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --groups="$OGROUP" --)
AS_OWNER=(setpriv --reuid="$OWNER" --regid="$OGROUP" --groups="$OGROUP,$OTHERGRP" --)
ROOT_NO_FSETID=(setpriv --bounding-set=-fsetid --)
OUT_FSETID=(setpriv --reuid="$NOBODY_UID" --regid="$NOBODY_GID" --clear-groups
    --inh-caps=+fsetid --ambient-caps=+fsetid --)
MODES="4755 2755 2666 2767 6766 6777"

# one_op DIR NAME MODE WHO OP : makes DIR/NAME (owner OWNER:OGROUP, MODE),
# runs OP as WHO, prints "NAME <mode after>" (or "NAME denied").
one_op() {
    local dir=$1 name=$2 mode=$3 who=$4 op=$5 f=$1/$2 rc=0
    local -a pre=()
    printf 'data' >"$f"
    chown "$OWNER:$OGROUP" "$f"
    chmod "$mode" "$f"
    case "$who" in
    out) pre=("${OUT_GROUP[@]}") ;;
    in) pre=("${IN_GROUP[@]}") ;;
    owner) pre=("${AS_OWNER[@]}") ;;
    root) pre=() ;;
    rootnofsetid) pre=("${ROOT_NO_FSETID[@]}") ;;
    outfsetid) pre=("${OUT_FSETID[@]}") ;;
    esac
    case "$op" in
    write) timeout 30 "${pre[@]}" bash -c 'printf x >>"$1"' _ "$f" 2>/dev/null || rc=$? ;;
    truncate) timeout 30 "${pre[@]}" truncate -s 1 "$f" 2>/dev/null || rc=$? ;;
    fallocate) timeout 30 "${pre[@]}" fallocate -l 65536 "$f" 2>/dev/null || rc=$? ;;
    chgrp) timeout 30 "${pre[@]}" chgrp "$OTHERGRP" "$f" 2>/dev/null || rc=$? ;;
    chown) timeout 30 "${pre[@]}" chown "$OTHERGRP:$OTHERGRP" "$f" 2>/dev/null || rc=$? ;;
    # chown(f, -1, -1): no owner to set, still a chown (the writeback cache
    # sends it as a SETATTR of ctime alone, without it as nothing to set)
    chown-1) timeout 30 "${pre[@]}" perl -e 'chown(-1, -1, $ARGV[0]) or exit 1' "$f" \
        2>/dev/null || rc=$? ;;
    esac
    if [ "$rc" -ne 0 ]; then
        echo "$name denied"
    else
        echo "$name $(stat -c %a "$f")"
    fi
}

# probe DIR : runs every case in DIR/setid, prints one line per case.
probe() {
    local dir=$1/setid mode who op
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 0777 "$dir"
    for mode in $MODES; do
        for who in out in root rootnofsetid outfsetid; do
            for op in write truncate fallocate; do
                one_op "$dir" "$op-$who-$mode" "$mode" "$who" "$op"
            done
        done
        one_op "$dir" "chgrp-owner-$mode" "$mode" owner chgrp
        one_op "$dir" "chown-root-$mode" "$mode" root chown
        one_op "$dir" "chown-1-owner-$mode" "$mode" owner chown-1
        one_op "$dir" "chown-1-root-$mode" "$mode" root chown-1
    done
}

# listing DIR : the modes of the probe's files, by name.
listing() {
    (cd "$1/setid" && stat -c '%n %a' -- * | LC_ALL=C sort)
}

ext4_probe() {
    probe "$T_DIR/ext4" | LC_ALL=C sort >"$T_DIR/ext4.out"
    check_sh "ext4 reference: a write by a user outside the group clears SGID of 2666" \
        'grep -qx "write-out-2666 666" "$0"' "$T_DIR/ext4.out"
}
on_ext4 "$T_DIR/ext4" ext4_probe
[ -s "$T_DIR/ext4.out" ] || { t_log "no ext4 reference"; t_finish; }

img=$T_DIR/setid.img
make_image "$img" 128M
for opts in writeback_cache nowriteback_cache; do
    M=$T_DIR/mnt-$opts
    mount_image "$img" "$M" -o "$opts,allow_other"
    probe "$M" | LC_ALL=C sort >"$T_DIR/$opts.out"
    check_eq "mmapfs -o $opts: modes after write/truncate/fallocate/chown as on ext4" \
        "$(cat "$T_DIR/ext4.out")" "$(cat "$T_DIR/$opts.out")"
    sync
    unmount_fs "$M"
    mount_image "$img" "$M" -o "$opts,allow_other"
    check_eq "mmapfs -o $opts: the same modes after a remount" \
        "$(grep -v denied "$T_DIR/ext4.out")" "$(listing "$M" | while read -r n m; do
            grep -qx "$n denied" "$T_DIR/ext4.out" || echo "$n $m"; done)"
    unmount_fs "$M"
done

t_finish
