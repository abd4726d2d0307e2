"""A real (tiny) profile on both backends: models built in code, exported to ONNX, timed for real."""

import shutil
from dataclasses import replace

import pytest

from kdbench.core.errors import KdbenchError
from kdbench.judge.render import FIRST_CALL, profile_tables
from kdbench.measure.profile import CLOSE_S, ProfileConfig, plan, run_profile
from kdbench.measure.result import ProfileResult

FAST = dict(batch_sizes=(1, 2), seq_lens=(16,), warmup_runs=1, warmup_time_s=0.0, min_runs=3, min_time_s=0.0)


def test_profile_of_tiny_students_on_both_backends(tiny_teacher, tiny_zoo, tmp_path):
    cfg = ProfileConfig(teacher=str(tiny_teacher), students="all", students_dir=tiny_zoo, **FAST)
    seen = []
    result = run_profile(cfg, progress=lambda d, n: seen.append(n))
    assert sum(seen) == 5 * 2 * 2  # teacher + 4 students, 2 backends, 2 batch sizes
    assert {c.backend for c in result.cells} == {"torch", "onnxruntime"}
    assert all(len(c.samples) >= 3 and all(s > 0 for s in c.samples) for c in result.cells)
    assert result.students["two_heads_pruned"]["parameters"] < result.students["teacher"]["parameters"]
    assert result.students["two_heads"]["parameters"] == result.students["teacher"]["parameters"]
    env = result.environment
    assert env["cores"] and "torch" in env["versions"] and "onnxruntime" in env["versions"]
    path = tmp_path / "out.json"
    result.save(path)
    assert ProfileResult.from_json(path).cells == result.cells


@pytest.mark.skipif(not shutil.which("g++") and not shutil.which("c++"), reason="inductor needs a C++ compiler")
def test_torch_compile_is_timed_after_compiling_and_records_what_compiling_cost(
    tiny_teacher, tiny_zoo, tmp_path, monkeypatch
):
    import torch._dynamo
    from torch._dynamo.utils import counters

    # TorchDynamo's own limit of compiled graphs per forward function, lowered from 8 so that this small grid (2 models
    # x 2 batch sizes) passes it: beyond it, dynamo would silently run eager PyTorch under the torch-compile label
    cfg = ProfileConfig(
        teacher=str(tiny_teacher),
        students="half_layers",
        students_dir=tiny_zoo,
        backends=("torch", "torch-compile"),
        **{**FAST, "batch_sizes": (1, 2)},
    )
    # (torch's own patch restores the setting afterwards; pytest's monkeypatch would delete it from torch's config)
    counters.clear()  # graphs compiled by earlier tests in this process do not count
    with torch._dynamo.config.patch(recompile_limit=2):
        result = run_profile(cfg)
    by = {(c.student, c.backend, c.batch_size): c for c in result.cells}
    assert by[("teacher", "torch-compile", 1)].attn_impl.startswith("inductor:")
    assert by[("teacher", "torch", 1)].attn_impl == "sdpa"
    # every compiled cell really compiled: one graph per model and batch size (past dynamo's limit it would run eager
    # PyTorch under the torch-compile label, compiling fewer graphs than compiled cells)
    compiled = [c for c in result.cells if c.backend == "torch-compile"]
    assert counters["stats"]["unique_graphs"] == len(compiled) == 4
    assert all(c.warmup_s >= c.first_call_s > 0 for c in result.cells)  # warm-up includes the first call
    result.save(tmp_path / "p.json")
    assert ProfileResult.from_json(tmp_path / "p.json").cells == result.cells
    assert FIRST_CALL in [col.header for col in profile_tables(result)[1].columns]  # shown for compiled engines only
    assert FIRST_CALL not in [col.header for col in profile_tables(result)[0].columns]


