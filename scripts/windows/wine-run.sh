#!/usr/bin/env bash
# cargo's runner for the Windows target: runs an .exe under Wine in the
# prefix scripts/windows/prefix.sh prepared.
exec wine "$@"
