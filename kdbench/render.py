"""Rich tables for the terminal. Pure formatting: every number comes from results or verdicts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from kdbench.results import ProfileResult
from kdbench.students import TEACHER_NAME
from kdbench.verdict import HeadLine


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
    table = Table(title="Attention-head verdict (speed-up over the teacher, 95% interval by batch means)")
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
    from kdbench.breakdown import GROUPS

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
