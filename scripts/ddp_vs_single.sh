#!/usr/bin/env bash
# Issue 13's second figure: one distillation as 2 CPU processes (torchrun, gloo, one thread each) against the same
# recipe in 1 process (2 threads) - the same global batch of 12, so the same number of optimizer steps - with steps,
# samples/s and the final metric of each. Uses the budget study's fine-tuned MRPC teacher. On a quiet machine:
#   scripts/ddp_vs_single.sh [OUT_DIR=/tmp/ddp-vs-single] [ROWS=960]
set -euo pipefail
out=${1:-/tmp/ddp-vs-single}
rows=${2:-960}
here=$(cd "$(dirname "$0")/.." && pwd)
teacher=$("$here/../shared/tools/offline-teacher.sh" ~/.cache/kdbench/pretrained minilm | tail -1)
checkpoint=$(ls -d ~/.cache/kdbench/teachers/all-MiniLM-L6-v2-mrpc-*/ | head -1)
common=(--task mrpc --student 6L --teacher "$teacher" --teacher-checkpoint "$checkpoint" --data-dir "$here/../shared/glue"
  --max-train-samples "$rows" --epochs 1 --batch-size 12 --seed 42)
mkdir -p "$out"
start=$(date +%s.%N)
kdbench distill "${common[@]}" --output-dir "$out/one-process" > "$out/one-process.log" 2>&1
t1=$(python3 -c "print($(date +%s.%N) - $start)")
start=$(date +%s.%N)
GLOO_SOCKET_IFNAME=lo torchrun --standalone --nproc_per_node 2 -m kdbench distill "${common[@]}" \
  --output-dir "$out/two-processes" > "$out/two-processes.log" 2>&1
t2=$(python3 -c "print($(date +%s.%N) - $start)")
python3 - "$out" "$t1" "$t2" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'':<14} {'steps':>5} {'rows':>5} {'samples/s':>9} {'wall s':>7} {'f1':>7} {'accuracy':>8}")
for name, wall in (("one-process", sys.argv[2]), ("two-processes", sys.argv[3])):
    m = json.loads((out / name / "metrics.json").read_text())
    last = m["epochs"][-1]
    steps = last.get("step", "?")
    print(f"{name:<14} {steps:>5} {m['train_samples']:>5} {m['train_samples_per_second']:>9.2f} {float(wall):>7.1f} "
          f"{m['metrics']['validation'].get('f1', float('nan')):>7.4f} {m['metrics']['validation'].get('accuracy', float('nan')):>8.4f}")
PY
