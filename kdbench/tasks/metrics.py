"""GLUE's official metrics, computed with scikit-learn and scipy."""

from __future__ import annotations

import numpy as np

from kdbench.tasks.task import Task


def task_metrics(task: Task, predictions, labels) -> dict[str, float]:
    """Every official metric of `task`. `predictions` are logits (classification) or scores (STS-B)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    if isinstance(predictions, (tuple, list)):  # models that return extra outputs put the logits first
        predictions = predictions[0]
    preds = np.asarray(predictions)
    labels = np.asarray(labels)
    if task.is_regression:
        scores = preds.reshape(-1).astype(float)
        if np.ptp(scores) == 0:  # a constant prediction: correlation undefined (NaN); 0, as majority_baseline takes it
            return {"pearson": 0.0, "spearman": 0.0}
        return {"pearson": float(pearsonr(scores, labels)[0]), "spearman": float(spearmanr(scores, labels)[0])}
    classes = preds.argmax(-1) if preds.ndim > 1 else preds
    out = {}
    for name in task.metrics:
        if name == "accuracy":
            out[name] = float(accuracy_score(labels, classes))
        elif name == "f1":
            out[name] = float(f1_score(labels, classes))
        elif name == "matthews_correlation":
            out[name] = float(matthews_corrcoef(labels, classes))
    return out


def main_score(task: Task, metrics: dict[str, float]) -> float:
    """The one number a task is ranked by (its first official metric)."""
    return metrics[task.main_metric]


def majority_baseline(task: Task, train_labels, eval_labels) -> float:
    """The main score of always answering the training split's most frequent class (STS-B: a constant score, whose
    correlation is taken as 0): what a student that learned nothing gets."""
    if task.is_regression:
        return 0.0
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = values[counts.argmax()]
    return main_score(task, task_metrics(task, np.full(len(eval_labels), majority), eval_labels))
