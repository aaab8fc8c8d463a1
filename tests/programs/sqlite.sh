#!/usr/bin/env bash
# sqlite.sh: the sqlite3 CLI builds and queries a 150k-row table (in a file
# database, so the pager and VACUUM run too), plain and with $1 preloaded.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
buddy_require sqlite3

# Both runs use the same database file; the script drops the table first.
buddy_run_both sqlite sqlite3 -batch -bail "$BUDDY_TMP/sqlite.db" ".read $here/sqlite.sql"
buddy_expect_status sqlite 0 $?
if [ "$(head -1 "$BUDDY_TMP/sqlite.plain.out")" != "150000|$(sqlite3 :memory: "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150000) SELECT sum(length(printf('name-%08d-%s', (i * 2654435761) % 1000003, substr('abcdefghijklmnopqrstuvwxyz', 1 + i % 26)))) || '|' || sum(i % 300) FROM n")" ]; then
    buddy_fail "sqlite: first query result is not the expected row count and sums"
fi
buddy_finish
