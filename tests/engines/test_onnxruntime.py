"""ONNX Runtime as an engine: the variants, IO binding, and no CPU fallback under a CUDA label (checked on a CPU with
tiny models and a faked session where a GPU would be needed)."""

import numpy as np
import onnx
import pytest
import transformers

from kdbench.core.errors import KdbenchError
from kdbench.engines import onnxruntime as engine
from kdbench.engines.base import ModelEntry
from kdbench.measure.profile import make_inputs


@pytest.fixture
def tiny_entry(tiny_teacher, monkeypatch, tmp_path):
    """A tiny teacher built in code, as the profiler builds a zoo model, with an empty cache: (entry, load)."""
    import torch

    from kdbench.zoo.modeling import build_model, student_config
    from kdbench.zoo.students import teacher_as_student
    from kdbench.zoo.teacher import load_teacher_config, teacher_shape

    monkeypatch.setenv("KDBENCH_CACHE", str(tmp_path / "cache"))
    config = load_teacher_config(str(tiny_teacher))
    shape = teacher_as_student(teacher_shape(config, str(tiny_teacher)))
    torch.manual_seed(0)
    model = build_model(config, shape)
    return ModelEntry("teacher", shape, config.model_type, config=student_config(config, shape)), lambda: model


def test_fp16_variant_halves_every_weight_and_keeps_ids_in_and_fp32_logits_out(tiny_entry):
    entry, load = tiny_entry
    path = engine.zoo_variant(entry, load, "fp16", lambda *_: None)
    graph = onnx.load(str(path)).graph
    floats = [t for t in graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)]
    assert floats and all(t.data_type == onnx.TensorProto.FLOAT16 for t in floats if len(t.dims) >= 2)
    assert {i.type.tensor_type.elem_type for i in graph.input} == {onnx.TensorProto.INT64}
    assert [o.type.tensor_type.elem_type for o in graph.output] == [onnx.TensorProto.FLOAT]
    ops = {n.op_type for n in graph.node}
    assert {"SkipLayerNormalization", "BiasGelu"} <= ops  # the transformer fusions ran first
    if int(transformers.__version__.split(".")[0]) < 5:
        # transformers 5 builds its attention mask with Where/IsNaN, a pattern ORT's attention fusion does not match
        assert "Attention" in ops
    fp32 = engine.zoo_variant(entry, load, "fp32", lambda *_: None)
    assert path.stat().st_size < 0.7 * fp32.stat().st_size


def test_int8_on_cuda_and_fp16_on_a_cpu_are_refused_before_anything_runs():
    with pytest.raises(KdbenchError, match="CUDA provider runs its integer ops on the CPU"):
        engine.OrtBackend("int8").check("cuda", "fp32")
    with pytest.raises(KdbenchError, match="onnxruntime:fp16 is for --device cuda"):
        engine.OrtBackend("fp16").check("cpu", "fp32")


def test_io_binding_answers_as_numpy_feeds_do(tiny_entry):
    """The binding path CUDA uses, bound to the CPU here: the same logits, left in the binding's outputs."""
    entry, load = tiny_entry
    path = engine.zoo_variant(entry, load, "fp32", lambda *_: None)
    plain = engine.ort_session(path, "cpu", 1)
    bound = engine.OrtSession(plain.session, "cpu", "fp32", path, plain.provider, iobinding="cpu")
    arrays = make_inputs(entry.config.vocab_size, 2, 16, 0)
    expected = plain.session.run(None, plain.prepare(arrays))[0]
    binding = bound.prepare(arrays)
    bound.run(binding)
    bound.synchronize()
    np.testing.assert_allclose(binding.copy_outputs_to_cpu()[0], expected, rtol=1e-5, atol=1e-6)
    assert bound.engine == "ort:CPUExecutionProvider+iobinding" and plain.engine == "ort:CPUExecutionProvider"


def test_a_cuda_session_that_fell_back_to_the_cpu_is_refused(tiny_entry, monkeypatch):
    """onnxruntime-gpu whose CUDA libraries fail to load opens the session on the CPU provider with only a log line:
    kdbench refuses it instead of timing the CPU under a CUDA label."""
    import onnxruntime

    from kdbench.core import ortbuild

    entry, load = tiny_entry
    path = engine.zoo_variant(entry, load, "fp32", lambda *_: None)
    real = onnxruntime.InferenceSession
    asked = []

    def fell_back(file, sess_options=None, providers=None):
        asked.append(providers)
        return real(file, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ortbuild, "check", lambda device: "CUDAExecutionProvider")
    monkeypatch.setattr(engine, "_provider", lambda name: (name, {"device_id": 0}))  # no torch stream on a CPU
    monkeypatch.setattr(onnxruntime, "InferenceSession", fell_back)
    with pytest.raises(KdbenchError, match="on CPUExecutionProvider, not CUDAExecutionProvider"):
        engine.ort_session(path, "cuda", 1)
    assert asked == [[("CUDAExecutionProvider", {"device_id": 0})]]
