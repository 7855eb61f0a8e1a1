#!/usr/bin/env bash
# Times the secrets inventory, the dry run and the upgrade on a synthetic
# project shaped like the large Test Studio suite (2,151 files, 10^4 tokens;
# issue 14's benchmark). Prints one JSON line of medians over ROUNDS (5).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench-teststudio
BENCH_DIR=target/bench-teststudio cargo run --quiet --release --example teststudio_bench -- "${1:-5}"
