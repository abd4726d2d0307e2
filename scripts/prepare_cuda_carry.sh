#!/usr/bin/env bash
# Prepares what scripts/cuda_check.sh needs on a bare GPU machine with no network, in two ignored folders:
#   .whl/    wheels that machine lacks (datasets, dill, multiprocess from ../shared/device/wheels; accelerate, psutil)
#   .carry/  the MiniLM teacher as fp16 safetensors (~45 MB) and RTE from ../shared/glue
# Then, with the device tool:  run(command="bash scripts/cuda_check.sh $OUT --teacher .carry/minilm --data .carry/glue",
#                                   carry=[".whl", ".carry"], timeout_s=540)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl .carry/glue/rte
cp ../shared/device/wheels/*.whl .whl/
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
  "accelerate>=0.26,<2" "psutil>=5"
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
cp ../shared/glue/rte/*.parquet .carry/glue/rte/
du -sh .whl .carry
