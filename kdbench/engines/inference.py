"""A model's answers over a tokenised split: PyTorch or ONNX Runtime logits, and per-example predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.core.errors import KdbenchError
from kdbench.results.run import PREDICTIONS_SCHEMA
from kdbench.tasks.task import Task


def batches(dataset, tokenizer, batch_size: int = 32):
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
        for batch in batches(dataset, tokenizer):
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
    for batch in batches(dataset, tokenizer):
        feeds = {
            n: batch[n].astype(np.int64) if n in batch else np.zeros_like(batch["input_ids"], dtype=np.int64)
            for n in names
        }
        out.append(session.run(None, feeds)[0])
    return np.concatenate(out)


def predict(model, dataset, tokenizer, task: Task, batch_size: int = 64) -> list:
    """The model's answer per example: a class id (classification) or a score (STS-B), on the model's device."""
    import torch
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer, return_tensors="pt")
    rows = dataset.remove_columns([c for c in ("length", "labels", "label") if c in dataset.column_names])
    device = next(model.parameters()).device
    out = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = collate([rows[i] for i in range(start, min(start + batch_size, len(rows)))])
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu().numpy()
            out.append(logits.reshape(-1) if task.is_regression else logits.argmax(-1))
    model.train(was_training)
    values = np.concatenate(out)
    return [float(v) for v in values] if task.is_regression else [int(v) for v in values]


def predictions_document(task: Task, tokenized, student, teacher, tokenizer) -> dict:
    """A run's predictions file (run/predictions.json): per evaluation split, the labels and the student's and the
    teacher's answer for every example - what the bootstrap intervals of scores, shares and claims resample."""
    splits = {}
    for split in task.eval_splits:
        data = tokenized[split]
        splits[split] = {
            "labels": [float(v) if task.is_regression else int(v) for v in data["labels"]],
            "student": predict(student, data, tokenizer, task),
            "teacher": predict(teacher, data, tokenizer, task),
        }
    return {
        "schema": PREDICTIONS_SCHEMA,
        "schema_version": 1,
        "task": task.name,
        "metric": task.main_metric,  # what the bootstrap recomputes on resampled examples
        "split": task.eval_splits[0],  # the split a run is scored on
        "regression": task.is_regression,
        "splits": splits,
    }
