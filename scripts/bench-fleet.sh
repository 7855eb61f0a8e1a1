#!/usr/bin/env bash
# The fleet benchmark (issues 6 and 12): a roster of N machines, each a home
# of its own, and a whole communication rotation pushed to all of them with
# the concurrency at its default (32; BENCH_PARALLEL=N overrides), then
# `machines status` verifying that they converged.
#
#   ./scripts/bench-fleet.sh                  # 10 and 100 machines, local command
#   ./scripts/bench-fleet.sh 100 1000         # any sizes
#   ./scripts/bench-fleet.sh --ssh 20 100     # through a real OpenSSH server on 127.0.0.1
#   ./scripts/bench-fleet.sh --ansible 20     # examples/ansible against 20 hosts on that sshd
#
# Transports:
# - local command (default): command = ["<keyturn>", "--home", "<dir>/mNNN"];
# - --ssh: one sshd started here with its own config, host key and client
#   key on a free port of 127.0.0.1; each machine's command is
#   ssh -p PORT -i KEY ... USER@127.0.0.1 <keyturn> --home <dir>/mNNN. The
#   sessions opened per machine are counted from sshd's log;
# - --ansible: the example playbook against N inventory hosts reached over
#   that sshd (ansible_host=127.0.0.1), run twice: the second run must
#   change nothing.
#
# Prints one JSON line per size: the wall time of each operator command, the
# push (`rotation run` joining every machine) and the verification, the
# disagreement window the rotation recorded, and (ssh) the sessions per
# machine. The machine may be shared: quote medians of several runs.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=local
case "${1:-}" in
  --ssh) mode=ssh; shift ;;
  --ansible) mode=ansible; shift ;;
