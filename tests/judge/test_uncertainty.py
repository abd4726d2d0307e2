"""The bootstrap's vectorised metrics equal scikit-learn's and scipy's, resample by resample, for every metric a task
file may put first."""

import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from kdbench.judge.uncertainty import metric_samples

REFERENCE = {
    "accuracy": accuracy_score,
    "f1": f1_score,
    "f1_macro": lambda y, p: f1_score(y, p, average="macro"),
    "matthews_correlation": matthews_corrcoef,
    "pearson": lambda y, p: pearsonr(p, y)[0],
    "spearman": lambda y, p: spearmanr(p, y)[0],
}


@pytest.mark.parametrize("metric", sorted(REFERENCE))
def test_vectorised_metrics_match_the_libraries(metric):
    rng = np.random.default_rng(1)
    n = 60
    if metric in ("pearson", "spearman"):
        y = rng.integers(0, 6, n).astype(float)  # ties, as STS-B's scores have
        p = y + rng.normal(0, 2, n)
    else:
        classes = 2 if metric in ("f1", "matthews_correlation") else 7
        y = rng.integers(0, classes, n)
        p = np.where(rng.random(n) < 0.6, y, rng.integers(0, classes, n))
    idx = rng.integers(0, n, size=(25, n))
    fast = metric_samples(metric, y, p, idx)
    assert fast == pytest.approx([REFERENCE[metric](y[r], p[r]) for r in idx], abs=1e-12)
