"""Overhead of kdbench's ONNX Runtime timing against a bare `InferenceSession.run` loop on the same .onnx file.

    python3 scripts/ort_overhead.py [--rounds 6] [--runs 20] [--batch 1] [--seq 128] [--threads N]

Both sides use the same session options and inputs and alternate in rounds, so machine drift hits both equally.
Prints both p50s and their ratio (kdbench / bare; the goal is <= 1.02).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args()

    import torch

    from kdbench.backends import config_digest, onnx_cache_path, open_session
    from kdbench.clock import clock_for
    from kdbench.modeling import build_model
    from kdbench.profile import ProfileConfig, make_inputs, measure, plan

    p = plan(ProfileConfig(students="3L"))
    teacher = p.shapes[0]
    torch.manual_seed(0)
    model = build_model(p.teacher_config, teacher)
    path = onnx_cache_path(p.teacher["model_type"], teacher.key(), config_digest(model.config))
    session = open_session("onnxruntime", model, "cpu", "fp32", args.threads, path)
    feeds = session.prepare(make_inputs(p.teacher_config.vocab_size, args.batch, args.seq, 0))
    clock = clock_for("cpu")
    ours: list[float] = []
    bare: list[float] = []
    raw = session.session
    for _ in range(3):  # shared warm-up
        raw.run(None, feeds)
    for _ in range(args.rounds):
        ours += measure(
            lambda: session.run(feeds),
            session.synchronize,
            clock,
            warmup_runs=1,
            min_runs=args.runs,
            min_time_s=0.0,
            max_time_s=1e9,
        )
        raw.run(None, feeds)
        for _ in range(args.runs):
            t0 = time.perf_counter()
            raw.run(None, feeds)
            bare.append(time.perf_counter() - t0)
    p_ours, p_bare = float(np.median(ours)), float(np.median(bare))
    print(f"onnx file: {path}")
    print(
        f"teacher (roberta-base) batch {args.batch} seq {args.seq}, {args.threads} threads, "
        f"{len(ours)} + {len(bare)} runs in {args.rounds} alternating rounds"
    )
    print(
        f"kdbench p50 {p_ours * 1e3:.2f} ms   bare InferenceSession.run p50 {p_bare * 1e3:.2f} ms   "
        f"ratio {p_ours / p_bare:.3f}"
    )


if __name__ == "__main__":
    main()
