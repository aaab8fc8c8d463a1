# setup.sh: sourced by scripts/run and scripts/test. Installs what is missing
# on a Debian machine (apt-get, non-interactive) and configures meson builds.
set -euo pipefail

BUDDY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Debian packages each command needs: "command-or-file:package".
# scripts/run builds the library alone: meson wants a C++ compiler too (the
# project's languages), not clang (used when there is one) nor Criterion.
BUDDY_RUN_NEEDS=(meson:meson ninja:ninja-build cc:gcc c++:g++)
BUDDY_BUILD_NEEDS=("${BUDDY_RUN_NEEDS[@]}" clang:clang pkg-config:pkg-config
  /usr/include/criterion/criterion.h:libcriterion-dev)
BUDDY_TEST_NEEDS=(python3:python3 clang-format:clang-format sqlite3:sqlite3 redis-server:redis-server redis-benchmark:redis-tools
  sort:coreutils valgrind:valgrind gnuplot:gnuplot-nox google-pprof:google-perftools dot:graphviz addr2line:binutils /usr/lib/x86_64-linux-gnu/libtsan.so.2:libtsan2 /usr/lib/x86_64-linux-gnu/libasan.so.8:libasan8)

buddy_missing() {
  local need item pkg missing=()
  for need in "$@"; do
    item=${need%%:*} pkg=${need##*:}
    if [[ $item == /* ]]; then [[ -e $item ]] || missing+=("$pkg")
    else command -v "$item" >/dev/null 2>&1 || missing+=("$pkg"); fi
  done
  printf '%s\n' "${missing[@]}"
}

buddy_install() {
  local missing
  mapfile -t missing < <(buddy_missing "$@" | sed '/^$/d' | sort -u)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  echo "buddymalloc: installing ${missing[*]}" >&2
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "buddymalloc: please install: ${missing[*]} (no apt-get here)" >&2
    return 1
  fi
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# buddy_configure DIR [meson options…]: sets DIR up once, then applies the
# options again only when they changed: `meson configure` starts Python and
# makes ninja regenerate the tree, a second or so, even with nothing new.
# DIR/.buddy-configured records the options last applied and meson's own
# record of them (meson-private/cmd_line.txt), so that a `meson configure`
# by hand in between is seen too. The environment (CC, CXX) chooses the
# compilers when DIR is first set up.
buddy_configure() {
  local dir=$1; shift
  local stamp=$dir/.buddy-configured
  if [[ -f $dir/build.ninja ]]; then
    [[ -f $stamp && $(<"$stamp") == "$(buddy_configured_record "$dir" "$@")" ]] && return 0
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$BUDDY_ROOT" "$@" >/dev/null
  fi
  buddy_configured_record "$dir" "$@" >"$stamp"
}

buddy_configured_record() {
  local dir=$1; shift
  printf '%s\n' "$*"
  cat "$dir/meson-private/cmd_line.txt" 2>/dev/null || true
}

# The release library (scripts/run; scripts/bench does the same) is built with
# clang when there is one and CC is not set: its fast paths come out shorter
# than gcc's (docs/benchmarks.md has the counts). scripts/test runs every
# suite on a clang build as well.
buddy_configure_release() {
  if [[ -z ${CC:-} ]] && command -v clang >/dev/null 2>&1 && command -v clang++ >/dev/null 2>&1; then
    # A tree set up earlier with another compiler is set up again.
    if [[ -f $1/build.ninja ]] && ! grep -q clang "$1/meson-info/intro-targets.json" 2>/dev/null; then
      rm -rf "$1"
    fi
    (export CC=clang CXX=clang++; buddy_configure "$@")
  else
    buddy_configure "$@"
  fi
}

# buddy_library_link DIR: makes sure DIR/preload/libbuddymalloc.so is there.
# The library file is versioned (libbuddymalloc.so.0.1.0); meson makes
# libbuddymalloc.so a symlink to it when it sets DIR up. A tree that built the
# library before it had a version keeps that path in its ninja log as a build
# output, and ninja deletes it as a dead output after every regeneration:
# the log forgets it once the file is gone (recompact), and a reconfiguration
# makes the symlink again.
buddy_library_link() {
  local dir=$1
  [[ -e $dir/preload/libbuddymalloc.so ]] && return 0
  ninja -C "$dir" -t recompact >/dev/null
  meson setup --reconfigure "$dir" "$BUDDY_ROOT" >/dev/null
}
