# lib.sh: shared helpers for the real-program tests (sourced, not run).
#
# Each test script takes the allocator library to preload as $1 (normally
# <builddir>/preload/libbuddymalloc.so; any malloc replacement works, which is
# how the scripts are checked against jemalloc/mimalloc too). The helpers run
# a program plain and preloaded, require the same stdout and exit status, and
# prove the preloaded run really used the library.
#
# Proof of use, chosen by BUDDY_PROOF (one place to switch):
#   stats (default): BUDDY_STATS=1 makes buddymalloc print its statistics on
#       stderr at exit; they must show regions mapped for the program;
#   bindings: the dynamic linker's LD_DEBUG=bindings log, written to
#       files, must show the symbol `malloc' bound to the preloaded library.
# Exit codes: 0 pass, 1 fail, 77 skip (a required tool is missing).

set -u

BUDDY_SKIP=77
BUDDY_PROOF=${BUDDY_PROOF:-stats}

# buddy_init LIB: checks the library argument and makes a scratch directory
# ($BUDDY_TMP) removed on exit.
buddy_init() {
    if [ $# -lt 1 ] || [ ! -f "$1" ]; then
        echo "usage: $0 /path/to/libbuddymalloc.so (got '${1:-}')" >&2
        exit 1
    fi
    BUDDY_LIB=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
    BUDDY_LIB_NAME=$(basename "$BUDDY_LIB")
    BUDDY_TMP=$(mktemp -d "${TMPDIR:-/tmp}/buddy-prog.XXXXXX")
    trap 'buddy_cleanup' EXIT
    BUDDY_FAILED=0
}

# buddy_program PATH NAME: prints PATH, the program a script runs; exits with
# a usage line if it is not executable. prog=$(buddy_program "${2:-}" NAME) || exit 1
buddy_program() {
    if [ -z "${1:-}" ] || [ ! -x "$1" ]; then
        echo "usage: $0 LIB /path/to/$2" >&2
        exit 1
    fi
    printf '%s\n' "$1"
}

# Extra cleanup a script wants run at exit (e.g. stopping a server).
BUDDY_ON_EXIT=:
buddy_cleanup() {
    eval "$BUDDY_ON_EXIT"
    rm -rf "$BUDDY_TMP"
}

# buddy_require TOOL...: skips the test (exit 77) if a tool is not installed.
buddy_require() {
    local t
    for t in "$@"; do
        if ! command -v "$t" >/dev/null 2>&1; then
            echo "SKIP: $t is not installed" >&2
            exit "$BUDDY_SKIP"
        fi
    done
}

buddy_fail() {
    echo "FAIL: $*" >&2
    BUDDY_FAILED=1
}

# buddy_preload_env TAG: prints the env assignments for a preloaded run whose
# proof material is kept under tag TAG (use with: env $(buddy_preload_env t) cmd).
buddy_preload_env() {
    local dir="$BUDDY_TMP/proof-$1"
    mkdir -p "$dir"
    printf 'LD_PRELOAD=%s\n' "$BUDDY_LIB"
    case "$BUDDY_PROOF" in
        stats) printf 'BUDDY_STATS=1\n' ;;
        *) printf 'LD_DEBUG=bindings\nLD_DEBUG_OUTPUT=%s/ld\n' "$dir" ;;
    esac
}

# buddy_assert_used TAG STDERR_FILE: checks the preloaded run tagged TAG used
# the library (STDERR_FILE is its stderr, used by the stats method).
buddy_assert_used() {
    local dir="$BUDDY_TMP/proof-$1" err="$2"
    case "$BUDDY_PROOF" in
        stats)
            # The summary must show memory the program's allocations took.
            if ! grep -Eq "^  regions mapped +[1-9]" "$err" || ! grep -q "^buddymalloc statistics" "$err"; then
                buddy_fail "$1: BUDDY_STATS=1 printed no buddymalloc summary with allocations on stderr"
                return 1
            fi ;;
        *)
            if ! cat "$dir"/ld.* 2>/dev/null |
                grep -qF "to $BUDDY_LIB [0]: normal symbol \`malloc'"; then
                buddy_fail "$1: malloc was never bound to $BUDDY_LIB_NAME (LD_DEBUG=bindings)"
                return 1
            fi ;;
    esac
    echo "ok: $1 used $BUDDY_LIB_NAME"
}

# buddy_run_both TAG CMD...: runs CMD plain and preloaded (stdin from
# /dev/null), requires equal stdout and exit status and proof of use.
# Outputs are kept as $BUDDY_TMP/TAG.{plain,preloaded}.{out,err}.
buddy_run_both() {
    local tag="$1"; shift
    local p="$BUDDY_TMP/$tag" rc_plain rc_pre ok=1
    "$@" </dev/null >"$p.plain.out" 2>"$p.plain.err"
    rc_plain=$?
    env $(buddy_preload_env "$tag") "$@" </dev/null >"$p.preloaded.out" 2>"$p.preloaded.err"
    rc_pre=$?
    if [ "$rc_plain" -ne "$rc_pre" ]; then
        buddy_fail "$tag: exit status $rc_plain plain but $rc_pre preloaded"
        ok=0
        sed 's/^/  preloaded stderr: /' "$p.preloaded.err" | grep -v 'binding file' | tail -20 >&2
    fi
    if ! cmp -s "$p.plain.out" "$p.preloaded.out"; then
        buddy_fail "$tag: stdout differs between plain and preloaded runs"
        ok=0
        diff "$p.plain.out" "$p.preloaded.out" | head -20 >&2
    fi
    buddy_assert_used "$tag" "$p.preloaded.err"
    [ "$ok" -eq 1 ] &&
        echo "ok: $tag ran (exit $rc_plain, $(wc -l <"$p.plain.out") lines of output, same both ways)"
    return "$rc_plain"
}

# buddy_expect_status TAG WANT GOT: the program itself must have succeeded.
buddy_expect_status() {
    if [ "$3" -ne "$2" ]; then
        buddy_fail "$1: exit status $3, expected $2"
        sed 's/^/  stderr: /' "$BUDDY_TMP/$1.plain.err" | tail -20 >&2
    fi
}

buddy_finish() {
    if [ "$BUDDY_FAILED" -ne 0 ]; then
        echo "$(basename "$0"): FAILED" >&2
        exit 1
    fi
    echo "$(basename "$0"): passed"
    exit 0
}
