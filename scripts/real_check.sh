#!/usr/bin/env bash
# The distillation check on real weights: all-MiniLM-L6-v2 (BERT, 6 layers, 12 heads, 384 hidden) from
# ../shared/tools/offline-teacher.sh as teacher, ../shared/glue as data, a 3-layer student ("6L" = half the layers).
#   scripts/real_check.sh [RUNS_DIR]            TASKS="rte mrpc" scripts/real_check.sh   (a subset)
# About 1.5 hours on 2 CPU cores. Budget cut versus the paper (10 epochs): 3 epochs; SST-2 uses its first 16,000
# training rows for 2 epochs. Teachers are cached, so a rerun only redoes the students.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs/real-check}
teacher=$(../shared/tools/offline-teacher.sh "${TEACHERS_DIR:-$HOME/.cache/kdbench/pretrained}" minilm | tail -1)
data=../shared/glue
for task in ${TASKS:-rte mrpc stsb cola sst2}; do
  extra=(--epochs 3)
  [ "$task" = sst2 ] && extra=(--epochs 2 --max-train-samples 16000)
  start=$(date +%s)
  kdbench finetune --task "$task" --teacher "$teacher" --data-dir "$data" "${extra[@]}"
  mid=$(date +%s)
  kdbench distill --task "$task" --student 6L --teacher "$teacher" --data-dir "$data" "${extra[@]}" \
    --output-dir "$runs/$task-6L" --overwrite
  end=$(date +%s)
  echo "WALL $task teacher $((mid - start)) s, student $((end - mid)) s"
done
