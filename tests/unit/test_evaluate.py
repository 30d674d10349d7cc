"""evaluate measures the learnt model on training and held-out rows beside least squares and the truth."""

import numpy as np
import pytest

from pipeline.dataset import Split, Table
from pipeline.evaluate import evaluate
from pipeline.linear import LinearModel

FEATURES = np.linspace(-1, 1, 20)[:, None]
TARGET = 2.0 * FEATURES[:, 0] + 1.0
SPLIT = Split("t.csv", Table(FEATURES[:15], TARGET[:15]), Table(FEATURES[15:], TARGET[15:]))
TRUE = LinearModel(("x",), (2.0,), 1.0)


def test_the_metrics_of_a_perfect_model():
    metrics = evaluate(SPLIT, LinearModel(("x",), (2.0,), 1.0), TRUE, True, 1e-4)
    assert list(metrics) == ["learnt", "ols", "true", "gap", "converged", "train", "test"]
    assert metrics["learnt"] == metrics["true"] == {"x": 2.0, "intercept": 1.0}
    assert metrics["ols"]["x"] == pytest.approx(2.0, rel=1e-12) and metrics["ols"]["intercept"] == pytest.approx(1.0)
    assert metrics["gap"] < 1e-12 and metrics["converged"] is True
    assert metrics["train"] == {"mse": 0.0, "mse_ols": pytest.approx(0.0, abs=1e-24), "r2": 1.0, "n": 15}
    assert metrics["test"]["n"] == 5 and metrics["test"]["r2"] == 1.0


def test_the_gap_and_converged_show_how_far_training_is_from_least_squares():
    learnt = LinearModel(("x",), (1.5,), 1.0)
    metrics = evaluate(SPLIT, learnt, TRUE, True, 1e-4)
    train_rows = SPLIT.train
    worst = np.max(np.abs(learnt.predict(train_rows.features) - (2.0 * train_rows.features[:, 0] + 1.0)))
    assert metrics["gap"] == pytest.approx(worst / train_rows.target.std())
    assert metrics["converged"] is False
    assert metrics["train"]["mse"] > metrics["train"]["mse_ols"] and metrics["train"]["r2"] < 1.0


def test_a_users_table_has_no_true_line_and_no_split_has_no_test_metrics():
    metrics = evaluate(Split("t.csv", Table(FEATURES, TARGET), None), LinearModel(("x",), (2.0,), 1.0), None,
                       True, 1e-4)
    assert "true" not in metrics and "test" not in metrics and metrics["train"]["n"] == 20


def test_without_an_intercept_r2_is_measured_about_zero():
    target = 3.0 * FEATURES[:, 0] + 0.1
    metrics = evaluate(Split("t.csv", Table(FEATURES, target), None), LinearModel(("x",), (3.0,), 0.0), None,
                       False, 1e-4)
    assert metrics["ols"]["intercept"] == 0.0
    assert metrics["train"]["r2"] == pytest.approx(1 - np.sum(0.1**2 * np.ones(20)) / np.sum(target**2))
