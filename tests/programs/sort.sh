#!/usr/bin/env bash
# sort.sh: coreutils sort on a generated 200k-line file (numeric, keyed,
# unique, and external merge with a small buffer and 2 threads), plain and
# with $1 preloaded; outputs must match and be correctly sorted.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
buddy_require sort awk

LINES=200000
input="$BUDDY_TMP/input.txt"
awk -v n="$LINES" 'BEGIN {
    x = 12345
    for (i = 1; i <= n; i++) {
        x = (x * 1103515245 + 12345) % 2147483648
        printf "%08x %d word-%d %s\n", x, x % 100000, i % 977, substr("zyxwvutsrqponmlkjihgfedcba", 1 + x % 26)
    }
}' >"$input"
[ "$(wc -l <"$input")" -eq "$LINES" ] || buddy_fail "sort: input generation failed"

export LC_ALL=C
buddy_run_both sort-plain sort "$input"
buddy_expect_status sort-plain 0 $?
buddy_run_both sort-keyed sort -k2,2n -k3,3 -k1,1r "$input"
buddy_expect_status sort-keyed 0 $?
buddy_run_both sort-unique sort -u -k3,3 "$input"
buddy_expect_status sort-unique 0 $?
buddy_run_both sort-external sort -S 256K --parallel=2 -T "$BUDDY_TMP" -k4,4 -k1,1 "$input"
buddy_expect_status sort-external 0 $?

sort -c "$BUDDY_TMP/sort-plain.preloaded.out" || buddy_fail "sort: preloaded output not sorted"
sort -c -k2,2n -k3,3 -k1,1r "$BUDDY_TMP/sort-keyed.preloaded.out" || buddy_fail "sort: keyed output not sorted"
[ "$(wc -l <"$BUDDY_TMP/sort-plain.preloaded.out")" -eq "$LINES" ] || buddy_fail "sort: lines lost"
[ "$(wc -l <"$BUDDY_TMP/sort-unique.preloaded.out")" -eq 977 ] || buddy_fail "sort -u: wrong line count"
buddy_finish
