#!/usr/bin/env bash
# scripts.sh: the launcher and scripts/run, as a user calls them.
#  - `buddymalloc --print-path` (the build tree's launcher and the one meson
#    installs) prints the library's path, which works as LD_PRELOAD;
#    `buddymalloc PROG` puts the library first in LD_PRELOAD, keeps what was
#    there and passes PROG's exit status on; no PROG is a usage error.
#  - scripts/run, in a tree of its own (BUDDY_RUN_BUILD) and with no clang on
#    PATH: builds the library with gcc, `--lib` prints its path, and a second
#    call neither reconfigures nor rebuilds anything. Criterion is never
#    looked for.
# $1: libbuddymalloc.so; $2: the build tree's launcher; $3: the launcher
# meson installs; $4: the library's installed path; $5: scripts/run.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$1"
launcher=$2 installed=$3 installed_lib=$4 run=$5
buddy_require sort gcc g++ meson ninja

# ---- the launcher ------------------------------------------------------------
path=$(sh "$launcher" --print-path) || buddy_fail "--print-path failed"
[ "$(readlink -f "$path")" = "$(readlink -f "$BUDDY_LIB")" ] ||
    buddy_fail "--print-path printed '$path', not the library $BUDDY_LIB"
BUDDY_STATS=1 LD_PRELOAD="$path" sort /dev/null 2>"$BUDDY_TMP/print-path.err"
grep -Eq '^  regions mapped +[1-9]' "$BUDDY_TMP/print-path.err" || buddy_fail "LD_PRELOAD=\$(buddymalloc --print-path) did not preload it"
[ "$(sh "$installed" --print-path)" = "$installed_lib" ] ||
    buddy_fail "the installed launcher prints '$(sh "$installed" --print-path)', not $installed_lib"

seen=$(LD_PRELOAD=/other.so sh "$launcher" sh -c 'echo "$LD_PRELOAD"' 2>/dev/null)
[ "$seen" = "$path:/other.so" ] || buddy_fail "LD_PRELOAD under the launcher is '$seen'"
sh "$launcher" sh -c 'exit 3'
[ $? -eq 3 ] || buddy_fail "the launcher did not pass the exit status on"
sh "$launcher" 2>/dev/null
[ $? -eq 2 ] || buddy_fail "the launcher with no program is not a usage error (exit 2)"
[ "$BUDDY_FAILED" -eq 0 ] && echo "ok: the launcher"

# ---- scripts/run ---------------------------------------------------------------
# A PATH without clang: every command of the system's but clang's.
bin="$BUDDY_TMP/bin"
mkdir -p "$bin"
for dir in /usr/local/bin /usr/bin /bin; do
    for f in "$dir"/*; do
        name=${f##*/}
        case $name in clang* | *-clang* | *criterion*) continue ;; esac
        [ -e "$bin/$name" ] || ln -s "$f" "$bin/$name"
    done
done
build="$BUDDY_TMP/build-release"
export BUDDY_RUN_BUILD="$build"
lib=$(env -u CC -u CXX PATH="$bin" bash "$run" --lib) || buddy_fail "scripts/run --lib failed"
[ -f "$lib" ] && [ "$lib" = "$build/preload/libbuddymalloc.so" ] || buddy_fail "scripts/run --lib printed '$lib'"
grep -q '^C compiler for the host machine: .*(gcc ' "$build/meson-logs/meson-log.txt" ||
    buddy_fail "the library was not built by gcc"
if grep -i criterion "$build/meson-logs/meson-log.txt" | grep -qv 'skipped: feature tests disabled'; then
    buddy_fail "scripts/run looked for Criterion"
fi

stamp() { stat -c '%n %Y.%y' "$build/build.ninja" "$build/meson-private/cmd_line.txt" "$(readlink -f "$lib")"; }
before=$(stamp)
out=$(BUDDY_STATS=1 env -u CC -u CXX PATH="$bin" bash "$run" sort /dev/null 2>&1)
grep -Eq '^  regions mapped +[1-9]' <<<"$out" || buddy_fail "scripts/run sort did not preload the library: $out"
[ "$(stamp)" = "$before" ] || buddy_fail "a second scripts/run reconfigured or rebuilt: $(stamp) / $before"
ninja -C "$build" -n | grep -q 'no work to do' || buddy_fail "the tree is not up to date after scripts/run"
[ "$BUDDY_FAILED" -eq 0 ] && echo "ok: scripts/run"
buddy_finish
