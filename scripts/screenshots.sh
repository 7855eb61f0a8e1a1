#!/usr/bin/env bash
# Renders screenshots/*.png: the real keyturn binary (`keyturn demo`, a
# throwaway home with stand-in services) driven in tmux at 80x24 through each
# tab and the main states, each screen captured with `tmux capture-pane -e -p`
# (text with its colours) and drawn to a PNG by scripts/screenshots.py with
# Pillow and DejaVu Sans Mono (box-drawing characters are drawn as lines so
# borders join as in a terminal).
#
# Needs: tmux and fonts-dejavu-core (Debian: apt-get install tmux
# fonts-dejavu-core), python3 with venv; Pillow is installed from PyPI into
# target/screenshots-venv on the first run. Rerun any time:
#   ./scripts/screenshots.sh            # writes screenshots/*.png
# Fingerprints and keys are the demo's fresh random ones on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v tmux >/dev/null || { echo "screenshots: tmux is missing (apt-get install tmux)" >&2; exit 1; }
venv=target/screenshots-venv
if ! "$venv/bin/python" -c 'import PIL' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'Pillow>=10.1'
fi
cargo build --quiet --bin keyturn
rm -f screenshots/*.png
"$venv/bin/python" scripts/screenshots.py "$PWD/target/debug/keyturn" screenshots
