#!/usr/bin/env bash
# Runs what scripts/windows-build.sh built, under Wine: the unit tests
# (cargo's runner is wine), then the smoke test of keyturn.exe
# (scripts/windows/smoke.sh). Wine's own limits are in the README (Windows).
set -euo pipefail
source "$(dirname "$0")/windows/env.sh"
cd "$ROOT"
step() { printf '== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }
step "wine prefix"
scripts/windows/prefix.sh
# One wineserver for the whole run: services live as long as it does. A
# server left by an earlier run on this prefix is ended first (-p refuses
# to start beside it).
wineserver -k >/dev/null 2>&1 || true
wineserver -p
trap 'wineserver -k || true' EXIT
step "unit tests under wine"
cargo test "${CARGO_BUILD_FLAGS[@]}" --lib
step "smoke test of keyturn.exe under wine"
scripts/windows/smoke.sh
step "done"
