#!/usr/bin/env bash
# cxx_new.sh: runs cxx_new ($2: operator new's failure contract) plain and
# with $1 preloaded (outputs must match), and checks that the library
# depends on libc alone: the C++ operators need no C++ runtime of its own.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
prog=$(buddy_program "${2:-}" cxx_new) || exit 1

buddy_run_both cxx_new "$prog"
buddy_expect_status cxx_new 0 $?
grep -q '^FAILED' "$BUDDY_TMP/cxx_new.preloaded.out" && buddy_fail "cxx_new: a check failed under the preload"

# Every dependency but libc itself, the loader and the vDSO is one too many.
extra=$(ldd "$BUDDY_LIB" | grep -v -e 'linux-vdso' -e 'libc\.so' -e 'ld-linux' || true)
[ -z "$extra" ] || buddy_fail "the library depends on more than libc: $extra"
buddy_finish
