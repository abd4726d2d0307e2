"""Rich tables for the terminal. Pure formatting: every number comes from results or verdicts."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kdbench.judge.verdict import HeadLine
from kdbench.measure.result import ProfileResult
from kdbench.zoo.students import TEACHER_NAME


def students_table(rows: list[dict], seq_len: int, teacher_name: str) -> Table:
    """The zoo for one teacher: shape, parameters, FLOPs, and ratios to the teacher."""
    table = Table(title=f"Student zoo for {teacher_name} (FLOPs per sequence of {seq_len} tokens)")
    for col in (
        "student",
        "group",
        "layers",
        "heads",
        "head dim",
        "hidden",
        "FFN",
        "params (M)",
        "x teacher",
        "GFLOPs",
        "x teacher",
        "description",
    ):
        table.add_column(col, justify="left" if col in ("student", "group", "description") else "right")
    t = next(r for r in rows if r["name"] == TEACHER_NAME)
    t_flops = t["flops_per_sequence"][str(seq_len)]
    for r in rows:
        flops = r["flops_per_sequence"][str(seq_len)]
        table.add_row(
            r["name"],
            r["group"],
            str(r["layers"]),
            str(r["heads"]),
            str(r["head_dim"]),
            str(r["hidden"]),
            str(r["ffn"]),
            f"{r['parameters'] / 1e6:.1f}",
            f"{r['parameters'] / t['parameters']:.2f}",
            f"{flops / 1e9:.2f}",
            f"{flops / t_flops:.2f}",
            r["description"],
        )
    return table


COMPILED = ("torch-compile",)  # engines whose first call compiles: their tables show what it cost
FIRST_CALL = "first call s"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def profile_tables(result: ProfileResult, seed: int = 0) -> list[Table]:
    """One table per (device, backend, dtype): latency, spread, throughput, size and speed-up with its 95 % CI."""
    tables = []
    groups = dict.fromkeys(k[:3] for k in result.grid_keys())
    for device, backend, dtype in groups:
        table = Table(title=f"{backend} on {device} ({dtype}, {result.settings.get('threads')} threads)")
        for col in (
            "student",
            "batch",
            "seq",
            "p50 ms",
            "p90 ms",
            "CV %",
            "seq/s",
            "tok/s",
            "params (M)",
            "GFLOPs/seq",
            "speed-up [95% CI]",
            "peak MB",
            *(FIRST_CALL,) * (backend in COMPILED),
        ):
            table.add_column(col, justify="left" if col == "student" else "right")
        for c in (c for c in result.cells if c.grid_key()[:3] == (device, backend, dtype)):
            s = result.students[c.student]
            st = c.stats
            interval = result.speedup(c, seed)
            speed = "-" if interval is None else str(interval) + ("" if interval.sufficient else " [dim](few)[/]")
            cv = f"{st.cv * 100:.1f}"
            table.add_row(
                c.student,
                str(c.batch_size),
                str(c.seq_len),
                f"{st.p50 * 1e3:.2f}",
                f"{st.p90 * 1e3:.2f}",
                cv if st.cv <= 0.03 else f"[yellow]{cv}[/]",
                f"{c.sequences_per_s:.1f}",
                f"{c.tokens_per_s:.0f}",
                f"{s['parameters'] / 1e6:.1f}",
                f"{s['flops_per_sequence'][str(c.seq_len)] / 1e9:.2f}",
                speed,
                f"{c.peak_memory_mb:.0f}" if c.peak_memory_mb is not None else "-",
                *(_seconds(c.first_call_s),) * (backend in COMPILED),
            )
        tables.append(table)
    return tables


def head_table(lines: list[HeadLine]) -> Table:
    """The head verdict: measured speed-up, FLOPs ratio, the pruned twin, and the plain outcome."""
    methods = sorted({line.speedup.method for line in lines}) or ["batch means"]
    method = " or ".join(methods)  # a v2 file's lines and trained-run variants timed apart use batch means
    table = Table(title=f"Attention-head verdict (speed-up over the teacher, 95% interval by {method})")
    for col in (
        "student",
        "device",
        "backend",
        "batch",
        "seq",
        "head dim",
        "speed-up",
        "FLOPs ratio",
        "pruned twin",
        "pruned speed-up",
        "verdict",
    ):  # the reason follows the table as one line per row
        table.add_column(col, justify="right" if col in ("batch", "seq", "head dim", "FLOPs ratio") else "left")
    for ln in lines:
        device, backend, _dtype, batch, seq = ln.grid_key
        table.add_row(
            ln.student,
            device,
            backend,
            str(batch),
            str(seq),
            str(ln.head_dim),
            str(ln.speedup),
            f"{ln.flops_ratio:.2f}",
            ln.pruned or "-",
            str(ln.pruned_speedup) if ln.pruned_speedup else "-",
            f"[bold]{ln.outcome}[/]",
        )
    return table


def print_all(console: Console, *renderables) -> None:
    for r in renderables:
        console.print(r)


def breakdown_tables(result: ProfileResult) -> list[Table]:
    """Per precision: each model's eager time per operator group (ms and share) beside its analytic GFLOPs."""
    from kdbench.measure.breakdown import GROUPS

    tables = []
    for dtype, models in result.breakdown.items():
        any_model = next(iter(models.values()))
        table = Table(
            title=f"Where the time goes: eager PyTorch, {dtype}, batch {any_model['batch_size']}, length "
            f"{any_model['seq_len']} (ms, share of the call; GFLOPs)"
        )
        table.add_column("model")
        for g in GROUPS:
            table.add_column(g, justify="right")
        table.add_column("total ms", justify="right")
        for name, d in models.items():
            total = d["seconds"]["total"]
            table.add_row(
                name,
                *(
                    f"{d['seconds'][g] * 1e3:.1f} ({d['seconds'][g] / total:.0%}); {d['flops'][g] / 1e9:.2f}"
                    for g in GROUPS
                ),
                f"{total * 1e3:.1f}",
            )
        tables.append(table)
    return tables


