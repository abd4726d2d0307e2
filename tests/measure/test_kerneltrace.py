"""Kernel traces of tiny models: timed latency beside the profiler's view of where the call went."""

import pytest

from kdbench.measure import kerneltrace
from kdbench.measure.kerneltrace import Trace, gpu_clocks, trace_markdown, trace_models
from kdbench.measure.profile import ProfileConfig


def config(teacher, zoo, device="cpu", dtype="fp32") -> ProfileConfig:
    return ProfileConfig(
        teacher=str(teacher),
        students="half_layers",
        students_dir=zoo,
        device=device,
        dtypes=(dtype,),
        backends=("torch",),
        batch_sizes=(4, 1),
        seq_lens=(16,),
        warmup_runs=1,
    )


def test_every_model_and_batch_is_traced_on_the_cpu(tiny_teacher, tiny_zoo):
    traces = trace_models(config(tiny_teacher, tiny_zoo), calls=3)
    assert [(t.model, t.batch_size) for t in traces] == [
        ("teacher", 4),
        ("teacher", 1),
        ("half_layers", 4),
        ("half_layers", 1),
    ]
    for t in traces:
        assert t.p50_s > 0 and t.device_busy_s is None and t.busy_share is None  # no device on the CPU
        assert 0 < len(t.top) <= kerneltrace.TOP and all(k["seconds_per_call"] > 0 for k in t.top)
        seconds = [k["seconds_per_call"] for k in t.top]
        assert seconds == sorted(seconds, reverse=True)
    assert any(k["name"] == "aten::addmm" for k in traces[0].top)  # the projections are the teacher's matrix products
    md = trace_markdown(traces)
    assert md.count("\n") == 2 + len(traces) and "| teacher | 4 | fp32 |" in md
    assert traces[0].to_dict()["busy_share"] is None


def test_busy_share_is_device_time_over_latency():
    t = Trace("m", 32, 128, "bf16", "cuda", "sdpa", 0.010, 0.004, 180.0, ())
    assert t.busy_share == pytest.approx(0.4)
    assert "| m | 32 | bf16 | 10.00 | 4.00 | 40% | 180 |" in trace_markdown([t])


def test_no_nvidia_smi_means_no_clocks(monkeypatch):
    monkeypatch.setattr(kerneltrace.shutil, "which", lambda _name: None)
    assert gpu_clocks() is None


@pytest.mark.gpu
def test_cuda_trace_sees_kernels(tiny_teacher, tiny_zoo):
    traces = trace_models(config(tiny_teacher, tiny_zoo, "cuda", "bf16"), calls=3)
    assert all(t.device_busy_s > 0 and t.kernels_per_call > 0 for t in traces)
