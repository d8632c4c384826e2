#!/usr/bin/env bash
# The TUI tests repeated under load (issue 29): one busy loop per core runs beside pytest -n 2, and the
# snapshot and pilot tests run N times in a row (default 30); it stops at the first failure.
#   bash bench/tui_under_load.sh [N] [extra pytest args, e.g. -k "not launch and not stop_and_resume"]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-30}"; shift || true
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
busy=()
for _ in $(seq "$(nproc)"); do (while :; do :; done) & busy+=($!); done
trap 'kill "${busy[@]}" 2>/dev/null || true' EXIT
start=$(date +%s)
for i in $(seq "$n"); do
  if ! .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 --dist load \
      tests/tui/test_tui_snapshots.py tests/tui/test_tui_pilot.py "$@" > /tmp/tui_under_load.last 2>&1; then
    echo "run $i of $n FAILED (load $(cut -d' ' -f1-3 /proc/loadavg)):"; tail -30 /tmp/tui_under_load.last; exit 1
  fi
  echo "run $i of $n passed: $(tail -1 /tmp/tui_under_load.last) (load $(cut -d' ' -f1-3 /proc/loadavg))"
done
echo "all $n runs passed in $(( $(date +%s) - start )) s"