def print_profile(console: Console, result: ProfileResult, seed: int, seconds: float, output) -> None:
    """What `kdbench profile` prints: a table per engine, the head verdict with a line of reasons per measurement, the
    head claim, and where the result went."""
    from kdbench.judge.verdict import head_claim, head_verdicts, undecided

    lines = [] if result.smoke else head_verdicts(result, seed)
    print_all(
        console, *profile_tables(result, seed), *([head_table(lines)] if lines else []), *breakdown_tables(result)
    )
    for ln in lines:
        console.print(
            f"  {ln.student} ({ln.grid_key[1]}, {ln.grid_key[0]}, batch {ln.grid_key[3]}): "
            f"[bold]{ln.outcome}[/] - {ln.reason}",
            soft_wrap=True,
            highlight=False,
        )
    console.print(f"[bold]Head claim:[/] {head_claim(lines, result.smoke)}", soft_wrap=True)
    for text in undecided(lines):
        console.print(f"  undecided: {text}", soft_wrap=True, highlight=False)
    worst = max(result.cells, key=lambda c: c.stats.cv)
    console.print(
        f"{len(result.cells)} cells in {seconds:.0f} s; largest CV {worst.stats.cv:.1%} ({worst.student}, "
        f"{worst.backend}, batch {worst.batch_size}); results: {output}"
    )


def macro_table(macro: dict) -> Table:
    """`kdbench report`'s terminal table: students across tasks, the main grid's students first. Labels are text, not
    markup: a recipe variant such as "384D [init slice]" keeps its bracket."""
    table = Table(title="Students across tasks (macro average)")
    for col in ("student", "score", "share of teacher", "speed-up, PyTorch", "speed-up, ONNX", "tasks"):
        table.add_column(col)
    for student, v in sorted(macro.items(), key=lambda kv: (-len(kv[1]["tasks"]), -(kv[1]["macro_share"] or 0))):
        table.add_row(
            escape(student),
            f"{v['macro_score']:.4f}",
            f"{v['macro_share']:.1%}" if v["macro_share"] is not None else "-",
            f"{v['torch_speedup']:.2f}x" if v["torch_speedup"] else "-",
            f"{v['best_onnx_speedup']:.2f}x ({v['best_onnx']})" if v["best_onnx"] else "-",
            ", ".join(v["tasks"]),
        )
    return table


def distill_table(doc: dict) -> Table:
    """`kdbench distill`'s summary: every metric of the teacher and the student per evaluation split."""
    table = Table(title=escape(f"{doc['task']}: {doc['student']} distilled from {doc['teacher']}"))
    for col in ("model", *next(iter(doc["metrics"].values())).keys()):
        table.add_column(col)
    for split, metrics in doc["metrics"].items():
        teacher_m = doc["teacher_metrics"]["metrics"][split]
        table.add_row(f"teacher ({split})", *(f"{v:.4f}" for v in teacher_m.values()))
        table.add_row(escape(f"{doc['student']} ({split})"), *(f"{v:.4f}" for v in metrics.values()))
    return table


COMPARE_COLOURS = {"regression": "red", "improvement": "green", "inside noise": "yellow", "ok": "white"}


def compare_table(rows: list, title: str, scale: float = 1.0) -> Table:
    """`kdbench compare`'s table: per cell the two values (times `scale`), the change with its interval, the
    allowance and the verdict."""
    table = Table(title=escape(title))
    for col in ("student", "cell", "baseline", "current", "change", "95% CI", "allowed", "verdict"):
        table.add_column(col, justify="left" if col in ("student", "cell", "verdict") else "right")
    for r in rows:
        table.add_row(
            escape(r.student),
            " ".join(map(str, r.grid)),
            f"{r.baseline * scale:.3f}",
            f"{r.current * scale:.3f}",
            f"{r.change - 1:+.1%}",
            f"[{r.low - 1:+.1%}, {r.high - 1:+.1%}]",
            f"{r.threshold:.0%}",
            f"[{COMPARE_COLOURS[r.verdict]}]{r.verdict}[/]",
        )
    return table


def env_rows(doc: dict) -> list[tuple[str, str]]:
    """`kdbench env`'s lines: (what, value) from the environment block every result embeds."""
    gpu, build = doc["gpu"], doc["torch_build"]
    return [
        ("python", f"{doc['python']} on {doc['platform']}"),
        ("cpu", f"{doc['cpu']}, {doc['cores']} cores"),
        ("cpu features", ", ".join(doc["cpu_features"]) or "none of the listed ones"),
        (
            "torch",
            f"{doc['versions'].get('torch')} (CUDA {build.get('cuda')}, cuDNN {build.get('cudnn')}, CPU kernels "
            f"{build.get('cpu_capability')})",
        ),
        (
            "gpu",
            f"{gpu.get('name')} (driver {gpu.get('driver')}, {gpu.get('memory_gib')} GiB)"
            if gpu["available"]
            else "none visible to torch",
        ),
        ("onnxruntime", ", ".join(f"{k} {v}" for k, v in doc["onnxruntime"]["distributions"].items()) or "none"),
        ("ort providers", ", ".join(doc["onnxruntime"]["providers"]) or "-"),
        ("libraries", ", ".join(f"{k} {v}" for k, v in doc["versions"].items())),
        ("kdbench", f"{doc['kdbench']} (commit {doc['git_commit']})"),
    ]
