"""A real (tiny) profile on both backends: models built in code, exported to ONNX, timed for real."""

import shutil

import pytest

from kdbench.core.errors import KdbenchError
from kdbench.judge.render import FIRST_CALL, profile_tables
from kdbench.measure.profile import ProfileConfig, plan, run_profile
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
    from kdbench.measure import profile
    from kdbench.zoo import modeling

    work = []
    monkeypatch.setattr(modeling, "build_model", lambda *a, **k: work.append("built"))
    monkeypatch.setattr(profile, "warm_up", lambda *a, **k: work.append("warmed up"))
    monkeypatch.setattr(profile, "measure_interleaved", lambda *a, **k: work.append("timed"))
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
