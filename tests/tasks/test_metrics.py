import numpy as np
import pytest
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from kdbench.tasks.metrics import main_score, majority_baseline, task_metrics
from kdbench.tasks.task import get_task

LABELS = np.array([0, 1, 1, 0, 1, 0, 1, 1])
LOGITS = np.array([[2, 1], [0, 3], [1, 0], [3, 1], [0, 1], [0, 2], [1, 2], [0, 1]], dtype=float)
PRED = LOGITS.argmax(-1)


def test_classification_metrics_match_scikit_learn():
    assert task_metrics(get_task("cola"), LOGITS, LABELS) == {
        "matthews_correlation": pytest.approx(matthews_corrcoef(LABELS, PRED))
    }
    m = task_metrics(get_task("mrpc"), LOGITS, LABELS)
    assert m["f1"] == pytest.approx(f1_score(LABELS, PRED)) and m["accuracy"] == pytest.approx(
        accuracy_score(LABELS, PRED)
    )
    assert main_score(get_task("mrpc"), m) == m["f1"]
    assert task_metrics(get_task("rte"), (LOGITS, "extra"), LABELS)["accuracy"] == pytest.approx(6 / 8)


def test_regression_metrics_match_scipy():
    scores = np.array([[0.1], [2.0], [3.5], [1.0], [4.9]])
    gold = np.array([0.0, 2.5, 3.0, 1.5, 5.0])
    m = task_metrics(get_task("stsb"), scores, gold)
    assert m["pearson"] == pytest.approx(pearsonr(scores[:, 0], gold)[0])
    assert m["spearman"] == pytest.approx(spearmanr(scores[:, 0], gold)[0])


def test_majority_baseline_answers_the_training_majority():
    train = [1, 1, 1, 0]
    assert majority_baseline(get_task("rte"), train, LABELS) == pytest.approx(5 / 8)  # five 1s among 8
    assert majority_baseline(get_task("rte"), [0, 0, 1], LABELS) == pytest.approx(3 / 8)  # not the eval majority
    assert majority_baseline(get_task("mrpc"), train, LABELS) == pytest.approx(f1_score(LABELS, np.ones(8)))
    assert majority_baseline(get_task("cola"), train, LABELS) == 0.0  # one class: no correlation
    assert majority_baseline(get_task("stsb"), [1.0, 2.5], [0.5, 4.0]) == 0.0