def test_onnx_export_is_cached_by_shape(tiny_teacher, tiny_zoo, tmp_path, monkeypatch):
    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "cache"))  # empty: the first run must export
    cfg = ProfileConfig(
        teacher=str(tiny_teacher), students="half_layers", students_dir=tiny_zoo, backends=("onnxruntime",), **FAST
    )
    first, again = [], []
    run_profile(cfg, progress=lambda d, n: first.append(d))
    assert sorted(d for d in first if d.startswith("exporting")) == [
        "exporting half_layers to ONNX",
        "exporting teacher to ONNX",
    ]
    cached = sorted((tmp_path / "cache" / "onnx").glob("*/model.onnx"))
    assert len(cached) == 2
    stamps = [p.stat().st_mtime_ns for p in cached]
    run_profile(cfg, progress=lambda d, n: again.append(d))
    assert not any(d.startswith("exporting") for d in again)
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # the files the first run wrote, untouched


def test_everything_is_checked_before_any_timing(tiny_teacher, tiny_zoo, monkeypatch):
    """A bad student, a student the teacher cannot host, a length past the teacher's positions: each fails before
    any model is built, warmed up or timed."""
    from kdbench.measure import phases
    from kdbench.zoo import modeling

    work = []
    monkeypatch.setattr(modeling, "build_model", lambda *a, **k: work.append("built"))
    monkeypatch.setattr(phases, "warm_up", lambda *a, **k: work.append("warmed up"))
    monkeypatch.setattr(phases, "measure_interleaved", lambda *a, **k: work.append("timed"))
    (tiny_zoo / "deep.toml").write_text("layers = 9\n")
    for settings, message in (
        (dict(students="nope"), "unknown student"),
        (dict(students="half_layers,deep"), "more than the teacher's 4"),
        (dict(students="half_layers", seq_lens=(200,)), "longer than teacher"),
    ):
        with pytest.raises(KdbenchError, match=message):
            run_profile(ProfileConfig(teacher=str(tiny_teacher), students_dir=tiny_zoo, **{**FAST, **settings}))
    assert work == []


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(device="tpu"), "device is 'tpu'"),  # the setting's name; the CLI shows it as --device
        (dict(dtype="fp8"), "dtype is 'fp8'"),
        (dict(dtypes=("fp32", "int4")), "dtypes is 'int4'"),
        (dict(backends=("tensorrt",)), "backends is 'tensorrt'"),
        (dict(backends=("onnx_runtime",)), "did you mean 'onnxruntime'"),
        (dict(batch_sizes=(0,)), "batch_sizes must be positive"),
        (dict(min_runs=1), "min_runs must be at least 2"),
        (dict(threads=0), "threads must be at least 1"),
        (dict(seed=-1), "seed must be from 0"),
        (dict(max_time_s=float("inf")), "max_time_s must be positive and finite"),
    ],
)
def test_config_validation_names_the_setting(kwargs, message):
    with pytest.raises(KdbenchError, match=None) as err:
        ProfileConfig(**kwargs)
    assert message in str(err.value)


@pytest.mark.gpu
@pytest.mark.parametrize("backend,engine", [("torch", "sdpa"), ("torch-compile", "inductor+cudagraphs:")])
def test_cuda_profile_in_bf16(tiny_teacher, tiny_zoo, backend, engine):
    cfg = ProfileConfig(
        teacher=str(tiny_teacher),
        students="two_heads",
        students_dir=tiny_zoo,
        device="cuda",
        dtype="bf16",
        backends=(backend,),
        **FAST,
    )
    result = run_profile(cfg)
    assert {c.device for c in result.cells} == {"cuda"} and result.environment["gpu"]["available"]
    assert all(c.memory_kind == "cuda_weights_plus_peak_activations" for c in result.cells)
    assert all(c.attn_impl.startswith(engine) and c.first_call_s > 0 for c in result.cells)  # compiled: CUDA graphs


