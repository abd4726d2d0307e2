"""The body of scripts/cuda_check.sh: everything issue 14 asks of one GPU call, inside one wall-clock budget.

    python3 scripts/cuda_check.py OUT_DIR [--dry-run] [--teacher MINILM_DIR --data GLUE_DIR] [--budget-s 540]
                                  [--jobs 6] [--study reports/cuda/study.yaml]

Phases (`--phases` picks some), each bounded and each caught (a failing phase is logged with its traceback and the
next one still runs):
  ceilings  the card's bf16 matrix-product TFLOP/s and copy GB/s;
  steps     samples/s and MFU of a fine-tuning step and a distillation step (MiniLM and roberta-base shapes, batch
            12 = the recipe's and 128), bf16 autocast;
  compile   torch.compile with CUDA graphs against eager on the same models (roberta-base shape, teacher, 3L,
            4AH, 4AH_pruned, bf16, length 128), batch 1 then 256 then 32 while its share of the budget lasts; the
            first call's seconds (compiling) are kept;
  trace     a torch.profiler kernel trace of the models behind the anomaly of the first call (bf16 batch 32 slower
            than the teacher: 9L, 384D, 8AH, 4AH; the teacher at batch 1 and 32), with the GPU's clocks;
  ort       ONNX Runtime on CUDA (onnxruntime-gpu, carried in parts: scripts/carry_parts.py): teacher, 3L, 6L, 4AH,
            4AH_pruned, 8AH as ORT fp32 and fp16 graphs with IO binding, against PyTorch bf16 eager and compiled,
            batch 1, 32, 256, length 128; the head verdict per engine and `kdbench env` showing the CUDA provider;
  study     (with --teacher/--data) the paper's full recipe through `kdbench study`, several students trained at
            once on the GPU, stopped cleanly at its share of the budget; `--continue-from` seeds it with the runs a
            previous call finished, so only what is missing runs;
  zoo       the eager profile: roberta-base shape, paper zoo + head sweep + pruned heads, fp32 and bf16, batch
            1/32/256, length 128, achieved TFLOP/s against the ceiling and the head verdict per batch size;
then the study's profile of its finished runs and its report. Everything lands in OUT_DIR; `--pack` also writes
OUT_DIR/cuda.tar.gz without weights or checkpoints.
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
PHASES = ("ceilings", "steps", "compile", "trace", "ort", "study", "zoo")  # in the order they run
COMPILE = dict(
    students="3L,4AH,4AH_pruned",  # the layer claim and the head claim, with and without compiling
    backends=("torch", "torch-compile"),  # eager, then compiled, at each batch size of one run
    device="cuda",
    dtypes=("bf16",),
    seq_lens=(128,),
    warmup_runs=5,  # reduce-overhead records its CUDA graph in the first few calls
    warmup_time_s=0.1,
    min_runs=20,
    min_time_s=0.2,
    max_time_s=3.0,
)
COMPILE_BATCHES = (1, 256, 32)  # batch 1 first: where CUDA graphs should matter most
COMPILE_S = 150  # the compile phase's share of the budget; a batch size starts only if the last one fits again
ORT = dict(
    students="3L,6L,4AH,4AH_pruned,8AH",  # the layer claim and the head claim, with the pruned twin
    device="cuda",
    batch_sizes=(1, 32, 256),
    seq_lens=(128,),
    warmup_runs=5,  # ORT's CUDA provider picks its kernels (and cuDNN its algorithms) in the first calls
    warmup_time_s=0.1,
    min_runs=20,
    min_time_s=0.2,
    max_time_s=3.0,
)
ORT_ENGINES = ((("onnxruntime", "onnxruntime:fp16"), ("fp32",)), (("torch", "torch-compile"), ("bf16",)))
TRACE = dict(students="9L,384D,8AH,4AH", device="cuda", dtypes=("bf16",), batch_sizes=(32, 1), seq_lens=(128,))
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


def header(env: dict, ceilings: dict | None) -> list[str]:
    """The card, its software and its measured ceilings: the first lines of cuda_check.md."""
    gpu = env.get("gpu", {})
    v = env.get("versions", {})
    out = [
        f"# CUDA check: {gpu.get('name')}",
        "",
        f"Driver {gpu.get('driver')}, CUDA {gpu.get('cuda')}, torch {v.get('torch')}, transformers "
        f"{v.get('transformers')}, Python {env.get('python')}, kdbench commit {env.get('git_commit')}.",
    ]
    if ceilings:
        out += [
            "",
            f"Ceilings: bf16 matmul {ceilings['bf16_matmul_tflops']:.0f} TFLOP/s "
            f"(n={ceilings['matmul_n']}), device-to-device copy {ceilings['d2d_copy_gbps']:.0f} GB/s.",
        ]
    return out


def markdown(env: dict, ceilings: dict, rows: list[dict], lines, claim: str) -> str:
    out = header(env, ceilings)
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
    out += ["", "## Head verdict", "", *head_rows(lines), "", f"**Head claim:** {claim}", ""]
    return "\n".join(out)


def head_rows(lines) -> list[str]:
    """The head verdict as a markdown table, one row per student and grid point."""
    out = [
        "| student | engine | dtype | batch | head dim | speed-up [95% CI] | FLOPs ratio | "
        "pruned twin | pruned speed-up | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ln in lines:
        _d, backend, dtype, batch, _s = ln.grid_key
        out.append(
            f"| {ln.student} | {backend} | {dtype} | {batch} | {ln.head_dim} | {ln.speedup} | {ln.flops_ratio:.2f} | "
            f"{ln.pruned or '-'} | {ln.pruned_speedup or '-'} | {ln.outcome} |"
        )
    return out


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
    from kdbench.study.cells import cells
    from kdbench.study.spec import load_study
    from kdbench.tasks.loading import load_task
    from kdbench.tasks.task import get_task

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
    from kdbench.train.speed import measure_step
    from kdbench.zoo.students import load_zoo, lookup_student, resolve, teacher_as_student
    from kdbench.zoo.teacher import load_teacher_config, teacher_shape

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

    from kdbench.judge.render import head_table, profile_tables
    from kdbench.judge.verdict import head_claim, head_verdicts
    from kdbench.measure.profile import run_profile
    from kdbench.measure.result import ProfileResult

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


def run_compile(out: Path, until: float) -> dict:
    """Eager against torch.compile with CUDA graphs, one batch size after another (COMPILE_BATCHES) while `until` (a
    time.time() value) leaves room for the last batch size's time again; each batch size's file is written when done."""
    from kdbench.measure.profile import ProfileConfig, run_profile

    results, last = [], 0.0
    for batch in COMPILE_BATCHES:
        if time.time() + last > until:
            took = f"the last batch size took {last:.0f} s; " if results else ""
            log(f"compile: batch {batch} and after left out ({took}the phase's time is spent)")
            break
        t0 = time.time()
        cfg = ProfileConfig(batch_sizes=(batch,), output=out / f"profile-cuda-compile-b{batch}.json", **COMPILE)
        r = run_profile(cfg)
        r.save(cfg.output)
        results.append(r)
        last = time.time() - t0
        log(f"compile: batch {batch} done in {last:.0f} s")
    return compile_summary(results)


def ort_configs(out: Path):
    """The ORT phase's two profiles: ONNX Runtime (fp32 and fp16 graphs) and PyTorch bf16 (eager and compiled)."""
    from kdbench.measure.profile import ProfileConfig

    return [
        ProfileConfig(backends=b, dtypes=d, output=out / f"profile-cuda-ort-{'-'.join(d)}.json", **ORT)
        for b, d in ORT_ENGINES
    ]


