#!/usr/bin/env bash
# Prepares the Wine prefix (target/windows/wine-prefix) once: wineboot, and
# the ProcessPrng shim DLL (see processprng.c) in its system32.
set -euo pipefail
source "$(dirname "$0")/env.sh"
shim="$WIN_DIR/bcryptprimitives.dll"
if [ ! -f "$shim" ] || [ "$ROOT/scripts/windows/processprng.c" -nt "$shim" ]; then
  x86_64-w64-mingw32-gcc -shared -O2 -o "$shim" "$ROOT/scripts/windows/processprng.c" -ladvapi32
fi
if [ ! -f "$WINEPREFIX/system.reg" ]; then
  wineboot --init >/dev/null 2>&1
  wineserver -w
fi
cp "$shim" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
