#!/usr/bin/env bash
# Makes target/ansible-venv: a Python virtual environment with ansible-core
# from PyPI, for the example playbook's test (tests/fleet.rs). Does nothing
# when it is there already; ansible-playbook is installed last, so a venv
# cut short is made again. Exits non-zero (and the test skips with a notice)
# when Python or PyPI cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/ansible-venv
if [ -x "$venv/bin/ansible-playbook" ]; then
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "ansible-venv: python3 is missing" >&2
  exit 1
fi
mkdir -p target
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 20 --retries 2 'ansible-core>=2.15'
"$venv/bin/ansible-playbook" --version | head -1
