#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a while each, on the stable
# toolchain (RUSTC_BOOTSTRAP lets cargo-fuzz pass its flags; no sanitizer).
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]   (default 600 s, all targets)
# The corpus in fuzz/corpus/ grows; crashes land in fuzz/artifacts/; the
# ordinary test run replays both (tests/fuzz_corpus.rs). Needs cargo-fuzz:
#   cargo install cargo-fuzz --locked
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(key_text token keys_file credentials_file config rotation_state remote_answer)
fi
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  echo "== $t (${seconds} s or 10M runs)"
  cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -runs=10000000 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" 2>&1 | grep -E "stat::number_of_executed_units|stat::new_units_added|Done|ERROR|crash|panicked" || true
done
