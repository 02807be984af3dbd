#!/usr/bin/env bash
#
# 50_sqlite.sh — SQLite on a real mount, in journal_mode=WAL and
# journal_mode=DELETE with synchronous=FULL: a few thousand inserts in
# transactions, updates and deletes, a concurrent reader, integrity_check;
# unmount, fsck -n, remount; integrity_check ok and row counts right.
set -euo pipefail
. "$(dirname "$0")/../lib/common.sh"
t_init "$@"
require_cmd sqlite3
export LC_ALL=C

img=$T_DIR/sqlite.img
M=$T_DIR/mnt
export M
make_image "$img" 1G
mount_image "$img" "$M"

TXNS=40        # transactions per database
ROWS=100       # rows per transaction
DELETED=$((TXNS * ROWS / 10))
EXPECT_ROWS=$((TXNS * ROWS - DELETED))

# Writes the SQL for one database into a file: schema, $TXNS transactions of
# $ROWS inserts each, an update and a delete in transactions of their own.
make_sql() {
    local mode=$1 t r
    {
        echo "PRAGMA journal_mode=$mode;"
        echo "PRAGMA synchronous=FULL;"
        echo "CREATE TABLE t(id INTEGER PRIMARY KEY, txn INTEGER, v TEXT, blob BLOB);"
        echo "CREATE INDEX t_txn ON t(txn);"
        for ((t = 1; t <= TXNS; t++)); do
            echo "BEGIN;"
            for ((r = 1; r <= ROWS; r++)); do
                echo "INSERT INTO t(txn, v, blob) VALUES($t, 'row $t.$r', randomblob($(((r * 37) % 900 + 50))));"
            done
            echo "COMMIT;"
        done
        echo "BEGIN; UPDATE t SET v = v || ' updated' WHERE id % 7 = 0; COMMIT;"
        echo "BEGIN; DELETE FROM t WHERE id % 10 = 0; COMMIT;"
    } >"$T_DIR/$mode.sql"
}

for mode in WAL DELETE; do
    db=$M/$mode.db
    make_sql "$mode"
    start=$SECONDS
    check_sh "sqlite3 journal_mode=$mode synchronous=FULL: $TXNS transactions of $ROWS inserts" \
        'sqlite3 -bail "$1" < "$0" > /dev/null' "$T_DIR/$mode.sql" "$db"
    echo "   ($mode: $((SECONDS - start))s)"
    check_eq "$mode: journal mode in effect" "$(echo "$mode" | tr A-Z a-z)" "$(sqlite3 "$db" 'PRAGMA journal_mode;')"
    check_eq "$mode: row count" "$EXPECT_ROWS" "$(sqlite3 "$db" 'SELECT count(*) FROM t;')"
    check_eq "$mode: updated rows" $((TXNS * ROWS / 7 - TXNS * ROWS / 70)) \
        "$(sqlite3 "$db" "SELECT count(*) FROM t WHERE v LIKE '% updated';")"
    check_eq "$mode: integrity_check" "ok" "$(sqlite3 "$db" 'PRAGMA integrity_check;')"
done

# A reader and a writer at the same time on the WAL database.
check_sh "WAL: concurrent reader while a writer commits" '
    db="$M/WAL.db"
    ( for i in $(seq 1 20); do
          sqlite3 "$db" "PRAGMA busy_timeout=10000; BEGIN; INSERT INTO t(txn, v) VALUES(1000, '"'"'concurrent'"'"'); COMMIT;" || exit 1
      done ) &
    writer=$!
    for i in $(seq 1 20); do
        n=$(sqlite3 "$db" "PRAGMA busy_timeout=10000; SELECT count(*) FROM t;" | tail -1)
        [ "$n" -ge '"$EXPECT_ROWS"' ] || { echo "reader saw $n rows"; exit 1; }
    done
    wait "$writer"'
EXPECT_WAL=$((EXPECT_ROWS + 20))
check_eq "WAL: rows after the concurrent writer" "$EXPECT_WAL" "$(sqlite3 "$M/WAL.db" 'SELECT count(*) FROM t;')"

sum_wal=$(sqlite3 "$M/WAL.db" 'SELECT sum(length(blob)), group_concat(v) FROM t;' | sha256sum)
sum_del=$(sqlite3 "$M/DELETE.db" 'SELECT sum(length(blob)), group_concat(v) FROM t;' | sha256sum)
check_eq "no leftover -journal file in DELETE mode" "" "$(ls "$M" | grep -- '-journal$' || true)"

unmount_fs "$M"
fsck_clean "$img"
mount_image "$img" "$M"
check_eq "WAL after remount: integrity_check" "ok" "$(sqlite3 "$M/WAL.db" 'PRAGMA integrity_check;')"
check_eq "WAL after remount: row count" "$EXPECT_WAL" "$(sqlite3 "$M/WAL.db" 'SELECT count(*) FROM t;')"
check_eq "WAL after remount: content" "$sum_wal" "$(sqlite3 "$M/WAL.db" 'SELECT sum(length(blob)), group_concat(v) FROM t;' | sha256sum)"
check_eq "DELETE after remount: integrity_check" "ok" "$(sqlite3 "$M/DELETE.db" 'PRAGMA integrity_check;')"
check_eq "DELETE after remount: row count" "$EXPECT_ROWS" "$(sqlite3 "$M/DELETE.db" 'SELECT count(*) FROM t;')"
check_eq "DELETE after remount: content" "$sum_del" "$(sqlite3 "$M/DELETE.db" 'SELECT sum(length(blob)), group_concat(v) FROM t;' | sha256sum)"
check_sh "VACUUM after remount" 'sqlite3 "$M/DELETE.db" "VACUUM; PRAGMA integrity_check;" | grep -qx ok'
unmount_fs "$M"
fsck_clean "$img" "fsck.mmapfs -n clean after VACUUM"
t_finish
