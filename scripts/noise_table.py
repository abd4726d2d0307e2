"""What lowers the block-to-block noise of a profile on this machine? (issue 26, point 3)

    python3 scripts/noise_table.py [--repeats 4] [--seconds 20] [--json OUT.json]

Times the roberta-base-shaped teacher and 4AH (random weights, PyTorch eager, fp32, batch 1, length 128: the head
verdict's comparison) for `--seconds` of interleaved rounds, the way `kdbench profile` does, under each variant:

- as shipped: one process, warm-up of 2 calls and 0.5 s;
- OpenMP threads bound to cores (OMP_PROC_BIND=close, OMP_PLACES=cores; a fresh process, set before torch loads) -
  os.sched_setaffinity to the process's own cores changes nothing on a machine whose process already has them all;
- warm-up until stable: warm-up calls go on until the median of the last 10 calls moves less than 1 % from the 10
  before (at most 10 s);
- one child process per model: each model in its own process, the parent asks them for blocks in turn.

Each variant runs in a fresh process, the variants in turn `--repeats` times (so slow drift of the machine spreads
over all of them), and the table gives, per variant, the median over repeats of: the blocks' coefficient of
variation (the spread of block medians, the unit of noise a speed-up interval rests on) and the paired 95 %
half-width of 4AH's speed-up over the teacher after the same measuring time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

VARIANTS = ("as shipped", "OpenMP bound to cores", "warm-up until stable", "one process per model")
MODELS = ("teacher", "4AH")


def _sessions(names=MODELS) -> dict:
    """PyTorch eager sessions of the zoo models, as `kdbench profile` builds them."""
    import torch

    from kdbench.engines.pytorch import TorchBackend
    from kdbench.measure.models import entries, make_inputs, plan
    from kdbench.measure.profile import ProfileConfig
    from kdbench.zoo.modeling import build_model

    cfg = ProfileConfig(students="4AH")
    p = plan(cfg)
    out = {}
    for entry in entries(p):
        if entry.name in names:
            torch.manual_seed(0)
            model = build_model(p.teacher_config, entry.shape)
            load = lambda m=model: m  # noqa: E731
            session = TorchBackend().open(entry, load, "cpu", "fp32", os.cpu_count() or 1, lambda *_: None)["torch"]
            inputs = session.prepare(make_inputs(p.teacher_config.vocab_size, 1, 128, 0))
            out[entry.name] = (session, inputs)
    return out


def _warm(session, inputs, until_stable: bool) -> None:
    from kdbench.measure.clock import CpuClock, warm_up

    warm_up(lambda: session.run(inputs), session.synchronize, CpuClock(), 2, 0.5)
    if not until_stable:
        return
    import time

    clock, calls, start = CpuClock(), [], time.perf_counter()
    while time.perf_counter() - start < 10.0:
        calls.append(clock.time_call(lambda: session.run(inputs), session.synchronize))
        if len(calls) >= 20:
            before, last = np.median(calls[-20:-10]), np.median(calls[-10:])
            if abs(last / before - 1) < 0.01:
                return


def _in_process(seconds: float, until_stable: bool) -> dict:
    from kdbench.measure.clock import BLOCK_S, CpuClock, Rotation, Target, measure_interleaved

    sessions = _sessions()
    for session, inputs in sessions.values():
        _warm(session, inputs, until_stable)
    targets = [Target(n, lambda s=s, x=x: s.run(x), s.synchronize) for n, (s, x) in sessions.items()]
    rounds = _rounds_for(seconds, targets, CpuClock())
    measure_interleaved(targets, CpuClock(), 0, 0.0, float("inf"), BLOCK_S, rotation=Rotation(), rounds=rounds)
    return {t.name: {"samples": t.samples, "rounds": t.rounds} for t in targets}


def _rounds_for(seconds: float, targets, clock) -> int:
    """Rounds that fill `seconds`, from one call of each model (a block lasts BLOCK_S or one call)."""
    from kdbench.measure.clock import BLOCK_S

    per_round = sum(max(BLOCK_S, clock.time_call(t.call, t.synchronize)) for t in targets)
    return max(2, int(seconds / per_round))


def _child(name: str, conn) -> None:
    """One model in its own process: times a block of calls whenever the parent asks."""
    from kdbench.measure.clock import BLOCK_S, CpuClock

    session, inputs = _sessions((name,))[name]
    _warm(session, inputs, False)
    clock = CpuClock()
    conn.send(clock.time_call(lambda: session.run(inputs), session.synchronize))
    while conn.recv() == "block":
        block, start = [], clock.now()
        while not block or clock.now() - start < BLOCK_S:
            block.append(clock.time_call(lambda: session.run(inputs), session.synchronize))
        conn.send(block)


def _per_process(seconds: float) -> dict:
    import multiprocessing as mp

    from kdbench.measure.clock import BLOCK_S

    ctx = mp.get_context("spawn")
    pipes, procs = {}, []
    for name in MODELS:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_child, args=(name, child))
        proc.start()
        pipes[name], procs = parent, [*procs, proc]
    first = {n: c.recv() for n, c in pipes.items()}
    rounds = max(2, int(seconds / sum(max(BLOCK_S, s) for s in first.values())))
    out = {n: {"samples": [], "rounds": []} for n in MODELS}
    for r in range(rounds):
        for name, conn in pipes.items():
            conn.send("block")
            block = conn.recv()
            out[name]["samples"] += block
            out[name]["rounds"] += [r] * len(block)
    for conn in pipes.values():
        conn.send("stop")
    for proc in procs:
        proc.join()
    return out


def worker(variant: str, seconds: float) -> dict:
    if variant == "one process per model":
        return _per_process(seconds)
    return _in_process(seconds, until_stable=variant == "warm-up until stable")


def figures(timed: dict) -> dict:
    """Block CV (spread of block medians, both models' mean) and the paired half-width of 4AH over the teacher."""
    from kdbench.measure.stats import paired_speedup_interval, round_medians

    cvs = []
    for m in timed.values():
        medians = np.array(list(round_medians(m["samples"], m["rounds"]).values()))
        cvs.append(float(medians.std(ddof=1) / medians.mean()))
    t, s = timed["teacher"], timed["4AH"]
    iv = paired_speedup_interval(t["samples"], t["rounds"], s["samples"], s["rounds"])
    return {"block_cv": float(np.mean(cvs)), "half_width": (iv.high / iv.low) ** 0.5 - 1, "rounds": iv.blocks}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per variant and repeat")
    parser.add_argument("--json", type=Path, help="also write every repeat's figures here")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(figures(worker(args.worker, args.seconds))))
        return
    found: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for k in range(args.repeats):
        for variant in VARIANTS:
            env = dict(os.environ)
            if variant == "OpenMP bound to cores":
                env.update(OMP_PROC_BIND="close", OMP_PLACES="cores")
            cmd = [sys.executable, __file__, "--worker", variant, "--seconds", str(args.seconds)]
            done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
            found[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"repeat {k + 1}, {variant}: {found[variant][-1]}", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(found, indent=1))
    print(f"| variant | block CV (median of {args.repeats}) | 95 % half-width of 4AH/teacher | rounds |")
    print("|---|---|---|---|")
    for variant, rows in found.items():
        cv = np.median([r["block_cv"] for r in rows])
        half = np.median([r["half_width"] for r in rows])
        print(f"| {variant} | {cv:.1%} | +/-{half:.1%} | {np.median([r['rounds'] for r in rows]):.0f} |")


if __name__ == "__main__":
    main()
