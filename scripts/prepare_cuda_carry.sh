#!/usr/bin/env bash
# Prepares what scripts/cuda_check.sh needs on a bare GPU machine with no network, in two ignored folders:
#   .whl/    wheels that machine lacks (datasets, dill, multiprocess from ../shared/device/wheels)
#   .carry/  the MiniLM teacher as fp16 safetensors (~45 MB) and the study's GLUE tasks from ../shared/glue
# Then, with the device tool (one call; the study stops itself in time, the tarball holds every result; the first
# call's results are in reports/cuda, so the next one continues from them and skips the eager zoo profile):
#   run(command="KDBENCH_GIT_COMMIT=$(git rev-parse HEAD) KDBENCH_CACHE=/dev/shm/kd/cache bash scripts/cuda_check.sh
#                \$OUT --teacher .carry/minilm --data .carry/glue --study-dir /dev/shm/kd/study
#                --continue-from reports/cuda --phases ceilings,compile,trace,study --budget-s 540 --jobs 6 --pack",
#       carry=[".whl", ".carry"], timeout_s=590)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl .carry
mkdir -p .whl .carry/glue
cp ../shared/device/wheels/*.whl .whl/
teacher=$(../shared/tools/offline-teacher.sh "${TEACHERS_DIR:-$HOME/.cache/kdbench/pretrained}" minilm | tail -1)
python3 - "$teacher" .carry/minilm <<'PY'
import shutil, sys
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
tensors = {k: v.half().contiguous() for k, v in load_file(str(src / "model.safetensors")).items()}
save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
    shutil.copy(src / name, dst / name)
PY
for task in rte mrpc stsb cola; do  # the tasks of reports/cuda/study.yaml
  mkdir -p .carry/glue/$task && cp ../shared/glue/$task/*.parquet .carry/glue/$task/
done
du -sh .whl .carry
python3 scripts/cuda_check.py /tmp/cuda-check-dry --dry-run --teacher .carry/minilm --data .carry/glue \
  --study-dir /dev/shm/kd/study --continue-from reports/cuda --phases ceilings,compile,trace,study
