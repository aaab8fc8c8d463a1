#!/usr/bin/env bash
# bug_matrix.sh: runs every heap-bug program of tests/bugs (one bug each, see
# bugs.h) with an allocator preloaded, and tells for each whether the
# allocator caught it: the process aborted (SIGABRT) with the allocator's own
# report on stderr. A crash by accident (SIGSEGV, a hang, an abort with no
# report) is "crashed", a program that ran on is "missed".
#
#   bug_matrix.sh LIB BINDIR OUT [EXPECTED]
#     LIB       the allocator to preload ("glibc": none)
#     BINDIR    where the bug programs are built
#     OUT       the table, written there (and to stdout): case, then one
#               column per mode
#     EXPECTED  cases that must be caught, "CASE MODE" a line (# comments);
#               one that is not fails the run (exit 1)
# The allocator's name (BUG_ALLOCATOR: buddymalloc by default, glibc,
# jemalloc, mimalloc or tcmalloc) chooses what counts as its report and its
# modes: buddymalloc runs default and secure (BUDDY_OPTIONS=secure=1), the
# others their default only.
set -u
lib=${1:?usage: bug_matrix.sh LIB BINDIR OUT [EXPECTED]}
bindir=${2:?usage: bug_matrix.sh LIB BINDIR OUT [EXPECTED]}
out=${3:?usage: bug_matrix.sh LIB BINDIR OUT [EXPECTED]}
expected=${4:-}
allocator=${BUG_ALLOCATOR:-buddymalloc}

case $allocator in
    buddymalloc) report='^buddymalloc: error: '; modes=(default secure) ;;
    glibc) report='(^|: )(free|malloc|realloc|double free|munmap_chunk|corrupted|malloc_consolidate|tcache|_int_free|_int_malloc)[^ ]*[(): ]'; modes=(default) ;;
    jemalloc) report='<jemalloc>'; modes=(default) ;;
    mimalloc) report='mimalloc: error'; modes=(default) ;;
    tcmalloc) report='(tcmalloc|Attempt to free invalid pointer|CHECK)'; modes=(default) ;;
    *) echo "bug_matrix.sh: unknown allocator $allocator" >&2; exit 2 ;;
esac

cases=()
for kind in small medium large; do
    for n in 1 32; do cases+=("underflow $kind $n"); done
    for n in 1 32 1048576; do
        for how in direct memcpy; do cases+=("overflow $kind $n $how"); done
    done
    for how in write reuse read; do cases+=("use_after_free $kind $how"); done
    for how in reuse delayed interleaved; do cases+=("double_free $kind $how"); done
done
cases+=("bad_free stack" "bad_free alloca")
for how in near far unaligned; do
    for kind in small medium large; do cases+=("bad_free $how $kind"); done
done
for how in 'new-delete[]' 'new[]-delete' malloc-delete new-free sized-delete; do
    cases+=("delete_mismatch $how")
done
for how in new-free malloc-delete; do
    for kind in medium large; do cases+=("delete_mismatch $how $kind"); done
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/bug-matrix.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# run CASE MODE: prints caught, crashed (signal or hang, no report) or missed.
run() {
    local -a argv env=()
    read -r -a argv <<<"$1"
    argv[0]=$bindir/${argv[0]}
    [ "$lib" = glibc ] || env+=("LD_PRELOAD=$lib")
    [ "$2" = secure ] && env+=("BUDDY_OPTIONS=secure=1")
    env "${env[@]}" timeout -s KILL 20 "${argv[@]}" >"$scratch/out" 2>"$scratch/err"
    local rc=$?
    if [ $rc -eq 134 ] && grep -Eq "$report" "$scratch/err"; then echo caught
    elif [ $rc -eq 0 ] && grep -q '^survived' "$scratch/out"; then echo missed
    elif [ $rc -ge 128 ]; then echo "crashed($(kill -l $((rc - 128)) 2>/dev/null || echo $rc))"
    else echo "failed(exit $rc)"
    fi
}

status=0
{
    printf '%-38s' "case ($allocator)"
    for m in "${modes[@]}"; do printf ' %-14s' "$m"; done
    printf '\n'
} >"$out"
declare -A result
for c in "${cases[@]}"; do
    line=$(printf '%-38s' "$c")
    for m in "${modes[@]}"; do
        r=$(run "$c" "$m")
        result["$c|$m"]=$r
        line+=$(printf ' %-14s' "$r")
    done
    echo "$line" >>"$out"
done
cat "$out"

if [ -n "$expected" ]; then
    while IFS= read -r want; do
        want=${want%%#*}
        want=$(echo "$want" | sed 's/[[:space:]]*$//')
        [ -z "$want" ] && continue
        m=${want##* }
        c=${want% *}
        got=${result["$c|$m"]:-not run}
        if [ "$got" != caught ]; then
            echo "FAIL: '$c' in mode $m is expected to be caught, but was: $got" >&2
            status=1
        fi
    done <"$expected"
    # Caught but not listed: say so, so that the list can grow.
    for key in "${!result[@]}"; do
        [ "${result[$key]}" = caught ] || continue
        grep -qxF "${key%|*} ${key#*|}" <(sed 's/[[:space:]]*#.*//; s/[[:space:]]*$//' "$expected") ||
            echo "note: '${key%|*}' in mode ${key#*|} is caught but not in $(basename "$expected")"
    done
fi
[ $status -eq 0 ] && echo "bug_matrix.sh: passed" || echo "bug_matrix.sh: FAILED" >&2
exit $status