def test_bf16_on_a_cpu_is_refused_unless_the_cpu_has_it_natively(monkeypatch):
    from kdbench.core import env
    from kdbench.engines import pytorch as backends

    problem = backends.cpu_dtype_problem("bf16", ["avx2", "fma"])
    assert "lacks AVX512-BF16 and AMX-BF16" in problem and "(it has: avx2, fma)" in problem
    assert backends.cpu_dtype_problem("bf16", ["avx512f", "amx_bf16"]) is None
    assert backends.cpu_dtype_problem("fp32", []) is None
    monkeypatch.setattr(env, "cpu_features", lambda: ["avx2"])
    with pytest.raises(KdbenchError, match="would be emulated"):
        plan(ProfileConfig(dtypes=("fp32", "bf16"), backends=("torch",)))
    plan(ProfileConfig(dtypes=("fp32", "bf16"), backends=("onnxruntime",)))  # ORT skips bf16 by design: no error


def test_memory_is_per_model_and_int8_and_dtypes_are_grid_dimensions(tiny_teacher, tiny_zoo):
    cfg = ProfileConfig(
        teacher=str(tiny_teacher),
        students_dir=tiny_zoo,
        students="half_layers,narrow",
        backends=("torch", "onnxruntime", "onnxruntime:int8"),
        batch_sizes=(2,),
        seq_lens=(16,),
        warmup_runs=1,
        warmup_time_s=0,
        min_runs=3,
        min_blocks=1,
        min_time_s=0,
        breakdown=True,
    )
    result = run_profile(cfg)
    torch_cells = {c.student: c for c in result.cells if c.backend == "torch"}
    assert torch_cells["teacher"].memory_kind == "weights+peak (torch profiler)"
    assert torch_cells["teacher"].peak_memory_mb > torch_cells["narrow"].peak_memory_mb > 0  # no longer one number
    assert {c.backend for c in result.cells} == {"torch", "onnxruntime", "onnxruntime:int8"}
    assert set(result.breakdown["fp32"]) == {"teacher", "half_layers", "narrow"}
    parts = result.breakdown["fp32"]["teacher"]["seconds"]
    assert parts["total"] > 0 and parts["Q/K/V projections"] > 0


# ----------------------------------------------------------------- groups, adaptive measuring, a bounded footprint
class NoisyClock:
    """A fake clock: every call lasts 10 ms times seeded log-normal noise (sd 30 %), whatever the model - so every
    comparison is truly 1.0x and undecided for a while; time advances by the simulated calls and, with `untimed_s`,
    by that much at every reading of the clock (the untimed work between timed calls: warm-ups, loops)."""

    def __init__(self, seed: int = 0, untimed_s: float = 0.0):
        import numpy as np

        self.t, self.rng, self.untimed_s = 0.0, np.random.default_rng(seed), untimed_s

    def time_call(self, fn, synchronize):
        fn()
        synchronize()
        seconds = 0.01 * float(self.rng.lognormal(0, 0.3))
        self.t += seconds
        return seconds

    def now(self):
        self.t += self.untimed_s
        return self.t


def test_the_verdict_group_comes_first_and_the_others_follow_within_a_parameter_limit(tiny_teacher, tiny_zoo):
    from kdbench.measure import models

    cfg = ProfileConfig(teacher=str(tiny_teacher), students="all", students_dir=tiny_zoo, **FAST)
    p = plan(cfg)
    students = models.describe_students(p, cfg.seq_lens)
    assert models.comparison_groups(p, students) == [
        (["teacher", "two_heads", "two_heads_pruned"], ["two_heads"]),
        (["teacher", "half_layers", "narrow"], []),
    ]
    # a student as big as ten teachers does not share its group: a group holds at most three teachers' parameters
    big = {**students, "half_layers": {**students["half_layers"], "parameters": 10 * students["teacher"]["parameters"]}}
    assert [names for names, _ in models.comparison_groups(p, big)][1:] == [
        ["teacher", "half_layers"],
        ["teacher", "narrow"],
    ]
    # each head-reduced student is a group of its own, with its pruned twin if profiled
    (tiny_zoo / "one_head.toml").write_text('name = "one_head"\ndescription = "one wide head"\nheads = "1/4"\n')
    cfg = replace(cfg, students="two_heads,one_head,two_heads_pruned,half_layers")
    p = plan(cfg)
    students = models.describe_students(p, cfg.seq_lens)
    assert models.comparison_groups(p, students) == [
        (["teacher", "two_heads", "two_heads_pruned"], ["two_heads"]),
        (["teacher", "one_head"], ["one_head"]),
        (["teacher", "half_layers"], []),
    ]


