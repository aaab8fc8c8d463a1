#!/usr/bin/env bash
# check_format.sh SOURCE_ROOT: every C and C++ file of the tree follows
# .clang-format (clang-format --dry-run reports any line it would change).
# Exit 77 (skipped) without clang-format.
root=$1
command -v clang-format >/dev/null 2>&1 || { echo "clang-format not installed"; exit 77; }
cd "$root" || exit 1
mapfile -t files < <(find libbuddy preload tests bench -name '*.c' -o -name '*.h' -o -name '*.cpp' | sort)
clang-format --dry-run --Werror "${files[@]}" && echo "${#files[@]} files follow .clang-format"
