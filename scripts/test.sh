#!/usr/bin/env bash
# The test suite: set up .venv if needed, lint, type-check, then run pytest (slow tests excluded; the
# clean-install packaging tests included). Extra arguments go to pytest, e.g. `bash scripts/test.sh -k metrics`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${ULMREC_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
exec "$VENV/bin/python" -m pytest -n "${ULMREC_TEST_WORKERS:-2}" --dist loadfile "$@"
