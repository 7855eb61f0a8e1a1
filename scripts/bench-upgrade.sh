#!/usr/bin/env bash
# Times `upgrade` on generated projects of 100 tokens a file at 10^4, 10^5
# (the 1,000-file project) and 10^6 tokens (issue 3's benchmark). Prints one JSON line per size.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/bench-upgrade
if [ $# -eq 0 ]; then set -- 10000 100000 1000000; fi
BENCH_DIR=target/bench-upgrade cargo run --quiet --release --example upgrade_bench -- "$@"
