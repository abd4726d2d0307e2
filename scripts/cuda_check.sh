#!/usr/bin/env bash
# The GPU half of kdbench, in one call on a bare GPU machine with no network (issue 14).
#   scripts/cuda_check.sh OUT_DIR [--dry-run] [--teacher DIR --data GLUE_DIR] [--budget-s S] [--jobs N] [--pack] ...
# Installs only what that machine lacks from wheels carried in .whl/ (scripts/prepare_cuda_carry.sh makes them),
# then runs scripts/cuda_check.py (its docstring lists the phases). --dry-run prints the plan and checks everything
# that needs no GPU. Without a GPU (and not dry) it prints one line and exits with status 2.
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/cuda_check.sh OUT_DIR [--dry-run] [--teacher DIR --data GLUE_DIR]" >&2; exit 2; }
if compgen -G ".whl/*.whl" >/dev/null && ! python3 -c "import datasets" 2>/dev/null; then  # only what is missing
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
# ORT_GPU_DIR: onnxruntime-gpu installed with --target (reports/cuda/SUMMARY.md), ahead of the machine's CPU build
[ -n "${ORT_GPU_DIR:-}" ] && export PYTHONPATH=$ORT_GPU_DIR:$PYTHONPATH
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export KDBENCH_CACHE="${KDBENCH_CACHE:-/dev/shm/kd/cache}"  # fine-tuned teachers: memory-backed, gone with the machine
mkdir -p "$KDBENCH_CACHE" 2>/dev/null || export KDBENCH_CACHE=/tmp/kd/cache
exec python3 scripts/cuda_check.py "$@"
