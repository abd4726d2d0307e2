"""Deployment figures for one distilled run, measured in one go (issue: export and report):
parity of fp32 and int8, ONNX Runtime O2 and int8 latency over PyTorch eager at batch 1 / length 128 (timed
interleaved in one profile run), and int8's accuracy loss.

    python3 scripts/deploy_check.py RUN_DIR [--min-time 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--min-time", default="2")
    args = ap.parse_args()
    run = args.run
    sh("kdbench", "export", str(run), "--optimize", "O2", "--quantize", "int8")
    for backend, variant in (("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")):
        sh("kdbench", "evaluate", str(run), "--backend", backend, "--variant", variant)
    out = run / "deploy-profile.json"
    sh(
        "kdbench",
        "profile",
        "--runs",
        str(run),
        "--batch-sizes",
        "1",
        "--seq-lens",
        "128",
        "--min-time",
        args.min_time,
        "-o",
        str(out),
    )
    parity = json.loads((run / "onnx" / "parity.json").read_text())
    cells = {(c["student"], c["backend"]): c["stats_s"]["p50"] for c in json.loads(out.read_text())["cells"]}
    student = next(s for s, b in cells if not s.endswith("/teacher"))
    eager = cells[(student, "torch")]
    evals = {p.stem: json.loads(p.read_text()) for p in (run / "eval").glob("*.json")}
    print(
        f"\nparity fp32: agreement {parity['fp32']['argmax_agreement']:.2%}, max |diff| "
        f"{parity['fp32']['max_abs_diff']:.2e}; int8: agreement {parity['int8']['argmax_agreement']:.2%}, "
        f"max |diff| {parity['int8']['max_abs_diff']:.2e} ({parity['int8']['examples']} examples)"
    )
    print(
        f"{student} batch 1 length 128: eager {eager * 1e3:.2f} ms, ORT fp32 "
        f"{cells[(student, 'onnxruntime')] * 1e3:.2f} ms, ORT O2 {cells[(student, 'onnxruntime:O2')] * 1e3:.2f} ms"
        f" (ratio {cells[(student, 'onnxruntime:O2')] / eager:.3f}, goal <= 0.75), int8 "
        f"{cells[(student, 'onnxruntime:int8')] * 1e3:.2f} ms (ratio {cells[(student, 'onnxruntime:int8')] / eager:.3f}"
        f", goal <= 0.45)"
    )
    i8 = evals["onnxruntime-int8"]
    print(
        f"{i8['metric']}: torch {evals['torch-fp32']['score']:.4f}, ORT fp32 {evals['onnxruntime-fp32']['score']:.4f},"
        f" int8 {i8['score']:.4f}; int8 loss {i8['loss_vs_fp32'] * 100:+.2f} points (goal <= 1)"
    )


if __name__ == "__main__":
    sys.exit(main())
