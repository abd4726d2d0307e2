"""How sure an accuracy figure is: bootstrap resamples of the evaluation examples.

Every run whose per-example predictions are known (run/predictions.json) gets R resampled scores of its student and
its teacher, computed on the same resampled examples (a paired bootstrap: the share of the teacher's score and the
student-vs-teacher difference keep only the uncertainty of the comparison). All runs of a task share one set of
resampled examples, so comparisons between students are paired too. Several seeds of one student are combined by
resampling the seeds as well (a hierarchical bootstrap). A claim is then judged on every resample; the fraction of
resamples in which it holds is its support.
"""

from __future__ import annotations

import numpy as np

from kdbench.tasks.task import get_task

RESAMPLES = 1000  # resamples of the evaluation examples; 2.5/97.5 % quantiles and support to about +-1.5 points
CONFIDENCE = 0.95
SUPPORT = 0.95  # a claim HOLDS when it holds in at least this share of resamples, DOES NOT HOLD at most 1 - SUPPORT


def metric_samples(metric: str, labels, predictions, idx: np.ndarray) -> np.ndarray:
    """A task's main metric on each row of resampled example indices `idx` (R x n), vectorised."""
    y = np.asarray(labels)[idx]
    p = np.asarray(predictions)[idx]
    if metric == "accuracy":
        return (p == y).mean(axis=1)
    if metric in ("pearson", "spearman"):
        if metric == "spearman":  # Spearman's rho is Pearson's r of the ranks (ties share their mean rank)
            from scipy.stats import rankdata

            p, y = rankdata(p, axis=1), rankdata(y, axis=1)
        x = p - p.mean(axis=1, keepdims=True)
        z = y - y.mean(axis=1, keepdims=True)
        denom = np.sqrt((x * x).sum(axis=1) * (z * z).sum(axis=1))
        return np.divide((x * z).sum(axis=1), denom, out=np.zeros(len(idx)), where=denom > 0)
    if metric == "f1_macro":  # as scikit-learn: the mean F1 over the classes each resample's labels or answers hold
        scores, present = np.zeros(len(idx)), np.zeros(len(idx))
        for c in np.union1d(np.unique(y), np.unique(p)):
            tp = ((p == c) & (y == c)).sum(axis=1).astype(float)
            seen = (2 * tp + ((p == c) & (y != c)).sum(axis=1) + ((p != c) & (y == c)).sum(axis=1)).astype(float)
            scores += np.divide(2 * tp, seen, out=np.zeros(len(idx)), where=seen > 0)
            present += seen > 0
        return np.divide(scores, present, out=np.zeros(len(idx)), where=present > 0)
    tp = ((p == 1) & (y == 1)).sum(axis=1).astype(float)
    tn = ((p == 0) & (y == 0)).sum(axis=1).astype(float)
    fp = ((p == 1) & (y == 0)).sum(axis=1).astype(float)
    fn = ((p == 0) & (y == 1)).sum(axis=1).astype(float)
    if metric == "f1":
        denom = 2 * tp + fp + fn
        return np.divide(2 * tp, denom, out=np.zeros(len(idx)), where=denom > 0)
    if metric == "matthews_correlation":
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return np.divide(tp * tn - fp * fn, denom, out=np.zeros(len(idx)), where=denom > 0)
    raise AssertionError(f"no vectorised bootstrap for metric {metric}")


def scored_on(predictions: dict) -> tuple[str, str]:
    """(metric, split) a run is scored by: what its predictions file says, or for files written before it said so,
    its shipped task's main metric and first evaluation split."""
    if "metric" in predictions and "split" in predictions:
        return predictions["metric"], predictions["split"]
    task = get_task(predictions["task"])
    return task.main_metric, task.eval_splits[0]


def first_split(predictions: dict) -> dict:
    """The split a run is scored on (its task's first evaluation split)."""
    return predictions["splits"][scored_on(predictions)[1]]


def resampled(runs: list[dict], resamples: int = RESAMPLES, seed: int = 0) -> dict[int, dict[str, np.ndarray]]:
    """For each run (by its position in `runs`) with predictions: R resampled student scores, teacher scores and
    shares. Runs of one task evaluated on the same examples share the resampled indices."""
    rng = np.random.default_rng(seed)
    indices: dict[tuple[str, int], np.ndarray] = {}
    out = {}
    for i, run in enumerate(runs):
        pred = run.get("predictions")
        if not pred:
            continue
        metric, _split = scored_on(pred)
        split = first_split(pred)
        n = len(split["labels"])
        key = (run["task"], n)
        if key not in indices:
            indices[key] = rng.integers(0, n, size=(resamples, n))
        idx = indices[key]
        student = metric_samples(metric, split["labels"], split["student"], idx)
        teacher = metric_samples(metric, split["labels"], split["teacher"], idx)
        share = np.divide(student, teacher, out=np.full(resamples, np.nan), where=teacher != 0)
        out[i] = {"score": student, "teacher": teacher, "share": share}
    return out


def interval(samples: np.ndarray) -> tuple[float, float] | None:
    """The central 95 % of resampled values (None when some resample is undefined)."""
    if samples is None or not np.all(np.isfinite(samples)):
        return None
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(samples, [alpha, 1 - alpha])
    return float(low), float(high)


def combine_seeds(samples: list[np.ndarray], seed: int = 0) -> np.ndarray:
    """Resampled means over seeds: each resample draws the seeds again (with replacement) and averages their
    resampled values, so the seed-to-seed spread widens the interval as it should."""
    stack = np.vstack(samples)  # seeds x R
    if len(samples) == 1:
        return stack[0]
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(samples), size=(stack.shape[1], len(samples)))
    return stack[pick, np.arange(stack.shape[1])[:, None]].mean(axis=1)


def verdict_from_support(support: float) -> str:
    """HOLDS, DOES NOT HOLD or INCONCLUSIVE from the share of resamples in which a claim holds."""
    if support >= SUPPORT:
        return "holds"
    if support <= 1 - SUPPORT:
        return "does not hold"
    return "inconclusive"
