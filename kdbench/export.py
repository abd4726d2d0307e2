"""`kdbench export` and `kdbench evaluate`: ONNX variants of a distilled student, checked for parity, and the task's
metrics measured on the backend a student will be deployed on.

A run folder (from `kdbench distill`) gains `onnx/<variant>/model.onnx` for each variant (fp32, O1/O2/O3, int8) and
`onnx/parity.json`; `kdbench evaluate` writes `eval/<backend>-<variant>.json`. A variant whose parity fails is marked
failed and refused by later commands unless forced.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.data import get_task, load_task, tokenize
from kdbench.errors import ConfigError, KdbenchError, check_choice
from kdbench.run import Run, file_sha256

OPTIMIZE_LEVELS = ("O1", "O2", "O3")
QUANTIZE = ("int8",)
FP32_GOAL = {"agreement": 1.0, "max_abs_diff": 1e-4}  # exported graphs must answer exactly as PyTorch does
INT8_GOAL = {"agreement": 0.95, "max_abs_diff": None}  # quantisation moves logits; the argmax must mostly hold
PARITY_FILE = "parity.json"


@dataclass(frozen=True)
class ExportConfig:
    """What `kdbench export` writes."""

    run_dir: Path  # a run folder from `kdbench distill` (holds student/ and config.json)
    opset: int = 18  # ONNX opset
    optimize: str | None = None  # O1, O2 or O3: ONNX Runtime's transformer graph optimisations
    quantize: str | None = None  # int8: dynamic quantisation of the fp32 graph
    parity_samples: int = 256  # evaluation examples compared against PyTorch

    def __post_init__(self) -> None:
        if self.optimize is not None:
            check_choice("optimize", self.optimize, OPTIMIZE_LEVELS)
        if self.quantize is not None:
            check_choice("quantize", self.quantize, QUANTIZE)
        if (
            isinstance(self.parity_samples, bool)
            or not isinstance(self.parity_samples, int)
            or self.parity_samples <= 0
        ):
            raise ConfigError("parity_samples", f"must be a positive integer, got {self.parity_samples!r}")
        newest = max_opset()
        if isinstance(self.opset, bool) or not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= newest:
            raise ConfigError(
                "opset", f"is {self.opset!r}; allowed: {MIN_OPSET} to {newest} (the installed onnx package's newest)"
            )


MIN_OPSET = 14  # scaled_dot_product_attention exports from opset 14 on


def max_opset() -> int:
    """The newest opset the installed onnx package knows."""
    import onnx.defs

    return int(onnx.defs.onnx_opset_version())


# ---------------------------------------------------------------------------------------------- the run folder
def run_info(run_dir: Path) -> dict:
    """The recipe of a finished run whose student is on disk; anything else is refused in one line."""
    return Run(run_dir).finished_config()


def eval_data(info: dict, tokenizer, max_samples: int | None):
    """The run's task evaluation split(s), tokenised as in training."""
    task = get_task(info["task"])
    data_dir = Path(info["data_dir"]) if info.get("data_dir") else None
    data = load_task(task, data_dir, max_eval_samples=max_samples, splits=task.eval_splits)
    return task, tokenize(data, task, tokenizer, info["train"]["max_seq_len"])


def _batches(dataset, tokenizer, batch_size: int = 32):
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer, return_tensors="np")
    rows = dataset.remove_columns([c for c in ("length", "labels") if c in dataset.column_names])
    for start in range(0, len(rows), batch_size):
        yield collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])


def torch_logits(model, dataset, tokenizer) -> np.ndarray:
    """Logits of a PyTorch model over a tokenised split (eval mode, no gradients)."""
    import torch

    out = []
    model.eval()
    with torch.inference_mode():
        for batch in _batches(dataset, tokenizer):
            out.append(model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.float().numpy())
    return np.concatenate(out)


def ort_logits(onnx_path: Path, dataset, tokenizer, threads: int | None = None) -> np.ndarray:
    """Logits of an ONNX model over a tokenised split on ONNX Runtime's CPU provider."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, ...: a corrupt or truncated file
        raise KdbenchError(f"onnxruntime cannot load {onnx_path}: {str(exc).splitlines()[0][:200]}") from None
    names = [i.name for i in session.get_inputs()]
    out = []
    for batch in _batches(dataset, tokenizer):
        feeds = {
            n: batch[n].astype(np.int64) if n in batch else np.zeros_like(batch["input_ids"], dtype=np.int64)
            for n in names
        }
        out.append(session.run(None, feeds)[0])
    return np.concatenate(out)


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
def _move_into(tmp: Path, dest: Path) -> Path:
    """Rename the finished folder into place (a kill leaves the old variant or none, never half of one)."""
    onnx_files = sorted(tmp.glob("*.onnx"))
    assert onnx_files, "the exporter wrote no .onnx file"
    if onnx_files[0].name != "model.onnx":
        onnx_files[0].rename(tmp / "model.onnx")
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest / "model.onnx"


def _temp_beside(dest: Path, label: str) -> Path:
    """A writer's temporary folder next to `dest`, named so a later writer can remove it if this one is killed."""
    import os
    import tempfile

    from kdbench.run import TMP_PREFIX

    dest.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-{label}-", dir=dest.parent))


