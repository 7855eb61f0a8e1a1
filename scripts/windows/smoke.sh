#!/usr/bin/env bash
# A smoke test of the real keyturn.exe under Wine, command by command: each
# line of the report says PASS or FAIL, the command and what was checked.
# Needs the prefix (prefix.sh), keyturn.exe, standin_service.exe (built by
# windows-build.sh) and holdlock.exe (built here). Exits 1 if any check fails.
set -uo pipefail
source "$(dirname "$0")/env.sh"
REL="$CARGO_TARGET_DIR/$TARGET/release"
EXE="$REL/keyturn.exe"
SMOKE="$WIN_DIR/smoke"
rm -rf "$SMOKE"
mkdir -p "$SMOKE"
x86_64-w64-mingw32-gcc -municode -O2 -o "$WIN_DIR/holdlock.exe" "$ROOT/scripts/windows/holdlock.c"
win() { winepath -w "$1" 2>/dev/null; }
HOME_W="$(win "$SMOKE/home")"
failures=0
passes=0
OUT="$SMOKE/out"
ERR="$SMOKE/err"
# kt ARGS...: keyturn.exe on the smoke home; stdin from $IN if set.
kt() {
  if [ -n "${IN:-}" ]; then
    wine "$EXE" --home "$HOME_W" "$@" <"$IN" >"$OUT" 2>"$ERR"
  else
    wine "$EXE" --home "$HOME_W" "$@" </dev/null >"$OUT" 2>"$ERR"
  fi
  CODE=$?
}
# check NAME EXPECTED_CODE [GREP_PATTERN_IN_STDOUT+STDERR]
check() {
  local name="$1" want="$2" pattern="${3:-}"
  local ok=1
  [ "$CODE" = "$want" ] || ok=0
  if [ -n "$pattern" ] && ! cat "$OUT" "$ERR" | tr -d '\r' | grep -Eq -- "$pattern"; then ok=0; fi
  if [ "$ok" = 1 ]; then
    passes=$((passes + 1))
    printf 'PASS  %-58s exit %s%s\n' "$name" "$CODE" "${pattern:+, shows /$pattern/}"
  else
    failures=$((failures + 1))
    printf 'FAIL  %-58s exit %s (wanted %s)%s\n' "$name" "$CODE" "$want" "${pattern:+, wanted /$pattern/}"
    sed 's/^/        stdout: /' "$OUT" | head -5
    sed 's/^/        stderr: /' "$ERR" | head -5
  fi
}
fp() { tr -d '\r' <"$OUT" "$ERR" 2>/dev/null | grep -Eo '[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}' | head -1; }

kt status; check "status (new home)" 0 "Default Key Loaded"
kt generate communication; check "generate communication" 0 "^kt1:com:"
tr -d '\r' <"$OUT" | head -1 >"$SMOKE/com.key"
IN="$SMOKE/com.key" kt import communication; check "import communication (stdin)" 0 "imported|Imported"
kt fingerprint communication; check "fingerprint communication" 0 "[0-9A-F]{4}-"
COM_FP="$(fp)"
# The same key with CRLF line ends, and as UTF-16 with a byte-order mark
# (what PowerShell's redirection writes): the same fingerprint.
printf '%s\r\n' "$(cat "$SMOKE/com.key")" >"$SMOKE/com-crlf.key"
kt fingerprint communication --file "$(win "$SMOKE/com-crlf.key")"; check "fingerprint --file (CRLF)" 0 "$COM_FP"
{ printf '\xff\xfe'; printf '%s\r\n' "$(cat "$SMOKE/com.key")" | iconv -f UTF-8 -t UTF-16LE; } >"$SMOKE/com-utf16.key"
kt fingerprint communication --file "$(win "$SMOKE/com-utf16.key")"; check "fingerprint --file (UTF-16 with BOM)" 0 "$COM_FP"
kt generate encryption; tr -d '\r' <"$OUT" | head -1 >"$SMOKE/enc.key"
printf '%s\r\n' "$(cat "$SMOKE/enc.key")" >"$SMOKE/enc-crlf.key"
IN="$SMOKE/enc-crlf.key" kt import encryption; check "import encryption (CRLF on stdin)" 0 ""
{ printf '\xff\xfe'; printf '%s\r\n' "$(cat "$SMOKE/com.key")" | iconv -f UTF-8 -t UTF-16LE; } >"$SMOKE/com-utf16.key"
kt import communication --file "$(win "$SMOKE/com-utf16.key")"; check "import communication --file (UTF-16)" 0 ""
printf 'S3cret-Value' >"$SMOKE/plain"
IN="$SMOKE/plain" kt encrypt; check "encrypt" 0 "ktsec:"
tr -d '\r\n' <"$OUT" >"$SMOKE/token"
IN="$SMOKE/token" kt decrypt; check "decrypt (the exact value back)" 0 "^S3cret-Value$"

