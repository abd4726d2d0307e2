"""The one ONNX export path and its variants: `torch.onnx.export` with dynamic batch and sequence axes, ONNX
Runtime's transformer optimiser (O1-O3) and its dynamic int8 quantiser, each written into a temporary folder and
renamed into place; and the parity of a variant against PyTorch."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import numpy as np

OPTIMIZE_LEVELS = ("O1", "O2", "O3")
QUANTIZE = ("int8",)
FP32_GOAL = {"agreement": 1.0, "max_abs_diff": 1e-4}  # exported graphs must answer exactly as PyTorch does
INT8_GOAL = {"agreement": 0.95, "max_abs_diff": None}  # quantisation moves logits; the argmax must mostly hold
MIN_OPSET = 14  # scaled_dot_product_attention exports from opset 14 on


def max_opset() -> int:
    """The newest opset the installed onnx package knows."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


def parity(reference: np.ndarray, candidate: np.ndarray, goal: dict) -> dict:
    """Largest absolute logit difference and argmax agreement, and whether they meet `goal`."""
    diff = float(np.max(np.abs(reference - candidate)))
    agree = float(np.mean(reference.argmax(-1) == candidate.argmax(-1))) if reference.shape[-1] > 1 else 1.0
    passed = agree >= goal["agreement"] and (goal["max_abs_diff"] is None or diff <= goal["max_abs_diff"])
    return {
        "max_abs_diff": diff,
        "argmax_agreement": agree,
        "examples": int(reference.shape[0]),
        "goal": goal,
        "passed": bool(passed),
    }


# ------------------------------------------------------------------------------------------------------- export
def move_into(tmp: Path, dest: Path) -> Path:
    """Rename the finished folder into place (a kill leaves the old variant or none, never half of one)."""
    onnx_files = sorted(tmp.glob("*.onnx"))
    assert onnx_files, "the exporter wrote no .onnx file"
    if onnx_files[0].name != "model.onnx":
        onnx_files[0].rename(tmp / "model.onnx")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest / "model.onnx"


def temp_beside(dest: Path, label: str) -> Path:
    """A writer's temporary folder next to `dest`, named so a later writer can remove it if this one is killed."""
    import os
    import tempfile

    from kdbench.results.run import TMP_PREFIX

    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{label}-", dir=dest.parent))


@contextlib.contextmanager
def quiet_export():
    """Silence the tracer and exporter chatter that would scroll over the progress display."""
    import logging
    import warnings

    from transformers.utils import logging as hf_logging

    loggers = [logging.getLogger(n) for n in ("", "torch.onnx", "onnxruntime", "transformers")]
    levels = [lg.level for lg in loggers]
    hf_level = hf_logging.get_verbosity()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        hf_logging.set_verbosity_error()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        hf_logging.set_verbosity(hf_level)


EXPORT_BATCH, EXPORT_SEQ = 2, 16  # the example inputs traced at export; both axes stay dynamic in the graph


def export_inputs(model) -> dict:
    """Example inputs for tracing: a padded batch (the second row's mask ends half-way), so the exported graph
    applies the attention mask as a served model must; token type ids only for models that use them."""
    import inspect

    import torch

    config = model.config
    seq = min(EXPORT_SEQ, getattr(config, "max_position_embeddings", EXPORT_SEQ) - 4)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, config.vocab_size, (EXPORT_BATCH, seq), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, seq // 2 :] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    uses_types = "token_type_ids" in inspect.signature(model.forward).parameters
    if uses_types and getattr(config, "type_vocab_size", 1) > 1:
        inputs["token_type_ids"] = torch.zeros_like(ids)
    return inputs


def onnx_export(model, dest: Path, opset: int) -> Path:
    """The one ONNX export path, for run folders and the profiler's cache alike: `torch.onnx.export` of the in-memory
    model (fp32, CPU) with dynamic batch and sequence axes, into a temporary folder renamed to `dest`. Pruned heads
    export as built. Returns dest/model.onnx.

    It uses PyTorch's TorchScript-based exporter (`dynamo=False`), the graph ONNX Runtime's transformer optimiser
    fuses (its attention, layer-norm and GELU patterns are written for it) and the one optimum used: the dynamo
    exporter needs onnxscript and gives a graph those fusions do not match."""
    import inspect

    import torch

    model = model.float().cpu().eval()
    inputs = export_inputs(model)
    dynamic = {name: {0: "batch_size", 1: "sequence_length"} for name in inputs}
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    tmp = temp_beside(dest, "export")
    try:
        with quiet_export(), torch.no_grad():
            torch.onnx.export(
                model,
                (),
                str(tmp / "model.onnx"),
                kwargs=inputs,
                input_names=list(inputs),
                output_names=["logits"],
                dynamic_axes={**dynamic, "logits": {0: "batch_size"}},
                opset_version=opset,
                do_constant_folding=True,
                **legacy,
            )
        return move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_optimize(fp32_dir: Path, level: str, dest: Path) -> Path:
    """ONNX Runtime's own transformer optimiser (`onnxruntime.transformers.optimizer`, shipped in its wheel) on
    fp32_dir/model.onnx, into `dest`. O1: ONNX Runtime's basic graph optimisations only; O2: its extended ones and
    the transformer fusions (attention, layer norm, skip layer norm, GELU and bias); O3: O2 with the GELU
    approximation; fp16: for CUDA, the transformer fusions on ORT's basic optimisations (the extended ones would bake
    in CPU-only kernels) and every weight and activation in half precision, inputs and outputs as before. O1-O3 are
    the levels optimum's AutoOptimizationConfig named; heads and width are read off the graph."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")  # BERT, RoBERTa, MPNet, ELECTRA: ORT fuses them all as "bert"
    options.enable_embed_layer_norm = False  # its fused embedding op needs inputs a RoBERTa graph lacks
    options.enable_gelu_approximation = level == "O3"
    tmp = temp_beside(dest, level)
    try:
        with quiet_export():
            optimized = optimize_model(
                str(fp32_dir / "model.onnx"),
                model_type="bert",
                num_heads=0,  # 0: detected from the graph (a pruned student has fewer heads than its config says)
                hidden_size=0,
                optimization_options=options,
                opt_level=2 if level in ("O2", "O3") else 1,
                use_gpu=level == "fp16",
                only_onnxruntime=level == "O1",
            )
            if level == "fp16":
                optimized.convert_float_to_float16(keep_io_types=True)  # ids in, fp32 logits out, as the fp32 graph
            optimized.save_model_to_file(str(tmp / "model.onnx"))
        return move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_quantize(fp32_dir: Path, dest: Path) -> Path:
    """Dynamic int8 quantisation of fp32_dir/model.onnx into `dest` with ONNX Runtime's quantiser: uint8 weights
    (symmetric, per tensor) and activations quantised per call, every MatMul included (portable kernels on any x86
    or Arm CPU; the settings optimum's AutoQuantizationConfig.avx2(is_static=False, per_channel=False) gave)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = temp_beside(dest, "int8")
    try:
        with quiet_export():
            quantize_dynamic(
                str(fp32_dir / "model.onnx"),
                str(tmp / "model.onnx"),
                per_channel=False,
                reduce_range=False,
                weight_type=QuantType.QUInt8,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "MatMulConstBOnly": False},
            )
        return move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
