#!/usr/bin/env bash
# cxx_replaced.sh: programs that replace only operator new, or only operator
# delete (cxx_replaced.cpp), run with $1 preloaded in secure mode as they run
# without it: a block of the program's new (malloc's) freed by the default
# delete, or one of the default new freed by the program's delete (free),
# is no mismatch. $2, $3: the two builds (new replaced, delete replaced).
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
buddy_finish
