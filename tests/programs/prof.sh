#!/usr/bin/env bash
# prof.sh: heap profiling (#22), with $1 preloaded.
#   leaks:   prof_leak ($2) leaks 32 MiB from prof_leak_known and frees the
#            rest: with leaks=1 the report on stderr names that function
#            first, within 20% of the bytes; scripts/heapprof ($5) writes the
#            profile, the leak report symbolized by addr2line (file:line)
#            and the SVG;
#   C++, Python: cxx_containers ($3) and a Python script print the same with
#            prof=1 as without; google-pprof --text reads their profiles and
#            lists the expected top function, none of the allocator's own;
#   fork:    prof_fork ($4) forks under 8 threads: no deadlock, every child's
#            profile holds every sample taken before the fork; a profile on
#            prof_signal.
# The leak and fork runs sample more often than the default (prof_sample=
# 65536), so that the estimates' spread (1/sqrt(samples)) is a few percent.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
leak=$(buddy_program "${2:-}" prof_leak) || exit 1
cxx=$(buddy_program "${3:-}" cxx_containers) || exit 1
forker=$(buddy_program "${4:-}" prof_fork) || exit 1
heapprof=${5:-}
buddy_require google-pprof python3 addr2line
t=$BUDDY_TMP

# pprof_top PROG PROFILE [pprof options]: the functions of --text, heaviest
# first (flat), one a line.
pprof_top() {
    local prog=$1 profile=$2; shift 2
    google-pprof --text "$@" "$prog" "$profile" 2>"$t/pprof.err" |
        awk '$2 ~ /%$/ && $3 ~ /%$/ { $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }'
}
# The allocator's own functions must never be a profile's frames.
own_frames='^(buddy_|alloc_|tcache_|prof_note|prof_large|zone_|free_not|malloc$|calloc$|realloc$)'

# ---- leaks ----
# prof_sample=16384: some 2000 of the leak's blocks sampled, so that 20%
# is 9 standard deviations of the estimate (at 65536: 4.5, a failure in
# about 150,000 runs).
LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=leaks=1,prof_sample=16384,prof_prefix=$t/leak "$leak" >"$t/leak.out" 2>"$t/leak.err" ||
    buddy_fail "leaks: prof_leak failed: $(tail -3 "$t/leak.err")"
truth=$(awk '/^leaked/ { print $2 }' "$t/leak.out")
first=$(grep -m1 -A1 '^leak 1:' "$t/leak.err")
bytes=$(awk '/^leak 1:/ { print $3; exit }' "$t/leak.err")
if ! grep -q ' prof_leak_known+' <<<"$first"; then
    buddy_fail "leaks: the first leak is not prof_leak_known's:"; head -12 "$t/leak.err" >&2
elif [ -z "$truth" ] || [ -z "$bytes" ] || [ $((bytes * 10)) -lt $((truth * 8)) ] || [ $((bytes * 10)) -gt $((truth * 12)) ]; then
    buddy_fail "leaks: $bytes bytes estimated, $truth leaked: more than 20% apart"
else
    echo "ok: leaks: prof_leak_known first, $bytes bytes estimated for $truth leaked"
fi
# Every other block was freed, and each free forgot its sample: the total
# still live is the leak's too.
total=$(awk '/leak report/ { for (i = 1; i < NF; i++) if ($i == "about") { print $(i + 1); exit } }' "$t/leak.err")
if [ -z "$total" ] || [ $((total * 10)) -lt $((truth * 8)) ] || [ $((total * 10)) -gt $((truth * 12)) ]; then
    buddy_fail "leaks: ${total:-no} bytes live at exit in all, $truth leaked: the frees did not forget their samples"
fi
[ "$(grep -c '^leak [0-9]*:' "$t/leak.err")" -le 10 ] || buddy_fail "leaks: more than ten leaks on stderr"
grep -q '^leak 1:' "$t/leak.leaks" || buddy_fail "leaks: no report in $t/leak.leaks"
[ -e "$t/leak.heap" ] && buddy_fail "leaks: leaks=1 alone wrote a heap profile"

