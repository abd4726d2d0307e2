"""The body of scripts/cuda_check.sh: ceilings, the zoo profile in fp32 and bf16, achieved TFLOP/s, head verdict.

    python3 scripts/cuda_check.py OUT_DIR [--dry-run] [--budget-s 420]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

GRID = dict(students="paper,heads,pruned", backends=("torch",), device="cuda", batch_sizes=(1, 32, 256),
            seq_lens=(128,), warmup_runs=3, warmup_time_s=0.2, min_runs=10, min_time_s=0.3, max_time_s=5.0)
DTYPES = ("fp32", "bf16")


def achieved_rows(result, ceiling_tflops: float) -> list[dict]:
    """Achieved TFLOP/s per cell (analytic FLOPs x batch / p50) and its share of the measured bf16 ceiling."""
    rows = []
    for c in result.cells:
        flops = result.students[c.student]["flops_per_sequence"][str(c.seq_len)] * c.batch_size
        tflops = flops / c.stats.p50 / 1e12
        rows.append({"student": c.student, "dtype": c.dtype, "batch": c.batch_size, "p50_ms": c.stats.p50 * 1e3,
                     "cv": c.stats.cv, "seq_per_s": c.sequences_per_s, "tflops": tflops,
                     "share_of_bf16_ceiling": tflops / ceiling_tflops, "attn_impl": c.attn_impl})
    return rows


def markdown(env: dict, ceilings: dict, rows: list[dict], lines, claim: str) -> str:
    gpu = env.get("gpu", {})
    v = env.get("versions", {})
    out = [f"# CUDA check: {gpu.get('name')}", "",
           f"Driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}, torch {v.get('torch')}, transformers "
           f"{v.get('transformers')}, Python {env.get('python')}, kdbench commit {env.get('git_commit')}.", "",
           f"Ceilings: bf16 matmul {ceilings['bf16_matmul_tflops']:.0f} TFLOP/s "
           f"(n={ceilings['matmul_n']}), device-to-device copy {ceilings['d2d_copy_gbps']:.0f} GB/s.", "",
           "## Zoo, bf16, batch 256, length 128", "",
           "| student | p50 ms | CV % | seq/s | TFLOP/s | share of bf16 ceiling | attention |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["dtype"] == "bf16" and r["batch"] == 256:
            out.append(f"| {r['student']} | {r['p50_ms']:.2f} | {r['cv'] * 100:.1f} | {r['seq_per_s']:.0f} | "
                       f"{r['tflops']:.1f} | {r['share_of_bf16_ceiling']:.0%} | {r['attn_impl']} |")
    out += ["", "## Head verdict", "", "| student | dtype | batch | head dim | speed-up [95% CI] | FLOPs ratio | "
            "pruned twin | pruned speed-up | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for ln in lines:
        _d, _b, dtype, batch, _s = ln.grid_key
        out.append(f"| {ln.student} | {dtype} | {batch} | {ln.head_dim} | {ln.speedup} | {ln.flops_ratio:.2f} | "
                   f"{ln.pruned or '-'} | {ln.pruned_speedup or '-'} | {ln.outcome} |")
    out += ["", f"**Head claim:** {claim}", ""]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--dry-run", action="store_true", help="plan and check without a GPU")
    args = ap.parse_args()

    from kdbench.errors import KdbenchError
    from kdbench.io import atomic_write_json, atomic_write_text, check_writable
    from kdbench.profile import ProfileConfig, plan

    try:
        configs = [ProfileConfig(dtype=d, output=args.out / f"profile-cuda-{d}.json", **GRID) for d in DTYPES]
        shapes = plan(configs[0]).shapes
        check_writable(args.out / "cuda_check.md")
        print(f"plan: ceilings; profile {len(shapes)} models x {len(DTYPES)} dtypes x batch {GRID['batch_sizes']} "
              f"x length {GRID['seq_lens']} on cuda (torch); outputs in {args.out}")
        if args.dry_run:
            print("dry run: plan checked, nothing measured")
            return 0
        import torch

        if not torch.cuda.is_available():
            raise KdbenchError("no CUDA device is visible to PyTorch here; run this on a GPU machine (or --dry-run)")
        from kdbench import env as envmod
        from kdbench.ceilings import measure_ceilings
        from kdbench.profile import run_profile
        from kdbench.render import head_table, profile_tables
        from kdbench.results import ProfileResult
        from kdbench.verdict import head_claim, head_verdicts
        from rich.console import Console

        console = Console(width=170)
        started = time.perf_counter()
        ceilings = measure_ceilings()
        console.print(f"ceilings: {ceilings}")
        results = []
        for cfg in configs:
            r = run_profile(cfg, progress=lambda d, n: None)
            r.save(cfg.output)
            results.append(r)
            console.print(f"{cfg.dtype} done at {time.perf_counter() - started:.0f} s")
        merged = ProfileResult(results[0].environment, {"grid": GRID, "dtypes": DTYPES}, results[0].teacher,
                               results[0].students, tuple(c for r in results for c in r.cells))
        rows = achieved_rows(merged, ceilings["bf16_matmul_tflops"])
        lines = head_verdicts(merged)
        claim = head_claim(lines)
        atomic_write_json(args.out / "cuda_check.json", {"ceilings": ceilings, "achieved": rows,
                                                         "head_verdict": [ln.to_dict() for ln in lines],
                                                         "head_claim": claim, "environment": envmod.collect()})
        md = markdown(merged.environment, ceilings, rows, lines, claim)
        atomic_write_text(args.out / "cuda_check.md", md)
        for t in profile_tables(merged):
            console.print(t)
        console.print(head_table(lines))
        print(md)
        print(f"total {time.perf_counter() - started:.0f} s")
        return 0
    except KdbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
