#!/usr/bin/env bash
# The main job on CPU, in minutes: set up .venv if needed, then `ulmrec demo` runs the whole pipeline on the
# built-in synthetic dataset with the offline models (MiniLM user index, SmolLM2-135M + LoRA):
#   data -> users -> index -> retrieve -> align -> train -> rank -> eval, for ULMRec and the no-index baseline,
# and ends with one table: ULMRec vs the baseline vs the retriever alone, subset and overall, with the paired
# comparison. Stages are cached: a second run reuses every finished stage and prints the table in seconds.
# Runs go to ./runs (override with ULMREC_RUNS); extra arguments go to `ulmrec demo` (e.g. --force,
# --data ../shared/data/amazon-beauty --users 1000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${ULMREC_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$VENV/bin/ulmrec" demo --runs "${ULMREC_RUNS:-runs}" "$@"
