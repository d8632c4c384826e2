#!/usr/bin/env bash
# Prepare, on this (CPU) machine, what bench/gpu_check.sh needs on a GPU machine that has PyTorch,
# transformers, peft and accelerate but no package index and receives at most 64 MiB of files:
#   .whl/               wheels of pydantic (+ pydantic-core, annotated-types, typing-inspection,
#                       typing-extensions), gguf and the project's four packages, for CPython 3.12 x86-64;
#   .gpu/bundle.tar.xz  SmolLM2-135M's config and tokenizer (no weights) and the upstream stages of the
#                       synthetic world and of Amazon Beauty (data, user texts, the index's codes, LRURec's
#                       weights; built here with the real commands when missing: Beauty's takes about
#                       15 minutes on 2 cores), compressed; bench/gpu_check.sh recomputes the candidates.
# Both paths are ignored by git (.git/info/exclude). Then, on the device: carry .whl and .gpu, and run
# `bash bench/gpu_check.sh`. Usage: `bash bench/gpu_prepare.sh [--no-beauty]`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
BEAUTY=1
[ "${1:-}" = "--no-beauty" ] && BEAUTY=0

EXCLUDE="$(git rev-parse --git-dir)/info/exclude"
mkdir -p "$(dirname "$EXCLUDE")"
for path in /.whl/ /.gpu/; do grep -qxF "$path" "$EXCLUDE" 2>/dev/null || echo "$path" >> "$EXCLUDE"; done

echo "== wheels"
rm -rf .whl && mkdir .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "pydantic==$("$PYTHON" -c 'import pydantic; print(pydantic.VERSION)')" \
    "pydantic_core==$("$PYTHON" -c 'import pydantic_core; print(pydantic_core.__version__)')" \
    annotated_types typing_inspection typing_extensions gguf
for package in packages/ulmrec-eval packages/ulmrec-index packages/ulmrec-align apps/tui; do
    "$PYTHON" -m pip wheel -q --no-deps -w .whl "$package"
done

echo "== upstream stages"
"$PYTHON" - "$BEAUTY" <<'EOF'
import sys
sys.path.insert(0, "bench")
from _pipeline import ROOT, beauty_upstream, synthetic_upstream

synthetic_upstream(ROOT / "runs" / "bench-align-synthetic-reviews-upstream")
if sys.argv[1] == "1":
    beauty_upstream(ROOT / "runs" / "bench-align-beauty-upstream")
EOF

echo "== bundle"
rm -rf .gpu && mkdir -p .gpu/smollm2-shape
MODEL=$("$PYTHON" -c 'from ulmrec_align.models.resolve import materialise_smollm2; print(materialise_smollm2())')
for file in "$MODEL"/*; do
    case "$(basename "$file")" in *.safetensors|ulmrec_source.json) ;; *) cp "$file" .gpu/smollm2-shape/ ;; esac
done
UPSTREAMS=(runs/bench-align-synthetic-reviews-upstream)
[ $BEAUTY -eq 1 ] && UPSTREAMS+=(runs/bench-align-beauty-upstream)
FILES=(.gpu/smollm2-shape)
for up in "${UPSTREAMS[@]}"; do
    # the index's codes (index.json) and the retriever's weights: candidates.jsonl (28 MB for Beauty, float
    # scores that do not compress) is recomputed there on the CPU, byte for byte the same
    FILES+=("$up/data" "$up/users.jsonl" "$up/index/index.json" "$up/index/report.json"
            "$up/retrieve/model.safetensors" "$up/retrieve/config.json")
    [ -d "$up/raw" ] && FILES+=("$up/raw")
done
tar -cJf .gpu/bundle.tar.xz "${FILES[@]}"
rm -rf .gpu/smollm2-shape
du -sh .whl .gpu/bundle.tar.xz
echo "carry .whl and .gpu; run: bash bench/gpu_check.sh"
