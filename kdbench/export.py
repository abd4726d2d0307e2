"""`kdbench export` and `kdbench evaluate`: ONNX variants of a distilled student, checked for parity, and the task's
metrics measured on the backend a student will be deployed on.

A run folder (from `kdbench distill`) gains `onnx/<variant>/model.onnx` for each variant (fp32, O1/O2/O3, int8) and
`onnx/parity.json`; `kdbench evaluate` writes `eval/<backend>-<variant>.json`. A variant whose parity fails is marked
failed and refused by later commands unless forced.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kdbench.data import get_task, load_task, tokenize
from kdbench.errors import KdbenchError
from kdbench.io import atomic_write_json, read_json

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
    optimize: str | None = None  # O1, O2 or O3: ONNX Runtime transformer graph optimisations (through optimum)
    quantize: str | None = None  # int8: dynamic quantisation of the fp32 graph
    parity_samples: int = 256  # evaluation examples compared against PyTorch

    def __post_init__(self) -> None:
        if self.optimize is not None and self.optimize not in OPTIMIZE_LEVELS:
            raise KdbenchError(f"--optimize is {self.optimize!r}; allowed: {', '.join(OPTIMIZE_LEVELS)}")
        if self.quantize is not None and self.quantize not in QUANTIZE:
            raise KdbenchError(f"--quantize is {self.quantize!r}; allowed: {', '.join(QUANTIZE)}")
        if self.parity_samples <= 0:
            raise KdbenchError(f"--parity-samples must be positive, got {self.parity_samples}")


# ---------------------------------------------------------------------------------------------- the run folder
def run_info(run_dir: Path) -> dict:
    """The run's config, checked: a folder that `kdbench distill` did not finish is refused."""
    run_dir = Path(run_dir)
    student = run_dir / "student"
    if not (student / "config.json").is_file() or not any(student.glob("*.safetensors")):
        raise KdbenchError(
            f"{run_dir} has no model (expected student/ with config.json and weights from `kdbench distill`)"
        )
    if not (run_dir / "config.json").is_file():
        raise KdbenchError(f"{run_dir} has no config.json; it is not a kdbench run folder")
    return read_json(run_dir / "config.json")


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


