"""The body of scripts/cuda_check.sh: everything issue 14 asks of one GPU call, inside one wall-clock budget.

    python3 scripts/cuda_check.py OUT_DIR [--dry-run] [--teacher MINILM_DIR --data GLUE_DIR] [--budget-s 540]
                                  [--jobs 6] [--study reports/cuda/study.yaml]

Phases, each bounded and each caught (a failing phase is logged with its traceback and the next one still runs):
  1. ceilings: the card's bf16 matrix-product TFLOP/s and copy GB/s;
  2. training steps: samples/s and MFU of a fine-tuning step and a distillation step (MiniLM and roberta-base shapes,
     batch 12 = the recipe's and 128), bf16 autocast;
  3. the study (with --teacher/--data): the paper's full recipe through `kdbench study`, several students trained at
     once on the GPU, stopped cleanly at its share of the budget;
  4. the zoo profile: roberta-base shape, paper zoo + head sweep + pruned heads, torch eager, fp32 and bf16, batch
     1/32/256, length 128, achieved TFLOP/s against the ceiling and the head verdict per batch size;
  5. the study's profile of its finished runs and its report.
Everything lands in OUT_DIR; `--pack` also writes OUT_DIR/cuda.tar.gz without weights or checkpoints.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRID = dict(
    students="paper,heads,pruned",
    backends=("torch",),
    device="cuda",
    batch_sizes=(1, 32, 256),
    seq_lens=(128,),
    warmup_runs=3,
    warmup_time_s=0.1,
    min_runs=20,  # the least a speed-up interval is computed from
    min_time_s=0.2,
    max_time_s=3.0,
)
DTYPES = ("fp32", "bf16")
PROFILE_RESERVE_S = 110  # the zoo profile measured ~19 models x 2 dtypes x 3 batches; kept free of the study's time
CLOSE_RESERVE_S = 40  # the study's own profile, its report and packing
STEP_GRID = ((12, "recipe batch"), (128, "large batch"))
CARRY_LIMIT_MIB = 64  # what one device call may carry: the working tree plus the carried folders


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


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
    ]
    for dtype, batch in (("bf16", 256), ("bf16", 1), ("fp32", 256)):
        out += [
            "",
            f"## Zoo, {dtype}, batch {batch}, length 128",
            "",
            "| student | p50 ms | CV % | seq/s | TFLOP/s | share of bf16 ceiling | attention |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            if r["dtype"] == dtype and r["batch"] == batch:
                out.append(
                    f"| {r['student']} | {r['p50_ms']:.2f} | {r['cv'] * 100:.1f} | {r['seq_per_s']:.0f} | "
                    f"{r['tflops']:.1f} | {r['share_of_bf16_ceiling']:.1%} | {r['attn_impl']} |"
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


def steps_markdown(steps: list[dict]) -> str:
    out = [
        "## Training steps (bf16 autocast, fused AdamW, length 128, random tokens, no data loading)",
        "",
        "| step | teacher shape | trained model | batch | ms/step | samples/s | TFLOP/s | MFU (of bf16 ceiling) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        out.append(
            f"| {s['kind']} | {s['teacher']} | {s['model']} | {s['batch_size']} | {s['p50_s'] * 1e3:.1f} | "
            f"{s['samples_per_s']:.0f} | {s['tflops']:.1f} | {s['mfu']:.1%} |"
        )
    return "\n".join(out) + "\n"


def plan_study(study_file: Path, teacher: str, data: Path, where: Path):
    """Load the study from a copy in `where` (its runs land there), checking every cell and the carried data."""
    from kdbench.data import get_task, load_task
    from kdbench.study import cells, load_study

    study = load_study(study_file, teacher, data)
    study = replace(study, output_dir=where)  # runs land in `where`; the study file is copied there when it runs
    for task in study.tasks:
        load_task(get_task(task), data)  # every carried split readable before any GPU time is spent
    return study, cells(study)


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def carried_mib(teacher: str | None, data: Path | None, tasks: tuple[str, ...]) -> float:
    """MiB one device call carries: the repo's tracked and not-ignored files, the wheels, the teacher folder and the
    study's tasks (what prepare_cuda_carry.sh copies into .whl/ and .carry/)."""
    import subprocess

    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, text=True
    )
    files = [ROOT / f for f in listed.stdout.split("\0") if f] if listed.returncode == 0 else []
    total = sum(f.stat().st_size for f in files if f.is_file())
    wheels = ROOT / ".whl" if (ROOT / ".whl").is_dir() else ROOT.parent / "shared" / "device" / "wheels"
    total += _folder_bytes(wheels) if wheels.is_dir() else 0
    total += _folder_bytes(Path(teacher)) if teacher else 0
    total += sum(_folder_bytes(Path(data) / t) for t in tasks if data and (Path(data) / t).is_dir())
    return total / 2**20


