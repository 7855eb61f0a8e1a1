#!/usr/bin/env bash
# Runs every fuzz target (or those named), one job each, one after another,
# and prints one line per run: executions, coverage (libFuzzer's `cov` and
# `ft`), corpus size, and whether it crashed.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default 600 s, all targets)
#   FUZZ_RUNS=N        stop after N executions too (default 10000000)
#   FUZZ_FROM=corpus   start from fuzz/corpus/<target>/ and grow it (default)
#   FUZZ_FROM=empty    start from an empty corpus in a scratch folder (the
#                      committed corpus is left alone): shows what the target
#                      and its dictionary reach on their own
#   FUZZ_SANITIZER=none|address   default none, on the stable toolchain
#                      (RUSTC_BOOTSTRAP lets cargo-fuzz pass its flags);
#                      address needs the nightly toolchain (the nightly run)
# Targets of the token grammar use fuzz/dicts/token.dict, those of the key
# text grammar fuzz/dicts/key_text.dict. Crashes land in
# fuzz/artifacts/<target>/; the ordinary test run replays them and the
# corpus (tests/fuzz_corpus.rs). Needs cargo-fuzz:
#   cargo install cargo-fuzz --locked
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^keyturn-fuzz$')
fi
runs="${FUZZ_RUNS:-10000000}"
from="${FUZZ_FROM:-corpus}"
sanitizer="${FUZZ_SANITIZER:-none}"
toolchain=()
build=()
if [ "$sanitizer" = none ]; then
  export RUSTC_BOOTSTRAP=1
else
  # Its own build folder, so the two builds do not undo each other.
  toolchain=(+nightly)
  build=(--target-dir "fuzz/target/$sanitizer")
fi
dict_for() {
  case "$1" in
    token | project_rewrite) echo fuzz/dicts/token.dict ;;
    key_text | paste | published_file) echo fuzz/dicts/key_text.dict ;;
  esac
}
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
printf '%-18s %-7s %-8s %12s %8s %8s %8s %s\n' target from sanitizer executions cov ft corpus result
for t in "${targets[@]}"; do
  mkdir -p "fuzz/artifacts/$t"
  if [ "$from" = empty ]; then
    corpus="$scratch/$t"
    mkdir -p "$corpus"
  else
    corpus="fuzz/corpus/$t"
  fi
  args=(-max_total_time="$seconds" -runs="$runs" -max_len=65536 -print_final_stats=1
    -artifact_prefix="fuzz/artifacts/$t/")
  dict="$(dict_for "$t")"
  if [ -n "$dict" ]; then args+=(-dict="$dict"); fi
  log="$scratch/$t.log"
  result=ok
  cargo "${toolchain[@]}" fuzz run -O "${build[@]}" --sanitizer "$sanitizer" "$t" "$corpus" -- "${args[@]}" >"$log" 2>&1 || result=CRASH
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)"
  [ -n "$done_line" ] || done_line="$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)"
  cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")"
  ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")"
  corp="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$done_line")"
  printf '%-18s %-7s %-8s %12s %8s %8s %8s %s\n' "$t" "$from" "$sanitizer" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
  if [ "$result" != ok ]; then
    grep -E 'panicked at|ERROR|SUMMARY|Test unit written' "$log" | head -5 | sed 's/^/    /'
  fi
done
