"""A real (tiny) profile on both backends: models built in code, exported with optimum, timed for real."""

import pytest

from kdbench.errors import KdbenchError
from kdbench.profile import ProfileConfig, plan, run_profile
from kdbench.results import ProfileResult

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


def test_onnx_export_is_cached_by_shape(tiny_teacher, tiny_zoo):
    cfg = ProfileConfig(
        teacher=str(tiny_teacher), students="half_layers", students_dir=tiny_zoo, backends=("onnxruntime",), **FAST
    )
    run_profile(cfg)
    descriptions = []
    run_profile(cfg, progress=lambda d, n: descriptions.append(d))
    assert not any(d.startswith("exporting") for d in descriptions)


def test_everything_is_checked_before_any_timing(tiny_teacher, tiny_zoo):
    with pytest.raises(KdbenchError, match="unknown student"):
        plan(ProfileConfig(teacher=str(tiny_teacher), students="nope", students_dir=tiny_zoo))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(device="tpu"), "device is 'tpu'"),  # the setting's name; the CLI shows it as --device
        (dict(dtype="fp8"), "dtype is 'fp8'"),
        (dict(dtype="bf16"), "is for --device cuda"),
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
def test_cuda_profile_in_bf16(tiny_teacher, tiny_zoo):
    cfg = ProfileConfig(
        teacher=str(tiny_teacher),
        students="two_heads",
        students_dir=tiny_zoo,
        device="cuda",
        dtype="bf16",
        backends=("torch",),
        **FAST,
    )
    result = run_profile(cfg)
    assert {c.device for c in result.cells} == {"cuda"} and result.environment["gpu"]["available"]
    assert all(c.memory_kind == "cuda_weights_plus_peak_activations" for c in result.cells)
