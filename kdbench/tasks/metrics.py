"""A task's metrics (GLUE's official ones, and macro F1 for many classes), computed with scikit-learn and scipy."""

from __future__ import annotations

import numpy as np

from kdbench.tasks.task import Task


def task_metrics(task: Task, predictions, labels) -> dict[str, float]:
    """Every metric of `task`, in its order. `predictions` are logits (classification) or scores (regression)."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    if isinstance(predictions, (tuple, list)):  # models that return extra outputs put the logits first
        predictions = predictions[0]
    preds = np.asarray(predictions)
    labels = np.asarray(labels)
    if task.is_regression:
        scores = preds.reshape(-1).astype(float)
        if np.ptp(scores) == 0:  # a constant prediction: correlation undefined (NaN); 0, as majority_baseline takes it
            return {name: 0.0 for name in task.metrics}
        found = {"pearson": pearsonr(scores, labels)[0], "spearman": spearmanr(scores, labels)[0]}
        return {name: float(found[name]) for name in task.metrics}
    classes = preds.argmax(-1) if preds.ndim > 1 else preds
    measure = {
        "accuracy": lambda: accuracy_score(labels, classes),
        "f1": lambda: f1_score(labels, classes),
        "f1_macro": lambda: f1_score(labels, classes, average="macro"),
        "matthews_correlation": lambda: matthews_corrcoef(labels, classes),
    }
    return {name: float(measure[name]()) for name in task.metrics}


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
