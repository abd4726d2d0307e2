#!/usr/bin/env bash
# The figures of issue 12 ("deployment as users deploy"), measured in one go on a quiet machine:
#   scripts/deployment_figures.sh [OUT_DIR=/tmp/deploy-figures]
# 1. bf16 over fp32 in PyTorch (refused with the missing CPU feature where the CPU has no native bf16)
# 2. ONNX Runtime int8 over fp32, and both over PyTorch eager, for the teacher (roberta-base shape), 6L, 4AH and
#    4AH_pruned at batch 1 and 8, length 128, with the head verdict per engine
# 3. where the time goes (--breakdown) for the teacher, 4AH, 4AH_pruned and 6L
# 4. kdbench's measuring overhead against a bare loop (torch and ONNX Runtime)
# 5. the default `kdbench profile`: its wall time, and memory per model
set -uo pipefail
out=${1:-/tmp/deploy-figures}
mkdir -p "$out"
kdbench env > "$out/env.txt" 2>&1
kdbench profile --students 6L --backends torch --dtypes fp32,bf16 --output "$out/bf16.json" > "$out/bf16.txt" 2>&1
echo "bf16 exit status $?" >> "$out/bf16.txt"
kdbench profile --students 6L,4AH,4AH_pruned --backends torch,onnxruntime,onnxruntime:int8 --batch-sizes 1,8 \
  --seq-lens 128 --output "$out/engines.json" > "$out/engines.txt" 2>&1
kdbench profile --students 4AH,4AH_pruned,6L --backends torch --breakdown --output "$out/breakdown.json" \
  > "$out/breakdown.txt" 2>&1
python3 scripts/overhead.py > "$out/overhead.txt" 2>&1
start=$(date +%s)
kdbench profile --output "$out/default.json" > "$out/default.txt" 2>&1
echo "default profile wall time $(( $(date +%s) - start )) s" >> "$out/default.txt"
tail -n 3 "$out"/*.txt