def measure_steps(teacher_dir: str | None, ceiling: float | None, device: str = "cuda") -> list[dict]:
    from kdbench.students import load_zoo, lookup_student, resolve, teacher_as_student
    from kdbench.teacher import load_teacher_config, teacher_shape
    from kdbench.trainspeed import measure_step

    out = []
    for name in [n for n in (teacher_dir, "roberta-base") if n]:
        cfg = load_teacher_config(name)
        t = teacher_shape(cfg, name)
        ts = teacher_as_student(t)
        student = resolve(lookup_student(load_zoo(), "6L"), t)
        label = "all-MiniLM-L6-v2" if name == teacher_dir else name
        for batch, _why in STEP_GRID:
            for s in (None, student):
                r = measure_step(cfg, ts, s, batch, 128, device, "bf16", min_runs=10, min_time_s=0.3)
                out.append({"teacher": label, **r.to_dict(ceiling)})
                log(
                    f"step {r.kind} {label} {r.model} b={batch}: {r.samples_per_s:.0f} samples/s, mfu "
                    f"{(r.tflops / ceiling) if ceiling else float('nan'):.1%}"
                )
    return out


def run_zoo_profile(out: Path, configs, ceilings: dict) -> dict:
    from rich.console import Console

    from kdbench.profile import run_profile
    from kdbench.render import head_table, profile_tables
    from kdbench.results import ProfileResult
    from kdbench.verdict import head_claim, head_verdicts

    results = []
    for cfg in configs:
        r = run_profile(cfg)
        r.save(cfg.output)
        results.append(r)
        log(f"zoo profile {cfg.dtypes} done")
    merged = ProfileResult(
        results[0].environment,
        {"grid": {k: list(v) if isinstance(v, tuple) else v for k, v in GRID.items()}, "dtypes": list(DTYPES)},
        results[0].teacher,
        results[0].students,
        tuple(c for r in results for c in r.cells),
    )
    rows = achieved_rows(merged, ceilings["bf16_matmul_tflops"])
    lines = head_verdicts(merged)
    claim = head_claim(lines)
    console = Console(width=170)
    for t in profile_tables(merged):
        console.print(t)
    console.print(head_table(lines))
    return {
        "achieved": rows,
        "head_verdict": [ln.to_dict() for ln in lines],
        "head_claim": claim,
        "markdown": markdown(merged.environment, ceilings, rows, lines, claim),
    }


def run_the_study(study, jobs: int, deadline: float) -> dict:
    from kdbench.study import cells, run_study

    started = time.time()

    def progress(what: str, done: int, total: int, left: float | None) -> None:
        eta = f", about {left / 60:.1f} min of work left at the rate so far" if left is not None else ""
        log(f"study {done}/{total} done{eta}; {what}")

    ran = run_study(study, progress=progress, jobs=jobs, deadline=deadline)
    left = [c.id for c in cells(study) if not c.done()]
    log(f"study: ran {len(ran)} cells in {time.time() - started:.0f} s; {len(left)} left: {left}")
    return {"ran": ran, "left": left, "wall_s": time.time() - started, "jobs": jobs}


def close_the_study(study) -> None:
    from kdbench.study import profile_finished, write_study_report

    profile_finished(study)
    write_study_report(study)
    log(f"study report: {study.output_dir / 'REPORT.md'}")