def test_only_one_group_of_models_is_alive_while_timing(tiny_teacher, tiny_zoo, monkeypatch):
    """The default profile held every model of the zoo open at once (8.45 GB); now a group's students are let go
    before the next group is built, and ONNX Runtime with its graphs in the cache builds no eager model at all."""
    import gc
    import weakref

    from kdbench.measure import models, phases

    built, alive_at_timing = [], []
    real_model, real_measure = models.load_model, phases.measure_interleaved

    def model(p, cfg, name, progress):
        m = real_model(p, cfg, name, progress)
        built.append((name, weakref.ref(m)))
        return m

    def measure(targets, *args, **kw):
        gc.collect()
        alive_at_timing.append(sorted(n for n, r in built if r() is not None))
        return real_measure(targets, *args, **kw)

    monkeypatch.setattr(models, "load_model", model)
    monkeypatch.setattr(phases, "measure_interleaved", measure)
    cfg = ProfileConfig(teacher=str(tiny_teacher), students="all", students_dir=tiny_zoo, **FAST)
    run_profile(cfg)  # the first run exports the graphs: ONNX Runtime builds each model once, to export it
    built.clear()
    alive_at_timing.clear()
    result = run_profile(replace(cfg, batch_sizes=(1,)))
    assert len({(c.student, c.backend) for c in result.cells}) == 10  # every model was timed on both engines
    assert alive_at_timing == [
        ["teacher", "two_heads", "two_heads_pruned"],  # eager: the verdict group
        ["half_layers", "narrow", "teacher"],  # then the others, the teacher kept
        [],  # ONNX Runtime, graphs cached: no eager model built
        [],
    ]


def test_a_budget_measures_the_undecided_comparison_on_and_stays_inside_it(tiny_teacher, tiny_zoo):
    """With a budget, the head-reduced student and its teacher get looks and paired rounds beyond the minimum, the
    students no verdict needs stop at it, and the whole profile (fake time) stays within the budget."""
    from kdbench.measure.clock import BLOCK_S

    budget = 30.0
    cfg = ProfileConfig(
        teacher=str(tiny_teacher),
        students="all",
        students_dir=tiny_zoo,
        backends=("torch",),
        **{**FAST, "batch_sizes": (1,), "min_runs": 20, "min_time_s": 1.0, "min_blocks": 5},
        budget_s=budget,
    )
    clock = NoisyClock(untimed_s=0.002)  # warm-ups and the loop between calls cost time too
    seen, said = [], []
    result = run_profile(cfg, progress=lambda d, n: (seen.append(n), said.append(d)), clock=clock)
    assert sum(seen) == 5  # the teacher, timed beside both groups, is one cell and counted once
    cell = {c.student: c for c in result.cells}
    assert cell["two_heads"].looks >= 2 and cell["half_layers"].looks == cell["narrow"].looks == 0
    assert cell["two_heads_pruned"].looks == 0  # shown beside the verdict, not what it rests on
    assert len(set(cell["two_heads"].rounds)) > 2 * len(set(cell["half_layers"].rounds))
    assert len(set(cell["two_heads_pruned"].rounds)) == len(set(cell["half_layers"].rounds))  # the minimum only
    assert any(d.startswith("deciding two_heads against teacher") for d in said)
    # the budget keeps CLOSE_S for what follows the measuring; at most one round (3 models) may pass its end
    assert clock.now() <= budget - CLOSE_S + 3 * BLOCK_S * 1.5
    speed = result.speedup(cell["two_heads"])
    assert speed.method == "paired rounds" and speed.blocks == len(set(cell["two_heads"].rounds))
    without = run_profile(replace(cfg, budget_s=None), clock=NoisyClock())
    assert {c.student: c.looks for c in without.cells}["two_heads"] == 0  # no budget: the minimum only
