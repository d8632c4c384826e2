#!/usr/bin/env bash
# The main job on the small built-in synthetic dataset, on CPU, in a few minutes:
#   synthetic Amazon-format data -> prepared dataset -> user indices -> LRURec candidates -> metrics.
# Outputs go to runs/demo/ (override with ULMREC_RUN_DIR). Set up .venv first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
VENV="${ULMREC_VENV:-.venv}"
RUN="${ULMREC_RUN_DIR:-runs/demo}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ulmrec() { "$VENV/bin/ulmrec" "$@"; }
step() { printf '\n== %s\n' "$*"; }

step "1/6 synthetic raw data (Amazon 2014 format)"
ulmrec data synthetic --out "$RUN/raw"
step "2/6 prepare: 5-core, dense ids, leave-one-out split"
ulmrec data prepare --source amazon --path "$RUN/raw" --out "$RUN/data"
step "3/6 user texts"
ulmrec data users "$RUN/data" --out "$RUN/users.jsonl"
step "4/6 user index (RQ-VAE codes)"
ulmrec index build --users "$RUN/users.jsonl" --out "$RUN/index" --levels 4 --codebook-size 16 --cache-dir "$RUN/.cache"
step "5/6 LRURec retriever + top-20 candidates"
ulmrec retrieve train --data "$RUN/data" --out "$RUN/retrieve"
step "6/6 metrics of the retriever's test candidates"
ulmrec eval metrics "$RUN/retrieve/candidates.jsonl" --split test --retrieved-n 20
printf '\nDone: everything is under %s\n' "$RUN"
