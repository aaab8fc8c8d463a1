#!/usr/bin/env bash
# footprint.sh: what the library costs a process that allocates little or
# nothing (issue #20). $1: libbuddymalloc.so; $2: the footprint program.
#  - its writable data in the file (what the dynamic linker relocates and a
#    process reads) fits FOOTPRINT_DATA_MAX: the static caches are
#    zero-initialised, not data;
#  - a process that allocates nothing maps no region and makes no cache;
#  - the first small malloc costs at most FOOTPRINT_FIRST_MALLOC_KIB of
#    anonymous memory: a region's metadata, the thread's cache and one slab
#    are touched only where used (it was 84 KiB when the metadata was cleared
#    and the static caches were data; 68 KiB now, 72 in a debug build).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
prog=$(buddy_program "${2:-}" footprint) || exit 1
buddy_require readelf

FOOTPRINT_DATA_MAX=8192
FOOTPRINT_FIRST_MALLOC_KIB=76

# The writable PT_LOAD segment: its part in the file (FileSiz, hex).
filesz=$(readelf -lW "$BUDDY_LIB" | awk '$1 == "LOAD" && $7 == "RW" { print $5 }')
if [ -z "$filesz" ]; then
    buddy_fail "no writable segment found in $BUDDY_LIB"
elif [ $((filesz)) -gt $FOOTPRINT_DATA_MAX ]; then
    buddy_fail "the writable segment holds $((filesz)) bytes of the file (at most $FOOTPRINT_DATA_MAX)"
else
    echo "ok: writable data in the file: $((filesz)) bytes"
fi

# Nothing allocated: no region, no thread cache.
err=$BUDDY_TMP/none.err
LD_PRELOAD=$BUDDY_LIB BUDDY_STATS=1 "$prog" none 2>"$err" || buddy_fail "the program failed: $(tail -3 "$err")"
if ! grep -Eq "^  regions mapped +0 " "$err" || ! grep -Eq "^  thread caches +0," "$err"; then
    buddy_fail "a process that allocates nothing mapped a region or made a cache:"
    grep -E "regions mapped|thread caches" "$err" >&2
else
    echo "ok: a process that allocates nothing maps no region and makes no cache"
fi

# The first malloc(16).
out=$(LD_PRELOAD=$BUDDY_LIB "$prog") || buddy_fail "the program failed"
kib=${out#first_malloc_kib=}
if [[ ! $kib =~ ^[0-9]+$ ]]; then
    buddy_fail "unexpected output: $out"
elif [ "$kib" -gt $FOOTPRINT_FIRST_MALLOC_KIB ]; then
    buddy_fail "the first malloc(16) took $kib KiB of anonymous memory (at most $FOOTPRINT_FIRST_MALLOC_KIB)"
else
    echo "ok: the first malloc(16) took $kib KiB of anonymous memory"
fi
buddy_finish
