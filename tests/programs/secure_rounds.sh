#!/usr/bin/env bash
# secure_rounds.sh: secure mode's slabs go back when their blocks do. $1:
# libbuddymalloc.so; $2: the secure_rounds program (rounds of 200000 small
# blocks, all freed each round). With BUDDY_OPTIONS=secure=1 the count of
# mappings after the last round must stay within SLACK of the second
# round's (each slab's guard page splits a mapping: slabs that never
# emptied added thousands a round, until mmap failed), and a 16 MiB malloc
# and the program's own mmap must work at the end.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
prog=$(buddy_program "${2:-}" secure_rounds) || exit 1
SLACK=512

out=$BUDDY_TMP/rounds.out
LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=secure=1 "$prog" >"$out" 2>"$BUDDY_TMP/rounds.err"
rc=$?
second=$(awk '/^round 1:/ { print $3 }' "$out")
last=$(awk '/^round [0-9]+:/ { n = $3 } END { print n }' "$out")
if [ "$rc" -ne 0 ]; then
    buddy_fail "secure=1: exit status $rc: $(cat "$out" "$BUDDY_TMP/rounds.err" | tail -4)"
elif [ -z "$second" ] || [ -z "$last" ] || [ "$last" -gt $((second + SLACK)) ]; then
    buddy_fail "secure=1: mappings grew from ${second:-?} after round 1 to ${last:-?} after the last: $(tr '\n' ';' <"$out")"
else
    echo "ok: secure=1: $second mappings after round 1, $last after the last; $(tail -1 "$out")"
fi
buddy_finish
