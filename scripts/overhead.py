"""How much kdbench's measuring adds to a model call: its p50 against a bare timing loop on the same session, model and
inputs in the same process, for PyTorch eager and ONNX Runtime (issue 12's "measured as deployed").

    python3 scripts/overhead.py [--rounds 6] [--runs 20] [--batch 1] [--seq 128] [--threads N] [--student teacher]

The two sides alternate in rounds, so machine drift hits both alike. Prints each engine's two p50s and their ratio
(kdbench / bare; the goal is at most 1.03).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def bare(call, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--student", default="teacher", help="a zoo name, or teacher (roberta-base shape)")
    args = ap.parse_args()

    import torch

    from kdbench.engines.base import ModelEntry
    from kdbench.engines.registry import check_backend
    from kdbench.measure.clock import CpuClock, measure
    from kdbench.measure.profile import ProfileConfig, make_inputs, plan
    from kdbench.zoo.modeling import build_model, student_config

    p = plan(ProfileConfig(students="" if args.student == "teacher" else args.student, backends=("torch",)))
    shape = next(s for s in p.shapes if s.name == args.student)
    torch.manual_seed(0)
    model = build_model(p.teacher_config, shape)
    entry = ModelEntry(shape.name, shape, p.teacher["model_type"], config=student_config(p.teacher_config, shape))
    arrays = make_inputs(p.teacher_config.vocab_size, args.batch, args.seq, 0)
    quiet = lambda *_: None  # noqa: E731
    for name in ("torch", "onnxruntime"):
        session = check_backend(name).open(entry, lambda: model, "cpu", "fp32", args.threads, quiet)[name]
        inputs = session.prepare(arrays)
        call = lambda s=session, x=inputs: s.run(x)  # noqa: E731
        for _ in range(5):
            call()
        kd, raw = [], []
        for _ in range(args.rounds):
            kd += measure(call, session.synchronize, CpuClock(), 0, args.runs, 0.0, 60.0)
            raw += bare(call, args.runs)
        a, b = float(np.median(kd)), float(np.median(raw))
        print(
            f"{name:12s} {shape.name} b{args.batch} n{args.seq}: kdbench p50 {a * 1e3:.2f} ms, bare loop p50 "
            f"{b * 1e3:.2f} ms, ratio {a / b:.3f} ({len(kd)} calls each)",
            flush=True,
        )
        if name == "torch":
            interleaving_cost(session, inputs, p, entry, model, arrays, args)


def interleaving_cost(session, inputs, p, entry, model, arrays, args) -> None:
    """The model timed alone against the same model timed in kdbench's interleaved blocks beside another model (3L):
    what switching models between blocks costs (cache and allocator state), in alternating rounds."""
    import torch

    from kdbench.engines.base import ModelEntry
    from kdbench.engines.registry import check_backend
    from kdbench.measure.clock import CpuClock, Target, measure, measure_interleaved
    from kdbench.zoo.modeling import build_model, student_config

    other_shape = next(s for s in p.shapes if s.name != entry.name) if len(p.shapes) > 1 else None
    if other_shape is None:
        from kdbench.zoo.students import load_zoo, lookup_student, resolve
        from kdbench.zoo.teacher import teacher_shape

        other_shape = resolve(lookup_student(load_zoo(), "3L"), teacher_shape(p.teacher_config, "roberta-base"))
    torch.manual_seed(1)
    other = build_model(p.teacher_config, other_shape)
    other_entry = ModelEntry(
        other_shape.name, other_shape, entry.model_type, config=student_config(p.teacher_config, other_shape)
    )
    o_session = check_backend("torch").open(other_entry, lambda: other, "cpu", "fp32", args.threads, lambda *_: None)[
        "torch"
    ]
    o_inputs = o_session.prepare(arrays)
    call = lambda: session.run(inputs)  # noqa: E731
    alone, mixed = [], []
    for _ in range(args.rounds):
        alone += measure(call, session.synchronize, CpuClock(), 0, args.runs, 0.0, 60.0)
        targets = [
            Target(entry.name, call, session.synchronize),
            Target(other_shape.name, lambda: o_session.run(o_inputs), o_session.synchronize),
        ]
        measure_interleaved(targets, CpuClock(), args.runs, 0.0, 60.0)
        mixed += targets[0].samples
    a, b = float(np.median(mixed)), float(np.median(alone))
    print(
        f"{'torch':12s} {entry.name} interleaved with {other_shape.name} p50 {a * 1e3:.2f} ms, alone p50 "
        f"{b * 1e3:.2f} ms, ratio {a / b:.3f}",
        flush=True,
    )


if __name__ == "__main__":
    main()
