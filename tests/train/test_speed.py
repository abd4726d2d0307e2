"""Training-step speed on a tiny model: both step kinds run, and the derived figures follow from the samples."""

import pytest
from conftest import tiny_config

from kdbench.train.speed import StepSpeed, measure_step
from kdbench.zoo.flops import sequence_flops
from kdbench.zoo.students import StudentShape, teacher_as_student
from kdbench.zoo.teacher import teacher_shape


@pytest.fixture
def shapes():
    cfg = tiny_config("bert")
    t = teacher_as_student(teacher_shape(cfg, "tiny"))
    narrow = StudentShape("narrow", "", "paper", 2, 4, 4, 16, 32)
    return cfg, t, narrow


def test_finetune_and_distill_steps_are_timed_with_their_flops(shapes):
    cfg, t, narrow = shapes
    fine = measure_step(cfg, t, None, batch_size=2, seq_len=8, warmup_runs=1, min_runs=3, min_time_s=0)
    kd = measure_step(cfg, t, narrow, batch_size=2, seq_len=8, warmup_runs=1, min_runs=3, min_time_s=0)
    assert fine.kind == "finetune" and kd.kind == "distill" and kd.model == "narrow"
    assert len(fine.samples_s) >= 3 and min(fine.samples_s) > 0
    assert fine.flops_per_step == 3 * sequence_flops(t, 8) * 2
    assert kd.flops_per_step == (3 * sequence_flops(narrow, 8) + sequence_flops(t, 8)) * 2


def test_derived_figures():
    s = StepSpeed("finetune", "t", 4, 128, "bf16", "cuda", 2 * 10**12, (0.5, 0.4, 0.6))
    d = s.to_dict(ceiling_tflops=10.0)
    assert d["p50_s"] == 0.5 and d["samples_per_s"] == 8.0 and d["tokens_per_s"] == 1024.0
    assert d["tflops"] == pytest.approx(4.0) and d["mfu"] == pytest.approx(0.4)
    assert s.to_dict()["mfu"] is None