@contextlib.contextmanager
def _quiet_export():
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
    tmp = _temp_beside(dest, "export")
    try:
        with _quiet_export(), torch.no_grad():
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
        return _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_optimize(fp32_dir: Path, level: str, dest: Path) -> Path:
    """ONNX Runtime's own transformer optimiser (`onnxruntime.transformers.optimizer`, shipped in its wheel) on
    fp32_dir/model.onnx, into `dest`. O1: ONNX Runtime's basic graph optimisations only; O2: its extended ones and
    the transformer fusions (attention, layer norm, skip layer norm, GELU and bias); O3: O2 with the GELU
    approximation. The same levels optimum's AutoOptimizationConfig named; heads and width are read off the graph."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")  # BERT, RoBERTa, MPNet, ELECTRA: ORT fuses them all as "bert"
    options.enable_embed_layer_norm = False  # its fused embedding op needs inputs a RoBERTa graph lacks
    options.enable_gelu_approximation = level == "O3"
    tmp = _temp_beside(dest, level)
    try:
        with _quiet_export():
            optimized = optimize_model(
                str(fp32_dir / "model.onnx"),
                model_type="bert",
                num_heads=0,  # 0: detected from the graph (a pruned student has fewer heads than its config says)
                hidden_size=0,
                optimization_options=options,
                opt_level=1 if level == "O1" else 2,
                use_gpu=False,
                only_onnxruntime=level == "O1",
            )
            optimized.save_model_to_file(str(tmp / "model.onnx"))
        return _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def onnx_quantize(fp32_dir: Path, dest: Path) -> Path:
    """Dynamic int8 quantisation of fp32_dir/model.onnx into `dest` with ONNX Runtime's quantiser: uint8 weights
    (symmetric, per tensor) and activations quantised per call, every MatMul included (portable kernels on any x86
    or Arm CPU; the settings optimum's AutoQuantizationConfig.avx2(is_static=False, per_channel=False) gave)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = _temp_beside(dest, "int8")
    try:
        with _quiet_export():
            quantize_dynamic(
                str(fp32_dir / "model.onnx"),
                str(tmp / "model.onnx"),
                per_channel=False,
                reduce_range=False,
                weight_type=QuantType.QUInt8,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "MatMulConstBOnly": False},
            )
        return _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_run(cfg: ExportConfig, log=print) -> dict:
    """Export the run's student (fp32 plus the asked-for variants), check each against PyTorch, write parity.json.

    Everything is checked before the run's onnx/ is touched; parity.json records each file's sha256, so a variant
    replaced or half-written later (a killed export) is refused by evaluate and profile instead of trusted.
    """
    from transformers import AutoTokenizer

    from kdbench import ort
    from kdbench.modeling import load_trained

    run = Run(cfg.run_dir)
    info = run_info(run.path)
    ort.check("cpu")  # parity is checked on ONNX Runtime's CPU provider
    run.parity()  # a broken parity.json fails here, before anything is written
    tokenizer = AutoTokenizer.from_pretrained(run.student_dir)
    model = load_trained(run.student_dir)
    task, tokenized = eval_data(info, tokenizer, cfg.parity_samples)
    split = task.eval_splits[0]
    reference = torch_logits(model, tokenized[split], tokenizer)
    with run.writing():
        log(f"exporting {run.student_dir} (opset {cfg.opset})")
        # variants are made from fp32, which this export replaces: none of the old entries holds any more, and an
        # export killed half-way must leave no entry that vouches for a file it did not check
        report: dict = {}
        run.write_parity(report)
        variants = {"fp32": (onnx_export(model, run.variant_dir("fp32"), cfg.opset), FP32_GOAL)}
        for name, goal in _extra_variants(cfg):
            if name in OPTIMIZE_LEVELS:
                path = onnx_optimize(run.variant_dir("fp32"), name, run.variant_dir(name))
            else:
                path = onnx_quantize(run.variant_dir("fp32"), run.variant_dir(name))
            variants[name] = (path, goal)
        for name, (path, goal) in variants.items():
            entry = {
                "path": str(path.relative_to(run.path)),
                "sha256": file_sha256(path),
                "opset": cfg.opset,
                "split": split,
                **parity(reference, ort_logits(path, tokenized[split], tokenizer), goal),
            }
            report[name] = entry
            state = "passed" if entry["passed"] else "FAILED"
            log(
                f"{name}: parity {state}: argmax agreement {entry['argmax_agreement']:.2%}, largest |logit diff| "
                f"{entry['max_abs_diff']:.2e} over {entry['examples']} examples"
            )
        run.write_parity(report)
    return report


