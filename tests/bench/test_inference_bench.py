"""pytest-benchmark suite: inference of the teacher and chosen students on PyTorch and ONNX Runtime at small shapes.

Run deliberately (the normal test run skips the `bench` marker):

    python3 -m pytest -m bench tests/bench --benchmark-enable --benchmark-save=base --benchmark-save-data
    python3 -m pytest -m bench tests/bench --benchmark-enable --benchmark-compare --benchmark-compare-fail=median:10%
    kdbench compare .benchmarks/<machine>/0001_base.json .benchmarks/<machine>/0002_*.json   # ratio-mode gate

`extra_info` carries each model's shape and its grid point, so `kdbench compare` can put every student beside the
teacher benchmarked in the same run (ratio mode).
"""

import os

import pytest

from kdbench.engines.base import ModelEntry
from kdbench.engines.registry import check_backend
from kdbench.measure.profile import ProfileConfig, make_inputs, plan
from kdbench.zoo.modeling import build_model, student_config

STUDENTS = os.environ.get("KDBENCH_BENCH_STUDENTS", "3L,6L_384D,4AH_pruned")
BATCH, SEQ, THREADS = 1, 32, os.cpu_count() or 1

pytestmark = pytest.mark.bench


@pytest.fixture(scope="module")
def zoo():
    import torch

    p = plan(ProfileConfig(students=STUDENTS, seq_lens=(SEQ,)))
    models = {}
    for shape in p.shapes:
        torch.manual_seed(0)
        models[shape.name] = (shape, build_model(p.teacher_config, shape))
    return p, models


NAMES = ["teacher", *STUDENTS.split(",")]


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
@pytest.mark.parametrize("student", NAMES)
def test_inference(benchmark, zoo, student, backend):
    p, models = zoo
    shape, model = models[student]
    entry = ModelEntry(shape.name, shape, p.teacher["model_type"], config=student_config(p.teacher_config, shape))
    session = check_backend(backend).open(entry, lambda: model, "cpu", "fp32", THREADS, lambda *_: None)[backend]
    inputs = session.prepare(make_inputs(p.teacher_config.vocab_size, BATCH, SEQ, 0))
    benchmark.group = f"{backend} b={BATCH} n={SEQ}"
    benchmark.extra_info.update(
        {"student": student, "grid": ["cpu", backend, "fp32", BATCH, SEQ], "shape": shape.to_dict(), "threads": THREADS}
    )
    benchmark.pedantic(session.run, args=(inputs,), rounds=20, warmup_rounds=3, iterations=1)
