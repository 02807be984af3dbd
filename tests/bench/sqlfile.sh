#!/usr/bin/env bash
#
# tests/bench/sqlfile.sh MODE N — prints the SQL of the SQLite benchmark of
# run.sh and profile.sh: journal_mode=MODE (WAL or DELETE), synchronous=FULL,
# one table, then N transactions of one INSERT of a ~110-byte text each.
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 WAL|DELETE N" >&2; exit 2; }
echo "PRAGMA journal_mode=$1;"
echo "PRAGMA synchronous=FULL;"
echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
for ((i = 1; i <= $2; i++)); do
    echo "BEGIN; INSERT INTO t(v) VALUES('row $i: a small payload of about one hundred bytes, as a log line or a key-value pair would be'); COMMIT;"
done
