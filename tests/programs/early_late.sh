#!/usr/bin/env bash
# early_late.sh: malloc before any constructor and after exit handlers.
# $1: libbuddymalloc.so; $2: the early_late_main program (linked with
# early_late.so, whose constructor and destructor allocate).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
prog=$2
buddy_run_both early-late "$prog"
buddy_expect_status early-late 0 $?
grep -qx "destructor: late 0" "$BUDDY_TMP/early-late.preloaded.out" || buddy_fail "the destructor did not run"
buddy_finish
