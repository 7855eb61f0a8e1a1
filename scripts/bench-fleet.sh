#!/usr/bin/env bash
# Issue 6's benchmark: a roster of N machines whose transport is a local
# command (each machine a home: command = ["<keyturn>", "--home", "<dir>/mNNN"]),
# a whole communication rotation over all of them with the concurrency at its
# default, and `machines status` verifying that they converged.
#
#   ./scripts/bench-fleet.sh            # 10 and 100 machines
#   ./scripts/bench-fleet.sh 100 250    # any sizes
#
# Prints one JSON line per size: the wall time of each operator command, the
# push (`rotation run` joining every machine) and the verification together,
# and how many commands the operator typed, which does not grow with N.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -eq 0 ]; then set -- 10 100; fi
cargo build --quiet --release --bin keyturn
keyturn="$PWD/target/release/keyturn"
unset KEYTURN_HOME KEYTURN_TEST_PANIC KEYTURN_CRASH_AT KEYTURN_TEST_HOLD_LOCK_MS KEYTURN_LOCK_WAIT_MS RUST_BACKTRACE RUST_LIB_BACKTRACE

# Components without a service or process: the restart steps are skipped,
# so the figures are keyturn's own work, not this machine's process table.
unconfigured=$'[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n'

for n in "$@"; do
  dir="$PWD/target/bench-fleet/n$n"
  rm -rf "$dir"
  mkdir -p "$dir/first"
  {
    printf '%s\n' "$unconfigured"
    for i in $(seq -w 1 "$n"); do
      mkdir -p "$dir/m$i"
      printf '%s' "$unconfigured" > "$dir/m$i/keyturn.toml"
      printf '[[machines]]\nname = "m%s"\nroles = ["execution"]\ncommand = ["%s", "--home", "%s"]\n\n' \
        "$i" "$keyturn" "$dir/m$i"
    done
  } > "$dir/first/keyturn.toml"

  commands=0
  declare -A took=()
  # Runs one operator command, timing it; $1 names it, $2 the exit expected.
  operator() {
    local name=$1 expect=$2 start end code=0
    shift 2
    commands=$((commands + 1))
    start=$EPOCHREALTIME
    "$keyturn" --home "$dir/first" "$@" > "$dir/$name.out" 2> "$dir/$name.err" || code=$?
    end=$EPOCHREALTIME
    if [ "$code" -ne "$expect" ]; then
      echo "bench-fleet: keyturn $* exited $code, expected $expect:" >&2
      cat "$dir/$name.err" >&2
      exit 1
    fi
    took[$name]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  }

  operator start 0 rotation start communication --setup multi --generate
  operator run_to_distribute 3 rotation run --wait 2
  operator confirm_distribute 0 rotation confirm distribute
  operator push 3 rotation run --wait 2
  operator verify 0 machines status --json
  operator confirm_connect 0 rotation confirm connect

  new=$("$keyturn" --home "$dir/first" fingerprint communication)
  done_steps=$("$keyturn" --home "$dir/first" rotation status --json | grep -c "\"evidence\": \"m[0-9]* reports $new" || true)
  converged=$(grep -c "\"on\": $n," "$dir/verify.out" || true)
  if [ "$done_steps" -ne "$n" ] || [ "$converged" -ne 2 ]; then
    echo "bench-fleet: $done_steps of $n machine steps done; convergence lines: $converged of 2" >&2
    exit 1
  fi
  push_and_verify=$(awk -v a="${took[push]}" -v b="${took[verify]}" 'BEGIN { printf "%.3f", a + b }')
  printf '{"machines": %d, "parallel": 8, "transport": "local command", "start_s": %s, "run_to_distribute_s": %s, "confirm_distribute_s": %s, "push_s": %s, "verify_s": %s, "push_and_verify_s": %s, "confirm_connect_s": %s, "operator_commands": %d}\n' \
    "$n" "${took[start]}" "${took[run_to_distribute]}" "${took[confirm_distribute]}" "${took[push]}" \
    "${took[verify]}" "$push_and_verify" "${took[confirm_connect]}" "$commands"
  unset took
done