def pack(out: Path, study_dir: Path | None, cache: Path | None) -> Path:
    """OUT/cuda.tar.gz: every JSON, markdown, log and plot; never weights, checkpoints or tokenizer files."""
    keep = {".json", ".md", ".log", ".png", ".yaml", ".txt"}
    skip = ("checkpoints", "student", "onnx")
    tar_path = out / "cuda.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for base, arc in ((out, "check"), (study_dir, "study"), (cache, "teachers")):
            if base is None or not base.exists():
                continue
            for f in sorted(base.rglob("*")):
                rel = f.relative_to(base)
                if not f.is_file() or f.suffix not in keep or f == tar_path or any(p in skip for p in rel.parts):
                    continue
                if arc == "teachers" and f.name != "metrics.json":
                    continue  # a teacher's cache folder: its metrics only (configs and tokenizers are known)
                tar.add(f, f"{arc}/{rel}")
    return tar_path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--dry-run", action="store_true", help="plan and check without a GPU")
    ap.add_argument("--teacher", help="MiniLM teacher folder (from scripts/prepare_cuda_carry.sh)")
    ap.add_argument("--data", type=Path, help="GLUE folder holding <task>/{train,validation}.parquet")
    ap.add_argument("--study", type=Path, default=ROOT / "reports" / "cuda" / "study.yaml", help="the study file")
    ap.add_argument("--study-dir", type=Path, help="where the study runs (default OUT/study; a tmpfs is faster)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="wall seconds for everything")
    ap.add_argument("--jobs", type=int, default=6, help="trainings at once on the GPU")
    ap.add_argument("--pack", action="store_true", help="write OUT/cuda.tar.gz (JSON, markdown, logs; no weights)")
    args = ap.parse_args()
    started = time.time()
    end = started + args.budget_s

    from kdbench.errors import KdbenchError
    from kdbench.io import atomic_write_json, atomic_write_text, check_writable
    from kdbench.profile import ProfileConfig, plan

    study = None
    try:
        configs = [ProfileConfig(dtype=d, output=args.out / f"profile-cuda-{d}.json", **GRID) for d in DTYPES]
        shapes = plan(configs[0]).shapes
        check_writable(args.out / "cuda_check.md")
        log(
            f"plan: ceilings; training steps; zoo profile of {len(shapes)} models x {len(DTYPES)} dtypes x batch "
            f"{GRID['batch_sizes']} x length {GRID['seq_lens']} on cuda (torch); budget {args.budget_s:.0f} s; "
            f"outputs in {args.out}"
        )
        if args.teacher or args.data:
            if not (args.teacher and args.data):
                raise KdbenchError("--teacher and --data go together")
            study, study_cells = plan_study(args.study, args.teacher, args.data, args.study_dir or args.out / "study")
            kinds = {k: sum(c.kind == k for c in study_cells) for k in dict.fromkeys(c.kind for c in study_cells)}
            carried = carried_mib(args.teacher, args.data, study.tasks)
            if carried > CARRY_LIMIT_MIB:
                raise KdbenchError(f"the call would carry {carried:.1f} MiB; a device call carries {CARRY_LIMIT_MIB}")
            log(f"plan: carried {carried:.1f} MiB of {CARRY_LIMIT_MIB} (repo, wheels, teacher, data)")
            log(
                f"plan: study {study.name}: {', '.join(f'{n} {k}' for k, n in kinds.items())} cells on "
                f"{', '.join(study.tasks)} with {args.jobs} jobs, until {PROFILE_RESERVE_S + CLOSE_RESERVE_S} s "
                "before the budget ends"
            )
        if args.dry_run:
            log("dry run: plan checked, nothing measured")
            return 0
        import torch

        if not torch.cuda.is_available():
            raise KdbenchError("no CUDA device is visible to PyTorch here; run this on a GPU machine (or --dry-run)")
    except KdbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from kdbench import env as envmod
    from kdbench.ceilings import measure_ceilings

    doc: dict = {"environment": envmod.collect(), "budget_s": args.budget_s, "phases": {}, "errors": {}}

    def phase(name: str, fn):
        t0 = time.time()
        log(f"phase {name}: starting ({end - t0:.0f} s of the budget left)")
        try:
            value = fn()
        except Exception as exc:  # a phase's failure is recorded; the next phase still runs
            doc["errors"][name] = "".join(traceback.format_exception(exc))
            log(f"phase {name} FAILED: {type(exc).__name__}: {exc}")
            value = None
        doc["phases"][name] = round(time.time() - t0, 1)
        atomic_write_json(args.out / "cuda_check.json", doc)
        return value

    ceilings = phase("ceilings", lambda: measure_ceilings(min_time_s=0.5))
    doc["ceilings"] = ceilings
    ceiling = ceilings["bf16_matmul_tflops"] if ceilings else None
    doc["training_steps"] = phase("training_steps", lambda: measure_steps(args.teacher, ceiling))
    if study is not None:
        study.output_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.study, study.output_dir / "study.yaml")  # the report's "regenerate" line points at it
        deadline = end - PROFILE_RESERVE_S - CLOSE_RESERVE_S
        doc["study"] = phase("study", lambda: run_the_study(study, args.jobs, deadline))
    zoo = phase("zoo_profile", lambda: run_zoo_profile(args.out, configs, ceilings)) if ceilings else None
    if study is not None:
        phase("study_report", lambda: close_the_study(study))
    md = zoo.pop("markdown") if zoo else "# CUDA check\n\nThe zoo profile did not run; see errors.\n"
    if doc.get("training_steps"):
        md += "\n" + steps_markdown(doc["training_steps"])
    doc.update(zoo or {})
    doc["wall_s"] = round(time.time() - started, 1)
    atomic_write_json(args.out / "cuda_check.json", doc)
    atomic_write_text(args.out / "cuda_check.md", md)
    print(md)
    if args.pack:
        import os

        cache = Path(os.environ["KDBENCH_CACHE"]) / "teachers" if os.environ.get("KDBENCH_CACHE") else None
        log(f"packed {pack(args.out, args.study_dir, cache)}")
    log(f"total {time.time() - started:.0f} s; failed phases: {sorted(doc['errors']) or 'none'}")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
