#!/usr/bin/env bash
# python.sh: runs python3 on a dict/string-heavy script and a threaded script,
# plain and with $1 preloaded; outputs and exit statuses must match.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
buddy_init "$@"
buddy_require python3

# Run the interpreter itself, not a wrapper script (pyenv shims are bash).
py=$(python3 -c 'import sys; print(sys.executable)') || { buddy_fail "python3 does not run"; buddy_finish; }
export PYTHONHASHSEED=0

for script in dict_strings threaded; do
    buddy_run_both "python-$script" "$py" "$here/$script.py"
    buddy_expect_status "python-$script" 0 $?
done
buddy_finish
