"""`kdbench evaluate`: the task's official metrics for a run's student on the engine and precision it will be
deployed with (eval/<backend>-<variant>.json), and per-example predictions for a run written before they
existed (`backfill`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.core import faults
from kdbench.core.errors import ConfigError, KdbenchError
from kdbench.core.names import check_choice
from kdbench.deploy.export import eval_data, run_info
from kdbench.engines.inference import ort_logits, predictions_document, torch_logits
from kdbench.engines.onnx import OPTIMIZE_LEVELS, QUANTIZE
from kdbench.results.run import Run, file_sha256

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

    from kdbench.zoo.modeling import load_trained

    check_choice("backend", backend, BACKENDS)
    check_choice("variant", variant, TORCH_VARIANTS if backend == "torch" else ("fp32", *OPTIMIZE_LEVELS, *QUANTIZE))
    if max_eval_samples is not None and (isinstance(max_eval_samples, bool) or max_eval_samples <= 0):
        raise ConfigError("max_eval_samples", f"must be positive, got {max_eval_samples}")
    run = Run(run_dir)
    info = run_info(run.path)
    if backend == "onnxruntime":
        from kdbench.core import ortbuild as ort

        ort.check("cpu")
    path = run.variant_file(variant, force) if backend == "onnxruntime" else None
    reference = run.variant_file("fp32", force) if backend == "onnxruntime" and variant != "fp32" else None
    tokenizer = AutoTokenizer.from_pretrained(run.student_dir)
    task, tokenized = eval_data(info, tokenizer, max_eval_samples)
    model = load_trained(run.student_dir) if backend == "torch" else None  # a corrupt student fails before any work
    doc = _evaluate(run, task, tokenized, tokenizer, backend, variant, path, model)
    if variant != "fp32":
        base = run.evaluation(backend, "fp32")
        same_file = backend == "torch" or (base or {}).get("sha256") == file_sha256(reference)
        if not (base and base.get("examples") == doc["examples"] and same_file):
            base = _evaluate(run, task, tokenized, tokenizer, backend, "fp32", reference, model)
        doc["loss_vs_fp32"] = base["score"] - doc["score"]
        doc["fp32_score"] = base["score"]
    faults.point("evaluate")
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
    from kdbench.tasks.metrics import main_score, task_metrics

    if backend == "torch":
        placed = _in_precision(model, variant)
        logits_of = lambda ds: torch_logits(placed, ds, tokenizer)  # noqa: E731
    else:
        logits_of = lambda ds: ort_logits(path, ds, tokenizer)  # noqa: E731
    logits = {s: logits_of(tokenized[s]) for s in task.eval_splits}
    metrics = {s: task_metrics(task, logits[s], np.asarray(tokenized[s]["labels"])) for s in task.eval_splits}
    first = logits[task.eval_splits[0]]
    answers = first.reshape(-1).astype(float).tolist() if task.is_regression else first.argmax(-1).tolist()
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
        # per example of the first split, in predictions.json's order: what intervals at this engine resample
        "answers": answers,
    }


def backfill(run_dir: Path) -> dict:
    """Compute and write the predictions of a finished run that has none (its student and teacher must be on disk);
    return them (or the existing ones)."""
    from transformers import AutoTokenizer

    from kdbench.deploy.export import eval_data
    from kdbench.tasks.task import recorded_task
    from kdbench.zoo.modeling import load_trained

    run = Run(run_dir)
    existing = run.predictions()
    if existing is not None:
        return existing
    info = run.finished_config()
    teacher_dir = Path(info.get("teacher_dir") or "")
    if not (teacher_dir / "config.json").is_file():
        raise KdbenchError(
            f"{run.path}: its teacher {teacher_dir} is no longer on disk; per-example predictions need it"
        )
    task = recorded_task(info)
    student = load_trained(run.student_dir)
    teacher = load_trained(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(run.student_dir)
    _task, tokenized = eval_data(info, tokenizer, (info.get("train") or {}).get("max_eval_samples"))
    doc = predictions_document(task, tokenized, student, teacher, tokenizer)
    with run.writing():
        run.write_predictions(doc)
    return doc