esac
if [ $# -eq 0 ]; then
  if [ "$mode" = ansible ]; then set -- 20; else set -- 10 100; fi
fi
cargo build --quiet --release --bin keyturn
keyturn="$PWD/target/release/keyturn"
unset KEYTURN_HOME KEYTURN_TEST_PANIC KEYTURN_CRASH_AT KEYTURN_TEST_HOLD_LOCK_MS KEYTURN_LOCK_WAIT_MS RUST_BACKTRACE RUST_LIB_BACKTRACE
parallel=${BENCH_PARALLEL:-}
parallel_flag=()
if [ -n "$parallel" ]; then parallel_flag=(--parallel "$parallel"); fi

# Components without a service or process: the restart steps are skipped,
# so the figures are keyturn's own work, not this machine's process table.
unconfigured=$'[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n'

base="$PWD/target/bench-fleet"
mkdir -p "$base"

# --- a loopback sshd (ssh and ansible modes) ---------------------------------
sshd_pid=""
cleanup() {
  if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
start_sshd() {
  local dir="$base/sshd" port
  rm -rf "$dir"
  mkdir -p "$dir"
  mkdir -p /run/sshd 2>/dev/null || true
  ssh-keygen -q -t ed25519 -N "" -f "$dir/host_key"
  ssh-keygen -q -t ed25519 -N "" -f "$dir/client_key"
  cp "$dir/client_key.pub" "$dir/authorized_keys"
  for _ in 1 2 3 4 5; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    cat > "$dir/sshd_config" <<EOF
Port $port
ListenAddress 127.0.0.1
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PrintMotd no
MaxStartups 1000:30:1000
MaxSessions 1000
LogLevel INFO
EOF
    /usr/sbin/sshd -D -e -f "$dir/sshd_config" 2> "$dir/sshd.log" &
    sshd_pid=$!
    for _ in $(seq 100); do
      if grep -q "Server listening on 127.0.0.1 port $port." "$dir/sshd.log" 2>/dev/null; then
        sshd_port=$port
        sshd_dir=$dir
        return 0
      fi
      if ! kill -0 "$sshd_pid" 2>/dev/null; then break; fi
      sleep 0.1
    done
    kill "$sshd_pid" 2>/dev/null || true
    sshd_pid=""
  done
  echo "bench-fleet: sshd did not start: $(cat "$dir/sshd.log")" >&2
  exit 1
}
logins() { grep -c "Accepted publickey" "$sshd_dir/sshd.log" || true; }
ssh_argv() {
  printf '"ssh", "-p", "%s", "-i", "%s", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "%s@127.0.0.1"' \
    "$sshd_port" "$sshd_dir/client_key" "$(id -un)"
}

if [ "$mode" != local ]; then
  [ -x /usr/sbin/sshd ] || { echo "bench-fleet: /usr/sbin/sshd is missing (apt-get install openssh-server)" >&2; exit 1; }
  start_sshd
fi

# --- Ansible ------------------------------------------------------------------
if [ "$mode" = ansible ]; then
  scripts/ansible-venv.sh >/dev/null
  playbook="$PWD/target/ansible-venv/bin/ansible-playbook"
  for n in "$@"; do
    dir="$base/ansible-n$n"
    rm -rf "$dir"
    mkdir -p "$dir/scratch"
    "$keyturn" --home "$dir/scratch" generate communication > "$dir/new.key" 2>/dev/null
    fp=$("$keyturn" fingerprint communication --file "$dir/new.key")
    forks=${BENCH_FORKS:-$n}
    {
      echo "[keyturn]"
      for i in $(seq -w 1 "$n"); do
        mkdir -p "$dir/h$i"
        printf '%s' "$unconfigured" > "$dir/h$i/keyturn.toml"
        echo "h$i ansible_host=127.0.0.1 ansible_port=$sshd_port ansible_user=$(id -un) ansible_ssh_private_key_file=$sshd_dir/client_key keyturn_home=$dir/h$i"
      done
      echo "[keyturn:vars]"
      echo "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'"
      echo "ansible_python_interpreter=$(command -v python3)"
    } > "$dir/inventory.ini"
    play() {
      (cd examples/ansible && ANSIBLE_CONFIG="$PWD/ansible.cfg" ANSIBLE_NOCOLOR=1 ANSIBLE_HOME="$dir/ansible-home" \
        ANSIBLE_LOCAL_TEMP="$dir/ansible-tmp" "$playbook" -i "$dir/inventory.ini" rotate-key.yml -f "$forks" \
        -e keyturn_kind=communication -e "keyturn_key_file=$dir/new.key" -e "keyturn_bin=$keyturn" \
        -e "keyturn_local_bin=$keyturn" -e keyturn_wait=2)
    }
    before=$(logins)
    start=$EPOCHREALTIME
    play > "$dir/first.log" 2>&1 || { cat "$dir/first.log" >&2; exit 1; }
    first_s=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    first_logins=$(( $(logins) - before ))
    start=$EPOCHREALTIME
    play > "$dir/second.log" 2>&1 || { cat "$dir/second.log" >&2; exit 1; }
    second_s=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
    changed_first=$(grep -cE '^h[0-9]+ +: .*changed=[1-9]' "$dir/first.log" || true)
    changed_second=$(grep -cE '^h[0-9]+ +: .*changed=[1-9]' "$dir/second.log" || true)
    on=0
    for i in $(seq -w 1 "$n"); do
      if [ "$("$keyturn" --home "$dir/h$i" fingerprint communication)" = "$fp" ]; then on=$((on + 1)); fi
    done
    if [ "$on" -ne "$n" ] || [ "$changed_second" -ne 0 ]; then
      echo "bench-fleet: $on of $n hosts on the key; $changed_second hosts changed on the second run" >&2
      exit 1
    fi
    printf '{"hosts": %d, "transport": "ansible over loopback OpenSSH", "forks": %d, "first_run_s": %s, "ssh_logins_first_run": %d, "hosts_changed_first_run": %d, "second_run_s": %s, "hosts_changed_second_run": %d}\n' \
      "$n" "$forks" "$first_s" "$first_logins" "$changed_first" "$second_s" "$changed_second"
  done
  exit 0
fi

# --- keyturn's own push -------------------------------------------------------
for n in "$@"; do
  dir="$base/$mode-n$n"
  rm -rf "$dir"
  mkdir -p "$dir/first"
  {
    printf '%s\n' "$unconfigured"
    for i in $(seq -w 1 "$n"); do
      mkdir -p "$dir/m$i"
      printf '%s' "$unconfigured" > "$dir/m$i/keyturn.toml"
      if [ "$mode" = ssh ]; then
        printf '[[machines]]\nname = "m%s"\nroles = ["execution"]\ncommand = [%s, "%s", "--home", "%s"]\n\n' \
          "$i" "$(ssh_argv)" "$keyturn" "$dir/m$i"
      else
        printf '[[machines]]\nname = "m%s"\nroles = ["execution"]\ncommand = ["%s", "--home", "%s"]\n\n' \
          "$i" "$keyturn" "$dir/m$i"
      fi
    done
  } > "$dir/first/keyturn.toml"

  commands=0
  declare -A took=()
  # Runs one operator command, timing it; $1 names it, $2 the exit expected.
  operator() {
    local name=$1 expect=$2 start end code=0
    shift 2
    commands=$((commands + 1))
    start=$EPOCHREALTIME
    "$keyturn" --home "$dir/first" "$@" > "$dir/$name.out" 2> "$dir/$name.err" || code=$?
    end=$EPOCHREALTIME
    if [ "$code" -ne "$expect" ]; then
      echo "bench-fleet: keyturn $* exited $code, expected $expect:" >&2
      cat "$dir/$name.err" >&2
      exit 1
    fi
    took[$name]=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')
  }

  operator start 0 rotation start communication --setup multi --generate
  operator run_to_distribute 3 rotation run --wait 2
  operator confirm_distribute 0 rotation confirm distribute
  before=0
  if [ "$mode" = ssh ]; then before=$(logins); fi
  operator push 3 rotation run --wait 2 "${parallel_flag[@]}"
  push_logins=0
  if [ "$mode" = ssh ]; then push_logins=$(( $(logins) - before )); fi
  operator verify 0 machines status --json "${parallel_flag[@]}"
  operator confirm_connect 0 rotation confirm connect

  new=$("$keyturn" --home "$dir/first" fingerprint communication)
  "$keyturn" --home "$dir/first" rotation status --json > "$dir/rotation.json"
  done_steps=$(grep -c "\"evidence\": \"m[0-9]* reports $new" "$dir/rotation.json" || true)
  converged=$(grep -c "\"on\": $n," "$dir/verify.out" || true)
  if [ "$done_steps" -ne "$n" ] || [ "$converged" -ne 2 ]; then
    echo "bench-fleet: $done_steps of $n machine steps done; convergence lines: $converged of 2" >&2
    exit 1
  fi
  window_ms=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["window"]["milliseconds"])' "$dir/rotation.json")
  push_and_verify=$(awk -v a="${took[push]}" -v b="${took[verify]}" 'BEGIN { printf "%.3f", a + b }')
  transport="local command"
  extra=""
  if [ "$mode" = ssh ]; then
    transport="loopback OpenSSH"
    extra=$(awk -v l="$push_logins" -v n="$n" 'BEGIN { printf ", \"ssh_sessions_push\": %d, \"ssh_sessions_per_machine\": %.2f", l, l / n }')
  fi
  printf '{"machines": %d, "parallel": %d, "transport": "%s", "start_s": %s, "run_to_distribute_s": %s, "confirm_distribute_s": %s, "push_s": %s, "verify_s": %s, "push_and_verify_s": %s, "confirm_connect_s": %s, "disagreement_window_s": %s%s, "operator_commands": %d}\n' \
    "$n" "${parallel:-32}" "$transport" "${took[start]}" "${took[run_to_distribute]}" "${took[confirm_distribute]}" "${took[push]}" \
    "${took[verify]}" "$push_and_verify" "${took[confirm_connect]}" \
    "$(awk -v ms="$window_ms" 'BEGIN { printf "%.3f", ms / 1000 }')" "$extra" "$commands"
  unset took
done
