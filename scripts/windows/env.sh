# Sourced by the scripts/windows-*.sh scripts: the environment for building
# keyturn for x86_64-pc-windows-gnu with Debian's Rust (rustc-web, whose
# standard library source lets cargo build std for the target) and mingw,
# and for running what it builds under Wine.
#
# Debian's toolchain, not rustup's: rustup cannot fetch the target here.
export PATH=/usr/bin:/bin
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT
# Everything for Windows under target/windows, kept between runs: the build,
# a private CARGO_HOME (Debian's cargo must not share rustup's registry cache
# and config), and the Wine prefix.
export WIN_DIR="$ROOT/target/windows"
export CARGO_HOME="$WIN_DIR/cargo-home"
export CARGO_TARGET_DIR="$WIN_DIR/build"
export WINEPREFIX="$WIN_DIR/wine-prefix"
export TARGET=x86_64-pc-windows-gnu
# -Zbuild-std is unstable: Debian's stable rustc allows it with this.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$ROOT/scripts/windows/wine-run.sh"
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc
export AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export WINEDEBUG=-all
export WINEDLLOVERRIDES="mscoree,mshtml="
# One profile for the tests, clippy aside, and the smoke test's binary, so
# the dependencies are built once.
export CARGO_BUILD_FLAGS=(-Zbuild-std=std,panic_abort --target "$TARGET" --release --locked)
mkdir -p "$CARGO_HOME" "$CARGO_TARGET_DIR"