def _export_fp32(student: Path, dest: Path, opset: int) -> Path:
    from optimum.exporters.onnx import main_export

    from kdbench.backends import _quiet_export

    tmp = Path(tempfile.mkdtemp(prefix=".fp32.", dir=dest.parent))
    try:
        with _quiet_export():
            main_export(str(student), output=tmp, task="text-classification", opset=opset, do_validation=False)
        return _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _optimize(fp32_dir: Path, level: str, dest: Path) -> Path:
    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    tmp = Path(tempfile.mkdtemp(prefix=f".{level}.", dir=dest.parent))
    try:
        optimizer = ORTOptimizer.from_pretrained(fp32_dir, file_names=["model.onnx"])
        optimizer.optimize(AutoOptimizationConfig.with_optimization_level(level), save_dir=tmp)
        return _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _quantize_int8(fp32_dir: Path, dest: Path) -> Path:
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    tmp = Path(tempfile.mkdtemp(prefix=".int8.", dir=dest.parent))
    try:
        quantizer = ORTQuantizer.from_pretrained(fp32_dir, file_name="model.onnx")
        # dynamic quantisation: int8 weights, activations quantised per call; per-tensor for portable kernels
        quantizer.quantize(AutoQuantizationConfig.avx2(is_static=False, per_channel=False), save_dir=tmp)
        return _move_into(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_run(cfg: ExportConfig, log=print) -> dict:
    """Export the run's student (fp32 plus the asked-for variants), check each against PyTorch, write parity.json."""
    from transformers import AutoTokenizer

    from kdbench.modeling import load_trained

    info = run_info(cfg.run_dir)
    student = Path(cfg.run_dir) / "student"
    onnx_dir = Path(cfg.run_dir) / "onnx"
    onnx_dir.mkdir(exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(student)
    model = load_trained(student)
    task, tokenized = eval_data(info, tokenizer, cfg.parity_samples)
    split = task.eval_splits[0]
    reference = torch_logits(model, tokenized[split], tokenizer)
    log(f"exporting {student} (opset {cfg.opset})")
    variants = {"fp32": (_export_fp32(student, onnx_dir / "fp32", cfg.opset), FP32_GOAL)}
    for name, goal in _extra_variants(cfg):
        path = (
            _optimize(onnx_dir / "fp32", name, onnx_dir / name)
            if name in OPTIMIZE_LEVELS
            else _quantize_int8(onnx_dir / "fp32", onnx_dir / name)
        )
        variants[name] = (path, goal)
    report = load_parity(onnx_dir)
    for name, (path, goal) in variants.items():
        entry = {
            "path": str(path.relative_to(cfg.run_dir)),
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
    atomic_write_json(onnx_dir / PARITY_FILE, report)
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
    path = onnx_dir / PARITY_FILE
    return read_json(path) if path.is_file() else {}


def variant_path(run_dir: Path, variant: str, force: bool = False) -> Path:
    """The ONNX file of an exported variant; a variant whose parity failed is refused unless forced."""
    onnx_dir = Path(run_dir) / "onnx"
    report = load_parity(onnx_dir)
    if variant not in report:
        exported = ", ".join(report) or "none"
        raise KdbenchError(
            f"{run_dir} has no exported {variant!r} variant (exported: {exported}); run "
            f"`kdbench export {run_dir}` first"
        )
    if not report[variant]["passed"] and not force:
        raise KdbenchError(
            f"{run_dir}: the {variant} export failed its parity check "
            f"(agreement {report[variant]['argmax_agreement']:.2%}); pass --force to use it anyway"
        )
    return Path(run_dir) / report[variant]["path"]


# ----------------------------------------------------------------------------------------------------- evaluate
def evaluate_run(
    run_dir: Path, backend: str, variant: str = "fp32", force: bool = False, max_eval_samples: int | None = None
) -> dict:
    """The task's official metrics for the run's student on `backend`, written to eval/<backend>-<variant>.json.

    For a quantised variant the document also gives its loss against the fp32 ONNX model (computed if needed).
    """
    from transformers import AutoTokenizer

    from kdbench.metrics import main_score, task_metrics
    from kdbench.modeling import load_trained

    if backend not in ("torch", "onnxruntime"):
        raise KdbenchError(f"--backend is {backend!r}; allowed: torch, onnxruntime")
    if backend == "torch" and variant != "fp32":
        raise KdbenchError("--variant is for --backend onnxruntime; PyTorch evaluates the saved fp32 student")
    info = run_info(run_dir)
    student = Path(run_dir) / "student"
    tokenizer = AutoTokenizer.from_pretrained(student)
    task, tokenized = eval_data(info, tokenizer, max_eval_samples)
    if backend == "torch":
        model = load_trained(student)
        logits_of = lambda ds: torch_logits(model, ds, tokenizer)  # noqa: E731
    else:
        path = variant_path(run_dir, variant, force)
        logits_of = lambda ds: ort_logits(path, ds, tokenizer)  # noqa: E731
    metrics = {
        s: task_metrics(task, logits_of(tokenized[s]), np.asarray(tokenized[s]["labels"])) for s in task.eval_splits
    }
    doc = {
        "schema": "kdbench.evaluate",
        "schema_version": 1,
        "task": task.name,
        "backend": backend,
        "variant": variant,
        "metrics": metrics,
        "score": main_score(task, metrics[task.eval_splits[0]]),
        "metric": task.main_metric,
        "examples": {s: len(tokenized[s]) for s in task.eval_splits},
    }
    if backend == "onnxruntime" and variant in QUANTIZE:
        base = Path(run_dir) / "eval" / "onnxruntime-fp32.json"
        ref = (
            read_json(base) if base.is_file() else evaluate_run(run_dir, "onnxruntime", "fp32", force, max_eval_samples)
        )
        doc["loss_vs_fp32"] = ref["score"] - doc["score"]
    atomic_write_json(Path(run_dir) / "eval" / f"{backend}-{variant}.json", doc)
    return doc