def _extra_variants(cfg: ExportConfig) -> list[tuple[str, dict]]:
    """The variants asked for beyond fp32, with their parity goals."""
    out = []
    if cfg.optimize:
        out.append((cfg.optimize, FP32_GOAL))
    if cfg.quantize:
        out.append((cfg.quantize, INT8_GOAL))
    return out


def load_parity(onnx_dir: Path) -> dict:
    """The parity report of a run's ONNX folder ({} before the first export)."""
    return Run(Path(onnx_dir).parent).parity()


def variant_path(run_dir: Path, variant: str, force: bool = False) -> Path:
    """The ONNX file of an exported variant, checked against its parity entry (see Run.variant_file)."""
    return Run(run_dir).variant_file(variant, force)


# ----------------------------------------------------------------------------------------------------- evaluate
BACKENDS = ("torch", "onnxruntime")


def evaluate_run(
    run_dir: Path, backend: str, variant: str = "fp32", force: bool = False, max_eval_samples: int | None = None
) -> dict:
    """The task's official metrics for the run's student on `backend`, written to eval/<backend>-<variant>.json.

    `variant` is an exported ONNX variant (onnxruntime: fp32, O1-O3, int8) or the precision PyTorch runs the student
    in (torch: fp32, bf16, fp16 - accuracy at the deployed precision; on a CPU without native bf16 it is slow, not
    wrong). For anything but fp32 the document also gives its loss against fp32 of the same engine on the same rows
    (from the fp32 evaluation when it covered the same rows of the same file, else computed here).
    """
    from transformers import AutoTokenizer

    from kdbench.modeling import load_trained

    check_choice("backend", backend, BACKENDS)
    check_choice("variant", variant, TORCH_VARIANTS if backend == "torch" else ("fp32", *OPTIMIZE_LEVELS, *QUANTIZE))
    if max_eval_samples is not None and (isinstance(max_eval_samples, bool) or max_eval_samples <= 0):
        raise ConfigError("max_eval_samples", f"must be positive, got {max_eval_samples}")
    run = Run(run_dir)
    info = run_info(run.path)
    if backend == "onnxruntime":
        from kdbench import ort

        ort.check("cpu")
    path = run.variant_file(variant, force) if backend == "onnxruntime" else None
    reference = run.variant_file("fp32", force) if backend == "onnxruntime" and variant != "fp32" else None
    model = load_trained(run.student_dir) if backend == "torch" else None  # a corrupt student fails before any work
    tokenizer = AutoTokenizer.from_pretrained(run.student_dir)
    task, tokenized = eval_data(info, tokenizer, max_eval_samples)
    doc = _evaluate(run, task, tokenized, tokenizer, backend, variant, path, model)
    if variant != "fp32":
        base = run.evaluation(backend, "fp32")
        same_file = backend == "torch" or (base or {}).get("sha256") == file_sha256(reference)
        if not (base and base.get("examples") == doc["examples"] and same_file):
            base = _evaluate(run, task, tokenized, tokenizer, backend, "fp32", reference, model)
        doc["loss_vs_fp32"] = base["score"] - doc["score"]
        doc["fp32_score"] = base["score"]
    with run.writing():
        run.write_evaluation(backend, variant, doc)
    return doc


TORCH_VARIANTS = ("fp32", "bf16", "fp16")  # the precisions `evaluate --backend torch` runs the student in


def _in_precision(model, variant: str):
    """The student in `variant`'s precision (a copy; the fp32 original stays)."""
    import copy

    import torch

    if variant == "fp32":
        return model
    return copy.deepcopy(model).to({"bf16": torch.bfloat16, "fp16": torch.float16}[variant])


def _evaluate(run: Run, task, tokenized, tokenizer, backend: str, variant: str, path: Path | None, model=None) -> dict:
    from kdbench.metrics import main_score, task_metrics

    if backend == "torch":
        placed = _in_precision(model, variant)
        logits_of = lambda ds: torch_logits(placed, ds, tokenizer)  # noqa: E731
    else:
        logits_of = lambda ds: ort_logits(path, ds, tokenizer)  # noqa: E731
    metrics = {
        s: task_metrics(task, logits_of(tokenized[s]), np.asarray(tokenized[s]["labels"])) for s in task.eval_splits
    }
    return {
        "schema": "kdbench.evaluate",
        "schema_version": 1,
        "task": task.name,
        "backend": backend,
        "variant": variant,
        "metrics": metrics,
        "score": main_score(task, metrics[task.eval_splits[0]]),
        "metric": task.main_metric,
        "examples": {s: len(tokenized[s]) for s in task.eval_splits},
        "sha256": file_sha256(path) if path is not None else None,  # the ONNX file evaluated (None: PyTorch)
    }