def run_ort(out: Path, until: float) -> dict:
    """ONNX Runtime on CUDA against PyTorch bf16, eager and compiled: p50 per engine, model and batch size, each
    engine's speed-up over the teacher, ORT fp16 over torch bf16, the head verdict per engine, and `kdbench env`.
    A profile is started only while `until` (a time.time() value) leaves the previous one's time again."""
    import subprocess

    from kdbench.judge.verdict import head_claim, head_verdicts
    from kdbench.measure.profile import run_profile
    from kdbench.measure.result import ProfileResult

    env_text = subprocess.run([sys.executable, "-m", "kdbench", "env"], capture_output=True, text=True).stdout
    log("ort: kdbench env\n" + env_text)
    results, last = [], 0.0
    for cfg in ort_configs(out):
        if time.time() + last > until:
            log(f"ort: {', '.join(cfg.backends)} left out (the phase's time is spent)")
            continue
        t0 = time.time()
        r = run_profile(cfg)
        r.save(cfg.output)
        results.append(r)
        last = time.time() - t0
        log(f"ort: {', '.join(cfg.backends)} done in {last:.0f} s")
    if not results:
        return {"markdown": "ONNX Runtime on CUDA: nothing measured (no time left)"}
    merged = ProfileResult(
        results[0].environment, {"ort": True}, results[0].teacher, results[0].students,
        tuple(c for r in results for c in r.cells),
    )  # fmt: skip
    lines = head_verdicts(merged)
    p50 = {(c.student, c.backend, c.batch_size): c.stats.p50 for c in merged.cells}
    engines = [b for bs, _ in ORT_ENGINES for b in bs]
    md = ["## ONNX Runtime on CUDA (IO binding) against PyTorch bf16", ""]
    md.append("| model | batch | " + " | ".join(f"{e} p50 ms" for e in engines) + " | ORT fp16 over torch bf16 |")
    md.append("|---|---|" + "---|" * (len(engines) + 1))
    for (student, backend, batch), _ in sorted(p50.items(), key=lambda kv: (kv[0][2], kv[0][0])):
        if backend != engines[0]:
            continue
        cells = [p50.get((student, e, batch)) for e in engines]
        eager, fp16 = p50.get((student, "torch", batch)), p50.get((student, "onnxruntime:fp16", batch))
        ratio = f"{eager / fp16:.2f}x" if eager and fp16 else "-"
        shown = " | ".join(f"{v * 1e3:.2f}" if v else "-" for v in cells)
        md.append(f"| {student} | {batch} | {shown} | {ratio} |")
    md += ["", f"Head claim over every engine: {head_claim(lines)}", "", "```", env_text.strip(), "```", ""]
    return {
        "p50_s": [{"student": s, "backend": b, "batch_size": n, "p50_s": v} for (s, b, n), v in p50.items()],
        "head_verdict": [ln.to_dict() for ln in lines],
        "head_claim": head_claim(lines),
        "env": env_text,
        "markdown": "\n".join(md),
    }


