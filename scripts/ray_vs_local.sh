#!/usr/bin/env bash
# Issue 13's figure: one small study on real data run twice from scratch - by the local executor (--jobs 2) and by a
# local Ray instance (--executor ray, one CPU per task) - with the cell count, both wall times and a check that every
# run's scores are identical. Each side fine-tunes its own teacher into its own cache. Run on a quiet machine:
#   scripts/ray_vs_local.sh [OUT_DIR=/tmp/ray-vs-local]
set -euo pipefail
out=${1:-/tmp/ray-vs-local}
here=$(cd "$(dirname "$0")/.." && pwd)
teacher=$("$here/../shared/tools/offline-teacher.sh" ~/.cache/kdbench/pretrained minilm | tail -1)
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0  # a local Ray on 127.0.0.1
for executor in local ray; do
  dir=$out/$executor
  [ -e "$dir" ] && { echo "$dir exists: pick another OUT_DIR"; exit 2; }
  mkdir -p "$dir"
  cat > "$dir/study.yaml" <<YAML
name: ray-vs-local
teacher: sentence-transformers/all-MiniLM-L6-v2
tasks: [rte]
students: [6L, 3L, 4AH_pruned, 384D]
seeds: [42]
teacher_train: {epochs: 1, max_train_samples: 400, batch_size: 12, max_seq_len: 128}
train: {epochs: 1, max_train_samples: 400, batch_size: 12, max_seq_len: 128}
export: {quantize: int8, parity_samples: 64}
profile: {batch_sizes: [1], seq_lens: [128], min_runs: 20, min_time_s: 1.0}
output_dir: .
YAML
  if [ "$executor" = local ]; then flags=(--jobs 2); else flags=(--executor ray); fi
  start=$(date +%s.%N)
  KDBENCH_CACHE=$dir/cache kdbench study "$dir/study.yaml" --teacher "$teacher" --data-dir "$here/../shared/glue" \
    "${flags[@]}" > "$dir/console.log" 2>&1
  echo "$executor: $(python3 -c "print(f'{$(date +%s.%N) - $start:.0f}')") s wall, $(tail -1 "$dir/console.log")"
done
python3 - "$out" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def scores(side):
    root = out / side / "runs"
    found = {}
    for f in sorted(root.rglob("*.json")):
        doc = json.loads(f.read_text())
        if "score" in doc and f.name != "config.json":
            found[str(f.relative_to(root))] = doc["score"]
    return found
local, ray = scores("local"), scores("ray")
cells = {s: len(list((out / s / "study-log").rglob("*.json"))) for s in ("local", "ray")}
nodes = {json.loads(f.read_text()).get("node") for f in (out / "ray" / "study-log").rglob("*.json")}
print(f"cells finished: local {cells['local']}, ray {cells['ray']} (on {len(nodes)} node(s))")
print(f"scores compared: {len(local)} files; identical: {local == ray}")
for k in sorted(local):
    print(f"  {k:<55} local {local[k]:.6f}  ray {ray.get(k, float('nan')):.6f}")
PY
