#!/usr/bin/env bash
# heapmap.sh: BUDDY_HEAPMAP=FILE writes a dump of every region at exit, and
# scripts/heapmap turns it into a PNG. Runs python3 preloaded (a heap of
# mixed sizes), checks the dump's shape against the program's own statistics
# (BUDDY_STATS=json: the same regions, the same pages in use), then draws it.
# $1: libbuddymalloc.so; $2: scripts/heapmap.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
heapmap_script=$2
buddy_require python3 gnuplot

dump="$BUDDY_TMP/heap.dump"
BUDDY_HEAPMAP="$dump" BUDDY_STATS=json LD_PRELOAD="$BUDDY_LIB" python3 -c '
keep = [bytes(200 + i % 3000) for i in range(50000)]
big = [bytearray(100000) for i in range(20)]
print(len(keep), len(big))' >"$BUDDY_TMP/out" 2>"$BUDDY_TMP/stats.json" || buddy_fail "python3 failed"

python3 - "$dump" "$BUDDY_TMP/stats.json" <<'PY' || buddy_fail "the dump does not match the statistics"
import json, sys
dump, stats = sys.argv[1], json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
lines = open(dump).read().splitlines()
assert lines[0] == "buddymalloc-heapmap 1", lines[0]
pages = [list(map(int, l.split()[1:])) for l in lines if l.startswith("pages")]
assert len(pages) == stats["regions"] >= 1, (len(pages), stats["regions"])
assert all(len(p) == 1024 for p in pages), "one number per page"
assert all(0 <= c <= 41 for p in pages for c in p), "codes in range"
free = sum(c == 0 for p in pages for c in p)
assert free == stats["pages_free"], (free, stats["pages_free"])
assert any(c == 41 for p in pages for c in p), "the 100 KB blocks are page runs"
assert any(1 <= c <= 40 for p in pages for c in p), "the small objects are in slabs"
print("dump ok: %d regions, %d free pages" % (len(pages), free))
PY

"$heapmap_script" "$dump" -o "$BUDDY_TMP/map.png" || buddy_fail "scripts/heapmap failed"
[ "$(head -c 8 "$BUDDY_TMP/map.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
    buddy_fail "scripts/heapmap wrote no PNG"
buddy_finish