# A Test Studio project with CRLF XML, registered by its Windows path.
PROJ="$SMOKE/Projects/Checkout"
mkdir -p "$PROJ/Tests"
printf '<?xml version="1.0" encoding="utf-8"?>\r\n<Test Name="Login">\r\n  <Step Encrypt="True" Value="%s"/>\r\n</Test>\r\n' "$(cat "$SMOKE/token")" >"$PROJ/Tests/Login.tstest"
PROJ_W="$(win "$PROJ")"
kt projects add "$PROJ_W"; check "projects add $PROJ_W" 0 "registered"
kt projects add "$(echo "$PROJ_W" | tr 'a-z' 'A-Z')"; check "projects add (same folder, other case)" 0 "already registered"
grep -q '\\\\?\\' "$SMOKE/home/keyturn.toml" && { CODE=9; check "keyturn.toml has no \\\\?\\ path" 0 ""; } || { CODE=0; check "keyturn.toml has no \\\\?\\ path" 0 ""; }
kt projects list; check "projects list" 0 "Checkout"
# A new encryption key: the upgrade re-encrypts the CRLF project.
kt generate encryption; tr -d '\r' <"$OUT" | head -1 >"$SMOKE/enc2.key"
IN="$SMOKE/enc2.key" kt import encryption; check "import a second encryption key" 0 ""
kt upgrade; check "upgrade (CRLF XML project)" 0 "1 "
grep -q $'\r$' "$PROJ/Tests/Login.tstest" && CODE=0 || CODE=1
check "upgrade kept the CRLF line ends" 0 ""
grep -q "$(cat "$SMOKE/token")" "$PROJ/Tests/Login.tstest" && CODE=1 || CODE=0
check "upgrade replaced the old token" 0 ""

# Rotation against a stand-in Scheduling service in Wine's service manager,
# and a Storage service that is not installed.
SVC_W="$(win "$REL/examples/standin_service.exe")"
wine sc delete kt-sched >/dev/null 2>&1
wine sc create kt-sched binPath= "$SVC_W" >/dev/null 2>&1; CODE=$?; check "sc create kt-sched (stand-in service)" 0 ""
wine sc start kt-sched >/dev/null 2>&1; sleep 1
cat >>"$SMOKE/home/keyturn.toml" <<'TOML'

[components.scheduling]
service = "kt-sched"

[components.storage]
service = "kt-storage-not-installed"

[components.execution]

[components.app]
TOML
kt rotation plan communication --setup single; check "rotation plan communication" 0 "restart-scheduling|Scheduling"
kt generate communication; tr -d '\r' <"$OUT" | head -1 >"$SMOKE/new-com.key"
kt rotation start communication --setup single --file "$(win "$SMOKE/new-com.key")"; check "rotation start communication --file" 0 ""
kt rotation run --wait 20; check "rotation run (stops at a step that needs a person: exit 3)" 3 "restart-storage"
kt rotation status --json; tr -d '\r' <"$OUT" >"$SMOKE/rotation.json"
python3 - "$SMOKE/rotation.json" >"$SMOKE/steps" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r = r.get("rotation", r)
for s in r["steps"]:
    print(s["id"], s["state"], s.get("evidence") or "", sep="\t")
PY
grep -P '^restart-scheduling\tdone\trestarted \(pid \d+ -> \d+\)' "$SMOKE/steps" >/dev/null && CODE=0 || CODE=1
cp "$SMOKE/steps" "$OUT"; : >"$ERR"
check "restart-scheduling: done, restarted through the SCM (pid changed)" 0 ""
grep -P '^restart-storage\twaiting\t.*not installed here \(error 1060\)' "$SMOKE/steps" >/dev/null && CODE=0 || CODE=1
check "restart-storage: waiting, not installed (1060)" 0 ""
wine sc stop kt-sched >/dev/null 2>&1; wine sc delete kt-sched >/dev/null 2>&1

# A second writer while another holds the lock: exit 4, told who holds it.
wine "$WIN_DIR/holdlock.exe" "$HOME_W\\keyturn.lock" 8000 >"$SMOKE/holder" 2>&1 &
holder=$!
for _ in $(seq 1 50); do grep -q locked "$SMOKE/holder" 2>/dev/null && break; sleep 0.2; done
IN="$SMOKE/com.key" KEYTURN_LOCK_WAIT_MS=500 kt import communication; check "a second writer while the lock is held" 4 "another keyturn is changing the store"
wait "$holder"

# The default home: %ProgramData%\keyturn.
wine "$EXE" status </dev/null >"$OUT" 2>"$ERR"; CODE=$?
check "status with no --home: %ProgramData%\\keyturn" 0 'ProgramData\\keyturn'

printf '\n%s passed, %s failed\n' "$passes" "$failures"
[ "$failures" = 0 ]
