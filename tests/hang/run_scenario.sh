#!/usr/bin/env bash
# run_scenario.sh: runs one hang scenario of tests/hang/ many times, each run
# under its own timeout, and counts the runs that hang or fail.
#
#   run_scenario.sh SCENARIO PROGRAM [REPETITIONS] [TIMEOUT_S]
#
# SCENARIO    the scenario's name, for messages ("vsz" is special, below)
# PROGRAM     the scenario's executable
# REPETITIONS runs to make; empty or absent: $BUDDY_HANG_RUNS, else
#             DEFAULT_RUNS
# TIMEOUT_S   seconds one run may take before it counts as a hang; empty or
#             absent: DEFAULT_TIMEOUT_S
#
# The scenarios' bugs are races: a run hangs or fails only now and then, so
# each is repeated. A run that outlives its timeout is reported as
#   hang: SCENARIO run I/N timed out after S s (FORM)
# and any other non-zero exit prints the program's stderr (its stdout when
# stderr is empty). FORM is $HANG_FORM (meson sets it: preloaded or linked),
# else "preloaded" when LD_PRELOAD is set, else "plain". The driver stops
# after MAX_FAILURES failed runs, then prints one line "N passed, M failed"
# (counting runs) and exits non-zero if any run failed. Each run gets its
# number in HANG_RUN (1, 2, ...): a scenario with several variants too slow
# to run all at every run may run one per run, in turn.
#
# Scenario "vsz" compares address space instead: PROGRAM prints its VmSize in
# KiB after a first malloc; it is run once without LD_PRELOAD and once with
# the LD_PRELOAD this script got, and the run fails if the preloaded VmSize
# exceeds the plain one by more than VSZ_MAX_EXTRA_MIB. That figure is
# deterministic, so it is one run whatever REPETITIONS says.
set -u

# A hang that shows in 1 run out of 20 escapes 60 runs with probability
# 0.95^60 < 5%: 60 runs catch it with at least 95% probability.
readonly DEFAULT_RUNS=60
readonly DEFAULT_TIMEOUT_S=10
# Grace after the timeout's SIGTERM before SIGKILL (timeout -k).
readonly KILL_AFTER_S=2
readonly MAX_FAILURES=3
# What an allocator may add to a small program's address space at start-up:
# its first region (4 MiB and its metadata), a leaf of the small map (1 MiB),
# its static maps and the C++ runtime fit; a reservation sized for the whole
# address space (tens of GiB) does not. Such a reservation makes every
# program fail under `ulimit -v` limits that are otherwise generous.
readonly VSZ_MAX_EXTRA_MIB=16
readonly KIB_PER_MIB=1024
# Exit statuses of timeout(1): the command timed out (SIGTERM worked), or
# had to be killed after KILL_AFTER_S (128 + SIGKILL).
readonly TIMEOUT_STATUS=124
readonly SIGNAL_STATUS_BASE=128
readonly KILLED_STATUS=137
readonly NS_PER_S=1000000000
# Lines of a failed run's output shown.
readonly SHOW_LINES=20

if [[ $# -lt 2 || $# -gt 4 ]]; then
  echo "usage: $0 SCENARIO PROGRAM [REPETITIONS] [TIMEOUT_S]" >&2
  exit 2
fi
scenario=$1
program=$2
runs=${3:-${BUDDY_HANG_RUNS:-$DEFAULT_RUNS}}
timeout_s=${4:-$DEFAULT_TIMEOUT_S}
if [[ -n ${HANG_FORM:-} ]]; then
  form=$HANG_FORM
elif [[ -n ${LD_PRELOAD:-} ]]; then
  form=preloaded
else
  form=plain
fi
if ! [[ $runs =~ ^[1-9][0-9]*$ && $timeout_s =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: REPETITIONS and TIMEOUT_S must be positive integers (got '$runs', '$timeout_s')" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/hang_${scenario}.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

# run_once I N [env options...]: runs PROGRAM once under the timeout, through
# env(1) with the given options (if any) and HANG_RUN=I; its stdout is left
# in $work/out. Returns 0 if it passed, else reports and returns 1.
run_once() {
  local i=$1 n=$2 status start elapsed_ns
  shift 2
  start=$(date +%s%N)
  # The braces' 2>/dev/null only silences bash's own "Aborted"/"Killed"
  # notices for a run that dies of a signal: the status says it below.
  { timeout -k "$KILL_AFTER_S" "$timeout_s" env "$@" HANG_RUN="$i" "$program" >"$work/out" 2>"$work/err"; } 2>/dev/null
  status=$?
  elapsed_ns=$(($(date +%s%N) - start))
  if [[ $status -eq 0 ]]; then
    return 0
  fi
  # 137 is also what a program killed by SIGKILL (the OOM killer) returns:
  # a hang only if the timeout had expired.
  if [[ $status -eq $TIMEOUT_STATUS ||
        ($status -eq $KILLED_STATUS && $elapsed_ns -ge $((timeout_s * NS_PER_S))) ]]; then
    echo "hang: $scenario run $i/$n timed out after $timeout_s s ($form)"
    return 1
  fi
  if [[ $status -gt $SIGNAL_STATUS_BASE ]]; then
    echo "fail: $scenario run $i/$n died of SIG$(kill -l $((status - SIGNAL_STATUS_BASE))) ($form):"
  else
    echo "fail: $scenario run $i/$n exited with status $status ($form):"
  fi
  if [[ -s $work/err ]]; then
    head -n "$SHOW_LINES" "$work/err"
  else
    head -n "$SHOW_LINES" "$work/out"
  fi
  return 1
}

count() { # count STATUS
  if [[ $1 -eq 0 ]]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
}

if [[ $scenario == vsz ]]; then
  if [[ -z ${LD_PRELOAD:-} ]]; then
    echo "fail: vsz compares a preloaded run with a plain one, but LD_PRELOAD is not set"
    count 1
  elif run_once 1 1 -u LD_PRELOAD && plain_kib=$(<"$work/out") &&
       run_once 1 1 && preloaded_kib=$(<"$work/out"); then
    extra_kib=$((preloaded_kib - plain_kib))
    echo "VmSize after the first malloc: $plain_kib KiB plain, $preloaded_kib KiB preloaded"
    if [[ $extra_kib -gt $((VSZ_MAX_EXTRA_MIB * KIB_PER_MIB)) ]]; then
      echo "fail: vsz: the preloaded allocator adds $((extra_kib / KIB_PER_MIB)) MiB of address space" \
           "at start-up, more than $VSZ_MAX_EXTRA_MIB MiB ($form)"
      count 1
    else
      count 0
    fi
  else
    count 1
  fi
else
  for ((i = 1; i <= runs && failed < MAX_FAILURES; i++)); do
    run_once "$i" "$runs"
    count $?
  done
  if [[ $failed -ge $MAX_FAILURES && $((passed + failed)) -lt $runs ]]; then
    echo "stopped after $MAX_FAILURES failed runs"
  fi
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
