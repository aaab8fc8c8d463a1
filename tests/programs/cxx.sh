#!/usr/bin/env bash
# cxx.sh: runs the C++ containers program ($2, built by meson from
# cxx_containers.cpp) plain and with $1 preloaded; outputs must match.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
prog=$(buddy_program "${2:-}" cxx_containers) || exit 1

buddy_run_both cxx "$prog"
buddy_expect_status cxx 0 $?
[ "$(grep -c '^round ' "$BUDDY_TMP/cxx.plain.out")" -eq 12 ] || buddy_fail "cxx: expected 12 result lines"
buddy_finish
