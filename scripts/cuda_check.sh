#!/usr/bin/env bash
# CUDA validation on a bare GPU machine with no network (issue: "CUDA validation").
#   scripts/cuda_check.sh OUT_DIR [--dry-run]
# Installs only what that machine lacks from wheels carried in .whl/, measures the card's ceilings, profiles the zoo
# with the torch backend in fp32 and bf16 at batch 1/32/256 and length 128, and writes JSON + markdown to OUT_DIR.
# --dry-run prints the plan and checks everything that needs no GPU. Without a GPU (and not dry) it prints one line
# and exits with status 2. Designed to finish within 8 minutes on an H100/H200.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/cuda_check.sh OUT_DIR [--dry-run]" >&2; exit 2; }
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:.
else
  export PYTHONPATH=.
fi
export PYTHONUNBUFFERED=1
exec python3 scripts/cuda_check.py "$@"
