#!/usr/bin/env bash
# valgrind.sh: buddymalloc's own code under memcheck. With
# --soname-synonyms=somalloc=nouserintercepts valgrind leaves a malloc outside
# libc alone (without it, it replaces free in every library, ours included:
# the README's "With other tools"), so the preloaded library serves every
# block and memcheck checks its system calls and its reads of memory. It must
# find nothing: no system call argument left undefined (mmap's offset was,
# passed as an int through syscall's varargs), no undefined value used.
# sort with a small buffer and 2 threads makes small blocks, page runs and
# a huge block (its 8 MiB buffer).
# The library is preloaded from a copy without its debug information:
# valgrind 3.19 cannot read the DWARF 5 that clang 14 writes (it gives up on
# the whole run), and the symbol table is enough to name functions.
# $1: libbuddymalloc.so.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
buddy_require valgrind sort awk objcopy
lib="$BUDDY_TMP/libbuddymalloc.so"
objcopy --strip-debug "$BUDDY_LIB" "$lib" || buddy_fail "objcopy failed"

input="$BUDDY_TMP/input.txt"
awk 'BEGIN { x = 7; for (i = 1; i <= 20000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%08x %d\n", x, i } }' >"$input"

export LC_ALL=C
sort -S 8M --parallel=2 "$input" >"$BUDDY_TMP/plain.out" || buddy_fail "sort failed without valgrind"
BUDDY_STATS=1 LD_PRELOAD="$lib" valgrind -q --error-exitcode=99 --soname-synonyms=somalloc=nouserintercepts \
    sort -S 8M --parallel=2 "$input" >"$BUDDY_TMP/memcheck.out" 2>"$BUDDY_TMP/memcheck.err"
rc=$?
if [ "$rc" -ne 0 ] || grep -q '^==[0-9]*== [A-Z]' "$BUDDY_TMP/memcheck.err"; then
    buddy_fail "memcheck reported errors (exit $rc)"
    grep '^==' "$BUDDY_TMP/memcheck.err" | head -30 >&2
fi
cmp -s "$BUDDY_TMP/plain.out" "$BUDDY_TMP/memcheck.out" || buddy_fail "sort's output differs under valgrind"
grep -Eq '^  regions mapped +[1-9]' "$BUDDY_TMP/memcheck.err" ||
    buddy_fail "buddymalloc's report is missing: the preloaded library did not serve the blocks"
[ "$BUDDY_FAILED" -eq 0 ] && echo "ok: memcheck found nothing in buddymalloc under sort"
buddy_finish
