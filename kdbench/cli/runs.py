"""What follows a distillation: `kdbench export`, `evaluate`, `report`, and the CI gate `compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdbench.cli.app import app, console, err_console, user_errors
from kdbench.cli.options import MaxEvalOpt, RunDirArg
from kdbench.core.errors import KdbenchError


@app.command()
@user_errors
def compare(
    baseline: Annotated[
        Path, typer.Argument(help="Baseline: a profile result, a pytest-benchmark JSON, or a folder of them.")
    ],
    current: Annotated[Path, typer.Argument(help="Current results, of the same kind.")],
    stat: Annotated[str, typer.Option(help="Statistic compared: min, p50, mean, p90.")] = "p50",
    absolute: Annotated[
        bool,
        typer.Option(
            "--absolute",
            help="Compare absolute times instead of each student's latency relative to the teacher of the same run.",
        ),
    ] = False,
    max_slowdown: Annotated[str, typer.Option(help="Allowed slowdown before a change can count, e.g. 10%.")] = "10%",
    threshold: Annotated[
        list[str] | None, typer.Option(help="Per-student allowance, STUDENT=PERCENT; repeatable.")
    ] = None,
    allow_partial: Annotated[
        bool, typer.Option("--allow-partial", help="Compare the common cells when the grids differ.")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON.")] = None,
) -> None:
    """Fail (exit 1) when a student got slower than allowed, beyond run-to-run noise; exit 0 otherwise.

    Ratio mode (the default, for CI) compares each student's latency relative to the teacher measured in the same
    run, so a slower or busier machine does not fail the check. A change is a regression only when it exceeds the
    allowed slowdown and its 95 % bootstrap interval lies wholly above "no change". Exit status 2: the inputs cannot
    be compared (unknown files, no common cells, different grids without --allow-partial).
    """
    from kdbench.core.io import atomic_write_json
    from kdbench.judge.compare import compare as run_compare
    from kdbench.judge.compare import parse_overrides, parse_percent, read_results
    from kdbench.judge.render import compare_table

    limit = parse_percent(max_slowdown)
    overrides = parse_overrides(threshold or [])
    b_kind, b_cells = read_results(baseline)
    c_kind, c_cells = read_results(current)
    if b_kind != c_kind:
        raise KdbenchError(f"cannot compare {b_kind} results ({baseline}) with {c_kind} results ({current})")
    rows = run_compare(b_cells, c_cells, stat, not absolute, limit, overrides, allow_partial)
    mode = "relative to the teacher" if not absolute else "absolute, ms"
    console.print(compare_table(rows, f"{stat} {mode}: {baseline} -> {current}", 1.0 if not absolute else 1e3))
    if json_out:
        atomic_write_json(
            json_out,
            {
                "schema": "kdbench.compare",
                "schema_version": 1,
                "stat": stat,
                "ratio": not absolute,
                "rows": [r.to_dict() for r in rows],
            },
        )
    bad = [r for r in rows if r.verdict == "regression"]
    if bad:
        console.print(
            f"[bold red]{len(bad)} regression(s):[/] "
            + ", ".join(f"{r.student} {' '.join(map(str, r.grid))} {r.change - 1:+.1%}" for r in bad),
            soft_wrap=True,
        )
        raise typer.Exit(1)
    console.print(f"no regression in {len(rows)} cells (allowed slowdown {limit:.0%}, beyond noise)")


@app.command()
@user_errors
def export(
    run_dir: RunDirArg,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 18,
    optimize: Annotated[
        str | None, typer.Option(help="Also write an ONNX Runtime-optimised variant: O1, O2 or O3.")
    ] = None,
    quantize: Annotated[str | None, typer.Option(help="Also write a dynamically quantised variant: int8.")] = None,
    parity_samples: Annotated[int, typer.Option(help="Evaluation examples compared against PyTorch.")] = 256,
) -> None:
    """Export a distilled student to ONNX (RUN_DIR/onnx/) with a parity check against PyTorch for every variant.

    fp32 must agree with PyTorch on every argmax with logits within 1e-4; int8 on at least 95 % of them. A variant
    that fails is reported loudly (exit 1) and refused by `evaluate` unless --force.
    """
    from kdbench.deploy.export import ExportConfig, export_run

    report = export_run(ExportConfig(run_dir, opset, optimize, quantize, parity_samples), log=console.print)
    failed = [name for name, entry in report.items() if not entry["passed"]]
    if failed:
        err_console.print(f"[bold red]parity FAILED[/] for {', '.join(failed)}: see {run_dir}/onnx/parity.json")
        raise typer.Exit(1)


@app.command()
@user_errors
def evaluate(
    run_dir: RunDirArg,
    backend: Annotated[str, typer.Option(help="torch or onnxruntime.")] = "onnxruntime",
    variant: Annotated[
        str,
        typer.Option(
            help="onnxruntime: the exported variant (fp32, O1, O2, O3, int8); torch: the precision the student runs "
            "in (fp32, bf16, fp16), so its score at the deployed precision sits beside fp32's."
        ),
    ] = "fp32",
    force: Annotated[bool, typer.Option("--force", help="Use a variant whose parity check failed.")] = False,
    max_eval_samples: MaxEvalOpt = None,
) -> None:
    """Measure the task's official metrics for the run's student on a backend; saved to RUN_DIR/eval/."""
    from kdbench.deploy.evaluate import evaluate_run

    doc = evaluate_run(run_dir, backend, variant, force, max_eval_samples)
    for split, metrics in doc["metrics"].items():
        console.print(
            f"{doc['task']} {split} on {backend} ({variant}): " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()),
            highlight=False,
        )
    if "loss_vs_fp32" in doc:
        console.print(
            f"{variant} loses {doc['loss_vs_fp32'] * 100:+.2f} points of {doc['metric']} against fp32 on {backend}",
            highlight=False,
        )


@app.command()
@user_errors
def report(
    inputs: Annotated[list[Path], typer.Argument(help="Profile result files, run folders, or folders holding them.")],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "-o", help="Where REPORT.md, report.json and the plot go.")
    ] = Path("reports"),
    allow_mixed: Annotated[
        bool, typer.Option("--allow-mixed", help="Report profile results measured on different grids together.")
    ] = False,
) -> None:
    """Join accuracy with speed per task and across tasks, mark the Pareto frontier, and judge the paper's claims."""
    from kdbench.judge.render import macro_table
    from kdbench.judge.report.write import write_report

    doc = write_report(list(inputs), output_dir, allow_mixed)
    console.print(macro_table(doc["macro"]))
    for c in doc["claims"]:
        console.print(
            f"[bold]{c['verdict'].upper()}[/]: {c['claim']} - {c['evidence']}", soft_wrap=True, highlight=False
        )
    console.print(f"written: {output_dir}/REPORT.md, report.json, accuracy_vs_latency.png")
