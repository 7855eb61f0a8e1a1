#!/usr/bin/env bash
# Cross-builds keyturn for x86_64-pc-windows-gnu with Debian's toolchain
# (see scripts/windows/env.sh): clippy with -D warnings for that target, the
# release binary, and the unit and integration tests (built, not run).
# Output: target/windows/build/x86_64-pc-windows-gnu/release/keyturn.exe
set -euo pipefail
source "$(dirname "$0")/windows/env.sh"
cd "$ROOT"
step() { printf '== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }
step "clippy for $TARGET"
# Lints after `--`: RUSTFLAGS would reach the standard library built from source too.
cargo clippy "${CARGO_BUILD_FLAGS[@]}" --all-targets -- -D warnings
step "build keyturn.exe and the stand-in service"
cargo build "${CARGO_BUILD_FLAGS[@]}" --bins --examples
step "build the tests"
cargo test "${CARGO_BUILD_FLAGS[@]}" --no-run
step "done"
