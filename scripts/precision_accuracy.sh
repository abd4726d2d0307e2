#!/usr/bin/env bash
# Issue 12's accuracy figure: trained students scored at the precisions they would be deployed in - PyTorch fp32 and
# bf16, ONNX Runtime fp32 and dynamic int8 - on the full validation split, then one report joining them:
#   scripts/precision_accuracy.sh OUT_DIR RUN [RUN...]
# Each RUN gets onnx/ (fp32 + int8, with parity) and eval/ files; OUT_DIR gets REPORT.md whose deployment table shows
# every variant's score next to PyTorch fp32's. bf16 on a CPU without native bf16 is emulated: slow, but its
# rounding is the same, so its score is what a bf16 deployment would get.
set -euo pipefail
out=$1
shift
mkdir -p "$out"
for run in "$@"; do
  echo "== $run"
  [ -f "$run/onnx/parity.json" ] && grep -q '"int8"' "$run/onnx/parity.json" || kdbench export "$run" --quantize int8 \
    || echo "(int8 parity failed: evaluated with --force below)"
  kdbench evaluate "$run" --backend torch --variant fp32
  kdbench evaluate "$run" --backend torch --variant bf16
  kdbench evaluate "$run" --backend onnxruntime --variant fp32
  kdbench evaluate "$run" --backend onnxruntime --variant int8 --force
done
kdbench report "$@" --output-dir "$out"
python3 - "$@" <<'EOF'
import json, sys
from pathlib import Path
print(f"\n{'run':<42} {'metric':<9} {'torch fp32':>10} {'torch bf16':>10} {'ort fp32':>9} {'ort int8':>9}")
for run in map(Path, sys.argv[1:]):
    ev = {f.stem: json.loads(f.read_text()) for f in (run / "eval").glob("*.json")}
    def score(key):
        e = ev.get(key)
        return f"{100 * e['score']:.2f}" if e else "-"
    metric = next(iter(ev.values()))["metric"] if ev else "?"
    print(f"{run.parent.name + '/' + run.name:<42} {metric:<9} {score('torch-fp32'):>10} {score('torch-bf16'):>10} "
          f"{score('onnxruntime-fp32'):>9} {score('onnxruntime-int8'):>9}")
EOF
