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
#    and the static caches were data; 72 KiB when each bin's stack had the
#    pages of its largest size; 64 KiB now);
#  - one block in each of 19 more classes costs at most
#    FOOTPRINT_CLASSES_KIB: a slab page each and the few pages of the bins'
#    nurseries (140 KiB when each class's bin took a page of its own; 88 now);
#  - the library's code mapping has at most FOOTPRINT_CODE_KIB resident once
#    the process has allocated and freed: the code a process runs lies in
#    the first 64 KiB window the kernel maps at a fault (preload/meson.build;
#    92 KiB, the whole code, when the API came last; 64 now).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
prog=$(buddy_program "${2:-}" footprint) || exit 1
buddy_require readelf

FOOTPRINT_DATA_MAX=8192
FOOTPRINT_FIRST_MALLOC_KIB=68
FOOTPRINT_CLASSES_KIB=100
FOOTPRINT_CODE_KIB=64

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

# The first malloc(16), then one block in each of 19 more classes, then the
# code's resident pages.
out=$(LD_PRELOAD=$BUDDY_LIB "$prog") || buddy_fail "the program failed"
value() { sed -n "s/^$1=//p" <<<"$out"; }
check_at_most() { # name, limit, what
    local kib
    kib=$(value "$1")
    if [[ ! $kib =~ ^[0-9]+$ ]]; then
        buddy_fail "unexpected output (no $1): $out"
    elif [ "$kib" -gt "$2" ]; then
        buddy_fail "$3 took $kib KiB (at most $2)"
    else
        echo "ok: $3 took $kib KiB"
    fi
}
check_at_most first_malloc_kib $FOOTPRINT_FIRST_MALLOC_KIB "the first malloc(16), in anonymous memory,"
check_at_most classes_kib $FOOTPRINT_CLASSES_KIB "a block in each of 19 more classes, in anonymous memory,"
if [ "$(value code_kib)" = 0 ]; then
    buddy_fail "no code mapping of libbuddymalloc found in /proc/self/smaps: $out"
else
    check_at_most code_kib $FOOTPRINT_CODE_KIB "the library's code, resident,"
fi
buddy_finish