def compile_summary(results) -> dict:
    """Per model and batch size: eager and compiled p50, compiled over eager with its interval, the compiled first
    call's seconds, and each engine's speed-up over its teacher; plus the head verdict per engine."""
    from kdbench.judge.verdict import head_claim, head_verdicts
    from kdbench.measure.stats import speedup_interval

    rows, lines = [], []
    for r in results:
        by = {(c.student, c.backend, c.batch_size): c for c in r.cells}
        for (student, backend, batch), compiled in by.items():
            eager = by.get((student, "torch", batch))
            if backend != "torch-compile" or eager is None:
                continue
            gain = speedup_interval(
                eager.samples,
                compiled.samples,
                baseline_blocks=eager.blocks or None,
                candidate_blocks=compiled.blocks or None,
            )
            rows.append(
                {
                    "student": student,
                    "batch": batch,
                    "eager_p50_ms": eager.stats.p50 * 1e3,
                    "compiled_p50_ms": compiled.stats.p50 * 1e3,
                    "compiled_over_eager": str(gain),
                    "first_call_s": compiled.first_call_s,
                    "eager_speedup_over_teacher": str(r.speedup(eager) or "-"),
                    "compiled_speedup_over_teacher": str(r.speedup(compiled) or "-"),
                    "engine": compiled.attn_impl,
                }
            )
        lines += head_verdicts(r)
    md = [
        "## torch.compile (CUDA graphs) against eager, bf16, length 128",
        "",
        "| student | batch | eager p50 ms | compiled p50 ms | compiled over eager [95% CI] | first call s | "
        "speed-up over teacher, eager | compiled |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        first = "-" if x["first_call_s"] is None else f"{x['first_call_s']:.1f}"
        md.append(
            f"| {x['student']} | {x['batch']} | {x['eager_p50_ms']:.2f} | {x['compiled_p50_ms']:.2f} | "
            f"{x['compiled_over_eager']} | {first} | {x['eager_speedup_over_teacher']} | "
            f"{x['compiled_speedup_over_teacher']} |"
        )
    md += ["", *head_rows(lines), "", f"**Head claim, both engines:** {head_claim(lines)}", ""]
    return {
        "rows": rows,
        "head_verdict": [ln.to_dict() for ln in lines],
        "batches": [r.cells[0].batch_size for r in results if r.cells],
        "markdown": "\n".join(md),
    }


def run_trace(out: Path) -> dict:
    """Kernel traces of the models behind the first call's bf16 batch-32 anomaly, with the clocks before and after."""
    from kdbench.measure.kerneltrace import gpu_clocks, trace_markdown, trace_models
    from kdbench.measure.profile import ProfileConfig

    before = gpu_clocks()
    traces = trace_models(ProfileConfig(output=out / "trace.json", **TRACE))
    after = gpu_clocks()
    md = ["## Kernel trace (eager, bf16, length 128, roberta-base shape)", "", trace_markdown(traces)]
    md.append(f"GPU clocks before: {before}; after: {after}\n")
    return {
        "clocks_before": before,
        "clocks_after": after,
        "traces": [t.to_dict() for t in traces],
        "markdown": "\n".join(md),
    }


def carried_runs(study, source: Path) -> list[tuple[Path, Path]]:
    """(finished run in `source`, its place in the study) for every distillation of `study` that `source` (a previous
    call's results folder, e.g. reports/cuda) holds finished; one trained with another recipe is refused in one line.
    The teacher's path may differ (a carried folder is named by the machine it was on); its recipe may not.

    Carried runs come without weights, so the study's profile cannot time them again: the runs it times are carried
    only when all of them are (with the previous profile); otherwise those train again, so the profile has them all."""
    from kdbench.core.errors import KdbenchError
    from kdbench.results.run import FINISHED, Run
    from kdbench.study.cells import profiled_runs, run_specs, spec_config
    from kdbench.train.config import recipe_differences

    pairs = []
    for spec in run_specs(study):
        src = source / spec.path.relative_to(study.output_dir)
        run = Run(src)
        if not src.is_dir() or run.state() != FINISHED:
            continue
        diffs = recipe_differences(run.config(), spec_config(study, spec), same_teacher=False)
        if diffs:
            raise KdbenchError(
                f"--continue-from: {src} was trained with another recipe than study {study.name} asks "
                f"({'; '.join(diffs)}); continue from a folder of this study's runs"
            )
        pairs.append((src, spec.path))
    profiled = set(profiled_runs(study))
    if not (profiled <= {dst for _, dst in pairs} and (source / "profile.json").is_file()):
        again = sorted(str(dst.relative_to(study.output_dir)) for _, dst in pairs if dst in profiled)
        if again:
            log(f"--continue-from: not carried, trained again so the study profile can time them: {', '.join(again)}")
        pairs = [(src, dst) for src, dst in pairs if dst not in profiled]
    return pairs


def seed_study(study, pairs: list[tuple[Path, Path]], source: Path) -> int:
    """Copy the carried finished runs into the study's folder (only where it holds nothing yet: a run this study
    started is its own) and the previous study profile, its run paths moved to this folder. Returns runs copied."""
    from kdbench.core.io import atomic_write_json, read_json
    from kdbench.results.run import ABSENT, Run

    copied = 0
    for src, dst in pairs:
        if Run(dst).state() == ABSENT:
            shutil.copytree(src, dst, dirs_exist_ok=True)
            copied += 1
    profile, target = source / "profile.json", study.output_dir / "profile.json"
    if profile.is_file() and not target.exists():
        doc = read_json(profile)
        runs = doc.get("settings", {}).get("runs", [])
        # a run folder is <study>/runs/<task>/<name>: the same run, moved with the study
        doc["settings"]["runs"] = [str(study.output_dir / "runs" / Path(r).parent.name / Path(r).name) for r in runs]
        atomic_write_json(target, doc)
    return copied


def teacher_repeats(study, source: Path) -> dict:
    """Per task: the score of the earlier call's teacher fine-tune (SOURCE/teachers/<task>.json), which taught the
    carried students, beside this call's fine-tune with the same seed (bf16 on a GPU need not repeat bit for bit)."""
    from kdbench.core.io import read_json
    from kdbench.study.cells import teacher_folder

    out = {}
    for task in study.tasks:
        before, now = source / "teachers" / f"{task}.json", teacher_folder(study, task) / "metrics.json"
        if before.is_file():
            out[task] = {
                "carried": read_json(before).get("score"),
                "this_call": read_json(now).get("score") if now.is_file() else None,
            }
    return out


def run_the_study(study, jobs: int, deadline: float) -> dict:
    from kdbench.study.cells import cells
    from kdbench.study.runner import run_study

    started = time.time()

    def progress(what: str, done: int, total: int, left: float | None) -> None:
        eta = f", about {left / 60:.1f} min of work left at the rate so far" if left is not None else ""
        log(f"study {done}/{total} done{eta}; {what}")

    ran = run_study(study, progress=progress, jobs=jobs, deadline=deadline)
    left = [c.id for c in cells(study) if not c.done()]
    log(f"study: ran {len(ran)} cells in {time.time() - started:.0f} s; {len(left)} left: {left}")
    return {"ran": ran, "left": left, "wall_s": time.time() - started, "jobs": jobs}


def close_the_study(study) -> None:
    from kdbench.study.cells import profile_finished, profile_is_current
    from kdbench.study.report import write_study_report

    if profile_is_current(study):  # e.g. every profiled run was carried over with its timing from an earlier call
        log("study profile: every finished run is timed already")
    else:
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
    ap.add_argument(
        "--continue-from",
        type=Path,
        help="a previous call's results folder (reports/cuda): its finished runs and study profile are carried into "
        "the study, so only what is missing trains",
    )
    ap.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated, from {','.join(PHASES)}")
    ap.add_argument("--budget-s", type=float, default=540.0, help="wall seconds for everything")
    ap.add_argument("--jobs", type=int, default=6, help="trainings at once on the GPU")
    ap.add_argument("--pack", action="store_true", help="write OUT/cuda.tar.gz (JSON, markdown, logs; no weights)")
    args = ap.parse_args()
    started = time.time()
    end = started + args.budget_s

    from kdbench.core.errors import KdbenchError
    from kdbench.core.io import atomic_write_json, atomic_write_text, check_writable
    from kdbench.core.names import check_choice
    from kdbench.measure.profile import ProfileConfig, plan

    study, pairs = None, []
    try:
        phases = [p.strip() for p in args.phases.split(",") if p.strip()]
        for p in phases:
            check_choice("--phases", p, PHASES)
        configs = [ProfileConfig(dtype=d, output=args.out / f"profile-cuda-{d}.json", **GRID) for d in DTYPES]
        shapes = plan(configs[0]).shapes
        compile_shapes = plan(ProfileConfig(batch_sizes=COMPILE_BATCHES, **COMPILE)).shapes
        trace_shapes = plan(ProfileConfig(**TRACE)).shapes
        check_writable(args.out / "cuda_check.md")
        log(f"plan: phases {', '.join(phases)}; budget {args.budget_s:.0f} s; outputs in {args.out}")
        if "zoo" in phases:
            log(
                f"plan: zoo profile of {len(shapes)} models x {len(DTYPES)} dtypes x batch {GRID['batch_sizes']} x "
                f"length {GRID['seq_lens']} on cuda (torch)"
            )
        if "compile" in phases:
            log(
                f"plan: compile: {', '.join(s.name for s in compile_shapes)} on {' and '.join(COMPILE['backends'])} "
                f"(CUDA graphs), bf16, batch {', '.join(map(str, COMPILE_BATCHES))} in turn, for {COMPILE_S} s at most"
            )
        if "trace" in phases:
            log(
                f"plan: trace: {', '.join(s.name for s in trace_shapes)} at bf16, batch "
                f"{', '.join(map(str, TRACE['batch_sizes']))}, with the GPU's clocks"
            )
        if "ort" in phases:
            ort_shapes = plan(ort_configs(args.out)[1]).shapes  # the PyTorch one: the ORT check needs the GPU build
            for cfg in ort_configs(args.out):
                log(
                    f"plan: ort: {', '.join(s.name for s in ort_shapes)} on {', '.join(cfg.backends)} "
                    f"({', '.join(cfg.dtypes)}), batch {', '.join(map(str, ORT['batch_sizes']))}, length "
                    f"{ORT['seq_lens'][0]}" + (" with IO binding" if "onnxruntime" in cfg.backends else "")
                )
        if args.continue_from and not (args.teacher and "study" in phases):
            raise KdbenchError("--continue-from continues the study: it needs --teacher, --data and the study phase")
        if args.teacher or args.data:
            if not (args.teacher and args.data):
                raise KdbenchError("--teacher and --data go together")
            study, study_cells = plan_study(args.study, args.teacher, args.data, args.study_dir or args.out / "study")
            kinds = {k: sum(c.kind == k for c in study_cells) for k in dict.fromkeys(c.kind for c in study_cells)}
            carried = carried_mib(args.teacher, args.data, study.tasks)
            if carried > CARRY_LIMIT_MIB:
                raise KdbenchError(f"the call would carry {carried:.1f} MiB; a device call carries {CARRY_LIMIT_MIB}")
            log(f"plan: carried {carried:.1f} MiB of {CARRY_LIMIT_MIB} (repo, wheels, teacher, data)")
            if args.continue_from:
                if not args.continue_from.is_dir():
                    raise KdbenchError(f"--continue-from: {args.continue_from} is not a folder")
                pairs = carried_runs(study, args.continue_from)
            log(
                f"plan: study {study.name}: {', '.join(f'{n} {k}' for k, n in kinds.items())} cells on "
                f"{', '.join(study.tasks)} with {args.jobs} jobs, until {study_reserve(phases)} s before the budget "
                "ends" + (f"; {len(pairs)} distillations finished in {args.continue_from} carried over" * bool(pairs))
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

    from kdbench.core import env as envmod
    from kdbench.measure.ceilings import measure_ceilings

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

    ceilings = phase("ceilings", lambda: measure_ceilings(min_time_s=0.5)) if "ceilings" in phases else None
    doc["ceilings"] = ceilings
    ceiling = ceilings["bf16_matmul_tflops"] if ceilings else None
    sections = []
    if "steps" in phases:
        doc["training_steps"] = phase("training_steps", lambda: measure_steps(args.teacher, ceiling))
    if "compile" in phases:
        until = min(time.time() + COMPILE_S, end - study_reserve(phases))
        doc["compile"] = phase("compile", lambda: run_compile(args.out, until))
        sections.append(doc["compile"].pop("markdown") if doc["compile"] else "")
    if "trace" in phases:
        doc["trace"] = phase("trace", lambda: run_trace(args.out))
        sections.append(doc["trace"].pop("markdown") if doc["trace"] else "")
    if "ort" in phases:
        until = end - study_reserve(phases)
        doc["ort"] = phase("ort", lambda: run_ort(args.out, until))
        sections.append(doc["ort"].pop("markdown") if doc["ort"] else "")
    if study is not None and "study" in phases:
        study.output_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.study, study.output_dir / "study.yaml")  # the report's "regenerate" line points at it
        if pairs:
            doc["carried_runs"] = phase("carry", lambda: seed_study(study, pairs, args.continue_from))
        deadline = end - study_reserve(phases)
        doc["study"] = phase("study", lambda: run_the_study(study, args.jobs, deadline))
        if pairs:  # the carried students were taught by the earlier call's teachers: do this call's match them?
            doc["teacher_repeats"] = teacher_repeats(study, args.continue_from)
            log(f"teacher fine-tunes, earlier call against this one: {doc['teacher_repeats']}")
    zoo = None
    if "zoo" in phases and ceilings:
        zoo = phase("zoo_profile", lambda: run_zoo_profile(args.out, configs, ceilings))
    if study is not None and "study" in phases:
        phase("study_report", lambda: close_the_study(study))
    if zoo:
        md = zoo.pop("markdown")
    else:
        md = "\n".join(header(doc["environment"], ceilings)) + "\n"
        if "zoo" in phases:
            md += "\nThe zoo profile did not run (no ceilings); see the errors.\n"
    for section in (s for s in sections if s):
        md += "\n" + section
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


def study_reserve(phases: list[str]) -> int:
    """Seconds kept free of the study at the end of the budget: the zoo profile when it runs, and the close."""
    return (PROFILE_RESERVE_S if "zoo" in phases else 0) + CLOSE_RESERVE_S


if __name__ == "__main__":
    sys.exit(main())
