#!/usr/bin/env bash
# The test suite: set up .venv if needed, lint, type-check, then run pytest (slow tests excluded; the
# clean-install packaging tests included). Extra arguments go to pytest, e.g. `bash scripts/test.sh -k metrics`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${ULMREC_VENV:-.venv}"
# The TUI's real-terminal test drives `ulmrec tui` inside tmux; install it where we can (it skips otherwise).
if ! command -v tmux >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
  (apt-get install -y -qq tmux >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 &&
    apt-get install -y -qq tmux >/dev/null 2>&1; }) || echo "test.sh: tmux unavailable; the tmux test will skip" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/python" -m pytest -n "${ULMREC_TEST_WORKERS:-2}" --dist loadfile "$@"
