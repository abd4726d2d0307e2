"""The body of scripts/cuda_check.sh: ceilings, the zoo profile in fp32 and bf16, achieved TFLOP/s, head verdict,
and (with --teacher and --data) one bf16 distillation of a 3-layer student on RTE.

    python3 scripts/cuda_check.py OUT_DIR [--dry-run] [--teacher MINILM_DIR --data GLUE_DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

GRID = dict(
    students="paper,heads,pruned",
    backends=("torch",),
    device="cuda",
    batch_sizes=(1, 32, 256),
    seq_lens=(128,),
    warmup_runs=3,
    warmup_time_s=0.2,
    min_runs=10,
    min_time_s=0.3,
    max_time_s=5.0,
)
DTYPES = ("fp32", "bf16")


def achieved_rows(result, ceiling_tflops: float) -> list[dict]:
    """Achieved TFLOP/s per cell (analytic FLOPs x batch / p50) and its share of the measured bf16 ceiling."""
    rows = []
    for c in result.cells:
        flops = result.students[c.student]["flops_per_sequence"][str(c.seq_len)] * c.batch_size
        tflops = flops / c.stats.p50 / 1e12
        rows.append(
            {
                "student": c.student,
                "dtype": c.dtype,
                "batch": c.batch_size,
                "p50_ms": c.stats.p50 * 1e3,
                "cv": c.stats.cv,
                "seq_per_s": c.sequences_per_s,
                "tflops": tflops,
                "share_of_bf16_ceiling": tflops / ceiling_tflops,
                "attn_impl": c.attn_impl,
            }
        )
    return rows


def markdown(env: dict, ceilings: dict, rows: list[dict], lines, claim: str) -> str:
    gpu = env.get("gpu", {})
    v = env.get("versions", {})
    out = [
        f"# CUDA check: {gpu.get('name')}",
        "",
        f"Driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}, torch {v.get('torch')}, transformers "
        f"{v.get('transformers')}, Python {env.get('python')}, kdbench commit {env.get('git_commit')}.",
        "",
        f"Ceilings: bf16 matmul {ceilings['bf16_matmul_tflops']:.0f} TFLOP/s "
        f"(n={ceilings['matmul_n']}), device-to-device copy {ceilings['d2d_copy_gbps']:.0f} GB/s.",
        "",
        "## Zoo, bf16, batch 256, length 128",
        "",
        "| student | p50 ms | CV % | seq/s | TFLOP/s | share of bf16 ceiling | attention |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["dtype"] == "bf16" and r["batch"] == 256:
            out.append(
                f"| {r['student']} | {r['p50_ms']:.2f} | {r['cv'] * 100:.1f} | {r['seq_per_s']:.0f} | "
                f"{r['tflops']:.1f} | {r['share_of_bf16_ceiling']:.0%} | {r['attn_impl']} |"
            )
    out += [
        "",
        "## Head verdict",
        "",
        "| student | dtype | batch | head dim | speed-up [95% CI] | FLOPs ratio | "
        "pruned twin | pruned speed-up | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ln in lines:
        _d, _b, dtype, batch, _s = ln.grid_key
        out.append(
            f"| {ln.student} | {dtype} | {batch} | {ln.head_dim} | {ln.speedup} | {ln.flops_ratio:.2f} | "
            f"{ln.pruned or '-'} | {ln.pruned_speedup or '-'} | {ln.outcome} |"
        )
    out += ["", f"**Head claim:** {claim}", ""]
    return "\n".join(out)


def distill_step(teacher: str, data: Path, out: Path, ceiling_tflops: float) -> dict:
    """Distil the student that has 3 layers of MiniLM's 6 ('6L' = half the layers) on RTE for one epoch, bf16."""
    from kdbench.distill import DistillConfig, TrainConfig, distill
    from kdbench.flops import sequence_flops
    from kdbench.students import StudentShape, teacher_as_student
    from kdbench.teacher import load_teacher_config, teacher_shape

    cfg = DistillConfig(
        task="rte",
        student="6L",
        teacher=teacher,
        data_dir=data,
        output_dir=out / "distill-rte-6L",
        overwrite=True,
        train=TrainConfig(epochs=1, device="cuda"),
    )
    doc = distill(cfg, log=print)
    s, t = doc["student_shape"], doc["teacher_metrics"]
    n = round(doc["mean_train_tokens"])
    student = StudentShape(
        **{k: s[k] for k in ("name", "description", "group", "layers", "heads", "head_dim", "hidden", "ffn")}
    )
    teacher_cfg = teacher_as_student(teacher_shape(load_teacher_config(teacher), teacher))
    # a KD step: student forward + backward (about 3x forward) and a teacher forward, at the mean real length
    flops = 3 * sequence_flops(student, n) + sequence_flops(teacher_cfg, n)
    rate = doc["train_samples_per_second"]
    return {
        "samples_per_second": rate,
        "mean_tokens": n,
        "flops_per_sample": flops,
        "achieved_tflops": rate * flops / 1e12,
        "share_of_bf16_ceiling": rate * flops / 1e12 / ceiling_tflops,
        "student_score": doc["score"],
        "teacher_score": doc["teacher_score"],
        "wall_s": doc["wall_s"],
        "teacher_eval": t,
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--dry-run", action="store_true", help="plan and check without a GPU")
    ap.add_argument("--teacher", help="MiniLM teacher folder (from scripts/prepare_cuda_carry.sh)")
    ap.add_argument("--data", type=Path, help="GLUE folder holding rte/{train,validation}.parquet")
    args = ap.parse_args()

    from kdbench.errors import KdbenchError
    from kdbench.io import atomic_write_json, atomic_write_text, check_writable
    from kdbench.profile import ProfileConfig, plan

    try:
        configs = [ProfileConfig(dtype=d, output=args.out / f"profile-cuda-{d}.json", **GRID) for d in DTYPES]
        shapes = plan(configs[0]).shapes
        check_writable(args.out / "cuda_check.md")
        print(
            f"plan: ceilings; profile {len(shapes)} models x {len(DTYPES)} dtypes x batch {GRID['batch_sizes']} "
            f"x length {GRID['seq_lens']} on cuda (torch); outputs in {args.out}"
        )
        if args.teacher or args.data:
            if not (args.teacher and args.data):
                raise KdbenchError("--teacher and --data go together")
            from kdbench.data import get_task, load_task

            load_task(get_task("rte"), args.data)  # checks the carried data before any GPU time is spent
            print(f"plan: distil 6L (3 of 6 layers) from {args.teacher} on RTE for one epoch in bf16")
        if args.dry_run:
            print("dry run: plan checked, nothing measured")
            return 0
        import torch

        if not torch.cuda.is_available():
            raise KdbenchError("no CUDA device is visible to PyTorch here; run this on a GPU machine (or --dry-run)")
        from rich.console import Console

        from kdbench import env as envmod
        from kdbench.ceilings import measure_ceilings
        from kdbench.profile import run_profile
        from kdbench.render import head_table, profile_tables
        from kdbench.results import ProfileResult
        from kdbench.verdict import head_claim, head_verdicts

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
        merged = ProfileResult(
            results[0].environment,
            {"grid": GRID, "dtypes": DTYPES},
            results[0].teacher,
            results[0].students,
            tuple(c for r in results for c in r.cells),
        )
        rows = achieved_rows(merged, ceilings["bf16_matmul_tflops"])
        lines = head_verdicts(merged)
        claim = head_claim(lines)
        kd = distill_step(args.teacher, args.data, args.out, ceilings["bf16_matmul_tflops"]) if args.teacher else None
        atomic_write_json(
            args.out / "cuda_check.json",
            {
                "ceilings": ceilings,
                "achieved": rows,
                "head_verdict": [ln.to_dict() for ln in lines],
                "head_claim": claim,
                "distillation": kd,
                "environment": envmod.collect(),
            },
        )
        md = markdown(merged.environment, ceilings, rows, lines, claim)
        if kd:
            md += (
                f"\n## Distillation (RTE, 6L = 3 of MiniLM's 6 layers, one epoch, bf16)\n\n"
                f"{kd['samples_per_second']:.1f} samples/s at a mean {kd['mean_tokens']} tokens: "
                f"{kd['achieved_tflops']:.2f} TFLOP/s, {kd['share_of_bf16_ceiling']:.2%} of the bf16 ceiling; "
                f"student accuracy {kd['student_score']:.3f}, teacher {kd['teacher_score']:.3f}.\n"
            )
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
