#!/usr/bin/env bash
# slab_guard.sh: secure mode's guard pages past slabs (libbuddy/zone.c). $1:
# libbuddymalloc.so; $2: the slab_guard program, which writes a byte past
# the end of a slab's last block. With BUDDY_OPTIONS=secure=1 the write must
# fault and be reported as a heap overflow, the process aborted; in the
# default mode (no guards) it runs on.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
prog=$(buddy_program "${2:-}" slab_guard) || exit 1

err=$BUDDY_TMP/secure.err
LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=secure=1 "$prog" >"$BUDDY_TMP/secure.out" 2>"$err"
rc=$?
if [ "$rc" -ne 134 ]; then
    buddy_fail "secure=1: exit status $rc, expected 134 (SIGABRT): $(cat "$BUDDY_TMP/secure.out" "$err" | tail -3)"
elif ! grep -q "^buddymalloc: error: heap overflow: a read or write past the end of a slab's last small block" "$err"; then
    buddy_fail "secure=1: no report of the overflow: $(tail -3 "$err")"
else
    echo "ok: secure=1 reports the write past the slab: $(grep -m1 '^buddymalloc: error' "$err")"
fi

out=$(LD_PRELOAD=$BUDDY_LIB "$prog" 2>&1)
rc=$?
if [ "$rc" -ne 0 ] || [ "$out" != survived ]; then
    buddy_fail "default mode: exit status $rc, output '$out' (no guard pages there: the program runs on)"
else
    echo "ok: the default mode has no guard pages"
fi
buddy_finish