if [ -n "$heapprof" ]; then
    (cd "$t" && BUDDY_LIB=$BUDDY_LIB "$heapprof" -o "$t/hp" --sample 65536 "$leak" >"$t/hp.out" 2>"$t/hp.err") ||
        buddy_fail "heapprof: failed: $(tail -3 "$t/hp.err")"
    txt=$(ls "$t"/hp/prof_leak.*.leaks.txt 2>/dev/null | head -1)
    if [ -z "$txt" ] || ! grep -A1 -m1 '^leak 1:' "$txt" | grep -Eq ' prof_leak_known .*prof_leak\.c:[0-9]+'; then
        buddy_fail "heapprof: the symbolized report does not name prof_leak_known at prof_leak.c:LINE"
        [ -n "$txt" ] && head -5 "$txt" >&2
    else
        echo "ok: heapprof: $(grep -A1 -m1 '^leak 1:' "$txt" | tail -1 | sed 's/^ *//')"
    fi
    ls "$t"/hp/prof_leak.*.heap >/dev/null 2>&1 || buddy_fail "heapprof: no heap profile"
    if command -v dot >/dev/null; then
        svg=$(ls "$t"/hp/prof_leak.*.svg 2>/dev/null | head -1)
        [ -n "$svg" ] && grep -q '<svg' "$svg" && grep -q 'prof_leak_known' "$svg" ||
            buddy_fail "heapprof: no SVG naming prof_leak_known"
    fi
    grep -q "written:" "$t/hp.err" || buddy_fail "heapprof: did not say where the files are"
fi

# ---- C++ and Python: the same output, and a profile that pprof reads ----
run_profiled() { # TAG TOP-REGEX PROG ARGS...
    local tag=$1 want=$2; shift 2
    "$@" </dev/null >"$t/$tag.plain" 2>/dev/null
    LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=prof=1,prof_prefix=$t/$tag "$@" </dev/null >"$t/$tag.prof" 2>"$t/$tag.err" ||
        buddy_fail "$tag: failed with prof=1: $(tail -3 "$t/$tag.err")"
    cmp -s "$t/$tag.plain" "$t/$tag.prof" || buddy_fail "$tag: output differs with prof=1"
    [ -s "$t/$tag.heap" ] || { buddy_fail "$tag: no heap profile"; return; }
    pprof_top "$1" "$t/$tag.heap" --alloc_space >"$t/$tag.top"
    local top
    top=$(head -1 "$t/$tag.top")
    if [ -z "$top" ]; then
        buddy_fail "$tag: google-pprof listed nothing: $(tail -3 "$t/pprof.err")"
    elif ! grep -Eq "$want" <<<"$top"; then
        buddy_fail "$tag: google-pprof's top function is '$top', not /$want/"
    elif head -5 "$t/$tag.top" | grep -Eq "$own_frames"; then
        buddy_fail "$tag: the allocator's own frames are in the profile: $(head -5 "$t/$tag.top" | tr '\n' ';')"
    else
        echo "ok: $tag: same output with prof=1; google-pprof's top: $top"
    fi
}
run_profiled cxx 'allocate|_M_create|_M_mutate|_M_construct|operator new' "$cxx"
py=$(python3 -c 'import sys; print(sys.executable)')
PYTHONHASHSEED=0 run_profiled python 'Py|list_resize|dict|unicode|bytes' "$py" "$here/dict_strings.py"

# ---- fork under threads, and the profile on a signal ----
mkdir -p "$t/fork"
LD_PRELOAD=$BUDDY_LIB BUDDY_OPTIONS=prof=1,prof_sample=65536,prof_signal=USR2,prof_prefix=$t/fork/signal.%p \
    timeout 180 "$forker" "$t/fork" signal >"$t/fork.out" 2>"$t/fork.err" ||
    buddy_fail "fork: prof_fork failed or hung (status $?): $(tail -3 "$t/fork.err")"
before=$(pprof_top "$forker" "$t/fork/before.heap" | grep -m1 'kept_before_fork')
[ -n "$before" ] || buddy_fail "fork: no kept_before_fork in the profile before the forks"
children=0
for child in "$t"/fork/child.*.heap; do
    [ -e "$child" ] || continue
    children=$((children + 1))
    got=$(pprof_top "$forker" "$child" | grep -m1 'kept_before_fork')
    [ "$got" = "$before" ] || buddy_fail "fork: $(basename "$child"): kept_before_fork is '$got', before the fork '$before'"
    pprof_top "$forker" "$child" | grep -q 'kept_in_child' || buddy_fail "fork: $(basename "$child"): no kept_in_child"
done
[ "$children" -eq 12 ] || buddy_fail "fork: $children children's profiles, not 12"
signal=$(ls "$t"/fork/signal.*.1.heap 2>/dev/null | head -1)
if [ -z "$signal" ] || ! pprof_top "$forker" "$signal" | grep -q 'kept_before_fork'; then
    buddy_fail "fork: no profile on prof_signal holding kept_before_fork"
fi
[ "$BUDDY_FAILED" -eq 0 ] && echo "ok: fork: $children children under 8 threads kept every sample ($before)"
buddy_finish
