"""Per-example predictions of a run's student and its teacher on the evaluation split: what the bootstrap intervals
of scores, shares and claims resample (kdbench.uncertainty).

`kdbench distill` writes them at the end of training (run/predictions.json); `backfill` computes them for a finished
run written before they existed, from its saved student and the teacher folder its config names.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.data import Task
from kdbench.errors import KdbenchError
from kdbench.run import Run

SCHEMA = "kdbench.predictions"


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


def document(task: Task, tokenized, student, teacher, tokenizer) -> dict:
    """The predictions file of a run: per evaluation split, the labels and both models' answers."""
    splits = {}
    for split in task.eval_splits:
        data = tokenized[split]
        splits[split] = {
            "labels": [float(v) if task.is_regression else int(v) for v in data["labels"]],
            "student": predict(student, data, tokenizer, task),
            "teacher": predict(teacher, data, tokenizer, task),
        }
    return {"schema": SCHEMA, "schema_version": 1, "task": task.name, "splits": splits}


def backfill(run_dir: Path) -> dict:
    """Compute and write the predictions of a finished run that has none (its student and teacher must be on disk);
    return them (or the existing ones)."""
    from transformers import AutoTokenizer

    from kdbench.data import get_task
    from kdbench.export import eval_data
    from kdbench.modeling import load_trained

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
    task = get_task(info["task"])
    student = load_trained(run.student_dir)
    teacher = load_trained(teacher_dir)
    tokenizer = AutoTokenizer.from_pretrained(run.student_dir)
    _task, tokenized = eval_data(info, tokenizer, (info.get("train") or {}).get("max_eval_samples"))
    doc = document(task, tokenized, student, teacher, tokenizer)
    with run.writing():
        run.write_predictions(doc)
    return doc
