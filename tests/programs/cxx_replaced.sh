#!/usr/bin/env bash
# cxx_replaced.sh: programs that replace only operator new, or only operator
# delete (cxx_replaced.cpp), run with $1 preloaded in secure mode as they run
# without it: a block of the program's new (malloc's) freed by the default
# delete, or one of the default new freed by the program's delete (free),
# is no mismatch. $2, $3: the two builds (new replaced, delete replaced).
# $4: cxx_plt_mismatch, which replaces nothing and frees a block of new with
# free: its non-PIE build's canonical PLT entry for operator delete must not
# pass for a replacement, and the mismatch is reported.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
for prog in "$2" "$3"; do
    name=$(basename "$prog")
    want=$("$prog" 2>&1)
    got=$(LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=secure=1 "$prog" 2>&1)
    rc=$?
    if [ "$rc" -ne 0 ] || [ "$got" != "$want" ]; then
        buddy_fail "$name: secure=1: exit status $rc, output '$(tail -2 <<<"$got")', without the preload '$want'"
    else
        echo "ok: $name: secure=1: $got"
    fi
done
name=$(basename "$4")
got=$(LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=secure=1 "$4" 2>&1)
rc=$?
if [ "$rc" -ne 134 ] || ! grep -q "mismatched free: free of a block from new" <<<"$got"; then
    buddy_fail "$name: secure=1: exit status $rc (expected 134, SIGABRT), output '$(tail -2 <<<"$got")'"
else
    echo "ok: $name: secure=1: $(grep -m1 'mismatched free' <<<"$got" | cut -c1-80)"
fi
buddy_finish
